"""Tables and layout: a wide leaderboard shows at least what a narrow one does, + hides the
plot, sorting by a hidden column shows it, the replicas view says how it is ranked, and no
word means two things across screens."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from helpers import (  # noqa: E402
    piloted,
    plain,
    polled,
    press,
    settle,
    table,
)
from textual.widgets import Static  # noqa: E402

from ibtui.tui.screens.dialogs import HelpScreen  # noqa: E402
from ibtui.tui.widgets.tables import LeaderboardTable  # noqa: E402


async def board_columns(runs, size, *keys) -> tuple[set[str], object]:
    async with piloted(runs, size) as (app, pilot):
        await press(pilot, "l", *keys)
        lt = app.screen.query_one(LeaderboardTable)
        return {c.key for c in lt.shown}, lt.size.width


IDENTITY = {"id", "run", "name", "attack", "dataset", "arch", "rate", "seed"}


async def test_a_wide_leaderboard_shows_at_least_what_a_narrow_one_does(runs):
    narrow, _ = await board_columns(runs, (80, 24))
    wide, _ = await board_columns(runs, (160, 48))
    assert narrow - IDENTITY <= wide - IDENTITY, (narrow, wide)
    assert "id" in wide  # the run id stays beside rank, score and validity


async def test_plus_hides_the_plot_and_the_table_takes_the_width(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "l")
        box = app.screen.query_one("#compare-box")
        assert box.display and box.region.width > 0
        await press(pilot, "plus")
        lt = app.screen.query_one(LeaderboardTable)
        assert lt.size.width >= 150 and box.region.width == 0
        keys = {c.key for c in lt.shown}
        assert {"id", "ra", "psnr", "ssim", "sanity", "ceiling", "rank", "ties"} <= keys
        await press(pilot, "plus")
        assert box.region.width > 0


async def test_sorting_by_a_hidden_column_shows_it(runs):
    async with piloted(runs, (80, 24)) as (app, pilot):
        await press(pilot, "l")
        lt = app.screen.query_one(LeaderboardTable)
        assert "psnr" not in {c.key for c in lt.shown}
        view = plain(app.screen.query_one("#viewbar", Static))
        assert "not shown:" in view and "PSNR" in view  # a sign that more columns exist
        app.screen._sort_by("psnr")
        await settle(pilot)
        assert "psnr" in {c.key for c in lt.shown}


async def test_replicas_view_says_how_it_is_ranked_and_names_the_configuration(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "l", "s", "R")  # sorted by something else, then the replicas
        view = plain(app.screen.query_one("#viewbar", Static))
        assert view.startswith("configurations ranked by mean score"), view
        title = plain(app.screen.query_one("#compare-title", Static))
        assert "config " not in title and "(#1)" in title, title


async def test_ok_never_means_two_things(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        from dataclasses import replace

        t = table(app)
        row = next(iter(t.rows_by_id.values()))
        alarm = next(c for c in t.all_columns if c.key == "alarm")
        assert alarm.render(replace(row, alarm="ok"), 0).plain == "clear"  # no alarm
        assert alarm.render(replace(row, alarm="! 3"), 0).plain == "! 3"
        await press(pilot, "l")
        lt = app.screen.query_one(LeaderboardTable)
        labels = {c.key: c.label for c in lt.all_columns}
        assert labels["sanity"] == "checks"
        assert "ok" not in labels.values()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(plain(s) for s in app.screen.query(Static))
        assert "checks column" in text and "ok column" not in text


async def test_runs_columns_keep_their_place_while_progress_text_changes(runs):
    import json

    from helpers import RUNNING

    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)

        def offsets() -> dict[str, int]:
            x, out = 0, {}
            for key, col in t.columns.items():
                out[key.value] = x
                x += col.get_render_width(t)
            return out

        before = offsets()
        for phase, progress in (("mi", None), ("training", 0.5), ("poisoning", 0.99)):
            status = json.loads((runs / RUNNING / "status.json").read_text())
            status.update(phase=phase, progress=progress, detail="")
            (runs / RUNNING / "status.json").write_text(json.dumps(status))
            await polled(pilot)
            assert offsets() == before, phase


async def test_paging_is_invisible_g_and_moves_cross_pages(runs, monkeypatch):
    from ibtui.tui.widgets.tables import RunTableBase

    monkeypatch.setattr(RunTableBase, "PAGE_SIZE", 5)  # 13 runs: three pages
    async with piloted(runs, (160, 48)) as (app, pilot):
        t = table(app)
        assert t.pages == 3 and t.page == 0
        await pilot.press("G")  # the last run, not the last of the page
        assert t.page == 2 and t.cursor_id == t.visible_ids[-1]
        await pilot.press("g")
        assert t.page == 0 and t.cursor_id == t.visible_ids[0]
        await pilot.press("j", "j", "j", "j")  # the last row of page 1
        assert t.cursor_id == t.visible_ids[4]
        await pilot.press("j")  # on to the next page
        assert t.page == 1 and t.cursor_id == t.visible_ids[5]
        await pilot.press("k")  # and back
        assert t.page == 0 and t.cursor_id == t.visible_ids[4]
        await pilot.press("pagedown")
        assert t.page == 1 and t.cursor_id == t.visible_ids[5]
        await pilot.press("end")
        assert t.cursor_id == t.visible_ids[-1]
        await pilot.press("home")
        assert t.cursor_id == t.visible_ids[0]


def test_a_phase_change_clears_the_last_phase_detail(tmp_path):
    """The run line's `(done)` left over from the last MI step: the detail goes with its phase."""
    from types import SimpleNamespace

    from ibtui.experiment.run import Experiment

    written: list[dict] = []
    fake = SimpleNamespace(
        w=SimpleNamespace(status={"phase": "mi", "detail": "done"}),
        status=SimpleNamespace(write_now=lambda fsync=False, **f: written.append(f),
                               update=lambda **f: written.append(f), cancelled=False),
        should_stop=lambda: None)
    Experiment.beat(fake, phase="training", progress=0.27)
    assert written[-1].get("detail") == ""
    Experiment.beat(fake, progress=0.3, detail="batch 3")  # a detail within the phase stays
    assert written[-1]["detail"] == "batch 3"


async def test_a_first_page_shows_as_loading_not_as_final(runs):
    from helpers import plain
    from textual.widgets import Static

    from ibtui.tui.messages import RunsUpdated
    from ibtui.tui.poller import RunsReader, Snapshot

    reader = RunsReader(runs)
    reader._later = ["a", "b"]  # what the first poll of an index leaves for the next
    assert reader.loading() == (0, 2)
    async with piloted(runs, (160, 48)) as (app, pilot):
        snap = app.snapshot
        app.post_message(RunsUpdated(Snapshot(rows=snap.rows[:5], scheduler=snap.scheduler,
                                              now=snap.now, loading=(5, 13))))
        await pilot.pause()
        top = plain(app.screen.query_one("#topbar", Static))
        assert "loading 5/13" in top and "done" not in top, top
        app.post_message(RunsUpdated(snap))
        await pilot.pause()
        top = plain(app.screen.query_one("#topbar", Static))
        assert "loading" not in top and "4 done" in top, top
