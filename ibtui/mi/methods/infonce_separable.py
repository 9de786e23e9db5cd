"""infonce-separable: separable critic with a Gaussian-form path (bilinear + quadratic, trained
first) and an MLP path, in-batch negatives, budgets in optimiser steps with a convergence rule,
evaluated on held-out pairs with 3-fold cross-fitting (ibtui.mi.trained.infonce_separable)."""

from ibtui.mi.methods import register
from ibtui.mi.methods.base import StepTrained, floats, ints, opt, step_options


class InfonceSeparableOptions(step_options("separable", 256, "batch size (in-batch negatives)",
                                           1e-3)):
    separable_dim: ints(1, 4096) = opt(32, "embedding dimension of the separable critic")
    separable_holdout: floats(0.05, 0.95) = opt(
        0.3, "share of pairs held out for evaluating the bound")


@register
class InfonceSeparable(StepTrained):
    name = "infonce-separable"
    prefix = "separable"
    Options = InfonceSeparableOptions
    own = {"embed": "separable_dim", "holdout": "separable_holdout"}
    summary = "InfoNCE with a separable critic, held-out value, cross-fitted"
    fit = "infonce_separable"
