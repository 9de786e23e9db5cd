"""mine: the Donsker–Varadhan bound (the paper's comparison), same critic design as
infonce-separable, marginal pairs by shifts of the batch, held-out value, 3-fold cross-fitting
(ibtui.mi.trained.mine). `mine_ema = 0.01` gives the paper's moving-average gradient."""

from typing import Any

from ibtui.mi import trained
from ibtui.mi.methods import register
from ibtui.mi.methods.base import StepOptions, Trained, floats, ints, opt

SCHEDULES = {"paper": {"mine_steps": 4000}, "quick": {"mine_steps": 1000}}


class MineOptions(StepOptions):
    mine_batch: ints(2, 1 << 20) = opt(512, "batch size")
    mine_steps: ints(1, 10_000_000, null=True) = opt(
        None, f"most optimiser steps (null = from `schedule`: {SCHEDULES['paper']['mine_steps']} "
              f"paper, {SCHEDULES['quick']['mine_steps']} quick)")
    mine_epochs: ints(1, 100000, null=True) = opt(
        None, "legacy: converted to steps (epochs x batches per epoch)")
    mine_lr: floats(1e-8, 1.0) = opt(5e-4, "learning rate")
    mine_ema: floats(1e-6, 1.0) = opt(
        1.0, "rate of the moving average of E[e^f] in MINE's gradient (1 = the batch's own mean: "
             "bounded, stable at high MI)")
    mine_hidden: ints(1, 1 << 16) = opt(64, "critic hidden width")


@register
class Mine(Trained):
    name = "mine"
    Options = MineOptions
    schedules = SCHEDULES
    summary = "MINE (Donsker–Varadhan), held-out value, cross-fitted"
    fit = staticmethod(trained.mine)

    @classmethod
    def kwargs(cls, opts: dict, term: str) -> dict[str, Any]:
        return {**StepOptions.step_kwargs(opts), "batch_size": opts["mine_batch"],
                "lr": opts["mine_lr"], "hidden": opts["mine_hidden"], "ema": opts["mine_ema"],
                "max_steps": opts["mine_steps"], "max_epochs": opts["mine_epochs"]}

    @classmethod
    def plain_defaults(cls, options: dict) -> dict[str, Any]:
        return {"max_steps": SCHEDULES[options.pop("schedule", "paper")]["mine_steps"]}
