"""Worker entry point: `python -m ibtui.worker <run-dir>` runs one experiment.

Every launcher (local scheduler, app, resume) starts this same entry point. Process-wide settings
are made here, once, before torch is imported (ibtui.runtime). SIGTERM/SIGINT ask for a stop at
the next safe point (state `interrupted`, resumable); the outcome is always written to
status.json, whatever happens inside the experiment.

Exactly once: the worker holds the run's claim (ibtui.runs.claim) for its whole life, handed
over by the scheduler that launched it or taken here; a worker that cannot get it, or finds the
run no longer queued, leaves without touching anything (exit status NOT_STARTED).

A full disk: the worker reserves a little space when it starts and gives it back to write its
outcome, so a run that failed for lack of space says so in status.json (as a last resort the
outcome is written over the old status.json in place, which needs no new space). Output to
worker.log that the disk refuses is dropped, never fatal.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import ibtui.faults as faults
from ibtui.errors import IbtuiError
from ibtui.files import TolerantStream
from ibtui.runs import claim
from ibtui.runs.resources import THREADS_ENV, cpu_count
from ibtui.runs.slurm import slurm_env
from ibtui.runs.store import RunWriter, effective_state, read_json
from ibtui.runtime import configure_worker

RESERVE = ".space-reserve"  # given back to write the outcome when the disk is full
RESERVE_BYTES = 256 * 1024
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def spec_threads(path: Path) -> int:
    """The run's own `threads` field (0 = not set); the spec is validated later by the experiment."""
    from ibtui.spec import read_spec_file

    try:
        value = read_spec_file(path / "spec.toml").get("threads", 0)
    except IbtuiError:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def choose_threads(path: Path) -> int:
    """The run's own field, else the launcher's plan, else the CPUs Slurm gave this task, else
    every core this process may use."""
    explicit = spec_threads(path)
    if explicit:
        return explicit
    for var in (THREADS_ENV, "SLURM_CPUS_PER_TASK"):
        env = os.environ.get(var, "")
        if env.isdigit() and int(env) > 0:
            return int(env)
    return cpu_count()


def reserve_space(path: Path) -> None:
    try:
        with open(path / RESERVE, "wb") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, RESERVE_BYTES)
            else:  # written out: the blocks are allocated all the same
                f.write(b"\0" * RESERVE_BYTES)
                f.flush()
                os.fsync(f.fileno())
    except OSError:
        release_space(path)  # a disk already this full: the outcome falls back to in place


def release_space(path: Path) -> None:
    try:
        (path / RESERVE).unlink()
    except OSError:
        pass


def write_in_place(path: Path, status: dict) -> bool:
    """The outcome written over status.json in place (its blocks are already allocated): no new
    space needed. Not atomic, so only when the atomic write could not be made."""
    target = path / "status.json"
    try:
        size = target.stat().st_size
        keep = ("state", "error", "ended", "phase", "created", "started", "executor", "source",
                "pid", "pid_start", "host", "epoch", "epochs", "heartbeat")
        small = {k: status[k] for k in keep if k in status}
        text = json.dumps(small)
        if len(text.encode()) > size and small.get("error"):
            cut = len(text.encode()) - size + 3
            small["error"] = small["error"][:max(0, len(small["error"]) - cut)] + "…"
            text = json.dumps(small)
        data = text.encode()
        if len(data) > size:
            return False
        fd = os.open(target, os.O_WRONLY)
        try:
            os.pwrite(fd, data + b" " * (size - len(data)), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def write_outcome(path: Path, **fields) -> bool:
    """The run's final status, whatever the disk says: normally, else with the reserve given
    back, else in place over the last good status.json. False when the disk refused the
    normal write (what was printed before may be lost too)."""
    writer = RunWriter(path)
    for attempt in range(2):
        try:
            writer.set_status(**fields)
            return attempt == 0
        except OSError as e:
            if attempt == 0:
                release_space(path)
            else:
                print(f"[worker] could not write status.json ({e}); writing it in place",
                      flush=True)
    writer.status.update(fields)
    if not write_in_place(path, writer.status):
        print("[worker] could not write the outcome to status.json at all", flush=True)
    return False


def no_space_message(path: Path, e: OSError) -> str:
    where = e.filename or path
    return (f"no space left on device writing {where}: free some space, then "
            f"`{claim.resume_command(path)}`")


def main(run_dir: str) -> int:
    path = Path(run_dir)
    sys.stdout, sys.stderr = TolerantStream(sys.stdout), TolerantStream(sys.stderr)
    lock = claim.inherited(path)
    if lock is None:
        lock = claim.claim(path, "worker")
    if lock is None:
        print(f"[worker] {path.name}: not started: another live worker holds it "
              f"({claim.claimant(path) or 'unknown'})", flush=True)
        return claim.NOT_STARTED
    status = read_json(path / "status.json")[0] or {}
    if status.get("state") not in ("queued", "running"):
        # "running" is left by a worker that is gone: a live one would hold the claim we hold
        print(f"[worker] {path.name}: not started: the run is {effective_state(status)}, "
              "not queued", flush=True)
        return claim.NOT_STARTED
    faults.hold("worker-start", path)
    reserve_space(path)
    try:
        return _work(path)
    finally:
        release_space(path)
        os.close(lock)


def _work(path: Path) -> int:
    stop_reason: list[str] = []

    def on_signal(signum, frame):
        stop_reason.append(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Slurm's warning before a time limit or preemption reaches every process of the job; its
    # default action would kill the worker mid-write. Stop at the next safe point instead
    # (the Slurm task then requeues the run: ibtui.runs.slurm.SlurmWorker.checkpoint).
    signal.signal(signal.SIGUSR2, on_signal)
    runtime = configure_worker(choose_threads(path))
    print(f"[worker] {path.name} starting: {runtime['threads']} threads, torch {runtime['torch']}, "
          f"MKL_CBWR={runtime['mkl_cbwr']}, {runtime['cpu']}", flush=True)
    slurm_ids = slurm_env()
    if slurm_ids:  # a Slurm array task: say which job this attempt is
        RunWriter(path).set_status(**slurm_ids)
    from ibtui.experiment import Experiment, RunFailed, Stop

    state, error = "done", None
    try:
        exp = Experiment(path, should_stop=lambda: stop_reason[0] if stop_reason else None,
                         runtime=runtime)
        summary = exp.run()
        print(f"[worker] done: score={summary.get('score')} acc={summary.get('clean_acc')} "
              f"asr={summary.get('asr')}", flush=True)
    except Stop as e:
        state, error = e.state, str(e)
        if "SIGUSR2" in error and slurm_ids:  # Slurm requeues this task: the run is not over
            state, error = "queued", ("Slurm time limit or preemption: requeued, resumes from "
                                      "the last finished epoch")
    except (RunFailed, IbtuiError) as e:
        state, error = "failed", str(e)
    except OSError as e:
        traceback.print_exc()
        state, error = "failed", (no_space_message(path, e) if e.errno in NO_SPACE
                                  else f"{type(e).__name__}: {e}")
    except Exception as e:  # any bug: record it, never leave the run 'running'
        traceback.print_exc()
        state, error = "failed", f"{type(e).__name__}: {e}"
    if error:
        print(f"[worker] {state}: {error}", flush=True)
    if not write_outcome(path, state=state, error=error, ended=time.time(), phase=state) \
            and error:
        print(f"[worker] {state}: {error}", flush=True)  # once more, in the space given back
    return 0 if state in ("done", "queued") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
