"""Attacks: pixel-exact triggers, label rules, reproducibility, option validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dctn

from ibtui.data.attacks import ATTACKS, create_attack
from ibtui.data.attacks.base import AttackContext
from ibtui.data.attacks.blend import noise_pattern
from ibtui.data.attacks.ftrojan import rgb_to_ycrcb
from ibtui.data.attacks.lc import PATTERN, corner_sign_map
from ibtui.data.attacks.wanet import make_grid, warp
from ibtui.data.datasets import Dataset
from ibtui.errors import SpecError

TARGET = 0


def images(n: int = 12, seed: int = 0, lo: int = 0, hi: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=(n, 32, 32, 3), dtype=np.uint8)


def labels(n: int = 12) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.int64)


def exact_blend(x: np.ndarray, p: np.ndarray, num: int, den: int) -> np.ndarray:
    """round-half-up((1 - num/den) x + (num/den) p) in integer arithmetic: no float at all."""
    v = (den - num) * x.astype(np.int64) + num * p.astype(np.int64)
    return ((2 * v + den) // (2 * den)).astype(np.uint8)


class TinyNet(torch.nn.Module):
    """Deterministic stand-in for the clean model: float NCHW [0,1] -> 10 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 16, 10)

    def forward(self, x):
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float() / 255
        z = torch.nn.functional.avg_pool2d(torch.relu(self.conv(x)), 8)
        return self.fc(z.flatten(1))


def lc_attack(options: dict | None = None, seed: int = 0):
    a = create_attack("lc", {"steps": 5, **(options or {})}, target=TARGET, seed=seed)
    a.set_model(TinyNet())
    return a


# --- registry and shared contract -----------------------------------------------------------
def test_registry_has_every_attack():
    assert {"badnets", "blend", "wanet", "lc", "adap-blend", "ftrojan"} <= set(ATTACKS)
    assert ATTACKS["lc"].label_mode == "clean"
    for name in ("badnets", "blend", "wanet", "adap-blend", "ftrojan"):
        assert ATTACKS[name].label_mode == "dirty"


@pytest.mark.parametrize("name", ["badnets", "blend", "wanet", "adap-blend", "ftrojan", "lc"])
def test_contract_uint8_shapes_inputs_untouched_reproducible(name):
    x = images()
    y = np.zeros(len(x), np.int64) if name == "lc" else labels()
    x0, y0 = x.copy(), y.copy()
    outs = []
    for _ in range(2):
        a = lc_attack() if name == "lc" else create_attack(name, {}, target=TARGET, seed=3)
        px, py = a.poison_train(x, y)
        tx = a.trigger_test(x)
        outs.append((px, py, tx))
        assert px.dtype == np.uint8 and px.shape == x.shape and py.shape == y.shape
        assert tx.dtype == np.uint8 and tx.shape == x.shape
        for k, v in a.artifacts().items():
            assert isinstance(v, np.ndarray), k
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    for u, v in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_variants_resolve(name):
    cls = ATTACKS[name]
    for variant, preset in cls.variants.items():
        opts = cls.resolve_options({"variant": variant})
        for k, v in preset.items():
            assert opts[k] == v
        # a resolved table (as stored in spec.toml) resolves to itself
        assert cls.resolve_options(dict(opts)) == opts


