"""Method names and the flat `mi_options` dict shared by every method of a run.

`validate_mi_options(method, options)` fills defaults and raises `SpecError` with
"mi_options.<key>: <what is wrong>; allowed: <...>" for unknown keys, wrong types and values
out of range. Keys that belong to another method are accepted (one dict serves all methods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ibtui.errors import SpecError

METHODS: tuple[str, ...] = ("noise-aware", "infonce-paper", "infonce-separable", "mine")
DEFAULT_METHOD = "noise-aware"

# epochs that depend on `schedule` (None in OPTIONS = taken from here)
SCHEDULES: dict[str, dict[str, int]] = {
    "paper": {"max_epochs_xt": 350, "max_epochs_ty": 250, "separable_steps": 4000,
              "mine_steps": 4000},
    "quick": {"max_epochs_xt": 40, "max_epochs_ty": 30, "separable_steps": 1000,
              "mine_steps": 1000},
}


@dataclass(frozen=True)
class Opt:
    kind: type  # int, float, bool or str
    default: Any
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    help: str = ""

    def allowed(self) -> str:
        if self.choices:
            text = " | ".join(repr(c) for c in self.choices)
        elif self.kind is bool:
            text = "true | false"
        else:
            text = f"{self.kind.__name__} in [{self.lo:g}, {self.hi:g}]"
        return text + (" or null" if self.nullable else "")


OPTIONS: dict[str, Opt] = {
    # noise-aware (sample propagation, Goldfeld et al. 2019)
    "k": Opt(int, 8, 1, 1024, help="noisy forward draws of S per image"),
    "mc_samples": Opt(int, 1, 1, 256, help="Monte Carlo noise draws per mixture component"),
    "bracket": Opt(bool, True, help="also compute the Kolchinsky-Tracey bracket"),
    "xt_conditional": Opt(str, "full", choices=("full", "diagonal", "gaussian", "draws"),
                          help="T|X: Gaussian with a shared full within-input covariance "
                               "(shrinkage chosen on held-out draws; captures correlated "
                               "upstream noise), the former diagonal one ('diagonal' = "
                               "'gaussian'), or the mixture of the k draws (exact as k grows)"),
    "xt_scale": Opt(float, 0.5, 0.0, 100.0,
                    help="I(X;T) is measured on T + σ_m Z with σ_m = xt_scale × the spread of "
                         "the representation at the checkpoint (RMS per coordinate of the "
                         "images' mean S over every measured subset): clustering at a scale "
                         "that follows the representation, so the curves move instead of "
                         "sitting at log N. 0 = the network's own noise only (the paper's "
                         "quantity; also recorded as settings.network_noise_value)"),
    "ty_target": Opt(str, "probs", choices=("probs", "logits"),
                     help="I(T;Y^) with Y^ = probability vector (9-d) or the 10 logits"),
    "precision": Opt(str, "float64", choices=("float64", "float32"),
                     help="dtype of the pairwise-distance computations"),
    "chunk_mb": Opt(int, 256, 1, 1 << 20, help="memory per distance chunk (MiB)"),
    # shared by every method
    "forward_batch": Opt(int, None, 1, 1 << 16, nullable=True,
                         help="images per forward pass (null = the device's fastest: 128 on "
                              "CPU, 1024 on CUDA)"),
    "max_samples": Opt(int, None, 2, 1 << 30, nullable=True,
                       help="subsample subsets larger than this (null = all)"),
    "schedule": Opt(str, "paper", choices=tuple(SCHEDULES),
                    help="epoch defaults of the trained estimators"),
    # infonce-paper (docs/method.md §5)
    "max_epochs_xt": Opt(int, None, 1, 100000, nullable=True),
    "max_epochs_ty": Opt(int, None, 1, 100000, nullable=True),
    "batch_xt": Opt(int, 128, 1, 1 << 20),
    "batch_ty": Opt(int, 512, 1, 1 << 20),
    "negatives_xt": Opt(int, 512, 1, 1 << 20),
    "negatives_ty": Opt(int, 256, 1, 1 << 20),
    "lr_xt": Opt(float, 3e-4, 1e-8, 1.0),
    "lr_ty": Opt(float, 5e-4, 1e-8, 1.0),
    "hidden": Opt(int, 128, 1, 1 << 16),
    "weight_decay": Opt(float, 1e-4, 0.0, 1.0),
    "grad_clip": Opt(float, 5.0, 0.0, 1e6, help="0 = no clipping"),
    "early_stop_delta": Opt(float, 1e-2, 0.0, 1e3),
    "early_stop_patience": Opt(int, 10, 0, 100000, help="0 = never stop early"),
    "last_epochs": Opt(int, 5, 1, 1000, help="value = mean of the last n epochs"),
    # infonce-separable and mine: budgets in optimiser steps with a convergence rule
    "separable_batch": Opt(int, 256, 2, 1 << 20),
    "separable_steps": Opt(int, None, 1, 10_000_000, nullable=True,
                           help="most optimiser steps (null = from `schedule`)"),
    "separable_epochs": Opt(int, None, 1, 100000, nullable=True,
                            help="legacy: converted to steps (epochs x batches per epoch)"),
    "separable_lr": Opt(float, 1e-3, 1e-8, 1.0),
    "separable_dim": Opt(int, 32, 1, 4096),
    "separable_holdout": Opt(float, 0.3, 0.05, 0.95, help="share of pairs held out for "
                             "evaluating the bound"),
    "mine_batch": Opt(int, 512, 2, 1 << 20),
    "mine_steps": Opt(int, None, 1, 10_000_000, nullable=True,
                      help="most optimiser steps (null = from `schedule`)"),
    "mine_epochs": Opt(int, None, 1, 100000, nullable=True,
                       help="legacy: converted to steps (epochs x batches per epoch)"),
    "mine_lr": Opt(float, 5e-4, 1e-8, 1.0),
    "mine_ema": Opt(float, 1.0, 1e-6, 1.0, help="rate of the moving average of E[e^f] in MINE's "
                    "gradient (1 = the batch's own mean: bounded, stable at high MI)"),
    "mine_hidden": Opt(int, 64, 1, 1 << 16),
    "standardise": Opt(str, "rank", choices=("rank", "zscore", "none"),
                       help="input standardisation of infonce-separable and mine (rank = "
                            "per-coordinate Gaussianisation, MI-invariant)"),
    "converge_tol": Opt(float, 0.005, 0.0, 10.0, help="nats: least held-out improvement "
                        "that resets the convergence rule"),
    "converge_patience": Opt(int, 10, 0, 100000, help="held-out evaluations without "
                             "improvement before a stage stops (0 = run the whole budget)"),
    "eval_every": Opt(int, 50, 1, 100000, help="optimiser steps between held-out evaluations"),
}


def _check(key: str, value: Any) -> Any:
    spec = OPTIONS[key]
    bad = f"mi_options.{key}: {value!r} is not allowed; allowed: {spec.allowed()}"
    if value is None:
        if spec.nullable:
            return None
        raise SpecError(f"mi_options.{key}: null is not allowed; allowed: {spec.allowed()}")
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise SpecError(bad)
        return value
    if spec.kind is str:
        if not isinstance(value, str) or (spec.choices and value not in spec.choices):
            raise SpecError(bad)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(bad)
    if spec.kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise SpecError(bad)
        value = int(value)
    else:
        value = float(value)
    if not (spec.lo <= value <= spec.hi):  # also rejects NaN
        raise SpecError(bad)
    return value


def validate_methods(method: str | list[str] | tuple[str, ...]) -> list[str]:
    names = [method] if isinstance(method, str) else list(method)
    out: list[str] = []
    for name in names:
        for part in str(name).split(","):
            part = part.strip()
            if part not in METHODS:
                raise SpecError(f"mi_method: unknown method {part!r}; allowed: "
                                f"{', '.join(METHODS)}")
            if part not in out:
                out.append(part)
    if not out:
        raise SpecError(f"mi_method: empty; allowed: {', '.join(METHODS)}")
    return out


def validate_mi_options(method: str | list[str], options: dict[str, Any] | None) -> dict:
    """Resolved options (every key, defaults filled, schedule epochs resolved).

    `method` is one name, a list, or a comma-separated string of names from METHODS.
    Idempotent: validating a resolved dict returns the same dict.
    """
    validate_methods(method)
    options = dict(options or {})
    unknown = sorted(k for k in options if k not in OPTIONS)
    if unknown:
        raise SpecError(f"mi_options.{unknown[0]}: unknown option; allowed: "
                        f"{', '.join(OPTIONS)}")
    out = {key: _check(key, options[key]) if key in options else spec.default
           for key, spec in OPTIONS.items()}
    for key, epochs in SCHEDULES[out["schedule"]].items():
        if out[key] is None:
            out[key] = epochs
    return out
