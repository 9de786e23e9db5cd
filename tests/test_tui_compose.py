"""The compose form, round three: every field a user sets in experiments.toml that a run
needs (tags, threads, momentum, mi_equal_n), help from the spec's field table, a fresh form
that is the quick preset, and ctrl+r that asks before launching."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from helpers import (  # noqa: E402
    TINY,
    Starter,
    fill,
    open_compose,
    pick,
    piloted,
    plain,
    press,
    validated,
)
from textual.widgets import Input, Static  # noqa: E402

from ibtui.runs.store import load_run  # noqa: E402
from ibtui.spec import FIELDS, load_spec  # noqa: E402
from ibtui.tui.screens.compose import ComposeScreen  # noqa: E402
from ibtui.tui.screens.dialogs import ConfirmScreen  # noqa: E402


async def test_compose_sets_tags_threads_momentum_and_mi_equal_n(runs):
    async with piloted(runs, (120, 40), settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        fill(screen, **TINY, tags="pilot, lr-sweep", threads="1", momentum="0.8",
             mi_equal_n="false")
        pick(screen, "attack", "badnets")
        await validated(pilot, screen)
        assert screen.error == "" and len(screen.specs) == 2, screen.error
        for spec in screen.specs:
            v = spec.values
            assert v["tags"] == ["pilot", "lr-sweep"]
            assert v["threads"] == 1 and v["momentum"] == 0.8 and v["mi_equal_n"] is False
        fill(screen, momentum="1.5")  # validated by the spec's own rules and messages
        await validated(pilot, screen)
        assert "field 'momentum'" in screen.error
        assert screen.query_one("#row-momentum").has_class("-invalid")


async def test_compose_help_comes_from_the_spec_field_table(runs, monkeypatch):
    """Change the spec's help text: the form shows the new text (it keeps no copy)."""
    class Relabelled:  # the same field with another help text, whatever the field type is
        def __init__(self, field, help: str) -> None:
            self._field, self.help = field, help

        def __getattr__(self, name: str):
            return getattr(self._field, name)

    for key in ("tags", "momentum", "threads", "mi_equal_n", "width"):
        monkeypatch.setitem(FIELDS, key, Relabelled(FIELDS[key], f"HELP-OF-{key}"))
    async with piloted(runs, (120, 40), settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        assert screen.query_one("#f-tags", Input).placeholder.startswith("HELP-OF-tags")
        for key in ("tags", "width", "momentum", "threads", "mi_equal_n"):
            screen.query_one(f"#f-{key}", Input).focus()
            await pilot.pause()
            assert f"HELP-OF-{key}" in plain(screen.query_one("#field-help", Static)), key


async def test_a_fresh_form_is_the_quick_preset_ibtui_run_uses(runs):
    """Launch from a fresh app runs the embedded quick default (the repository's
    experiments.toml), not a 120-epoch width-64 paper run."""
    from ibtui.presets import preset_path

    async with piloted(runs, (120, 40), settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        assert screen.error == "", screen.error
        quick = load_spec(preset_path("quick"))
        assert [s.run_id for s in screen.specs] == [s.run_id for s in quick]
        assert [s.values for s in screen.specs] == [s.values for s in quick]
        assert all(s.values["epochs"] < 120 and s.values["width"] < 64 for s in screen.specs)
        # ctrl+t goes back to the same start
        fill(screen, epochs="120", width="64")
        await pilot.press("ctrl+t")
        await pilot.press("y")
        await validated(pilot, screen)
        assert [s.values for s in screen.specs] == [s.values for s in quick]


async def test_ctrl_r_asks_before_launching(runs):
    starter = Starter()
    rid = "tiny-badnets-digits-resnet18-p0.1-s0"
    async with piloted(runs, (120, 40), starter, settled=False) as (app, pilot):
        screen = await open_compose(pilot)
        fill(screen, **TINY)
        pick(screen, "attack", "badnets")
        await validated(pilot, screen)
        before = sorted(p.name for p in runs.iterdir())
        for decline in ("n", "escape"):
            await press(pilot, "ctrl+r")
            assert isinstance(app.screen, ConfirmScreen), decline
            body = plain(app.screen.query_one("#dialog-body", Static))
            assert "2 seeds = 2 runs" in body and rid in body, body
            await press(pilot, decline)
            assert isinstance(app.screen, ComposeScreen), decline
            assert sorted(p.name for p in runs.iterdir()) == before  # nothing launched
            assert starter.calls == []
        await press(pilot, "ctrl+r")
        await press(pilot, "enter")  # enter confirms (the Launch button has the focus)
        assert load_run(runs / rid).state == "queued"
        assert starter.calls == [runs]
        assert not isinstance(app.screen, ComposeScreen)
