"""Trained estimators: the factorised critic, ceilings, accuracy on small exact tasks."""

import math

import pytest
import torch

from ibtui.mi import estimate
from ibtui.mi import tasks as T
from ibtui.mi.critics import ConcatCritic

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_factorised_equals_concat():
    torch.manual_seed(0)
    critic = ConcatCritic(7, 3, hidden=16)
    a, b = torch.randn(5, 7), torch.randn(5, 3)
    neg = torch.randint(0, 5, (5, 4))
    pos, negs = critic.pairs(a, b, neg)
    plain_pos = critic(torch.cat([a, b], 1))
    plain_neg = critic(torch.cat([a[:, None].expand(5, 4, 7), b[neg]], 2))
    assert torch.allclose(pos, plain_pos, atol=1e-6)
    assert torch.allclose(negs, plain_neg, atol=1e-6)
    perm = torch.randperm(5)
    j, m = critic.shuffled(a, b, perm)
    assert torch.allclose(m, critic(torch.cat([a, b[perm]], 1)), atol=1e-6)


def _gauss(mi: float, d: int, n: int, seed: int = 0):
    task = T.high_mi_gaussian(mi, d=d, n=n, seed=seed)
    return task.a, task.b, task.truth


def test_infonce_paper_accuracy():
    a, b, truth = _gauss(1.0, 2, 512)
    est = estimate(a, b, "infonce-paper", batch_size=128, negatives=64, lr=3e-3, hidden=32,
                   max_epochs=30, early_stop_patience=0, seed=0)
    assert est.value == pytest.approx(truth, abs=0.2)
    assert est.ceiling == pytest.approx(math.log(65))


def test_infonce_paper_never_above_ceiling():
    a, b, truth = _gauss(10.0, 20, 512)
    est = estimate(a, b, "infonce-paper", batch_size=128, negatives=16, lr=3e-3, hidden=32,
                   max_epochs=15, early_stop_patience=0, seed=0)
    ceiling = math.log(17)
    assert est.ceiling == pytest.approx(ceiling)
    assert max(est.settings["curve"]) <= ceiling + 1e-6
    assert est.value > ceiling - 0.8  # pinned near the ceiling, far below the truth (10)


def test_infonce_paper_deterministic_and_schedule():
    a, b, _ = _gauss(1.0, 2, 256)
    kw = {"term": "ty", "schedule": "quick", "max_epochs": 3, "seed": 5, "hidden": 32}
    e1, e2 = estimate(a, b, "infonce-paper", **kw), estimate(a, b, "infonce-paper", **kw)
    assert e1.value == e2.value and e1.settings["curve"] == e2.settings["curve"]
    assert e1.settings["negatives"] == 256 and e1.settings["batch_size"] == 512
    assert e1.settings["epochs"] == 3


def test_independence_gives_about_zero():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1024, 3, generator=g), torch.randn(1024, 3, generator=g)
    for method, kw in (("infonce-paper", {"negatives": 32, "lr": 1e-3, "max_epochs": 10,
                                          "hidden": 32}),
                       ("infonce-separable", {"batch_size": 256, "max_epochs": 10,
                                              "hidden": 32, "embed": 16}),
                       ("mine", {"max_epochs": 10, "lr": 1e-3, "hidden": 32})):
        est = estimate(a, b, method, seed=0, early_stop_patience=0, **kw)
        assert abs(est.value) < 0.1, (method, est.value)


def test_separable_accuracy_and_ceiling():
    a, b, truth = _gauss(2.0, 4, 2048)
    est = estimate(a, b, "infonce-separable", batch_size=256, max_epochs=40, lr=3e-3,
                   hidden=64, embed=32, early_stop_patience=0, seed=0)
    assert est.ceiling == pytest.approx(math.log(256))
    assert est.value == pytest.approx(truth, rel=0.15)


def test_mine_accuracy():
    a, b, truth = _gauss(1.0, 2, 1024)
    est = estimate(a, b, "mine", batch_size=256, max_epochs=40, lr=1e-3, hidden=32,
                   early_stop_patience=0, seed=0)
    assert est.ceiling is None
    assert est.value == pytest.approx(truth, abs=0.25)


def test_invariance_under_invertible_maps():
    a, b, truth = _gauss(1.0, 2, 1024)
    kw = {"batch_size": 256, "max_epochs": 40, "lr": 3e-3, "hidden": 64, "embed": 32,
          "early_stop_patience": 0, "seed": 0}
    base = estimate(a, b, "infonce-separable", **kw).value
    # strictly increasing maps, coordinate-wise: invertible
    mapped = estimate(3 * a + 1.5 * torch.sin(a) + 1, 2 * b + 0.1 * b.pow(3), "infonce-separable",
                      **kw).value
    assert mapped == pytest.approx(base, abs=0.25)
    assert mapped == pytest.approx(truth, abs=0.3)


def test_noise_aware_needs_noise_model():
    with pytest.raises(ValueError, match="noisy_mi"):
        estimate(torch.zeros(4, 2), torch.zeros(4, 2), "noise-aware")
