"""What every attack provides. One subclass per module in this package, registered by name.

Images are uint8 (N, 32, 32, 3) arrays; trigger maths happens on floats and is clipped before
the cast back. Randomness comes only from `self.rng` (seeded from the run's seed) so a run is
reproducible and its trigger artefacts can be regenerated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from ibtui.errors import SpecError
from ibtui.schema import Schema, SchemaField, ValidationError, describe, problem

# Which training images get the trigger (ibtui.data.poison.select_poison_indices implements them).
# N = training-set size, C = classes, n_t = size of the target class, p = the selection rate.
INDEX_RULES = {
    "authors": "the paper's authors: dirty-label, the last floor(floor(p N) / C) images of every "
               "class (target included); clean-label, the first floor(p n_t) target-class images",
    "random-round": "BackdoorBench: a uniformly random round(p N) of the whole training set "
                    "(target class included); clean-label, round(p n_t) of the target class",
    "random-floor": "Qi et al.'s toolbox: a uniformly random floor(p N) of the whole training set "
                    "(a shuffled prefix); clean-label, floor(p n_t) of the target class",
    "first-other": "the original FTrojan code: the first floor(p N) images whose label is not "
                   "the target; clean-label, the first floor(p n_t) target-class images",
    "ibtui-v1": "ibtui's first rule (to reproduce older runs): dirty-label, the last "
                "round(p N / C) images of every class; clean-label, the last round(p n_t)",
}
INDEX_OPTION_HELP = "which images are poisoned: " + "; ".join(
    f"'{k}' = {v}" for k, v in INDEX_RULES.items())

BALANCE_OPTION_HELP = ("keep class sizes: drop as many genuine (untriggered) target-class training "
                       "images, drawn from the run's seed, as the attack labels with the target, so "
                       "every class, the target included, shrinks by its own share of the poison "
                       "and class counts carry no sign of the attack")


class AttackOptions(Schema):
    """What every attack's options table takes: the index rule (an attack's variants set the
    rule of their reference). Each attack declares `class Options(AttackOptions)` (or
    `RelabelOptions`) in its body; `variant` is not a field (it picks a preset of fields)."""

    index: Annotated[Literal[tuple(INDEX_RULES)], SchemaField(description=INDEX_OPTION_HELP)] = "authors"


class RelabelOptions(AttackOptions):
    """Options of an attack that relabels into the target class: it can keep every class at its size."""

    balance: Annotated[bool, SchemaField(description=BALANCE_OPTION_HELP)] = False


@dataclass(frozen=True)
class Option:
    """One option as help screens show it, derived from the attack's `Options` model."""

    default: Any
    help: str
    allowed: str


@dataclass
class AttackContext:
    """What an attack may need beyond the images: LC trains (or loads) a clean model."""

    dataset: Any  # ibtui.data.datasets.Dataset (clean)
    arch: str = "resnet18"
    width: int = 64
    noise_xt: float = 0.4
    noise_ty: float = 0.4
    seed: int = 0
    recipe: dict = field(default_factory=dict)  # lr, batch_size, epochs, ...
    cache_dir: Path = Path("runs/.cache")
    device: str = "cpu"
    progress: Callable[[str, float], None] = lambda phase, frac: None


