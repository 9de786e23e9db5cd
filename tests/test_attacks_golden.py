"""Golden tests: every attack and variant on fixed 32 x 32 inputs (tests/data/), against the
expected output computed here from the references' *equations* (the papers and the references'
documented formulas), written independently of ibtui's implementation: explicit DCT matrices,
explicit colour equations, explicit bicubic and bilinear interpolation, integer blending.
Tolerance: 1 grey level. A change that alters any trigger by more than rounding fails here.

bench/bench_attacks.py imports CASES and reports the max / mean abs difference per case.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ibtui.data.attacks import create_attack

DATA = Path(__file__).parent / "data"
TOL = 1  # grey levels


def golden_inputs() -> tuple[np.ndarray, np.ndarray]:
    return np.load(DATA / "golden_inputs.npy"), np.load(DATA / "golden_labels.npy")


def rhu(v: np.ndarray) -> np.ndarray:
    """Clip to 0..255, then round half up (values on the 0-255 scale)."""
    return np.floor(np.clip(v, 0.0, 255.0) + 0.5).astype(np.uint8)


# --- BadNets: the patch replaces the pixels --------------------------------------------------------
def ref_badnets(x: np.ndarray, size: int, colour: tuple, corner: str) -> np.ndarray:
    out = x.copy()
    r0 = 0 if corner.startswith("top") else 32 - size
    c0 = 0 if corner.endswith("left") else 32 - size
    out[:, r0:r0 + size, c0:c0 + size] = colour
    return out


# --- Blend: (1 - a) x + a p ------------------------------------------------------------------------
def seeded_noise_pattern() -> np.ndarray:
    """ibtui's stand-in pattern, by its definition: grey integers uniform in 0..255 drawn from
    numpy's default_rng(20170531), the same in R, G and B."""
    g = np.random.default_rng(20170531).integers(0, 256, size=(32, 32), dtype=np.uint8)
    return np.stack([g, g, g], -1)


def pil_pattern(path: Path) -> np.ndarray:
    """BackdoorBench's pattern preparation: PIL image, resized to 32 x 32 with PIL's bilinear
    (torchvision's Resize on a PIL image)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((32, 32), Image.BILINEAR))


def ref_blend(x: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    return rhu((1 - alpha) * x.astype(np.float64) + alpha * p.astype(np.float64))


# --- WaNet ---------------------------------------------------------------------------------------
def cubic_weight(t: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with PyTorch's a = -0.75."""
    t = abs(t)
    if t <= 1:
        return ((a + 2) * t - (a + 3)) * t * t + 1
    if t < 2:
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return 0.0


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bicubic interpolation, align_corners=True, border taps clamped."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = i * (n_in - 1) / (n_out - 1)
        i0 = math.floor(src)
        t = src - i0
        for j in range(-1, 3):
            m[i, min(max(i0 + j, 0), n_in - 1)] += cubic_weight(j - t)
    return m


def wanet_grid(k: int = 4, s: float = 0.5, rescale: float = 1.0, seed: int = 20210113) -> np.ndarray:
    """Nguyen & Tran's warping grid: field uniform in [-1, 1] (ibtui draws it from
    default_rng(seed)), divided by its mean |.|, upsampled bicubically, identity + s field / 32,
    times rescale, clamped to [-1, 1]. [..., 0] is x (columns), [..., 1] is y (rows)."""
    field = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(2, k, k))
    field = field / np.mean(np.abs(field))
    b = bicubic_matrix(k, 32)
    up = np.stack([b @ field[c] @ b.T for c in range(2)], -1)
    lin = np.linspace(-1, 1, 32)
    ident = np.stack([np.broadcast_to(lin[None, :], (32, 32)),
                      np.broadcast_to(lin[:, None], (32, 32))], -1)
    return np.clip((ident + s * up / 32) * rescale, -1, 1)


