"""What a worker imports before it trains, the old way vs now, each in a fresh process.

    python bench/bench_worker_startup.py [--repeat 5]

Old way (until 2026-12-07): torch, a torch.optim.SGD (whose first add_param_group imports
torch._dynamo), scikit-learn's PCA / KMeans / silhouettes for the per-class statistics, and
load_digits + train_test_split for the data. Now: torch, ibtui.train's SGD (torch.optim's update
written out), the numpy statistics (ibtui.analysis.baselines) and digits read from
scikit-learn's table file. Both load the digits data and build the optimiser of a width-8
ResNet-18. Prints the median seconds of each and the ratio old / now from this one run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

OLD = """
import numpy as np, torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_samples, silhouette_score
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from ibtui.models import create_model
d = load_digits()
train_test_split(np.arange(len(d.target)), test_size=0.25, stratify=d.target, random_state=0)
torch.optim.SGD(create_model("resnet18", 10, 8).parameters(), lr=0.1, momentum=0.9)
"""

NOW = """
import torch
from ibtui.analysis.baselines import class_baselines
from ibtui.data.datasets import load_dataset
from ibtui.models import create_model
from ibtui.train import make_optimizer
load_dataset("digits")
make_optimizer(create_model("resnet18", 10, 8), 0.1)
"""


def seconds(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    old, now = [], []
    for _ in range(args.repeat):  # interleaved: a change in the machine's load hits both
        old.append(seconds(OLD))
        now.append(seconds(NOW))
    o, n = statistics.median(old), statistics.median(now)
    print(f"worker imports, median of {args.repeat} fresh processes")
    print(f"  old way (torch.optim + scikit-learn): {o:.2f} s")
    print(f"  now (numpy statistics, ibtui SGD):    {n:.2f} s")
    print(f"  ratio old / now: {o / n:.2f}x  ({o - n:.2f} s less per worker)")


if __name__ == "__main__":
    main()
