"""Blend (Chen et al. 2017): x' = (1 - alpha) x + alpha p with a fixed pattern p, on the 0-255
scale, clipped and rounded half up.

Variants (docs/method.md §4, attack table): `authors` (default: alpha 0.3 in training and at test, a 32 x 32
grey uniform-noise pattern, the authors' index rule), `backdoorbench` (alpha 0.2 in training and
at test, a uniformly random round(p N) of the training set; BackdoorBench's pattern is the Hello
Kitty photo, resized to 32 x 32 with PIL bilinear, which ibtui does not ship: pass it as
`pattern = "path"`), `alpha0.2` (the authors' rule with alpha 0.2). The authors' own noise pattern
is not shipped either: `pattern` defaults to a grey noise drawn from a fixed seed (PATTERN_SEED),
of the same kind but not the same pixels; pass theirs as `pattern = "file.png"` (or .npy) to use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np

from ibtui.data.attacks import register
from ibtui.data.attacks.base import Attack, RelabelOptions, to_float, to_uint8
from ibtui.errors import SpecError
from ibtui.schema import Num, SchemaField

PATTERN_SEED = 20170531  # the pattern is fixed in code, independent of the run's seed


def noise_pattern(seed: int = PATTERN_SEED, size: int = 32) -> np.ndarray:
    """Grey uniform-noise pattern, (size, size, 3) uint8, the same in every channel."""
    grey = np.random.default_rng(seed).integers(0, 256, size=(size, size), dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


# --- PIL-equivalent antialiased resizing --------------------------------------------------------
# Pillow resizes 8-bit images with a separable convolution (ImagingResample): for output pixel i
# of a dimension scaled by scale = in / out, the filter is stretched by fs = max(scale, 1) (that
# is the antialiasing), centred at c = (i + 0.5) scale, over the input pixels
# [int(c - support fs + 0.5), int(c + support fs + 0.5)) clipped to the image, with weights
# filter((x - c + 0.5) / fs) normalised to sum 1 and stored as fixed-point integers with 22
# fractional bits; each pass rounds half up and clips to 0..255, horizontal pass first.
PIL_PRECISION_BITS = 22


def _triangle(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


RESIZE_FILTERS = {"bilinear": (_triangle, 1.0), "bicubic": (_cubic, 2.0)}


def resize_weights(in_size: int, out_size: int, kind: str = "bilinear") -> np.ndarray:
    """(out_size, in_size) int64 fixed-point weights of one resampling pass (see above)."""
    kernel, support = RESIZE_FILTERS[kind]
    scale = in_size / out_size
    fs = max(scale, 1.0)
    w = np.zeros((out_size, in_size), dtype=np.int64)
    for i in range(out_size):
        c = (i + 0.5) * scale
        lo = max(int(c - support * fs + 0.5), 0)
        hi = min(int(c + support * fs + 0.5), in_size)
        k = kernel((np.arange(lo, hi) - c + 0.5) / fs)
        total = k.sum()
        if total != 0.0:
            k = k / total
        one = float(1 << PIL_PRECISION_BITS)
        w[i, lo:hi] = np.where(k < 0, np.trunc(k * one - 0.5), np.trunc(k * one + 0.5))
    return w


def _resample_rows(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One pass along axis 0 of an (H, W, C) uint8 image with fixed-point weights (out, H)."""
    acc = np.tensordot(w, img.astype(np.int64), axes=(1, 0)) + (1 << (PIL_PRECISION_BITS - 1))
    return np.clip(acc >> PIL_PRECISION_BITS, 0, 255).astype(np.uint8)


