"""Modal dialogs: a yes/no confirmation, the `?` help for the screen below, the sort picker,
a run's sanity checks and the leaderboard export."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, OptionList, Static
from textual.widgets.option_list import Option

from ibtui.tui.keys import KEYS
from ibtui.tui.model import SANITY_HELP, Column, RunRow
from ibtui.tui.widgets.bars import FILTER_HELP


class Scroll(VerticalScroll):
    """A scrolling body that follows the key table: j/k, g/G, Home/End, PageUp/PageDown."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something: `y`/enter confirms, `n`/escape declines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape,q", "answer(False)", "No", key_display="n/esc", id="confirm.no"),
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
                yield Button(Text(f"{self.yes} (y)"), id="yes",
                             variant="error" if self.danger else "primary")
                yield Button(Text(f"{self.no} (n)"), id="no")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class DuplicateScreen(ModalScreen["str | None"]):
    """Runs of this configuration and seed exist already: `c` makes copies anyway (named in
    the body), `o` opens the existing run, `n`/escape goes back to the form."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "answer('copies')", "Copies", id="duplicate.copies"),
        Binding("o", "answer('open')", "Open existing", id="duplicate.open"),
        Binding("n,escape,q", "answer(None)", "Back", key_display="n/esc", id="duplicate.back"),
    ]

    def __init__(self, title: str, body: str, copies: str) -> None:
        super().__init__()
        self.title_text, self.body, self.copies = title, body, copies

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(self.title_text, style="bold"), id="dialog-title")
            yield Static(self.body, id="dialog-body", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(Text("Open existing (o)"), id="open", variant="primary")
                yield Button(Text(f"{self.copies} (c)"), id="copies")
                yield Button(Text("Back (n)"), id="back")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#open", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "back" else event.button.id)

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)


SCREEN_HELP = {
    "RunsScreen": "Every run of the runs directory, live. Rows are keyed by run id; the line "
                  "under the table shows the highlighted run in full, with why it failed or "
                  "which file is damaged. Columns whose value is the same in every row fold into "
                  "the header line when the terminal is narrow.",
    "RunScreen": "One run: MI curves per subset (the target class's backdoor subset in red; "
                 "the title names the MI estimator), clean accuracy (solid line) and ASR (×), "
                 "per-class train loss, the summary (failed sanity checks first) and the "
                 "worker log (long lines wrap; it follows new lines until you scroll up, End "
                 "or G follows again). Updates while the run trains.",
    "LeaderboardScreen": "Runs with a summary. Select runs with space to overlay their MI "
                         "curves; with none selected the plot shows the highlighted run. "
                         "v groups rows: a group row names the group and its size and shows "
                         "its means; enter opens or closes it, space selects the whole group. "
                         "At most 12 runs are overlaid; the plot's title says when it shows "
                         "fewer than are selected. e exports the shown rows.",
    "WorkersScreen": "What the scheduler runs now, and the runs waiting or needing attention. "
                     "Workers live in their own process sessions: quitting the app or losing "
                     "SSH leaves them running.",
    "ComposeScreen": "Compose an experiment; comma-separated values expand as a grid. "
                     "Validation uses the same rules and messages as experiments.toml.",
}


class HelpScreen(ModalScreen[None]):
    """The key table every screen follows, the keys of the screen below and general help."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", key_display="esc", id="help.close"),
    ]

    def __init__(self, below: Screen) -> None:
        super().__init__()
        self.below = below

    def _table(self) -> Table:
        t = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        t.add_column("key", style="bold cyan", no_wrap=True, min_width=16)
        t.add_column("what")
        return t

    def _common(self) -> Table:
        t = self._table()
        for what, keys, where in KEYS:
            t.add_row(keys, Text.assemble((what, "bold"), f" — {where}" if where else ""))
        return t

    def _keys(self) -> Table:
        """The screen's own bindings (those with a description), as the footer names them."""
        t = self._table()
        seen = set()
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
        return t

    def compose(self) -> ComposeResult:
        name = type(self.below).__name__
        title = self.below.title or name
        with Vertical(id="help"):
            yield Static(Text(f"Keys · {title}", style="bold"), id="help-title")
            with Scroll(id="help-body"):
                if name in SCREEN_HELP:
                    yield Static(SCREEN_HELP[name], classes="help-text", markup=False)
                yield Static(Text("This screen", style="bold underline"))
                yield Static(self._keys())
                if name == "LeaderboardScreen":
                    yield Static(Text.assemble(("checks column: ", "bold"), SANITY_HELP),
                                 classes="help-text")
                if name in ("RunsScreen", "LeaderboardScreen"):
                    yield Static(Text.assemble(("Filter (/): ", "bold"), FILTER_HELP),
                                 classes="help-text")
                yield Static(Text("Every screen", style="bold underline"))
                yield Static(self._common())
                yield Static("Quitting never cancels runs: workers keep running in their own "
                             "sessions. Close this help with Esc, q or ?.", classes="help-text",
                             markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()


class SortScreen(ModalScreen["str | None"]):
    """Pick the column to sort by (enter); the current one again reverses it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", key_display="esc", id="sort.close"),
        Binding("j", "move('down')", "Down", show=False),
        Binding("k", "move('up')", "Up", show=False),
    ]

    def __init__(self, columns: list[Column], current: str | None, reverse: bool) -> None:
        super().__init__()
        self.columns, self.current, self.reverse = columns, current, reverse

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static(Text("Sort by (enter picks; the current column again reverses it)",
                              style="bold"))
            options = []
            for c in self.columns:
                t = Text(c.label, style="bold")
                if c.key == self.current:
                    t.append(" ▼" if self.reverse else " ▲", style="bold yellow")
                if c.help:
                    t.append(f"  {c.help}", style="dim")
                options.append(Option(t, id=c.key))
            options.append(Option(Text("unsorted  creation order", style="italic"), id=""))
            yield OptionList(*options, id="sort-options")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        keys = [c.key for c in self.columns]
        ol.highlighted = keys.index(self.current) if self.current in keys else 0
        ol.focus()

    def action_move(self, where: str) -> None:
        ol = self.query_one(OptionList)
        ol.action_cursor_down() if where == "down" else ol.action_cursor_up()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id or "")


class ChecksScreen(ModalScreen[None]):
    """The MI sanity checks of one run, failed first, and what they check."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,i", "dismiss", "Close", key_display="esc", id="checks.close"),
    ]

    def __init__(self, row: RunRow) -> None:
        super().__init__()
        self.row = row

    def body(self) -> Text:
        checks = self.row.sanity
        t = Text()
        if not checks:
            t.append("No sanity checks were recorded for this run.\n", style="dim")
        else:
            failed = sum(not ok for ok, _ in checks)
            t.append(f"{failed} of {len(checks)} failed", style="bold red" if failed else "bold")
            t.append(f", {len(checks) - failed} passed\n", style="bold")
            for ok, what in checks:
                t.append("✔ " if ok else "✖ ", style="green" if ok else "bold red")
                t.append(what + "\n")
        t.append("\n")
        t.append(SANITY_HELP, style="dim")
        return t

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(Text(f"Sanity checks · {self.row.id}", style="bold"), id="help-title")
            with Scroll(id="checks-body"):
                yield Static(self.body(), id="checks-text")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#checks-body").focus()


EXPORT_FORMATS = {"csv": "csv", "md": "markdown table", "json": "json"}


class ExportScreen(ModalScreen["str | None"]):
    """Choose the export format: c csv, m markdown, j json."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "pick('csv')", "csv", id="export.csv"),
        Binding("m", "pick('md')", "markdown", id="export.md"),
        Binding("j", "pick('json')", "json", id="export.json"),
        Binding("escape,q", "dismiss", "Close", key_display="esc", id="export.close"),
    ]

    def __init__(self, n: int, stem: str) -> None:
        super().__init__()
        self.n, self.stem = n, stem

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(f"Export {self.n} leaderboard row{'s' * (self.n != 1)}",
                              style="bold"), id="dialog-title")
            yield Static(Text(f"The rows shown (filter and sort kept), with the columns of "
                              f"`ibtui leaderboard --format`, into {self.stem}.<format> in "
                              "the current directory."), id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                for fmt, label in EXPORT_FORMATS.items():
                    yield Button(Text(f"{label} ({fmt[0]})"), id=f"export-{fmt}", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("export-"))

    def action_pick(self, fmt: str) -> None:
        self.dismiss(fmt)