def bilinear_sample(img: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """grid_sample(bilinear, zeros padding, align_corners=True) of one (32, 32, 3) image."""
    h, w = img.shape[:2]
    src = img.astype(np.float64)
    out = np.zeros((32, 32, 3))
    for r in range(32):
        for c in range(32):
            ix = (grid[r, c, 0] + 1) / 2 * (w - 1)
            iy = (grid[r, c, 1] + 1) / 2 * (h - 1)
            x0, y0 = math.floor(ix), math.floor(iy)
            for yy, wy in ((y0, 1 - (iy - y0)), (y0 + 1, iy - y0)):
                for xx, wx in ((x0, 1 - (ix - x0)), (x0 + 1, ix - x0)):
                    if 0 <= yy < h and 0 <= xx < w:
                        out[r, c] += wy * wx * src[yy, xx]
    return rhu(out)


def ref_warp(x: np.ndarray, grids: np.ndarray) -> np.ndarray:
    grids = np.broadcast_to(grids, (len(x), 32, 32, 2))
    return np.stack([bilinear_sample(x[i], grids[i]) for i in range(len(x))])


# --- LC corner mark ------------------------------------------------------------------------------
LC_PATTERN = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def ref_lc_mark(x: np.ndarray, amplitude: float) -> np.ndarray:
    """Turner et al.: the 3x3 pattern in the four corners, +amplitude where 1, -amplitude where
    0 (amplitude on the [0, 1] scale), clipped."""
    delta = np.zeros((32, 32))
    for r0 in (0, 29):
        for c0 in (0, 29):
            delta[r0:r0 + 3, c0:c0 + 3] = np.where(LC_PATTERN == 1, 1.0, -1.0)
    return rhu(x.astype(np.float64) + 255.0 * amplitude * delta[None, :, :, None])


# --- Adap-Blend ----------------------------------------------------------------------------------
def ref_adap_blend(x: np.ndarray, p: np.ndarray, masks: np.ndarray, alpha: float, rule: str):
    """masks: (N, 4, 4) kept pieces (8 x 8 pixels each). authors: (1 - a) x + a (p m);
    Qi et al.: x + a m (p - x)."""
    m = np.repeat(np.repeat(masks, 8, axis=1), 8, axis=2)[..., None].astype(np.float64)
    xf, pf = x.astype(np.float64), p.astype(np.float64)[None]
    if rule == "authors":
        return rhu((1 - alpha) * xf + alpha * pf * m)
    return rhu(xf + alpha * m * (pf - xf))


# --- FTrojan -------------------------------------------------------------------------------------
def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II: D[k, j] = sqrt((1 if k == 0 else 2) / n) cos(pi (2 j + 1) k / (2 n))."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * j + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def ref_ftrojan(x: np.ndarray, magnitude: float, window: int = 32,
                positions=((15, 15), (31, 31)), mode: str = "add") -> np.ndarray:
    """Wang et al.: full-range BT.601 YCrCb (JPEG), DCT of every window x window block of Cr and
    Cb, `magnitude` added at the positions (mode "set": ibtui's pre-fix rule, for the record),
    inverse DCT, back to RGB, clip, round."""
    rgb = x.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) / 1.402 + 128.0
    cb = (b - y) / 1.772 + 128.0
    d = dct_matrix(window)
    out = []
    for ch in (cr, cb):
        ch = ch.copy()
        for i in range(len(x)):
            for r0 in range(0, 32, window):
                for c0 in range(0, 32, window):
                    coef = d @ ch[i, r0:r0 + window, c0:c0 + window] @ d.T
                    for pr, pc in positions:
                        coef[pr, pc] = coef[pr, pc] + magnitude if mode == "add" else magnitude
                    ch[i, r0:r0 + window, c0:c0 + window] = d.T @ coef @ d
        out.append(ch)
    cr, cb = out
    r = y + 1.402 * (cr - 128.0)
    b = y + 1.772 * (cb - 128.0)
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return rhu(np.stack([r, g, b], -1))


# --- the cases -----------------------------------------------------------------------------------
# each case: (id, attack, options, reference(attack, x, y) -> (train images, test images));
# `attack` is the ibtui instance after poison_train, for the random draws it records (masks,
# noise grids), which the reference then uses through its own equations.
def _badnets(size, colour, corner):
    def ref(a, x, y):
        out = ref_badnets(x, size, colour, corner)
        return out, out
    return ref


