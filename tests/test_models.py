"""Noisy ResNet-18 and VGG16: shapes, noise placement, T = S + N(0, sigma_t^2), the classifier law."""

from __future__ import annotations

import pytest
import torch

from ibtui.errors import SpecError
from ibtui.models import MODELS, create_model
from ibtui.models.noisy import GaussianNoise

ARCHS = ["resnet18", "vgg16"]
W = 8  # small width keeps every test fast


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)


def _model(arch: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(arch, num_classes=10, width=W, **kw)


def test_registry():
    """The names that spec validation reads without importing torch are the registered ones."""
    from ibtui.models import ARCHS as NAMED

    assert set(ARCHS) <= set(MODELS)
    assert sorted(NAMED) == sorted(MODELS)


def test_unknown_arch_lists_allowed():
    with pytest.raises(SpecError) as e:
        create_model("nope")
    assert "nope" in str(e.value)
    for arch in ARCHS:
        assert arch in str(e.value)


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_t_dim(arch):
    m = _model(arch, noise_xt=0.4).eval()
    x = _images(2)
    with torch.no_grad():
        s, t, logits = m.forward_mi(x)
        out = m(x)
        # float NCHW input in [0, 1] is accepted too
        out_f = m(x.permute(0, 3, 1, 2).float() / 255)
    assert m.t_dim == 8 * W
    assert s.shape == t.shape == (2, m.t_dim)
    assert logits.shape == out.shape == out_f.shape == (2, 10)
    assert m.classifier.in_features == m.t_dim and m.classifier.out_features == 10
    # ResNet: layer4 noise averaged over 4x4 positions; VGG: noise on the pooled 1x1 features
    assert m.sigma_t == pytest.approx(0.1 if arch == "resnet18" else 0.4)


def test_vgg_noise_after_every_relu():
    m = _model("vgg16", noise_xt=0.3)
    noises = [mod for mod in m.modules() if isinstance(mod, GaussianNoise)]
    relus = [mod for mod in m.features if isinstance(mod, torch.nn.ReLU)]
    # 13 ReLUs: 12 in `features`, each followed by its noise; the 13th (after the last pool)
    # gets its noise as T = S + N(0, sigma_t^2) in forward_mi
    assert len(relus) == 12 and len(noises) == 12
    assert all(n.sigma == 0.3 for n in noises)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64]
    assert sum(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules()) == 13
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert linears == [m.classifier]


@pytest.mark.parametrize("arch", ARCHS)
def test_noise_active_in_eval_and_absent_at_zero(arch):
    x = _images(2)
    noisy = _model(arch).eval()
    with torch.no_grad():
        assert not torch.equal(noisy(x), noisy(x))
    quiet = _model(arch, noise_xt=0.0, noise_ty=0.0).eval()
    with torch.no_grad():
        a, b = quiet.forward_mi(x), quiet.forward_mi(x)
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)
    assert torch.equal(a[0], a[1])  # T == S without noise
    # only noise_xt: logits are a deterministic function of T
    xt_only = _model(arch, noise_xt=0.4, noise_ty=0.0).eval()
    with torch.no_grad():
        _, t, logits = xt_only.forward_mi(x)
        torch.testing.assert_close(logits, xt_only.classifier(t))


@pytest.mark.parametrize("arch", ARCHS)
def test_t_minus_s_has_std_sigma_t(arch):
    torch.manual_seed(1)
    m = _model(arch, noise_xt=0.4).eval()
    with torch.no_grad():
        s, t, _ = m.forward_mi(_images(16))
    d = (t - s).flatten()  # 16 * 64 = 1024 draws
    assert d.numel() == 16 * m.t_dim
    assert abs(d.mean().item()) < 4 * m.sigma_t / d.numel() ** 0.5
    assert d.std().item() == pytest.approx(m.sigma_t, rel=0.08)


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_given_t_follow_classifier_law(arch):
    """logits - (W T + b) = W z with z ~ N(0, noise_ty^2 I): covariance noise_ty^2 W W^T.

    The network body runs once; `pooled` then replays its S so that many draws of the noise
    after S (forward_mi's T noise, noise_ty and the classifier) are cheap."""
    torch.manual_seed(2)
    m = _model(arch, noise_xt=0.4, noise_ty=0.5).eval()
    x = _images(8)
    with torch.no_grad():
        s0 = m.pooled(m.preprocess(x))
        m.pooled = lambda _x: s0
        res, ts = [], []
        for _ in range(400):
            s, t, logits = m.forward_mi(x)
            assert torch.equal(s, s0)
            res.append(logits - m.classifier(t))
            ts.append(t - s)
    r = torch.cat(res).double()  # 3,200 residual vectors, 10-d
    assert torch.cat(ts).std().item() == pytest.approx(m.sigma_t, rel=0.02)
    assert r.mean(0).abs().max().item() < 0.05
    cov = r.T @ r / len(r)
    w = m.classifier.weight.double()
    expected = 0.25 * w @ w.T
    assert torch.linalg.norm(cov - expected) / torch.linalg.norm(expected) < 0.1


