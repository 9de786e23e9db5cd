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
from ibtui.mi.checkpoint import default_forward_batch
from ibtui.models.noisy import folded_copy
from ibtui.runs.store import append_jsonl, read_jsonl


def mi_subsets(spec: dict, data: PoisonedData) -> dict[str, np.ndarray]:
    """The images MI is estimated on. With mi_equal_n, every subset is subsampled (the same
    images at every checkpoint) to the smallest subset's size: estimators whose ceiling is
    log N would otherwise rank subsets by size, not by what the network does with them."""
    # an empty subset (t_backdoor of a clean run, attack "none") has no MI to estimate
    subsets = {k: v for k, v in data.subsets.items() if len(v)}
    if not spec.get("mi_equal_n", True):
        return subsets
    n = min(len(v) for v in subsets.values() if len(v) >= 2)
    rng = np.random.default_rng([spec["seed"], 0xE9])
    return {k: np.sort(rng.choice(v, n, replace=False)) if len(v) > n else v
            for k, v in subsets.items()}


def measure_mi(spec: dict, run_dir: Path, epoch: int, model, xt: torch.Tensor,
               data: PoisonedData, device: torch.device,
               progress: Callable[..., None]) -> list[dict]:
    """The MI records of this epoch not yet in mi.jsonl (a resumed run redoes none)."""
    done = {(r["term"], r["subset"], r["method"]) for r in read_jsonl(run_dir / "mi.jsonl")
            if r.get("epoch") == epoch}
    methods = [m for m in spec["mi_method"]
               if not all((term, sub, m) in done for term in ("xt", "ty")
                          for sub in data.subsets if len(data.subsets[sub]))]
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
    # BatchNorm folded, the device's fastest batch; the global RNG makes as many draws as
    # before and ends in the same state whenever the width is even, so training goes on as it did
    fm, batch = folded_copy(model), default_forward_batch(xt.device)
    feats = []
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            _, tt, _ = fm.forward_mi(xt[torch.from_numpy(idx[i:i + batch]).to(xt.device)])
            feats.append(tt.float().cpu())
    feats = torch.cat(feats).numpy().astype(np.float16)
    is_bd = np.isin(idx, data.backdoor_idx)
    np.savez_compressed(run_dir / "artifacts" / f"features_e{epoch:04d}.npz", t=feats, index=idx,
                        label=data.y_train[idx], true_label=data.y_true[idx], backdoor=is_bd)
    m = cluster_metrics(feats.astype(np.float32), data.y_train[idx], is_bd, target)
    append_jsonl(run_dir / "clusters.jsonl", {"epoch": epoch, **m})


CLASS_POINTS = 1000  # at most this many training images per class for classes.jsonl


def class_statistics(spec: dict, run_dir: Path, epoch: int, model, xt: torch.Tensor,
                     y_train: np.ndarray, num_classes: int, final: bool = False) -> dict:
    """classes.jsonl: the same cheap statistics for every class, from the training
    labels alone (no poison mask, no target): per-sample loss quantiles, accuracy and confidence
    of the labelled class, and the two baselines' numbers on the penultimate representation S
    (activation clustering: 2-means silhouette and smaller-cluster share; spectral signature: top
    singular direction's variance share and tail ratio). At most CLASS_POINTS images per class,
    the same ones at every checkpoint. The forward passes run under a forked RNG, so recording
    this never changes the training run. A record already there for `epoch` or later (a resumed
    run) is replaced."""
    from ibtui.analysis.baselines import class_baselines
    from ibtui.runs.store import atomic_write_bytes, dumps

    path = run_dir / "classes.jsonl"
    old = read_jsonl(path)
    if any(int(r.get("epoch", 0)) >= epoch for r in old):
        kept = [r for r in old if int(r.get("epoch", 0)) < epoch]
        atomic_write_bytes(path, "".join(dumps(r) + "\n" for r in kept).encode())
    rng = np.random.default_rng([spec["seed"], 0xC1A5])
    picks = {}
    for c in range(num_classes):
        idx = np.flatnonzero(y_train == c)
        picks[c] = np.sort(rng.choice(idx, CLASS_POINTS, replace=False)) if len(idx) > CLASS_POINTS else idx
    idx = np.concatenate([picks[c] for c in range(num_classes)])
    model.eval()
    fm, batch = folded_copy(model), default_forward_batch(xt.device)  # as the MI passes
    feats, losses, correct, conf = [], [], [], []
    devices = [xt.device] if xt.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        for i in range(0, len(idx), batch):
            part = torch.from_numpy(idx[i:i + batch]).to(xt.device)
            s, _, logits = fm.forward_mi(xt[part])
            yb = torch.from_numpy(y_train[idx[i:i + batch]]).to(xt.device)
            logp = torch.log_softmax(logits.float(), 1)
            lp = logp.gather(1, yb[:, None])[:, 0]
            feats.append(s.float().flatten(1).cpu())
            losses.append((-lp).cpu())
            conf.append(lp.exp().cpu())
            correct.append((logits.argmax(1) == yb).float().cpu())
    feats_np = torch.cat(feats).numpy().astype(np.float64) if feats else np.zeros((0, 1))
    loss = torch.cat(losses).numpy().astype(np.float64) if losses else np.zeros(0)
    acc = torch.cat(correct).numpy() if correct else np.zeros(0)
    cf = torch.cat(conf).numpy() if conf else np.zeros(0)
    classes = {}
    start = 0
    for c in range(num_classes):
        n = len(picks[c])
        sl = slice(start, start + n)
        start += n
        row: dict = {"n": int((y_train == c).sum()), "n_used": n}
        if n:
            ls = loss[sl]
            row.update(loss_mean=float(ls.mean()), loss_std=float(ls.std()),
                       loss_q50=float(np.quantile(ls, 0.5)), loss_q90=float(np.quantile(ls, 0.9)),
                       acc=float(acc[sl].mean()), conf=float(cf[sl].mean()))
            row.update(class_baselines(feats_np[sl]))
        classes[str(c)] = row
    rec = {"epoch": epoch, "final": bool(final), "classes": classes}
    append_jsonl(path, rec)
    return rec
