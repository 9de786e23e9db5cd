"""Cost of the measurement scale per MI checkpoint, and its values, on saved S draws.

    python bench/bench_measurement_scale.py DRAWS.pt SUBSETS.pt

DRAWS.pt: {"s": (U, k, d) noiseless draws of S for the union of a checkpoint's images,
"index": the union's image ids, "sigma_t": σ_T}; SUBSETS.pt: {name: image ids} (what
`estimate_checkpoint` receives). Before = I(X;T) at the network's own noise (xt_scale 0: one
noisy_mi per subset with its held-out lower bound); after = the default (xt_scale 0.5: the same
at σ² = σ_T² + σ_m², plus the network-noise value without bounds). One thread; prints the seconds
of each and their ratio from this one run, and the values.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from ibtui.mi.noise_aware import measurement_sigma, noisy_mi


def main(draws_path: str, subsets_path: str) -> None:
    torch.set_num_threads(1)
    d = torch.load(draws_path, weights_only=False)
    subsets = torch.load(subsets_path, weights_only=False)
    s, union, sigma_t = d["s"].double(), d["index"], float(d["sigma_t"])
    parts = {n: s[torch.as_tensor(np.searchsorted(union, idx))] for n, idx in subsets.items()}

    t0 = time.perf_counter()
    before = {n: noisy_mi(p, sigma_t, seed=1) for n, p in parts.items()}
    t_before = time.perf_counter() - t0

    t0 = time.perf_counter()
    sigma, info = measurement_sigma(s, sigma_t, 0.5)
    after = {n: noisy_mi(p, sigma, seed=1) for n, p in parts.items()}
    own = {n: noisy_mi(p, sigma_t, seed=1, lower_bound=False, bracket=False).value
           for n, p in parts.items()}
    t_after = time.perf_counter() - t0

    print(f"σ_T {sigma_t:.3f}, spread {info['spread']:.3f}, σ_m {info['sigma_m']:.3f}, "
          f"σ {sigma:.3f}; log N = {next(iter(before.values())).ceiling:.3f}")
    print(f"{'subset':<12} {'before [lower, est]':>22} {'after [lower, est]':>22} {'own':>6}")
    for n in parts:
        b, a = before[n], after[n]
        print(f"{n:<12} [{b.lower:6.3f}, {b.value:6.3f}]{'':8} [{a.lower:6.3f}, {a.value:6.3f}]"
              f"{'':8} {own[n]:6.3f}")
    print(f"seconds for every subset's I(X;T): before {t_before:.2f}, after {t_after:.2f} "
          f"({t_after / t_before:.2f}x)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
