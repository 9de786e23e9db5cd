"""Step 1: load the dataset, build the attack, poison, and record what was poisoned."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ibtui.data.attacks import create_attack
from ibtui.data.attacks.base import AttackContext
from ibtui.data.datasets import load_dataset
from ibtui.data.poison import PoisonedData, poison_dataset
from ibtui.runs.store import atomic_write_json


def prepare_data(spec: dict, run_dir: Path, device: str,
                 progress: Callable[[str, float], None]) -> tuple[PoisonedData, float, dict]:
    """(poisoned data, seconds spent, perceptibility of the trigger); artifacts/ written."""
    s = spec
    t = time.time()
    ds = load_dataset(s["dataset"], s["data_root"] or None, s["download"])
    attack = create_attack(s["attack"], s["attack_options"], target=s["target"], seed=s["seed"],
                           num_classes=ds.num_classes)
    ctx = AttackContext(
        dataset=ds, arch=s["arch"], width=s["width"], noise_xt=s["noise_xt"],
        noise_ty=s["noise_ty"], seed=s["seed"], device=device,
        recipe={"lr": s["lr"], "batch_size": s["batch_size"], "epochs": s["epochs"]},
        cache_dir=run_dir.parent / ".cache", progress=progress,
    )
    attack.prepare(ctx)
    data = poison_dataset(ds, attack, s["poison_rate"], s["target"], s["observe_classes"], s["seed"])
    art = run_dir / "artifacts"
    art.mkdir(exist_ok=True)
    np.save(art / "poison_idx.npy", data.poison_idx)
    np.save(art / "backdoor_idx.npy", data.backdoor_idx)
    if data.source_idx is not None:  # attack option balance: indices above are in the kept set
        np.save(art / "balance_source_idx.npy", data.source_idx)
        np.save(art / "balance_dropped_idx.npy", data.dropped_idx)
    for name, arr in attack.artifacts().items():
        np.save(art / f"{name}.npy", np.asarray(arr))
    atomic_write_json(art / "subsets.json", {
        "roles": data.roles, "sizes": {k: int(len(v)) for k, v in data.subsets.items()},
        "indices": {k: v.tolist() for k, v in data.subsets.items()},
    })
    src = data.poison_idx if data.source_idx is None else data.source_idx[data.poison_idx]
    quality = perceptibility(ds.x_train[src], data.x_train[data.poison_idx])
    return data, time.time() - t, quality


def perceptibility(clean: np.ndarray, poisoned: np.ndarray) -> dict:
    if len(clean) == 0:
        return {}
    from ibtui.data.quality import perceptibility as measure

    return measure(clean, poisoned)
