"""MINE (and optionally infonce-separable) on the bmi-style tasks, before and after, default options.

    .venv/bin/python bench/bench_mine_bmi.py [--tasks 0,1,...] [--before COMMIT] [--separable]

Tasks: `validate.bmi_tasks(quick=False)` (9 tasks: Gaussian pairs under half-cube, asinh or
normal-CDF transforms, 0.5-4 nats, 5-20 dims, 5,000 pairs; closed-form truth), or the indices
given. "after" = `estimate(a, b, "mine", seed=0)` with the current defaults; "before" (with
--before) = ibtui/mi/trained.py and critics.py of that commit, loaded from git history, with the
defaults they had. Torch on one thread. Prints one Markdown row per task (value, relative error,
converged flag, seconds).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from ibtui.mi import estimate
from ibtui.mi.validate import bmi_tasks

ROOT = Path(__file__).resolve().parent.parent


def _load(commit: str) -> types.ModuleType:
    def src(path: str) -> str:
        return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout

    crit = types.ModuleType("old_critics")
    exec(compile(src("ibtui/mi/critics.py"), "old_critics.py", "exec"), crit.__dict__)
    sys.modules["old_critics"] = crit
    code = src("ibtui/mi/trained.py").replace("from ibtui.mi.critics import", "from old_critics import")
    mod = types.ModuleType("old_trained")
    exec(compile(code, "old_trained.py", "exec"), mod.__dict__)  # our own code, older commit
    return mod


def _cell(est, truth: float, secs: float) -> str:
    conv = est.settings.get("converged")
    flag = "" if conv is None else (" ✓" if conv else " ✗")
    return f"{est.value:.3f} ({est.value / truth - 1:+.1%}){flag}, {secs:.0f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", default=None, help="comma-separated indices into the 9 tasks")
    p.add_argument("--before", default=None, metavar="COMMIT")
    p.add_argument("--separable", action="store_true", help="also infonce-separable (after)")
    args = p.parse_args()
    torch.set_num_threads(1)
    tasks = bmi_tasks(quick=False)
    if args.tasks:
        tasks = [tasks[int(i)] for i in args.tasks.split(",")]
    old = _load(args.before) if args.before else None
    cols = (["MINE before"] if old else []) + ["MINE after"] + (
        ["separable"] if args.separable else [])
    print("| task | truth | " + " | ".join(cols) + " |")
    print("|---|---:|" + "---:|" * len(cols), flush=True)
    for task in tasks:
        runs = []
        if old:
            runs.append(lambda t=task: old.mine(t.a, t.b, max_steps=4000, seed=0))
        runs.append(lambda t=task: estimate(t.a, t.b, "mine", seed=0))
        if args.separable:
            runs.append(lambda t=task: estimate(t.a, t.b, "infonce-separable", seed=0))
        cells = []
        for fn in runs:
            t0 = time.perf_counter()
            est = fn()
            cells.append(_cell(est, task.truth, time.perf_counter() - t0))
        print(f"| {task.name} | {task.truth:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
