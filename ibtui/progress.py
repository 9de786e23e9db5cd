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
mark never-started runs `interrupted`. SIGHUP (the SSH connection dropped) hands the queue to a
detached scheduler instead: running workers go on (own sessions), queued runs still get run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ibtui.runs.resources import Resources
from ibtui.runs.scheduler import Scheduler, ensure_scheduler, scheduler_alive
from ibtui.runs.slurm import reconcile
from ibtui.runs.store import FINISHED, load_run

ENDED = (*FINISHED, "crashed", "interrupted")
SACCT_EVERY_S = 5.0


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _describe(p: Path) -> tuple[float, str]:
    r = load_run(p)
    st, state = r.status, r.state
    epochs = st.get("epochs") or r.spec.get("epochs") or 1
    epoch = st.get("epoch") or 0
    phase = st.get("phase", state)
    if state == "running":
        done = max(epoch - 1, 0) + (st.get("progress") or 0) if phase == "training" else epoch
        return (min(1.0, done / epochs),
                f"{phase} e{epoch}/{epochs} acc {_fmt(st.get('test_acc'))} asr {_fmt(st.get('asr'))}")
    if state == "done":
        s = r.summary or {}
        return 1.0, (f"done  acc {_fmt(s.get('clean_acc'))} asr {_fmt(s.get('asr'))} "
                     f"score {_fmt(s.get('score'), '.3f')}")
    return 0.0, state + (f": {st.get('error')}" if st.get("error") else "")


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
    tasks = {p.name: progress.add_task("", total=1.0, name=escape(p.name), info="queued")
             for p in paths}
    sched = Scheduler(runs_dir, res, only=None)
    signals = {"int": 0, "hup": False}
    kinds = {load_run(p).status.get("executor", "local") for p in paths}
    slurm, local = "slurm" in kinds, kinds != {"slurm"}
    last_asked = 0.0

    def tick() -> None:
        for p in paths:
            frac, info = _describe(p)
            progress.update(tasks[p.name], completed=frac, info=escape(info[:90]))

    def ended() -> bool:
        return all(load_run(p).state in ENDED for p in paths)

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
                    if not scheduler_alive(runs_dir):
                        ensure_scheduler(runs_dir, res.jobs, res.gpus, res.threads)
                elif sched.acquire():  # first, or the previous owner finished: run the queue
                    sched.run_queue(tick=tick, until=lambda: signals["hup"])
                    if signals["hup"] or ended():
                        break
                tick()
                time.sleep(1.0)
            tick()
    except KeyboardInterrupt:
        pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if signals["hup"]:
        _silence_terminal()
        sched.release()
        ensure_scheduler(runs_dir, res.jobs, res.gpus, res.threads)


def unfinished(paths: list[Path]) -> list[tuple[str, str, str]]:
    """(run, state, reason) of every run that ended other than done."""
    out = []
    for p in paths:
        r = load_run(p)
        if r.state in ENDED and r.state != "done":
            out.append((p.name, r.state, str(r.status.get("error") or "")))
    return out
