"""Every key of the key table (ibtui/tui/keys.py, README "Keys"), pressed on the screens that
have it, and the command palette opened on every screen. Pilot tests over the fixture runs."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import pytest

pytest.importorskip("textual")

from helpers import (  # noqa: E402
    CRASHED,
    DONE,
    QUEUED,
    TINY,
    fill,
    move_to,
    open_run,
    pick,
    piloted,
    plain,
    press,
    settle,
    table,
    until,
    validated,
)
from textual.command import CommandPalette  # noqa: E402
from textual.widgets import DataTable, OptionList, Static  # noqa: E402

from ibtui.runs.store import load_run  # noqa: E402
from ibtui.tui.keys import KEYS  # noqa: E402
from ibtui.tui.screens.compose import CheckList, ComposeScreen  # noqa: E402
from ibtui.tui.screens.dialogs import (  # noqa: E402
    ChecksScreen,
    ConfirmScreen,
    ExportScreen,
    HelpScreen,
    SortScreen,
)
from ibtui.tui.screens.leaderboard import LeaderboardScreen  # noqa: E402
from ibtui.tui.screens.run import LogView, RunScreen  # noqa: E402
from ibtui.tui.screens.runs import RunsScreen  # noqa: E402
from ibtui.tui.screens.workers import WorkersScreen  # noqa: E402
from ibtui.tui.widgets.plots import Chart  # noqa: E402
from ibtui.tui.widgets.tables import LeaderboardTable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --- screens, reached the way a user does -----------------------------------------------

def reach(*keys: str, row: str | None = None, validate: bool = False):
    """A way to a screen from the runs screen: highlight `row`, press each key in turn and let
    it settle; `validate`: then wait until the compose form is validated."""

    async def go(pilot) -> None:
        if row:
            move_to(table(pilot.app), row)
        for key in keys:
            await press(pilot, key)
        if validate:
            await validated(pilot)

    go.__name__ = f"reach{keys}"
    return go


to_runs, to_leaderboard, to_workers = reach(), reach("l"), reach("w")
to_run, to_compose = reach("enter", row=DONE), reach("n", validate=True)
SCREENS = {
    "runs": (to_runs, RunsScreen), "leaderboard": (to_leaderboard, LeaderboardScreen),
    "workers": (to_workers, WorkersScreen), "run": (to_run, RunScreen),
    "compose": (to_compose, ComposeScreen), "help": (reach("question_mark"), HelpScreen),
    "confirm": (reach("c", row=QUEUED), ConfirmScreen), "sort": (reach("o"), SortScreen),
    "checks": (reach("l", "i"), ChecksScreen), "export": (reach("l", "e"), ExportScreen),
}


@contextlib.asynccontextmanager
async def on_screen(runs: Path, name: str, size: tuple[int, int]):
    """The app at `size` on screen `name` of SCREENS: yields (app, pilot)."""
    async with piloted(runs, size) as (app, pilot):
        await SCREENS[name][0](pilot)
        yield app, pilot


@pytest.mark.parametrize("name", list(SCREENS))
async def test_command_palette_opens_on_every_screen(runs, name):
    """Ctrl+P crashed with a MarkupError on Runs and Leaderboard (the `/` key in `[/]`)."""
    go, kind = SCREENS[name]
    async with piloted(runs, (120, 40)) as (app, pilot):
        await go(pilot)
        assert isinstance(app.screen, kind)
        below = app.screen
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "palette open")
        palette = app.screen
        options = palette.query_one(OptionList)
        # discovery: every command shown with its help text, rendered as markup
        await until(pilot, lambda: options.option_count > 0, "commands listed")
        texts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        for query in ("s", "filter", "back", "q"):
            palette.query_one("Input").value = query
            await settle(pilot)
            await until(pilot, lambda: not palette.query_one(OptionList).loading,
                        f"search {query!r} done")
        assert app.is_running
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is below, "palette closed")
        if name in ("runs", "leaderboard"):
            assert any(t.startswith("Filter") and "/ · " in t for t in texts), texts
        if name in ("run", "compose"):  # key hints no longer vanish as markup tags
            assert any("esc · " in t for t in texts), texts


# --- movement: j/k/g/G/Home/End/PageUp/PageDown -----------------------------------------

@pytest.mark.parametrize("name", ["runs", "leaderboard", "workers"])
async def test_movement_keys_in_tables(runs, name):
    async with on_screen(runs, name, (160, 30)) as (app, pilot):
        t = app.screen.focused
        assert isinstance(t, DataTable) and t.row_count >= 2
        last = t.row_count - 1
        await pilot.press("j")
        assert t.cursor_row == 1
        await pilot.press("k")
        assert t.cursor_row == 0
        await pilot.press("G")
        assert t.cursor_row == last
        await pilot.press("g")
        assert t.cursor_row == 0
        await pilot.press("end")
        assert t.cursor_row == last
        await pilot.press("home")
        assert t.cursor_row == 0
        await pilot.press("down", "up")
        assert t.cursor_row == 0
        await pilot.press("pagedown")
        assert t.cursor_row == last or t.cursor_row > 1
        await pilot.press("pageup")
        assert t.cursor_row == 0


# --- open / back / q --------------------------------------------------------------------

async def test_q_goes_back_and_quits_only_from_the_runs_screen(runs):
    async with piloted(runs, (120, 40)) as (app, pilot):
        await to_leaderboard(pilot)
        move_to(app.screen.query_one(LeaderboardTable), DONE)
        await press(pilot, "enter")  # a run, three screens deep
        assert isinstance(app.screen, RunScreen)
        await pilot.press("q")
        assert isinstance(app.screen, LeaderboardScreen) and app.is_running
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen) and app.is_running
        await to_workers(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await press(pilot, "n")
        app.screen.query_one("#f-attack", CheckList).focus()  # q types into text fields
        await pilot.press("q")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("question_mark", "q")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("q")  # the top screen: runs are active, so it asks
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")  # q in the dialog declines, as n and escape do
        assert isinstance(app.screen, RunsScreen) and app.is_running


async def test_confirm_dialog_shows_its_keys_and_its_own_footer(runs):
    async with piloted(runs, (120, 40)) as (app, pilot):
        await SCREENS["confirm"][0](pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        labels = [str(b.label) for b in dialog.query("Button")]
        assert labels == ["Cancel runs (y)", "Keep them (n)"]
        assert QUEUED in dialog.body
        keys = {b.binding.key for b in dialog.active_bindings.values()}
        assert {"y", "n", "escape"} <= keys
        assert "c" not in keys and "r" not in keys  # the Runs keys are not offered beneath
        footer = dialog.query_one("Footer")
        assert footer.screen is dialog
        await press(pilot, "n")
        assert load_run(runs / QUEUED).state == "queued"


async def test_escape_and_enter(runs):
    async with piloted(runs, (120, 40)) as (app, pilot):
        await to_run(pilot)
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == DONE
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


# --- sort: s, S, o (picker), header click -----------------------------------------------

@pytest.mark.parametrize("name", ["runs", "leaderboard"])
async def test_sort_picker_sorts_by_any_column_directly(runs, name):
    async with on_screen(runs, name, (160, 48)) as (app, pilot):
        t = app.screen.table
        await pilot.press("o")
        picker = app.screen
        assert isinstance(picker, SortScreen)
        ol = picker.query_one(OptionList)
        keys = [ol.get_option_at_index(i).id for i in range(ol.option_count)]
        assert keys[-1] == ""  # unsorted
        target = keys.index("acc")
        ol.highlighted = 0
        await pilot.press(*["j"] * target, "enter")
        assert not isinstance(app.screen, SortScreen)
        assert t.sort_column == "acc" and t.sort_reverse  # numbers: largest first
        await pilot.press("S")
        assert t.sort_column == "acc" and not t.sort_reverse
        await pilot.press("s")
        assert t.sort_column != "acc"
        await pilot.press("o", "escape")  # escape keeps the sort
        assert not isinstance(app.screen, SortScreen) and t.sort_column != "acc"


# --- filter, mark -----------------------------------------------------------------------

async def test_filter_and_mark_keys(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        await pilot.press("slash", *"state:queued", "enter")
        assert set(t.visible_ids) == {QUEUED, "paper-wanet-digits-resnet18-p0.1-s2"}
        await pilot.press("a")
        assert t.selected == set(t.visible_ids)
        await pilot.press("escape")  # clears the filter first, then the selection
        assert t.filter.text == "" and t.selected
        await pilot.press("escape")
        assert not t.selected
        move_to(t, CRASHED)
        await pilot.press("space")
        assert t.selected == {CRASHED}


# --- telling things apart ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["runs", "leaderboard"])
async def test_run_id_column(runs, name):
    async with on_screen(runs, name, (160, 40)) as (app, pilot):
        t = app.screen.table
        cols = [c.value for c in t.columns]
        i = cols.index("id")
        assert cols[1:i] == ([] if name == "runs" else ["rank"])  # the leaderboard's rank first
        assert t.get_row(DONE)[i].plain == DONE
        assert t.get_row("broken-run")[i].plain == "broken-run" if name == "runs" else True


async def test_mi_tab_names_the_estimator_and_training_lines_differ_in_style(runs):
    async with piloted(runs, (120, 40)) as (app, pilot):
        await to_run(pilot)
        xt = app.screen.query_one("#chart-xt", Chart)
        assert "noise-aware" in xt._drawn[0][0]
        acc = app.screen.query_one("#chart-acc", Chart)._drawn[-1]
        markers = {s[0]: s[4] for s in acc}
        assert markers["clean acc"] != markers["ASR"]
        await pilot.press("2")
        legend = plain(app.screen.query_one("#legend-acc", Static))
        assert "━━ clean acc" in legend and "×× ASR" in legend


async def test_summary_scrolls_without_tab_and_reads_well(runs):
    async with piloted(runs, (80, 24)) as (app, pilot):
        await to_run(pilot)
        await pilot.press("3")
        scroll = app.screen.query_one("#summary-scroll")
        assert app.screen.focused is scroll
        await until(pilot, lambda: scroll.max_scroll_y > 0, "summary taller than the tab")
        await pilot.press("j", "j", "down")
        assert scroll.scroll_y > 0
        await pilot.press("g")
        await until(pilot, lambda: scroll.scroll_y == 0, "back at the top")
        text = plain(app.screen.query_one("#summary-body", Static))
        assert text.index("✖") < text.index("✔ 1 passed")  # failed checks first
        assert "1 failed (listed first)" in text


async def test_leaderboard_checks_key_lists_failed_checks_first(runs):
    async with piloted(runs, (120, 40)) as (app, pilot):
        await to_leaderboard(pilot)
        lt = app.screen.query_one(LeaderboardTable)
        bad = next(i for i in lt.visible_ids if lt.rows_by_id[i].sanity_ok is False)
        move_to(lt, bad)
        await pilot.press("i")
        assert isinstance(app.screen, ChecksScreen)
        text = plain(app.screen.query_one("#checks-text", Static))
        assert text.startswith("1 of 2 failed") and text.index("✖") < text.index("✔")
        assert "sanity check" in text  # says what the ok column checks
        await pilot.press("i")
        assert isinstance(app.screen, LeaderboardScreen)


async def test_leaderboard_group_rows_name_count_and_open(runs):
    async with piloted(runs, (80, 24)) as (app, pilot):
        await to_leaderboard(pilot)
        lt = app.screen.query_one(LeaderboardTable)
        await pilot.press("v")
        assert lt.group == "attack"
        keys = [str(r.key.value) for r in lt.ordered_rows]
        first = keys[0]
        assert first.startswith("group:")
        label = lt.get_row(first)[1].plain
        members = lt.group_members(first)
        assert label == f"attack {first[6:]} · {len(members)} run{'s' * (len(members) != 1)}"
        lt.move_cursor(row=0, animate=False)
        await settle(pilot)
        assert app.screen.compared == members  # a highlighted group row overlays its runs
        await pilot.press("enter")  # closes the group
        assert first in lt.collapsed
        assert not set(members) & {str(r.key.value) for r in lt.ordered_rows}
        await pilot.press("enter")  # opens it again
        assert first not in lt.collapsed
        assert set(members) <= {str(r.key.value) for r in lt.ordered_rows}


async def test_overlay_says_when_it_draws_fewer_than_selected(runs, monkeypatch):
    monkeypatch.setattr("ibtui.tui.screens.leaderboard.MAX_COMPARE", 2)
    async with piloted(runs, (120, 40)) as (app, pilot):
        await to_leaderboard(pilot)
        await press(pilot, "a")
        title = plain(app.screen.query_one("#compare-title", Static))
        assert "first 2 of 3 selected runs" in title
        assert len(app.screen.query_one("#compare", Chart)._drawn[-1]) == 2


# --- export -----------------------------------------------------------------------------

@pytest.mark.parametrize("key,fmt", [("c", "csv"), ("m", "md"), ("j", "json")])
async def test_export_key_writes_the_shown_rows(runs, key, fmt):
    from ibtui.cli import BOARD_COLUMNS

    async with piloted(runs, (120, 40)) as (app, pilot):
        await to_leaderboard(pilot)
        lt = app.screen.query_one(LeaderboardTable)
        await pilot.press("slash", *"arch:resnet", "enter", "e")
        assert isinstance(app.screen, ExportScreen)
        await press(pilot, key)
        out = Path(f"leaderboard.{fmt}")
        text = out.read_text()
        if fmt == "csv":
            table_ = list(csv.reader(io.StringIO(text)))
            assert table_[0] == BOARD_COLUMNS
            assert [r[0] for r in table_[1:]] == lt.visible_ids  # filter and sort kept
        else:
            assert all(i in text for i in lt.visible_ids)


# --- the log ----------------------------------------------------------------------------

async def test_log_follows_pauses_and_end_resumes(runs):
    long = "x" * 300
    with open(runs / DONE / "worker.log", "a") as f:
        f.write("\n".join(f"[worker] line {i}" for i in range(80)) + "\n" + long + "\n")
    async with piloted(runs, (80, 24)) as (app, pilot):
        await to_run(pilot)
        await pilot.press("4")
        view = app.screen.query_one(LogView)
        assert app.screen.focused is view and view.follow
        await until(pilot, lambda: view.max_scroll_y > 0, "log taller than the tab")
        assert "following" in plain(app.screen.query_one("#log-follow", Static))
        assert view.virtual_size.width <= view.scrollable_content_region.width  # wrapped
        await pilot.press("k")
        assert not view.follow
        assert "paused" in plain(app.screen.query_one("#log-follow", Static))
        await pilot.press("end")
        assert view.follow
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y, "at the end")
        await pilot.press("pageup", "G")
        assert view.follow


# --- compose ----------------------------------------------------------------------------

async def test_compose_checkboxes_differ_and_cifar10_without_data_warns(runs, monkeypatch,
                                                                     tmp_path):
    monkeypatch.setenv("IBTUI_DATA", str(tmp_path / "no-data"))
    async with piloted(runs, (100, 40)) as (app, pilot):
        await to_compose(pilot)
        screen = app.screen
        attacks = screen.query_one("#f-attack", CheckList)
        lines = [attacks.render_line(y).text for y in range(attacks.option_count)]
        checked = [ln for ln in lines if "✔" in ln]
        assert len(checked) == len(attacks.selected) >= 1 and len(checked) < len(lines)
        fill(screen, **TINY)
        pick(screen, "attack", "badnets")
        screen.query_one("#f-dataset").value = "cifar10"
        await validated(pilot, screen)
        result = plain(screen.query_one("#compose-result", Static))
        assert not result.startswith("✔")  # never a green light for runs that cannot load
        if screen.error:  # validation itself checks the files: the dataset field is marked
            assert "CIFAR-10 files are missing" in screen.error
            assert screen.query_one("#row-dataset").has_class("-invalid")
        else:
            assert result.startswith("⚠") and "cifar10 data not found" in result


def test_readme_keys_section_lists_the_key_table():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Keys"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    for what, keys, _ in KEYS:
        assert f"| {what} |" in section and keys in section, what


async def test_help_lists_the_key_table_on_every_screen(runs):
    async with piloted(runs, (120, 40)) as (app, pilot):
        for go in (to_runs, to_leaderboard, to_workers):
            await go(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            text = " ".join(plain(s) for s in app.screen.query(Static))
            for what, keys, _ in KEYS:
                assert keys in text and what in text, (go.__name__, what)
            await pilot.press("escape")


async def test_user_text_is_never_read_as_markup(runs, monkeypatch):
    """Error text, paths and option help with brackets show as typed, and never crash."""
    choices = ({"dataset": ["digits"], "arch": ["resnet18"], "attack": ["badnets", "blend"],
                "mi_method": ["noise-aware"]},
               {"badnets": "size=[3, 5], note='[/] [b]x[/b]'"}, [])
    monkeypatch.setattr("ibtui.tui.screens.compose.load_choices", lambda: choices)
    async with piloted(runs, (120, 40)) as (app, pilot):
        app.notify("cannot read runs/[/]x[b]: [/] closing tag", title="[/]")
        await pilot.pause()
        await to_compose(pilot)
        help_text = plain(app.screen.query_one("#help-attack_options", Static))
        assert "note='[/] [b]x[/b]'" in help_text
        assert app.is_running


def test_phases_read_as_text_not_a_dict():
    from ibtui.tui.screens.run import phases_text

    ph = {"method": "noise-aware", "peak_epoch": 4, "compression_observed": True,
          "phases": {"early": [1, 2], "transition": [4, 4], "compression": [6, 8],
                     "convergence": [10, 10]}}
    text = phases_text(ph).plain
    assert text.startswith("early epochs 1–2 · transition epoch 4 · compression epochs 6–8")
    assert "peak at epoch 4, compression observed, from noise-aware" in text
    assert "{" not in text
    assert phases_text(None) is None and phases_text({"x": 1}).plain == "not detected"


async def test_compose_marks_the_focused_field(runs):
    async with piloted(runs, (100, 40)) as (app, pilot):
        await to_compose(pilot)
        screen = app.screen
        for want in ("name", "dataset", "arch", "width", "attack"):
            lit = [r.id for r in screen.query(".form-row") if r.has_class("-focused")]
            assert lit == [f"row-{want}"], lit
            await pilot.press("tab")
        assert str(screen.query_one("#launch").variant) == "default"  # not the focus colour


# --- seeds and intervals ----------------------------------------------------------------

def add_seeds(runs: Path, scores=(0.55, 0.75), seeds=(5, 6)) -> list[str]:
    """Copies of DONE (seed 0, score 0.65) with other seeds and scores: one configuration,
    three seeds. The first copy's summary carries a within-run bootstrap."""
    import json
    import re
    import shutil

    ids = []
    for i, (seed, score) in enumerate(zip(seeds, scores, strict=True)):
        rid = DONE.replace("-s0", f"-s{seed}")
        shutil.copytree(runs / DONE, runs / rid)
        spec = (runs / rid / "spec.toml").read_text()
        (runs / rid / "spec.toml").write_text(re.sub(r"(?m)^seed = 0$", f"seed = {seed}", spec))
        summary = json.loads((runs / rid / "summary.json").read_text())
        summary.update(seed=seed, score=score, d_xt=score, d_ty=score)
        if i == 0:
            summary["stealth"] = dict(summary["stealth"], score=score, bootstrap={
                "score_interval": [0.5, 0.6], "d_xt_interval": [0.45, 0.65],
                "d_ty_interval": [0.5, 0.61], "b": 500, "level": 0.95})
        (runs / rid / "summary.json").write_text(json.dumps(summary))
        ids.append(rid)
    return ids


