"""Slurm executor vs local executor on the same tiny spec, measured in one run.

    python bench/bench_slurm.py        # needs a working sbatch (a single-node cluster will do)

Prints, per executor: submission overhead per run (creating the run directories and handing
them to the executor), time from submission to the worker starting (status `running`), and to
the first metrics line (first finished epoch); then the Slurm/local ratios.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ibtui.runs.resources import plan_resources
from ibtui.runs.scheduler import Scheduler, create_runs
from ibtui.runs.slurm import executor_config, submit
from ibtui.runs.store import load_run
from ibtui.spec import load_spec_text

SPEC = {"experiment": [{"name": "b", "dataset": "digits", "width": 8, "epochs": 1,
                        "mi_epochs": [1], "batch_size": 128, "attack": ["badnets", "blend"],
                        "poison_rate": 0.1, "observe_classes": [1],
                        "mi_options": {"k": 2, "max_samples": 32}, "threads": 1}]}


def watch(paths: list[Path], t0: float, step=None) -> tuple[float, float]:
    started: dict[str, float] = {}
    first: dict[str, float] = {}
    while len(first) < len(paths):
        if step:
            step()
        for p in paths:
            r = load_run(p)
            if p.name not in started and r.state in ("running", "done"):
                started[p.name] = time.time() - t0
            if p.name not in first and (p / "metrics.jsonl").exists() and r.metrics():
                first[p.name] = time.time() - t0
            if r.state in ("failed", "crashed"):
                sys.exit(f"{p.name} {r.state}: {r.status.get('error')}")
        time.sleep(0.2)
    return sum(started.values()) / len(paths), sum(first.values()) / len(paths)


def main() -> None:
    specs = load_spec_text(SPEC, "bench")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "local"
        t0 = time.time()
        paths = create_runs(specs, runs)
        sched = Scheduler(runs, plan_resources(jobs=2, gpus="", threads=1))
        assert sched.acquire()
        sched.step()
        overhead = (time.time() - t0) / len(paths)
        started, first = watch(paths, t0, sched.step)
        sched.loop()
        sched.release()
        out["local"] = (overhead, started, first)

        runs = Path(tmp) / "slurm"
        cfg = executor_config({"kind": "slurm", "cpus_per_run": 1, "mem_gb": 2, "time_min": 10}, "bench")
        t0 = time.time()
        paths = create_runs(specs, runs, executor="slurm")
        submit(paths, cfg, runs)
        overhead = (time.time() - t0) / len(paths)
        started, first = watch(paths, t0)
        out["slurm"] = (overhead, started, first)
    print(f"{'executor':>8} {'submit/run s':>13} {'to running s':>13} {'to 1st metrics s':>17}")
    for k, (o, s, f) in out.items():
        print(f"{k:>8} {o:13.3f} {s:13.2f} {f:17.2f}")
    (lo, ls, lf), (so, ss, sf) = out["local"], out["slurm"]
    print(f"slurm/local: submission {so / lo:.1f}x, to running {ss / ls:.1f}x, "
          f"to first metrics {sf / lf:.2f}x")


if __name__ == "__main__":
    main()
