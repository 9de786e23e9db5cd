"""Noise-aware I(X;T) by regime: bias (mean relative error over noise draws) ± sd, and the
flag the record carries (`noise_aware.accuracy_flag`) where a regime is known to miss 5%.
Regimes: noisy linear nets from ~0.5 nats to log N, 16/32/64-d T, N = 40–400, k = 2–16,
including strong low-rank upstream noise at low MI (upstream 2.0, singular values decaying
0.5 per step); the small noisy ReLU nets (truth: a mixture over 1,024 draws) at k = 4, 8, 16.

    .venv/bin/python bench/bench_mi_noisy_tasks.py [--draws 8]

With --before-after, the former comparison instead: the default conditional on the
ground-truth tasks with k > 1 draws, old way
vs new way in one run: the true means' covariance estimated as the PSD part of B − V (before)
or by the Marchenko–Pastur edge (after, `noise_aware._signal_cov`).

Noisy linear nets (16-, 32-, 64-d T, exact truth by whitening, 2,048 reference draws per input):
each task is measured on 12 independent noise draws (same network, same inputs, same truth), so
the mean error is the estimator's bias and the sd its spread over noise draws; at k = 4 (the
validation tasks) and k = 8 (the runs' default). Small noisy ReLU nets (truth: a mixture over
512 draws): one draw each.

    .venv/bin/python bench/bench_mi_noisy_tasks.py
"""

import argparse
import math
import statistics
import sys
import time

import torch

from ibtui.mi import noise_aware, noisy_mi
from ibtui.mi import tasks as T

torch.set_num_threads(1)
REGIMES = (  # d, N, k, scale, upstream, decay
    (16, 118, 4, 0.4, 0.6, 0.8), (16, 118, 4, 0.8, 0.6, 0.8), (32, 118, 4, 0.3, 0.6, 0.8),
    (32, 118, 4, 0.6, 0.6, 0.8), (64, 118, 4, 0.5, 0.6, 0.8), (64, 118, 4, 1.6, 0.6, 0.8),
    (32, 118, 8, 0.3, 0.6, 0.8), (64, 118, 8, 0.5, 0.6, 0.8), (64, 118, 16, 0.5, 0.6, 0.8),
    (32, 400, 8, 0.3, 0.6, 0.8), (64, 400, 4, 0.5, 0.6, 0.8),
    (64, 200, 16, 1.0, 2.0, 0.5), (64, 200, 16, 1.8, 2.0, 0.5), (64, 200, 4, 1.8, 2.0, 0.5),
    (16, 40, 4, 0.8, 0.6, 0.8), (32, 40, 4, 0.5, 0.6, 0.8), (32, 40, 16, 0.5, 0.6, 0.8),
    (16, 118, 2, 0.4, 0.6, 0.8), (64, 118, 2, 0.5, 0.6, 0.8),
    (64, 118, 4, 0.5, 0.6, 0.8, 1.0), (128, 118, 4, 0.5, 0.6, 0.8, 1.0),  # every direction noisy
    (128, 118, 8, 0.5, 0.6, 0.8, 1.0),
)


