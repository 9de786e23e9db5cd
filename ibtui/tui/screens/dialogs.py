"""Modal dialogs: a yes/no confirmation and the `?` help for the screen below."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from ibtui.tui.widgets.bars import FILTER_HELP


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something: `y`/enter confirms, `n`/escape declines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, body: str, *, yes: str = "Yes", no: str = "No",
                 danger: bool = False) -> None:
        super().__init__()
        self.title_text, self.body, self.yes, self.no, self.danger = title, body, yes, no, danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(self.title_text, style="bold"), id="dialog-title")
            yield Static(self.body, id="dialog-body", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(f"{self.yes} [y]", id="yes",
                             variant="error" if self.danger else "primary")
                yield Button(f"{self.no} [n]", id="no")

    def on_mount(self) -> None:
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


SCREEN_HELP = {
    "RunsScreen": "Every run of the runs directory, live. Rows are keyed by run id; the line "
                  "under the table shows the highlighted run in full, with why it failed or "
                  "which file is damaged. Columns whose value is the same in every row fold into "
                  "the header line when the terminal is narrow.",
    "RunScreen": "One run: MI curves per subset (the target class's backdoor subset in red), "
                 "accuracy/ASR, per-class train loss, the summary and the worker log. Updates "
                 "while the run trains.",
    "LeaderboardScreen": "Runs with a summary. Select runs with space to overlay their MI "
                         "curves; with none selected the plot shows the highlighted run. "
                         "g groups rows (header rows show group means; space on one selects "
                         "the group).",
    "WorkersScreen": "What the scheduler runs now, and the runs waiting or needing attention. "
                     "Workers live in their own process sessions: quitting the app or losing "
                     "SSH leaves them running.",
    "ComposeScreen": "Compose an experiment; comma-separated values expand as a grid. "
                     "Validation uses the same rules and messages as experiments.toml.",
}


class HelpScreen(ModalScreen[None]):
    """The keys of the screen below (generated from its bindings) and general help."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, below: Screen) -> None:
        super().__init__()
        self.below = below

    def _keys(self) -> Table:
        t = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        t.add_column("key", style="bold cyan", no_wrap=True)
        t.add_column("what")
        seen = set()
        t.add_row("↑ ↓ pgup pgdn", "Move")
        for active in self.below.active_bindings.values():
            b = active.binding
            if not b.description or (b.action, b.description) in seen:
                continue
            if not (b.show or b.id):  # widget internals such as cursor keys
                continue
            seen.add((b.action, b.description))
            keys = b.key_display or self.app.get_key_display(b)
            text = b.description + (f" — {b.tooltip}" if b.tooltip else "")
            t.add_row(keys, text)
        t.add_row("ctrl+p", "Command palette: every action of this screen, by name")
        return t

    def compose(self) -> ComposeResult:
        name = type(self.below).__name__
        with Vertical(id="help"):
            yield Static(Text(f"Keys · {self.below.title or name}", style="bold"),
                         id="help-title")
            with VerticalScroll():
                if name in SCREEN_HELP:
                    yield Static(SCREEN_HELP[name], classes="help-text")
                yield Static(self._keys())
                if name in ("RunsScreen", "LeaderboardScreen"):
                    yield Static(Text.assemble(("Filter (/): ", "bold"), FILTER_HELP),
                                 classes="help-text")
                yield Static("Quitting never cancels runs: workers keep running in their own "
                             "sessions. Close this help with escape or ?.", classes="help-text")
