"""t-SNE maps of T (paper Figs. 4 and 8): backdoor, clean target and other classes.

Reads `artifacts/features_eNNNN.npz` (arrays t, index, label, true_label, backdoor) of a run.
Default epochs: the early, compression and convergence representatives of the run's phases
(summary.json, else detected from mi.jsonl), else the first, middle and last saved epochs.
One figure with a panel per epoch plus a CSV of the 2-D embedding (same stem).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from ibtui.analysis.figures import (
    BACKDOOR,
    GREY,
    OKABE_ITO,
    RunData,
    check_format,
    pyplot,
    save_figure,
    style_context,
)
from ibtui.errors import RunStoreError

TSNE_PHASES = ("early", "compression", "convergence")
PHASE_TITLES = {"early": "early learning", "transition": "transition",
                "compression": "compression", "convergence": "convergence"}
GROUPS = (("other", "other classes", GREY, 4, 0.35, 1),
          ("target_clean", "target class, clean", OKABE_ITO["blue"], 6, 0.55, 2),
          ("backdoor", "backdoor samples", BACKDOOR, 9, 0.85, 3))
COLUMNS = ["epoch", "phase", "index", "label", "true_label", "group", "x", "y"]
_FEATURES = re.compile(r"features_e(\d+)\.npz$")


def feature_files(run_dir: Path) -> dict[int, Path]:
    art = Path(run_dir) / "artifacts"
    out = {}
    if art.is_dir():
        for p in art.iterdir():
            m = _FEATURES.match(p.name)
            if m:
                out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def _nearest(e: int, available: list[int]) -> int:
    return min(available, key=lambda a: (abs(a - e), a))


def default_epochs(run: RunData, available: list[int]) -> list[tuple[int, str | None]]:
    """[(epoch, phase name)] for the early, compression and convergence phases."""
    phases = run.phases()
    rep = (phases or {}).get("representative") if phases else None
    if isinstance(rep, dict) and all(isinstance(rep.get(p), int) for p in TSNE_PHASES):
        out: list[tuple[int, str | None]] = []
        for p in TSNE_PHASES:
            e = _nearest(rep[p], available)
            if e not in [x for x, _ in out]:
                out.append((e, p))
        return out
    picks = [available[0], available[len(available) // 2], available[-1]]
    return [(e, None) for e in dict.fromkeys(picks)]


def _phase_of(e: int, phases: dict | None) -> str | None:
    cps = (phases or {}).get("checkpoints") or {}
    for p in ("early", "transition", "compression", "convergence"):
        if e in (cps.get(p) or []) and p not in (phases or {}).get("shared", []):
            return p
    return None


def embed(t: np.ndarray, seed: int = 0, perplexity: float = 30.0,
          max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE of the rows of t (PCA to <= 50 dimensions first)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.nan_to_num(np.asarray(t, dtype=np.float32))
    n = len(x)
    if n < 3:
        return np.zeros((n, 2), dtype=np.float32)
    dims = min(50, x.shape[1], n)
    if x.shape[1] > dims:
        x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto",
                max_iter=max(250, int(max_iter)), random_state=seed,
                ).fit_transform(x).astype(np.float32)


def tsne_figures(run_dir: Path, epochs: list[int] | None = None, out: Path | None = None,
                 fmt: str = "png", max_points: int = 2000, seed: int = 0,
                 max_iter: int = 1000) -> list[Path]:
    """Draw the t-SNE panels of a run; returns [figure, csv]. out: a directory (default
    <run>/figures). Each epoch's points are subsampled uniformly to max_points (fixed seed;
    t-SNE of 2,000 points takes tens of seconds on a CPU). Raises RunStoreError when the run
    has no saved features or an epoch asked for has none."""
    fmt = check_format(fmt)
    run_dir = Path(run_dir)
    files = feature_files(run_dir)
    if not files:
        raise RunStoreError(f"{run_dir}: no artifacts/features_eNNNN.npz (T is saved at every "
                            "MI checkpoint; has the run reached one?)")
    run = RunData(run_dir)
    available = list(files)
    phases = run.phases()
    if epochs:
        missing = [e for e in epochs if e not in files]
        if missing:
            raise RunStoreError(f"{run_dir.name}: no features saved at epoch(s) "
                                f"{', '.join(map(str, missing))}; allowed: "
                                f"{', '.join(map(str, available))}")
        chosen = [(e, _phase_of(e, phases)) for e in dict.fromkeys(epochs)]
    else:
        chosen = default_epochs(run, available)
    out_dir = Path(out) if out is not None else run_dir / "figures"
    if out is None and out_dir.is_symlink():  # the run's own folder, never one a link points to
        raise RunStoreError(f"{out_dir}: a symbolic link; allowed: a real directory (the run's "
                            "figures/), or --out DIR")
    rng = np.random.default_rng(seed)
    panels = []
    rows: list[dict] = []
    for e, phase in chosen:
        try:
            with np.load(files[e], allow_pickle=False) as z:
                t, index = z["t"], z["index"]
                label, true_label, bd = z["label"], z["true_label"], z["backdoor"].astype(bool)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise RunStoreError(f"{files[e]}: damaged features file ({type(err).__name__}); "
                                "allowed: the .npz the worker writes (t, index, label, "
                                "true_label, backdoor)") from None
        keep = np.arange(len(t))
        if len(keep) > max_points:  # uniform: every group keeps its share
            keep = np.sort(rng.choice(keep, max_points, replace=False))
        t, index, label, true_label, bd = (a[keep] for a in (t, index, label, true_label, bd))
        group = np.where(bd, "backdoor",
                         np.where(label == run.target, "target_clean", "other"))
        xy = embed(t, seed=seed, max_iter=max_iter)
        panels.append((e, phase, xy, group))
        rows += [{"epoch": e, "phase": phase, "index": int(i), "label": int(lab),
                  "true_label": int(tl), "group": g, "x": float(p[0]), "y": float(p[1])}
                 for i, lab, tl, g, p in zip(index, label, true_label, group, xy, strict=False)]
    clusters = _cluster_notes(run_dir)
    plt = pyplot()
    with style_context():
        n = len(panels)
        fig, axes = plt.subplots(1, n, figsize=(2.7 * n + 0.4, 3.1), squeeze=False)
        for k, (ax, (e, phase, xy, group)) in enumerate(zip(axes[0], panels, strict=False)):
            for key, name, colour, size, alpha, z in GROUPS:
                m = group == key
                ax.scatter(xy[m, 0], xy[m, 1], s=size, c=colour, alpha=alpha, lw=0, zorder=z,
                           label=f"{name}", rasterized=fmt != "svg")
            title = f"({chr(97 + k)}) "
            title += f"{PHASE_TITLES[phase]}, epoch {e}" if phase else f"epoch {e}"
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for side in ("top", "right", "bottom", "left"):
                ax.spines[side].set_visible(True)
                ax.spines[side].set_color("#BBBBBB")
            note = clusters.get(e)
            if note:
                ax.set_xlabel(note, fontsize=6.5, color="#333333")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, markerscale=2.5,
                   bbox_to_anchor=(0.5, -0.02))
        fig.suptitle(f"t-SNE of T, target class {run.target} — {run.id}", fontsize=8,
                     fontweight="normal")
        fig.tight_layout()
        fig.subplots_adjust(bottom=0.16)
        return save_figure(fig, out_dir, f"{run.id}-tsne", fmt, COLUMNS, rows)


def _cluster_notes(run_dir: Path) -> dict[int, str]:
    from ibtui.runs.store import read_jsonl

    out = {}
    for r in read_jsonl(Path(run_dir) / "clusters.jsonl"):
        parts = []
        if isinstance(r.get("silhouette"), (int, float)):
            parts.append(f"silhouette {r['silhouette']:.2f}")
        if isinstance(r.get("knn_backdoor_share"), (int, float)):
            parts.append(f"kNN bd share {r['knn_backdoor_share']:.2f}")
        if isinstance(r.get("subclusters"), int):
            parts.append(f"{r['subclusters']} sub-cl.")
        if parts and isinstance(r.get("epoch"), int):
            out[r["epoch"]] = ", ".join(parts)
    return out
