"""Runs screen (home): every run of the runs directory, live, sortable, filterable."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ibtui.tui.model import COLUMN_LIST, FOLDABLE, STATE_STYLE, RunRow
from ibtui.tui.poller import Snapshot
from ibtui.tui.widgets.bars import FilterBar, RunLine
from ibtui.tui.widgets.tables import RunsTable, RunTableBase


def state_counts(rows: Iterable[RunRow], compact: bool = False) -> Text:
    """` ● 2 running ◌ 1 queued …`, or ` ●2 ◌1 …` when compact."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    t = Text()
    for state, (sym, style) in STATE_STYLE.items():
        if counts.get(state):
            t.append(f" {sym}{counts[state]}" if compact else f" {sym} {counts[state]} {state}",
                     style=style)
    return t


def scheduler_text(snap: Snapshot, compact: bool = False) -> Text:
    s = snap.scheduler
    if not s:
        waiting = sum(1 for r in snap.rows
                      if r.state == "queued" and not r.note.startswith("Slurm"))
        if waiting:  # nothing runs them: say so, and the keys that start a scheduler
            return Text("no scheduler: w s starts one" if compact else
                        f"no scheduler for {waiting} queued: press w then s to start one",
                        style="bold yellow")
        return Text("no scheduler", style="dim")
    n = len(s.get("workers") or [])
    if compact:
        return Text(f"⚙ {n} worker{'s' * (n != 1)}", style="green")
    return Text(f"scheduler ● {n} worker{'s' * (n != 1)}", style="green")


def view_text(table: RunTableBase, total: int) -> Text:
    """`sorted by acc ▼ · filter "x" (3 of 13) · 2 selected · all rows: digits`"""
    parts: list[Text] = []
    if getattr(table, "group", None) == "config":  # configurations are ranked, not sorted
        parts.append(Text("configurations ranked by mean score" + (
            f", runs in each by {table._column(table.sort_column).label} "
            f"{'▼' if table.sort_reverse else '▲'}" if table.sort_column else "")))
    elif table.sort_column:
        label = table._column(table.sort_column).label
        parts.append(Text(f"sort {label} {'▼' if table.sort_reverse else '▲'}"))
    if table.filter.text:
        shown = len(table.visible_ids)
        parts.append(Text(f"filter “{table.filter.text}” ({shown} of {total})", style="yellow"))
        if table.filter.error:
            parts.append(Text(table.filter.error, style="red"))
    if table.selected:
        parts.append(Text(f"{len(table.selected)} selected", style="bold yellow"))
    if table.folded:
        parts.append(Text("all: " + " ".join(table.folded.values()), style="dim"))
    hidden = table.hidden_columns()
    if hidden:  # a sign that more columns exist, and how to see them
        parts.append(Text(f"not shown: {', '.join(hidden)}"
                          + (" (+ hides the plot)" if getattr(table, "group", False) is not False
                             else " (a wider terminal shows them)"), style="dim"))
    if table.row_count and table.size.width and table.virtual_size.width > table.size.width:
        parts.append(Text("more columns → (scroll right)", style="bold"))
    page = table.page_text()
    if page:
        parts.append(Text(page, style="bold"))
    return Text(" · ").join(parts)


def set_text(widget: Static, text: Text) -> bool:
    """Update a Static only when its text changed (an update re-lays the screen out)."""
    key = (text.plain, tuple((s.start, s.end, str(s.style)) for s in text.spans), str(text.style))
    if getattr(widget, "_ibtui_shown", None) == key:
        return False
    widget._ibtui_shown = key  # type: ignore[attr-defined]
    widget.update(text)
    return True


def table_keys(screen: str, filter_tip: str, sort_tip: str) -> list[BindingType]:
    """The filter and sort keys of a table screen, with ids `screen.filter`, `screen.sort`, …"""
    return [
        Binding("slash", "filter", "Filter", key_display="/", id=f"{screen}.filter",
                tooltip=filter_tip),
        Binding("s", "sort", "Sort", id=f"{screen}.sort", tooltip=sort_tip),
        Binding("S", "reverse_sort", "Reverse sort", show=False, id=f"{screen}.reverse",
                tooltip="Reverse the sort order"),
        Binding("o", "pick_sort", "Sort by…", show=False, id=f"{screen}.pick_sort",
                tooltip="Pick the column to sort by"),
    ]