async def test_leaderboard_replicas_key_shows_one_row_per_configuration(runs):
    add_seeds(runs)
    async with piloted(runs, (160, 40)) as (app, pilot):
        await to_leaderboard(pilot)
        lt = app.screen.query_one(LeaderboardTable)
        assert len(lt.visible_ids) == 5 and not lt.replicas
        await pilot.press("R")
        assert lt.replicas and lt.group == "config"
        keys = [str(r.key.value) for r in lt.ordered_rows]
        assert keys and all(k.startswith("group:") for k in keys)  # one row per configuration
        assert len(keys) == lt.config_count() == 3
        cells = {k: [c.plain for c in lt.get_row(k)] for k in keys}
        # badnets p0.1, seeds 0, 5, 6 with scores 0.65, 0.55, 0.75: mean 0.65, s = 0.1,
        # half-width t(0.975, 2)·s/√3 = 4.302653·0.1/1.7320508 = 0.248
        bad = next(c for c in cells.values() if "badnets" in c[1])
        assert "3 seeds" in bad[1] and "0.650 ± 0.248" in bad
        assert "ties #" in bad[1]  # its wide interval overlaps the others (one seed each)
        blend = next(c for c in cells.values() if "blend" in c[1])
        assert "1 seed " in blend[1] + " " and "0.375 (n = 1)" in blend
        top = plain(app.screen.query_one("#topbar", Static))
        assert "replicas: 3 configurations" in top
        await pilot.press("enter")  # opens the highlighted configuration: its runs
        assert len(lt.ordered_rows) > 3
        await pilot.press("R")  # back to the runs as they were
        assert not lt.replicas and lt.group is None
        assert not any(str(r.key.value).startswith("group:") for r in lt.ordered_rows)


