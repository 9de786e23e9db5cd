"""Pilot tests of the app against the fixture runs directory (every state, damaged runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("textual")

from fixtures_runs import (  # noqa: E402
    FIXTURE_NOW,
    LIVE_PID,
    LIVE_PID_START,
)
from helpers import (  # noqa: E402
    CRASHED,
    DONE,
    QUEUED,
    RUNNING,
    TINY,
    Starter,
    fill,
    move_to,
    open_compose,
    open_run,
    pick,
    piloted,
    plain,
    polled,
    press,
    table,
    validated,
)
from textual.widgets import DataTable, Static  # noqa: E402

from ibtui.runs.store import load_run  # noqa: E402
from ibtui.spec import load_spec  # noqa: E402
from ibtui.tui.app import IbtuiApp  # noqa: E402
from ibtui.tui.screens.compose import ComposeScreen  # noqa: E402
from ibtui.tui.screens.dialogs import ConfirmScreen, DuplicateScreen, HelpScreen  # noqa: E402
from ibtui.tui.screens.leaderboard import LeaderboardScreen  # noqa: E402
from ibtui.tui.screens.run import RunScreen  # noqa: E402
from ibtui.tui.screens.workers import WorkersScreen  # noqa: E402
from ibtui.tui.widgets.plots import Chart  # noqa: E402
from ibtui.tui.widgets.tables import LeaderboardTable, RunsTable  # noqa: E402


@pytest.fixture
def starter():
    return Starter()


async def test_runs_screen_lists_every_state_and_damage(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        assert t.row_count == 13
        states = {r.state for r in t.rows_by_id.values()}
        assert states == {"queued", "running", "done", "failed", "crashed", "cancelled",
                          "interrupted", "damaged"}
        broken = t.rows_by_id["broken-run"]
        assert "status.json damaged" in broken.note and "spec.toml" in broken.note
        assert str(runs) not in broken.note  # paths trimmed: rows read the same everywhere
        assert "summary.json missing" in t.rows_by_id["paper-badnets-digits-resnet18-p0.05-s0"].note
        move_to(t, "broken-run")
        await pilot.pause()
        assert "status.json damaged" in plain(app.screen.query_one("#run-line", Static))
        # the progress column shows epoch/total and the stage
        row = t.get_row(RUNNING)
        assert any(getattr(c, "plain", "") == "6/10 train 40%" for c in row)


async def test_sort_by_key_header_click_and_reverse(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        await pilot.press("s")
        assert t.sort_column == "id"  # the first shown column
        t.sort_by("acc", reverse=True)
        await pilot.pause()
        accs = [t.rows_by_id[i].acc for i in t.visible_ids]
        present = [a for a in accs if a is not None]
        assert present == sorted(present, reverse=True)
        assert accs[:len(present)] == present  # missing values last
        await pilot.press("S")
        accs = [t.rows_by_id[i].acc for i in t.visible_ids]
        present = [a for a in accs if a is not None]
        assert present == sorted(present) and accs[:len(present)] == present
        # a header click sorts by that column
        keys = [c.value for c in t.columns]
        index = keys.index("elapsed")
        x = sum(t.columns[k].get_render_width(t) for k in t.columns if keys.index(k.value) < index)
        await pilot.click(RunsTable, offset=(x + 2, 0))
        await pilot.pause()
        assert t.sort_column == "elapsed"
        # the cursor stays on its run while rows move
        move_to(t, QUEUED)
        t.sort_by("state")
        await pilot.pause()
        assert t.cursor_id == QUEUED


async def test_filter_substring_regex_and_column(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        await pilot.press("slash", *"wanet", "enter")
        assert set(t.visible_ids) == {i for i in t.rows_by_id if "wanet" in i}
        assert app.screen.focused is t
        await pilot.press("slash", "ctrl+u", *"state:run")
        assert set(t.visible_ids) == {RUNNING, "paper-badnets-digits-resnet18-p0.1-s1"}
        await pilot.press("ctrl+u", *"^paper-b.*s2$")
        assert set(t.visible_ids) == {CRASHED, "paper-blend-digits-resnet18-p0.1-s2"}
        await pilot.press("ctrl+u", *"p0.1-s[(")  # not a regex: plain text
        assert t.filter.error and t.visible_ids == []
        await pilot.press("escape")
        assert t.row_count == 13 and t.filter.text == ""


async def test_select_with_space_and_cancel_selected_queued_runs(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        move_to(t, QUEUED)
        await pilot.press("space", "space")  # selects both queued runs (cursor moves down)
        assert t.selected == {QUEUED, "paper-wanet-digits-resnet18-p0.1-s2"}
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        for rid in t.selected | {QUEUED}:
            assert load_run(runs / rid).state == "cancelled"
        assert t.rows_by_id[QUEUED].state == "cancelled"


async def test_cancel_running_asks_and_can_be_declined(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        move_to(t, RUNNING)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not (runs / RUNNING / "cancel").exists()
        await press(pilot, "c", "y")
        assert (runs / RUNNING / "cancel").exists()  # the worker stops at its next safe point


async def test_resume_crashed_requeues_and_ensures_scheduler(runs, starter):
    async with piloted(runs, (160, 48), starter) as (app, pilot):
        t = table(app)
        move_to(t, CRASHED)
        assert t.rows_by_id[CRASHED].state == "crashed"
        await press(pilot, "r")
        assert load_run(runs / CRASHED).state == "queued"
        assert starter.calls == [runs]
        assert t.rows_by_id[CRASHED].state == "queued"
        move_to(t, DONE)
        await press(pilot, "r")  # a done run is not resumable: nothing happens
        assert load_run(runs / DONE).state == "done" and len(starter.calls) == 1


async def test_open_run_shows_plots_summary_and_log(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        move_to(t, DONE)
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.run_id == DONE
        xt = screen.query_one("#chart-xt", Chart)
        labels = [s[0] for s in xt._drawn[-1]]
        assert "backdoor" in labels and "others mean" in labels and "target clean" in labels
        # one line per target subset, the other classes as one mean line in a band
        assert sum(1 for s in xt._drawn[-1] if not s[-1]) == 5
        assert screen.query_one("#chart-acc", Chart)._drawn[-1]  # acc and ASR lines
        await pilot.press("3")
        summary = plain(screen.query_one("#summary-body", Static))
        assert "stealth score" in summary and "Sanity checks: 1/2 passed" in summary
        await pilot.press("4")
        assert "[worker] done" in "\n".join(screen.query_one("#log-view").text_lines)
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)


async def test_open_damaged_run_never_breaks(runs):
    async with piloted(runs, (80, 24)) as (app, pilot):
        await open_run(app, pilot, "broken-run")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("3")
        assert "Damaged" in plain(app.screen.query_one("#summary-body", Static))


async def test_run_screen_updates_live(runs):
    async with piloted(runs, (120, 40)) as (app, pilot):
        await open_run(app, pilot, RUNNING)
        chart = app.screen.query_one("#chart-acc", Chart)
        before = len(chart._drawn[-1][0][1])
        with open(runs / RUNNING / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"epoch": 6, "test_acc": 0.9, "asr": 0.95, "ra": 0.1,
                                "class_loss": {"0": 0.1}}) + "\n")
        status = json.loads((runs / RUNNING / "status.json").read_text())
        status.update(epoch=7, progress=0.1)
        (runs / RUNNING / "status.json").write_text(json.dumps(status))
        await polled(pilot)
        assert len(chart._drawn[-1][0][1]) == before + 1
        assert "7/10 train 10%" in plain(app.screen.query_one("#run-info", Static))


async def test_new_run_appears_and_finished_run_updates_cells(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        status = json.loads((runs / QUEUED / "status.json").read_text())
        status.update(state="running", pid=LIVE_PID, pid_start=LIVE_PID_START,
                      started=FIXTURE_NOW - 60, phase="poisoning",
                      host=json.loads((runs / RUNNING / "status.json").read_text())["host"])
        (runs / QUEUED / "status.json").write_text(json.dumps(status))
        await polled(pilot)
        assert t.rows_by_id[QUEUED].state == "running"
        assert any(getattr(c, "plain", "") == "1m00s" for c in t.get_row(QUEUED))


async def test_leaderboard_sort_group_and_compare(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "l")
        screen = app.screen
        assert isinstance(screen, LeaderboardScreen)
        lt = screen.query_one(LeaderboardTable)
        assert len(lt.visible_ids) == 3  # runs with a summary
        scores = [lt.rows_by_id[i].score for i in lt.visible_ids]
        assert scores == sorted(scores)  # lower = stealthier first
        await press(pilot, "space", "space")
        chart = screen.query_one("#compare", Chart)
        assert len(chart._drawn[-1]) == 2 and all(s[1] for s in chart._drawn[-1])
        await pilot.press("t")
        assert "I(T;Ŷ)" in chart._drawn[0]
        await pilot.press("v")
        assert lt.group == "attack"
        assert any(str(r.key.value).startswith("group:") for r in lt.ordered_rows)
        await pilot.press("slash", *"arch:vgg", "enter")
        assert lt.visible_ids == ["paper-wanet-digits-vgg16-p0.05-s1"]
        await pilot.press("escape", "escape", "escape")
        await pilot.pause()
        assert app.current_mode == "runs"


async def test_workers_screen_shows_scheduler_workers(runs, starter):
    async with piloted(runs, (160, 48), starter) as (app, pilot):
        await press(pilot, "w")
        screen = app.screen
        assert isinstance(screen, WorkersScreen)
        workers = screen.query_one("#workers", DataTable)
        assert [str(r.key.value) for r in workers.ordered_rows] == [
            RUNNING, "paper-badnets-digits-resnet18-p0.1-s1"]
        assert "4101" in [getattr(c, "plain", str(c)) for c in workers.get_row(RUNNING)]
        queue = screen.query_one("#queue", DataTable)
        ids = [str(r.key.value) for r in queue.ordered_rows]
        assert ids[:2] == [QUEUED, "paper-wanet-digits-resnet18-p0.1-s2"] and CRASHED in ids
        assert "pid 1 on this host" in plain(screen.query_one("#topbar", Static))
        await press(pilot, "s")
        assert starter.calls == [runs]


async def test_quit_asks_and_says_runs_keep_going(runs):
    async with piloted(runs, (80, 24)) as (app, pilot):
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "cancels nothing" in app.screen.body
        await pilot.press("n")
        assert app.is_running
        await pilot.press("q", "y")
        await pilot.pause()
    assert app.return_code == 0


async def test_quit_without_active_runs_exits_at_once(tmp_path):
    async with piloted(tmp_path / "empty-runs", (80, 24)) as (app, pilot):
        assert "no runs yet" in plain(app.screen.query_one("#topbar", Static))
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_help_and_command_palette_list_every_action(runs):
    async with piloted(runs, (100, 30)) as (app, pilot):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Open", "Mark", "Filter", "Sort", "Reverse sort", "New", "Cancel",
                      "Resume", "Leaderboard", "Workers", "Select all", "Help", "Quit",
                      "Sort by acc", "Go to Leaderboard", "Start scheduler"):
            assert title in titles, title
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(plain(s) for s in app.screen.query(Static))
        assert "Filter" in text and "Resume" in text and "column:term" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


# --- compose -----------------------------------------------------------------------------

async def test_compose_counts_runs_and_reports_spec_errors(runs):
    async with piloted(runs, (100, 40), settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        fill(screen, **TINY)
        pick(screen, "attack", "badnets", "blend")
        await validated(pilot, screen)
        assert len(screen.specs) == 4 and screen.error == ""
        assert "2 attacks × 2 seeds = 4 runs · 4 epochs to train" in plain(
            screen.query_one("#compose-result", Static))
        fill(screen, epochs="0")
        await validated(pilot, screen)
        from ibtui.errors import SpecError
        from ibtui.spec import validate_experiment

        with pytest.raises(SpecError) as e:
            validate_experiment(screen.raw(), file="compose", exp="experiment")
        assert screen.error == str(e.value)  # the very message experiments.toml gives
        assert "field 'epochs'" in screen.error
        assert screen.query_one("#row-epochs").has_class("-invalid")  # the field is marked
        assert not screen.query_one("#row-seed").has_class("-invalid")


async def test_compose_save_appends_valid_toml(runs):
    target = runs.parent / "experiments.toml"
    async with piloted(runs, (100, 40), settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        fill(screen, **TINY)
        pick(screen, "attack", "badnets", "blend")
        await validated(pilot, screen)
        assert not target.exists()
        await press(pilot, "ctrl+o")
        assert screen.last_saved == "created"
        assert [s.run_id for s in load_spec(target)] == [
            "tiny-badnets-digits-resnet18-p0.1-s0", "tiny-badnets-digits-resnet18-p0.1-s1",
            "tiny-blend-digits-resnet18-p0.1-s0", "tiny-blend-digits-resnet18-p0.1-s1"]
        first = target.read_text()
        assert first.startswith("# composed in ibtui on") and "[[experiment]]" in first
        fill(screen, name="second")
        await validated(pilot, screen)
        await press(pilot, "ctrl+o")
        assert screen.last_saved == "appended"
        assert len(load_spec(target)) == 8 and target.read_text().startswith(first)
        before = target.read_text()
        await press(pilot, "ctrl+o")  # the same experiment again: duplicate run ids
        assert target.read_text() == before  # the file is never left invalid
        assert "appears twice" in screen.error
        assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")
                    or p.name.startswith(".experiments.")]


async def test_compose_launch_queues_runs_and_ensures_scheduler(runs, starter):
    async with piloted(runs, (100, 40), starter, settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        fill(screen, **TINY)
        await validated(pilot, screen)
        await press(pilot, "ctrl+r", "y")  # launch, and confirm
        for rid in ("tiny-badnets-digits-resnet18-p0.1-s0", "tiny-badnets-digits-resnet18-p0.1-s1"):
            run = load_run(runs / rid)
            assert run.state == "queued" and run.spec["epochs"] == 1
        assert starter.calls == [runs]
        assert not isinstance(app.screen, ComposeScreen)  # back to the runs
        assert "tiny-badnets-digits-resnet18-p0.1-s0" in table(app).rows_by_id


async def test_compose_relaunch_of_an_existing_configuration_asks_first(runs, starter):
    """Launching a configuration and seed that already ran asks: open the existing run, make
    a named copy, or go back; nothing is created before the answer."""
    first = "tiny-badnets-digits-resnet18-p0.1-s0"
    async with piloted(runs, (100, 40), starter, settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        fill(screen, **TINY)
        await validated(pilot, screen)
        await press(pilot, "ctrl+r", "y")  # launch, and confirm
        await polled(pilot)
        before = sorted(p.name for p in runs.iterdir())
        for answer in ("n", "o", "c"):
            screen = await open_compose(pilot)
            fill(screen, **TINY)
            await validated(pilot, screen)
            await press(pilot, "ctrl+r", "y")  # launch, and confirm
            assert isinstance(app.screen, DuplicateScreen), answer
            body = plain(app.screen.query_one("#dialog-body"))
            assert f"{first}" in body and f"{first}-2" in body and "same configuration and seed" in body
            assert sorted(p.name for p in runs.iterdir()) == before  # nothing made yet
            await press(pilot, answer)
            if answer == "n":
                assert isinstance(app.screen, ComposeScreen)
                await press(pilot, "escape")
            elif answer == "o":
                assert isinstance(app.screen, RunScreen) and app.screen.run_id in (
                    first, "tiny-badnets-digits-resnet18-p0.1-s1")
                await press(pilot, "escape")
        assert load_run(runs / f"{first}-2").state == "queued"  # the copy, named as announced


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_compose_launch_runs_through_the_real_scheduler(tmp_path, monkeypatch):
    """End to end: the form queues a tiny experiment, a real detached scheduler runs it."""
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    app = IbtuiApp(runs, poll_interval=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compose(pilot)
        fill(screen, **{**TINY, "seed": "0", "mi_options": "k = 2, max_samples = 64"})
        pick(screen, "attack", "badnets")
        await validated(pilot, screen)
        await press(pilot, "ctrl+r", "y")  # launch, and confirm
        rid = "tiny-badnets-digits-resnet18-p0.1-s0"
        import time

        deadline = time.monotonic() + 540
        while time.monotonic() < deadline:
            await pilot.pause(1.0)
            row = app.snapshot.by_id().get(rid)
            if row is not None and row.state not in ("queued", "running"):
                break
        row = app.snapshot.by_id()[rid]
        log = "\n".join(load_run(runs / rid).log_tail(30))
        assert row.state == "done", f"{row.state}: {row.note}\n{log}"
        assert row.score is not None or row.has_summary
        await open_run(app, pilot, rid)
        assert app.screen.query_one("#chart-xt", Chart)._drawn[-1]


def test_nothing_outside_tui_imports_textual():
    root = Path(__file__).resolve().parents[1] / "ibtui"
    offenders = [str(p) for p in root.rglob("*.py")
                 if "tui" not in p.relative_to(root).parts[:1]
                 and ("import textual" in p.read_text() or "from textual" in p.read_text())]
    assert offenders == []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
