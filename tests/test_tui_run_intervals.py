"""The run screen computes a run's within-run bootstrap (500 replicates) in a worker thread:
the screen opens and answers keys while it runs, and shows the interval when it is ready."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("textual")

from helpers import (  # noqa: E402
    DONE,
    move_to,
    piloted,
    plain,
    press,
    settle,
    table,
)
from textual.widgets import Static  # noqa: E402

from ibtui.analysis import stealth  # noqa: E402
from ibtui.tui.screens.run import RunScreen  # noqa: E402


async def test_run_screen_bootstrap_is_computed_off_the_ui_thread(runs, monkeypatch):
    on_ui_thread: list[bool] = []
    release = threading.Event()
    real = stealth.run_intervals

    def slow(summary, mi):  # the fixture's summaries hold no interval: it is computed
        on_ui_thread.append(threading.current_thread() is threading.main_thread())
        release.wait(30)
        return real(summary, mi)

    monkeypatch.setattr(stealth, "run_intervals", slow)
    async with piloted(runs, (160, 48)) as (app, pilot):
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
        await press(pilot, "escape")
        assert on_ui_thread == [False]  # computed once, kept
