"""Backdoor alarm: hand-made per-class records, the two baselines on synthetic data
with a planted cluster, and the calibration of the run-level p-value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ibtui.analysis import alarm
from ibtui.analysis.baselines import activation_clustering, class_baselines, spectral_signature

C = 10


def write_run(path: Path, *, depart: int | None, epochs: int = 4, noise: float = 0.0,
              seed: int = 0) -> Path:
    """A run directory with classes.jsonl, metrics.jsonl and mi.jsonl for C classes. Every
    class follows the same curves (plus optional noise); class `depart` departs from them from
    epoch 2 on: a split representation, a larger loss spread, other MI and loss."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "classes.jsonl", "w") as fc, open(path / "metrics.jsonl", "w") as fm, \
            open(path / "mi.jsonl", "w") as fi:
        for e in range(1, epochs + 1):
            classes, loss = {}, {}
            for c in range(C):
                odd = c == depart and e >= 2
                jit = lambda: float(noise * rng.standard_normal())  # noqa: E731
                classes[str(c)] = {
                    "n": 135, "n_used": 135, "loss_mean": 1.0 / e + jit(),
                    "loss_std": 0.3 + jit() + (0.5 if odd else 0.0),
                    "ac_silhouette": 0.15 + jit() + (0.4 if odd else 0.0),
                    "ss_top": 0.2 + jit() + (0.3 if odd else 0.0), "acc": 0.9, "conf": 0.8}
                loss[str(c)] = 1.0 / e + abs(jit()) + (1.0 if odd else 0.0)
                for term, base in (("xt", 3.0), ("ty", 1.5)):
                    v = base + jit() + (0.8 if odd else 0.0)
                    # the role field names the target in real runs: the alarm must not read it
                    fi.write(json.dumps({"epoch": e, "term": term, "subset": str(c),
                                         "method": "noise-aware", "value": v,
                                         "role": "all" if c == 0 else "class"}) + "\n")
            fc.write(json.dumps({"epoch": e, "final": e == epochs, "classes": classes}) + "\n")
            fm.write(json.dumps({"epoch": e, "class_loss": loss}) + "\n")
    return path


@pytest.mark.parametrize("score", ["dynamics", "representation", "mi", "loss", "ac", "ss"])
def test_a_departing_class_is_found(tmp_path, score):
    run = write_run(tmp_path / "r", depart=6, noise=0.01)
    v = alarm.verdict(run, score)
    assert v["top_class"] == 6 and v["poisoned"], v
    assert v["p"] <= alarm.ALPHA and v["z"] >= v["threshold_z"]
    tl = alarm.timeline(alarm.load_inputs(run), score)
    assert [t["epoch"] for t in tl] == [1, 2, 3, 4]


def test_first_epoch_is_when_the_departure_starts(tmp_path):
    run = write_run(tmp_path / "r", depart=6, noise=0.01)
    v = alarm.verdict(run)
    assert v["first_epoch"] == 2  # the class departs from epoch 2 on; epoch 1 is all alike


def test_identical_classes_give_no_alarm(tmp_path):
    run = write_run(tmp_path / "r", depart=None)
    for score in alarm.SCORES:
        v = alarm.verdict(run, score)
        assert v is not None and not v["poisoned"], (score, v)
        assert v["first_epoch"] is None
        assert all(z == 0.0 for z in v["suspicion"].values())


def test_alike_noisy_classes_rarely_alarm(tmp_path):
    """Classes with the same curves plus independent noise: chance alarms only (alpha = 1%,
    over 4 checkpoints; at most 2 of 20 runs)."""
    fired = sum(alarm.verdict(write_run(tmp_path / f"r{s}", depart=None, noise=0.01, seed=s)
                              )["poisoned"] for s in range(20))
    assert fired <= 2


def test_the_role_field_is_not_read(tmp_path):
    """Class 0 carries role "all" (the target's role in real runs) but nothing departs."""
    run = write_run(tmp_path / "r", depart=None, noise=0.01, seed=5)
    inp = alarm.load_inputs(run)
    assert set(inp["mi"][1]["xt"]) == {str(c) for c in range(C)}
    assert not alarm.verdict(run, "mi")["poisoned"]


def test_null_is_calibrated_on_exchangeable_classes():
    """On iid normal class scores the alarm's false-positive rate is ALPHA (Monte Carlo)."""
    rng = np.random.default_rng(0)
    fired = 0
    trials = 2000
    for _ in range(trials):
        raw = {str(c): float(x) for c, x in enumerate(rng.standard_normal(C))}
        fired += alarm.judge(raw)["alarm"]
    assert fired / trials == pytest.approx(alarm.ALPHA, abs=0.01)
    assert alarm.p_value(0.0, C) > 0.5 and alarm.p_value(50.0, C) < 1e-3


