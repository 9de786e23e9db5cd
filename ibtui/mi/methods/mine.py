"""mine: the Donsker–Varadhan bound (the paper's comparison), same critic design as
infonce-separable, marginal pairs by shifts of the batch, held-out value, 3-fold cross-fitting
(ibtui.mi.trained.mine). `mine_ema = 0.01` gives the paper's moving-average gradient."""

from ibtui.mi.methods import register
from ibtui.mi.methods.base import StepTrained, floats, ints, opt, step_options


class MineOptions(step_options("mine", 512, "batch size", 5e-4)):
    mine_ema: floats(1e-6, 1.0) = opt(
        1.0, "rate of the moving average of E[e^f] in MINE's gradient (1 = the batch's own mean: "
             "bounded, stable at high MI)")
    mine_hidden: ints(1, 1 << 16) = opt(64, "critic hidden width")


@register
class Mine(StepTrained):
    name = prefix = "mine"
    Options = MineOptions
    own = {"ema": "mine_ema", "hidden": "mine_hidden"}
    summary = "MINE (Donsker–Varadhan), held-out value, cross-fitted"
    fit = "mine"
