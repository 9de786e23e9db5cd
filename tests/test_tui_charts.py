"""The run screen's and the leaderboard's charts say what they show: the MI ceiling, the
bounds and saturated values, a distinct marker per line, titles that shorten instead of
vanishing, a chart of one checkpoint, round evenly spaced ticks, the overlay's labels."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("textual")

from helpers import (  # noqa: E402
    DONE,
    RUNNING,
    open_run,
    piloted,
    plain,
    press,
)
from textual.widgets import Static  # noqa: E402

from ibtui.tui.widgets.plots import Chart, nice_ticks, tick_label  # noqa: E402


def rewrite_mi(runs, run_id, edit) -> None:
    path = runs / run_id / "mi.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs = edit(recs)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def saturate(recs):
    """The backdoor's I(X;T) at its first checkpoint sits at its ceiling (log N = 6.9)."""
    first = min(r["epoch"] for r in recs)
    for r in recs:
        if r["term"] == "xt" and r["role"] == "backdoor" and r["epoch"] == first:
            r["value"], r["at_ceiling"] = 6.88, True
    return recs


def chart_text(chart: Chart) -> str:
    return chart.render().plain


def labels(chart: Chart) -> list[str]:
    return [s[0] for s in chart._drawn[-1] if s[0]]


async def test_mi_chart_draws_ceiling_bound_and_saturated_points(runs):
    rewrite_mi(runs, DONE, saturate)
    async with piloted(runs, (160, 48)) as (app, pilot):
        await open_run(app, pilot, DONE)
        xt = app.screen.query_one("#chart-xt", Chart)
        assert {"ceiling log N", "lower bound", "at ceiling"} <= set(labels(xt))
        text = chart_text(xt)
        assert "╌╌╌╌" in text  # the ceiling, dashed
        assert "▲" in text  # the saturated point, its own marker
        assert "░" in text  # the band from the lower bound up to the estimate
        legend = plain(app.screen.query_one("#legend-mi", Static))
        assert "╌╌ ceiling log N" in legend and "▲ at ceiling" in legend
        assert "░░ lower bound" in legend
        # b hides the bound band, and shows it again
        await pilot.press("b")
        assert "lower bound" not in labels(xt)
        await pilot.press("b")
        assert "lower bound" in labels(xt)


async def test_mi_lines_have_distinct_markers_and_subsets_toggle(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        await open_run(app, pilot, DONE)
        legend = plain(app.screen.query_one("#legend-mi", Static))
        glyphs = re.findall(r"(\S+) (backdoor|target sample|target clean|target|others mean)\b",
                            legend)
        assert len(glyphs) == 5
        assert len({g for g, _ in glyphs}) == 5, glyphs  # no two lines look alike
        xt = app.screen.query_one("#chart-xt", Chart)
        values = [s for s in xt._drawn[-1] if not s[-1]]  # not a band, bound or ceiling
        assert len(values) == 5  # 4 target subsets and the other classes' mean
        assert "others min–max" in labels(xt)  # the other classes' band
        await pilot.press("v")  # the target class only
        assert "others mean" not in labels(xt) and "target clean" in labels(xt)
        await pilot.press("v")  # the backdoor against the other classes
        assert set(labels(xt)) & {"target", "target clean"} == set()
        assert "others mean" in labels(xt) and "backdoor" in labels(xt)
        await pilot.press("v")
        assert "target clean" in labels(xt)


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_chart_titles_shorten_instead_of_vanishing(runs, size):
    def scaled(recs):
        for r in recs:
            r.setdefault("settings", {})["xt_scale"] = 0.5
        return recs

    rewrite_mi(runs, DONE, scaled)
    async with piloted(runs, size) as (app, pilot):
        await open_run(app, pilot, DONE)
        for term, name in (("xt", "I(X;T)"), ("ty", "I(T;Ŷ)")):
            chart = app.screen.query_one(f"#chart-{term}", Chart)
            text = chart_text(chart)
            assert chart.shown_title.startswith(name), chart.shown_title
            assert chart.shown_title in text  # plotext drew it
            assert "nats" in text  # the y axis names its unit


async def test_one_checkpoint_shows_a_bar_per_subset(runs):
    rewrite_mi(runs, DONE, lambda recs: [r for r in saturate(recs) if r["epoch"] == 1])
    async with piloted(runs, (160, 48)) as (app, pilot):
        await open_run(app, pilot, DONE)
        xt = app.screen.query_one("#chart-xt", Chart)
        text = chart_text(xt)
        for name in ("backdoor 6.88 ▲", "target", "target clean", "target sample",
                     "other classes"):
            assert name in text, name
        assert "███" in text and "epoch 1" in xt.shown_title


def test_ticks_are_round_and_evenly_spaced():
    for lo, hi, n in ((0.54, 2.19, 6), (1.65, 3.61, 3), (0.0, 1.0, 4), (0.78, 6.9, 5)):
        ticks = nice_ticks(lo, hi, n)
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(steps) == 1 and ticks[0] <= lo and ticks[-1] >= hi, ticks
        step = steps.pop()
        assert all(float(tick_label(t, step)) == pytest.approx(t) for t in ticks)


async def test_axes_even_ticks_ra_in_title_and_x_to_the_last_epoch(runs):
    async with piloted(runs, (80, 24)) as (app, pilot):
        await open_run(app, pilot, RUNNING)  # a live run: 6 of 10 epochs so far
        acc = app.screen.query_one("#chart-acc", Chart)
        assert "RA" in labels(acc) and "RA" in acc.chart_title
        xt = app.screen.query_one("#chart-xt", Chart)
        text = chart_text(xt)
        rows = [ln for ln in text.splitlines() if re.match(r"^\s*-?[\d.]+┤", ln)]
        values = [float(re.match(r"^\s*(-?[\d.]+)┤", ln).group(1)) for ln in rows]
        positions = [text.splitlines().index(ln) for ln in rows]
        gaps = {round(b - a, 6) for a, b in zip(values, values[1:], strict=False)}
        assert len(values) >= 2 and len(gaps) == 1, values  # evenly spaced values
        assert len({b - a for a, b in zip(positions, positions[1:], strict=False)}) <= 2  # and rows
        axis = text.splitlines()[-2]  # the tick labels under the plot
        assert axis.split()[-1] == "10"  # the run's last epoch, not its last checkpoint


async def test_compare_overlay_names_runs_and_subsets_as_the_run_screen(runs):
    async with piloted(runs, (160, 48)) as (app, pilot):
        await press(pilot, "l")
        await press(pilot, "space", "space")
        screen = app.screen
        chart = screen.query_one("#compare", Chart)
        rows = screen.table.rows_by_id
        for (label, *_rest), rid in zip(chart._drawn[-1], screen.compared, strict=True):
            assert label.startswith(rows[rid].name + " "), label  # the experiment's name
        title = plain(screen.query_one("#compare-title", Static))
        assert "backdoor" in title and "subset" not in title
        await pilot.press("b")  # the next subset: named as the run screen's legend names it
        assert "target clean" in plain(screen.query_one("#compare-title", Static))
