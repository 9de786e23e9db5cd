"""Leaderboard: finished runs by stealth score; selected runs' MI curves overlaid in one plot."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical
from textual.widgets import DataTable, Footer, Static

from ibtui.fmt import rate
from ibtui.tui.keys import back_keys
from ibtui.tui.model import FOLDABLE, LEADERBOARD_COLUMN_LIST, export_text
from ibtui.tui.poller import RunDetail, Snapshot
from ibtui.tui.screens.runs import TableScreen, set_text, table_keys, view_text
from ibtui.tui.widgets.bars import FilterBar, RunLine
from ibtui.tui.widgets.plots import (
    ROLE_STYLE,
    TERM_LABEL,
    Chart,
    compare_color,
    compare_series,
    legend,
    rich_color,
)
from ibtui.tui.widgets.tables import LeaderboardTable, RunTableBase

ROLES = ("backdoor", "clean", "all", "sample")
MAX_COMPARE = 12


class LeaderboardScreen(TableScreen):
    TITLE = "Leaderboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        *back_keys("board", "back", "Runs",
                   "Clear the filter or selection, else back to the runs screen", q="app.go('runs')"),
        *table_keys("board", "Filter rows: regex or text, column:term (dataset:digits arch:vgg)",
                    "Sort by the next column"),
        Binding("v", "group", "Group", id="board.group",
                tooltip="Group rows by attack, dataset, arch or poison rate (enter on a group "
                        "row opens or closes it)"),
        Binding("R", "replicas", "Replicas", show=False, id="board.replicas",
                tooltip="One row per configuration across its seeds: mean ± 95% interval, "
                        "seeds, ties (again: back)"),
        Binding("i", "checks", "Checks", id="board.checks",
                tooltip="The highlighted run's MI sanity checks (the checks column), failed "
                        "first"),
        Binding("plus", "toggle_plot", "Plot", key_display="+", id="board.plot",
                tooltip="Hide or show the comparison plot (the table takes the whole width)"),
        Binding("e", "export", "Export", id="board.export",
                tooltip="Write the shown rows as csv, markdown or json"),
        Binding("t", "term", "Term", show=False, id="board.term",
                tooltip="Compare I(X;T) or I(T;Ŷ)"),
        Binding("b", "role", "Subset", show=False, id="board.role",
                tooltip="Compare the backdoor, clean, all or sample subset of the target"),
        Binding("x", "clear", "Unselect", show=False, id="board.clear",
                tooltip="Clear the filter, then the selection"),
        Binding("a", "select_all", "Select all", show=False, id="board.select_all",
                tooltip="Select every shown run (again: none)"),
        Binding("w", "app.go('workers')", "Workers", show=False, id="board.workers",
                tooltip="What the scheduler is running"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.term = "xt"
        self.role = "backdoor"
        self.compared: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(id="topbar", classes="topbar")
        yield Static(id="viewbar", classes="viewbar")
        with Container(id="board-body"):
            table = LeaderboardTable(LEADERBOARD_COLUMN_LIST, FOLDABLE,
                                     ("id", "ssim", "psnr", "ra", "sanity", "ceiling", "ties", "rank"),
                                     id="board-table")
            table.sort_column, table.sort_reverse = "score", False
            yield table
            with Vertical(id="compare-box"):
                yield Static(id="compare-title", classes="legend")
                yield Chart("compare", id="compare", inside_legend=False)
                yield Static(id="compare-legend", classes="legend wrap")
        yield RunLine(id="run-line", classes="runline")
        yield FilterBar(id="filter")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.table = self.query_one(LeaderboardTable)
        self.table.focus()
        self.app.runs_signal.subscribe(self, self.show_snapshot)
        self.app.detail_signal.subscribe(self, self.show_detail)
        self.show_snapshot(self.app.snapshot)

    def on_unmount(self) -> None:
        for rid in self.compared:
            self.app.unwatch_run(rid)

    def on_screen_resume(self) -> None:
        self.show_snapshot(self.app.snapshot)

    def show_snapshot(self, snap: Snapshot) -> None:
        if not self.is_shown():
            return
        rows = [r for r in snap.rows if r.has_summary]
        self.table.set_rows(rows, snap.now)
        self.refresh_bars()

    def refresh_bars(self) -> None:
        snap: Snapshot = self.app.snapshot
        n = len(self.table.rows_by_id)
        top = Text.assemble(("ibtui ", "bold"), ("leaderboard", "underline"), (" · ", "dim"),
                            (self.app.sub_title, "bold"), f"  {n} finished run{'s' * (n != 1)} with a summary")
        aside = sum(r.valid is False for r in self.table.rows_by_id.values())
        if aside:
            top.append(f" · {aside} set aside ✖ (not learned or duplicate), listed after the "
                       "ranked runs", style="yellow")
        if self.table.replicas:
            configs = self.table.config_count()
            top.append(f" · replicas: {configs} configuration{'s' * (configs != 1)}, mean ± "
                       "95% t-interval over seeds (enter: its runs, R: back)", style="yellow")
        elif self.table.group:
            top.append(f" · grouped by {self.table.group}", style="yellow")
        if n == 0 and self.app.loaded:
            top.append(" · runs appear here when they finish", style="dim")
        set_text(self.query_one("#topbar", Static), top)
        view = view_text(self.table, n)
        bar = self.query_one("#viewbar", Static)
        if set_text(bar, view):
            bar.display = bool(view.plain)
        cid = self.table.cursor_id
        self.query_one(RunLine).show(self.table.rows_by_id.get(cid) if cid else None, snap.now)
        self.update_compare()

    # --- comparison plot ---------------------------------------------------------------
    def compare_ids(self) -> list[str]:
        ids = self.table.target_ids()
        return ids[:MAX_COMPARE]

    def compare_total(self) -> int:
        return len(self.table.target_ids())

    def update_compare(self) -> None:
        ids = self.compare_ids()
        if ids != self.compared:
            for rid in ids:
                if rid not in self.compared:
                    self.app.watch_run(rid)
            for rid in self.compared:
                if rid not in ids:
                    self.app.unwatch_run(rid)
            self.compared = ids
            colors = {rid: rich_color(compare_color(i)) for i, rid in enumerate(ids)}
            if colors != self.table.mark_colors:
                self.table.mark_colors = colors
                self.table.sync()
        self.draw_compare()

    def _label(self, rid: str) -> str:
        r = self.table.rows_by_id.get(rid)
        if r is None:
            return rid
        # the experiment's name first: two experiments of one attack and arch differ by it
        return " ".join(x for x in (r.name, r.attack, r.arch, f"p{rate(r.rate)}",
                                    f"s{r.seed}") if x)

    def draw_compare(self) -> None:
        curves = []
        for rid in self.compared:
            d = self.app.details.get(rid)
            curves.append((self._label(rid), d.mi if d else []))
        n, total = len(curves), self.compare_total()
        key = self.table.cursor_key or ""
        what = ("selected" if self.table.selected else
                f"{self.table.group} {key[6:]}" if key.startswith("group:") else "highlighted")
        runs = f"{n} {what} run{'s' * (n != 1)}"
        rep = self.table._replicas[1].get(key[6:]) if self.table.group == "config" else None
        if rep is not None and key.startswith("group:"):  # the configuration, as its row says
            lab = rep.label
            runs = (f"{n} run{'s' * (n != 1)} of {lab['attack']} {lab['arch']} "
                    f"p{rate(lab['poison_rate'])}" + (f" (#{rep.rank})" if rep.valid else ""))
        if total > n:
            runs = f"first {n} of {total} {what} runs (at most {MAX_COMPARE} are drawn)"
        series = compare_series(curves, self.term, self.role)
        # named as the run screen names them: the scale I(X;T) was measured at, the subset
        name = TERM_LABEL[self.term]
        if self.term == "xt":
            from ibtui.analysis.stealth import xt_scale_of

            scales = {xt_scale_of(d.mi, None) for rid in self.compared
                      if (d := self.app.details.get(rid)) is not None and d.mi}
            if len(scales) == 1 and (scale := scales.pop()) is not None:
                name += f" at {scale:g}×spread"
            elif len(scales) > 1:
                name += " at different scales"
        head = Text.assemble((f"{name} (nats)", "bold"),
                             f" · {ROLE_STYLE[self.role][2]} · ")
        head.append(runs, style="bold yellow" if total > n else "")
        self.query_one("#compare-title", Static).update(head)
        # the title above the plot says it all; plotext would cut a long one
        self.query_one("#compare", Chart).draw(series, (name, TERM_LABEL[self.term]),
                                               empty="select runs with space", ylabel="nats")
        self.query_one("#compare-legend", Static).update(legend(series))

    def show_detail(self, d: RunDetail) -> None:
        if d.run_id in self.compared:
            self.draw_compare()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bars()

    @on(RunTableBase.SelectionChanged)
    def _selection_changed(self, event: RunTableBase.SelectionChanged) -> None:
        self.refresh_bars()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        if key and key.startswith("group:"):
            self.table.toggle_group(key)
            self.refresh_bars()
        elif key:
            self.app.open_run(key)

    # --- actions -----------------------------------------------------------------------
    def action_back(self) -> None:
        if self.table.filter.text or self.table.selected:
            self.action_clear()
        else:
            self.app.action_go("runs")

    def action_group(self) -> None:
        self.table.cycle_group()
        self.refresh_bars()

    def action_replicas(self) -> None:
        self.table.toggle_replicas()
        self.refresh_bars()

    def action_toggle_plot(self) -> None:
        self.toggle_class("-noplot")
        hidden = self.has_class("-noplot")
        self.notify("Plot hidden: + shows it again" if hidden else "Plot shown", timeout=2)

    def action_term(self) -> None:
        self.term = "ty" if self.term == "xt" else "xt"
        self.draw_compare()

    def action_role(self) -> None:
        self.role = ROLES[(ROLES.index(self.role) + 1) % len(ROLES)]
        self.draw_compare()

    def on_filter_bar_closed(self, event: FilterBar.Closed) -> None:
        super().on_filter_bar_closed(event)

    def action_checks(self) -> None:
        from ibtui.tui.screens.dialogs import ChecksScreen

        cid = self.table.cursor_id
        if cid is None:
            self.notify("Highlight a run (not a group row) to see its checks.",
                        severity="warning")
            return
        row = self.table.rows_by_id[cid]
        if not row.sanity and row.sanity_ok is not None:
            # rows keep the checks' verdict only; the checks themselves: this run's summary
            from dataclasses import replace

            from ibtui.tui.model import sanity_lines

            row = replace(row, sanity=sanity_lines(self.app.reader.summary(cid) or {}))
        self.app.push_screen(ChecksScreen(row))

    def action_export(self) -> None:
        from ibtui.tui.screens.dialogs import ExportScreen

        rows = [self.table.rows_by_id[i] for i in self.table.visible_ids]
        if not rows:
            self.notify("No rows to export.", severity="warning")
            return

        def chosen(fmt: str | None) -> None:
            if fmt:
                self._export(rows, fmt, Path(f"leaderboard.{fmt}"))

        self.app.push_screen(ExportScreen(len(rows), "leaderboard"), chosen)

    @work(thread=True, exit_on_error=False, group="actions", description="exporting")
    def _export(self, rows: list, fmt: str, path: Path) -> None:
        text = export_text(rows, fmt, self.app.snapshot.now)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            self.app.call_from_thread(self.app.notify, f"{path}: {e.strerror}",
                                      title="Not exported", severity="error")
            return
        n = len(rows)
        self.app.call_from_thread(self.app.notify,
                                  f"{n} row{'s' * (n != 1)} written to {path.absolute()}",
                                  title="Exported")
