"""`estimate(a, b, method=..., **options)`: sample-based MI on plain tensors.

a: (N, d_a), b: (N, d_b) paired samples (torch or numpy; float). Methods: "infonce-paper",
"infonce-separable", "mine" (see ibtui.mi.trained). The noise-aware estimator needs the noise
model rather than samples: use `noisy_mi` / `noisy_mi_ty`.

infonce-paper options: term = "xt" (batch 128, K 512, lr 3e-4, 350 epochs) or "ty" (batch 512,
K 256, lr 5e-4, 250 epochs); schedule = "paper" | "quick" (quick: 40 / 30 epochs); any of
batch_size, negatives, lr, max_epochs, hidden, weight_decay, grad_clip, early_stop_delta,
early_stop_patience, last_epochs, seed, progress overrides. Runs leave the global RNG as found.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ibtui.mi import trained
from ibtui.mi.options import SCHEDULES
from ibtui.mi.result import MIEstimate

PAPER_TERMS = {
    "xt": {"batch_size": 128, "negatives": 512, "lr": 3e-4},
    "ty": {"batch_size": 512, "negatives": 256, "lr": 5e-4},
}
SAMPLE_METHODS = ("infonce-paper", "infonce-separable", "mine")


def _tensor(x: Any) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    t = t.float()
    return t.reshape(len(t), -1)


def estimate(a: Any, b: Any, method: str = "infonce-paper", **options: Any) -> MIEstimate:
    """Estimate I(A;B) in nats from N paired samples with a trained critic."""
    a, b = _tensor(a), _tensor(b).to(_tensor(a).device)
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same number of rows ({len(a)} != {len(b)})")
    schedule = SCHEDULES[options.pop("schedule", "paper")]
    if method == "infonce-paper":
        term = options.pop("term", "xt")
        kwargs = {**PAPER_TERMS[term], "max_epochs": schedule[f"max_epochs_{term}"], **options}
        fn = trained.infonce_paper
    elif method == "infonce-separable":
        kwargs = {"max_steps": schedule["separable_steps"], **options}
        fn = trained.infonce_separable
    elif method == "mine":
        kwargs = {"max_steps": schedule["mine_steps"], **options}
        fn = trained.mine
    elif method == "noise-aware":
        raise ValueError("noise-aware needs the noise model, not samples: use "
                         "ibtui.mi.noisy_mi(s, sigma) or noisy_mi_ty(s, weight, sigma_ty)")
    else:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(SAMPLE_METHODS)}")
    devices = [a.device] if a.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return fn(a, b, **kwargs)