def resize_like_pil(img: np.ndarray, size: tuple[int, int] = (32, 32),
                    kind: str = "bilinear") -> np.ndarray:
    """Resize an (H, W, C) uint8 image to size = (height, width) as Pillow's
    Image.resize((width, height), BILINEAR or BICUBIC) does: antialiased when shrinking."""
    h, w = img.shape[:2]
    out = img
    if w != size[1]:
        out = _resample_rows(out.transpose(1, 0, 2), resize_weights(w, size[1], kind))
        out = out.transpose(1, 0, 2)
    if h != size[0]:
        out = _resample_rows(out, resize_weights(h, size[0], kind))
    return np.ascontiguousarray(out)


def load_pattern(path: str, field: str = "pattern") -> np.ndarray:
    """A user-supplied pattern: a .npy uint8 array (H x W or H x W x 3/4) or any image file
    Pillow reads (converted to RGB), resized to 32 x 32 as BackdoorBench does (PIL bilinear,
    antialiased; see resize_like_pil). Errors are SpecErrors naming the option."""
    p = Path(path).expanduser()
    allowed = "'noise' or the path of an image file (PNG, JPEG, ...) or a uint8 .npy array"
    if not p.exists():
        raise SpecError(f"attack_options.{field}: file {p} does not exist; allowed: {allowed}")
    if not p.is_file():
        raise SpecError(f"attack_options.{field}: {p} is not a file; allowed: {allowed}")
    try:
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - reported with the option's name
        raise SpecError(f"attack_options.{field}: cannot read {p} ({type(e).__name__}: {e}); "
                        f"allowed: {allowed}") from None
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) \
            or min(arr.shape[:2]) < 1:
        raise SpecError(f"attack_options.{field}: {p} holds a {arr.dtype} array of shape "
                        f"{arr.shape}; allowed: {allowed} (H x W or H x W x 1/3/4 uint8)")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = np.ascontiguousarray(arr[:, :, :3])
    if arr.shape[:2] != (32, 32):
        arr = resize_like_pil(arr, (32, 32), "bilinear")
    return arr.astype(np.uint8)


class PatternAttack(Attack):
    """An attack that blends a fixed pattern into the images: Blend, Adap-Blend. Option
    `pattern`: "noise", or an image file that must load (stored as a resolved path, so that a
    resume from another directory reads the same file); at test the whole pattern is blended
    with weight `test_alpha`."""

    @classmethod
    def check(cls, opts: dict) -> None:
        if opts["pattern"] != "noise":
            load_pattern(opts["pattern"])
            opts["pattern"] = str(Path(opts["pattern"]).expanduser().resolve())

    def __init__(self, options: dict, **kw):
        super().__init__(options, **kw)
        name = self.opts["pattern"]
        self.pattern = noise_pattern() if name == "noise" else load_pattern(name)

    def blend(self, x: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
        """x' = (1 - a) x + a p, `alpha` one weight or a per-pixel map (N or 1, H, W)."""
        a = np.asarray(alpha, dtype=np.float64)[..., None] if np.ndim(alpha) else alpha
        return to_uint8((1.0 - a) * to_float(x) + a * to_float(self.pattern)[None])

    def trigger_test(self, x: np.ndarray) -> np.ndarray:
        return self.blend(x, self.opts["test_alpha"])


@register
class Blend(PatternAttack):
    name = "blend"
    title = "Blend"
    description = "blend a fixed grey noise pattern (alpha 0.3 train and test)"
    variants = {"backdoorbench": {"alpha": 0.2, "test_alpha": 0.2, "index": "random-round"},
                "alpha0.2": {"alpha": 0.2, "test_alpha": 0.2}}

    class Options(RelabelOptions):
        alpha: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False,
                                          description="blend weight in training")] = 0.3
        test_alpha: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False,
                                               description="blend weight at test")] = 0.3
        pattern: Annotated[str, SchemaField(
            description="'noise' (seeded grey noise) or a path to an image")] = "noise"

    def poison_train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.blend(x, self.opts["alpha"]), np.full_like(y, self.target)

    def artifacts(self) -> dict[str, np.ndarray]:
        return {"blend_pattern": self.pattern}
