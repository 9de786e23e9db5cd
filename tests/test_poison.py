"""Poison index rule and class-wise subsets (docs/method.md §1, §4)."""

import numpy as np
import pytest

from ibtui.data.attacks import create_attack
from ibtui.data.datasets import load_dataset
from ibtui.data.poison import build_subsets, poison_dataset, select_poison_indices


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_is_32x32_rgb_uint8_stratified(digits):
    assert digits.x_train.shape[1:] == (32, 32, 3) and digits.x_train.dtype == np.uint8
    assert len(digits.x_train) + len(digits.x_test) == 1797
    tr = np.bincount(digits.y_train, minlength=10) / len(digits.y_train)
    te = np.bincount(digits.y_test, minlength=10) / len(digits.y_test)
    assert np.abs(tr - te).max() < 0.01
    assert np.array_equal(load_dataset("digits").x_train, digits.x_train)  # fixed split


def test_dirty_label_takes_last_images_of_every_class():
    y = np.repeat(np.arange(10), 100)
    idx = select_poison_indices(y, 0.1, 0, "dirty", 10)
    assert len(idx) == 100
    for c in range(10):
        assert list(idx[y[idx] == c]) == list(range(c * 100 + 90, c * 100 + 100))


def test_clean_label_takes_share_of_target_class():
    y = np.repeat(np.arange(10), 100)
    idx = select_poison_indices(y, 0.25, 3, "clean", 10)
    assert list(idx) == list(range(300, 325))  # authors: the *first* floor(p n_t)