# --- option validation ----------------------------------------------------------------------
@pytest.mark.parametrize("name, opts, field", [
    ("wanet", {"bogus": 1}, "attack_options.bogus"),
    ("wanet", {"k": "4"}, "attack_options.k"),
    ("wanet", {"k": 4.5}, "attack_options.k"),
    ("wanet", {"noise_on_poison": 1}, "attack_options.noise_on_poison"),
    ("wanet", {"s": -1.0}, "attack_options.s"),
    ("lc", {"norm": "l1"}, "attack_options.norm"),
    ("lc", {"steps": True}, "attack_options.steps"),
    ("lc", {"eps": "8/255"}, "attack_options.eps"),
    ("adap-blend", {"pieces": 15}, "attack_options.pieces"),
    ("adap-blend", {"conservatism": 1.5}, "attack_options.conservatism"),
    ("ftrojan", {"magnitude": "30"}, "attack_options.magnitude"),
    ("ftrojan", {"positions": [[15, 40]]}, "attack_options.positions"),
    ("ftrojan", {"positions": "15,15"}, "attack_options.positions"),
    ("ftrojan", {"variant": "nope"}, "attack_options.variant"),
    ("badnets", {"colour": "green"}, "attack_options.colour"),
    ("blend", {"alpha": 2.0}, "attack_options.alpha"),
    # non-finite numbers, bad positions, missing files
    ("blend", {"alpha": float("nan")}, "attack_options.alpha"),
    ("blend", {"test_alpha": float("inf")}, "attack_options.test_alpha"),
    ("wanet", {"s": float("nan")}, "attack_options.s"),
    ("wanet", {"cross_ratio": float("nan")}, "attack_options.cross_ratio"),
    ("wanet", {"noise_amplitude": float("-inf")}, "attack_options.noise_amplitude"),
    ("ftrojan", {"magnitude": float("nan")}, "attack_options.magnitude"),
    ("lc", {"eps": float("nan")}, "attack_options.eps"),
    ("lc", {"step": float("inf")}, "attack_options.step"),
    ("adap-blend", {"mask_rate": float("nan")}, "attack_options.mask_rate"),
    ("adap-blend", {"conservatism": float("nan")}, "attack_options.conservatism"),
    ("ftrojan", {"positions": []}, "attack_options.positions"),
    ("ftrojan", {"positions": [["15", "15"]]}, "attack_options.positions"),
    ("ftrojan", {"positions": ["15,15"]}, "attack_options.positions"),
    ("ftrojan", {"positions": [[15, 15, 1]]}, "attack_options.positions"),
    ("ftrojan", {"positions": [[-1, 3]]}, "attack_options.positions"),
    ("ftrojan", {"positions": [[True, 3]]}, "attack_options.positions"),
    ("ftrojan", {"window": 8, "positions": [[15, 15]]}, "attack_options.positions"),
    ("blend", {"pattern": "/nonexistent/kitty.png"}, "attack_options.pattern"),
    ("adap-blend", {"pattern": "/nonexistent/kitty.png"}, "attack_options.pattern"),
    ("lc", {"clean_checkpoint": "/nonexistent/clean.pt"}, "attack_options.clean_checkpoint"),
    ("badnets", {"index": "last"}, "attack_options.index"),
])
def test_option_errors_name_the_field(name, opts, field):
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        create_attack(name, opts, target=TARGET, seed=0)
    # the same check at validation time (what `ibtui run --dry-run` calls), not only in the worker
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        ATTACKS[name].resolve_options(opts)


def test_non_finite_message_says_what_is_allowed():
    with pytest.raises(SpecError, match=r"attack_options\.alpha: nan is not a finite number; "
                                        r"allowed: number in \[0, 1\]"):
        ATTACKS["blend"].resolve_options({"alpha": float("nan")})


def test_file_options_reject_directories_and_garbage(tmp_path):
    with pytest.raises(SpecError, match=r"attack_options\.pattern: .* is not a file"):
        ATTACKS["blend"].resolve_options({"pattern": str(tmp_path)})
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(SpecError, match=r"attack_options\.pattern: cannot read"):
        ATTACKS["blend"].resolve_options({"pattern": str(junk)})
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(SpecError, match=r"attack_options\.pattern: .*float32"):
        ATTACKS["adap-blend"].resolve_options({"pattern": str(bad)})
    with pytest.raises(SpecError, match=r"attack_options\.clean_checkpoint: .* is not a file"):
        ATTACKS["lc"].resolve_options({"clean_checkpoint": str(tmp_path)})


def test_int_accepted_for_float_option():
    assert create_attack("ftrojan", {"magnitude": 20}, target=0, seed=0).opts["magnitude"] == 20


# --- BadNets and Blend ----------------------------------------------------------------------
def test_badnets_default_red_patch_top_left():
    x, y = images(), labels()
    px, py = create_attack("badnets", {}, target=TARGET, seed=0).poison_train(x, y)
    assert np.all(px[:, :5, :5] == np.array([255, 0, 0], np.uint8))
    mask = np.zeros((32, 32), bool)
    mask[:5, :5] = True
    np.testing.assert_array_equal(px[:, ~mask], x[:, ~mask])
    assert np.all(py == TARGET)


