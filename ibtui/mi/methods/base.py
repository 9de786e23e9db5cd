"""What every MI estimator provides, and what the checkpoint code hands it.

An estimator is a subclass of `Estimator` in its own module of this package, registered with
`@register` (ibtui/mi/methods/__init__.py). It declares
- `name`: what `mi_method` names it by;
- `Options`: its own keys of the flat `mi_options` table, a `Schema` model (strict types,
  integral floats as integers, bounds, a description per field: docs/mi.md's table is made
  from it); keys several estimators share are declared once on a common base (`TrainedOptions`,
  `StepOptions`, or `step_options(prefix)` for the keys alike but for a prefix);
- `schedules`: values its null options take under `schedule = "paper" | "quick"`;
- `draws(opts)`: noisy forward draws of S per image it needs, `samples`: whether it needs the
  first draw's T and probabilities (sample pairs), `prepare(ck, opts)`: work done once per
  checkpoint for every subset, and `measure(job, opts)`: one term of one subset -> MIEstimate.
`opts` is the resolved flat table (every registered estimator's keys, defaults filled).
`Trained` is the base of the estimators that train a critic on sample pairs; it also serves
`ibtui.mi.estimate` on plain tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import create_model

from ibtui.mi.result import MIEstimate
from ibtui.schema import Int, Schema, SchemaField

if TYPE_CHECKING:
    import torch

Progress = Callable[[float, str], None]
SCHEDULE_NAMES = ("paper", "quick")


def ints(lo: int, hi: int, *, null: bool = False) -> Any:
    """An integer option in [lo, hi] (an integral float is read as its integer)."""
    return Annotated[Int | None if null else Int, SchemaField(ge=lo, le=hi)]


def floats(lo: float, hi: float) -> Any:
    """A finite number option in [lo, hi] (an integer is read as a number)."""
    return Annotated[float, SchemaField(ge=lo, le=hi, allow_inf_nan=False)]


def opt(default: Any, help: str = "") -> Any:
    return SchemaField(default, description=help)


class SharedOptions(Schema):
    """Options of the checkpoint itself, whatever the estimators."""

    forward_batch: ints(1, 1 << 16, null=True) = opt(
        None, "images per forward pass (null = the device's fastest: 128 on CPU, 1024 on CUDA)")
    max_samples: ints(2, 1 << 30, null=True) = opt(
        None, "subsample subsets larger than this (null = all)")
    schedule: Literal[SCHEDULE_NAMES] = opt(
        "paper", "budget defaults of the trained estimators (their null budgets)")


@dataclass
class Checkpoint:
    """One checkpoint's forward passes, shared by every subset, term and estimator."""

    x: torch.Tensor  # every image (N, 32, 32, 3) uint8, on the device
    union: np.ndarray  # sorted indices into x of every measured image
    s: torch.Tensor  # (len(union), k, d) draws of S (the input of the last noisy layer)
    t: torch.Tensor | None  # first draw's T, when some estimator needs sample pairs
    p: torch.Tensor | None  # first draw's softmax probabilities, likewise
    sigma_t: float  # the network's noise std at T
    sigma_ty: float  # its noise std before the classifier
    weight: torch.Tensor  # the classifier's weight


