"""Class-wise MI at one training checkpoint, sharing the network's work across subsets.

One set of forward passes over the union of all subsets' images feeds every subset, both terms
and every method (the estimators of ibtui/mi/methods, looked up by name): as many noisy draws of
S per image as the most any selected estimator asks for (noise-aware: mi_options.k), and the
first draw's T and softmax(logits) when one trains on sample pairs (drawn once per image per
estimate; the critic then trains on fixed pairs — the authors instead re-run the network every
batch, which changes the noise each epoch but not the quantity estimated). Each estimator then
`prepare`s once per checkpoint and `measure`s each (term, subset) with a seed of its own.
Sample pairs: I(X;T): a = the image as the model sees it before normalisation (float in [0,1],
flattened NHWC, 3072-d), b = T; I(T;Ŷ): a = T, b = softmax probabilities. The sample-based
methods always measure the network's own T (the authors' quantity); noise-aware measures I(X;T)
at a scale that follows the representation (methods/noise_aware.py).
Subsets with fewer than 2 images are skipped (no record).

Record fields: term, subset, method, value, n, settings, seconds, and
- lower: a lower bound on the true MI where one is certified (noise-aware I(X;T): the held-out
  Barber–Agakov bound; noise-aware I(T;Ŷ) and k = 1: the Kolchinsky–Tracey bound), else None;
- upper: an upper bound (noise-aware I(X;T) with k > 1: log N), else None;
- ceiling: the most the estimator can return (log N, log(K+1), log B), None for MINE;
- at_ceiling: value within CEILING_MARGIN (0.1 nats) of the ceiling (then it says only "≥");
- converged: trained estimators: whether the convergence rule fired before the step budget
  (False = "did not converge"); None for noise-aware (no training).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ibtui.mi.methods import get, validate_methods
from ibtui.mi.methods.base import Checkpoint, Job
from ibtui.mi.options import validate_mi_options
from ibtui.models.noisy import folded_copy

Progress = Callable[[float, str], None] | None
CEILING_MARGIN = 0.1  # nats: a value this close to its ceiling is flagged `at_ceiling`


def _job_seed(seed: int, *parts: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32("/".join(parts).encode())) % (2**31 - 1)


@torch.no_grad()
def forward_draws(model, x: torch.Tensor, index: np.ndarray, k: int, batch: int,
                  keep_samples: bool, progress: Progress = None) -> dict[str, Any]:
    """k draws of S per image (U, k, d); first draw's T and probabilities if keep_samples."""
    dev = x.device
    s_all, t_all, p_all = [], [], []
    idx_t = torch.as_tensor(index, dtype=torch.long, device=dev)
    for start in range(0, len(idx_t), batch):
        xb = x[idx_t[start : start + batch]]
        draws = []
        for j in range(k):
            s, t, logits = model.forward_mi(xb)
            draws.append(s.float())
            if j == 0 and keep_samples:
                t_all.append(t.float())
                p_all.append(torch.softmax(logits.float(), 1))
        s_all.append(torch.stack(draws, 1))
        if progress:
            progress(min(start + batch, len(idx_t)) / len(idx_t), "forward passes")
    return {"s": torch.cat(s_all), "t": torch.cat(t_all) if t_all else None,
            "p": torch.cat(p_all) if p_all else None, "sigma_t": float(model.sigma_t)}


def default_forward_batch(device: Any) -> int:
    """Images per forward pass when mi_options.forward_batch is null: the fastest measured
    (bench/bench_mi_floor.py). CPU: 128 (the activations stay in cache: 1024 was 1.9x slower
    on the default run's model, 64-256 within a few percent of each other); CUDA: 1024 (large
    batches fill the GPU; bench/gpu_check.py measures 256-2048)."""
    return 1024 if torch.device(device).type == "cuda" else 128


def estimate_checkpoint(model, x: torch.Tensor, subsets: dict[str, np.ndarray], *,
                        methods: list[str], options: dict, seed: int, device: Any,
                        progress: Progress = None) -> list[dict]:
    """One record per (term, subset, method); see the module doc and ibtui.mi.__init__."""
    methods = validate_methods(methods)
    opts = validate_mi_options(methods, options)
    rng = np.random.default_rng(seed)
    chosen: dict[str, np.ndarray] = {}
    for name, idx in subsets.items():
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if opts["max_samples"] and len(idx) > opts["max_samples"]:
            idx = np.sort(rng.choice(idx, opts["max_samples"], replace=False))
        if len(idx) >= 2:
            chosen[name] = idx
    if not chosen:
        return []
    union = np.unique(np.concatenate(list(chosen.values())))
    estimators = {m: get(m) for m in methods}
    k = max(cls.draws(opts) for cls in estimators.values())
    samples = any(cls.samples for cls in estimators.values())
    report = progress or (lambda frac, detail: None)
    fwd_share = 0.05 if samples else 0.3  # trained estimators take the time

    t0 = time.perf_counter()
    devices = [x.device] if x.device.type == "cuda" else []
    batch = opts["forward_batch"] or default_forward_batch(x.device)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        # every distinct image once per draw, BatchNorm folded (the model is left as it was)
        draws = forward_draws(folded_copy(model), x, union, k, batch, samples,
                              lambda f, d: report(fwd_share * f, d))
    fwd_seconds = time.perf_counter() - t0
    ck = Checkpoint(x=x, union=union, s=draws["s"], t=draws["t"], p=draws["p"],
                    sigma_t=draws["sigma_t"], sigma_ty=float(model.noise_ty),
                    weight=model.classifier.weight.detach())
    sigma_t, sigma_ty = ck.sigma_t, ck.sigma_ty
    # once per checkpoint for every subset (noise-aware: the measurement scale of all images)
    prepared = {m: cls.prepare(ck, opts) for m, cls in estimators.items()}

    jobs = [(term, name, m) for name in chosen for m in methods for term in ("xt", "ty")]
    records = []
    for done, (term, name, method) in enumerate(jobs):
        idx = chosen[name]
        pos = torch.as_tensor(np.searchsorted(union, idx), device=x.device)
        base = fwd_share + (1 - fwd_share) * done / len(jobs)
        step = (1 - fwd_share) / len(jobs)
        label = f"I({'X;T' if term == 'xt' else 'T;Ŷ'}) {name} {method}"
        report(base, label)

        def inner(f: float, d: str, base=base, step=step, label=label) -> None:
            report(base + step * f, f"{label}: {d}")

        job = Job(term=term, subset=name, images=idx, rows=pos,
                  seed=_job_seed(seed, term, name, method), progress=inner, ck=ck,
                  prepared=prepared[method])
        est = estimators[method].measure(job, opts)
        settings = {**est.settings, "k": k, "sigma_t": sigma_t, "sigma_ty": sigma_ty,
                    "forward_seconds_shared": fwd_seconds, "forward_batch": batch}
        at_ceiling = est.ceiling is not None and est.value >= est.ceiling - CEILING_MARGIN
        records.append({"term": term, "subset": name, "method": method, "value": est.value,
                        "lower": est.lower, "upper": est.upper, "ceiling": est.ceiling,
                        "at_ceiling": bool(at_ceiling),
                        "converged": est.settings.get("converged"),
                        "n": len(idx), "settings": settings, "seconds": est.seconds})
    report(1.0, "done")
    return records
