"""SVG snapshots of every screen at 80x24 and 160x48 over the fixture runs directory.

Deterministic: fixed fixture timestamps, an injected clock, no polling during the shot, no
blinking cursors. Regenerate with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_textual_snapshot")

from helpers import (  # noqa: E402
    DONE,
    RUNNING,
    TINY,
    Starter,
    fill,
    make_app,
    move_to,
    pick,
    settle,
    table,
    validated,
)
from textual.widgets import Input  # noqa: E402

from ibtui.tui.screens.compose import ComposeScreen  # noqa: E402

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


async def _steady(pilot) -> None:
    await settle(pilot)
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


def shot(*steps):
    """A run_before that waits for the data, runs `steps` (keys or callables), then settles."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        for step in steps:
            if callable(step):
                step(pilot.app)
            else:
                await pilot.press(step)
            await settle(pilot)
        if isinstance(pilot.app.screen, ComposeScreen):
            await validated(pilot)  # on the state, not on a delay
        await _steady(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_runs_screen(snap_compare, runs, size):
    select = lambda app: move_to(table(app), RUNNING)  # noqa: E731
    assert snap_compare(make_app(runs), terminal_size=size, run_before=shot(select))


@pytest.mark.parametrize("size", SIZES)
def test_run_screen(snap_compare, runs, size):
    select = lambda app: move_to(table(app), DONE)  # noqa: E731
    assert snap_compare(make_app(runs), terminal_size=size,
                        run_before=shot(select, "enter"))


FIXED_CHOICES = (
    {"dataset": ["cifar10", "digits", "svhn"], "arch": ["resnet18", "vgg16"],
     "attack": ["badnets", "blend", "ftrojan", "wanet"],
     "mi_method": ["noise-aware", "infonce-paper", "mine"]},
    {"badnets": "size=5, colour='red', corner='top-left'",
     "blend": "alpha=0.3, test_alpha=0.3, pattern='noise'"},
    [],
)


@pytest.mark.parametrize("size", SIZES)
def test_compose_screen(snap_compare, runs, size, monkeypatch):
    # the choice lists are fixed so that a new attack or option does not change the picture;
    # validation still runs against the real registries
    monkeypatch.setattr("ibtui.tui.screens.compose.load_choices", lambda: FIXED_CHOICES)

    def form(app):
        fill(app.screen, **TINY)
        pick(app.screen, "attack", "badnets", "blend")

    assert snap_compare(make_app(runs, Starter()), terminal_size=size,
                        run_before=shot("n", form))


@pytest.mark.parametrize("size", SIZES)
def test_leaderboard_screen(snap_compare, runs, size):
    assert snap_compare(make_app(runs), terminal_size=size,
                        run_before=shot("l", "space", "space"))


@pytest.mark.parametrize("size", SIZES)
def test_workers_screen(snap_compare, runs, size):
    assert snap_compare(make_app(runs), terminal_size=size, run_before=shot("w"))


# --- screens and states added with the key table -------------------------------------

SMALL = [pytest.param((80, 24), id="80x24")]


@pytest.mark.parametrize("size", SMALL)
def test_run_screen_summary(snap_compare, runs, size):
    select = lambda app: move_to(table(app), DONE)  # noqa: E731
    assert snap_compare(make_app(runs), terminal_size=size,
                        run_before=shot(select, "enter", "3"))


@pytest.mark.parametrize("size", SMALL)
def test_run_screen_training(snap_compare, runs, size):
    select = lambda app: move_to(table(app), DONE)  # noqa: E731
    assert snap_compare(make_app(runs), terminal_size=size,
                        run_before=shot(select, "enter", "2"))


@pytest.mark.parametrize("size", SMALL)
def test_run_screen_log(snap_compare, runs, size):
    select = lambda app: move_to(table(app), DONE)  # noqa: E731
    assert snap_compare(make_app(runs), terminal_size=size,
                        run_before=shot(select, "enter", "4", "k"))


@pytest.mark.parametrize("size", SMALL)
def test_confirm_dialog(snap_compare, runs, size):
    select = lambda app: move_to(table(app), RUNNING)  # noqa: E731
    assert snap_compare(make_app(runs), terminal_size=size, run_before=shot(select, "c"))


@pytest.mark.parametrize("size", SMALL)
def test_help_screen(snap_compare, runs, size):
    assert snap_compare(make_app(runs), terminal_size=size, run_before=shot("question_mark"))


@pytest.mark.parametrize("size", SMALL)
def test_sort_picker(snap_compare, runs, size):
    assert snap_compare(make_app(runs), terminal_size=size, run_before=shot("o"))


@pytest.mark.parametrize("size", SIZES)
def test_leaderboard_grouped(snap_compare, runs, size):
    assert snap_compare(make_app(runs), terminal_size=size,
                        run_before=shot("l", "v", "down", "down", "enter"))


@pytest.mark.parametrize("size", SMALL)
def test_leaderboard_checks(snap_compare, runs, size):
    def worst(app):
        from ibtui.tui.widgets.tables import LeaderboardTable

        lt = app.screen.query_one(LeaderboardTable)
        move_to(lt, next(i for i in lt.visible_ids if lt.rows_by_id[i].sanity_ok is False))

    assert snap_compare(make_app(runs), terminal_size=size, run_before=shot("l", worst, "i"))


@pytest.mark.parametrize("size", SMALL)
def test_compose_invalid_field(snap_compare, runs, size, monkeypatch):
    monkeypatch.setattr("ibtui.tui.screens.compose.load_choices", lambda: FIXED_CHOICES)

    def form(app):
        fill(app.screen, **{**TINY, "poison_rate": "2"})
        pick(app.screen, "attack", "badnets", "blend")

    assert snap_compare(make_app(runs, Starter()), terminal_size=size,
                        run_before=shot("n", form))