@dataclass
class Job:
    """One term of one subset for one estimator."""

    term: str  # "xt": I(X;T), "ty": I(T;Ŷ)
    subset: str
    images: np.ndarray  # indices into ck.x of the subset's images
    rows: torch.Tensor  # their rows in ck.s / ck.t / ck.p
    seed: int
    progress: Progress  # fraction of this job done, detail
    ck: Checkpoint
    prepared: Any = None  # what the estimator's `prepare` returned for this checkpoint

    @property
    def s(self) -> torch.Tensor:
        return self.ck.s[self.rows]

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample pairs: I(X;T): (the images as floats in [0, 1], flattened NHWC; T),
        I(T;Ŷ): (T; softmax probabilities)."""
        if self.term == "xt":
            import torch

            x = self.ck.x
            a = x[torch.as_tensor(self.images, device=x.device)].reshape(len(self.images), -1)
            return a.float().div_(255.0), self.ck.t[self.rows]
        return self.ck.t[self.rows], self.ck.p[self.rows]


class Estimator:
    name: ClassVar[str]
    Options: ClassVar[type[Schema]] = Schema
    schedules: ClassVar[dict[str, dict[str, int]]] = {}
    samples: ClassVar[bool] = True
    summary: ClassVar[str] = ""  # one line for help screens

    @classmethod
    def draws(cls, opts: dict) -> int:
        return 1

    @classmethod
    def prepare(cls, ck: Checkpoint, opts: dict) -> Any:
        return None

    @classmethod
    def measure(cls, job: Job, opts: dict) -> MIEstimate:
        raise NotImplementedError


def as_pairs(x: Any) -> torch.Tensor:
    import torch

    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    t = t.float()
    return t.reshape(len(t), -1)


class TrainedOptions(Schema):
    """Shared by every estimator that trains a critic (one key, one meaning)."""

    weight_decay: floats(0.0, 1.0) = opt(1e-4, "AdamW weight decay of the critic")
    grad_clip: floats(0.0, 1e6) = opt(5.0, "gradient norm clip (0 = no clipping)")


class StepOptions(TrainedOptions):
    """Shared by the estimators trained in optimiser steps with a convergence rule."""

    standardise: Literal["rank", "zscore", "none"] = opt(
        "rank", "input standardisation (rank = per-coordinate Gaussianisation, MI-invariant)")
    converge_tol: floats(0.0, 10.0) = opt(
        0.005, "nats: least held-out improvement that resets the convergence rule")
    converge_patience: ints(0, 100000) = opt(
        10, "held-out evaluations without improvement before a stage stops (0 = run the whole "
            "budget)")
    eval_every: ints(1, 100000) = opt(50, "optimiser steps between held-out evaluations")


STEP_BUDGETS = {"paper": 4000, "quick": 1000}  # optimiser steps of the null `<prefix>_steps`


def step_options(prefix: str, batch: int, batch_help: str, lr: float) -> type[StepOptions]:
    """The options every `StepTrained` estimator has, under its own prefix: `<prefix>_batch`,
    `_steps`, `_epochs`, `_lr`. Its Options derive from this and add their own fields."""
    steps_help = (f"most optimiser steps (null = from `schedule`: {STEP_BUDGETS['paper']} paper, "
                  f"{STEP_BUDGETS['quick']} quick)")
    return create_model(f"{prefix.title()}StepOptions", __base__=StepOptions, **{
        f"{prefix}_batch": (ints(2, 1 << 20), opt(batch, batch_help)),
        f"{prefix}_steps": (ints(1, 10_000_000, null=True), opt(None, steps_help)),
        f"{prefix}_epochs": (ints(1, 100000, null=True), opt(
            None, "legacy: converted to steps (epochs x batches per epoch)")),
        f"{prefix}_lr": (floats(1e-8, 1.0), opt(lr, "learning rate"))})


class Trained(Estimator):
    """A critic trained on sample pairs (a, b): `fit(a, b, **kwargs)` from ibtui.mi.trained."""

    fit: ClassVar[str]  # the name of the function in ibtui.mi.trained

    @classmethod
    def kwargs(cls, opts: dict, term: str) -> dict[str, Any]:
        """`fit`'s keyword arguments from the resolved mi_options, for one term."""
        raise NotImplementedError

    @classmethod
    def plain_defaults(cls, options: dict) -> dict[str, Any]:
        """`fit`'s defaults for `ibtui.mi.estimate` on plain tensors; pops what is not a `fit`
        argument (`schedule`, ...) from `options`, whose other keys then override these."""
        raise NotImplementedError

    @classmethod
    def run(cls, a: Any, b: Any, **kwargs: Any) -> MIEstimate:
        """fit(a, b, **kwargs), leaving the global RNG as found."""
        import torch

        from ibtui.mi import trained

        a = as_pairs(a)
        b = as_pairs(b).to(a.device)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same number of rows ({len(a)} != {len(b)})")
        devices = [a.device] if a.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return getattr(trained, cls.fit)(a, b, **kwargs)

    @classmethod
    def measure(cls, job: Job, opts: dict) -> MIEstimate:
        a, b = job.pairs()
        return cls.run(a, b, seed=job.seed, progress=job.progress, **cls.kwargs(opts, job.term))


class StepTrained(Trained):
    """A `Trained` estimator budgeted in optimiser steps (`StepOptions`), its Options derived
    from `step_options(prefix, ...)`; `own` maps its other `fit` arguments to their keys."""

    prefix: ClassVar[str]
    own: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.schedules = {s: {f"{cls.prefix}_steps": n} for s, n in STEP_BUDGETS.items()}

    @classmethod
    def kwargs(cls, opts: dict, term: str) -> dict[str, Any]:
        p = cls.prefix
        return {"tol": opts["converge_tol"], "patience": opts["converge_patience"],
                "eval_every": opts["eval_every"], "standardise": opts["standardise"],
                "weight_decay": opts["weight_decay"], "grad_clip": opts["grad_clip"],
                "batch_size": opts[f"{p}_batch"], "lr": opts[f"{p}_lr"],
                "max_steps": opts[f"{p}_steps"], "max_epochs": opts[f"{p}_epochs"],
                **{arg: opts[key] for arg, key in cls.own.items()}}

    @classmethod
    def plain_defaults(cls, options: dict) -> dict[str, Any]:
        return {"max_steps": STEP_BUDGETS[options.pop("schedule", "paper")]}
