"""Worker entry point: `python -m ibtui.worker <run-dir>` runs one experiment.

Every launcher (local scheduler, app, resume) starts this same entry point. Process-wide settings
are made here, once, before torch is imported (ibtui.runtime). SIGTERM/SIGINT ask for a stop at
the next safe point (state `interrupted`, resumable); the outcome is always written to
status.json, whatever happens inside the experiment.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path

from ibtui.errors import IbtuiError
from ibtui.runs.resources import THREADS_ENV, cpu_count
from ibtui.runs.slurm import slurm_env
from ibtui.runs.store import RunWriter
from ibtui.runtime import configure_worker


def spec_threads(path: Path) -> int:
    """The run's own `threads` field (0 = not set); the spec is validated later by the experiment."""
    import tomllib

    try:
        with open(path / "spec.toml", "rb") as f:
            value = tomllib.load(f).get("experiment", {}).get("threads", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
    except (OSError, ValueError):
        return 0


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


def main(run_dir: str) -> int:
    path = Path(run_dir)
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
    except Exception as e:  # any bug: record it, never leave the run 'running'
        traceback.print_exc()
        state, error = "failed", f"{type(e).__name__}: {e}"
    if error:
        print(f"[worker] {state}: {error}", flush=True)
    RunWriter(path).set_status(state=state, error=error, ended=time.time(), phase=state)
    return 0 if state in ("done", "queued") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