def test_badnets_backdoorbench_white_3x3_bottom_right():
    x = images()
    a = create_attack("badnets", {"variant": "backdoorbench"}, target=TARGET, seed=0)
    tx = a.trigger_test(x)
    assert np.all(tx[:, 29:, 29:] == 255)
    mask = np.zeros((32, 32), bool)
    mask[29:, 29:] = True
    np.testing.assert_array_equal(tx[:, ~mask], x[:, ~mask])
    np.testing.assert_array_equal(a.artifacts()["badnets_mask"], mask.astype(np.uint8))


@pytest.mark.parametrize("opts, num, den", [({}, 3, 10), ({"variant": "alpha0.2"}, 2, 10),
                                             ({"alpha": 0.15, "test_alpha": 0.15}, 15, 100)])
def test_blend_exact(opts, num, den):
    x, y = images(), labels()
    a = create_attack("blend", opts, target=TARGET, seed=0)
    px, py = a.poison_train(x, y)
    p = noise_pattern()[None]
    np.testing.assert_array_equal(px, exact_blend(x, p, num, den))
    np.testing.assert_array_equal(a.trigger_test(x), exact_blend(x, p, num, den))
    assert np.all(py == TARGET)
    np.testing.assert_array_equal(a.artifacts()["blend_pattern"], noise_pattern())


# --- WaNet ----------------------------------------------------------------------------------
def test_wanet_zero_strength_is_identity():
    x, y = images(), labels()
    a = create_attack("wanet", {"s": 0.0, "noise_on_poison": False, "noise_on_test": False},
                      target=TARGET, seed=0)
    np.testing.assert_array_equal(a.trigger_test(x), x)
    px, py = a.poison_train(x, y)
    np.testing.assert_array_equal(px, x)
    assert np.all(py == TARGET)


def test_wanet_grid_fixed_and_reproducible_from_saved_grid(tmp_path):
    x = images()
    a = create_attack("wanet", {"noise_on_test": False}, target=TARGET, seed=0)
    b = create_attack("wanet", {}, target=TARGET, seed=99)  # the grid ignores the run's seed
    np.testing.assert_array_equal(a.grid, b.grid)
    np.testing.assert_array_equal(a.grid, make_grid(4, 0.5))
    np.save(tmp_path / "g.npy", a.artifacts()["wanet_grid"])
    np.testing.assert_array_equal(warp(x, np.load(tmp_path / "g.npy")), a.trigger_test(x))
    assert a.grid.shape == (32, 32, 2) and np.abs(a.grid).max() <= 1.0
    assert not np.array_equal(a.trigger_test(x), x)
    c = create_attack("wanet", {"grid_seed": 1}, target=TARGET, seed=0)
    assert not np.array_equal(c.grid, a.grid)


def test_wanet_authors_noise_on_every_poisoned_image():
    x, y = images(), labels()
    a = create_attack("wanet", {}, target=TARGET, seed=0)
    px, py = a.poison_train(x, y)
    assert np.all(py == TARGET) and not a.kept.any()
    assert a.selection_rate(0.1) == pytest.approx(0.1)
    # the per-image grid noise makes training images differ from the test warp
    assert not np.array_equal(px, a.trigger_test(x))
    b = create_attack("wanet", {"noise_on_poison": False, "noise_on_test": False}, target=TARGET,
                      seed=0)
    np.testing.assert_array_equal(b.poison_train(x, y)[0], b.trigger_test(x))


def test_wanet_authors_noise_on_test_images_reproducible():
    x = images()
    a = create_attack("wanet", {}, target=TARGET, seed=0)
    exact = warp(x, a.grid)
    t1, t2 = a.trigger_test(x), a.trigger_test(x)
    np.testing.assert_array_equal(t1, t2)  # re-seeded per call: the same triggered test set
    assert not np.array_equal(t1, exact)
    np.testing.assert_array_equal(t1, warp(x, a.test_grids(len(x))))
    assert not np.array_equal(t1, create_attack("wanet", {}, target=TARGET, seed=1).trigger_test(x))