def test_damaged_files_are_skipped(tmp_path):
    run = write_run(tmp_path / "r", depart=2, noise=0.01)
    with open(run / "classes.jsonl", "a") as f:
        f.write('{"epoch": "x", "classes": 3}\n{"epoch": 9, "classes": {"0": "bad"}}\n{"torn')
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 5, "class_loss": {"0": "nan?", "1": null}}\n')
    v = alarm.verdict(run)
    assert v["top_class"] == 2
    assert alarm.verdict(tmp_path / "missing") is None
    assert alarm.alarm_lines(tmp_path / "missing")[0].startswith("backdoor alarm: no per-class")
    assert alarm.alarm_cell(tmp_path / "missing") == ""
    assert alarm.suspicion_bars(None) == [] and alarm.suspicion_bars({"suspicion": "x"}) == []


def test_display_helpers(tmp_path):
    run = write_run(tmp_path / "r", depart=4, noise=0.01)
    lines = alarm.alarm_lines(run)
    assert "POISONED? yes" in lines[0] and "class 4" in lines[0] and "epoch 2" in lines[0]
    assert alarm.alarm_cell(run) == "! 4"
    bars = alarm.suspicion_bars(alarm.live_verdict(run))
    assert [b[0] for b in bars] == [str(c) for c in range(C)]
    assert [b[2] for b in bars] == [c == 4 for c in range(C)]
    rec = alarm.summary_record(run)
    assert rec["poisoned"] and rec["top_class"] == 4 and set(rec["baselines"]) == {"ac", "ss"}
    json.dumps(rec)


# --- baselines on synthetic data with a planted cluster ------------------------------------------