def _blend(alpha, test_alpha, pattern=None):
    def ref(a, x, y):
        p = seeded_noise_pattern() if pattern is None else pil_pattern(pattern)
        return ref_blend(x, p[None], alpha), ref_blend(x, p[None], test_alpha)
    return ref


def _wanet(noise_train: bool, noise_test: bool, cross: float):
    def ref(a, x, y):
        g = wanet_grid()
        # the recorded noisy grids: noise within +-1/32 of the exact grid (clamped)
        tg = a.train_grids
        noisy = np.ones(len(x), bool) if noise_train else a.kept
        assert np.abs(tg - g[None]).max() <= 1 / 32 + 1e-6
        np.testing.assert_allclose(tg[~noisy], np.broadcast_to(g, tg[~noisy].shape), atol=1e-6)
        assert (np.abs(tg[noisy] - g[None]).reshape(int(noisy.sum()), -1).max(1) > 1e-3).all()
        assert a.kept.sum() == (len(x) - round(len(x) / (1 + cross)) if cross else 0)
        test_grids = a.test_grids(len(x)) if noise_test else g
        if noise_test:
            assert np.abs(test_grids - g[None]).max() <= 1 / 32 + 1e-6
        return ref_warp(x, tg), ref_warp(x, test_grids)
    return ref


def _lc(train_amplitude: float):
    def ref(a, x, y):
        return ref_lc_mark(x, train_amplitude), ref_lc_mark(x, 1.0)
    return ref


def _adap(rule: str):
    def ref(a, x, y):
        p = seeded_noise_pattern()
        masks = a.piece_masks
        assert masks.shape == (len(x), 4, 4) and (masks.reshape(len(x), -1).sum(1) == 8).all()
        return ref_adap_blend(x, p, masks, 0.15, rule), ref_blend(x, p[None], 0.2)
    return ref


def _ftrojan(magnitude: float):
    def ref(a, x, y):
        out = ref_ftrojan(x, magnitude)
        return out, out
    return ref


PATTERN = DATA / "pattern_47x39.png"
CASES = [
    ("badnets/authors", "badnets", {"variant": "authors"}, _badnets(5, (255, 0, 0), "top-left")),
    ("badnets/backdoorbench", "badnets", {"variant": "backdoorbench"},
     _badnets(3, (255, 255, 255), "bottom-right")),
    ("blend/authors", "blend", {"variant": "authors"}, _blend(0.3, 0.3)),
    ("blend/backdoorbench", "blend", {"variant": "backdoorbench", "pattern": str(PATTERN)},
     _blend(0.2, 0.2, PATTERN)),
    ("blend/alpha0.2", "blend", {"variant": "alpha0.2"}, _blend(0.2, 0.2)),
    ("wanet/authors", "wanet", {"variant": "authors"}, _wanet(True, True, 0.0)),
    ("wanet/backdoorbench", "wanet", {"variant": "backdoorbench"}, _wanet(False, False, 2.0)),
    ("lc/authors (mark)", "lc", {"variant": "authors", "steps": 0, "random_start": False},
     _lc(64 / 255)),
    ("lc/linf (mark)", "lc", {"variant": "linf", "steps": 0, "random_start": False}, _lc(64 / 255)),
    ("adap-blend/authors", "adap-blend", {"variant": "authors"}, _adap("authors")),
    ("adap-blend/original", "adap-blend", {"variant": "original"}, _adap("masked")),
    ("adap-blend/separate", "adap-blend", {"variant": "separate"}, _adap("authors")),
    ("ftrojan/authors", "ftrojan", {"variant": "authors"}, _ftrojan(30.0)),
    ("ftrojan/original", "ftrojan", {"variant": "original"}, _ftrojan(20.0)),
]


