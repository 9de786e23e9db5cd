"""FTrojan (Wang et al. 2022): a trigger in the frequency domain of the chrominance channels.

RGB -> YCrCb (full-range BT.601 / JPEG, floats on the 0-255 scale), orthonormal type-II DCT
(scipy.fft.dctn, norm="ortho", the same transform as OpenCV's cv2.dct) over non-overlapping
`window` x `window` blocks of Cr and Cb, `magnitude` *added* to the coefficients at `positions`
(inside every block), inverse DCT, back to RGB with the exact inverse of the colour matrix,
clipped to [0, 255] and rounded to uint8:

    x' = clip(round(x + M^-1 [0, IDCT(m E), IDCT(m E)])),   E = 1 at the positions, 0 elsewhere

i.e. a fixed additive pattern in RGB, the same for every image up to clipping. Both references
(the original FTrojan code and BackdoorBench) add; ibtui before 2026-11 *set* the coefficient to
the magnitude, which made the trigger depend on the image (up to 13 grey levels off).

Variants (docs/method.md §4, attack table): `authors` (default; magnitude 30, the paper's authors' index
rule) and `original` (the FTrojan repository: magnitude 20, the first floor(p N) non-target
images). Where the original code differs and we do not follow it: it converts to YCrCb with
OpenCV on uint8 (the YCrCb values are rounded to integers before the DCT and after the inverse
DCT, and OpenCV's inverse matrix uses 4-digit coefficients); ibtui keeps floats until the final
clip and round. On unsaturated images the two agree to about one grey level.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator

from ibtui.data.attacks import register
from ibtui.data.attacks.base import Attack, RelabelOptions
from ibtui.errors import SpecError
from ibtui.schema import Int, Num, SchemaField, integral

# full-range BT.601 (JPEG): Y = .299 R + .587 G + .114 B, Cr = (R - Y) / 1.402 + 128,
# Cb = (B - Y) / 1.772 + 128; rows Y, Cr, Cb (OpenCV's channel order)
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
RGB2YCRCB = np.array([
    [_KR, _KG, _KB],
    [(1 - _KR) / (2 * (1 - _KR)), -_KG / (2 * (1 - _KR)), -_KB / (2 * (1 - _KR))],
    [-_KR / (2 * (1 - _KB)), -_KG / (2 * (1 - _KB)), (1 - _KB) / (2 * (1 - _KB))],
])
YCRCB2RGB = np.linalg.inv(RGB2YCRCB)
OFFSET = np.array([0.0, 128.0, 128.0])
CHANNELS = {"CrCb": (1, 2), "Cr": (1,), "Cb": (2,), "Y": (0,), "YCrCb": (0, 1, 2)}


def rgb_to_ycrcb(x: np.ndarray) -> np.ndarray:
    """(..., 3) RGB floats on 0-255 -> (..., 3) Y, Cr, Cb floats."""
    return x @ RGB2YCRCB.T + OFFSET


def ycrcb_to_rgb(x: np.ndarray) -> np.ndarray:
    return (x - OFFSET) @ YCRCB2RGB.T


def block_dct(c: np.ndarray, window: int, inverse: bool = False) -> np.ndarray:
    """Orthonormal 2-D DCT-II (or its inverse) over non-overlapping window x window blocks of
    (N, H, W) arrays."""
    from scipy.fft import dctn, idctn  # here: reading the attack registry stays quick

    n, h, w = c.shape
    b = c.reshape(n, h // window, window, w // window, window)
    f = idctn if inverse else dctn
    b = f(b, type=2, norm="ortho", axes=(2, 4))
    return b.reshape(n, h, w)


@register
class FTrojan(Attack):
    name = "ftrojan"
    title = "FTrojan"
    description = "DCT trigger in Cr and Cb: 30 added at (15,15) and (31,31)"
    variants = {"original": {"magnitude": 20.0, "index": "first-other"}}

    class Options(RelabelOptions):
        magnitude: Annotated[Num, SchemaField(ge=0, le=1e4, allow_inf_nan=False, description=(
            "added to the chosen DCT coefficients (0-255 scale)"))] = 30.0
        window: Annotated[Literal[4, 8, 16, 32], BeforeValidator(integral),
                          SchemaField(description="DCT block side")] = 32
        positions: Annotated[list[list[Int]], SchemaField(description=(
            "coefficient positions inside each block, [[row, col], ...]"))] = [[15, 15], [31, 31]]
        channels: Annotated[Literal[tuple(CHANNELS)], SchemaField(
            description="YCrCb channels that carry the trigger")] = "CrCb"

    @classmethod
    def check(cls, opts: dict) -> None:
        win = opts["window"]
        pos = opts["positions"]
        ok = (isinstance(pos, (list, tuple)) and len(pos) > 0
              and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pos)
              and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < win
                      for p in pos for v in p))
        if not ok:
            raise SpecError(f"attack_options.positions: {pos!r} not allowed; allowed: a non-empty "
                            f"list of [row, col] integer pairs in 0..{win - 1} (window = {win})")
        opts["positions"] = [[int(r), int(c)] for r, c in pos]

    def __init__(self, options: dict, **kw):
        super().__init__(options, **kw)
        self.positions = tuple((r, c) for r, c in self.opts["positions"])

    def apply_float(self, x: np.ndarray) -> np.ndarray:
        """The triggered images as float64 RGB on 0-255, before clipping and rounding."""
        ycc = rgb_to_ycrcb(x.astype(np.float64))
        win = self.opts["window"]
        for ch in CHANNELS[self.opts["channels"]]:
            coef = block_dct(ycc[..., ch], win)
            for r, c in self.positions:
                coef[:, r::win, c::win] += self.opts["magnitude"]
            ycc[..., ch] = block_dct(coef, win, inverse=True)
        return ycrcb_to_rgb(ycc)

    def trigger_test(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        out = np.empty_like(x)
        for i in range(0, len(x), batch):
            out[i:i + batch] = np.clip(self.apply_float(x[i:i + batch]), 0.0, 255.0).round()
        return out

    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.trigger_test(x), np.full_like(y, self.target)

    def artifacts(self) -> dict[str, np.ndarray]:
        """The additive RGB trigger (before clipping; the same on every image), and the
        coefficient mask (window x window)."""
        grey = np.full((1, 32, 32, 3), 128, dtype=np.uint8)
        mask = np.zeros((self.opts["window"],) * 2, dtype=np.uint8)
        for r, c in self.positions:
            mask[r, c] = 1
        return {"ftrojan_delta_on_grey": (self.apply_float(grey)[0] - 128.0).astype(np.float32),
                "ftrojan_coef_mask": mask}
