"""Trained estimators: the factorised critic, ceilings, accuracy on small exact tasks."""

import math

import pytest
import torch

from ibtui.mi import estimate
from ibtui.mi import tasks as T
from ibtui.mi.critics import ConcatCritic, infonce_batch, infonce_batch_reference, unique_pairs

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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("batch", "negatives", "chunk"), [(96, 40, 500), (40, 96, 300), (7, 3, 4)])
def test_fused_infonce_equals_every_pair_through_the_mlp(dtype, batch, negatives, chunk):
    """infonce-paper's fast batch bound = the direct one (old code), value and every gradient."""
    torch.manual_seed(1)
    critic = ConcatCritic(6, 3, hidden=24).to(dtype)
    for prm in critic.parameters():  # away from the default init: larger, varied scores
        prm.data.mul_(2.0)
    a, b = 2 * torch.randn(batch, 6, dtype=dtype), 2 * torch.randn(batch, 3, dtype=dtype)
    neg = torch.randint(0, batch, (batch, negatives))
    out = {}
    for name, fn in (("fused", lambda: infonce_batch(critic, a, b, neg, chunk=chunk)),
                     ("factorised", lambda: infonce_batch_reference(critic, a, b, neg)),
                     ("plain", lambda: infonce_batch_reference(critic, a, b, neg, plain=True))):
        critic.zero_grad()
        value = fn()
        value.backward()
        out[name] = (value.detach(), [p.grad.clone() for p in critic.parameters()])
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for ref in ("factorised", "plain"):
        assert abs(out["fused"][0] - out[ref][0]) <= tol * max(1.0, abs(out[ref][0]))
        for g, r in zip(out["fused"][1], out[ref][1], strict=True):
            assert (g - r).abs().max() <= tol * max(1.0, r.abs().max()), ref
    assert max(g.abs().max() for g in out["plain"][1]) > 1e-3  # the gradients are not trivial


def test_unique_pairs_counts_every_candidate_once():
    neg = torch.tensor([[0, 2, 2], [1, 1, 1], [0, 0, 1]])
    rows, cols, counts = unique_pairs(neg)
    got = {(int(r), int(c)): int(n) for r, c, n in zip(rows, cols, counts, strict=True)}
    # row i: the positive b_i once plus its K negatives (which may include b_i again)
    assert got == {(0, 0): 2, (0, 2): 2, (1, 1): 4, (2, 0): 2, (2, 1): 1, (2, 2): 1}


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


def test_invariance_under_invertible_maps():
    a, b, truth = _gauss(1.0, 2, 2048)
    base = estimate(a, b, "infonce-separable", folds=1, seed=0).value
    # strictly increasing maps, coordinate-wise: invertible
    mapped = estimate(3 * a + 1.5 * torch.sin(a) + 1, 2 * b + 0.1 * b.pow(3), "infonce-separable",
                      folds=1, seed=0).value
    assert mapped == pytest.approx(base, abs=0.1)
    assert mapped == pytest.approx(truth, abs=0.1)


def test_step_budget_and_did_not_converge_flag():
    a, b, _ = _gauss(1.0, 2, 1024)
    for method in ("infonce-separable", "mine"):
        short = estimate(a, b, method, max_steps=30, eval_every=10, folds=1, seed=0)
        assert short.settings["steps"] == 30 and short.settings["converged"] is False
        assert len(short.settings["curve"]) == 3
        legacy = estimate(a, b, method, max_epochs=2, patience=0, folds=1, seed=0)  # -> steps
        batches = max(1, (1024 - round(1024 * 0.3)) // legacy.settings["batch_size"])
        assert legacy.settings["steps"] == 2 * batches


def test_rank_standardisation_is_monotone_and_fitted_on_training_rows():
    from ibtui.mi.trained import _standardise

    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g).exp()  # skewed
    rows = torch.arange(100, 500)
    z = _standardise(x, rows, "rank")
    order = x.argsort(0)
    assert (z.gather(0, order).diff(dim=0) >= 0).all()  # monotone per column
    assert z[rows].mean(0).abs().max() < 0.05 and (z[rows].std(0) - 1).abs().max() < 0.05
    ties = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    zt = _standardise(ties, torch.arange(4), "rank")
    assert zt[0] == zt[1] and zt[2] == zt[3] and zt[0] < zt[2]  # ties stay tied
    assert torch.equal(_standardise(x, rows, "none"), x)


