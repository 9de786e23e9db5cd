"""Keys and messages: every key answers, help from a text field, a palette of ibtui's own
actions, messages that read right."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from fixtures_runs import make_fixture_runs  # noqa: E402
from helpers import make_app, settle, sync, table  # noqa: E402
from textual.widgets import Input  # noqa: E402

from ibtui.tui.screens.dialogs import HelpScreen  # noqa: E402


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return make_fixture_runs(tmp_path)


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


@sync
async def test_cancel_and_resume_on_an_empty_runs_screen_say_no_run_is_highlighted(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        assert notes(app)[-1] == "No run highlighted."
        await pilot.press("r")
        assert notes(app)[-1] == "No run highlighted."


@sync
async def test_f1_opens_help_while_a_text_field_has_focus(runs):
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


@sync
async def test_palette_lists_ibtui_actions_not_textual_internals(runs):
    app = make_app(runs)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Filter" in titles and "Go to Leaderboard" in titles
        for internal in ("Focus Next", "Focus Previous", "Cursor left", "Cursor up",
                         "Scroll Home"):
            assert internal not in titles, internal


@sync
async def test_damaged_file_message_reads_right(runs):
    app = make_app(runs)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        note = table(app).rows_by_id["broken-run"].note
        assert "status.json damaged" in note and "at at" not in note, note


@sync
async def test_crash_line_names_the_keys_not_the_cli(runs):
    import json

    from helpers import CRASHED, move_to, plain
    from textual.widgets import Static

    status = json.loads((runs / CRASHED / "status.json").read_text())
    status.update(error=f"worker lost; resume with `ibtui resume {CRASHED}`", epoch=4)
    (runs / CRASHED / "status.json").write_text(json.dumps(status))
    app = make_app(runs)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        move_to(table(app), CRASHED)
        await pilot.pause()
        line = plain(app.screen.query_one("#run-line", Static))
        assert "ibtui resume" not in line
        assert "r resumes from epoch 4, 4 shows the log" in line, line


@sync
async def test_a_runs_dir_that_does_not_exist_says_so(tmp_path):
    from helpers import plain
    from textual.widgets import Static

    app = make_app(tmp_path / "nowhere")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        top = plain(app.screen.query_one("#topbar", Static))
        assert "does not exist yet" in top and "the first launch creates it" in top, top


@sync
async def test_an_unknown_filter_column_is_named(runs):
    from helpers import plain
    from textual.widgets import Static

    app = make_app(runs)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"foo:bar", "enter")
        await settle(pilot)
        view = plain(app.screen.query_one("#viewbar", Static))
        assert "foo: no such column" in view, view
