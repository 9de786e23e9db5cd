"""Phase detection on synthetic curves, cluster metrics on constructed point sets, presets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_analysis_fixture import EXPECTED_PHASES, EXPECTED_REPRESENTATIVE, SUBSETS, mi_records

from ibtui.analysis.clusters import cluster_metrics
from ibtui.analysis.phases import PHASES, detect_phases
from ibtui.analysis.stealth import stealth_score
from ibtui.errors import SpecError

ROLES = dict(SUBSETS)
PAPER_EPOCHS = [1, 5, 10, 20, 40, 60, 80, 100, 120]


def curve_records(epochs: list[int], clean: list[float], method: str = "noise-aware",
                  backdoor: list[float] | None = None) -> list[dict]:
    """I(X;T) of two clean classes around `clean`, plus target subsets that must not matter."""
    out = []
    for i, e in enumerate(epochs):
        for subset, role in (("1", "class"), ("2", "class"), ("0", "all"),
                             ("0_backdoor", "backdoor")):
            v = clean[i] + (0.05 if subset == "1" else -0.05 if subset == "2" else 0.0)
            if role == "backdoor":
                v = backdoor[i] if backdoor else 9.0 - i
            for term in ("xt", "ty"):
                out.append({"epoch": e, "term": term, "subset": subset, "role": role,
                            "method": method, "value": v if term == "xt" else 1.0 + 0.1 * i})
    return out


# --- phases -------------------------------------------------------------------------------------

def test_phases_of_a_paper_like_curve():
    # rise to 10, near-peak at 20, falls at 40, settles from 60 on
    clean = [2.0, 4.0, 5.0, 4.8, 4.0, 3.2, 3.0, 2.95, 2.9]
    ph = detect_phases(curve_records(PAPER_EPOCHS, clean), {"1": "class", "2": "class",
                                                             "0": "all", "0_backdoor": "backdoor"})
    assert ph["peak_epoch"] == 10
    assert ph["phases"] == {"early": [1, 5], "transition": [10, 20], "compression": [40, 40],
                            "convergence": [60, 120]}
    assert ph["checkpoints"]["convergence"] == [60, 80, 100, 120]
    assert ph["representative"] == {"early": 5, "transition": 10, "compression": 40,
                                    "convergence": 120}
    assert ph["representative_epochs"] == [5, 10, 40, 120]
    assert ph["compression_observed"] is True
    assert ph["method"] == "noise-aware" and ph["curve_source"] == "clean classes"
    assert "note" not in ph and isinstance(ph["rule"], str)
    json.dumps(ph)  # goes into summary.json


def test_phases_long_compression_and_backdoor_ignored():
    clean = [1.0, 3.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.1, 1.0]
    # a backdoor curve peaking elsewhere changes nothing: the rule reads the clean classes
    bd = [9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 20.0]
    ph = detect_phases(curve_records(PAPER_EPOCHS, clean, backdoor=bd), None)  # roles from records
    assert ph["peak_epoch"] == 10
    assert ph["checkpoints"] == {"early": [1, 5], "transition": [10],
                                 "compression": [20, 40, 60, 80], "convergence": [100, 120]}
    assert ph["representative"]["compression"] == 40  # lower median of the phase


def test_phases_of_the_fixture_curve():
    ph = detect_phases(mi_records(), ROLES)
    assert ph["phases"] == EXPECTED_PHASES
    assert ph["representative_epochs"] == EXPECTED_REPRESENTATIVE


def test_phases_use_the_first_method():
    a = curve_records(PAPER_EPOCHS, [2.0, 4.0, 5.0, 4.8, 4.0, 3.2, 3.0, 2.95, 2.9], method="m1")
    b = curve_records(PAPER_EPOCHS, [1, 2, 3, 4, 5, 6, 7, 8, 9.0], method="m2")
    ph = detect_phases(a + b, None)
    assert ph["method"] == "m1" and ph["peak_epoch"] == 10
    ph = detect_phases(b + a, None)
    assert ph["method"] == "m2" and ph["peak_epoch"] == 120


def test_no_compression_when_the_curve_keeps_rising():
    ph = detect_phases(curve_records(PAPER_EPOCHS, [1, 2, 3, 4, 5, 6, 7, 8, 9.0]), None)
    assert ph["compression_observed"] is False
    assert ph["peak_epoch"] == 120
    assert set(ph["shared"]) == {"compression", "convergence"}
    assert "no compression" in ph["note"]
    assert set(ph["phases"]) == set(PHASES)


@pytest.mark.parametrize("epochs", [[3], [1, 2], [1, 5, 9]])
def test_phases_with_few_checkpoints(epochs):
    clean = [4.0, 5.0, 3.0][:len(epochs)]
    ph = detect_phases(curve_records(epochs, clean), None)
    assert ph is not None and "note" in ph
    assert set(ph["phases"]) == set(PHASES)
    assert set(ph["representative_epochs"]) <= set(epochs)
    assert ph["representative_epochs"] == sorted(set(ph["representative_epochs"]))
    for lo, hi in ph["phases"].values():
        assert lo in epochs and hi in epochs and lo <= hi


def test_flat_curve_and_no_records():
    ph = detect_phases(curve_records([1, 2, 3, 4], [2.0] * 4), None)
    assert ph["representative_epochs"] and set(ph["representative_epochs"]) <= {1, 2, 3, 4}
    assert detect_phases([], {}) is None
    only_ty = [r for r in curve_records([1, 2], [1.0, 2.0]) if r["term"] == "ty"]
    assert detect_phases(only_ty, None) is None


def test_phases_fall_back_without_clean_classes():
    recs = [r for r in curve_records(PAPER_EPOCHS, [2.0, 4.0, 5.0, 4.8, 4.0, 3.2, 3.0, 2.95, 2.9])
            if r["role"] != "class"]
    ph = detect_phases(recs, None)
    assert ph["curve_source"] != "clean classes" and "no clean-class subsets" in ph["note"]


def test_stealth_score_on_phase_epochs():
    recs = mi_records()
    ph = detect_phases(recs, ROLES)
    out = stealth_score(recs, ROLES, epochs=ph["representative_epochs"])
    assert out["epochs"] == EXPECTED_REPRESENTATIVE
    assert out["score"] is not None


# --- clusters -----------------------------------------------------------------------------------

def _points(separate: bool, n_clean: int = 300, n_bd: int = 200, d: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=(n_clean, d))
    bd = rng.normal(size=(n_bd, d)) * (0.3 if separate else 1.0)
    if separate:
        bd += np.eye(d)[0] * 25.0
    others = rng.normal(size=(250, d)) + np.eye(d)[1] * 12.0
    feats = np.concatenate([clean, bd, others]).astype(np.float32)
    labels = np.array([0] * (n_clean + n_bd) + [1 + i % 9 for i in range(250)])
    is_bd = np.zeros(len(feats), bool)
    is_bd[n_clean:n_clean + n_bd] = True
    return feats, labels, is_bd


def test_cluster_metrics_tight_separate_cluster():
    m = cluster_metrics(*_points(separate=True), target=0)
    assert m["n_target"] == 500 and m["n_backdoor"] == 200 and m["n_target_clean"] == 300
    assert m["silhouette"] > 0.7
    assert m["silhouette_backdoor"] > 0.7
    assert m["knn_backdoor_share"] == pytest.approx(1.0)
    assert m["knn_backdoor_share_expected"] == pytest.approx(199 / 499)
    assert m["knn_enrichment"] > 2.0
    assert m["subclusters"] == 1
    assert m["centroid_separation"] > 3
    json.dumps(m)


def test_cluster_metrics_fully_mixed():
    m = cluster_metrics(*_points(separate=False), target=0)
    assert abs(m["silhouette"]) < 0.05
    assert m["knn_backdoor_share"] == pytest.approx(m["knn_backdoor_share_expected"], abs=0.08)
    assert m["knn_enrichment"] == pytest.approx(1.0, abs=0.2)
    assert m["subclusters"] == 1
    assert m["centroid_separation"] < 0.5


def test_cluster_metrics_counts_backdoor_subclusters():
    rng = np.random.default_rng(3)
    d = 24
    clean = rng.normal(size=(200, d))
    blobs = [rng.normal(size=(80, d)) * 0.3 + np.eye(d)[k] * 10.0 for k in (2, 3, 4)]
    feats = np.concatenate([clean, *blobs]).astype(np.float32)
    labels = np.zeros(len(feats), int)
    is_bd = np.arange(len(feats)) >= 200
    m = cluster_metrics(feats, labels, is_bd, target=0)
    assert m["subclusters"] == 3
    assert m["subcluster_sizes"] == pytest.approx([1 / 3] * 3, abs=0.01)


def test_cluster_metrics_undefined_cases():
    feats, labels, _ = _points(separate=True)
    m = cluster_metrics(feats, labels, np.zeros(len(feats), bool), target=0)
    assert m["n_backdoor"] == 0 and m["silhouette"] is None and m["knn_backdoor_share"] is None
    assert "note" in m
    one = np.zeros(len(feats), bool)
    one[0] = True
    m = cluster_metrics(feats, labels, one, target=0)
    assert m["silhouette"] is None and m["knn_backdoor_share"] == 0.0
    assert m["knn_enrichment"] is None
    json.dumps(m)
    with pytest.raises(ValueError):
        cluster_metrics(feats, labels[:-1], one, target=0)


def test_cluster_metrics_subsample_is_deterministic():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5000, 512)).astype(np.float32)
    labels = np.zeros(5000, int)
    is_bd = rng.random(5000) < 0.3
    a = cluster_metrics(feats, labels, is_bd, target=0)
    b = cluster_metrics(feats, labels, is_bd, target=0)
    assert a == b and a["n_used"] == 2000 and a["n_target"] == 5000


# --- presets ------------------------------------------------------------------------------------

def test_presets_listed_and_valid():
    from ibtui.presets import list_presets, preset_path
    from ibtui.spec import load_spec

    presets = dict(list_presets())
    for name in ("quick", "table1", "table1-cifar10", "table1-cifar10-low", "table1-svhn",
                 "appendix-vgg16", "noise-ablation"):
        assert name in presets
        assert "estimate" in presets[name].lower(), name
    runs = {name: load_spec(preset_path(name)) for name in presets}
    t1 = {(r.attack, r.poison_rate) for r in runs["table1-cifar10"]}
    assert t1 == {("badnets", 0.1), ("blend", 0.1), ("wanet", 0.1), ("adap-blend", 0.1),
                  ("ftrojan", 0.1), ("lc", 0.25)}
    low = {(r.attack, r.poison_rate) for r in runs["table1-cifar10-low"]}
    assert low == {("badnets", 0.01), ("blend", 0.01), ("wanet", 0.01), ("lc", 0.1)}
    svhn = runs["table1-svhn"]
    assert {r.dataset for r in svhn} == {"svhn"} and ("lc", 0.25) in {(r.attack, r.poison_rate)
                                                                    for r in svhn}
    assert len(runs["table1"]) == len(runs["table1-cifar10"]) + len(low) + len(svhn)
    assert {r.arch for r in runs["appendix-vgg16"]} == {"vgg16"}
    assert {(r.noise_xt, r.noise_ty) for r in runs["noise-ablation"]} == {(0.2, 0.2)}
    quick = runs["quick"]
    assert {r.dataset for r in quick} == {"digits"} and {r.attack for r in quick} == {"badnets",
                                                                                      "blend"}


def test_unknown_preset_names_the_allowed_ones():
    from ibtui.presets import preset_path

    with pytest.raises(SpecError, match="allowed: .*quick"):
        preset_path("no-such-preset")


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_cluster_silhouette_matches_scikit_learn(offset):
    """The silhouettes are scikit-learn's on exact distances, also for points far from the
    origin (a float32 |a|^2 + |b|^2 - 2ab expansion gives self-distances near 1 there)."""
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import silhouette_samples

    rng = np.random.default_rng(5)
    feats = (rng.normal(size=(300, 16)) + offset).astype(np.float32)
    feats[200:] += 0.5  # 100 backdoor points, slightly apart
    labels = np.zeros(300, int)
    is_bd = np.arange(300) >= 200
    m = cluster_metrics(feats, labels, is_bd, target=0)
    ref = silhouette_samples(squareform(pdist(feats.astype(np.float64))), is_bd.astype(int),
                             metric="precomputed")
    assert m["silhouette"] == pytest.approx(float(ref.mean()), abs=1e-9)
    assert m["silhouette_backdoor"] == pytest.approx(float(ref[is_bd].mean()), abs=1e-9)
