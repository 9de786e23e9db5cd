"""Mutual-information engine of ibtui (docs/method.md §5, docs/mi.md).

Public API:
- estimate(a, b, method=..., **options) -> MIEstimate     trained estimators on samples
- noisy_mi(s, sigma, ...) -> MIEstimate                   noise-aware I(X;T)
- noisy_mi_ty(s, weight, sigma_ty, ...) -> MIEstimate     noise-aware I(T;Ŷ)
- estimate_checkpoint(model, x, subsets, ...) -> records  class-wise MI of one checkpoint
- sanity_checks(records, ...) -> flags                    the sanity checks of docs/method.md §5
- METHODS, DEFAULT_METHOD, validate_mi_options(method, options)  the flat mi_options table
- ESTIMATORS, register, Estimator                          the estimator registry (methods/)
"""

import importlib

from ibtui.mi.estimate import estimate
from ibtui.mi.methods import DEFAULT_METHOD, ESTIMATORS, METHODS, register
from ibtui.mi.methods.base import Estimator
from ibtui.mi.options import validate_mi_options
from ibtui.mi.result import MIEstimate
from ibtui.mi.sanity import sanity_checks

# imported on first use: reading the registry (`ibtui run`, spec validation, the compose form)
# imports no torch
_NEEDS_TORCH = {"estimate_checkpoint": "checkpoint", "noisy_mi": "noise_aware",
                "noisy_mi_ty": "noise_aware"}


def __getattr__(name: str):
    if name in _NEEDS_TORCH:
        return getattr(importlib.import_module(f"{__name__}.{_NEEDS_TORCH[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
           "DEFAULT_METHOD",
           "ESTIMATORS",
           "METHODS",
           "Estimator",
           "MIEstimate",
           "estimate",
           "estimate_checkpoint",
           "noisy_mi",
           "noisy_mi_ty",
           "register",
           "sanity_checks",
           "validate_mi_options",
]