async def test_run_summary_shows_the_interval_and_the_seeds(runs):
    first, _ = add_seeds(runs)
    async with piloted(runs, (160, 48)) as (app, pilot):
        await open_run(app, pilot, first)
        await press(pilot, "3")
        assert isinstance(app.screen, RunScreen)
        text = plain(app.screen.query_one("#summary-body", Static))
        assert "0.550 [0.500, 0.600]" in text and "0.550 [0.450, 0.650]" in text
        assert "(95%, within-run bootstrap, B=500)" in text
        assert "Across seeds" in text and "score 0.650 ± 0.248" in text
        assert "3 finished of 4 runs; seeds 0, 5, 6" in text  # seed 1 is still running
        await press(pilot, "escape")
        # a run summarised before intervals, whose MI records carry no standard error: says so
        await open_run(app, pilot, DONE.replace("badnets", "blend"))
        await press(pilot, "3")
        text = plain(app.screen.query_one("#summary-body", Static))
        assert "no within-run interval" in text and "carry no standard error" in text
        assert "Across seeds" not in text


def test_readme_names_every_key_of_every_screen():
    """Each screen's own keys (beyond the shared table) are in its line of the README's
    key block, and the block names no screen the app lacks."""
    import re

    from ibtui.tui.screens.compose import ComposeScreen
    from ibtui.tui.screens.leaderboard import LeaderboardScreen
    from ibtui.tui.screens.run import RunScreen
    from ibtui.tui.screens.runs import RunsScreen
    from ibtui.tui.screens.workers import WorkersScreen

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Keys"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```")]
    blocks: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        head = re.match(r"(\w+)\s{2,}", line)
        if head and not line.startswith(" "):
            name = head.group(1)
        blocks[name] = blocks.get(name, "") + " " + line
    shared = {"escape", "q", "slash", "s", "S", "o", "space", "enter", "a", "question_mark",
              "f1", "right_square_bracket", "left_square_bracket", "j", "k"}
    shown = {"plus": "+", "ctrl+r": "ctrl+r", "ctrl+o": "ctrl+o", "ctrl+t": "ctrl+t",
             "f5": "F5", "f2": "F2"}
    for screen, label in ((RunsScreen, "Runs"), (RunScreen, "Run"), (ComposeScreen, "Compose"),
                          (LeaderboardScreen, "Leaderboard"), (WorkersScreen, "Workers")):
        text = blocks[label]
        for b in screen.BINDINGS:
            keys = [k.strip() for k in b.key.split(",")]
            if all(k in shared for k in keys):
                continue
            for k in keys:
                if k in shared:
                    continue
                k = shown.get(k, k)
                assert re.search(rf"(?<![\w+]){re.escape(k)}(?![\w+])", text), (label, k)