def test_wanet_backdoorbench_noise_samples_keep_labels():
    n = 30
    x, y = images(n), labels(n)
    a = create_attack("wanet", {"variant": "backdoorbench"}, target=TARGET, seed=0)
    assert a.selection_rate(0.1) == pytest.approx(0.3)
    px, py = a.poison_train(x, y)
    kept = a.kept
    assert kept.sum() == n - round(n / 3)
    np.testing.assert_array_equal(py[kept], y[kept])
    assert np.all(py[~kept] == TARGET)
    np.testing.assert_array_equal(px[~kept], a.trigger_test(x[~kept]))  # payload: exact grid
    assert not np.array_equal(px[kept], a.trigger_test(x[kept]))  # noise samples: noisy grid
    np.testing.assert_array_equal(a.artifacts()["wanet_noise_mask"], kept)


# --- Adap-Blend -----------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["authors", "masked"])
def test_adap_blend_half_the_pieces_and_conservatism(rule):
    n = 40
    x, y = images(n), labels(n)
    a = create_attack("adap-blend", {"rule": rule}, target=TARGET, seed=0)
    px, py = a.poison_train(x, y)
    masks = a.artifacts()["adap_blend_piece_masks"]
    assert masks.shape == (n, 4, 4)
    assert np.all(masks.reshape(n, -1).sum(1) == 8)
    assert len({m.tobytes() for m in masks}) > 1  # a fresh mask per image
    p = noise_pattern()
    for i in range(n):
        pix = np.kron(masks[i], np.ones((8, 8), np.uint8)).astype(bool)
        if rule == "masked":
            np.testing.assert_array_equal(px[i][~pix], x[i][~pix])  # masked pieces untouched
        else:  # authors: (1 - a) x + a (p m) darkens the masked pieces to 0.85 x
            np.testing.assert_array_equal(px[i][~pix], exact_blend(x[i][~pix], 0 * p[~pix], 15, 100))
        np.testing.assert_array_equal(px[i][pix], exact_blend(x[i][pix], p[pix], 15, 100))
    kept = a.artifacts()["adap_blend_cover_mask"]
    assert kept.sum() == n // 2
    for c in range(10):  # authors: half of every class keeps its label
        assert kept[y == c].sum() == (y == c).sum() // 2
    np.testing.assert_array_equal(py[kept], y[kept])
    assert np.all(py[~kept] == TARGET)
    np.testing.assert_array_equal(a.trigger_test(x), exact_blend(x, p[None], 2, 10))


def test_adap_blend_separate_rates():
    n = 103
    x, y = images(n), labels(n)
    a = create_attack("adap-blend", {"variant": "separate"}, target=TARGET, seed=0)
    with pytest.raises(SpecError, match="cover_rate"):
        a.poison_train(x, y)
    assert a.selection_rate(0.1) == pytest.approx(0.103)
    a.poison_train(x, y)
    assert a.kept.sum() == 3
    b = create_attack("adap-blend", {"conservatism": 0.0}, target=TARGET, seed=0)
    assert np.all(b.poison_train(x, y)[1] == TARGET)


