"""WaNet (Nguyen & Tran 2021): warp the image with a fixed, smooth random displacement field.

The warping field: a k x k x 2 array uniform in [-1, 1] (fixed seed `grid_seed`, independent of
the run's seed), divided by its mean absolute value, upsampled bicubically to 32 x 32 and added,
times s / 32, to the identity sampling grid (normalised coordinates, align_corners=True), then
times `grid_rescale` and clamped to [-1, 1]. Images are resampled bilinearly with that grid.

Variants (docs/method.md §4, attack table):
- `authors` (the default, the paper's authors' code): every poisoned training image is warped
  with the grid plus its own uniform noise in [-1, 1] * noise_amplitude / 32 (fresh per image,
  from the run's seed), clamped to [-1, 1], and relabelled; test images are warped the same way
  with fresh noise too (`noise_on_test`; drawn from a generator re-seeded from the run's seed at
  every call, so the triggered test set is reproducible); the authors' index rule.
- `backdoorbench` (BackdoorBench, which ports the original VinAI code unchanged, so this is also
  the `original` rule): payload images use the exact grid, and `cross_ratio` (2) "noise"
  samples per payload image are warped with grid + noise but keep their label; test images use
  the exact grid. The references draw payload and noise images afresh in every batch
  (int(0.1 batch) payload, int(2 * that) noise); ibtui fixes them once, with the same ratios:
  `selection_rate(p) = p (1 + r)` chosen by BackdoorBench's index rule (a uniformly random
  round), and of the images handed to `poison_train` a random round(n / (1 + r)) are payload.
With s = 0 and no noise the warp is the identity.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ibtui.data.attacks import register
from ibtui.data.attacks.base import Attack, RelabelOptions, to_float, to_uint8
from ibtui.schema import Int, Num, SchemaField

GRID_SEED = 20210113


def warping_field(k: int, seed: int = GRID_SEED) -> np.ndarray:
    """(2, k, k) float64 field, uniform in [-1, 1], normalised by its mean absolute value."""
    ins = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(2, k, k))
    return ins / np.mean(np.abs(ins))


def identity_grid(size: int = 32) -> np.ndarray:
    """(size, size, 2) sampling grid in grid_sample's convention: [..., 0] = x, [..., 1] = y."""
    a = np.linspace(-1.0, 1.0, size)
    yy, xx = np.meshgrid(a, a, indexing="ij")
    return np.stack([xx, yy], axis=-1)


def make_grid(k: int, s: float, grid_rescale: float = 1.0, seed: int = GRID_SEED,
              size: int = 32) -> np.ndarray:
    """The fixed WaNet sampling grid (size, size, 2), float32 in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    field = torch.as_tensor(warping_field(k, seed))[None]  # (1, 2, k, k)
    up = F.interpolate(field, size=(size, size), mode="bicubic", align_corners=True)
    up = up[0].permute(1, 2, 0).numpy()  # (size, size, 2)
    grid = (identity_grid(size) + s * up / size) * grid_rescale
    return np.clip(grid, -1.0, 1.0).astype(np.float32)


def warp(x: np.ndarray, grid: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Resample uint8 NHWC images with a (H, W, 2) grid or per-image (N, H, W, 2) grids
    (bilinear, align_corners=True, in float64)."""
    import torch
    import torch.nn.functional as F

    out = np.empty_like(x)
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(to_float(x[i:i + batch])).permute(0, 3, 1, 2)
        g = grid if grid.ndim == 3 else grid[i:i + batch]
        gb = torch.from_numpy(np.ascontiguousarray(g, dtype=np.float64))
        if gb.ndim == 3:
            gb = gb[None].expand(len(xb), -1, -1, -1)
        yb = F.grid_sample(xb, gb, mode="bilinear", padding_mode="zeros", align_corners=True)
        out[i:i + batch] = to_uint8(yb.permute(0, 2, 3, 1).numpy())
    return out


