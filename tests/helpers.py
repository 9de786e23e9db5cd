"""Helpers shared by test modules: tiny experiment files and the CLI command line, and the
app-pilot helpers (fixture run ids, app construction, waiting on state, the compose form).
Fixtures stay in conftest.py; test modules import these by name (`from helpers import ...`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import sys
import time
from pathlib import Path

from fixtures_runs import FIXTURE_NOW
from rich.console import Console
from textual.widgets import Input, SelectionList
from textual.worker import WorkerCancelled, WorkerFailed

from ibtui.tui.app import IbtuiApp
from ibtui.tui.screens.compose import ComposeScreen
from ibtui.tui.widgets.tables import RunsTable

ROOT = Path(__file__).resolve().parent.parent

# --- experiments and the command line ----------------------------------------------------

TINY_TOML = """
[[experiment]]
name = "{name}"
dataset = "digits"
width = 8
epochs = {epochs}
mi_epochs = {mi_epochs}
batch_size = 256
lr = 0.05
attack = "{attack}"
poison_rate = 0.1
observe_classes = [1, 2]
mi_method = "noise-aware"
mi_options = {{ k = 2, max_samples = 64 }}
"""


def tiny_spec(path: Path, name: str = "tiny", attack: str = "badnets", epochs: int = 2,
              mi_epochs: str = "[1, 2]") -> Path:
    path.write_text(TINY_TOML.format(name=name, attack=attack, epochs=epochs, mi_epochs=mi_epochs))
    return path


QUICK_TOML = """
[[experiment]]
name = "{name}"
dataset = "digits"
width = {width}
epochs = 1
mi_epochs = [1]
batch_size = 64
lr = 0.05
attack = "badnets"
poison_rate = 0.1
observe_classes = [1]
threads = 1
mi_method = "noise-aware"
mi_options = {{ k = 2, max_samples = 32 }}
"""


def quick_spec(name: str, width: str = "8") -> str:
    """A one-epoch BadNets experiment on digits (width "8", or "[4, 8]" for two runs): the
    quickest real run, for tests of the run machinery."""
    return QUICK_TOML.format(name=name, width=width)


def ibtui_cmd() -> list[str]:
    return [sys.executable, "-m", "ibtui.cli"]


def wait_until(cond, timeout: float = 600, what: str = "", every: float = 0.1) -> None:
    """Poll `cond` every `every` seconds; fail naming `what` if it is not true within `timeout`."""
    t = time.monotonic()
    while not cond():
        assert time.monotonic() - t < timeout, f"timed out after {timeout}s waiting for {what}"
        time.sleep(every)


# --- the app against the fixture runs directory (fixtures_runs.py) -----------------------

DONE = "paper-badnets-digits-resnet18-p0.1-s0"
RUNNING = "paper-ftrojan-digits-resnet18-p0.1-s0"
QUEUED = "paper-blend-digits-resnet18-p0.05-s1"
CRASHED = "paper-badnets-digits-resnet18-p0.2-s2"


def sync(fn):
    """Run an async test body (no asyncio pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


class Starter:
    """Stands in for ensure_scheduler: records calls, starts nothing."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, runs_dir, jobs=None, gpus=None, threads=None):
        self.calls.append(Path(runs_dir))
        return 4242


def plain(widget) -> str:
    """The text a Static shows."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def make_app(runs: Path, starter: Starter | None = None) -> IbtuiApp:
    return IbtuiApp(runs, poll_interval=3600, clock=lambda: FIXTURE_NOW,
                    start_scheduler=starter or Starter())


async def settle(pilot, rounds: int = 3) -> None:
    """Let background workers finish and their messages land."""
    for _ in range(rounds):
        try:
            await pilot.app.workers.wait_for_complete()
        except (WorkerCancelled, WorkerFailed):  # a superseded validation, a reported error
            pass
        await pilot.pause()


@contextlib.asynccontextmanager
async def piloted(runs: Path, size: tuple[int, int] = (120, 40), starter: Starter | None = None,
                  settled: bool = True):
    """`make_app(runs, starter)` running at `size`, its first load settled unless `settled` is
    False: yields (app, pilot)."""
    app = make_app(runs, starter)
    async with app.run_test(size=size) as pilot:
        if settled:
            await settle(pilot)
        yield app, pilot


async def polled(pilot) -> None:
    """Poll the runs directory now and let the new snapshot land."""
    pilot.app.poll_now()
    await settle(pilot)


async def press(pilot, *keys: str) -> None:
    """Press `keys`, then let what they started finish (`settle`)."""
    await pilot.press(*keys)
    await settle(pilot)


async def until(pilot, predicate, what: str, rounds: int = 500) -> None:
    """Wait on a state (never on a fixed delay); fail with `what` if it never comes."""
    for _ in range(rounds):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"never: {what}")


def table(app) -> RunsTable:
    return app.screen.query_one(RunsTable)


def move_to(t, run_id: str) -> None:
    t.move_cursor(row=t.get_row_index(run_id), animate=False)


async def open_run(app, pilot, run_id: str) -> None:
    """From the runs screen, open `run_id`'s run screen."""
    move_to(table(app), run_id)
    await press(pilot, "enter")


# --- the compose form --------------------------------------------------------------------

async def validated(pilot, screen: ComposeScreen | None = None) -> None:
    """Wait until the form's last change is validated and shown: on the state (change
    messages still queued, a debounce timer pending, a validation worker running), never on a
    fixed delay."""
    screen = screen or pilot.app.screen
    for _ in range(2000):
        await settle(pilot, rounds=1)  # delivers queued Changed messages
        if screen.validation_pending:
            await pilot.pause(0.01)
            continue
        await settle(pilot)
        if not screen.validation_pending:
            return
    raise AssertionError("the compose form never finished validating")


async def open_compose(pilot) -> ComposeScreen:
    await press(pilot, "n")
    assert isinstance(pilot.app.screen, ComposeScreen)
    await validated(pilot)
    return pilot.app.screen


def fill(screen: ComposeScreen, **values: str) -> None:
    for key, value in values.items():
        screen.query_one(f"#f-{key}", Input).value = value


def pick(screen: ComposeScreen, key: str, *names: str) -> None:
    sl = screen.query_one(f"#f-{key}", SelectionList)
    sl.deselect_all()
    for n in names:
        sl.select(n)


# the compose form's fields for a tiny grid (two seeds)
TINY = {"name": "tiny", "width": "4", "epochs": "1", "mi_epochs": "1",
        "mi_options": "k = 2, max_samples = 64", "seed": "0, 1"}
