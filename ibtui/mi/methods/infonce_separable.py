"""infonce-separable: separable critic with a Gaussian-form path (bilinear + quadratic, trained
first) and an MLP path, in-batch negatives, budgets in optimiser steps with a convergence rule,
evaluated on held-out pairs with 3-fold cross-fitting (ibtui.mi.trained.infonce_separable)."""

from typing import Any

from ibtui.mi import trained
from ibtui.mi.methods import register
from ibtui.mi.methods.base import StepOptions, Trained, floats, ints, opt

SCHEDULES = {"paper": {"separable_steps": 4000}, "quick": {"separable_steps": 1000}}


class InfonceSeparableOptions(StepOptions):
    separable_batch: ints(2, 1 << 20) = opt(256, "batch size (in-batch negatives)")
    separable_steps: ints(1, 10_000_000, null=True) = opt(
        None, f"most optimiser steps (null = from `schedule`: {SCHEDULES['paper']['separable_steps']} "
              f"paper, {SCHEDULES['quick']['separable_steps']} quick)")
    separable_epochs: ints(1, 100000, null=True) = opt(
        None, "legacy: converted to steps (epochs x batches per epoch)")
    separable_lr: floats(1e-8, 1.0) = opt(1e-3, "learning rate")
    separable_dim: ints(1, 4096) = opt(32, "embedding dimension of the separable critic")
    separable_holdout: floats(0.05, 0.95) = opt(
        0.3, "share of pairs held out for evaluating the bound")


@register
class InfonceSeparable(Trained):
    name = "infonce-separable"
    Options = InfonceSeparableOptions
    schedules = SCHEDULES
    summary = "InfoNCE with a separable critic, held-out value, cross-fitted"
    fit = staticmethod(trained.infonce_separable)

    @classmethod
    def kwargs(cls, opts: dict, term: str) -> dict[str, Any]:
        return {**StepOptions.step_kwargs(opts), "batch_size": opts["separable_batch"],
                "lr": opts["separable_lr"], "embed": opts["separable_dim"],
                "max_steps": opts["separable_steps"], "max_epochs": opts["separable_epochs"],
                "holdout": opts["separable_holdout"]}

    @classmethod
    def plain_defaults(cls, options: dict) -> dict[str, Any]:
        return {"max_steps": SCHEDULES[options.pop("schedule", "paper")]["separable_steps"]}