class TableScreen(Screen):
    """What the runs and leaderboard screens share: filter bar, sort keys, selection."""

    table: RunTableBase
    _stale = False  # a snapshot arrived while another screen was shown

    def is_shown(self) -> bool:
        """Whether this screen is the one on top; otherwise a snapshot only marks it stale
        and on_screen_resume shows the latest."""
        if self.is_current:
            return True
        self._stale = True
        return False

    def show_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.add_class("-open")
        bar.value = self.table.filter.text
        bar.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, FilterBar):
            self.table.set_filter(event.value)
            self.refresh_bars()

    def on_filter_bar_closed(self, event: FilterBar.Closed) -> None:
        event.bar.remove_class("-open")
        if not event.keep:
            self.table.set_filter("")
        self.table.focus()
        self.refresh_bars()

    def action_filter(self) -> None:
        self.show_filter()

    def action_sort(self) -> None:
        self.table.cycle_sort()
        self.refresh_bars()

    def action_pick_sort(self) -> None:
        from ibtui.tui.screens.dialogs import SortScreen

        def chosen(key: str | None) -> None:
            if key is not None:
                self._sort_by(key or None)

        self.app.push_screen(SortScreen(self.table.all_columns, self.table.sort_column,
                                        self.table.sort_reverse), chosen)

    def action_reverse_sort(self) -> None:
        if self.table.sort_column is None:
            self.table.cycle_sort()
        else:
            self.table.sort_by(self.table.sort_column, not self.table.sort_reverse)
        self.refresh_bars()

    def action_select_all(self) -> None:
        ids = self.table.visible_ids
        on = not all(i in self.table.selected for i in ids)
        self.table.select_ids(ids, on=on)

    def action_clear(self) -> None:
        if self.table.filter.text:
            self.table.set_filter("")
        elif self.table.selected:
            self.table.clear_selection()
        self.refresh_bars()

    @on(RunTableBase.SelectionChanged)
    def _selection_changed(self, event: RunTableBase.SelectionChanged) -> None:
        self.refresh_bars()

    def palette_commands(self) -> Iterable[SystemCommand]:
        for c in self.table.all_columns:
            yield SystemCommand(f"Sort by {c.label}", c.help or f"Sort rows by {c.label}",
                                partial(self._sort_by, c.key))
        yield SystemCommand("Unsorted", "Back to creation order", partial(self._sort_by, None))

    def _sort_by(self, key: str | None) -> None:
        self.table.sort_by(key)
        self.refresh_bars()

    def refresh_bars(self) -> None:  # pragma: no cover - implemented by subclasses
        pass


class RunsScreen(TableScreen):
    TITLE = "Runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        *table_keys("runs", "Filter rows: regex or text, column:term for one column",
                    "Sort by the next column (header click sorts by that column)"),
        Binding("n", "app.new_experiment", "New", id="runs.new",
                tooltip="Compose a new experiment"),
        Binding("c", "cancel", "Cancel", id="runs.cancel",
                tooltip="Cancel the selected (or highlighted) runs, after confirmation"),
        Binding("r", "resume", "Resume", id="runs.resume",
                tooltip="Re-queue crashed/failed/interrupted/cancelled runs"),
        Binding("l", "app.go('leaderboard')", "Leaderboard", show=False, id="runs.leaderboard",
                tooltip="Leaderboard of finished runs"),
        Binding("w", "app.go('workers')", "Workers", show=False, id="runs.workers",
                tooltip="What the scheduler is running"),
        Binding("a", "select_all", "Select all", show=False, id="runs.select_all",
                tooltip="Select every shown run (again: none)"),
        Binding("escape", "clear", "Clear filter/selection", show=False, id="runs.clear",
                tooltip="Clear the filter, then the selection"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="topbar", classes="topbar")
        yield Static(id="viewbar", classes="viewbar")
        yield RunsTable(COLUMN_LIST, FOLDABLE, ("id", "alarm", "elapsed", "score", "valid"),
                        id="runs-table")
        yield RunLine(id="run-line", classes="runline")
        yield FilterBar(id="filter")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.table = self.query_one(RunsTable)
        self.table.focus()
        self.app.runs_signal.subscribe(self, self.show_snapshot)
        self.show_snapshot(self.app.snapshot)

    def on_screen_resume(self) -> None:
        self.show_snapshot(self.app.snapshot)

    def show_snapshot(self, snap: Snapshot) -> None:
        if not self.is_shown():
            return
        self.table.set_rows(snap.rows, snap.now)
        self.refresh_bars()

    def refresh_bars(self) -> None:
        snap: Snapshot = self.app.snapshot
        compact = self.size.width < 120
        # the screen's name and the runs directory, on every table screen
        top = Text.assemble(("ibtui ", "bold"), ("runs", "underline"), (" · ", "dim"),
                            (self.app.sub_title, "bold"),
                            f"  {len(snap.rows)} run{'s' * (len(snap.rows) != 1)} ")
        if not self.app.loaded:
            top.append(" reading…", style="dim")
        elif snap.loading:  # a first page: the counts are not final yet
            shown, total = snap.loading
            top.append(f" loading {shown}/{total}…", style="bold yellow")
        elif not snap.rows and not self.app.runs_dir.is_dir():
            top.append(" no runs yet: this directory does not exist yet, the first launch "
                       "creates it (n composes an experiment)", style="yellow")
        elif not snap.rows:
            top.append(" no runs yet: press n to compose an experiment", style="dim")
        if not snap.loading:
            top.append_text(state_counts(snap.rows, compact=compact))
        top.append("  ")
        top.append_text(scheduler_text(snap, compact=compact))
        top.append("  l board · w workers", style="dim")
        set_text(self.query_one("#topbar", Static), top)
        view = view_text(self.table, len(snap.rows))
        bar = self.query_one("#viewbar", Static)
        if set_text(bar, view):
            bar.display = bool(view.plain)
        self.update_run_line()

    def update_run_line(self) -> None:
        cid = self.table.cursor_id
        self.query_one(RunLine).show(self.table.rows_by_id.get(cid) if cid else None,
                                     self.app.snapshot.now)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_run_line()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.app.open_run(event.row_key.value)

    def action_cancel(self) -> None:
        self.app.cancel_runs(self.table.target_ids())

    def action_resume(self) -> None:
        self.app.resume_runs(self.table.target_ids())