class Attack(ABC):
    name: ClassVar[str]
    title: ClassVar[str]  # as papers print it (BadNets, WaNet, ...)
    label_mode: ClassVar[str] = "dirty"  # "dirty": poisoned samples relabelled; "clean": labels kept
    Options: ClassVar[type[AttackOptions]] = AttackOptions  # the options table's schema
    options: ClassVar[dict[str, Option]] = {}  # derived from Options: default, help, allowed
    # named presets of options (e.g. a peer toolbox's defaults), selected by option `variant`;
    # an attack with options of its own also gets `authors`, its defaults (always the authors')
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    description: ClassVar[str] = ""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        # attacks that relabel into the target class can keep every class at its size
        if cls.label_mode == "dirty" and getattr(cls, "name", "none") != "none" \
                and not issubclass(cls.Options, RelabelOptions):
            raise TypeError(f"{cls.__name__}.Options: a dirty-label attack's options derive from "
                            "RelabelOptions (the `balance` option)")
        own = [k for k in cls.Options.model_fields if k not in RelabelOptions.model_fields]
        if own:
            cls.variants = {"authors": {}, **cls.variants}
        rows = {name: Option(default, help, allowed)
                for name, allowed, default, help in describe(cls.Options)}
        cls.options = {k: rows[k] for k in [*own, *(k for k in rows if k not in own)]}

    def __init__(self, options: dict, *, target: int, seed: int, num_classes: int = 10):
        self.opts = self.resolve_options(options)
        self.target = int(target)
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.rng = np.random.default_rng([self.seed, 0xB4CD])

    @classmethod
    def resolve_options(cls, options: dict) -> dict[str, Any]:
        """Defaults, then the chosen variant, then explicit fields, checked by the attack's
        `Options` schema, then `check`. Errors name the field and what is allowed. Spec
        validation (`ibtui run --dry-run`) and the worker (`create_attack`) both go through
        here, so whatever is checked here fails before any run directory exists."""
        if not isinstance(options, dict):
            raise SpecError(f"attack_options: expected a table of options, got {options!r}")
        options = dict(options)
        variant = options.pop("variant", "default")
        allowed_variants = ["default", *cls.variants]
        if variant not in allowed_variants:
            raise SpecError(
                f"attack_options.variant: {variant!r} is not a {cls.name} variant; "
                f"allowed: {', '.join(allowed_variants)}"
            )
        for key in options:
            if key not in cls.options:
                raise SpecError(f"attack_options.{key}: unknown option for {cls.name}; "
                                f"allowed: {', '.join(['variant', *cls.options])}")
        try:
            model = cls.Options.model_validate({**cls.variants.get(variant, {}), **options})
        except ValidationError as e:
            key, text = problem(e, cls.Options)
            raise SpecError(f"attack_options.{key}: {text}") from None
        out = {k: getattr(model, k) for k in cls.options}
        out["variant"] = variant
        cls.check(out)
        return out

    @classmethod
    def check(cls, opts: dict[str, Any]) -> None:
        """Checks beyond one option's type and range (files that must exist, pairs of options);
        raise SpecError naming the option. May normalise `opts` in place."""
        return None

    # --- what subclasses implement -------------------------------------------------------
    def selection_rate(self, rate: float) -> float:
        """The share of images the index rule should select for `poison_train`, given the run's
        poison rate. Default: the rate itself. Attacks that add label-keeping samples on top of
        the payload (WaNet's `cross_ratio` noise samples, Adap-Blend's separate `cover_rate`)
        select more and keep those samples' labels in `poison_train`."""
        return rate

    def payload_count(self, n: int) -> int:
        """Of n selected images, how many carry the backdoor; the rest keep their label (WaNet's
        noise samples, Adap-Blend's cover samples). Default: all of them."""
        return n

    def prepare(self, ctx: AttackContext) -> None:
        """Heavy one-off work before poisoning (LC: the clean model and PGD). Default: none."""
        return None

    @abstractmethod
    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poison the selected training images; returns (new images, new labels)."""

    @abstractmethod
    def trigger_test(self, x: np.ndarray) -> np.ndarray:
        """The test-time trigger applied to any images."""

    def artifacts(self) -> dict[str, np.ndarray]:
        """Trigger patterns, grids, masks... saved into the run's artifacts/ as .npy."""
        return {}


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 1] (float64 so that trigger maths rounds the same everywhere)."""
    return x.astype(np.float64) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0,1] floats -> uint8: clip first (no wrap-around), then round half up.
    The 1e-6 guards ties such as 0.7*1 + 0.3*0 = 3.5/5 that float64 lands just below."""
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5 + 1e-6).astype(np.uint8)
