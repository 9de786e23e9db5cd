"""Coverage of the noise-aware I(X;T)'s nominal 95% interval, value ± 1.96 · settings.image_stderr,
on the noisy linear tasks (exact truth by whitening).

The interval claims the class's I(X;T) at N images: which N images form the subset is part of
its error (the delta method over images), and so are the k noise draws (the delete-one-draw
jackknife). So each repetition is a new run on a new subset: the network stays, the N inputs
are drawn afresh from the class's distribution and the noise afresh. Its target, μ, is the mean
over the repetitions of each subset's exact I(X;T) (Monte Carlo reference, 128 draws per input;
μ's own error is sd(I_S)/√reps). The table also shows how often the same interval covers its own
subset's exact value, and the interval from the draws' jackknife alone against the subset.

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
print(f"nominal 95% interval, {args.reps} repetitions (fresh subset of inputs, fresh noise draws) "
      "per task\n")
print("| task | k | μ (class, N images) | sd of I(X;T) over subsets | bias | sd of values "
      "| mean image_stderr (images; draws; t factor) | coverage of μ | of its own subset | draws only, own subset |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
t_all = time.perf_counter()
for d, scale, k in TASKS:
    reps = []
    for r in range(args.reps):
        t = T.noisy_linear(scale, d=d, k=k, noise_seed=r, input_seed=r, ref_draws=128)
        e = noisy_mi(t.s, t.sigma, mc_samples=4, seed=r, lower_bound=False, draws_stderr=True)
        reps.append((t.truth, e.value, e.settings))
    mu = statistics.mean(truth for truth, _, _ in reps)
    vals = [v for _, v, _ in reps]
    # (the target, the error) of each column: μ with the recorded error, the subset's own value
    # with it, the subset's own value with the draws' jackknife alone
    hits = [0, 0, 0]
    for truth, v, st in reps:
        for j, (target, se) in enumerate(((mu, st["image_stderr"]), (truth, st["image_stderr"]),
                                          (truth, st["draws_stderr"]))):
            hits[j] += abs(v - target) <= 1.96 * se
    print(f"| linear{d}d-x{scale:g} | {k} | {mu:.3f} | {statistics.stdev(x for x, _, _ in reps):.3f} "
          f"| {statistics.mean(vals) / mu - 1:+.1%} | {statistics.stdev(vals):.3f} "
          f"| {statistics.mean(st['image_stderr'] for *_, st in reps):.3f} "
          f"({statistics.mean(st['images_stderr'] for *_, st in reps):.3f}; "
          f"{statistics.mean(st['draws_stderr'] for *_, st in reps):.3f}; "
          f"×{statistics.mean(st['t_factor'] for *_, st in reps):.2f}) | "
          + " | ".join(f"{h / len(reps):.0%}" for h in hits) + " |", flush=True)
print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