def _bmi_within(method: str, mi: float, d: int, transform: str, sides: str):
    task = T.bmi_task(mi, d, transform, sides, n=5000)
    est = estimate(task.a, task.b, method, seed=0)
    if est.ceiling is not None:
        assert mi < est.ceiling - 1.0
    assert abs(est.value - mi) <= max(0.10 * mi, 0.05), (task.name, est.value)
    assert est.settings["converged"] is True
    return est


def test_separable_bmi_halfcube_within_10_percent_cross_fitted():
    """Closed-form truth under invertible transforms (Czyż et al. 2023), 5,000 pairs, defaults:
    3-fold cross-fitting, the value the mean of the folds' held-out values, the smallest
    held-out fold setting the ceiling."""
    est = _bmi_within("infonce-separable", 2.0, 10, "halfcube", "both")
    assert est.settings["folds"] == 3
    assert est.ceiling == pytest.approx(math.log(5000 // 3))
    assert est.value == pytest.approx(sum(est.settings["fold_values"]) / 3)


@pytest.mark.slow
@pytest.mark.parametrize(("mi", "d", "transform", "sides"),
                         [(0.5, 5, "id", "both"), (4.0, 5, "normalcdf", "both"),
                          (4.0, 20, "asinh", "y"), (0.5, 20, "asinh", "both")])
def test_separable_bmi_tasks_within_10_percent(mi, d, transform, sides):
    """(0.5, 20, asinh, both): the information spread thin over 20 canonical pairs; −16% before
    the plug-in start with pooled canonical correlations."""
    _bmi_within("infonce-separable", mi, d, transform, sides)


@pytest.mark.slow
@pytest.mark.parametrize(("mi", "d", "transform", "sides"),
                         [(4.0, 5, "normalcdf", "both"), (0.5, 5, "id", "both"),
                          (0.5, 20, "asinh", "both")])
def test_mine_bmi_within_10_percent(mi, d, transform, sides):
    """Defaults, 5,000 pairs, held-out folds: 4 nats (2.1 before the derangement, EMA and
    initialisation fixes) and 0.5 nats (in 20 + 20 dims −12% before the pooled canonical
    correlations and the better-of start and trained critic)."""
    _bmi_within("mine", mi, d, transform, sides)


def test_mine_marginal_pairs_are_derangements():
    from ibtui.mi.trained import _derangements

    gen = torch.Generator().manual_seed(0)
    for n, count in ((2, 1), (7, 6), (512, 8)):
        perms = _derangements(n, count, gen, "cpu")
        assert perms.shape == (count, n)
        assert (perms != torch.arange(n)).all()  # never a joint pair
        assert (perms.sort(1).values == torch.arange(n)).all()  # each a permutation
        assert len({tuple(p.tolist()) for p in perms}) == count  # distinct shifts


def test_mine_start_shrinks_noise_not_signal():
    """The shrinkage of MINE's plug-in start, chosen inside the training pairs: none at 4 nats
    in 5 dims, the largest cross-covariance shrinkage for independent 20-d pairs."""
    from ibtui.mi.trained import SHRINKS, _choose_shrink

    g = torch.Generator().manual_seed(0)
    t = T.bmi_task(4.0, 5, "id", "both", n=3000)
    assert _choose_shrink(t.a, t.b, g)[0] == 0.0
    a, b = torch.randn(3000, 20, generator=g), torch.randn(3000, 20, generator=g)
    assert _choose_shrink(a, b, g)[0] == max(s[0] for s in SHRINKS)


def test_canonical_pooling_of_the_plug_in_start():
    """α pulls the sample canonical correlations towards their mean: α = 0 is the plain
    plug-in (same W as the two-part shrink), α = 1 makes every canonical correlation the mean
    one (checked through the canonical form), and where the information is spread evenly over
    20 pairs (0.5 nats) pooling predicts held-out pairs better."""
    from ibtui.mi.critics import gaussian_dv, gaussian_ratio

    t = T.bmi_task(0.5, 20, "id", "both", n=5000)
    a, b = t.a.double(), t.b.double()
    fit, ev = slice(0, 3333), slice(3333, None)
    plain = gaussian_ratio(a[fit], b[fit], (0.1, 0.3))
    same = gaussian_ratio(a[fit], b[fit], (0.1, 0.3, 0.0))
    assert all(torch.allclose(x, y) for x, y in zip(plain, same, strict=True))
    pooled = gaussian_ratio(a[fit], b[fit], (0.0, 0.0, 1.0))
    # with Σ_aa, Σ_bb kept, W = −P_ab is a function of the canonical correlations only through
    # Σ_aa^½ W Σ_bb^½ = C (I − CᵀC)⁻¹ for C = U diag(ρ) Vᵀ: its singular values ρ/(1 − ρ²) all equal
    x = torch.cat([a[fit], b[fit]], 1)
    cov = torch.cov(x.T)
    ea, ua = torch.linalg.eigh(cov[:20, :20])
    eb, ub = torch.linalg.eigh(cov[20:, 20:])
    m = (ua * ea.sqrt()) @ ua.T @ pooled[0] @ (ub * eb.sqrt()) @ ub.T
    sv = torch.linalg.svdvals(m)
    assert float(sv.max() - sv.min()) < 1e-4 * float(sv.max())
    gain = gaussian_dv(pooled, a[ev], b[ev], shifts=64) - gaussian_dv(
        gaussian_ratio(a[fit], b[fit], 0.0), a[ev], b[ev], shifts=64)
    assert gain > 0.01  # 0.016 here; 0 without pooling


def test_gaussian_init_is_the_log_density_ratio():
    """Plug-in start of MINE's critic: f(a, b) − log p(a,b)/(p(a)p(b)) is a constant; of the
    separable critic: a function of a alone."""
    from ibtui.mi.critics import GaussConcatCritic, GaussSeparableCritic

    g = torch.Generator().manual_seed(0)
    rho = torch.tensor([0.9, -0.5, 0.0])
    a = torch.randn(40_000, 3, generator=g)
    b = rho * a + (1 - rho**2).sqrt() * torch.randn(40_000, 3, generator=g)
    critic = GaussConcatCritic(3, 3, hidden=8)
    assert critic.init_gaussian(a, b)
    x, y = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g)
    with torch.no_grad():
        f = critic.shuffled(x, y, torch.arange(200))[0]
    c = 1 - rho**2
    truth = (-0.5 * c.log() - (rho**2 * x**2 - 2 * rho * x * y + rho**2 * y**2) / (2 * c)).sum(1)
    diff = f - truth
    assert (diff - diff.mean()).abs().max() < 0.1 * truth.abs().max()
    assert (diff - diff.mean()).abs().mean() < 0.05
    # the separable critic's start: the same ratio up to terms in a alone (they cancel in
    # InfoNCE's softmax over b), so f(x, y) − truth(x, y) does not depend on y
    sep = GaussSeparableCritic(3, 3, hidden=8, embed=4)
    assert sep.init_gaussian(a, b)
    with torch.no_grad():
        scores = sep(x, y)  # (x_i, y_j) for all i, j
    c2 = (rho**2 * x[:, None] ** 2 - 2 * rho * x[:, None] * y[None] + rho**2 * y[None] ** 2)
    full = (-0.5 * c.log() - c2 / (2 * c)).sum(-1)
    resid = scores - full
    resid = resid - resid.mean(1, keepdim=True)  # remove what depends on x_i only
    assert resid.abs().mean() < 0.05


def test_bmi_transforms_keep_the_truth_and_change_the_data():
    base = T.bmi_task(2.0, 5, "id", "both", n=100)
    for name in ("halfcube", "asinh", "normalcdf"):
        t = T.bmi_task(2.0, 5, name, "both", n=100)
        assert t.truth == 2.0 and not torch.allclose(t.b, base.b)
        assert torch.equal(t.b.argsort(0), base.b.argsort(0))  # monotone per coordinate


def test_noise_aware_needs_noise_model():
    with pytest.raises(ValueError, match="noisy_mi"):
        estimate(torch.zeros(4, 2), torch.zeros(4, 2), "noise-aware")
