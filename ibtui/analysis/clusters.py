"""How backdoor samples sit among the target class in T-space (paper §IV-C, Figs. 4 and 8).

Computed on the target group = samples labelled with the target class plus any backdoor
sample, Euclidean distances in T (float64, from centred points). Groups larger than
`max_points` are subsampled uniformly with a fixed seed (the backdoor share is kept).

- `silhouette`: mean silhouette (`silhouettes`, on these distances) of the two-group split
  backdoor vs clean target over every point of the group (-1..1; ~0 = mixed, near 1 = a tight
  separate backdoor cluster);
  `silhouette_backdoor`: the same averaged over the backdoor points only.
- `knn_backdoor_share`: mean share of each backdoor sample's k nearest neighbours (within the
  target group, itself excluded) that are backdoor; `knn_backdoor_share_expected`: that share
  if backdoor samples were spread at random, (n_b - 1) / (n - 1); `knn_enrichment` = ratio.
- `subclusters`: number of backdoor sub-clusters: connected components of the symmetric
  k-nearest-neighbour graph of the backdoor points alone (at most 600, subsampled), counting
  components that hold at least 5 % of them (and >= 3 points); `subcluster_sizes`: their sizes
  (as a share of the backdoor points used), largest first. Groups that touch merge into one.
- `centroid_separation`: distance between the backdoor and clean-target centroids divided by
  the mean distance of points to their own centroid.
Undefined values are None (no backdoor samples, fewer than two in a group...).
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 2000
MAX_SUBCLUSTER_POINTS = 600
MIN_SUBCLUSTER_SHARE = 0.05
SEED = 0


def euclidean_distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix in float64, exactly symmetric with a zero diagonal.

    The points are centred first, so that |a|^2 + |b|^2 - 2ab does not cancel catastrophically
    for points far from the origin."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0)
    sq = np.einsum("ij,ij->i", x, x)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d, 0.0, out=d)
    d = np.sqrt(d)
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


def silhouettes(dist: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-point silhouette (Rousseeuw 1987) from a full distance matrix: (b - a) / max(a, b),
    a = mean distance to the other points of its own cluster, b = the smallest mean distance to
    another cluster's points; 0 for a point alone in its cluster (as scikit-learn's
    silhouette_samples, which tests/test_alarm.py compares it with). Needs >= 2 clusters."""
    _, inv = np.unique(labels, return_inverse=True)
    member = np.eye(inv.max() + 1)[inv]  # (n, clusters) one-hot
    sums = dist @ member
    counts = member.sum(0)
    rows = np.arange(len(inv))
    own = counts[inv] - 1
    a = sums[rows, inv] / np.maximum(own, 1)
    mean_other = sums / counts
    mean_other[rows, inv] = np.inf
    b = mean_other.min(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s[(own == 0) | ~np.isfinite(s)] = 0.0
    return s


def _subclusters(dist: np.ndarray, k: int, min_share: float) -> list[int]:
    """Sizes (largest first) of the connected components of the symmetric k-NN graph of the
    backdoor points, counting components with at least min_share of the points (>= 3)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(dist)
    if n < 2:
        return [n] if n else []
    kk = int(min(k, n - 1))
    d = dist.copy()
    np.fill_diagonal(d, np.inf)
    nn = np.argpartition(d, kk - 1, axis=1)[:, :kk]
    rows = np.repeat(np.arange(n), kk)
    g = coo_matrix((np.ones(n * kk), (rows, nn.reshape(-1))), shape=(n, n))
    _, comp = connected_components(g, directed=True, connection="weak")
    sizes = np.bincount(comp)
    keep = sizes[sizes >= max(3, min_share * n)]
    return sorted((int(v) for v in keep), reverse=True) or [int(sizes.max())]


def cluster_metrics(feats: np.ndarray, labels: np.ndarray, is_backdoor: np.ndarray, target: int,
                    k: int = 10, max_points: int = MAX_POINTS,
                    min_subcluster_share: float = MIN_SUBCLUSTER_SHARE, seed: int = SEED) -> dict:
    """Cluster metrics of one checkpoint's T (rows of `feats`); JSON-friendly values."""
    x = np.asarray(feats, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    bd = np.asarray(is_backdoor, dtype=bool).reshape(-1)
    if x.ndim != 2 or len(x) != len(labels) or len(x) != len(bd):
        raise ValueError(f"shapes disagree: feats {x.shape}, labels {labels.shape}, "
                         f"is_backdoor {bd.shape}")
    group = (labels == target) | bd
    out: dict = {
        "n": len(x), "n_target": int(group.sum()), "n_backdoor": int(bd.sum()),
        "n_target_clean": int((group & ~bd).sum()), "n_used": 0, "k": None,
        "silhouette": None, "silhouette_backdoor": None,
        "knn_backdoor_share": None, "knn_backdoor_share_expected": None, "knn_enrichment": None,
        "subclusters": None, "subcluster_sizes": None, "centroid_separation": None,
    }
    idx = np.flatnonzero(group)
    finite = np.isfinite(x[idx]).all(1)
    if not finite.all():
        out["note"] = f"{int((~finite).sum())} non-finite feature rows left out"
        idx = idx[finite]
    rng = np.random.default_rng(seed)
    if len(idx) > max_points:
        idx = np.sort(rng.choice(idx, max_points, replace=False))
    xs, bs = x[idx], bd[idx]
    nb, n = int(bs.sum()), len(idx)
    out["n_used"] = n
    if nb == 0:
        out["note"] = "no backdoor samples"
        out["subclusters"] = 0
        return out
    dist = euclidean_distances(xs)
    if 0 < nb < n:
        cb, cc = xs[bs].mean(0, dtype=np.float64), xs[~bs].mean(0, dtype=np.float64)
        spread = np.concatenate([np.linalg.norm(xs[bs] - cb, axis=1),
                                 np.linalg.norm(xs[~bs] - cc, axis=1)]).mean()
        gap = float(np.linalg.norm(cb - cc))
        out["centroid_separation"] = gap / float(spread) if spread > 0 else None
    if nb >= 2 and n - nb >= 2:
        s = silhouettes(dist, bs.astype(int))
        out["silhouette"] = float(s.mean())
        out["silhouette_backdoor"] = float(s[bs].mean())
    if n >= 2 and nb >= 1:
        kk = int(min(k, n - 1))
        out["k"] = kk
        rows = np.flatnonzero(bs)
        d = dist[rows].copy()
        d[np.arange(len(rows)), rows] = np.inf  # not its own neighbour
        nn = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        share = float(bs[nn].mean())
        expected = (nb - 1) / (n - 1)
        out["knn_backdoor_share"] = share
        out["knn_backdoor_share_expected"] = float(expected)
        out["knn_enrichment"] = share / expected if expected > 0 else None
    sub = np.flatnonzero(bs)
    if len(sub) > MAX_SUBCLUSTER_POINTS:
        sub = np.sort(rng.choice(sub, MAX_SUBCLUSTER_POINTS, replace=False))
    sizes = _subclusters(dist[np.ix_(sub, sub)], k, min_subcluster_share)
    out["subclusters"] = len(sizes)
    out["subcluster_sizes"] = [round(v / len(sub), 4) for v in sizes]
    return out
