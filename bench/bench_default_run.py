"""Wall time of the default `make run` experiment, split into poisoning, training epochs and MI
checkpoints, from one run of the real CLI (workers included).

    .venv/bin/python bench/bench_default_run.py [experiments.toml] [--jobs N]

Prints the total and per-part figures; append them to bench/RESULTS.md by hand with the device.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ibtui.runs.store import list_runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default="experiments.toml")
    ap.add_argument("--jobs", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        cmd = [sys.executable, "-m", "ibtui.cli", "run", a.file, "--runs-dir", str(runs_dir)]
        if a.jobs:
            cmd += ["--jobs", str(a.jobs)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        runs = list_runs(runs_dir)
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
        print(f"device: {device}, cores: {torch.get_num_threads()} threads, runs: {len(runs)}")
        print(f"command: {' '.join(cmd[1:])}")
        print(f"total wall time: {wall:.1f} s")
        for r in runs:
            s = r.summary or {}
            epochs = [m["seconds"] for m in r.metrics()]
            mi_s = [m["mi_seconds"] for m in r.metrics() if "mi_seconds" in m]
            print(f"{r.id}: state {r.state}, wall {s.get('wall_seconds', 0):.1f} s = poison "
                  f"{s.get('poison_seconds', 0):.1f} s + {len(epochs)} epochs x "
                  f"{sum(epochs) / max(1, len(epochs)):.2f} s + {len(mi_s)} MI checkpoints x "
                  f"{sum(mi_s) / max(1, len(mi_s)):.2f} s  (acc {s.get('clean_acc')}, "
                  f"asr {s.get('asr')}, score {s.get('score')})")


if __name__ == "__main__":
    main()
