"""Two published poison detectors on a class's penultimate representations (the alarm's baselines).

Both are implemented here from their papers with numpy / scikit-learn; no code was copied.

- Activation clustering (Chen et al. 2018, "Detecting Backdoor Attacks on Deep Neural Networks by
  Activation Clustering"): the activations of each class are reduced to 10 dimensions (the
  paper uses ICA; `reduce="ica"` = PCA to 10 dimensions, then FastICA), split by 2-means, and the
  class is suspicious when the split is clean (high silhouette) and one cluster is small (relative
  size <= 0.35 in the paper). The default reduction here is PCA to 10 dimensions: FastICA returns
  unit-variance components, so the one direction that separates a planted cluster weighs no more
  than nine noise directions and 2-means often splits along noise (on the planted test data of
  tests/test_alarm.py, ICA recovers 52% of the split, PCA 99.7%); PCA gives the baseline its
  best chance. `activation_clustering` returns the silhouette, the smaller cluster's relative size
  and the per-sample cluster labels.
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

import warnings

import numpy as np

AC_DIMS = 10
AC_SMALL = 0.35  # Chen et al.: a cluster of at most 35% of the class is suspicious
SS_TAIL = 0.05
SEED = 0


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x - x.mean(0, keepdims=True)


def activation_clustering(feats: np.ndarray, dims: int = AC_DIMS, seed: int = SEED,
                          reduce: str = "pca") -> dict:
    """Chen et al.: reduce to `dims` dimensions ("pca" or "ica"), 2-means; silhouette and
    smaller-cluster share.

    Returns {silhouette, small_share, labels} (None values with fewer than 4 samples or a
    degenerate class)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, FastICA
    from sklearn.metrics import silhouette_score

    x = _centred(feats)
    out = {"silhouette": None, "small_share": None, "labels": None}
    n = len(x)
    if n < 4 or not np.isfinite(x).all():
        return out
    k = int(min(dims, n - 1, x.shape[1]))
    if k < 1 or float(np.abs(x).max()) == 0.0:
        return out
    z = PCA(n_components=k, random_state=seed).fit_transform(x)
    if reduce == "ica" and k > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                z = FastICA(n_components=k, whiten="unit-variance", random_state=seed,
                            max_iter=400).fit_transform(z)
            except (ValueError, np.linalg.LinAlgError):
                pass
    if not np.isfinite(z).all():
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = KMeans(n_clusters=2, n_init=4, random_state=seed).fit_predict(z)
    sizes = np.bincount(labels, minlength=2)
    if sizes.min() < 1:
        return out
    out["silhouette"] = float(silhouette_score(z, labels))
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
