"""Perceptual quality of poisoned images against their clean originals (paper §VI: PSNR, SSIM,
LPIPS). Inputs are uint8 images (N, H, W, C) or a single (H, W, C) image, data range 255.

- `psnr`: per image 10 log10(255^2 / MSE) over all pixels and channels, then the mean over
  images. Images an attack left unchanged (MSE 0) are left out of the mean (they would make it
  infinite and say nothing about the trigger's visibility); inf only when every pair is identical.
- `ssim`: Wang et al. 2004 exactly as their reference code: Gaussian window 11 x 11, sigma 1.5,
  K1 0.01, K2 0.03, L 255, population (biased) local statistics, the map over the "valid"
  region (no padding), computed per channel; the mean over the map, channels and images.
- `lpips`: AlexNet-LPIPS (Zhang et al. 2018) only where the `lpips` package *and* torchvision's
  AlexNet ImageNet weights are already on this machine; nothing is downloaded. Otherwise
  (None, reason).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate1d


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image arrays differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    if a.ndim != 4:
        raise ValueError(f"expected (N, H, W, C) or (H, W, C) images, got shape {a.shape}")
    return a, b


def psnr_per_image(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    a, b = _pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = (d * d).reshape(len(d), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean PSNR (dB) over the images that differ; inf when every pair is identical."""
    v = psnr_per_image(a, b, data_range)
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if len(finite) else math.inf


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def ssim_per_image(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, win: int = 11,
                   sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
                   chunk: int = 1024) -> np.ndarray:
    """SSIM of every image pair (mean over the valid map and the channels)."""
    a, b = _pair(a, b)
    n, h, w, _ = a.shape
    if h < win or w < win:
        raise ValueError(f"images of {h}x{w} are smaller than the {win}x{win} SSIM window")
    g = gaussian_window(win, sigma)
    r = win // 2
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    def filt(z: np.ndarray) -> np.ndarray:
        z = correlate1d(z, g, axis=1, mode="constant")
        z = correlate1d(z, g, axis=2, mode="constant")
        return z[:, r:h - r, r:w - r]

    out = np.empty(n, dtype=np.float64)
    for i in range(0, n, chunk):
        x = a[i:i + chunk].astype(np.float64)
        y = b[i:i + chunk].astype(np.float64)
        mx, my = filt(x), filt(y)
        sxx = filt(x * x) - mx * mx
        syy = filt(y * y) - my * my
        sxy = filt(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        out[i:i + chunk] = m.reshape(len(m), -1).mean(axis=1)
    return out


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM over images (Wang et al. 2004, see module doc)."""
    return float(ssim_per_image(a, b, data_range).mean())


_LPIPS_MODEL = None


def _lpips_model():
    """(model, None) or (None, reason). Never downloads anything."""
    global _LPIPS_MODEL
    if _LPIPS_MODEL is not None:
        return _LPIPS_MODEL, None
    try:
        import lpips as lp
    except ImportError:
        return None, ("LPIPS not computed: the `lpips` package is not installed (it also needs "
                      "torchvision's AlexNet ImageNet weights in the torch hub cache)")
    linear = Path(lp.__file__).parent / "weights" / "v0.1" / "alex.pth"
    if not linear.is_file():
        return None, f"LPIPS not computed: its linear-layer weights are missing ({linear})"
    try:
        import torch
        from torchvision.models import AlexNet_Weights

        ckpt = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(
            AlexNet_Weights.IMAGENET1K_V1.url)
    except Exception as e:  # noqa: BLE001
        return None, f"LPIPS not computed: torchvision unavailable ({e})"
    if not ckpt.is_file():
        return None, (f"LPIPS not computed: AlexNet ImageNet weights not found at {ckpt}; "
                      "nothing is downloaded automatically")
    try:
        model = lp.LPIPS(net="alex", verbose=False).eval()
    except Exception as e:  # noqa: BLE001
        return None, f"LPIPS not computed: loading failed ({type(e).__name__}: {e})"
    _LPIPS_MODEL = model
    return model, None


def lpips(a: np.ndarray, b: np.ndarray, batch: int = 256) -> tuple[float | None, str | None]:
    """Mean AlexNet-LPIPS over image pairs, or (None, why not)."""
    model, why = _lpips_model()
    if model is None:
        return None, why
    import torch

    a, b = _pair(a, b)
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(a), batch):
            ta = torch.from_numpy(a[i:i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            tb = torch.from_numpy(b[i:i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            total += float(model(ta, tb).sum())
    return total / max(1, len(a)), None


def perceptibility(clean: np.ndarray, poisoned: np.ndarray) -> dict:
    """PSNR (dB), SSIM and LPIPS of poisoned images against their clean originals."""
    value, note = lpips(clean, poisoned)
    return {"psnr": psnr(clean, poisoned), "ssim": ssim(clean, poisoned),
            "lpips": value, "lpips_note": note}
