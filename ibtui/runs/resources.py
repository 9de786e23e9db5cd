"""How many workers run at once, on which GPUs, with how many CPU threads each.

One decision for every launcher (`ibtui run`, `ibtui resume`, the app, the detached scheduler),
so a run gets the same thread count whichever way it was started:
  - GPUs: the ones asked for, else every visible one.
  - jobs: asked for, else one per GPU, else one worker per two cores (at least one).
  - threads per worker: asked for (`--threads`), else OMP_NUM_THREADS of the launcher's
    environment when set, else the cores shared evenly among the jobs. A run's own nonzero
    `threads` field (experiments.toml) wins over all of these; the worker applies it at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

THREADS_ENV = "IBTUI_THREADS"  # what the launcher chose; read by the worker at start-up


@dataclass(frozen=True)
class Resources:
    jobs: int
    threads: int
    gpus: list[str] = field(default_factory=list)

    def slots(self) -> int:
        return min(self.jobs, len(self.gpus)) if self.gpus else self.jobs

    def describe(self) -> str:
        where = f"GPUs {','.join(self.gpus)}" if self.gpus else "CPU"
        return f"{self.jobs} job{'s' * (self.jobs != 1)} × {self.threads} threads on {where}"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def detect_gpus() -> list[str]:
    # importing torch costs ~2 s of CPU: skip it where no NVIDIA driver can be present
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1") or not (
            os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl")
            or os.path.exists("/dev/dxg")):  # WSL2
        return []
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def parse_gpus(gpus: str | list[str] | None) -> list[str] | None:
    if gpus is None:
        return None
    if isinstance(gpus, str):
        return [g.strip() for g in gpus.split(",") if g.strip()]
    return [str(g) for g in gpus]


def plan_resources(jobs: int | None = None, gpus: str | list[str] | None = None,
                   threads: int | None = None, cores: int | None = None) -> Resources:
    """Fill in what the user left out (None or 0)."""
    cores = cores or cpu_count()
    gpu_list = parse_gpus(gpus)
    if gpu_list is None:
        gpu_list = detect_gpus()
    if not jobs:
        jobs = len(gpu_list) if gpu_list else max(1, cores // 2)
    if not threads:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else max(1, cores // jobs)
    return Resources(jobs=int(jobs), threads=int(threads), gpus=gpu_list)
