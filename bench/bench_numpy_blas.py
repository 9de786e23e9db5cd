"""The per-class statistics a worker records at every MI checkpoint (classes.jsonl: activation
clustering and spectral signature on each class's penultimate representation) with numpy's BLAS
(OpenBLAS) on 1 thread vs 2, on an idle machine and beside busy processes.

    python bench/bench_numpy_blas.py [--busy 0 2] [--repeat 3]

Each configuration runs in a fresh process (OpenBLAS reads OPENBLAS_NUM_THREADS when it loads),
with torch imported as in a worker. Two shapes: digits at width 8 (10 classes x 135 images x 64
features) and CIFAR-10 at width 64 (10 classes x 1,000 images x 512 features). Prints seconds
for the 10 classes and the ratio 2 threads / 1 thread from this one run. `--busy N` starts N
pure-Python busy loops beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bench_omp_wait import busy_processes

CLASSES = r"""
import sys, time, numpy as np, torch
from ibtui.analysis.baselines import class_baselines
n, d, repeat = (int(v) for v in sys.argv[1:4])
feats = [np.random.default_rng(c).normal(size=(n, d)) for c in range(10)]
class_baselines(feats[0])  # imports and first-call set-up out of the timing
best = float("inf")
for _ in range(repeat):
    t = time.perf_counter()
    for f in feats:
        class_baselines(f)
    best = min(best, time.perf_counter() - t)
print(best)
"""


def one(threads: int, n: int, d: int, repeat: int) -> float:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", CLASSES, str(n), str(d), str(repeat)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--busy", type=int, nargs="+", default=[0, 2])
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    print(f"{'shape':<28} {'busy':>4} {'1 thread':>9} {'2 threads':>10} {'2 / 1':>6}")
    for busy in a.busy:
        with busy_processes(busy):
            for label, n, d in (("digits w8: 10 x 135 x 64", 135, 64),
                                ("cifar w64: 10 x 1000 x 512", 1000, 512)):
                t1, t2 = one(1, n, d, a.repeat), one(2, n, d, a.repeat)
                print(f"{label:<28} {busy:>4} {t1:>8.3f}s {t2:>9.3f}s {t2 / t1:>6.2f}")


if __name__ == "__main__":
    main()
