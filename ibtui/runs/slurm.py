"""Slurm as an executor, through submitit. The run directory (on storage the cluster shares)
stays the one source of truth; Slurm's own job state only adds crash reasons.

- `[executor]` in experiments.toml (or `--executor slurm`) sends a file's runs as ONE job array
  (`map_array`), throttled by `max_parallel`. Each array task runs the same worker entry point as
  a local worker (`ibtui.worker.main`), writing the same files and heartbeats.
- A run's `status.json` says `executor = "slurm"` from creation (so a local scheduler never
  takes it) and carries the Slurm settings it was submitted with (for `ibtui resume`); the
  job id the launcher got back is in `slurm.json` (the launcher's own file: it never touches
  status.json once the job may be running); the worker adds `slurm_job_id` when it starts.
- Time limit or preemption: Slurm signals the job `signal_delay_s` before the end; submitit
  calls `SlurmWorker.checkpoint`, which marks the run queued and requeues the same task, which
  resumes from `checkpoint.pt` (the last finished epoch) like `ibtui resume`.
- `reconcile(runs_dir)` asks `sacct` ONCE for every Slurm run that is not finished (not once per
  run) and marks crashed, with Slurm's reason, a run whose job ended CANCELLED, TIMEOUT,
  NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, FAILED or BOOT_FAIL. A hanging or failing `sacct` is
  "state unknown", never an error.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from ibtui.errors import RunStoreError, SpecError
from ibtui.runs import claim
from ibtui.runs.states import FINISHED
from ibtui.runs.store import atomic_write_json, effective_state, read_json, run_dirs
from ibtui.schema import Int, Num, Schema, SchemaField, ValidationError, problem
from ibtui.spec import read_toml

KINDS = ("local", "slurm")
BAD_STATES = ("CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "FAILED",
              "BOOT_FAIL", "DEADLINE")
CLUSTER_TIMEOUT_S = 10.0


class ExecutorConfig(Schema):
    """The `[executor]` table of experiments.toml (`--executor` sets `kind`): where runs execute
    and, on Slurm, what each array task asks for. Stored with a Slurm run (`status.json`) for
    `ibtui resume`."""

    kind: Annotated[Literal[KINDS], SchemaField(
        description="local workers, or one Slurm job array per file")] = "local"
    partition: Annotated[str, SchemaField(description="\"\" = the cluster's default partition")] = ""
    gpus_per_run: Annotated[Int, SchemaField(ge=0, description="GPUs per array task")] = 0
    cpus_per_run: Annotated[Int, SchemaField(ge=1, description="CPUs per array task")] = 2
    mem_gb: Annotated[Num, SchemaField(ge=0.1, allow_inf_nan=False,
                                       description="memory per array task (GB)")] = 8.0
    time_min: Annotated[Int, SchemaField(ge=1, description="time limit per array task (minutes)")] = 60
    max_parallel: Annotated[Int, SchemaField(ge=0, description=(
        "array tasks at once; 0 = no throttle beyond the cluster's own limits"))] = 0
    account: Annotated[str, SchemaField(description="Slurm account (\"\" = yours by default)")] = ""
    qos: Annotated[str, SchemaField(description="Slurm QOS (\"\" = the default)")] = ""
    signal_delay_s: Annotated[Int, SchemaField(ge=10, description=(
        "how long before the time limit the run is checkpointed and requeued (seconds)"))] = 90
    slurm_additional_parameters: Annotated[dict[str, Any], SchemaField(
        description="passed to sbatch as is (submitit's additional_parameters)")] = {}


def executor_config(table: Any, file: str, kind: str | None = None) -> ExecutorConfig:
    """The `[executor]` table, checked (one-line SpecError naming the field and what is allowed);
    `kind` (from --executor) overrides the table's."""
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise SpecError(f"{file}: [executor] must be a table")
    for key in table:
        if key not in ExecutorConfig.model_fields:
            raise SpecError(f"{file}: [executor] {key}: unknown setting; "
                            f"allowed: {', '.join(ExecutorConfig.model_fields)}")
    try:
        return ExecutorConfig.model_validate({**table, **({} if kind is None else {"kind": kind})})
    except ValidationError as e:
        key, text = problem(e, ExecutorConfig)
        raise SpecError(f"{file}: [executor] {key}: {text}") from None


def load_executor(path: Path, kind: str | None = None) -> ExecutorConfig:
    """The `[executor]` table of an experiments file (the defaults when the file has none or
    cannot be read: load_spec reports what is wrong with the file itself)."""
    try:
        data = read_toml(Path(path))
    except SpecError:
        data = {}
    return executor_config(data.get("executor"), str(path), kind)


