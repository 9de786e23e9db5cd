"""infonce-paper: the paper's InfoNCE estimator, kept faithful (docs/method.md §5).

Concat critic (hidden 128, two ReLU layers) with its first layer factorised, K negatives drawn
from the batch; I(X;T): batch 128, K 512, lr 3e-4, ≤ 350 epochs; I(T;Ŷ): batch 512, K 256,
lr 5e-4, ≤ 250 epochs; AdamW, clip 5, early stop, mean of the last 5 epochs (ibtui.mi.trained).
"""

from typing import Any

from ibtui.mi.methods import register
from ibtui.mi.methods.base import Trained, TrainedOptions, floats, ints, opt

TERMS = {
    "xt": {"batch_size": 128, "negatives": 512, "lr": 3e-4},
    "ty": {"batch_size": 512, "negatives": 256, "lr": 5e-4},
}
SCHEDULES = {"paper": {"max_epochs_xt": 350, "max_epochs_ty": 250},
             "quick": {"max_epochs_xt": 40, "max_epochs_ty": 30}}
EPOCHS_HELP = "most epochs for I({}) (null = from `schedule`: {} paper, {} quick)"


def _epochs_help(term: str, label: str) -> str:
    key = f"max_epochs_{term}"
    return EPOCHS_HELP.format(label, SCHEDULES["paper"][key], SCHEDULES["quick"][key])


class InfoncePaperOptions(TrainedOptions):
    max_epochs_xt: ints(1, 100000, null=True) = opt(None, _epochs_help("xt", "X;T"))
    max_epochs_ty: ints(1, 100000, null=True) = opt(None, _epochs_help("ty", "T;Ŷ"))
    batch_xt: ints(1, 1 << 20) = opt(TERMS["xt"]["batch_size"], "batch size for I(X;T)")
    batch_ty: ints(1, 1 << 20) = opt(TERMS["ty"]["batch_size"], "batch size for I(T;Ŷ)")
    negatives_xt: ints(1, 1 << 20) = opt(TERMS["xt"]["negatives"], "negatives K for I(X;T)")
    negatives_ty: ints(1, 1 << 20) = opt(TERMS["ty"]["negatives"], "negatives K for I(T;Ŷ)")
    lr_xt: floats(1e-8, 1.0) = opt(TERMS["xt"]["lr"], "learning rate for I(X;T)")
    lr_ty: floats(1e-8, 1.0) = opt(TERMS["ty"]["lr"], "learning rate for I(T;Ŷ)")
    hidden: ints(1, 1 << 16) = opt(128, "critic hidden width")
    early_stop_delta: floats(0.0, 1e3) = opt(1e-2, "nats: least improvement for early stopping")
    early_stop_patience: ints(0, 100000) = opt(10, "epochs without improvement before stopping "
                                                   "(0 = never stop early)")
    last_epochs: ints(1, 1000) = opt(5, "value = mean of the last n epochs")


@register
class InfoncePaper(Trained):
    name = "infonce-paper"
    Options = InfoncePaperOptions
    schedules = SCHEDULES
    summary = "the paper's InfoNCE: concat critic, K negatives from the batch"
    fit = "infonce_paper"

    @classmethod
    def kwargs(cls, opts: dict, term: str) -> dict[str, Any]:
        return {key: opts[key] for key in ("weight_decay", "grad_clip", "early_stop_delta",
                                           "early_stop_patience", "last_epochs", "hidden")} | {
            "batch_size": opts[f"batch_{term}"], "negatives": opts[f"negatives_{term}"],
            "lr": opts[f"lr_{term}"], "max_epochs": opts[f"max_epochs_{term}"]}

    @classmethod
    def plain_defaults(cls, options: dict) -> dict[str, Any]:
        schedule = SCHEDULES[options.pop("schedule", "paper")]
        term = options.pop("term", "xt")
        return {**TERMS[term], "max_epochs": schedule[f"max_epochs_{term}"]}
