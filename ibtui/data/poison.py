"""Poisoning a dataset and building the class-wise subsets MI is measured on (docs/method.md §1, §4)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ibtui.data.attacks.base import Attack
from ibtui.data.datasets import Dataset


@dataclass
class PoisonedData:
    x_train: np.ndarray  # uint8 NHWC, triggers applied
    y_train: np.ndarray  # labels after poisoning
    y_true: np.ndarray  # original labels
    poison_idx: np.ndarray  # every training image that carries the trigger
    backdoor_idx: np.ndarray  # triggered images labelled target (the backdoor samples)
    x_test: np.ndarray
    y_test: np.ndarray
    x_test_trigger: np.ndarray  # every test image with the test trigger
    subsets: dict[str, np.ndarray] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # subset -> all|backdoor|clean|sample|class
    # attack option `balance`: the training images kept, as indices of the clean dataset (the
    # arrays above are indexed in the kept set), and the genuine target-class images dropped;
    # None / empty without it
    source_idx: np.ndarray | None = None
    dropped_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def select_poison_indices(y: np.ndarray, rate: float, target: int, label_mode: str,
                          num_classes: int, rule: str = "authors", seed: int = 0) -> np.ndarray:
    """Which training images get the trigger, as sorted indices (rules: base.INDEX_RULES).

    N = len(y), C = num_classes, n_t = images of the target class, p = rate. Dirty-label:

    - "authors" (the paper's authors' code): the last floor(floor(p N) / C) images of every
      class, the target class included.
    - "random-round" (BackdoorBench): a uniformly random round(p N) of the whole training set,
      target class included (BackdoorBench's `np.random.choice(N, round(p N))`; our draw comes
      from the run's seed, so the set differs but its law is the same).
    - "random-floor" (Qi et al.'s toolbox): a uniformly random floor(p N) of the whole set.
    - "first-other" (the original FTrojan code): the first floor(p N) images whose label is not
      the target.
    - "ibtui-v1" (ibtui's first rule, kept to reproduce older runs): the last round(p N / C)
      images of every class; clean-label, the last round(p n_t) target-class images.

    Clean-label (p is a share of the *target class* here, n = floor(p n_t) or round(p n_t) for
    random-round): "authors" and "first-other" take the first n target-class images, the random
    rules a uniformly random n of them. (BackdoorBench states its clean-label rate as a share of
    the whole set; ibtui's `poison_rate` for LC is a share of the target class.)
    """
    from ibtui.data.attacks.base import INDEX_RULES
    from ibtui.errors import SpecError

    if rule not in INDEX_RULES:
        raise SpecError(f"attack_options.index: {rule!r} is not an index rule; "
                        f"allowed: {', '.join(INDEX_RULES)}")
    y = np.asarray(y)
    rng = np.random.default_rng([int(seed), 0x1D8])
    eps = 1e-9  # floor(p N) of a p that is a decimal fraction: 0.1 * 1340 = 134.00000000000003

    def floor(v: float) -> int:
        return int(math.floor(v + eps))

    if rule == "ibtui-v1":
        if label_mode == "clean":
            cls = np.flatnonzero(y == target)
            n = int(round(rate * len(cls)))
            return np.sort(cls[len(cls) - n:] if n else cls[:0]).astype(np.int64)
        per_class = int(round(rate * len(y) / num_classes))
        parts = []
        for c in range(num_classes):
            cls = np.flatnonzero(y == c)
            n = min(per_class, len(cls))
            parts.append(cls[len(cls) - n:] if n else cls[:0])
        return np.sort(np.concatenate(parts)).astype(np.int64)
    if label_mode == "clean":
        cls = np.flatnonzero(y == target)
        n = int(round(rate * len(cls))) if rule == "random-round" else floor(rate * len(cls))
        n = min(n, len(cls))
        picks = rng.choice(cls, n, replace=False) if rule.startswith("random") else cls[:n]
    elif rule == "authors":
        per_class = floor(rate * len(y)) // num_classes
        parts = []
        for c in range(num_classes):
            cls = np.flatnonzero(y == c)
            n = min(per_class, len(cls))
            parts.append(cls[len(cls) - n:] if n else cls[:0])
        picks = np.concatenate(parts)
    elif rule == "first-other":
        picks = np.flatnonzero(y != target)[:floor(rate * len(y))]
    else:
        n = int(round(rate * len(y))) if rule == "random-round" else floor(rate * len(y))
        picks = rng.choice(len(y), min(n, len(y)), replace=False)
    return np.sort(np.asarray(picks, dtype=np.int64))


def build_subsets(y: np.ndarray, is_backdoor: np.ndarray, is_triggered: np.ndarray, target: int,
                  observe_classes: list[int], seed: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The subsets of docs/method.md §1, as sorted index arrays, and each one's role."""
    t = str(target)
    in_t = y == target
    subsets = {
        t: np.flatnonzero(in_t),
        f"{t}_backdoor": np.flatnonzero(in_t & is_backdoor),
        f"{t}_clean": np.flatnonzero(in_t & ~is_triggered),
    }
    roles = {t: "all", f"{t}_backdoor": "backdoor", f"{t}_clean": "clean"}
    for c in observe_classes:
        subsets[str(c)] = np.flatnonzero((y == c) & ~is_triggered)
        roles[str(c)] = "class"
    # t_sample: same size as a clean class, backdoor share as in class t
    clean_sizes = [len(subsets[str(c)]) for c in observe_classes] or [int(in_t.sum())]
    size = min(int(round(float(np.mean(clean_sizes)))), int(in_t.sum()))
    bd, cl = subsets[f"{t}_backdoor"], subsets[f"{t}_clean"]
    share = len(bd) / max(1, len(bd) + len(cl))
    n_bd = min(len(bd), int(round(share * size)))
    n_cl = min(len(cl), size - n_bd)
    rng = np.random.default_rng([seed, 0x5A3])
    subsets[f"{t}_sample"] = np.sort(np.concatenate([
        rng.choice(bd, n_bd, replace=False), rng.choice(cl, n_cl, replace=False)]))
    roles[f"{t}_sample"] = "sample"
    return {k: v.astype(np.int64) for k, v in subsets.items()}, roles


def poison_dataset(ds: Dataset, attack: Attack, rate: float, target: int,
                   observe_classes: list[int], seed: int) -> PoisonedData:
    """Apply `attack` (already prepared) to `ds` with its variant's index rule
    (`attack.opts["index"]`, default the paper's authors')."""
    # some variants draw extra label-keeping samples on top of the payload (WaNet noise, cover)
    idx = select_poison_indices(ds.y_train, attack.selection_rate(rate), target, attack.label_mode,
                                ds.num_classes, rule=attack.opts.get("index", "authors"),
                                seed=attack.seed)
    x = ds.x_train.copy()
    y = ds.y_train.copy()
    if len(idx):
        px, py = attack.poison_train(ds.x_train[idx], ds.y_train[idx])
        x[idx] = px
        y[idx] = py
    is_triggered = np.zeros(len(y), dtype=bool)
    is_triggered[idx] = True
    is_backdoor = is_triggered & (y == target)
    kept = getattr(attack, "kept", None)  # triggered images that kept their label on purpose
    if attack.label_mode == "dirty" and kept is not None and len(kept) == len(idx):
        is_backdoor[idx[np.asarray(kept, dtype=bool)]] = False
    y_true = ds.y_train.copy()
    source_idx, dropped = None, np.zeros(0, dtype=np.int64)
    if attack.opts.get("balance"):
        dropped = balance_drop(y, is_backdoor, is_triggered, target, attack.seed, attack.name)
        keep = np.ones(len(y), dtype=bool)
        keep[dropped] = False
        source_idx = np.flatnonzero(keep).astype(np.int64)
        x, y, y_true = x[keep], y[keep], y_true[keep]
        is_triggered, is_backdoor = is_triggered[keep], is_backdoor[keep]
        idx = np.searchsorted(source_idx, idx).astype(np.int64)  # triggered images are all kept
    subsets, roles = build_subsets(y, is_backdoor, is_triggered, target, observe_classes, seed)
    return PoisonedData(
        x_train=x, y_train=y, y_true=y_true, poison_idx=idx,
        backdoor_idx=np.flatnonzero(is_backdoor), x_test=ds.x_test, y_test=ds.y_test,
        x_test_trigger=attack.trigger_test(ds.x_test), subsets=subsets, roles=roles,
        source_idx=source_idx, dropped_idx=dropped,
    )


def balance_drop(y: np.ndarray, is_backdoor: np.ndarray, is_triggered: np.ndarray, target: int,
                 seed: int, attack: str = "attack") -> np.ndarray:
    """Attack option `balance`: which genuine target-class images to drop so that class sizes
    carry no sign of the attack. The attack gives the target label to B images (its backdoor
    samples, the target class's own poisoned images included); every other class c lost its
    k_c poisoned images. Dropping B untriggered target-class images (a uniformly random choice
    from the run's seed) leaves the target class at n_t - k_t images, shrunk by its own share
    of the poison exactly as every other class is. Raises SpecError when the target class has
    fewer than B untriggered images (on a balanced 10-class set this happens near p = 1/11:
    the backdoor samples alone then outnumber a class)."""
    from ibtui.errors import SpecError

    y = np.asarray(y)
    need = int(np.sum(np.asarray(is_backdoor, dtype=bool)))
    pool = np.flatnonzero((y == target) & ~np.asarray(is_triggered, dtype=bool))
    if need > len(pool):
        raise SpecError(f"attack_options.balance: {attack} gives {need} images the target label "
                        f"{target}, but the target class has only {len(pool)} untriggered images "
                        "to drop (the backdoor samples alone outnumber a class); allowed: a lower "
                        "poison_rate, or balance = false")
    rng = np.random.default_rng([int(seed), 0xBA1])
    return np.sort(rng.choice(pool, need, replace=False)).astype(np.int64)
