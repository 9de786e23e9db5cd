"""noise-aware I(X;T) (default conditional) on every ground-truth task with k > 1 draws: the noisy
linear nets (16-, 32-, 64-d T, exact truth by whitening) and the small noisy ReLU nets (truth: a
mixture over 512 draws). Prints truth, estimate and relative error; run it on two commits for a
before/after.

    .venv/bin/python bench/bench_mi_noisy_tasks.py
"""

import torch

from ibtui.mi import noisy_mi
from ibtui.mi import tasks as T

torch.set_num_threads(1)
tasks = [T.noisy_linear(sc, d=d, k=4, ref_draws=16)
         for d, sc in ((16, 0.4), (16, 0.8), (32, 0.3), (32, 0.4), (32, 0.6), (32, 0.8),
                       (64, 0.5), (64, 0.8), (64, 1.6))]
tasks += [T.noisy_relu(sc, n=40, k=8, k_ref=512) for sc in (0.5, 2.0)]
errors = []
print("| task | truth | estimate |")
print("|---|---:|---:|")
for t in tasks:
    e = noisy_mi(t.s, t.sigma, mc_samples=4, seed=0, lower_bound=False)
    errors.append(abs(e.value / t.truth - 1))
    print(f"| {t.name} | {t.truth:.3f} | {e.value:.3f} ({e.value / t.truth - 1:+.1%}) |")
print(f"mean absolute relative error {sum(errors) / len(errors):.1%}")