@pytest.mark.parametrize("arch", ARCHS)
def test_width_scales_parameters(arch):
    def n_params(width):
        return sum(p.numel() for p in create_model(arch, width=width).parameters())

    small, big = n_params(8), n_params(16)
    # conv weights dominate and grow with width^2
    assert 3.2 < big / small < 4.2
    assert create_model(arch, width=16).t_dim == 128


@pytest.mark.parametrize("arch", ARCHS)
def test_training_step(arch):
    m = _model(arch).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x, y = _images(4, seed=3), torch.arange(4) % 10
    before = m.classifier.weight.detach().clone()
    first_conv = next(mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d))
    conv_before = first_conv.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert first_conv.weight.grad is not None and torch.isfinite(first_conv.weight.grad).all()
    assert not torch.equal(before, m.classifier.weight)
    assert not torch.equal(conv_before, first_conv.weight)


def test_sgd_and_plateau_match_torch_optim_bit_for_bit_and_share_checkpoints():
    """ibtui.train's SGD and ReduceOnPlateau (workers avoid importing torch._dynamo) against
    torch.optim.SGD and ReduceLROnPlateau: the same parameters after every step, the same
    learning-rate cuts, and state dicts that load into each other mid-run."""
    from ibtui.train import make_optimizer

    def pair():
        torch.manual_seed(0)
        model = _model("resnet18").train()
        return model, [p for p in model.parameters()]

    theirs, tp = pair()
    ours, op = pair()
    t_opt = torch.optim.SGD(tp, lr=0.05, momentum=0.9, weight_decay=5e-4)
    t_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, mode="min", factor=0.5, patience=1)
    o_opt, o_sched = make_optimizer(ours, 0.05, patience=1)
    x, y = _images(4, seed=3), torch.arange(4) % 10
    plateau = [1.0, 0.9, 0.95, 0.96, 0.97, 0.89, 0.9, 0.91]  # two cuts
    for step, metric in enumerate(plateau):
        for model, opt in ((theirs, t_opt), (ours, o_opt)):
            torch.manual_seed(step)  # the same noise draws in both forward passes
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t_sched.step(metric)
        o_sched.step(metric)
        assert all(torch.equal(a, b) for a, b in zip(tp, op, strict=True)), step
        assert o_opt.param_groups[0]["lr"] == t_opt.param_groups[0]["lr"], step
    assert o_opt.param_groups[0]["lr"] == pytest.approx(0.05 / 4)
    # a checkpoint of either resumes with the other
    o_opt2, o_sched2 = make_optimizer(ours, 1.0)
    o_opt2.load_state_dict(t_opt.state_dict())
    o_sched2.load_state_dict(t_sched.state_dict())
    assert o_opt2.param_groups[0]["lr"] == t_opt.param_groups[0]["lr"]
    assert (o_sched2.best, o_sched2.num_bad_epochs) == (t_sched.best, t_sched.num_bad_epochs)
    t_opt2 = torch.optim.SGD(tp, lr=1.0, momentum=0.9, weight_decay=5e-4)
    t_opt2.load_state_dict(o_opt.state_dict())
    t_sched2 = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt2)
    t_sched2.load_state_dict(o_sched.state_dict())
    for a, b in zip(t_opt2.state_dict()["state"].values(), o_opt2.state_dict()["state"].values(),
                    strict=True):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert (t_sched2.best, t_sched2.num_bad_epochs, t_sched2.factor) == (0.89, 0, 0.5)
