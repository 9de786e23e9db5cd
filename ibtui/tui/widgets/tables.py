"""Run tables: sortable, filterable, multi-select DataTables keyed by run id.

Both are paged: filtering and sorting happen on the in-memory rows (a row's filter text and
sort key are computed once per version of the row), and only one page (PAGE_SIZE rows; `]`
and `[` turn pages) becomes DataTable rows, so ten thousand runs cost what a page costs.
`RunsTable` is live: each snapshot updates only the cells that changed (`update_cell`), adds
and removes rows by key, and re-sorts with `DataTable.sort` on the cells' raw values.
`LeaderboardTable` changes rarely (when a run finishes) and is rebuilt in its own order, so it
can show group header rows (by attack, dataset, arch, rate, or by configuration across seeds
with the 95% intervals of ibtui.analysis.replicas). Both fold columns whose value is the same in every row into the
header line when the terminal is too narrow for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from ibtui.fmt import num, rate
from ibtui.tui.model import (
    Cell,
    Column,
    Filter,
    RunRow,
    compile_filter,
    plain_fields,
)

MARK = "mark"


def _sort_part(v: Any) -> tuple:
    return (1, "") if v is None else (0, v)


def merged_column(parts: list[Column], by_id: frozenset[str] = frozenset()) -> Column:
    """One `run` column showing the parts that differ between rows: `badnets vgg16 p0.1 s1`.
    Rows in `by_id` (whose parts read the same as another row's: copies of a grid, runs with
    an unreadable spec) show their run id instead."""
    prefix = {"rate": "p", "seed": "s"}

    def render(r: RunRow, now: float) -> Cell:
        texts, keys = [], []
        for c in parts:
            cell = c.render(r, now)
            keys.append(_sort_part(cell.sort_value))
            if cell.plain not in ("–", "unknown"):
                texts.append(prefix.get(c.key, "") + cell.plain)
        text = r.id if r.id in by_id else (" ".join(texts) or r.id)
        return Cell(text, tuple(keys), style="bold")

    return Column("run", "run", render, help=" · ".join(c.label for c in parts))


def fold_columns(columns: list[Column], rows: Iterable[RunRow], now: float, width: int,
                 foldable: tuple[str, ...], droppable: tuple[str, ...] = (),
                 keep: tuple[str | None, ...] = (), min_widths: dict[str, int] | None = None
                 ) -> tuple[list[Column], dict[str, str]]:
    """(columns to show, {folded column: its one value}) for a table `width` cells wide.

    Too wide? 0. with "id" in `droppable`: the run id stands for the foldable columns (it
    spells them out), leaving out other `droppable` columns as needed; if that leaves out a
    fixed column the table would show without the id, the id goes (the line under the table
    shows it). 1. columns in `foldable` whose value is the same in every row fold into the header
    line; 2. the remaining foldable columns merge into one `run` column; 3. columns in
    `droppable` are left out, in that order (the line under the table still shows them), and
    any left out that fits after all is put back. Columns in `keep` (the sort column) are
    never left out. `min_widths`: columns at least this wide (fixed widths)."""
    rows = list(rows)
    if not rows or width <= 0:
        return columns, {}
    min_widths = min_widths or {}

    def need(c: Column) -> int:
        arrow = 2 if c.key in keep else 0  # the sort column's label ends in ` ▲`
        return max(cell_len(c.label) + arrow, min_widths.get(c.key, 0),
                   *(cell_len(c.render(r, now).plain) for r in rows)) + 2

    widths = {c.key: need(c) for c in columns}
    budget = width - 5  # mark column and scrollbar
    shown = list(columns)
    if sum(widths.values()) <= budget:
        return shown, {}

    def fits(cols: list[Column]) -> bool:
        return sum(widths.get(c.key) or need(c) for c in cols) <= budget

    def refill(cols: list[Column]) -> list[Column]:
        """Put back left-out droppable columns that fit after all, in their order."""
        for c in columns:
            if c.key in droppable and c.key != "id" and c not in cols \
                    and c.key not in foldable and fits([*cols, c]):
                cols = [x for x in columns if x in cols or x is c] + \
                    [x for x in cols if x not in columns]
        return cols

    kept_id: list[Column] | None = None
    if "id" in droppable:
        # the id spells out name, attack, dataset, arch, rate and seed: it can stand for them
        by_id = [c for c in shown if c.key not in foldable]
        for key in (None, *droppable):
            if key in keep:
                continue
            by_id = [c for c in by_id if c.key != key or key == "id"]
            if fits(by_id):
                kept_id = refill(by_id)
                break
        shown = [c for c in shown if c.key != "id"]
        if kept_id is None and fits(shown):
            return shown, {}
    folded: dict[str, str] = {}
    live = [r for r in rows if r.state != "damaged"]  # a damaged row's blanks do not count
    prefix = {"rate": "p", "seed": "s"}
    if len(live) >= 2:
        for key in foldable:
            values = {c.render(r, now).plain for c in shown if c.key == key for r in live} - {"–"}
            left = [c for c in shown if c.key in foldable and c.key != key]
            if key in widths and len(values) == 1 and left:  # one identity column stays
                folded[key] = prefix.get(key, "") + values.pop()
                shown = [c for c in shown if c.key != key]
    if not fits(shown):
        parts = [c for c in shown if c.key in foldable]
        if len(parts) > 1:
            texts: dict[str, list[str]] = {}
            for r in rows:
                texts.setdefault(merged_column(parts).render(r, now).plain, []).append(r.id)
            dupes = frozenset(i for ids in texts.values() if len(ids) > 1 for i in ids)
            run = merged_column(parts, dupes)
            first = shown.index(parts[0])
            shown = [c for c in shown if c.key not in foldable]
            shown.insert(first, run)
    for key in droppable:
        if key == "id" or key in keep:
            continue
        if fits(shown):
            break
        shown = [c for c in shown if c.key != key]
    shown = refill(shown)
    if kept_id is not None:
        # the id stays unless keeping it leaves out a fixed column this layout shows
        fixed = {c.key for c in shown if c.fixed}
        if fixed <= {c.key for c in kept_id}:
            return kept_id, {}
    return shown, folded


class Table(DataTable):
    """A DataTable whose cells re-render when a column widens.

    DataTable measures new cells when idle, but its cell render cache is not keyed by the
    column width, so a cell drawn before that measurement stays truncated. Bumping the
    update count when any width changed invalidates those cached renders."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g,home", "scroll_top", "First row", show=False),
        Binding("G,end", "scroll_bottom", "Last row", show=False),
    ]
    _widths: tuple = ()

    def on_idle(self) -> None:
        widths = tuple(c.content_width for c in self.columns.values())
        if widths != self._widths:
            self._widths = widths
            self._update_count += 1
            self.refresh()


