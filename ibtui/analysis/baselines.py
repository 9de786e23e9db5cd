"""Two published poison detectors on a class's penultimate representations (the alarm's baselines).

Both are implemented here from their papers with numpy; no code was copied.

- Activation clustering (Chen et al. 2018, "Detecting Backdoor Attacks on Deep Neural Networks by
  Activation Clustering"): the activations of each class are reduced to 10 dimensions (the
  paper uses ICA), split by 2-means, and the class is suspicious when the split is clean (high
  silhouette) and one cluster is small (relative size <= 0.35 in the paper). The reduction here
  is PCA to 10 dimensions: FastICA returns unit-variance components, so the one direction that
  separates a planted cluster weighs no more than nine noise directions and 2-means often splits
  along noise (on the planted test data of tests/test_alarm.py, ICA recovered 52% of the split,
  PCA 99.7%); PCA gives the baseline its best chance. PCA, 2-means and the silhouette are
  written here in numpy: a worker computes them at every checkpoint, and importing
  scikit-learn for them cost each worker 1.8 s. `activation_clustering` returns the
  silhouette, the smaller cluster's relative size and the per-sample cluster labels.
- Spectral signatures (Tran et al. 2018, "Spectral Signatures in Backdoor Attacks"): centre the
  class's representations R, take the top right singular vector v of R - mean(R), and score each
  sample by tau_i = ((r_i - mean) . v)^2; poisoned samples have the largest scores. The paper
  removes the top 1.5 eps of each class; to rank *classes* without knowing eps we use the share of
  the class's variance carried by that direction, sigma_1^2 / ||R - mean||_F^2 (a planted
  sub-population shifted by mu adds eps (1 - eps) |mu|^2 along v, which is what makes the
  scores separate), and also report the tail ratio mean(top 5% tau) / mean(tau).

Class-level scores (higher = more suspicious): `ac_silhouette` and `ss_top` (see CLASS_SCORE).
"""

from __future__ import annotations

import numpy as np

from ibtui.analysis.clusters import euclidean_distances, silhouettes

AC_DIMS = 10
AC_SMALL = 0.35  # Chen et al.: a cluster of at most 35% of the class is suspicious
SS_TAIL = 0.05
SEED = 0


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x - x.mean(0, keepdims=True)


def _pca(x: np.ndarray, k: int) -> np.ndarray:
    """The centred rows x projected on their k leading principal directions (eigenvectors of
    xᵀx, or of x xᵀ when there are fewer rows than columns; only the k leading ones are
    computed). Signs are arbitrary: what uses the projection depends on distances only."""
    from scipy.linalg import eigh  # scipy.linalg is loaded in a worker already

    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    m = len(gram)
    vals, vecs = eigh(gram, subset_by_index=[m - k, m - 1])
    vals, vecs = vals[::-1], vecs[:, ::-1]
    if x.shape[0] >= x.shape[1]:
        return x @ vecs
    return vecs * np.sqrt(np.clip(vals, 0, None))


def two_means(z: np.ndarray, seed: int = SEED, n_init: int = 4, max_iter: int = 300
              ) -> np.ndarray:
    """2-means labels (0/1) of the rows of z: Lloyd's iterations from greedy k-means++ starts
    (two candidates for the second centre, drawn with probability proportional to the squared
    distance from the first; the one leaving the smaller sum of squares is kept), the lowest
    within-cluster sum of squares of `n_init` starts."""
    rng = np.random.default_rng(seed)
    sq = np.einsum("ij,ij->i", z, z)
    best, best_labels = np.inf, np.zeros(len(z), dtype=np.int64)
    for _ in range(n_init):
        first = z[rng.integers(len(z))]
        d2 = ((z - first) ** 2).sum(1)
        if d2.sum() <= 0:
            continue
        candidates = z[rng.choice(len(z), 2, p=d2 / d2.sum())]
        left = [np.minimum(d2, ((z - c) ** 2).sum(1)).sum() for c in candidates]
        centres = np.stack([first, candidates[int(np.argmin(left))]])
        labels = None
        for _ in range(max_iter):
            # squared distances to the two centres, |z|^2 - 2 z.c + |c|^2
            d = sq[:, None] - 2.0 * (z @ centres.T) + np.einsum("ij,ij->i", centres, centres)
            new = d.argmin(1)
            if labels is not None and (new == labels).all():
                break
            labels = new
            counts = np.bincount(labels, minlength=2)
            sums = np.stack([z[labels == j].sum(0) for j in range(2)])
            centres = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None],
                               centres)
        inertia = float(((z - centres[labels]) ** 2).sum())
        if inertia < best:
            best, best_labels = inertia, labels
    return best_labels


def activation_clustering(feats: np.ndarray, dims: int = AC_DIMS, seed: int = SEED) -> dict:
    """Chen et al.: PCA to `dims` dimensions, 2-means; silhouette and smaller-cluster share.

    Returns {silhouette, small_share, labels} (None values with fewer than 4 samples or a
    degenerate class)."""
    x = _centred(feats)
    out = {"silhouette": None, "small_share": None, "labels": None}
    n = len(x)
    if n < 4 or not np.isfinite(x).all():
        return out
    k = int(min(dims, n - 1, x.shape[1]))
    if k < 1 or float(np.abs(x).max()) == 0.0:
        return out
    z = _pca(x, k)
    if not np.isfinite(z).all():
        return out
    labels = two_means(z, seed)
    sizes = np.bincount(labels, minlength=2)
    if sizes.min() < 1:
        return out
    out["silhouette"] = float(silhouettes(euclidean_distances(z), labels).mean())
    out["small_share"] = float(sizes.min() / n)
    out["labels"] = labels
    return out


def spectral_signature(feats: np.ndarray, tail: float = SS_TAIL) -> dict:
    """Tran et al.: outlier scores tau along the top singular vector of the centred class.

    Returns {top_share, tail_ratio, scores}: sigma_1^2 / sum sigma^2, mean of the top `tail`
    share of tau over mean tau, and tau per sample (None values with fewer than 3 samples)."""
    x = _centred(feats)
    out = {"top_share": None, "tail_ratio": None, "scores": None}
    if len(x) < 3 or not np.isfinite(x).all():
        return out
    total = float((x * x).sum())
    if total <= 0:
        return out
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    tau = (x @ vt[0]) ** 2
    m = max(1, int(round(tail * len(x))))
    out["top_share"] = float(sv[0] ** 2 / total)
    out["tail_ratio"] = float(np.sort(tau)[-m:].mean() / max(tau.mean(), 1e-300))
    out["scores"] = tau
    return out


def class_baselines(feats: np.ndarray) -> dict:
    """Both baselines' class-level numbers for one class's representations (JSON-ready)."""
    ac = activation_clustering(feats)
    ss = spectral_signature(feats)
    return {"ac_silhouette": ac["silhouette"], "ac_small_share": ac["small_share"],
            "ss_top": ss["top_share"], "ss_tail": ss["tail_ratio"]}
