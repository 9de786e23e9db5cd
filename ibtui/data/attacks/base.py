"""What every attack provides. One subclass per module in this package, registered by name.

Images are uint8 (N, 32, 32, 3) arrays; trigger maths happens on floats and is clipped before
the cast back. Randomness comes only from `self.rng` (seeded from the run's seed) so a run is
reproducible and its trigger artefacts can be regenerated.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ibtui.errors import SpecError


@dataclass
class Option:
    default: Any
    types: tuple[type, ...]
    help: str
    choices: tuple | None = None
    lo: float | None = None  # inclusive bounds for numbers
    hi: float | None = None


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
    label_mode: ClassVar[str] = "dirty"  # "dirty": poisoned samples relabelled; "clean": labels kept
    options: ClassVar[dict[str, Option]] = {}
    # named presets of options (e.g. a peer toolbox's defaults), selected by option `variant`
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    description: ClassVar[str] = ""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        # every attack takes the index rule; its variants set the rule of their reference
        if "index" not in cls.options:
            cls.options = {**cls.options, "index": Option("authors", (str,), INDEX_OPTION_HELP,
                                                          choices=tuple(INDEX_RULES))}
        # attacks that relabel into the target class can keep every class at its size
        if cls.label_mode == "dirty" and getattr(cls, "name", "none") != "none" \
                and "balance" not in cls.options:
            cls.options = {**cls.options, "balance": Option(False, (bool,), BALANCE_OPTION_HELP)}

    def __init__(self, options: dict, *, target: int, seed: int, num_classes: int = 10):
        self.opts = self.resolve_options(options)
        self.target = int(target)
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.rng = np.random.default_rng([self.seed, 0xB4CD])

    @classmethod
    def resolve_options(cls, options: dict) -> dict[str, Any]:
        """Defaults, then the chosen variant, then explicit fields, then `check`. Errors name the
        field and what is allowed. Spec validation (`ibtui run --dry-run`) and the worker
        (`create_attack`) both go through here, so whatever is checked here fails before any run
        directory exists."""
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
        out = {k: o.default for k, o in cls.options.items()}
        out.update(cls.variants.get(variant, {}))
        for key, value in options.items():
            if key not in cls.options:
                allowed = ", ".join(["variant", *cls.options]) or "variant"
                raise SpecError(f"attack_options.{key}: unknown option for {cls.name}; allowed: {allowed}")
            o = cls.options[key]
            if isinstance(value, bool) and bool not in o.types:
                ok = False
            else:
                ok = isinstance(value, o.types) or (float in o.types and isinstance(value, int))
            if not ok:
                names = " or ".join(t.__name__ for t in o.types)
                raise SpecError(f"attack_options.{key}: expected {names}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"attack_options.{key}: {value!r} is not a finite number; allowed: "
                                f"a number in [{o.lo:g}, {o.hi:g}]" if o.lo is not None
                                and o.hi is not None else
                                f"attack_options.{key}: {value!r} is not a finite number")
            if o.choices is not None and value not in o.choices:
                raise SpecError(f"attack_options.{key}: {value!r} not allowed; allowed: "
                                f"{', '.join(map(str, o.choices))}")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    (o.lo is not None and value < o.lo) or (o.hi is not None and value > o.hi)):
                raise SpecError(f"attack_options.{key}: {value!r} out of range [{o.lo}, {o.hi}]")
            out[key] = value
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
