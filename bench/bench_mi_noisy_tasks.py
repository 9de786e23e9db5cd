"""Noise-aware I(X;T) (default conditional) on the ground-truth tasks with k > 1 draws, old way
vs new way in one run: the true means' covariance estimated as the PSD part of B − V (before)
or by the Marchenko–Pastur edge (after, `noise_aware._signal_cov`).

Noisy linear nets (16-, 32-, 64-d T, exact truth by whitening, 2,048 reference draws per input):
each task is measured on 12 independent noise draws (same network, same inputs, same truth), so
the mean error is the estimator's bias and the sd its spread over noise draws; at k = 4 (the
validation tasks) and k = 8 (the runs' default). Small noisy ReLU nets (truth: a mixture over
512 draws): one draw each.

    .venv/bin/python bench/bench_mi_noisy_tasks.py
"""

import statistics

import torch

from ibtui.mi import noise_aware, noisy_mi
from ibtui.mi import tasks as T

torch.set_num_threads(1)
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
