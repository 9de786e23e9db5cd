"""Coverage of the noise-aware I(X;T)'s nominal 95% interval, value ± 1.96 · settings.image_stderr,
on the noisy linear tasks (exact truth by whitening, 1,024 reference draws per input).

Each task is one network and one set of N inputs (so one true I(X;T)); each repetition draws the
k noisy forward passes afresh (and the Monte Carlo noise), as a new run would. The recorded error
√(images² + draws²) adds the delete-one-draw jackknife over the k draws to the delta-method
error over images; the table also shows the interval from the images' error alone (the record
before the draws were included) and from the draws' jackknife alone.

    .venv/bin/python bench/bench_mi_coverage.py [--reps 100]
"""

import argparse
import statistics
import time

import torch

from ibtui.mi import noisy_mi
from ibtui.mi import tasks as T

torch.set_num_threads(1)
TASKS = ((16, 0.4, 4), (32, 0.3, 4), (32, 0.6, 4), (64, 0.5, 4), (64, 0.8, 4), (64, 1.6, 4),
         (32, 0.3, 8), (64, 0.5, 8))

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=100)
args = p.parse_args()
print(f"nominal 95% interval, {args.reps} repetitions (fresh noise draws) per task\n")
print("| task | k | truth | bias | sd over draws | mean image_stderr (images only; draws) "
      "| coverage: recorded | images only | draws only |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
t_all = time.perf_counter()
for d, scale, k in TASKS:
    truth = T.noisy_linear(scale, d=d, k=1, ref_draws=1024).truth
    vals, se, se_img, se_dr = [], [], [], []
    cover = [0, 0, 0]
    for r in range(args.reps):
        t = T.noisy_linear(scale, d=d, k=k, noise_seed=r, truth=truth)
        e = noisy_mi(t.s, t.sigma, mc_samples=4, seed=r, lower_bound=False, draws_stderr=True)
        st = e.settings
        vals.append(e.value)
        se.append(st["image_stderr"])
        se_img.append(st["images_stderr"])
        se_dr.append(st["draws_stderr"])
        for j, s in enumerate((st["image_stderr"], st["images_stderr"], st["draws_stderr"])):
            cover[j] += abs(e.value - truth) <= 1.96 * s
    n = args.reps
    print(f"| linear{d}d-x{scale:g} | {k} | {truth:.3f} | {statistics.mean(vals) / truth - 1:+.1%} "
          f"| {statistics.stdev(vals):.3f} | {statistics.mean(se):.3f} ({statistics.mean(se_img):.3f}; "
          f"{statistics.mean(se_dr):.3f}) | {cover[0] / n:.0%} | {cover[1] / n:.0%} "
          f"| {cover[2] / n:.0%} |", flush=True)
print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
