"""`estimate(a, b, method=..., **options)`: sample-based MI on plain tensors.

a: (N, d_a), b: (N, d_b) paired samples (torch or numpy; float). Methods: the registered
estimators that train on samples ("infonce-paper", "infonce-separable", "mine": ibtui.mi.methods,
ibtui.mi.trained). The noise-aware estimator needs the noise model rather than samples: use
`noisy_mi` / `noisy_mi_ty`.

infonce-paper options: term = "xt" (batch 128, K 512, lr 3e-4, 350 epochs) or "ty" (batch 512,
K 256, lr 5e-4, 250 epochs); schedule = "paper" | "quick" (quick: 40 / 30 epochs); any of
batch_size, negatives, lr, max_epochs, hidden, weight_decay, grad_clip, early_stop_delta,
early_stop_patience, last_epochs, seed, progress overrides. Runs leave the global RNG as found.
"""

from __future__ import annotations

from typing import Any

from ibtui.mi.methods import ESTIMATORS
from ibtui.mi.methods.base import Trained
from ibtui.mi.result import MIEstimate


def sample_methods() -> tuple[str, ...]:
    return tuple(n for n, cls in ESTIMATORS.items() if issubclass(cls, Trained))


def estimate(a: Any, b: Any, method: str = "infonce-paper", **options: Any) -> MIEstimate:
    """Estimate I(A;B) in nats from N paired samples with a trained critic."""
    cls = ESTIMATORS.get(method)
    if cls is not None and not issubclass(cls, Trained):
        raise ValueError(f"{method} does not estimate from samples ({cls.summary}): see "
                         f"{cls.__module__}; on samples: {', '.join(sample_methods())}")
    if cls is None:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(sample_methods())}")
    kwargs = cls.plain_defaults(options)
    return cls.run(a, b, **{**kwargs, **options})
