"""Cost of the measurement scale per MI checkpoint, and its values, on saved S draws.

    python bench/bench_measurement_scale.py                       # makes the draws first
    python bench/bench_measurement_scale.py DRAWS.pt SUBSETS.pt   # or uses saved ones

Without arguments it runs the default experiments.toml's BadNets run (digits, ResNet-18 width 8,
12 epochs, MI at 1, 4, 8, 12; a few minutes on 2 cores) in a temporary runs directory, saving
each checkpoint's draws beside it, and benches the last checkpoint.
DRAWS.pt: {"s": (U, k, d) noiseless draws of S for the union of a checkpoint's images,
"index": the union's image ids, "sigma_t": σ_T}; SUBSETS.pt: {name: image ids} (what
`estimate_checkpoint` receives). Before = I(X;T) at the network's own noise (xt_scale 0: one
noisy_mi per subset with its held-out lower bound); after = the default (xt_scale 0.5: the same
at σ² = σ_T² + σ_m², plus the network-noise value without bounds). One thread; prints the seconds
of each and their ratio from this one run, and the values.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ibtui.mi.noise_aware import measurement_sigma, noisy_mi


def make_draws(out: Path) -> tuple[str, str]:
    """Run the default BadNets experiment, saving every checkpoint's draws and subsets."""
    import ibtui.experiment.measure as measure
    import ibtui.mi.checkpoint as checkpoint
    from ibtui.experiment.run import Experiment
    from ibtui.runs.scheduler import create_runs
    from ibtui.spec import load_spec

    root = Path(__file__).resolve().parent.parent
    specs = [x for x in load_spec(root / "experiments.toml") if x.values["attack"] == "badnets"]
    (run_dir,) = create_runs(specs[:1], out / "runs")
    real_draws, real_estimate, n = checkpoint.forward_draws, measure.estimate_checkpoint, [0]

    def draws(model, x, index, *a, **k):
        r = real_draws(model, x, index, *a, **k)
        torch.save({"s": r["s"], "index": index, "sigma_t": r["sigma_t"]}, out / f"draws{n[0]}.pt")
        return r

    def estimate(model, x, subsets, **k):
        n[0] += 1
        torch.save(subsets, out / f"subsets{n[0]}.pt")
        return real_estimate(model, x, subsets, **k)

    checkpoint.forward_draws, measure.estimate_checkpoint = draws, estimate
    Experiment(run_dir).run()
    return str(out / f"draws{n[0]}.pt"), str(out / f"subsets{n[0]}.pt")


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
    if len(sys.argv) == 3:
        main(sys.argv[1], sys.argv[2])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(*make_draws(Path(tmp)))
