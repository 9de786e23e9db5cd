"""Workers: what the scheduler runs now (run, pid, GPU, since) and what waits or needs help."""

from __future__ import annotations

import socket
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ibtui.tui.keys import back_keys
from ibtui.tui.model import RESUMABLE, Cell, fmt_duration, fmt_progress, short_labels, state_text
from ibtui.tui.poller import Snapshot
from ibtui.tui.widgets.bars import RunLine
from ibtui.tui.widgets.tables import RunTableBase, Table, page_caption, paginate, sync_table

WORKER_COLUMNS = [("run", "run"), ("progress", "progress"), ("pid", "pid"), ("gpu", "GPU"),
                  ("since", "since")]
QUEUE_COLUMNS = [("run", "run"), ("state", "state"), ("progress", "progress"), ("why", "why")]


def scheduler_lines(snap: Snapshot) -> Text:
    s = snap.scheduler
    if not s:
        queued = sum(r.state == "queued" for r in snap.rows)
        t = Text("No scheduler is running", style="bold yellow")
        if queued:
            t.append(f": {queued} queued run{'s' * (queued != 1)} wait. Press s to start one.",
                     style="yellow")
        else:
            t.append(". Launching experiments (n) starts one.", style="dim")
        return t
    host = s.get("host")
    where = "this host" if host in (None, socket.gethostname()) else f"host {host}"
    gpus = ",".join(str(g) for g in s.get("gpus") or []) or "none (CPU)"
    beat = s.get("heartbeat")
    age = fmt_duration(snap.now - beat) + " ago" if isinstance(beat, (int, float)) else "–"
    t = Text("Scheduler ", style="bold")
    t.append("● alive", style="bold green")
    t.append(f"  pid {s.get('pid')} on {where} · jobs {s.get('jobs')} · GPUs {gpus} · "
             f"heartbeat {age}")
    return t


class CrossTable(Table):
    """A list of the workers screen: j/k go on to the other list at its ends."""

    def action_cursor_down(self) -> None:
        if not self.row_count or self.cursor_row >= self.row_count - 1:
            self.screen.cross(self, 1)
            return
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if not self.row_count or self.cursor_row <= 0:
            self.screen.cross(self, -1)
            return
        super().action_cursor_up()


