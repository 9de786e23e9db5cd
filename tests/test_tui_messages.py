"""Keys and messages: every key answers, help from a text field, a palette of ibtui's own
actions, messages that read right."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from helpers import (  # noqa: E402
    piloted,
    press,
    table,
)
from textual.widgets import Input  # noqa: E402

from ibtui.tui.screens.dialogs import HelpScreen  # noqa: E402


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_cancel_and_resume_on_an_empty_runs_screen_say_no_run_is_highlighted(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    async with piloted(runs, (80, 24)) as (app, pilot):
        await pilot.press("c")
        assert notes(app)[-1] == "No run highlighted."
        await pilot.press("r")
        assert notes(app)[-1] == "No run highlighted."


async def test_f1_opens_help_while_a_text_field_has_focus(runs):
    async with piloted(runs, (80, 24)) as (app, pilot):
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_palette_lists_ibtui_actions_not_textual_internals(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Filter" in titles and "Go to Leaderboard" in titles
        for internal in ("Focus Next", "Focus Previous", "Cursor left", "Cursor up",
                         "Scroll Home"):
            assert internal not in titles, internal


async def test_damaged_file_message_reads_right(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        note = table(app).rows_by_id["broken-run"].note
        assert "status.json damaged" in note and "at at" not in note, note


async def test_crash_line_names_the_keys_not_the_cli(runs):
    import json

    from helpers import CRASHED, move_to, plain
    from textual.widgets import Static

    status = json.loads((runs / CRASHED / "status.json").read_text())
    status.update(error=f"worker lost; resume with `ibtui resume {CRASHED}`", epoch=4)
    (runs / CRASHED / "status.json").write_text(json.dumps(status))
    async with piloted(runs, (160, 48)) as (app, pilot):
        move_to(table(app), CRASHED)
        await pilot.pause()
        line = plain(app.screen.query_one("#run-line", Static))
        assert "ibtui resume" not in line
        assert "r resumes from epoch 4, 4 shows the log" in line, line


async def test_a_runs_dir_that_does_not_exist_says_so(tmp_path):
    from helpers import plain
    from textual.widgets import Static

    async with piloted(tmp_path / "nowhere", (160, 48)) as (app, pilot):
        top = plain(app.screen.query_one("#topbar", Static))
        assert "does not exist yet" in top and "the first launch creates it" in top, top


async def test_an_unknown_filter_column_is_named(runs):
    from helpers import plain
    from textual.widgets import Static

    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "slash", *"foo:bar", "enter")
        view = plain(app.screen.query_one("#viewbar", Static))
        assert "foo: no such column" in view, view


def test_save_respects_the_umask_and_an_existing_files_mode(tmp_path):
    import os

    from ibtui.tui.form import save_experiment

    raw = {"name": "a", "width": 4, "epochs": 1, "mi_epochs": [1], "seed": [0]}
    old = os.umask(0o022)
    try:
        path = tmp_path / "experiments.toml"
        save_experiment(raw, path)
        assert path.stat().st_mode & 0o777 == 0o644  # not the temporary file's 0600
        os.chmod(path, 0o640)
        save_experiment({**raw, "name": "b"}, path)
        assert path.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
    finally:
        os.umask(old)


def test_summary_never_says_compression_and_no_compression():
    from ibtui.tui.screens.run import phases_text

    text = phases_text({"phases": {"early": [1, 2], "compression": [12, 12]},
                        "compression_observed": False}).plain
    assert "no compression observed" in text and "compression epoch" not in text
    text = phases_text({"phases": {"compression": [6, 8]}, "compression_observed": True}).plain
    assert "compression epochs 6–8" in text


async def test_table_screens_name_the_screen_and_the_runs_directory(runs):
    from helpers import plain
    from textual.widgets import Static

    async with piloted(runs, (160, 48)) as (app, pilot):
        top = plain(app.screen.query_one("#topbar", Static))
        assert top.startswith("ibtui runs · runs"), top  # the cwd holds `runs`
        await press(pilot, "l")
        top = plain(app.screen.query_one("#topbar", Static))
        assert top.startswith("ibtui leaderboard · runs"), top


async def test_workers_screen_focuses_a_list_with_rows_and_j_k_cross_lists(runs, monkeypatch):
    from textual.widgets import DataTable

    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "w")
        workers = app.screen.query_one("#workers", DataTable)
        queue = app.screen.query_one("#queue", DataTable)
        assert workers.row_count and app.focused is workers
        for _ in range(workers.row_count):
            await pilot.press("j")
        assert app.focused is queue and queue.cursor_row == 0  # on into the next list
        await pilot.press("k")
        assert app.focused is workers and workers.cursor_row == workers.row_count - 1
    # no scheduler: "Running now" is empty, so the screen starts on the waiting runs
    monkeypatch.setattr("ibtui.tui.app.scheduler_info", lambda runs_dir: None)
    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "w")
        queue = app.screen.query_one("#queue", DataTable)
        assert app.focused is queue and queue.row_count


async def test_workers_keys_without_a_target_say_so(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    async with piloted(runs, (80, 24)) as (app, pilot):
        await press(pilot, "w")
        for key in ("r", "c"):
            await pilot.press(key)
            assert notes(app)[-1] == "No run highlighted.", key
        await press(pilot, "n")
        from ibtui.tui.screens.compose import ComposeScreen

        assert isinstance(app.screen, ComposeScreen)


async def test_ctrl_t_asks_before_resetting_the_form(runs):
    from helpers import open_compose

    from ibtui.tui.screens.dialogs import ConfirmScreen

    async with piloted(runs, (120, 40)) as (app, pilot):
        screen = await open_compose(pilot)
        name = screen.query_one("#f-name", Input)
        name.value = "mine"
        await pilot.press("ctrl+t")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert name.value == "mine"  # kept
        await pilot.press("ctrl+t")
        await press(pilot, "y")
        assert name.value != "mine"


async def test_spec_shows_every_field_that_differs_from_its_default(runs):
    from helpers import DONE, open_run, plain
    from textual.widgets import Static

    from ibtui.spec import FIELDS

    spec = (runs / DONE / "spec.toml").read_text()
    lr = f"lr = {FIELDS['lr'].default!r}\n"
    assert lr in spec
    (runs / DONE / "spec.toml").write_text(spec.replace(lr, "lr = 0.07\n", 1))
    async with piloted(runs, (160, 48)) as (app, pilot):
        await open_run(app, pilot, DONE)
        await pilot.press("3")
        body = plain(app.screen.query_one("#summary-body", Static))
        spec_part = body[body.index("Spec"):]
        assert "lr" in spec_part and "0.07" in spec_part, spec_part


async def test_spec_names_the_variant_as_the_readme_and_shows_every_changed_field(runs):
    """The stored `variant = "default"` is every attack's `authors` variant (README, `ibtui
    attacks list`); momentum, batch size, weight decay and mi_options show when changed."""
    import tomllib

    import tomli_w
    from helpers import DONE, open_run, plain
    from textual.widgets import Static

    path = runs / DONE / "spec.toml"
    spec = tomllib.loads(path.read_text())["experiment"]  # one [experiment] table
    assert spec["attack_options"]["variant"] == "default"
    spec.update(momentum=0.8, batch_size=32, weight_decay=0.001, mi_options={"k": 4},
                tags=["pilot"])
    path.write_text(tomli_w.dumps({"experiment": spec}))
    async with piloted(runs, (160, 48)) as (app, pilot):
        await open_run(app, pilot, DONE)
        await pilot.press("3")
        body = plain(app.screen.query_one("#summary-body", Static))
        part = body[body.index("Spec"):]
        assert "variant authors" in part and "default" not in part, part
        for key, value in (("momentum", "0.8"), ("batch_size", "32"),
                           ("weight_decay", "0.001"), ("mi_options", "k=4"),
                           ("tags", "pilot")):
            line = next((ln for ln in part.splitlines() if ln.split()[:1] == [key]), "")
            assert value in line, (key, part)


def test_the_app_reads_the_line_a_resumed_worker_writes(tmp_path, capsys):
    """The worker says where a resumed attempt continues (any launcher: the app, `ibtui
    resume`, a Slurm requeue), and the Log tab recognises that line."""
    torch = pytest.importorskip("torch")

    from ibtui.experiment.checkpoint import RESUMED_LINE, resume_checkpoint, save_checkpoint
    from ibtui.tui.screens.run import RESUMED

    def state():
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
        return model, opt, sched, torch.Generator().manual_seed(0)

    assert resume_checkpoint(tmp_path, *state(), torch.device("cpu")) == 0
    assert "resumed" not in capsys.readouterr().out  # a fresh run says nothing
    save_checkpoint(tmp_path, 3, *state())
    assert resume_checkpoint(tmp_path, *state(), torch.device("cpu")) == 3
    out = capsys.readouterr().out
    assert RESUMED_LINE.format(epoch=3) in out
    m = RESUMED.match(out.strip())
    assert m and m.group(1) == "3"


async def test_log_tab_shows_a_resumed_from_epoch_separator(runs):
    from helpers import CRASHED, open_run
    from textual.widgets import RichLog

    log = runs / CRASHED / "worker.log"
    with open(log, "a") as f:  # the next attempt appends to the same log
        f.write("[worker] resuming\n[worker] ── resumed from epoch 4 (its checkpoint) ──\n"
                "[epoch 5/10] loss 0.3\n")
    async with piloted(runs, (80, 24)) as (app, pilot):
        await open_run(app, pilot, CRASHED)
        await press(pilot, "4")
        view = app.screen.query_one("#log-view", RichLog)
        shown = ["".join(seg.text for seg in strip) for strip in view.lines]
        rule = [s for s in shown if "resumed from epoch 4" in s]
        assert rule and rule[0].startswith("──") and "[worker]" not in rule[0], shown
        after = shown.index(rule[0])
        assert any("[epoch 5/10]" in s for s in shown[after:])  # where the log continues


async def test_every_screen_names_itself_and_the_runs_directory(runs):
    from helpers import DONE, open_run, plain
    from textual.widgets import Static

    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "w")
        top = plain(app.screen.query_one("#topbar", Static))
        assert top.startswith("ibtui workers · runs"), top
        await press(pilot, "escape")
        await open_run(app, pilot, DONE)
        head = plain(app.screen.query_one("#run-info", Static))
        assert head.startswith("ibtui run · runs"), head
        await press(pilot, "escape", "n")
        top = plain(app.screen.query_one(".topbar", Static))
        assert top.startswith("ibtui new experiment · runs"), top