def _cluster(cmd: list[str], timeout: float = CLUSTER_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_cluster(cfg: ExecutorConfig, file: str) -> None:
    """Before any run directory exists: sbatch present, the partition known."""
    for tool in ("sbatch", "sinfo", "sacct", "scancel"):
        if shutil.which(tool) is None:
            raise SpecError(f"{file}: [executor] kind = \"slurm\" needs `{tool}` on PATH "
                            "(run on a Slurm login node); allowed without it: kind = \"local\"")
    if cfg.partition:
        try:
            out = _cluster(["sinfo", "-h", "-o", "%P"]).stdout.split()
        except (subprocess.TimeoutExpired, OSError) as e:
            raise SpecError(f"{file}: [executor] partition: sinfo failed ({e})") from None
        names = sorted({p.rstrip("*") for p in out})
        if cfg.partition not in names:
            raise SpecError(f"{file}: [executor] partition {cfg.partition!r} does not exist; "
                            f"allowed: {', '.join(names) or '(none visible)'}")


class SlurmWorker:
    """What each array task runs (pickled by submitit): the worker entry point, as a child
    process exactly like a local worker (so its start-up settings come before torch loads).
    Checkpointable: on a time limit or preemption submitit calls checkpoint(), which stops the
    worker at a safe point and has the same task requeued; the next attempt resumes the run."""

    STOP_WAIT_S = 20.0

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._proc = None

    def __call__(self, run_dir: str) -> int:
        import sys

        with open(Path(run_dir) / "worker.log", "ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "ibtui.worker", run_dir],
                                          stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        code = self._proc.wait()
        if code == claim.NOT_STARTED:  # another live worker has the run (or it is not queued):
            return code  # this task did nothing, and must not fail the run's Slurm job
        state = (read_json(Path(run_dir) / "status.json")[0] or {}).get("state")
        if state in ("failed", "crashed", "running"):  # the Slurm job fails with the run
            raise RuntimeError(f"run {state} (worker exit {code}); see {run_dir}/worker.log")
        return code

    def checkpoint(self, run_dir: str):
        import submitit

        # We are inside a signal handler that interrupted Popen.wait() in __call__: Popen's own
        # wait/poll would deadlock on its lock, so watch the run's status and use plain kill().
        path = Path(run_dir)
        if self._proc is not None:
            try:
                os.kill(self._proc.pid, signal.SIGTERM)  # stop at the next safe point
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + self.STOP_WAIT_S
            while (time.monotonic() < deadline
                   and (read_json(path / "status.json")[0] or {}).get("state") == "running"):
                time.sleep(0.2)
            try:
                os.kill(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status = read_json(path / "status.json")[0] or {}
        if status.get("state") in FINISHED:
            return None  # the warning came as the run ended: nothing to resume, no requeue
        status.update(state="queued", phase="queued", requeued=time.time(),
                      error="Slurm time limit or preemption: requeued, resumes from the "
                            "last finished epoch")
        atomic_write_json(path / "status.json", status)
        return submitit.helpers.DelayedSubmission(SlurmWorker(), run_dir)


def submit(paths: list[Path], cfg: ExecutorConfig, runs_dir: Path) -> list[str]:
    """One job array for `paths`; returns the job ids ("<array>_<index>")."""
    import submitit

    ex = submitit.SlurmExecutor(folder=str(Path(runs_dir) / ".slurm" / "%j"), max_num_timeout=20)
    params: dict[str, Any] = {
        "job_name": "ibtui", "time": cfg.time_min, "cpus_per_task": cfg.cpus_per_run,
        "mem": f"{max(1, round(cfg.mem_gb * 1024))}MB", "signal_delay_s": cfg.signal_delay_s,
        "array_parallelism": cfg.max_parallel or max(1, len(paths)),
        "additional_parameters": dict(cfg.slurm_additional_parameters),
    }
    for key, name in (("partition", "partition"), ("account", "account"), ("qos", "qos")):
        if getattr(cfg, key):
            params[name] = getattr(cfg, key)
    if cfg.gpus_per_run:
        params["gpus_per_node"] = cfg.gpus_per_run
    ex.update_parameters(**params)
    try:
        jobs = ex.map_array(SlurmWorker(), [str(p) for p in paths])
    except Exception as e:  # sbatch said no: its message is the useful part
        reason = " ".join(str(e).split())[-400:]
        raise SpecError(f"Slurm rejected the submission: {reason}") from None
    now = time.time()
    for p, job in zip(paths, jobs, strict=True):
        atomic_write_json(p / "slurm.json", {"job_id": job.job_id, "submitted": now,
                                             "settings": cfg.model_dump()})
    return [j.job_id for j in jobs]


def resubmit(paths: list[Path], runs_dir: Path) -> list[Path]:
    """Resume = back to the executor a run was launched with: the Slurm runs among `paths`
    (already set queued) are submitted again, one job array per distinct set of settings.
    Returns the Slurm runs."""
    import json

    groups: dict[str, list[Path]] = {}
    for p in paths:
        status = read_json(Path(p) / "status.json")[0] or {}
        # only runs set queued: one still running (or claimed by a live worker) is never
        # submitted a second time, even when a caller goes on after set_queued refused it
        if status.get("executor") == "slurm" and status.get("state") == "queued" \
                and not claim.claimed(Path(p)):
            groups.setdefault(json.dumps(status.get("slurm") or {}, sort_keys=True), []).append(p)
    for key, group in groups.items():
        cfg = executor_config(json.loads(key), f"{group[0] / 'status.json'}: slurm")
        check_cluster(cfg, "resume")
        submit(group, cfg, runs_dir)
    return [p for group in groups.values() for p in group]


def job_id(path: Path) -> str | None:
    info, _ = read_json(Path(path) / "slurm.json")
    return str(info["job_id"]) if info and info.get("job_id") else None


def sacct_states(ids: list[str]) -> dict[str, str] | None:
    """{job id: state} in one sacct call; None when the cluster cannot be asked right now."""
    if not ids:
        return {}
    arrays = sorted({i.split("_")[0] for i in ids})
    try:
        r = _cluster(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(arrays)])
    except (subprocess.TimeoutExpired, OSError):
        return None
    if r.returncode != 0:
        return None
    out = {}
    for line in r.stdout.splitlines():
        jid, _, state = line.partition("|")
        if jid:
            out[jid.strip()] = state.strip().split(" ")[0]  # "CANCELLED by 0" -> CANCELLED
    return out


def reconcile(runs_dir: Path) -> dict[str, str]:
    """Mark crashed the Slurm runs whose job ended badly; returns {run: Slurm state} of the
    unfinished Slurm runs (empty when sacct could not be asked)."""
    runs_dir = Path(runs_dir)
    pending: dict[str, tuple[Path, dict]] = {}
    try:
        candidates = [Path(de.path) for de in run_dirs(runs_dir)]
    except OSError:
        candidates = []
    for p in candidates:
        status, _ = read_json(p / "status.json")
        if not status or status.get("executor") != "slurm":
            continue
        jid = job_id(p)
        if jid and effective_state(status) in ("queued", "running", "crashed"):
            pending[jid] = (p, status)
    states = sacct_states(list(pending)) or {}
    seen = {}
    for jid, (p, status) in pending.items():
        state = states.get(jid)
        if state is None:
            continue
        seen[p.name] = state
        current = effective_state(status)
        slurm_reason = "Slurm" in str(status.get("error") or "")
        if state in BAD_STATES and (current in ("queued", "running") or not slurm_reason):
            status.update(state="crashed", ended=time.time(),
                          error=f"Slurm job {jid} ended {state}; see "
                                f"{p.absolute() / 'worker.log'} and resume with "
                                f"`{claim.resume_command(p)}`")
            atomic_write_json(p / "status.json", status)
    return seen


def cancel_jobs(paths: list[Path]) -> None:
    ids = [j for j in (job_id(p) for p in paths) if j]
    if not ids:
        return
    try:
        r = _cluster(["scancel", *ids])
    except (subprocess.TimeoutExpired, OSError) as e:
        raise RunStoreError(f"scancel {' '.join(ids)} failed ({e})") from None
    if r.returncode != 0:
        raise RunStoreError(f"scancel {' '.join(ids)}: {r.stderr.strip()}")


def slurm_env() -> dict[str, str]:
    """The ids of the Slurm task this process runs in, for status.json (empty outside Slurm)."""
    keys = {"SLURM_JOB_ID": "slurm_job_id", "SLURM_ARRAY_JOB_ID": "slurm_array_job_id",
            "SLURM_ARRAY_TASK_ID": "slurm_array_task_id", "SLURMD_NODENAME": "slurm_node",
            "SLURM_RESTART_COUNT": "slurm_restarts"}
    return {v: os.environ[k] for k, v in keys.items() if k in os.environ}
