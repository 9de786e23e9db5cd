"""The ibtui Textual app: runs, run detail, compose, leaderboard and workers over one runs dir.

Data flow: a thread worker polls the runs directory every `poll_interval` seconds
(`RunsReader` re-reads only files whose mtime/size changed, and with nothing queued or running
looks at a few files only) and posts `RunsUpdated` / `RunDetailUpdated` messages only when
something changed (or a run is running: its elapsed time ticks); they coalesce in the app's
queue. The app keeps the latest
snapshot and publishes it on signals the screens subscribe to. The UI thread never reads run
files or talks to the scheduler itself: cancel, resume, launch and save run in thread workers
too, and their errors are reported in one place (`on_worker_state_changed`).

Quitting never stops anything: workers run in their own sessions, and the scheduler keeps
dispatching queued runs. Reopening the app on the same directory shows them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from ibtui.errors import IbtuiError
from ibtui.runs import launch
from ibtui.runs.scheduler import ensure_scheduler, request_cancel, scheduler_info
from ibtui.runs.slurm import ExecutorConfig, load_executor
from ibtui.tui.messages import RunDetailUpdated, RunsUpdated
from ibtui.tui.model import RESUMABLE
from ibtui.tui.poller import RunDetail, RunsReader, Snapshot
from ibtui.tui.screens.compose import ComposeScreen
from ibtui.tui.screens.dialogs import ConfirmScreen, HelpScreen
from ibtui.tui.screens.leaderboard import LeaderboardScreen
from ibtui.tui.screens.run import RunScreen
from ibtui.tui.screens.runs import RunsScreen
from ibtui.tui.screens.workers import WorkersScreen

SchedulerStarter = Callable[..., "int | None"]


def display_path(path: Path) -> str:
    """A runs directory as the user would type it: relative to the cwd or to ~ when possible."""
    path = Path(path).absolute()
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        return (prefix + str(rel)) if str(rel) != "." else (prefix or ".")
    return str(path)


class IbtuiApp(App[None]):
    """Keyboard-first manager of one runs directory."""

    CSS_PATH = "app.tcss"
    TITLE = "ibtui"
    MODES: ClassVar[dict[str, Callable[[], Screen]]] = {
        "runs": RunsScreen, "leaderboard": LeaderboardScreen, "workers": WorkersScreen}
    DEFAULT_MODE = "runs"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (40, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?", id="help",
                tooltip="Keys of this screen and how filtering works"),
        Binding("f1", "help", "Help", show=False, id="help.f1",
                tooltip="Keys of this screen (also while a text field has focus)"),
        Binding("q", "back_or_quit", "Quit", id="quit",
                tooltip="Quit the app (runs and the scheduler keep going); on other screens "
                        "q goes back, as escape does"),
    ]

    def __init__(self, runs_dir: Path, poll_interval: float = 1.0, *,
                 clock: Callable[[], float] = time.time,
                 start_scheduler: SchedulerStarter | None = None, jobs: int | None = None,
                 gpus: list[str] | None = None, threads: int | None = None,
                 experiments_file: Path | None = None, executor: str | None = None,
                 executor_file: Path | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.poll_interval = poll_interval
        self.clock = clock
        self.start_scheduler = start_scheduler or ensure_scheduler
        self.jobs = jobs  # None: planned like `ibtui run` (ibtui.runs.resources)
        self.gpus = gpus
        self.threads = threads
        self.experiments_file = Path(experiments_file or "experiments.toml")
        # where Launch sends runs (compose can switch it) and, when chosen on the command line,
        # where resumed runs go (else each goes back to the executor it ran on)
        self.executor_choice = executor
        self.executor_file = Path(executor_file) if executor_file else None
        self.executor_kind = executor or self.executor_settings(None).kind
        self.reader = RunsReader(self.runs_dir, poll_interval=poll_interval)
        self.snapshot = Snapshot(now=clock())
        self.loaded = False
        self.details: dict[str, RunDetail] = {}
        self.watched: dict[str, int] = {}
        self.runs_signal: Signal[Snapshot] = Signal(self, "runs")
        self.detail_signal: Signal[RunDetail] = Signal(self, "detail")
        self._polling = False
        self._poll_again = False
        self._posted: Snapshot | None = None  # the last snapshot the poll thread posted
        self._last_error = ""
        self.sub_title = display_path(self.runs_dir)

    # --- polling -----------------------------------------------------------------------
    def on_mount(self) -> None:
        self.install_screen(ComposeScreen(), name="compose")
        self.poll_now()
        if self.poll_interval > 0:
            self.set_interval(self.poll_interval, self.poll_now)

    def poll_now(self) -> None:
        """Read the runs directory soon (in a thread); never blocks."""
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        self._poll()

    @work(thread=True, exit_on_error=False, group="poll", description="reading runs")
    def _poll(self) -> None:
        try:
            while True:
                self._poll_again = False
                watched = list(self.watched)
                rows, error = self.reader.rows()
                sched = scheduler_info(self.runs_dir)
                last = self._posted
                # idle means idle: nothing new, nothing running (whose elapsed time ticks)
                loading = self.reader.loading()
                if (last is None or self.reader.changed or sched != last.scheduler
                        or error != last.error or loading != last.loading
                        or any(r.state == "running" for r in rows)):
                    snap = Snapshot(rows=rows, scheduler=sched, now=self.clock(), error=error,
                                    loading=loading)
                    self._posted = snap
                    self.post_message(RunsUpdated(snap))
                for rid in watched:
                    detail, changed = self.reader.detail(rid)
                    if changed:
                        self.post_message(RunDetailUpdated(rid, detail))
                if not (self._poll_again or self.reader.more):
                    break
        finally:
            self._polling = False

    def on_runs_updated(self, message: RunsUpdated) -> None:
        snap = message.snapshot
        if snap.error and snap.error != self._last_error:
            self.notify(snap.error, title="Cannot read the runs directory", severity="error")
        self._last_error = snap.error
        self.snapshot = snap
        self.loaded = True
        self.runs_signal.publish(snap)

    def on_run_detail_updated(self, message: RunDetailUpdated) -> None:
        if message.detail is None:
            self.details.pop(message.run_id, None)
        else:
            self.details[message.run_id] = message.detail
            self.detail_signal.publish(message.detail)

    def watch_run(self, run_id: str) -> RunDetail | None:
        """Ask the poller for a run's full files; returns what is known already."""
        self.watched[run_id] = self.watched.get(run_id, 0) + 1
        self.poll_now()
        return self.details.get(run_id)

    def unwatch_run(self, run_id: str) -> None:
        n = self.watched.get(run_id, 0) - 1
        if n <= 0:
            self.watched.pop(run_id, None)
        else:
            self.watched[run_id] = n

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place where background errors are reported."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        what = event.worker.description or event.worker.name
        text = str(error) if isinstance(error, IbtuiError) else f"{type(error).__name__}: {error}"
        if event.worker.group == "poll":
            if text == self._last_error:
                return
            self._last_error = text
        self.notify(text, title=f"Error while {what}", severity="error", timeout=8)

    def notify(self, message: str, *, title: str = "", severity="information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Notifications carry paths, run ids and error text: never read them as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # --- actions every screen shares ---------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_go(self, mode: str) -> None:
        if mode == self.current_mode:
            while len(self.screen_stack) > 1:
                self.pop_screen()
            return
        self.switch_mode(mode)

    def action_new_experiment(self) -> None:
        if not isinstance(self.screen, ComposeScreen):
            self.push_screen("compose")

    def open_run(self, run_id: str) -> None:
        if run_id in self.snapshot.by_id():
            self.push_screen(RunScreen(run_id))

    def action_back_or_quit(self) -> None:
        """`q`: back one screen (as escape does); quit only from the top (runs) screen."""
        if len(self.screen_stack) > 1:
            back = getattr(self.screen, "action_back", None)
            if callable(back):
                back()
            else:
                self.pop_screen()
        elif self.current_mode != "runs":
            self.switch_mode("runs")
        else:
            self.action_quit_app()

    def action_quit_app(self) -> None:
        rows = self.snapshot.rows
        running = sum(r.state == "running" for r in rows)
        queued = sum(r.state == "queued" for r in rows)
        sched = self.snapshot.scheduler
        if not (running or queued or sched):
            self.exit()
            return
        parts = []
        if running:
            parts.append(f"{running} run{'s' * (running != 1)} running")
        if queued:
            parts.append(f"{queued} queued")
        what = " and ".join(parts) or "the scheduler is alive"
        self.push_screen(
            ConfirmScreen(
                "Quit ibtui?",
                f"{what}. Quitting cancels nothing: workers and the scheduler keep running in "
                "their own sessions, and reopening ibtui on this runs directory shows them.",
                yes="Quit", no="Stay"),
            lambda ok: self.exit() if ok else None)

    def _targets(self, ids: Iterable[str], states: tuple[str, ...], only: str) -> list[str]:
        """The runs of `ids` in one of `states`; none: a warning (`only`) says why."""
        ids = list(ids)
        if not ids:
            self.notify("No run highlighted.", severity="warning")
            return []
        rows = self.snapshot.by_id()
        targets = [i for i in ids if i in rows and rows[i].state in states]
        if not targets:
            self.notify(only, severity="warning")
        return targets

    def cancel_runs(self, ids: Iterable[str]) -> None:
        rows = self.snapshot.by_id()
        targets = self._targets(ids, ("running", "queued"),
                                "Only queued or running runs can be cancelled.")
        if not targets:
            return
        names = ", ".join(targets[:3]) + (f" and {len(targets) - 3} more" if len(targets) > 3
                                          else "")
        running = sum(rows[i].state == "running" for i in targets)
        self.push_screen(
            ConfirmScreen(
                f"Cancel {len(targets)} run{'s' * (len(targets) != 1)}?",
                f"{names}.\nQueued runs never start; running workers stop at their next safe "
                f"point ({running} running). Cancelled runs can be resumed later with r.",
                yes="Cancel runs", no="Keep them", danger=True),
            lambda ok: self._cancel(targets) if ok else None)

    @work(thread=True, exit_on_error=False, group="actions", description="cancelling runs")
    def _cancel(self, ids: list[str]) -> None:
        errors = []
        for i in ids:
            try:
                request_cancel(self.runs_dir / i)
            except IbtuiError as e:
                errors.append(str(e))
        self.reader.refresh(ids)
        done = len(ids) - len(errors)
        self.call_from_thread(self._report, f"Cancel requested for {done} run(s).", errors)

    def resume_runs(self, ids: Iterable[str]) -> None:
        targets = self._targets(
            ids, RESUMABLE, "Only crashed, failed, interrupted or cancelled runs can be resumed.")
        if targets:
            self._resume(targets)

    def executor_settings(self, kind: str | None) -> ExecutorConfig:
        """The executor `kind` with the settings of the [executor] table of --executor-file,
        else of the experiments file (the cluster's defaults without one); SpecError when that
        table is wrong. `kind` None: the table's own kind (local without one)."""
        try:
            return load_executor(self.executor_file or self.experiments_file, kind)
        except IbtuiError:
            if kind is None:
                return ExecutorConfig()  # reported when a launch reads it again
            raise

    def scheduler_starter(self) -> Callable[[], int | None]:
        return lambda: self.start_scheduler(self.runs_dir, jobs=self.jobs, gpus=self.gpus,
                                            threads=self.threads)

    @work(thread=True, exit_on_error=False, group="actions", description="resuming runs")
    def _resume(self, ids: list[str]) -> None:
        try:  # through the launch service, as `ibtui resume`: Slurm runs go back to Slurm
            cfg = (None if self.executor_choice is None
                   else self.executor_settings(self.executor_choice))
            done = launch.resume([self.runs_dir / i for i in ids], self.runs_dir, executor=cfg,
                                 start_scheduler=self.scheduler_starter())
        except IbtuiError as e:
            self.reader.refresh(ids)
            self.call_from_thread(self._report, "Not resumed.", [str(e)])
            return
        self.reader.refresh(ids)
        text = done.message("re-queued")
        self.call_from_thread(self._report, text[0].upper() + text[1:] + ".", [])

    def action_start_scheduler(self) -> None:
        self._start_scheduler()

    @work(thread=True, exit_on_error=False, group="actions", description="starting the scheduler")
    def _start_scheduler(self) -> None:
        pid = self.start_scheduler(self.runs_dir, jobs=self.jobs, gpus=self.gpus,
                                   threads=self.threads)
        msg = f"Scheduler started (pid {pid})." if pid else "A scheduler is already running."
        self.call_from_thread(self._report, msg, [])

    def _report(self, message: str, errors: list[str]) -> None:
        if errors:
            self.notify("\n".join(errors), title=message, severity="warning", timeout=8)
        else:
            self.notify(message)
        self.poll_now()

    # --- command palette: every key of the current screen, plus navigation ------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            b = active.binding
            if not b.description or b.action in seen or not active.enabled:
                continue
            if not (b.show or b.id):  # Textual's own widget keys ("Cursor left", "Focus Next")
                continue
            seen.add(b.action)
            keys = b.key_display or self.get_key_display(b)
            # titles and help are read as markup: `[/]` (the filter key) must stay text
            yield SystemCommand(escape(b.description),
                                escape(f"{keys} · {b.tooltip or b.description}"),
                                partial(self.run_action, b.action, active.node))
        extra = getattr(screen, "palette_commands", None)
        if callable(extra):
            for cmd in extra():
                yield SystemCommand(escape(cmd.title), escape(cmd.help), cmd.callback,
                                    cmd.discover)
        for mode, title in (("runs", "Runs"), ("leaderboard", "Leaderboard"),
                            ("workers", "Workers")):
            yield SystemCommand(f"Go to {title}", f"Switch to the {title.lower()} screen",
                                partial(self.action_go, mode))
        yield SystemCommand("New experiment", "Compose experiments and launch or save them",
                            self.action_new_experiment)
        yield SystemCommand("Start scheduler", "Start a detached scheduler if none is running",
                            self.action_start_scheduler)
        for cmd in super().get_system_commands(screen):
            if cmd.title == "Quit":
                yield SystemCommand("Quit", "Quit ibtui (runs keep going)", self.action_quit_app)
            else:
                yield cmd


def run_app(runs_dir: Path, jobs: int | None = None, gpus: list[str] | None = None,
            threads: int | None = None, executor: str | None = None,
            executor_file: Path | None = None) -> None:
    """Open the app on a runs directory (blocking until the user quits)."""
    IbtuiApp(Path(runs_dir), jobs=jobs, gpus=gpus, threads=threads, executor=executor,
             executor_file=executor_file).run()