def test_authors_rule_floors_twice():
    """The authors: int(int(p N) / C) per class. Digits at p = 0.05: 60 images, not round's 70."""
    y = np.repeat(np.arange(10), 135)[:1347]  # 1347 images, the last class short
    idx = select_poison_indices(y, 0.05, 0, "dirty", 10)
    assert len(idx) == 10 * (int(0.05 * 1347) // 10) == 60
    for c in range(10):
        cls = np.flatnonzero(y == c)
        assert list(idx[y[idx] == c]) == list(cls[-6:])
    # p N that float arithmetic lands just below an integer still floors to it
    assert len(select_poison_indices(np.repeat(np.arange(10), 134), 0.1, 0, "dirty", 10)) == 130
    # clean-label: first floor(p n_t)
    assert list(select_poison_indices(np.repeat(np.arange(3), 7), 0.5, 1, "clean", 3)) == [7, 8, 9]


def test_backdoorbench_rule_random_round_over_everything():
    y = np.repeat(np.arange(10), 101)
    idx = select_poison_indices(y, 0.05, 0, "dirty", 10, rule="random-round", seed=3)
    assert len(idx) == round(0.05 * 1010) == 50 and len(set(idx)) == 50
    again = select_poison_indices(y, 0.05, 0, "dirty", 10, rule="random-round", seed=3)
    np.testing.assert_array_equal(idx, again)
    other = select_poison_indices(y, 0.05, 0, "dirty", 10, rule="random-round", seed=4)
    assert not np.array_equal(idx, other)
    # uniform over the whole set, target class included: over many seeds every class is drawn
    counts = np.zeros(10)
    for s in range(200):
        counts += np.bincount(y[select_poison_indices(y, 0.05, 0, "dirty", 10,
                                                      rule="random-round", seed=s)], minlength=10)
    assert counts.min() > 0.8 * counts.mean()
    assert len(select_poison_indices(y, 0.05, 0, "dirty", 10, rule="random-floor")) == 50
    assert len(select_poison_indices(y, 0.0555, 0, "dirty", 10, rule="random-floor")) == 56
    assert len(select_poison_indices(y, 0.0555, 0, "dirty", 10, rule="random-round")) == 56
    assert len(select_poison_indices(y, 0.0545, 0, "dirty", 10, rule="random-floor")) == 55
    cl = select_poison_indices(y, 0.25, 2, "clean", 10, rule="random-round", seed=0)
    assert len(cl) == 25 and np.all(y[cl] == 2)


def test_first_other_rule_is_the_original_ftrojan():
    y = np.array([0, 1, 0, 2, 3, 0, 1, 1, 2, 2])
    idx = select_poison_indices(y, 0.3, 0, "dirty", 4, rule="first-other")
    assert list(idx) == [1, 3, 4]


def test_variants_carry_their_reference_index_rule(digits):
    expect = {("badnets", "backdoorbench"): "random-round", ("blend", "backdoorbench"): "random-round",
              ("wanet", "backdoorbench"): "random-round", ("ftrojan", "original"): "first-other",
              ("adap-blend", "original"): "random-floor"}
    for (name, variant), rule in expect.items():
        a = create_attack(name, {"variant": variant}, target=0, seed=0)
        assert a.opts["index"] == rule
        p = poison_dataset(digits, a, 0.1, 0, list(range(1, 10)), seed=0)
        np.testing.assert_array_equal(
            p.poison_idx, select_poison_indices(digits.y_train, a.selection_rate(0.1), 0, "dirty",
                                                10, rule=rule, seed=0))
    for name in ("badnets", "blend", "wanet", "adap-blend", "ftrojan", "lc"):
        assert create_attack(name, {}, target=0, seed=0).opts["index"] == "authors"


def test_subsets_sizes_disjointness_and_sample_share(digits):
    attack = create_attack("badnets", {}, target=0, seed=0)
    p = poison_dataset(digits, attack, 0.1, 0, list(range(1, 10)), seed=0)
    s = p.subsets
    n = len(digits.y_train)
    per_class = int(0.1 * n) // 10
    assert len(p.poison_idx) == 10 * per_class
    assert set(s["0_backdoor"]) == set(p.poison_idx)  # dirty-label: every poisoned image -> 0
    assert set(s["0_backdoor"]).isdisjoint(s["0_clean"])
    assert set(s["0_backdoor"]) | set(s["0_clean"]) == set(s["0"])
    assert np.all(p.y_train[s["0"]] == 0)
    for c in range(1, 10):
        assert np.all(p.y_train[s[str(c)]] == c)
        assert set(s[str(c)]).isdisjoint(p.poison_idx)
    size = round(np.mean([len(s[str(c)]) for c in range(1, 10)]))
    assert len(s["0_sample"]) == size
    share = len(s["0_backdoor"]) / len(s["0"])
    n_bd = len(set(s["0_sample"]) & set(s["0_backdoor"]))
    assert n_bd == round(share * size)
    assert set(s["0_sample"]) <= set(s["0"])
    # triggered test set: every test image, the trigger applied
    assert p.x_test_trigger.shape == digits.x_test.shape
    assert np.all(p.x_test_trigger[:, :5, :5] == [255, 0, 0])


def test_clean_label_subsets_keep_labels():
    y = np.repeat(np.arange(3), 10)
    trig = np.zeros(30, bool)
    trig[[7, 8, 9]] = True
    bd = trig & (y == 0)
    s, roles = build_subsets(y, bd, trig, 0, [1, 2], seed=0)
    assert list(s["0_backdoor"]) == [7, 8, 9]
    assert list(s["0_clean"]) == list(range(7))
    assert roles["0_sample"] == "sample" and roles["1"] == "class"
    assert len(s["0_sample"]) == 10 and len(set(s["0_sample"]) & {7, 8, 9}) == 3


def test_badnets_pixels_and_labels_exact():
    x = np.full((2, 32, 32, 3), 17, np.uint8)
    y = np.array([3, 5])
    a = create_attack("badnets", {}, target=1, seed=0)
    px, py = a.poison_train(x, y)
    assert np.all(px[:, :5, :5] == [255, 0, 0])
    mask = np.ones((32, 32), bool)
    mask[:5, :5] = False
    assert np.all(px[:, mask] == 17) and list(py) == [1, 1]
    b = create_attack("badnets", {"variant": "backdoorbench"}, target=1, seed=0)
    qx, _ = b.poison_train(x, y)
    assert np.all(qx[:, -3:, -3:] == 255) and np.all(qx[:, :29, :] == 17)


def test_blend_is_convex_combination():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    a = create_attack("blend", {}, target=0, seed=0)
    px, py = a.poison_train(x, np.array([1, 2, 3]))
    p = a.artifacts()["blend_pattern"].astype(np.float64)
    # (1 - a) x + a p on the 0-255 scale, rounded half up
    expect = np.floor(0.7 * x + 0.3 * p + 0.5 + 1e-6)
    assert np.array_equal(px.astype(np.float64), expect)
    assert list(py) == [0, 0, 0]
    # the pattern is fixed in code: the same for every run seed
    assert np.array_equal(create_attack("blend", {}, target=0, seed=9).artifacts()["blend_pattern"],
                          a.artifacts()["blend_pattern"])


def test_label_keeping_samples_are_not_backdoor(digits):
    """WaNet's backdoorbench noise samples carry a warp but keep their label: never t_backdoor,
    never a clean class, and the payload keeps its full rate."""
    attack = create_attack("wanet", {"variant": "backdoorbench"}, target=0, seed=0)
    p = poison_dataset(digits, attack, 0.1, 0, list(range(1, 10)), seed=0)
    n = len(digits.y_train)
    assert len(p.poison_idx) == round(0.3 * n)  # BackdoorBench: random round(p (1 + r) N)
    kept = p.poison_idx[attack.kept]
    assert len(kept) > 0 and np.all(p.y_train[kept] == p.y_true[kept])
    assert set(kept).isdisjoint(p.subsets["0_backdoor"])
    assert np.all(p.y_train[p.subsets["0_backdoor"]] == 0)
    for c in range(1, 10):
        assert set(kept).isdisjoint(p.subsets[str(c)])


def test_ibtui_v1_rule_reproduces_older_runs():
    """ibtui's first rule (ibtui-v1): last round(p N / C) per class, LC the last round(p n_t)."""
    y = np.repeat(np.arange(10), 135)[:1347]
    idx = select_poison_indices(y, 0.05, 0, "dirty", 10, rule="ibtui-v1")
    assert len(idx) == 70
    y2 = np.repeat(np.arange(10), 100)
    assert list(select_poison_indices(y2, 0.25, 3, "clean", 10, rule="ibtui-v1")) == list(range(375, 400))
