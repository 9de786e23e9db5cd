"""The one launch path, shared by `ibtui run` / `ibtui resume` and the app's compose and resume.

`launch` turns validated specs into queued run directories and hands them to an executor:
local (the runs wait for a scheduler; `start_scheduler` starts one when the caller wants it)
or Slurm (checked against the cluster before anything exists, then one job array; a rejected
submission removes the runs it created). `resume` puts stopped runs back in the queue, every
spec checked first so that nothing is queued when one is wrong, and sends each back to the
executor it ran on, or to the one the caller names.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ibtui.errors import IbtuiError
from ibtui.runs.scheduler import create_runs, set_queued
from ibtui.runs.slurm import ExecutorConfig, check_cluster, resubmit, submit
from ibtui.runs.store import atomic_write_json, read_json
from ibtui.spec import RunSpec, check_stored_spec

# starts a local scheduler for the runs dir if none runs; returns its pid, or None if one ran
SchedulerStart = Callable[[], "int | None"]


@dataclass
class Launched:
    """What a launch or resume did: the runs, where they went, what was started."""

    paths: list[Path]
    local: int = 0                 # runs left to a local scheduler
    slurm: int = 0                 # runs submitted to Slurm
    slurm_arrays: tuple[str, ...] = ()
    scheduler_pid: int | None = None
    scheduler_asked: bool = False  # a local scheduler was asked for (pid None: one already ran)

    def message(self, verb: str = "queued") -> str:
        """One line for the user, e.g. 'queued 2 runs; scheduler started (pid 7)'."""
        parts = []
        if self.local:
            text = f"{verb} {self.local} run{'s' * (self.local != 1)}"
            if self.scheduler_asked:
                text += (f"; scheduler started (pid {self.scheduler_pid})" if self.scheduler_pid
                         else "; the running scheduler picks them up")
            parts.append(text)
        if self.slurm:
            arrays = ", ".join(self.slurm_arrays)
            parts.append(f"submitted {self.slurm} run{'s' * (self.slurm != 1)} to Slurm"
                         + (f" as job array{'s' * (len(self.slurm_arrays) != 1)} {arrays}"
                            if arrays else ""))
        return "; ".join(parts) or f"{verb} no run"


def _array(job_ids: list[str]) -> str:
    return job_ids[0].split("_")[0] if job_ids else ""


def launch(specs: list[RunSpec], runs_dir: Path, executor: ExecutorConfig, *, source: str,
           start_scheduler: SchedulerStart | None = None) -> Launched:
    """Create a run per spec and start them on `executor`. IbtuiError (nothing created) when the
    cluster is missing or refuses the job; `source` names the file in messages."""
    runs_dir = Path(runs_dir)
    if executor.kind == "slurm":
        check_cluster(executor, source)
        paths = create_runs(specs, runs_dir, executor="slurm", settings=executor.model_dump())
        try:
            ids = submit(paths, executor, runs_dir)
        except IbtuiError:
            for p in paths:
                shutil.rmtree(p, ignore_errors=True)
            raise
        return Launched(paths, slurm=len(paths), slurm_arrays=(_array(ids),))
    paths = create_runs(specs, runs_dir)
    out = Launched(paths, local=len(paths))
    if start_scheduler is not None:
        out.scheduler_asked = True
        out.scheduler_pid = start_scheduler()
    return out


def _move_to(path: Path, executor: ExecutorConfig) -> None:
    """A queued run's status names `executor` (and, for Slurm, its settings) from now on."""
    status = read_json(path / "status.json")[0] or {}
    status["executor"] = executor.kind
    status.pop("slurm", None)
    if executor.kind == "slurm":
        status["slurm"] = executor.model_dump()
    atomic_write_json(path / "status.json", status)


def resume(paths: list[Path], runs_dir: Path, *, executor: ExecutorConfig | None = None,
           start_scheduler: SchedulerStart | None = None) -> Launched:
    """Queue stopped runs again (each resumes from its last finished epoch). Every spec is
    checked first: one that is wrong raises before any run is queued. Each run goes back to
    the executor it was launched with, or to `executor` when one is given."""
    runs_dir = Path(runs_dir)
    paths = [Path(p) for p in paths]
    for p in paths:
        check_stored_spec(p / "spec.toml")
    if executor is not None and executor.kind == "slurm":
        check_cluster(executor, "resume")
    for p in paths:
        set_queued(p)
        if executor is not None:
            _move_to(p, executor)
    on_slurm = resubmit(paths, runs_dir)
    local = len(paths) - len(on_slurm)
    out = Launched(paths, local=local, slurm=len(on_slurm))
    if local and start_scheduler is not None:
        out.scheduler_asked = True
        out.scheduler_pid = start_scheduler()
    return out