def run_case(name: str, options: dict, reference, seed: int = 0):
    """(ibtui train, ibtui test, reference train, reference test) on the golden inputs."""
    x, y = golden_inputs()
    if name == "lc":
        y = np.zeros_like(y)  # clean-label: target-class images only
    a = create_attack(name, options, target=0, seed=seed)
    a.selection_rate(0.1)  # Adap-Blend's separate cover rate needs the run's poison rate
    px, _ = a.poison_train(x, y)
    tx = a.trigger_test(x)
    rx, rt = reference(a, x, y)
    return px, tx, rx, rt


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_golden(case):
    _, name, options, reference = case
    px, tx, rx, rt = run_case(name, options, reference)
    for got, want, what in ((px, rx, "train"), (tx, rt, "test")):
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.max() <= TOL, f"{case[0]} {what}: max abs diff {diff.max()} > {TOL}"


def test_golden_inputs_are_fixed():
    x, y = golden_inputs()
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8 and list(y) == list(range(6))
    # a digest of the checked-in inputs: regenerating them differently must be deliberate
    assert int(x.astype(np.int64).sum()) == GOLDEN_SUM


GOLDEN_SUM = 2144679


def test_every_attack_and_variant_has_a_golden_case():
    from ibtui.data.attacks import ATTACKS

    covered = {(c[1], c[2].get("variant")) for c in CASES}
    for name, cls in ATTACKS.items():
        for variant in cls.variants:
            assert (name, variant) in covered, f"no golden case for {name}/{variant}"


def test_ftrojan_golden_rejects_the_old_set_rule():
    """The pre-fix rule (coefficient *set* to the magnitude) is more than rounding away from the
    references on colour images: the golden test above would fail on it."""
    x, _ = golden_inputs()
    old = ref_ftrojan(x, 30.0, mode="set")
    new = ref_ftrojan(x, 30.0)
    assert np.abs(old.astype(int) - new).max() > 5 * TOL
    grey = x[1:2]  # on greyscale images Cr and Cb are flat: both rules agree
    np.testing.assert_array_equal(ref_ftrojan(grey, 30.0, mode="set"), ref_ftrojan(grey, 30.0))


def test_reference_dct_and_grid_are_what_they_claim():
    """Sanity of the independent pieces: the DCT matrix is orthonormal, the bicubic matrix
    interpolates (rows sum to 1, corners exact), the zero-strength grid is the identity warp."""
    d = dct_matrix(32)
    np.testing.assert_allclose(d @ d.T, np.eye(32), atol=1e-12)
    b = bicubic_matrix(4, 32)
    np.testing.assert_allclose(b.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(b[0], [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(b[-1], [0, 0, 0, 1], atol=1e-12)
    x, _ = golden_inputs()
    np.testing.assert_array_equal(ref_warp(x[:2], wanet_grid(s=0.0)), x[:2])


# --- PIL-equivalent resize ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(314, 380), (39, 47), (64, 64), (20, 17), (32, 100), (7, 9)])
@pytest.mark.parametrize("kind", ["bilinear", "bicubic"])
def test_resize_matches_pil(shape, kind):
    from PIL import Image

    from ibtui.data.attacks.blend import resize_like_pil

    img = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(img).resize(
        (32, 32), Image.BILINEAR if kind == "bilinear" else Image.BICUBIC))
    got = resize_like_pil(img, (32, 32), kind)
    assert np.abs(got.astype(int) - want).max() <= TOL


def test_pattern_file_resized_like_pil_and_aliasing_would_fail(tmp_path):
    """A 380 x 314 photo-like pattern: ibtui's loader equals PIL's antialiased resize; the old
    non-antialiased interpolation is several grey levels away (what this test guards)."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from ibtui.data.attacks.blend import load_pattern

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:314, 0:380]
    img = np.stack([128 + 100 * np.sin(xx / 3.0), 128 + 100 * np.cos(yy / 2.5),
                    rng.integers(0, 256, (314, 380))], -1).clip(0, 255).astype(np.uint8)
    path = tmp_path / "kitty.png"
    Image.fromarray(img).save(path)
    want = np.asarray(Image.fromarray(img).resize((32, 32), Image.BILINEAR))
    got = load_pattern(str(path))
    assert np.abs(got.astype(int) - want).max() <= TOL
    t = torch.as_tensor(img).permute(2, 0, 1)[None].float()
    aliased = F.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False)[0]
    aliased = aliased.permute(1, 2, 0).round().numpy()
    assert np.abs(aliased - want).max() > 10 * TOL
