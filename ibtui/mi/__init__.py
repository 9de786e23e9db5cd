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

from ibtui.mi.checkpoint import estimate_checkpoint
from ibtui.mi.estimate import estimate
from ibtui.mi.methods import DEFAULT_METHOD, ESTIMATORS, METHODS, register
from ibtui.mi.methods.base import Estimator
from ibtui.mi.noise_aware import noisy_mi, noisy_mi_ty
from ibtui.mi.options import validate_mi_options
from ibtui.mi.result import MIEstimate
from ibtui.mi.sanity import sanity_checks

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
