"""The run screen computes a run's within-run bootstrap (500 replicates) in a worker thread:
the screen opens and answers keys while it runs, and shows the interval when it is ready."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("textual")

from fixtures_runs import make_fixture_runs  # noqa: E402
from helpers import DONE, make_app, move_to, plain, settle, sync, table  # noqa: E402
from textual.widgets import Static  # noqa: E402

from ibtui.analysis import stealth  # noqa: E402
from ibtui.tui.screens.run import RunScreen  # noqa: E402


@sync
async def test_run_screen_bootstrap_is_computed_off_the_ui_thread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = make_fixture_runs(tmp_path)
    on_ui_thread: list[bool] = []
    release = threading.Event()
    real = stealth.run_intervals

    def slow(summary, mi):  # the fixture's summaries hold no interval: it is computed
        on_ui_thread.append(threading.current_thread() is threading.main_thread())
        release.wait(30)
        return real(summary, mi)

    monkeypatch.setattr(stealth, "run_intervals", slow)
    app = make_app(runs)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        move_to(table(app), DONE)
        await pilot.press("enter")
        for _ in range(5):
            await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.run_id == DONE
        await pilot.press("3")  # the app answers while the bootstrap runs
        await pilot.pause()
        body = screen.query_one("#summary-body", Static)
        assert "computing it from mi.jsonl" in plain(body)
        assert on_ui_thread == [False]
        release.set()
        await settle(pilot)
        text = plain(body)
        assert "computing" not in text
        d = screen.detail
        assert stealth.bootstrap_label(real(d.summary, d.mi)) in text
        await pilot.press("escape")
        await settle(pilot)
        assert on_ui_thread == [False]  # computed once, kept
