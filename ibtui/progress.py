"""Following runs from a terminal: the live bars of `ibtui run` and `ibtui resume`.

Who runs the queue:
  - foreground (default): this process is the scheduler while it holds the runs dir's lock. If
    another scheduler holds it, this process watches and retries the lock every tick, so runs
    it queued are never left without a scheduler when the other one finishes.
  - detached (`--detach`): a scheduler in its own session runs the queue; this process only
    follows, and Ctrl-C or a dropped connection stops the following, never the runs.
  - Slurm: the cluster runs the job array; this process follows, and asks sacct (once per
    interval, for all runs) which jobs ended badly.
Signals in the foreground: Ctrl-C/SIGTERM stop the workers at a safe point (twice: at once) and
mark never-started runs `interrupted`. A lost terminal (SIGHUP when the SSH connection drops,
or only an output error: EIO from a closed pseudo-terminal, EPIPE from a closed pipe such as
`| tee`, whichever comes first) hands the queue to a detached scheduler instead: running
workers go on (own sessions), queued runs still get run. Output errors never stop this process.

Detached: the follower starts a background scheduler again when the one it follows is gone and
runs are left, but never while a worker of the runs directory still lives, and never after a
second death for the same reason (the last line of `.scheduler.log`, e.g. a full disk): then it
says why and stops following.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ibtui.fmt import num
from ibtui.runs import claim
from ibtui.runs.resources import Resources
from ibtui.runs.scheduler import (
    Scheduler,
    ensure_scheduler,
    scheduler_alive,
    waiting_for_space,
)
from ibtui.runs.slurm import reconcile
from ibtui.runs.store import FINISHED, list_runs, load_run

ENDED = (*FINISHED, "crashed", "interrupted")
SACCT_EVERY_S = 5.0


def _describe(p: Path) -> tuple[float, str, str]:
    """(progress 0-1, one line about the run, its state: `gone` when its directory is)."""
    if not p.is_dir():
        return 0.0, "gone: its run directory was deleted", "gone"
    r = load_run(p)
    st, state = r.status, r.state
    epochs = st.get("epochs") or r.spec.get("epochs") or 1
    epoch = st.get("epoch") or 0
    phase = st.get("phase", state)
    if state == "running":
        done = max(epoch - 1, 0) + (st.get("progress") or 0) if phase == "training" else epoch
        return (min(1.0, done / epochs),
                f"{phase} e{epoch}/{epochs} acc {num(st.get('test_acc'))} asr {num(st.get('asr'))}",
                state)
    if state == "done":
        s = r.summary or {}
        return 1.0, (f"done  acc {num(s.get('clean_acc'))} asr {num(s.get('asr'))} "
                     f"score {num(s.get('score'))}"), state
    return 0.0, state + (f": {st.get('error')}" if st.get("error") else ""), state


MANY_BARS = 12  # more runs than this: one overall bar, plus a bar per running run


class Terminal:
    """A console's file that never raises on output: when the terminal is gone (EIO from a
    closed pseudo-terminal, EPIPE from a closed pipe, ...), `lost` says why and every later
    write is dropped. Rich's refresh thread writes through it too."""

    def __init__(self, file):
        self.file = file
        self.lost: str | None = None

    def _guard(self, call, *args):
        if self.lost is not None:
            return None
        try:
            return call(*args)
        except (BlockingIOError, InterruptedError):  # a busy terminal: this frame is dropped
            pass
        except OSError as e:
            self.lost = errno.errorcode.get(e.errno or 0, "") or str(e)
        except ValueError:  # written after close
            self.lost = "closed"
        return None

    def write(self, text: str) -> int:
        self._guard(self.file.write, text)
        return len(text)

    def flush(self) -> None:
        self._guard(self.file.flush)

    def isatty(self) -> bool:
        try:
            return self.file.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self.file.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.file, "encoding", "utf-8")


class Restarts:
    """When a follower may start the background scheduler again (see the module's doc)."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)
        self.log = self.runs_dir / ".scheduler.log"
        self.offset = self._size()
        self.deaths: list[str] = []
        self.gave_up: str | None = None

    def _size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def _last_words(self) -> str:
        """The last line the scheduler wrote since it was started (its death, mostly)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                lines = f.read()[-4000:].decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        lines = [x.strip() for x in lines if x.strip()]
        return lines[-1] if lines else ""

    def workers_alive(self) -> bool:
        """A worker of this runs directory still lives (running, or claimed while starting)."""
        for r in list_runs(self.runs_dir):
            if r.state == "running" or (r.state == "queued" and claim.claimed(r.path)):
                return True
        return False

    def start(self, res: Resources) -> int | None:
        """Start a scheduler if one may be started now; its pid, or None."""
        if self.gave_up is not None or scheduler_alive(self.runs_dir):
            return None
        why = self._last_words()
        if self.workers_alive():
            return None  # the dead scheduler's workers go on; the queue waits for them
        if why in self.deaths:  # "" too: a scheduler killed twice without a word
            self.gave_up = why
            return None
        self.deaths.append(why)
        self.offset = self._size()
        return ensure_scheduler(self.runs_dir, res.jobs, res.gpus, res.threads)