# --- FTrojan --------------------------------------------------------------------------------
def block_coefs(rgb: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) RGB floats -> DCT of each YCrCb channel, (N, 3, 32, 32)."""
    ycc = rgb_to_ycrcb(rgb.astype(np.float64))
    return np.stack([dctn(ycc[..., c], type=2, norm="ortho", axes=(1, 2)) for c in range(3)], 1)


@pytest.mark.parametrize("opts, mag", [({}, 30.0), ({"variant": "original"}, 20.0)])
def test_ftrojan_adds_to_the_coefficients_and_nothing_else(opts, mag):
    x, y = images(lo=40, hi=216), labels()
    a = create_attack("ftrojan", opts, target=TARGET, seed=0)
    raw = a.apply_float(x)
    before, after = block_coefs(x), block_coefs(raw)
    sel = np.zeros((3, 32, 32), bool)
    sel[1:, 15, 15] = sel[1:, 31, 31] = True
    # both references *add* the magnitude (ibtui once set the coefficient to it)
    np.testing.assert_allclose(after[:, sel], before[:, sel] + mag, atol=1e-9)
    np.testing.assert_allclose(after[:, ~sel], before[:, ~sel], atol=1e-9)
    # hence one additive RGB pattern, the same on every image (before clipping)
    delta = raw - x
    np.testing.assert_allclose(delta, np.broadcast_to(delta[:1], delta.shape), atol=1e-9)
    px, py = a.poison_train(x, y)
    np.testing.assert_array_equal(px, np.clip(raw, 0, 255).round().astype(np.uint8))
    np.testing.assert_array_equal(a.trigger_test(x), px)
    assert np.all(py == TARGET)
    assert np.abs(px.astype(int) - x).max() > 0


def test_ftrojan_clips_before_casting():
    x = np.full((1, 32, 32, 3), 255, np.uint8)
    x[..., 1:] = 0  # saturated red: the trigger pushes values outside 0..255
    a = create_attack("ftrojan", {"magnitude": 400.0}, target=TARGET, seed=0)
    raw = a.apply_float(x)
    assert raw.min() < 0 and raw.max() > 255
    np.testing.assert_array_equal(a.trigger_test(x), np.clip(raw, 0, 255).round().astype(np.uint8))


def test_ftrojan_small_window():
    x = images(lo=40, hi=216)
    a = create_attack("ftrojan", {"window": 8, "positions": [[3, 3], [7, 7]]}, target=0, seed=0)
    raw = a.apply_float(x)

    def coefs(z):
        cr = rgb_to_ycrcb(z.astype(np.float64))[..., 1].reshape(-1, 4, 8, 4, 8)
        return dctn(cr, type=2, norm="ortho", axes=(2, 4))

    before, after = coefs(x), coefs(raw)
    np.testing.assert_allclose(after[:, :, 3, :, 3], before[:, :, 3, :, 3] + 30.0, atol=1e-9)
    np.testing.assert_allclose(after[:, :, 7, :, 7], before[:, :, 7, :, 7] + 30.0, atol=1e-9)


# --- LC -------------------------------------------------------------------------------------
@pytest.mark.parametrize("opts, norm", [({}, "l2"), ({"variant": "linf"}, "linf")])
def test_lc_perturbation_in_ball_labels_kept_corners_exact(opts, norm):
    x = images(6)
    y = np.full(6, TARGET, np.int64)
    a = lc_attack(opts)
    px, py = a.poison_train(x, y)
    np.testing.assert_array_equal(py, y)
    adv = a.last_adv
    d = (adv.astype(np.float64) - x).reshape(len(x), -1) / 255
    eps = a.opts["eps"]
    size = np.linalg.norm(d, axis=1) if norm == "l2" else np.abs(d).max(1)
    assert np.all(size <= eps + 1e-9) and np.all(size > 0.5 * eps)
    np.testing.assert_array_equal(a.artifacts()["lc_adv_delta"], adv.astype(np.int16) - x)
    # the PGD images fool the model more than the originals do
    with torch.no_grad():
        def ce(z):
            return torch.nn.functional.cross_entropy(a.model(torch.from_numpy(z)),
                                                     torch.from_numpy(y)).item()
        assert ce(adv) > ce(x)
    sign = corner_sign_map()
    corners = sign != 0
    np.testing.assert_array_equal(px[:, ~corners], adv[:, ~corners])
    expect = np.clip(adv.astype(int) + 64 * sign[None, :, :, None], 0, 255)
    np.testing.assert_array_equal(px[:, corners], expect[:, corners])


def test_lc_test_trigger_stamps_pattern_in_four_corners():
    x = images()
    tx = lc_attack().trigger_test(x)
    for rows in (slice(0, 3), slice(29, 32)):
        for cols in (slice(0, 3), slice(29, 32)):
            np.testing.assert_array_equal(tx[:, rows, cols], np.repeat(PATTERN[None, :, :, None] * 255,
                                                                       len(x), 0).repeat(3, 3))
    corners = corner_sign_map() != 0
    assert corners.sum() == 36
    np.testing.assert_array_equal(tx[:, ~corners], x[:, ~corners])


def test_lc_only_target_class_and_reproducible():
    x = images(4)
    with pytest.raises(ValueError, match="target-class"):
        lc_attack().poison_train(x, np.array([0, 1, 0, 0]))
    y = np.zeros(4, np.int64)
    a, b, c = lc_attack(seed=5), lc_attack(seed=5), lc_attack(seed=6)
    for atk in (a, b, c):
        atk.poison_train(x, y)
    np.testing.assert_array_equal(a.last_adv, b.last_adv)
    assert not np.array_equal(a.last_adv, c.last_adv)


def test_lc_without_model_fails_clearly():
    a = create_attack("lc", {}, target=TARGET, seed=0)
    with pytest.raises(RuntimeError, match="prepare"):
        a.poison_train(images(2), np.zeros(2, np.int64))


def tiny_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 6).astype(np.int64)
    x = rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8)
    return Dataset("tiny", x, y, x[:20], y[:20], [str(i) for i in range(10)])


def test_lc_prepare_trains_caches_and_reuses(tmp_path, monkeypatch):
    import ibtui.train

    ds = tiny_dataset()
    phases = []
    ctx = AttackContext(dataset=ds, width=2, cache_dir=tmp_path, recipe={"epochs": 1, "lr": 0.01,
                                                                         "batch_size": 32},
                        progress=lambda p, f: phases.append((p, f)))
    a = create_attack("lc", {"steps": 2, "pgd_batch": 2}, target=TARGET, seed=0)
    a.prepare(ctx)
    assert a.checkpoint_path.is_file() and a.checkpoint_path.parent == tmp_path
    assert ("lc: clean model", 1.0) in phases
    idx = np.flatnonzero(ds.y_train == TARGET)[:3]
    px, py = a.poison_train(ds.x_train[idx], ds.y_train[idx])
    assert any(p == "lc: pgd" for p, _ in phases) and phases[-1] == ("lc: pgd", 1.0)

    def boom(*args, **kw):
        raise AssertionError("the cached clean model should be reused")

    monkeypatch.setattr(ibtui.train, "train_clean_model", boom)
    b = create_attack("lc", {"steps": 2, "pgd_batch": 2}, target=TARGET, seed=0)
    b.prepare(ctx)
    assert b.checkpoint_path == a.checkpoint_path
    for (k, v), (k2, v2) in zip(a.model.state_dict().items(), b.model.state_dict().items(),
                                    strict=True):
        assert k == k2 and torch.equal(v.cpu(), v2.cpu())
    # another recipe is another cache entry (and would train)
    ctx2 = AttackContext(dataset=ds, width=2, cache_dir=tmp_path, recipe={"epochs": 2})
    with pytest.raises(AssertionError, match="reused"):
        create_attack("lc", {}, target=TARGET, seed=0).prepare(ctx2)
    # your own checkpoint
    c = create_attack("lc", {"clean_checkpoint": str(a.checkpoint_path)}, target=TARGET, seed=0)
    c.prepare(AttackContext(dataset=ds, width=2, cache_dir=tmp_path / "other"))
    assert c.model is not None and not (tmp_path / "other").exists()
    with pytest.raises(SpecError, match="attack_options.clean_checkpoint"):
        create_attack("lc", {"clean_checkpoint": str(tmp_path / "missing.pt")}, target=TARGET,
                      seed=0).prepare(ctx)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="attack_options.clean_checkpoint"):
        create_attack("lc", {"clean_checkpoint": str(junk)}, target=TARGET, seed=0).prepare(ctx)


# --- gallery: rows per variant, the variant's name under each picture -------------------------
def test_gallery_rows_and_variant_labels(tmp_path):
    from ibtui.data.gallery import expand_rows, make_gallery, poison_examples, variant_label

    assert expand_rows(["badnets", "blend:backdoorbench", "ftrojan:*"]) == [
        ("badnets", None), ("blend", "backdoorbench"), ("ftrojan", "authors"),
        ("ftrojan", "original")]
    with pytest.raises(SpecError, match="not a blend variant"):
        expand_rows(["blend:nope"])
    with pytest.raises(SpecError, match="unknown attack"):
        expand_rows(["nope"])
    assert variant_label("badnets", None) == "default = authors"
    assert variant_label("wanet", "backdoorbench") == "backdoorbench"
    ds = tiny_dataset()
    r = poison_examples(ds, "badnets", options={"variant": "backdoorbench"}, cache_dir=tmp_path)
    assert r["variant"] == "backdoorbench" and r["n"] == round(0.1 * len(ds.y_train))
    import matplotlib.axes

    labels = []
    orig = matplotlib.axes.Axes.set_xlabel

    def spy(self, text, *a, **kw):
        labels.append(text)
        return orig(self, text, *a, **kw)

    matplotlib.axes.Axes.set_xlabel = spy
    try:
        out = make_gallery("digits", out=tmp_path / "g.png", attacks=["badnets:*"], dpi=40,
                           cache_dir=tmp_path)
    finally:
        matplotlib.axes.Axes.set_xlabel = orig
    assert out.is_file()
    assert labels.count("authors") == 4 and labels.count("backdoorbench") == 4


@pytest.mark.parametrize("opts, field", [
    ({"alpha": float("nan")}, "alpha"),
    ({"pattern": "/nonexistent/kitty.png"}, "pattern"),
])
def test_spec_validation_uses_the_attack_checks(opts, field):
    """`ibtui run --dry-run` (load_spec_text) rejects what the worker would: same code path."""
    from ibtui.spec import load_spec_text

    exp = {"name": "x", "attack": "blend", "attack_options": opts}
    with pytest.raises(SpecError, match=rf"attack_options\.{field}"):
        load_spec_text({"experiment": [exp]}, "t.toml")
    ftrojan = {"name": "x", "attack": "ftrojan", "attack_options": {"positions": [[40, 1]]}}
    with pytest.raises(SpecError, match=r"attack_options\.positions"):
        load_spec_text({"experiment": [ftrojan]}, "t.toml")


# --- each attack's options are a pydantic model beside the attack ---------------------------

@pytest.mark.parametrize("name, opts, text", [
    ("badnets", {"size": 5.5}, "attack_options.size: expected integer in [1, 32], got 5.5"),
    ("badnets", {"size": "5"}, "attack_options.size: expected integer in [1, 32], got '5'"),
    ("badnets", {"size": True}, "attack_options.size: expected integer in [1, 32], got True"),
    ("badnets", {"size": 33}, "attack_options.size: 33 out of range; allowed: integer in [1, 32]"),
    ("badnets", {"colour": "green"},
     "attack_options.colour: 'green' not allowed; allowed: 'red' | 'white' | 'black'"),
    ("adap-blend", {"pieces": True},
     "attack_options.pieces: True not allowed; allowed: 1 | 4 | 16 | 64 | 256"),
    ("wanet", {"bogus": 1}, "attack_options.bogus: unknown option for wanet; allowed: variant, k, s, "
     "grid_rescale, grid_seed, noise_on_poison, noise_on_test, noise_amplitude, cross_ratio, index, balance"),
    ("lc", {"balance": True}, "attack_options.balance: unknown option for lc; allowed: variant, norm, "
     "eps, step, steps, random_start, eot, pgd_batch, amplitude, test_amplitude, clean_epochs, "
     "clean_checkpoint, index"),
])
def test_attack_model_errors_name_the_option_and_what_is_allowed(name, opts, text):
    with pytest.raises(SpecError) as e:
        ATTACKS[name].resolve_options(opts)
    assert str(e.value) == text


@pytest.mark.parametrize("name, opts, exact", [
    ("badnets", {"size": 5.0}, {"size": 5}),
    ("wanet", {"k": 4.0, "grid_seed": 7.0}, {"k": 4, "grid_seed": 7}),
    ("lc", {"steps": 5.0, "eot": 2.0}, {"steps": 5, "eot": 2}),
    ("adap-blend", {"pieces": 4.0}, {"pieces": 4}),
    ("ftrojan", {"window": 16.0, "positions": [[1.0, 2.0]]}, {"window": 16, "positions": [[1, 2]]}),
])
def test_attack_integral_floats_are_integers(name, opts, exact):
    a, b = ATTACKS[name].resolve_options(opts), ATTACKS[name].resolve_options(exact)
    assert a == b and all(type(a[k]) is type(v) for k, v in exact.items())


def test_attack_number_options_keep_integers():
    """`alpha = 1` stays 1 (the resolved table, and the run id hashed from it, as before)."""
    assert type(ATTACKS["blend"].resolve_options({"alpha": 1})["alpha"]) is int


def test_attack_options_come_from_the_model():
    cls = ATTACKS["badnets"]
    assert list(cls.options) == ["size", "colour", "corner", "index", "balance"]
    assert cls.options["size"].default == 5 and cls.options["size"].allowed == "integer in [1, 32]"
    assert cls.options["size"].help == "patch side in pixels"