def planted(n: int = 300, share: float = 0.15, shift: float = 6.0, d: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    k = int(share * n)
    direction = rng.standard_normal(d)
    x[:k] += shift * direction / np.linalg.norm(direction)
    is_poison = np.zeros(n, bool)
    is_poison[:k] = True
    return x, is_poison


def test_activation_clustering_splits_off_the_planted_cluster():
    x, poison = planted()
    ac = activation_clustering(x)
    small = np.argmin(np.bincount(ac["labels"]))
    found = ac["labels"] == small
    assert (found == poison).mean() > 0.95
    assert ac["small_share"] == pytest.approx(poison.mean(), abs=0.03)
    clean = activation_clustering(planted(share=0.0)[0])
    assert ac["silhouette"] > clean["silhouette"] + 0.1


def test_silhouettes_pca_and_two_means_agree_with_scikit_learn():
    """The numpy versions a worker uses against scikit-learn on random and planted data:
    silhouettes equal (2 and 3 clusters, a singleton), PCA the same projection up to signs,
    2-means the same split of planted data and, on noise (many near-equal local optima), a sum
    of squares within 1% of scikit-learn's (20 seeds: 0.2% better to 0.7% worse)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_samples

    from ibtui.analysis.baselines import _pca, two_means
    from ibtui.analysis.clusters import euclidean_distances, silhouettes

    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 5))
    for labels in (rng.integers(0, 2, 60), rng.integers(0, 3, 60), np.r_[0, np.ones(59, int)]):
        np.testing.assert_allclose(silhouettes(euclidean_distances(x), labels),
                                   silhouette_samples(x, labels), atol=1e-10)
    for shape in ((200, 12), (8, 30)):  # more rows than columns, and fewer
        y = rng.standard_normal(shape) * np.linspace(3, 1, shape[1])
        y -= y.mean(0)
        ours, theirs = _pca(y, 4), PCA(n_components=4, svd_solver="full").fit_transform(y)
        np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-8)
    z, _ = planted()
    ours, theirs = two_means(z), KMeans(n_clusters=2, n_init=4, random_state=0).fit_predict(z)
    assert (ours == ours[0]).tolist() == (theirs == theirs[0]).tolist()
    noise = rng.standard_normal((300, 10))
    km = KMeans(n_clusters=2, n_init=4, random_state=0).fit(noise)
    ours = two_means(noise)
    inertia = sum(((noise[ours == j] - noise[ours == j].mean(0)) ** 2).sum() for j in (0, 1))
    assert inertia <= km.inertia_ * 1.01


def test_spectral_signature_scores_the_planted_points_highest():
    x, poison = planted(share=0.1)
    ss = spectral_signature(x)
    top = np.argsort(ss["scores"])[-int(1.5 * poison.sum()):]
    assert poison[top].sum() >= 0.9 * poison.sum()  # Tran et al. remove the top 1.5 eps
    clean = spectral_signature(planted(share=0.0)[0])
    assert ss["top_share"] > 2 * clean["top_share"]


def test_baselines_name_the_planted_class_among_clean_ones():
    stats = {}
    for c in range(C):
        x, _ = planted(share=0.2 if c == 7 else 0.0, seed=c)
        stats[str(c)] = class_baselines(x)
    for key in ("ac_silhouette", "ss_top"):
        v = alarm.judge({c: s[key] for c, s in stats.items()})
        assert v["top_class"] == 7 and v["alarm"], (key, v)


def test_baselines_degenerate_inputs():
    assert activation_clustering(np.zeros((2, 4)))["silhouette"] is None
    assert activation_clustering(np.zeros((10, 4)))["silhouette"] is None
    assert spectral_signature(np.zeros((10, 4)))["top_share"] is None
    assert class_baselines(np.ones((1, 3)))["ss_top"] is None


# --- clean reference runs: attack "none" -------------------------------------------------------


def test_attack_none_is_a_clean_reference(tmp_path):
    from ibtui.data.attacks import create_attack
    from ibtui.data.datasets import load_dataset
    from ibtui.data.poison import poison_dataset
    from ibtui.errors import SpecError
    from ibtui.spec import load_spec

    f = tmp_path / "e.toml"
    f.write_text('[[experiment]]\nname = "c"\nattack = ["none", "badnets"]\n'
                 'poison_rate = [0.0, 0.01, 0.1]\nepochs = 2\n')
    with pytest.raises(SpecError, match="poison_rate"):
        load_spec(f)  # badnets at 0 is still an error
    f.write_text('[[experiment]]\nname = "c"\nattack = ["none", "badnets"]\n'
                 'poison_rate = [0.01, 0.1]\nepochs = 2\n')
    runs = load_spec(f)
    assert sorted(r.run_id for r in runs) == [
        "c-badnets-digits-resnet18-p0.01-s0", "c-badnets-digits-resnet18-p0.1-s0",
        "c-none-digits-resnet18-p0-s0"]  # one clean run: its rate is ignored, stored as 0
    f.write_text('[[experiment]]\nname = "c"\nattack = "none"\npoison_rate = 0\n')
    assert load_spec(f)[0].values["poison_rate"] == 0.0
    f.write_text('[[experiment]]\nname = "c"\nattack = "none"\npoison_rate = -0.1\n')
    with pytest.raises(SpecError, match="poison_rate.*ignored for attack 'none'"):
        load_spec(f)

    ds = load_dataset("digits")
    a = create_attack("none", {}, target=3, seed=0)
    d = poison_dataset(ds, a, 0.1, 3, [c for c in range(10) if c != 3], 0)
    assert len(d.poison_idx) == 0 and len(d.backdoor_idx) == 0
    np.testing.assert_array_equal(d.x_train, ds.x_train)
    np.testing.assert_array_equal(d.y_train, ds.y_train)
    np.testing.assert_array_equal(d.x_test_trigger, ds.x_test)
    assert len(d.subsets["3_backdoor"]) == 0 and len(d.subsets["3_sample"]) > 0


def test_class_statistics_record_every_class_and_leave_training_alone(tmp_path, one_torch_thread):
    import torch

    from ibtui.experiment.measure import class_statistics
    from ibtui.models import create_model
    from ibtui.runs.store import read_jsonl
    from ibtui.train import prepare_model, to_device

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(np.arange(3), 20)
    torch.manual_seed(0)
    model = prepare_model(create_model("resnet18", 3, 4), x, torch.device("cpu"))
    xt = to_device(x, torch.device("cpu"))
    spec = {"seed": 0}
    before = torch.get_rng_state()
    for e in (1, 2):
        class_statistics(spec, tmp_path, e, model, xt, y, 3, final=e == 2)
    assert torch.equal(torch.get_rng_state(), before)  # forked RNG: training is unchanged
    class_statistics(spec, tmp_path, 2, model, xt, y, 3, final=True)  # a resumed epoch 2
    recs = read_jsonl(tmp_path / "classes.jsonl")
    assert [r["epoch"] for r in recs] == [1, 2] and recs[1]["final"]
    for row in recs[1]["classes"].values():
        assert row["n"] == 20 and 0 <= row["acc"] <= 1 and row["loss_std"] >= 0
        assert 0 < row["ss_top"] <= 1 and -1 <= row["ac_silhouette"] <= 1


def test_odd_class_keys_are_skipped(tmp_path):
    run = write_run(tmp_path / "r", depart=2, noise=0.01)
    with open(run / "classes.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 5, "classes": {"²": {"ss_top": 1.0}, "x": {}}}) + "\n")
    assert alarm.verdict(run)["top_class"] == 2
    assert alarm.alarm_lines(run)[0].startswith("backdoor alarm:")
