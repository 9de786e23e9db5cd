"""Synthetic run directories for the analysis tests (no training): spec.toml, status.json,
metrics.jsonl, mi.jsonl, clusters.jsonl, summary.json and artifacts/features_eNNNN.npz, as
the run-directory contract describes them. Imported by the other test_analysis_* modules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ibtui.runs.store import atomic_write_json
from ibtui.spec import FIELDS, experiment_to_toml

MI_EPOCHS = [1, 2, 3, 4, 6, 9, 12]
# clean-class I(X;T) (their mean is 0.1 lower): peak at 3, within 10% of the range at 4, falls
# at 6, flat from 9 on
CLEAN_XT = [2.0, 3.5, 5.0, 4.9, 4.0, 3.05, 3.0]
EXPECTED_PHASES = {"early": [1, 2], "transition": [3, 4], "compression": [6, 6],
                   "convergence": [9, 12]}
EXPECTED_REPRESENTATIVE = [2, 3, 6, 12]
SUBSETS = [("0", "all"), ("0_backdoor", "backdoor"), ("0_clean", "clean"),
           ("0_sample", "sample")] + [(str(c), "class") for c in range(1, 10)]


def run_id(name: str, attack: str, dataset: str, arch: str, rate: float, seed: int) -> str:
    return f"{name}-{attack}-{dataset}-{arch}-p{rate:g}-s{seed}"


def mi_records(epochs: list[int] = MI_EPOCHS, clean_xt: list[float] = CLEAN_XT,
               method: str = "noise-aware", shift: float = 0.0) -> list[dict]:
    out = []
    for i, e in enumerate(epochs):
        for term in ("xt", "ty"):
            for subset, role in SUBSETS:
                c = int(subset.split("_")[0])
                if term == "xt":
                    base = clean_xt[i] - 0.02 * c
                    if role == "backdoor":
                        base = 6.0 - 0.3 * i + shift
                    elif role in ("all", "sample"):
                        base += 0.5
                else:
                    base = 0.5 + 0.15 * i + 0.01 * c
                    if role == "backdoor":
                        base = 0.3 + 0.25 * i + shift
                v = round(base, 4)
                out.append({"epoch": e, "term": term, "subset": subset, "role": role,
                            "method": method, "value": v, "lower": round(v - 0.1, 4),
                            "upper": round(v + 0.1, 4), "ceiling": 6.9, "n": 120,
                            "settings": {}, "seconds": 0.1})
    return out


def metrics(epochs: int) -> list[dict]:
    out = []
    for e in range(1, epochs + 1):
        f = e / epochs
        loss = round(2.0 * math.exp(-3 * f) + 0.05, 4)
        out.append({"epoch": e, "lr": 0.05, "train_loss": loss,
                    "train_acc": round(0.5 + 0.45 * f, 4),
                    "test_loss": loss * 1.1, "test_acc": round(0.45 + 0.45 * f, 4),
                    "asr": round(0.1 + 0.85 * f, 4), "asr_all": round(0.15 + 0.8 * f, 4),
                    "ra": round(0.8 * (1 - f), 4),
                    "class_loss": {str(c): round(loss * (0.5 if c == 0 else 1 + 0.05 * c), 4)
                                   for c in range(10)},
                    "seconds": 1.0, "time": 1.7e9 + e})
    return out


def features(epoch_index: int, seed: int = 0) -> dict[str, np.ndarray]:
    """60 target samples (30 backdoor, drifting away from the clean ones) and 60 others."""
    rng = np.random.default_rng([seed, epoch_index])
    d = 16
    clean = rng.normal(size=(30, d))
    bd = rng.normal(size=(30, d)) + np.eye(d)[0] * (2.0 * epoch_index)
    others = rng.normal(size=(60, d)) + np.eye(d)[1] * 4
    t = np.concatenate([clean, bd, others]).astype(np.float16)
    index = np.arange(120)
    label = np.array([0] * 60 + [1 + i % 9 for i in range(60)])
    true_label = label.copy()
    true_label[30:60] = [1 + i % 9 for i in range(30)]
    backdoor = np.zeros(120, bool)
    backdoor[30:60] = True
    return {"t": t, "index": index, "label": label, "true_label": true_label,
            "backdoor": backdoor}


def write_run(runs: Path, *, name: str = "fx", attack: str = "badnets", dataset: str = "cifar10",
              arch: str = "resnet18", poison_rate: float = 0.1, seed: int = 0,
              state: str = "done", score: tuple[float, float] | None = (0.3, 0.2),
              extra: dict | None = None, epochs: int = 12, with_features: bool = True,
              with_summary: bool = True, mi: list[dict] | None = None,
              spec_extra: dict | None = None, suffix: str = "") -> Path:
    """One synthetic run; score = (d_xt, d_ty) -> score = their mean."""
    from ibtui.analysis.clusters import cluster_metrics
    from ibtui.analysis.phases import detect_phases

    rid = run_id(name, attack, dataset, arch, poison_rate, seed) + suffix
    path = Path(runs) / rid
    (path / "artifacts").mkdir(parents=True)
    mi_epochs = [e for e in MI_EPOCHS if e <= epochs]
    values = {k: f.default for k, f in FIELDS.items()}
    values.update(name=name, dataset=dataset, arch=arch, width=8, attack=attack,
                  poison_rate=poison_rate, target=0, epochs=epochs, mi_epochs=mi_epochs,
                  mi_method=["noise-aware"], observe_classes=list(range(1, 10)), seed=seed,
                  device="cpu", **(spec_extra or {}))
    (path / "spec.toml").write_text(experiment_to_toml(values, "[experiment]"))
    atomic_write_json(path / "status.json", {"state": state, "created": 1.7e9 + seed,
                                             "pid": None, "host": None, "phase": state})
    ms = metrics(epochs)
    (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in ms))
    recs = mi if mi is not None else mi_records(mi_epochs, CLEAN_XT[:len(mi_epochs)])
    (path / "mi.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    roles = dict(SUBSETS)
    if with_features:
        lines = []
        for i, e in enumerate(mi_epochs):
            f = features(i, seed)
            np.savez_compressed(path / "artifacts" / f"features_e{e:04d}.npz", **f)
            m = cluster_metrics(f["t"].astype(np.float32), f["label"], f["backdoor"], 0)
            lines.append(json.dumps({"epoch": e, **m}) + "\n")
        (path / "clusters.jsonl").write_text("".join(lines))
    if with_summary:
        d_xt, d_ty = score if score else (None, None)
        summary = {
            "run_id": rid, "name": name, "attack": attack, "dataset": dataset, "arch": arch,
            "width": 8, "poison_rate": poison_rate, "seed": seed, "target": 0,
            "mi_method": "noise-aware",
            "score": None if score is None else (d_xt + d_ty) / 2, "d_xt": d_xt, "d_ty": d_ty,
            "clean_acc": ms[-1]["test_acc"], "asr": ms[-1]["asr"], "epochs": epochs,
            "phases": detect_phases(recs, roles),
        }
        summary.update(extra or {})
        atomic_write_json(path / "summary.json", summary)
    return path
