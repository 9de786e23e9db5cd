"""Training step time of a 2-thread worker with OpenMP's default (spinning) wait policy vs
PASSIVE, on an idle machine and beside busy processes (a shared box, the test suite, the app).

    python bench/bench_omp_wait.py [--threads 2] [--busy 0 2] [--steps 15]

Each configuration runs in a fresh process (the policy is read when the OpenMP runtime starts):
NoisyResNet18 width 8, batch 64 of 32x32 images, SGD; prints ms per step and the ratio
default / PASSIVE from this one run. `--busy N` starts N pure-Python busy loops beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import subprocess
import sys
import time

STEP = r"""
import os, time, torch
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
from ibtui.models import create_model
m = create_model("resnet18", num_classes=10, width=8)
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8)
y = torch.randint(0, 10, (64,))
def step():
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(STEPS):
    step()
print((time.perf_counter() - t) / STEPS * 1000)
"""


def _busy() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_processes(n: int):
    """`n` pure-Python busy loops beside the measurement (also bench_numpy_blas.py)."""
    procs = [mp.Process(target=_busy, daemon=True) for _ in range(n)]
    for q in procs:
        q.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        for q in procs:
            q.terminate()


def one(threads: int, policy: str | None, steps: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", STEP.replace("STEPS", str(steps))], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--busy", type=int, nargs="+", default=[0, 2])
    p.add_argument("--steps", type=int, default=15)
    a = p.parse_args()
    print(f"{'busy procs':>10} {'default ms/step':>16} {'PASSIVE ms/step':>16} {'default/PASSIVE':>16}")
    for n in a.busy:
        with busy_processes(n):
            d = one(a.threads, None, a.steps)
            s = one(a.threads, "PASSIVE", a.steps)
        print(f"{n:>10} {d:>16.0f} {s:>16.0f} {d / s:>15.2f}x")


if __name__ == "__main__":
    main()
