"""estimate_checkpoint on a tiny noisy ResNet, and sanity_checks."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from ibtui.mi import estimate_checkpoint, noisy_mi, sanity_checks, validate_mi_options
from ibtui.models import create_model
from ibtui.models.noisy import folded_copy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width=4)
    x = torch.randint(0, 256, (60, 32, 32, 3), dtype=torch.uint8)
    subsets = {"0": np.arange(0, 30), "0_backdoor": np.arange(0, 6), "1": np.arange(30, 60),
               "empty": np.arange(0)}
    return model, x, subsets


def _run(setup, methods, **opts):
    model, x, subsets = setup
    # the mixture-of-draws conditional: what these tests compare against noisy_mi by hand
    options = validate_mi_options(methods, {"k": 2, "max_epochs_xt": 2, "max_epochs_ty": 2,
                                            "hidden": 16, "xt_conditional": "draws", **opts})
    seen = []
    recs = estimate_checkpoint(model, x, subsets, methods=methods, options=options, seed=3,
                               device="cpu", progress=lambda f, d: seen.append(f))
    return recs, seen


def test_records_shape_and_determinism(setup):
    model = setup[0]
    model.train()
    state = torch.random.get_rng_state()
    recs, seen = _run(setup, ["noise-aware", "infonce-paper"])
    assert model.training  # mode restored
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    assert len(recs) == 3 * 2 * 2  # 3 non-empty subsets x 2 terms x 2 methods
    keys = {"term", "subset", "method", "value", "lower", "upper", "ceiling", "at_ceiling",
            "converged", "n", "settings", "seconds"}
    for r in recs:
        assert set(r) == keys
        assert r["term"] in ("xt", "ty") and math.isfinite(r["value"])
        json.dumps(r, allow_nan=False)
        if r["method"] == "infonce-paper":
            assert r["ceiling"] == pytest.approx(math.log(513 if r["term"] == "xt" else 257))
            assert r["lower"] is None
        elif r["term"] == "xt":
            assert r["ceiling"] == pytest.approx(math.log(r["n"]))
            assert r["lower"] <= r["value"] + 0.1 and r["value"] <= r["upper"] + 1e-9
    assert {r["n"] for r in recs if r["subset"] == "0_backdoor"} == {6}
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(seen))
    assert seen[0] >= 0.0 and seen[-1] == 1.0
    again, _ = _run(setup, ["noise-aware", "infonce-paper"])
    assert [r["value"] for r in recs] == [r["value"] for r in again]


def test_noise_aware_matches_manual_draws(setup):
    model, x, subsets = setup
    recs, _ = _run(setup, ["noise-aware"])
    rec = next(r for r in recs if r["subset"] == "1" and r["term"] == "xt")
    assert rec["settings"]["sigma_t"] == pytest.approx(0.1)  # 0.4 / sqrt(16)
    assert rec["settings"]["k"] == 2
    # same union order and seed => same draws; recompute for subset "1" by hand (through the
    # BatchNorm-folded copy the checkpoint forwards with)
    fm = folded_copy(model)
    union = np.unique(np.concatenate([subsets[k] for k in ("0", "0_backdoor", "1")]))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        s = torch.stack([fm.forward_mi(x[torch.as_tensor(union)])[0] for _ in range(2)], 1)
    # the measurement scale: xt_scale (default 0.5) x the RMS spread of all measured images
    means = s.double().mean(1)
    spread = float((means - means.mean(0)).pow(2).mean().sqrt())
    assert rec["settings"]["xt_scale"] == 0.5
    assert rec["settings"]["spread"] == pytest.approx(spread, rel=1e-9)
    assert rec["settings"]["sigma_m"] == pytest.approx(0.5 * spread, rel=1e-9)
    sigma = math.sqrt(0.1**2 + (0.5 * spread) ** 2)
    assert rec["settings"]["sigma"] == pytest.approx(sigma, rel=1e-9)
    sub = s[np.searchsorted(union, subsets["1"])]
    est = noisy_mi(sub, sigma, seed=rec["settings"]["seed"], conditional="draws")
    assert rec["value"] == pytest.approx(est.value, abs=1e-9)
    own = noisy_mi(sub, 0.1, seed=rec["settings"]["seed"], conditional="draws", bracket=False)
    assert rec["settings"]["network_noise_value"] == pytest.approx(own.value, abs=1e-9)
    assert own.value > rec["value"]  # more noise, less information (data processing)
    # xt_scale = 0: the network's own noise, the paper's quantity
    zero, _ = _run(setup, ["noise-aware"], xt_scale=0.0)
    rec0 = next(r for r in zero if r["subset"] == "1" and r["term"] == "xt")
    assert rec0["value"] == pytest.approx(own.value, abs=1e-9)
    assert rec0["settings"]["sigma_m"] == 0.0 and "network_noise_value" not in rec0["settings"]
    # I(T;Ŷ) does not depend on the measurement scale
    ty = next(r for r in recs if r["subset"] == "1" and r["term"] == "ty")
    assert ty["value"] == next(r for r in zero if r["subset"] == "1" and r["term"] == "ty")["value"]


def test_max_samples(setup):
    recs, _ = _run(setup, ["noise-aware"], max_samples=10, bracket=False)
    assert {r["n"] for r in recs} == {10, 6}
    assert all(r["lower"] is None for r in recs if r["term"] == "ty")  # no KT bracket asked
    # I(X;T): the held-out lower bound is always computed (it is not the model's bracket)
    assert all(0.0 <= r["lower"] <= math.log(r["n"]) for r in recs if r["term"] == "xt")


def test_default_conditional_lower_bound_and_ceiling_flag(setup):
    model, x, subsets = setup
    options = validate_mi_options(["noise-aware"], {"k": 4})
    assert options["xt_conditional"] == "full"
    recs = estimate_checkpoint(model, x, subsets, methods=["noise-aware"], options=options,
                               seed=1, device="cpu")
    for r in recs:
        assert r["converged"] is None  # nothing trained
        assert r["at_ceiling"] == (r["value"] >= r["ceiling"] - 0.1)
        if r["term"] == "xt":
            assert r["settings"]["conditional"] == "full"
            assert r["ceiling"] == r["upper"] == pytest.approx(math.log(r["n"]))
            assert 0.0 <= r["lower"] <= r["ceiling"]
            assert r["settings"]["lower_bound"]["method"] == "barber-agakov held-out"


def test_sanity_checks_flags():
    recs = [
        {"term": "xt", "subset": "0", "method": "m", "value": 4.5, "ceiling": 4.2, "epoch": 1},
        {"term": "ty", "subset": "0", "method": "m", "value": 1.0, "ceiling": None, "epoch": 1},
        {"term": "xy", "subset": "0", "method": "m", "value": 2.0, "ceiling": None, "epoch": 1},
        {"term": "xb", "subset": "all", "method": "m", "value": 0.5, "ceiling": None,
         "epoch": 1},
        {"term": "xt", "subset": "all", "method": "m", "value": 0.5, "ceiling": None,
         "epoch": 1},
        {"term": "xt", "subset": "1", "method": "m", "value": float("nan"), "epoch": 1},
        "garbage",
    ]
    flags = sanity_checks(recs, subset_sizes={"0": 100, "all": 1000}, backdoor_share=0.1,
                          num_classes=10, error_rates={"all": 0.2, "0": 0.1})
    by = {(f["check"], f["subset"]): f for f in flags}
    assert not by[("ceiling", "0")]["ok"] and not by[("saturation", "0")]["ok"]
    assert by[("log_n", "0")]["ok"] and by[("log_n", "0")]["bound"] == pytest.approx(
        math.log(100))
    assert not by[("dpi", "0")]["ok"] and by[("dpi", "0")]["bound"] == 1.0
    assert not by[("backdoor_entropy", "all")]["ok"]
    assert by[("backdoor_entropy", "all")]["bound"] == pytest.approx(0.325, abs=1e-3)
    fano = by[("fano", "all")]
    expected = math.log(10) + 0.2 * math.log(0.2) + 0.8 * math.log(0.8) - 0.2 * math.log(9)
    assert fano["bound"] == pytest.approx(expected) and not fano["ok"]
    assert by[("fano", "0")]["ok"] and by[("fano", "0")]["bound"] == 0.0
    # at a measurement scale, Fano is checked on the network's own-noise value
    scaled = [{"term": "xt", "subset": "all", "method": "m", "value": 0.5, "epoch": 1,
               "settings": {"xt_scale": 0.5, "network_noise_value": 2.0}}]
    (f,) = [f for f in sanity_checks(scaled, subset_sizes={}, backdoor_share=0.1,
                                      num_classes=10, error_rates={"all": 0.2})
            if f["check"] == "fano"]
    assert f["ok"] and f["value"] == 2.0
    assert not by[("value", "1")]["ok"]
    assert any(f["check"] == "record" and not f["ok"] for f in flags)
    for f in flags:
        assert set(f) == {"check", "subset", "epoch", "ok", "value", "bound", "detail"}


def test_sanity_never_raises():
    assert sanity_checks(None, subset_sizes=None, backdoor_share="x", num_classes=0,
                         error_rates=None)[0]["ok"] is False
