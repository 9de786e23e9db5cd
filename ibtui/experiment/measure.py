"""Step 3, at each MI epoch: class-wise I(X;T) and I(T;Ŷ) (mi.jsonl), and the target class's
representations with their cluster metrics (artifacts/features_e*.npz, clusters.jsonl)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ibtui.analysis.clusters import cluster_metrics
from ibtui.data.poison import PoisonedData
from ibtui.experiment.control import RunFailed
from ibtui.mi import estimate_checkpoint
from ibtui.runs.store import append_jsonl, read_jsonl


def mi_subsets(spec: dict, data: PoisonedData) -> dict[str, np.ndarray]:
    """The images MI is estimated on. With mi_equal_n, every subset is subsampled (the same
    images at every checkpoint) to the smallest subset's size: estimators whose ceiling is
    log N would otherwise rank subsets by size, not by what the network does with them."""
    if not spec.get("mi_equal_n", True):
        return data.subsets
    n = min(len(v) for v in data.subsets.values() if len(v) >= 2)
    rng = np.random.default_rng([spec["seed"], 0xE9])
    return {k: np.sort(rng.choice(v, n, replace=False)) if len(v) > n else v
            for k, v in data.subsets.items()}


def measure_mi(spec: dict, run_dir: Path, epoch: int, model, xt: torch.Tensor,
               data: PoisonedData, device: torch.device,
               progress: Callable[..., None]) -> list[dict]:
    """The MI records of this epoch not yet in mi.jsonl (a resumed run redoes none)."""
    done = {(r["term"], r["subset"], r["method"]) for r in read_jsonl(run_dir / "mi.jsonl")
            if r.get("epoch") == epoch}
    methods = [m for m in spec["mi_method"]
               if not all((term, sub, m) in done for term in ("xt", "ty") for sub in data.subsets)]
    if not methods:
        return []
    records = estimate_checkpoint(model, xt, mi_subsets(spec, data), methods=methods,
                                  options=spec["mi_options"], seed=spec["seed"] * 1000 + epoch,
                                  device=device, progress=progress)
    out = []
    for r in records:
        if (r["term"], r["subset"], r["method"]) in done:
            continue
        v = r.get("value")
        if v is None or not math.isfinite(v):
            raise RunFailed(f"epoch {epoch}: MI {r['term']} of subset {r['subset']} "
                            f"({r['method']}) is not finite")
        out.append({"epoch": epoch, "term": r["term"], "subset": r["subset"],
                    "role": data.roles[r["subset"]],
                    **{k: v for k, v in r.items() if k not in ("term", "subset")}})
    return out


def representation_stats(spec: dict, run_dir: Path, epoch: int, model, xt: torch.Tensor,
                         data: PoisonedData) -> None:
    """T of the target class and a sample of the others, kept for t-SNE and cluster metrics."""
    target = spec["target"]
    rng = np.random.default_rng([spec["seed"], epoch, 7])
    t = data.subsets[str(target)]
    others = np.flatnonzero(data.y_train != target)
    others = rng.choice(others, min(len(others), max(len(t), 500)), replace=False)
    idx = np.sort(np.concatenate([t, others]))
    model.eval()
    feats = []
    with torch.no_grad():
        for i in range(0, len(idx), 1024):
            _, tt, _ = model.forward_mi(xt[torch.from_numpy(idx[i:i + 1024]).to(xt.device)])
            feats.append(tt.float().cpu())
    feats = torch.cat(feats).numpy().astype(np.float16)
    is_bd = np.isin(idx, data.backdoor_idx)
    np.savez_compressed(run_dir / "artifacts" / f"features_e{epoch:04d}.npz", t=feats, index=idx,
                        label=data.y_train[idx], true_label=data.y_true[idx], backdoor=is_bd)
    m = cluster_metrics(feats.astype(np.float32), data.y_train[idx], is_bd, target)
    append_jsonl(run_dir / "clusters.jsonl", {"epoch": epoch, **m})