def _silence_terminal() -> None:
    """After a hangup the terminal is gone: writing to it would kill this process (EIO)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)


def follow(runs_dir: Path, paths: list[Path], res: Resources, console: Console,
           detach: bool = False) -> None:
    """Show a bar per run until every one of `paths` has ended (or the user stops following)."""
    runs_dir = Path(runs_dir)
    progress = Progress(TextColumn("{task.fields[name]}", style="bold"), BarColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                        refresh_per_second=4)
    many = len(paths) > MANY_BARS
    overall = (progress.add_task("", total=float(len(paths)), name=f"{len(paths)} runs",
                                 info="") if many else None)
    tasks = {} if many else {p.name: progress.add_task("", total=1.0, name=escape(p.name),
                                                         info="queued") for p in paths}
    final: dict[str, tuple[float, str, str]] = {}  # runs that ended: never read again
    sched = Scheduler(runs_dir, res, only=None)
    signals = {"int": 0, "hup": False}
    kinds = {load_run(p).status.get("executor", "local") for p in paths}
    slurm, local = "slurm" in kinds, kinds != {"slurm"}
    last_asked = 0.0
    term = Terminal(console.file)
    console.file = term  # a lost terminal is noticed here, never raised
    restarts = Restarts(runs_dir)

    def hung_up() -> bool:
        return signals["hup"] or term.lost is not None

    def described() -> list[tuple[Path, float, str, str]]:
        out = []
        for p in paths:
            d = final.get(p.name) or _describe(p)
            if d[2] in ENDED or d[2] == "gone":
                final[p.name] = d
            out.append((p, *d))
        return out

    def tick() -> None:
        rows = described()
        wait = (waiting_for_space(runs_dir) if local and any(i == "queued" for _, _, i, _ in rows)
                else None)
        if many:  # one overall bar, and a bar for each run while it runs
            counts = Counter(state for *_, state in rows)
            text = " · ".join(f"{n} {state}" for state, n in counts.most_common())
            progress.update(overall, completed=float(sum(p.name in final for p in paths)),
                            info=escape((text + (f" · queued: {wait}" if wait else ""))[:90]))
        for p, frac, info, state in rows:
            if many and state != "running":
                if p.name in tasks:
                    progress.remove_task(tasks.pop(p.name))
                continue
            if p.name not in tasks:
                tasks[p.name] = progress.add_task("", total=1.0, name=escape(p.name), info="")
            if wait and info == "queued":
                info = f"queued: {wait}"
            progress.update(tasks[p.name], completed=frac, info=escape(info[:90]))

    def ended() -> bool:  # a run whose directory was deleted has ended too (`gone`)
        return all(p.name in final or not p.is_dir() or load_run(p).state in ENDED
                   for p in paths)

    def on_stop(signum, frame):
        if not sched.owner:
            raise KeyboardInterrupt
        signals["int"] += 1
        console.print("[yellow]stopping workers at a safe point (Ctrl-C again: at once)…[/]"
                      if signals["int"] == 1 else "[red]stopping at once[/]")
        sched.stop(hard=signals["int"] > 1)

    def on_hangup(signum, frame):
        signals["hup"] = True
        if not sched.owner:
            raise KeyboardInterrupt

    old = {s: signal.signal(s, h) for s, h in ((signal.SIGINT, on_stop), (signal.SIGTERM, on_stop),
                                               (signal.SIGHUP, on_hangup))}
    try:
        with progress:
            if detach:
                console.print(f"following {len(paths)} runs; Ctrl-C stops following, not the runs")
            while not ended():
                if slurm and time.monotonic() - last_asked > SACCT_EVERY_S:
                    last_asked = time.monotonic()  # one sacct per interval, for every run
                    reconcile(runs_dir)
                if not local:
                    pass  # the cluster runs them
                elif detach:
                    restarts.start(res)
                    if restarts.gave_up is not None:
                        break
                elif sched.acquire():  # first, or the previous owner finished: run the queue
                    sched.run_queue(tick=tick, until=hung_up)
                    if hung_up() or ended():
                        break
                if hung_up():
                    break
                tick()
                time.sleep(1.0)
            tick()
    except KeyboardInterrupt:
        pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if term.lost is None:
            console.file = term.file
    if restarts.gave_up is not None:  # said once, and the command fails: runs are left
        left = [p.name for p in paths if load_run(p).state not in ENDED]
        console.print(f"the background scheduler stopped twice for the same reason: "
                      f"{restarts.gave_up}\nnot starting it again (see {restarts.log}); "
                      f"{len(left)} runs not finished; once fixed: `ibtui resume --detach "
                      f"--runs-dir {runs_dir.absolute()} {' '.join(left)}`",
                      markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(1)
    if hung_up():
        _silence_terminal()
        sched.release()
        ensure_scheduler(runs_dir, res.jobs, res.gpus, res.threads)


def unfinished(paths: list[Path]) -> list[tuple[str, str, str]]:
    """(run, state, reason) of every run that ended other than done."""
    out = []
    for p in paths:
        if not p.is_dir():
            out.append((p.name, "gone", "its run directory was deleted"))
            continue
        r = load_run(p)
        if r.state in ENDED and r.state != "done":
            out.append((p.name, r.state, str(r.status.get("error") or "")))
    return out