def paginate(rows: list, page: int, size: int) -> tuple[list, int, int]:
    """(the rows of `page`, that page clamped to the last one, how many pages) for `size`
    rows a page."""
    pages = max(1, -(-len(rows) // size))
    page = min(page, pages - 1)
    return rows[page * size:(page + 1) * size], page, pages


def page_caption(page: int, pages: int, n: int, size: int) -> str:
    """`rows 251–500 of 10000 · page 2/40 · [ ] turn pages`, or '' when there is one page."""
    if pages <= 1:
        return ""
    lo = page * size
    return f"rows {lo + 1}–{min(lo + size, n)} of {n} · page {page + 1}/{pages} · [ ] turn pages"


def _turning(move: str, turn: Callable[[Any], bool]) -> Callable[[Any], None]:
    """Table's action `move`, unless `turn` turned the page (the cursor was at its edge)."""

    def action(self) -> None:
        if not turn(self):
            getattr(Table, move)(self)

    return action


class RunTableBase(Table):
    """Shared state: rows, filter, sort, selection, folded columns."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", id="table.open",
                tooltip="Open the highlighted run"),
        Binding("space", "toggle_select", "Mark", id="table.select",
                tooltip="Select or unselect the run (on a group row: the whole group)"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]", show=False,
                id="table.next_page", tooltip="The next page of rows (long lists are paged)"),
        Binding("left_square_bracket", "page(-1)", "Previous page", key_display="[",
                show=False, id="table.prev_page", tooltip="The previous page of rows"),
    ]
    PAGE_SIZE = 250

    class SelectionChanged(Message):
        def __init__(self, table: RunTableBase) -> None:
            super().__init__()
            self.table = table
            self.selected = set(table.selected)

        @property
        def control(self) -> RunTableBase:
            return self.table

    def __init__(self, columns: list[Column], foldable: tuple[str, ...] = (),
                 droppable: tuple[str, ...] = (), **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.all_columns = columns
        self.foldable = foldable
        self.droppable = droppable
        self.shown: list[Column] = list(columns)
        self.min_widths: dict[str, int] = {}  # columns that never get narrower (see RunsTable)
        self.rows_by_id: dict[str, RunRow] = {}
        self.now = 0.0
        self.filter: Filter = compile_filter("")
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.selected: set[str] = set()
        self.folded: dict[str, str] = {}
        self.visible_ids: list[str] = []  # every row the filter lets through, in order
        self.mark_colors: dict[str, str] = {}  # run id -> colour of its selection mark
        self.page = 0
        self.pages = 1
        self._fields: dict[str, tuple[RunRow, dict[str, str]]] = {}  # filter text per row
        self._keys: dict[str, tuple[RunRow, tuple]] = {}  # sort key per row
        self._keyed_by: tuple = ()

    # --- what the screens call ---------------------------------------------------------
    def set_rows(self, rows: Iterable[RunRow], now: float) -> None:
        self.rows_by_id = {r.id: r for r in rows}
        self.now = now
        self.selected &= set(self.rows_by_id)
        self.sync()

    def set_filter(self, text: str) -> Filter:
        self.filter = compile_filter(text, [c.key for c in self.all_columns]
                                     + ["id", "note", "tag"])
        self.page = 0
        self.sync()
        return self.filter

    # --- paging is invisible: moving past a page's edge turns the page ------------------
    def _turn(self, page: int, row: str) -> bool:
        """Show `page` with the cursor on its first or last row; False when there is none."""
        if not 0 <= page < self.pages or page == self.page:
            return False
        self.page = page
        self.sync()
        if self.row_count:
            self.move_cursor(row=0 if row == "first" else self.row_count - 1, animate=False)
        self.post_message(self.SelectionChanged(self))
        return True

    def _turn_down(self) -> bool:
        return bool(self.row_count) and self.cursor_row >= self.row_count - 1 \
            and self._turn(self.page + 1, "first")

    def _turn_up(self) -> bool:
        return self.cursor_row <= 0 and self._turn(self.page - 1, "last")

    def _turn_last(self) -> bool:  # G/End: the last run of all pages
        return self._turn(self.pages - 1, "last")

    def _turn_first(self) -> bool:  # g/Home: the first run of all pages
        return self._turn(0, "first")

    action_cursor_down = _turning("action_cursor_down", _turn_down)
    action_page_down = _turning("action_page_down", _turn_down)
    action_cursor_up = _turning("action_cursor_up", _turn_up)
    action_page_up = _turning("action_page_up", _turn_up)
    action_scroll_bottom = _turning("action_scroll_bottom", _turn_last)
    action_scroll_top = _turning("action_scroll_top", _turn_first)

    def action_page(self, step: int) -> None:
        page = min(max(self.page + step, 0), self.pages - 1)
        if page != self.page:
            self.page = page
            self.sync()
            if self.row_count:
                self.move_cursor(row=0, animate=False)
            self.post_message(self.SelectionChanged(self))

    def sort_by(self, column: str | None, reverse: bool | None = None) -> None:
        if reverse is None:
            reverse = (not self.sort_reverse) if column == self.sort_column else \
                (self._column(column).numeric if column else False)
        self.sort_column, self.sort_reverse = column, reverse
        self.page = 0
        self.sync()

    def cycle_sort(self) -> None:
        keys = [c.key for c in self.shown_columns()]
        if self.sort_column not in keys:
            nxt = keys[0]
        else:
            i = keys.index(self.sort_column) + 1
            nxt = keys[i] if i < len(keys) else None
        self.sort_by(nxt, self._column(nxt).numeric if nxt else False)

    @property
    def cursor_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return key if key in self.rows_by_id else None

    def target_ids(self) -> list[str]:
        """The selected runs, or else the highlighted one."""
        if self.selected:
            return [i for i in self.rows_by_id if i in self.selected]
        cid = self.cursor_id
        return [cid] if cid else []

    def select_ids(self, ids: Iterable[str], on: bool = True) -> None:
        for i in ids:
            if i in self.rows_by_id:
                (self.selected.add if on else self.selected.discard)(i)
        self.sync()
        self.post_message(self.SelectionChanged(self))

    def clear_selection(self) -> None:
        self.selected.clear()
        self.sync()
        self.post_message(self.SelectionChanged(self))

    def action_toggle_select(self) -> None:
        cid = self.cursor_id
        if cid is None:
            return
        self.select_ids([cid], on=cid not in self.selected)
        self.action_cursor_down()

    # --- internals ---------------------------------------------------------------------
    def _column(self, key: str | None) -> Column:
        for c in (*self.shown, *self.all_columns):
            if c.key == key:
                return c
        raise KeyError(key)

    def row_sort_key(self, row: RunRow) -> tuple:
        """Missing values last in either direction; ties keep creation order."""
        if self.sort_column is None:
            return (row.order,)
        try:
            v = self._column(self.sort_column).render(row, self.now).sort_value
        except KeyError:
            return (row.order,)
        if self.sort_reverse:
            return (v is not None, 0 if v is None else v, -row.order)
        return (v is None, 0 if v is None else v, row.order)

    def hidden_columns(self) -> list[str]:
        """Labels of the columns left out for want of room (not those folded or merged)."""
        shown = {c.key for c in self.shown}
        merged = "run" in shown or "id" in shown  # either spells out the foldable columns
        return [c.label for c in self.all_columns if c.key not in shown
                and c.key not in self.folded and not (merged and c.key in self.foldable)
                and not (c.key == "id" and merged)]

    def shown_columns(self, rows: Iterable[RunRow] | None = None,
                      taken: int = 0) -> list[Column]:
        """Columns that fit, measured on `rows` (the page shown; default: every row);
        `taken`: cells the first column needs beyond its own (group rows' labels)."""
        width = (self.size.width or self.app.size.width) - taken
        rows = self.rows_by_id.values() if rows is None else rows
        self.shown, self.folded = fold_columns(self.all_columns, rows, self.now, width,
                                               self.foldable, self.droppable,
                                               keep=(self.sort_column,),
                                               min_widths=self.min_widths)
        return self.shown

    def _plain(self, row: RunRow) -> dict[str, str]:
        hit = self._fields.get(row.id)
        if hit is not None and hit[0] is row:
            return hit[1]
        fields = plain_fields(row, self.now)
        fields["tag"] = " ".join(row.tags)
        if row.state == "running":  # its elapsed time changes: not kept
            self._fields.pop(row.id, None)
        else:
            self._fields[row.id] = (row, fields)
        return fields

    def matching(self) -> list[RunRow]:
        if not self.filter.terms:
            return list(self.rows_by_id.values())
        return [r for r in self.rows_by_id.values() if self.filter(self._plain(r))]

    def _key(self, row: RunRow) -> tuple:
        by = (self.sort_column, self.sort_reverse)
        if by != self._keyed_by:
            self._keys.clear()
            self._keyed_by = by
        hit = self._keys.get(row.id)
        if hit is not None and hit[0] is row:
            return hit[1]
        key = self.row_sort_key(row)
        if self.sort_column != "elapsed":  # the clock moves elapsed times
            self._keys[row.id] = (row, key)
        return key

    def ordered_matching(self) -> list[RunRow]:
        """Every row the filter lets through, sorted (missing values last either way)."""
        rows = self.matching()
        if self.sort_column is None:
            return rows  # rows_by_id keeps creation order
        return sorted(rows, key=self._key,
                      reverse=self.sort_reverse and self.sort_column is not None)

    def page_of(self, rows: list) -> list:
        """The current page of `rows` (clamped to the last page)."""
        shown, self.page, self.pages = paginate(rows, self.page, self.PAGE_SIZE)
        return shown

    def page_text(self) -> str:
        """`rows 251–500 of 10000 · [ ] pages`, or '' when everything fits on one page."""
        return page_caption(self.page, self.pages, len(self.visible_ids), self.PAGE_SIZE)

    def _label(self, c: Column) -> Text:
        label = Text(c.label, justify="right" if c.numeric else "left")
        if c.key == self.sort_column:
            label.append(" ▼" if self.sort_reverse else " ▲", style="bold")
        return label

    def _mark(self, row: RunRow) -> Cell:
        cell = Cell("●" if row.id in self.selected else " ", row.order,
                    style=f"bold {self.mark_colors.get(row.id, 'yellow')}")
        cell.run_id = row.id
        return cell

    def on_resize(self) -> None:
        self.sync()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        if key and key != MARK:
            self.sort_by(key)

    def sync(self) -> None:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _restore_cursor(self, key: str | None) -> None:
        if key is None or not self.row_count:
            return
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)


def _sig(cell: Text) -> tuple:
    return (cell.plain, str(cell.style), tuple((s.start, s.end, str(s.style)) for s in cell.spans))


class RunsTable(RunTableBase):
    """The live runs table of the home screen."""

    # columns of a steady width: (least, most) cells
    STEADY: ClassVar[dict[str, tuple[int, int]]] = {"state": (13, 16), "progress": (15, 20)}

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._layout: tuple = ()
        self._rendered: dict[str, list[tuple]] = {}
        self._sort_keys: dict[str, tuple] = {}

    def sync(self) -> None:
        if not self.is_mounted:
            return
        cursor = self.cursor_id
        ordered = self.ordered_matching()
        self.visible_ids = [r.id for r in ordered]
        wanted = self.page_of(ordered)
        # state and progress text changes width while runs train: their columns get a fixed
        # width that only ever grows, so the columns right of them never jump
        # (up to a cap: a rare long cell, a worker gone quiet, sizes its column while shown)
        free: set[str] = set()
        for key, (least, cap) in self.STEADY.items():
            col = self._column(key)
            lengths = [cell_len(col.render(r, self.now).plain) for r in wanted]
            if any(n > cap for n in lengths):
                free.add(key)
            self.min_widths[key] = max([self.min_widths.get(key, least), cell_len(col.label),
                                        *(n for n in lengths if n <= cap)])
        shown = self.shown_columns(wanted)
        layout = (tuple(c.key for c in shown), self.sort_column, self.sort_reverse,
                  tuple(self.min_widths.values()), tuple(sorted(free)))
        if layout != self._layout:
            self.clear(columns=True)
            self._rendered.clear()
            self._sort_keys.clear()
            self.add_column(Text(" "), key=MARK, width=1)
            for c in shown:
                self.add_column(self._label(c), key=c.key,
                                width=None if c.key in free else self.min_widths.get(c.key))
            self._layout = layout
        keys = [MARK, *(c.key for c in shown)]
        wanted_ids = {r.id for r in wanted}
        structural = False
        for rid in list(self._rendered):
            if rid not in wanted_ids:
                self.remove_row(rid)
                del self._rendered[rid]
                self._sort_keys.pop(rid, None)
                structural = True
        resort = structural
        for row in wanted:
            cells = [self._mark(row), *(c.render(row, self.now) for c in shown)]
            sigs = [_sig(c) for c in cells]
            old = self._rendered.get(row.id)
            if old is None:
                self.add_row(*cells, key=row.id)
                resort = True
            elif old != sigs:
                for key, cell, new, prev in zip(keys, cells, sigs, old, strict=True):
                    if new != prev:
                        self.update_cell(row.id, key, cell, update_width=True)
            self._rendered[row.id] = sigs
            sort_key = self._key(row)
            if self._sort_keys.get(row.id) != sort_key:
                self._sort_keys[row.id] = sort_key
                resort = True
        if resort:
            self._sort()
            self._restore_cursor(cursor)

    def _sort(self) -> None:
        rows = self.rows_by_id
        self.sort(MARK, key=lambda mark: self._key(rows[mark.run_id]),
                  reverse=self.sort_reverse and self.sort_column is not None)


class LeaderboardTable(RunTableBase):
    """Finished runs, optionally grouped under header rows (`group:<value>` keys). Grouped by
    `config`, a group is one configuration across its seeds: its header shows each metric's
    mean ± 95% interval, its rank and the ranks it cannot be told apart from
    (ibtui.analysis.replicas.group_replicas), and groups are ordered by rank. The replicas view
    (`toggle_replicas`) is that grouping with every group closed: one row per configuration
    (enter opens one to list its runs)."""

    GROUPS = (None, "attack", "dataset", "arch", "rate", "config")
    INTERVAL_COLUMNS = {"score": "score", "d_xt": "d_xt", "d_ty": "d_ty", "acc": "clean_acc",
                        "asr": "asr"}

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.group: str | None = None
        self.collapsed: set[str] = set()  # group row keys whose members are hidden
        self._built: tuple = ()
        self._replicas: tuple[tuple, dict] = ((), {})
        self.replicas = False  # one row per configuration; `collapsed` then holds open groups
        self._group_before: str | None = None

    def cycle_group(self) -> None:
        if self.replicas:  # leave the replicas view for the grouping it replaced, then cycle
            self.replicas, self.group = False, self._group_before
        i = self.GROUPS.index(self.group)
        self.group = self.GROUPS[(i + 1) % len(self.GROUPS)]
        self.collapsed.clear()
        self.page = 0
        self.sync()

    def toggle_replicas(self) -> None:
        """One row per configuration across its seeds (mean ± 95% interval, seeds, ties), or
        back to the rows as they were."""
        if self.replicas:
            self.replicas, self.group = False, self._group_before
        else:
            self.replicas, self._group_before, self.group = True, self.group, "config"
        self.collapsed.clear()
        self.page = 0
        self.sync()

    def row_sort_key(self, row: RunRow) -> tuple:
        """Every valid run before every run set aside or not judged, in either direction."""
        valid = row.valid is True
        return ((valid if self.sort_reverse and self.sort_column is not None else not valid),
                *super().row_sort_key(row))

    def config_count(self) -> int:
        """Configurations in the last grouping by configuration (the rows shown)."""
        return len(self._replicas[1]) if self.group == "config" else 0

    def is_closed(self, key: str) -> bool:
        """A group row's members are hidden (replicas view: unless opened)."""
        return (key in self.collapsed) != self.replicas

    @property
    def cursor_key(self) -> str | None:
        """The highlighted row's key: a run id or `group:<value>`."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    def target_ids(self) -> list[str]:
        """The selected runs, else the highlighted run, else the highlighted group's runs."""
        key = self.cursor_key
        if not self.selected and key and key.startswith("group:"):
            return self.group_members(key)
        return super().target_ids()

    def toggle_group(self, key: str) -> None:
        """Open or close a group row (enter on it)."""
        self.collapsed.symmetric_difference_update({key})
        self.sync()

    def group_value(self, row: RunRow) -> str:
        if self.group == "rate":
            return rate(row.rate)
        if self.group == "config":
            return row.config or row.id
        return str(getattr(row, self.group or "id") or "–")

    def replica_groups(self, rows: list[RunRow]) -> dict:
        """{configuration key: Group} of these rows (computed again only when they change)."""
        from ibtui.analysis.replicas import METRICS, group_replicas

        ident = tuple(map(id, rows))
        if ident == self._replicas[0]:
            return self._replicas[1]
        records = [{"run": r.id, "spec": {"config": r.config or r.id, "name": r.name,
                                          "attack": r.attack, "dataset": r.dataset,
                                          "arch": r.arch, "poison_rate": r.rate,
                                          "seed": r.seed},
                    "valid": r.valid, "why": r.why,
                    **dict(zip(METRICS, (r.score, r.d_xt, r.d_ty, r.acc, r.asr), strict=True))}
                   for r in rows]
        by_id = {r.id: r for r in rows}
        groups = {}
        for g in group_replicas(records):
            groups[by_id[g.runs[0]].config or g.runs[0]] = g
        self._replicas = (ident, groups)
        return groups

    def ordered(self) -> list[RunRow]:
        rows = self.ordered_matching()
        if self.group == "config":
            groups = self.replica_groups(rows)
            rank = {k: g.rank for k, g in groups.items()}
            rows.sort(key=lambda r: rank.get(self.group_value(r), 0))
        elif self.group is not None:
            firsts: dict[str, int] = {}
            for i, r in enumerate(rows):
                firsts.setdefault(self.group_value(r), i)
            rows.sort(key=lambda r: firsts[self.group_value(r)])
        return rows

    def group_members(self, key: str) -> list[str]:
        value = key.removeprefix("group:")
        return [r.id for r in self.matching() if self.group_value(r) == value]

    def action_toggle_select(self) -> None:
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return
        if key and key.startswith("group:"):
            members = self.group_members(key)
            on = not all(m in self.selected for m in members)
            self.select_ids(members, on=on)
            self.action_cursor_down()
            return
        super().action_toggle_select()

    def _group_row(self, value: str, members: list[RunRow], shown: list[Column],
                   closed: bool) -> list[Text]:
        cells: list[Text] = [Text("▸" if closed else "▾", style="bold")]
        rep = self._replicas[1].get(value) if self.group == "config" else None
        for i, c in enumerate(shown):
            if i == 0:  # the group's name and size, whatever the first column is
                n = len(members)
                if rep is not None:
                    lab = rep.label
                    what = (f"{f'#{rep.rank}' if rep.valid else '✖'} {lab['name']} "
                            f"{lab['attack']} {lab['dataset']} "
                            f"{lab['arch']} p{rate(lab['poison_rate'])} · {len(rep.seeds)} "
                            f"seed{'s' * (len(rep.seeds) != 1)}")
                    if rep.duplicates:
                        k = len(rep.duplicates)
                        what += f" · {k} duplicate{'s' * (k != 1)} counted once"
                    if rep.set_aside:
                        what += f" · {len(rep.set_aside)} set aside"
                    if rep.ties and rep.valid:
                        what += f" · ties #{', #'.join(map(str, rep.ties[:4]))}"
                        what += "…" if len(rep.ties) > 4 else ""
                    cells.append(Text(what, style="bold underline"))
                else:
                    cells.append(Text(f"{self.group} {value} · {n} run{'s' * (n != 1)}",
                                      style="bold underline"))
            elif rep is not None and c.key in self.INTERVAL_COLUMNS:
                iv = rep.metrics.get(self.INTERVAL_COLUMNS[c.key])
                cells.append(Text("–" if iv is None else iv.text(), style="italic",
                                  justify="right"))
            elif c.numeric and c.key not in ("seed", "rate") and rep is None:
                vals = [c.render(r, self.now).sort_value for r in members]
                vals = [v for v in vals if v is not None]
                mean = sum(vals) / len(vals) if vals else None
                cells.append(Text(num(mean), style="italic dim", justify="right"))
            else:
                cells.append(Text(""))
        return cells

    def sync(self) -> None:
        if not self.is_mounted:
            return
        try:
            cursor = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value \
                if self.row_count else None
        except CellDoesNotExist:
            cursor = None
        rows = self.ordered()
        self.visible_ids = [r.id for r in rows]  # closed groups' runs still count as shown
        # what the table holds, without rendering: ("group", value, members, closed) or a run
        items: list[tuple] = []
        if self.group is None:
            items = [("run", r) for r in rows]
        else:
            groups: dict[str, list[RunRow]] = {}
            for r in rows:
                groups.setdefault(self.group_value(r), []).append(r)
            for value, members in groups.items():
                closed = self.is_closed(f"group:{value}")
                items.append(("group", value, members, closed))
                if not closed:
                    items += [("run", r) for r in members]
        page = self.page_of(items)
        # a configuration's row shows intervals: its columns are measured on them too
        reps = self._replicas[1].values() if self.group == "config" else ()
        self.min_widths = {k: max((cell_len(iv.text()) for g in reps
                                   if (iv := g.metrics.get(m)) is not None), default=0)
                           for k, m in self.INTERVAL_COLUMNS.items()}
        shown = self.shown_columns([it[1] for it in page if it[0] == "run"] or rows[:1])
        if any(it[0] == "group" for it in page) and shown:
            # a group row's label sits in the first column: the others share what is left
            label = max(cell_len(self._group_row(it[1], it[2], shown, it[3])[1].plain)
                        for it in page if it[0] == "group")
            first = max([cell_len(shown[0].label) + 2,
                         *(cell_len(shown[0].render(it[1], self.now).plain)
                           for it in page if it[0] == "run")])
            if label > first:
                shown = self.shown_columns(
                    [it[1] for it in page if it[0] == "run"] or rows[:1], label - first)
        body = []
        for it in page:
            if it[0] == "run":
                r = it[1]
                body.append((r.id, [self._mark(r), *(c.render(r, self.now) for c in shown)]))
            else:
                _, value, members, closed = it
                body.append((f"group:{value}", self._group_row(value, members, shown, closed)))
        built = (tuple(c.key for c in shown), self.sort_column, self.sort_reverse,
                 tuple((k, tuple(_sig(x) for x in cells)) for k, cells in body))
        if built == self._built:
            return
        self._built = built
        self.clear(columns=True)
        self.add_column(Text(" "), key=MARK, width=1)
        for c in shown:
            self.add_column(self._label(c), key=c.key)
        for key, cells in body:
            self.add_row(*cells, key=key)
        self._restore_cursor(cursor)


def sync_table(table: DataTable, columns: list[tuple[str, str]],
               rows: list[tuple[str, list[Text]]]) -> None:
    """Show `rows` (key, cells) in a small table: update cells in place when the keys and their
    order are unchanged, otherwise rebuild; the cursor stays on its row key."""
    col_keys = [k for k, _ in columns]
    if [c.value for c in table.columns] != col_keys:
        table.clear(columns=True)
        for key, label in columns:
            table.add_column(Text(label), key=key)
    current = [str(r.key.value) for r in table.ordered_rows]
    if current == [k for k, _ in rows]:
        for key, cells in rows:
            old = table.get_row(key)
            for ck, new, prev in zip(col_keys, cells, old, strict=False):
                if _sig(new) != _sig(prev if isinstance(prev, Text) else Text(str(prev))):
                    table.update_cell(key, ck, new, update_width=True)
        return
    cursor = current[table.cursor_row] if current and table.cursor_row < len(current) else None
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if cursor is not None and cursor in [k for k, _ in rows]:
        table.move_cursor(row=table.get_row_index(cursor), animate=False)
