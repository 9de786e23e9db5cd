"""Blend (Chen et al. 2017): x' = (1 - alpha) x + alpha p with a fixed pattern p."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibtui.data.attacks import register
from ibtui.data.attacks.base import Attack, Option, to_float, to_uint8
from ibtui.errors import SpecError

PATTERN_SEED = 20170531  # the pattern is fixed in code, independent of the run's seed


def noise_pattern(seed: int = PATTERN_SEED, size: int = 32) -> np.ndarray:
    """Grey uniform-noise pattern, (size, size, 3) uint8, the same in every channel."""
    grey = np.random.default_rng(seed).integers(0, 256, size=(size, size), dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def load_pattern(path: str) -> np.ndarray:
    """A user-supplied pattern image (.npy uint8 HxWx3, or any image file) resized to 32x32."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SpecError(f"attack_options.pattern: file {p} does not exist")
    if p.suffix == ".npy":
        arr = np.load(p)
    else:
        import matplotlib.image as mpimg

        arr = mpimg.imread(p)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    arr = arr[:, :, :3]
    if arr.shape[:2] != (32, 32):
        import torch
        import torch.nn.functional as F

        t = torch.as_tensor(arr).permute(2, 0, 1)[None].float()
        arr = F.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False)[0]
        arr = arr.permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy()
    return arr.astype(np.uint8)


@register
class Blend(Attack):
    name = "blend"
    description = "blend a fixed grey noise pattern (alpha 0.3 train and test)"
    options = {
        "alpha": Option(0.3, (float,), "blend weight in training", lo=0.0, hi=1.0),
        "test_alpha": Option(0.3, (float,), "blend weight at test", lo=0.0, hi=1.0),
        "pattern": Option("noise", (str,), "'noise' (seeded grey noise) or a path to an image"),
    }
    variants = {"alpha0.2": {"alpha": 0.2, "test_alpha": 0.2}}

    def __init__(self, options: dict, **kw):
        super().__init__(options, **kw)
        self.pattern = (noise_pattern() if self.opts["pattern"] == "noise"
                        else load_pattern(self.opts["pattern"]))

    def blend(self, x: np.ndarray, alpha: float) -> np.ndarray:
        return to_uint8((1.0 - alpha) * to_float(x) + alpha * to_float(self.pattern)[None])

    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.blend(x, self.opts["alpha"]), np.full_like(y, self.target)

    def trigger_test(self, x: np.ndarray) -> np.ndarray:
        return self.blend(x, self.opts["test_alpha"])

    def artifacts(self) -> dict[str, np.ndarray]:
        return {"blend_pattern": self.pattern}