class WorkersScreen(Screen):
    TITLE = "Workers"
    BINDINGS: ClassVar[list[BindingType]] = [
        *back_keys("workers", "app.go('runs')", "Runs", "Back to the runs screen"),
        Binding("c", "cancel", "Cancel", id="workers.cancel",
                tooltip="Cancel the highlighted run, after confirmation"),
        Binding("r", "resume", "Resume", id="workers.resume",
                tooltip="Re-queue the highlighted crashed/failed/interrupted run"),
        Binding("s", "app.start_scheduler", "Start scheduler", id="workers.scheduler",
                tooltip="Start a detached scheduler if none is alive"),
        Binding("l", "app.go('leaderboard')", "Board", show=False, id="workers.leaderboard"),
        Binding("n", "app.new_experiment", "New", show=False, id="workers.new",
                tooltip="Compose a new experiment"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]", show=False,
                id="workers.next_page",
                tooltip="The next page of runs waiting or needing attention (long lists are paged)"),
        Binding("left_square_bracket", "page(-1)", "Previous page", key_display="[",
                show=False, id="workers.prev_page", tooltip="The previous page of those runs"),
    ]
    _focus_chosen = False
    queue_page = 0  # the page of the waiting table shown (RunTableBase.PAGE_SIZE rows a page)
    queue_pages = 1

    def compose(self) -> ComposeResult:
        yield Static(id="topbar", classes="topbar")
        yield Static("Running now", classes="section")
        yield CrossTable(id="workers", cursor_type="row", zebra_stripes=True)
        yield Static("Waiting or needing attention", id="queue-title", classes="section")
        yield CrossTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield RunLine(id="run-line", classes="runline")
        yield Footer(compact=True, show_command_palette=False)

    def on_resize(self) -> None:
        self.show_snapshot(self.app.snapshot)

    def on_mount(self) -> None:
        self.query_one("#workers", DataTable).focus()
        self.app.runs_signal.subscribe(self, self.show_snapshot)
        self.show_snapshot(self.app.snapshot)

    def on_screen_resume(self) -> None:
        self.show_snapshot(self.app.snapshot)

    def show_snapshot(self, snap: Snapshot) -> None:
        if not self.is_current:  # shown again on resume
            return
        rows = snap.by_id()
        # the screen's name and the runs directory, as on every screen, then the scheduler
        top = Text.assemble(("ibtui ", "bold"), ("workers", "underline"), (" · ", "dim"),
                            (self.app.sub_title, "bold"), "  ")
        self.query_one("#topbar", Static).update(top + scheduler_lines(snap))
        scheduled = (snap.scheduler or {}).get("workers") or []
        running = {str(w.get("run")) for w in scheduled}
        waiting = [r for r in snap.rows
                   if r.id not in running and (r.state in ("queued", "running", "damaged")
                                               or r.state in RESUMABLE)]
        waiting.sort(key=lambda r: (r.state != "queued", r.order))
        # one page of them (a sweep can leave thousands crashed or queued), as the runs table
        size = RunTableBase.PAGE_SIZE
        page, self.queue_page, self.queue_pages = paginate(waiting, self.queue_page, size)
        title = Text("Waiting or needing attention")
        caption = page_caption(self.queue_page, self.queue_pages, len(waiting), size)
        if caption:
            title.append("  " + caption, style="bold")
        self.query_one("#queue-title", Static).update(title)
        # labels from the runs this screen shows (not every run: ten thousand of them)
        shown = [rows[rid] for rid in running if rid in rows] + page
        labels = short_labels(shown) if self.size.width < 120 else {}
        workers = []
        for w in scheduled:
            rid = str(w.get("run"))
            r = rows.get(rid)
            since = w.get("since")
            age = snap.now - since if isinstance(since, (int, float)) else None
            progress = Text("–")
            if r is not None:
                progress = Text(fmt_progress(r), style="green") if r.state == "running" \
                    else state_text(r.state)
            workers.append((rid, [
                Text(labels.get(rid, rid), style="bold"), progress,
                Cell(str(w.get("pid")), w.get("pid")),
                Text("–" if w.get("gpu") is None else str(w.get("gpu"))),
                Cell(fmt_duration(age), age, justify="right"),
            ]))
        sync_table(self.query_one("#workers", DataTable), WORKER_COLUMNS, workers)
        queue = [(r.id, [Text(labels.get(r.id, r.id), style="bold"), state_text(r.state),
                         Text(fmt_progress(r)),
                         Text(r.note or ("next in line" if r.state == "queued" else ""),
                              style="dim")])
                 for r in page]
        sync_table(self.query_one("#queue", DataTable), QUEUE_COLUMNS, queue)
        if not self._focus_chosen and self.app.loaded:
            # start on the first list with something in it (not an empty "Running now")
            self._focus_chosen = True
            if not workers and queue:
                self.query_one("#queue", DataTable).focus()
        self.update_run_line()

    def cross(self, table: DataTable, step: int) -> None:
        """j past the last row of one list goes on to the next list, k before the first row
        back to the previous one."""
        other = self.query_one("#queue" if table.id == "workers" else "#workers", DataTable)
        if (step > 0) != (table.id == "workers") or not other.row_count:
            return
        other.focus()
        other.move_cursor(row=0 if step > 0 else other.row_count - 1, animate=False)

    def action_page(self, step: int) -> None:
        page = min(max(self.queue_page + step, 0), self.queue_pages - 1)
        if page != self.queue_page:
            self.queue_page = page
            self.show_snapshot(self.app.snapshot)
            queue = self.query_one("#queue", DataTable)
            if queue.row_count:
                queue.move_cursor(row=0, animate=False)

    def focused_run(self) -> str | None:
        table = self.focused if isinstance(self.focused, DataTable) else \
            self.query_one("#workers", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def update_run_line(self) -> None:
        rid = self.focused_run()
        self.query_one(RunLine).show(self.app.snapshot.by_id().get(rid) if rid else None,
                                     self.app.snapshot.now)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.update_run_line()

    def on_descendant_focus(self) -> None:
        self.update_run_line()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.app.open_run(event.row_key.value)

    def action_cancel(self) -> None:
        rid = self.focused_run()
        self.app.cancel_runs([rid] if rid else [])  # none: says no run is highlighted

    def action_resume(self) -> None:
        rid = self.focused_run()
        self.app.resume_runs([rid] if rid else [])