@register
class WaNet(Attack):
    name = "wanet"
    title = "WaNet"
    description = "smooth image warping (k 4, s 0.5); authors add grid noise to every poisoned image"
    variants = {"backdoorbench": {"grid_rescale": 1.0, "cross_ratio": 2.0, "noise_on_poison": False,
                                  "noise_on_test": False, "index": "random-round"}}

    class Options(RelabelOptions):
        k: Annotated[Int, SchemaField(ge=2, le=32, description="side of the random control grid")] = 4
        s: Annotated[Num, SchemaField(ge=0, le=32, allow_inf_nan=False,
                                      description="warping strength")] = 0.5
        grid_rescale: Annotated[Num, SchemaField(ge=0, le=2, allow_inf_nan=False, description=(
            "scale of the warped grid before clamping"))] = 1.0
        grid_seed: Annotated[Int, SchemaField(ge=0, description="seed of the fixed warping field")] = GRID_SEED
        noise_on_poison: Annotated[bool, SchemaField(description=(
            "add fresh grid noise to every poisoned training image (authors)"))] = True
        noise_on_test: Annotated[bool, SchemaField(description=(
            "add fresh grid noise to every triggered test image (authors)"))] = True
        noise_amplitude: Annotated[Num, SchemaField(ge=0, le=32, allow_inf_nan=False, description=(
            "grid noise: uniform in [-a, a] / 32"))] = 1.0
        cross_ratio: Annotated[Num, SchemaField(ge=0, le=100, allow_inf_nan=False, description=(
            "label-keeping noise samples per poisoned image (BackdoorBench: 2)"))] = 0.0

    def __init__(self, options: dict, **kw):
        super().__init__(options, **kw)
        o = self.opts
        self.grid = make_grid(o["k"], o["s"], o["grid_rescale"], o["grid_seed"])
        self.kept = np.zeros(0, dtype=bool)  # last poison_train: which images kept their label
        self.train_grids = np.zeros((0, *self.grid.shape), dtype=np.float32)  # last poison_train

    def selection_rate(self, rate: float) -> float:
        return rate * (1.0 + self.opts["cross_ratio"])

    def payload_count(self, n: int) -> int:
        cross = self.opts["cross_ratio"]
        return int(round(n / (1.0 + cross))) if cross > 0 else n

    def _noisy_grids(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        amp = self.opts["noise_amplitude"] / self.grid.shape[0]
        rng = self.rng if rng is None else rng
        noise = rng.uniform(-1.0, 1.0, size=(n, *self.grid.shape)).astype(np.float32)
        return np.clip(self.grid[None] + amp * noise, -1.0, 1.0)

    def test_grids(self, n: int) -> np.ndarray:
        """The (n, 32, 32, 2) grids `trigger_test` uses for n images: the exact grid, or with
        `noise_on_test` grid + fresh noise from a generator seeded by the run's seed."""
        if not self.opts["noise_on_test"]:
            return np.broadcast_to(self.grid, (n, *self.grid.shape))
        return self._noisy_grids(n, np.random.default_rng([self.seed, 0x7E57]))

    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(x)
        n_payload = self.payload_count(n)
        kept = np.zeros(n, dtype=bool)
        kept[self.rng.permutation(n)[n_payload:]] = True
        grids = np.broadcast_to(self.grid, (n, *self.grid.shape)).copy()
        noisy = np.ones(n, dtype=bool) if self.opts["noise_on_poison"] else kept
        if noisy.any():
            grids[noisy] = self._noisy_grids(int(noisy.sum()))
        out = warp(x, grids)
        y_out = np.where(kept, y, self.target).astype(y.dtype)
        self.kept, self.train_grids = kept, grids
        return out, y_out

    def trigger_test(self, x: np.ndarray) -> np.ndarray:
        if not self.opts["noise_on_test"]:
            return warp(x, self.grid)
        return warp(x, self.test_grids(len(x)))

    def artifacts(self) -> dict[str, np.ndarray]:
        return {
            "wanet_grid": self.grid,
            "wanet_field": warping_field(self.opts["k"], self.opts["grid_seed"]).astype(np.float32),
            "wanet_noise_mask": self.kept,
        }