def regime_table(draws: int, only: list[str]) -> None:
    print(f"bias ± sd over {draws} noise draws (mean relative error), flag as recorded\n")
    print("| task | d | N | k | truth | log N | bias ± sd | flag (bias bound) | within 5% or flagged |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    t0 = time.perf_counter()
    rows = [("linear", r) for r in REGIMES] + [("relu", (2, 40, k, sc, None, None, None))
                                                for sc in (0.5, 2.0) for k in (4, 8, 16)]
    truths: dict = {}
    for kind, (d, n, k, scale, up, decay, *iso) in rows:
        iso = iso[0] if iso else 0.1
        if only and not any(f"{d},{n},{k},{scale:g}" == o for o in only):
            continue
        errs, flags = [], set()
        for r in range(draws):
            if kind == "linear":
                key = (d, n, scale, up, decay, iso)
                if key not in truths:
                    truths[key] = T.noisy_linear(scale, n=n, d=d, k=1, ref_draws=512,
                                                 upstream=up, decay=decay, iso=iso).truth
                t = T.noisy_linear(scale, n=n, d=d, k=k, noise_seed=r, truth=truths[key],
                                   upstream=up, decay=decay, iso=iso)
            else:
                key = ("relu", scale)
                if key not in truths:
                    truths[key] = T.noisy_relu(scale, n=n, k=k, k_ref=1024).truth
                t = T.noisy_relu(scale, n=n, k=k, noise_seed=r, truth=truths[key])
            e = noisy_mi(t.s, t.sigma, mc_samples=2, seed=r, lower_bound=False, draws_stderr=True)
            errs.append(e.value / t.truth - 1)
            if e.settings.get("accuracy_flag"):
                why = "k=2" if e.settings["accuracy_flag"].startswith("k=2") else "few inputs"
                flags.add(f"{why} (±{e.settings['bias_bound']:.0%})")
        bias = statistics.mean(errs)
        flag = "; ".join(sorted(flags)) or "–"
        ok = "yes" if abs(bias) <= 0.05 else ("flagged" if flags else "**no**")
        print(f"| {t.name} | {d} | {n} | {k} | {t.truth:.3f} | {math.log(n):.2f} "
              f"| {bias:+.1%} ± {statistics.stdev(errs):.1%} | {flag} | {ok} |", flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


p = argparse.ArgumentParser()
p.add_argument("--draws", type=int, default=8)
p.add_argument("--before-after", action="store_true")
p.add_argument("--only", nargs="*", default=[], help="rows d,N,k,scale only (e.g. 128,118,4,0.5)")
args = p.parse_args()
if not args.before_after:
    regime_table(args.draws, args.only)
    sys.exit(0)
LINEAR = ((16, 0.4), (16, 0.8), (32, 0.3), (32, 0.4), (32, 0.6), (32, 0.8), (64, 0.5), (64, 0.8),
          (64, 1.6))
DRAWS = 12
after = noise_aware._signal_cov


def before(between, noise, dof_between, dof_noise):  # the PSD part of B − V
    return noise_aware._psd_root(between - noise).matrix_power(2)


def errors(task, k, way):
    noise_aware._signal_cov = way
    out = []
    for r in range(DRAWS):
        t = T.noisy_linear(task[1], d=task[0], k=k, noise_seed=r, truth=truth[task])
        est = noisy_mi(t.s, t.sigma, mc_samples=4, seed=r, lower_bound=False)
        out.append(est.value / t.truth - 1)
    noise_aware._signal_cov = after
    return out


truth = {task: T.noisy_linear(task[1], d=task[0], k=1, ref_draws=2048).truth for task in LINEAR}
for k in (4, 8):
    print(f"\nk = {k}: mean relative error (bias) ± sd over {DRAWS} noise draws\n")
    print("| task | truth | before (PSD part of B − V) | after (MP edge) |")
    print("|---|---:|---:|---:|")
    worst = {"before": 0.0, "after": 0.0}
    for task in LINEAR:
        cells = []
        for name, way in (("before", before), ("after", after)):
            e = errors(task, k, way)
            bias = statistics.mean(e)
            worst[name] = max(worst[name], abs(bias))
            cells.append(f"{bias:+.1%} ± {statistics.stdev(e):.1%}")
        print(f"| linear{task[0]}d-x{task[1]:g} | {truth[task]:.3f} | {cells[0]} | {cells[1]} |")
    print(f"largest |bias|: before {worst['before']:.1%}, after {worst['after']:.1%}")

print("\n| task | truth | estimate |")
print("|---|---:|---:|")
for sc in (0.5, 2.0):
    t = T.noisy_relu(sc, n=40, k=8, k_ref=512)
    e = noisy_mi(t.s, t.sigma, mc_samples=4, seed=0, lower_bound=False)
    print(f"| {t.name} | {t.truth:.3f} | {e.value:.3f} ({e.value / t.truth - 1:+.1%}) |")
