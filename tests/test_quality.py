"""Perceptual metrics: PSNR and SSIM against hand-computed values and a direct implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ibtui.data import quality
from ibtui.data.quality import gaussian_window, perceptibility, psnr, psnr_per_image, ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def rand_images(n=3, h=32, w=32, c=3, seed=0, lo=0, hi=256):
    return np.random.default_rng(seed).integers(lo, hi, size=(n, h, w, c), dtype=np.uint8)


def direct_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 by explicit loops over every valid 11x11 window of one channel."""
    g = gaussian_window(11, 1.5)
    w = np.outer(g, g)
    a, b = a.astype(np.float64), b.astype(np.float64)
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum()
            vb = (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + C1) * (2 * cov + C2)
                        / ((ma**2 + mb**2 + C1) * (va + vb + C2)))
    return float(np.mean(vals))


def test_psnr_constant_offset_hand_computed():
    a = rand_images(hi=200)
    b = a + np.uint8(10)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)
    assert psnr(b, a) == pytest.approx(28.1308036, abs=1e-6)


def test_psnr_identical_and_mean_over_images():
    a = rand_images()
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[0] = np.clip(a[0].astype(int) + 5, 0, 255).astype(np.uint8)  # only image 0 changes
    v = psnr_per_image(a, b)
    assert np.isinf(v[1:]).all() and np.isfinite(v[0])
    assert psnr(a, b) == pytest.approx(v[0])  # unchanged images are left out of the mean
    c = a.copy()
    c[:, 0, 0, 0] ^= 0xFF  # one pixel flipped per image
    mse = ((a.astype(float) - c) ** 2).reshape(3, -1).mean(1)
    assert psnr(a, c) == pytest.approx(np.mean(10 * np.log10(255**2 / mse)))


def test_ssim_identical_is_one_and_symmetric():
    a, b = rand_images(seed=1), rand_images(seed=2)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert -1 <= ssim(a, b) < 0.1


def test_ssim_of_constant_images_closed_form():
    a = np.full((1, 16, 16, 3), 100, np.uint8)
    b = np.full((1, 16, 16, 3), 110, np.uint8)
    expect = (2 * 100 * 110 + C1) / (100**2 + 110**2 + C1)  # sigma = 0: structure term is 1
    assert ssim(a, b) == pytest.approx(expect, abs=1e-12)


def test_ssim_matches_direct_implementation():
    a = rand_images(1, 14, 15, 1, seed=3)
    noise = np.random.default_rng(4).normal(0, 20, a.shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    assert ssim(a, b) == pytest.approx(direct_ssim(a[0, ..., 0], b[0, ..., 0]), abs=1e-10)
    # several channels and images: the mean of the per-channel values
    a3, b3 = rand_images(2, 13, 13, 3, seed=5), rand_images(2, 13, 13, 3, seed=6)
    direct = np.mean([direct_ssim(a3[n, ..., c], b3[n, ..., c]) for n in range(2) for c in range(3)])
    assert ssim(a3, b3) == pytest.approx(direct, abs=1e-10)
    # a smooth change scores high
    assert ssim(a, np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)) > 0.99


def test_shapes_checked():
    with pytest.raises(ValueError, match="shape"):
        psnr(rand_images(2), rand_images(3))
    with pytest.raises(ValueError, match="smaller"):
        ssim(rand_images(1, 8, 8), rand_images(1, 8, 8))
    single = rand_images(1)[0]
    assert ssim(single, single) == pytest.approx(1.0)


def test_perceptibility_keys_and_lpips_reason(monkeypatch):
    a = rand_images(2)
    b = np.clip(a.astype(int) + 4, 0, 255).astype(np.uint8)
    monkeypatch.setattr(quality, "_LPIPS_MODEL", None)
    out = perceptibility(a, b)
    assert set(out) == {"psnr", "ssim", "lpips", "lpips_note"}
    assert out["psnr"] > 30 and 0.9 < out["ssim"] <= 1
    if out["lpips"] is None:
        assert isinstance(out["lpips_note"], str) and "LPIPS" in out["lpips_note"]
    else:  # lpips and its weights are installed here
        assert out["lpips_note"] is None and out["lpips"] >= 0
