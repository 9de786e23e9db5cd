"""Regenerate the fixed inputs of tests/test_attacks_golden.py (run once; the outputs are
checked in and must not change): `python tests/data/make_golden_inputs.py`.

golden_inputs.npy: (6, 32, 32, 3) uint8
  0 uniform colour noise          3 saturated colour quadrants (black, white, red, blue) + stripes
  1 a digit from the digits set   4 low-contrast mid-grey texture
  2 smooth colour "photo"         5 colour checkerboard with a bright disc
pattern_47x39.png: a 47 x 39 (width x height) RGB image, a stand-in for a user's Blend pattern
  (BackdoorBench uses a photo); it exercises the resize to 32 x 32.
labels: golden_labels.npy, classes 0..5 (image i has label i).
"""

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(15)
    imgs = np.zeros((6, 32, 32, 3), np.uint8)
    imgs[0] = rng.integers(0, 256, (32, 32, 3))
    from ibtui.data.datasets import load_dataset

    imgs[1] = load_dataset("digits").x_train[7]
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    photo = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * np.sin(3 * yy + 2 * xx) ** 2, 0.8 - 0.5 * yy], -1)
    imgs[2] = np.round(255 * np.clip(photo, 0, 1))
    q = np.zeros((32, 32, 3), np.uint8)
    q[:16, 16:] = 255
    q[16:, :16] = (255, 0, 0)
    q[16:, 16:] = (0, 0, 255)
    q[::4, :, 1] = 255
    imgs[3] = q
    imgs[4] = np.clip(128 + rng.normal(0, 6, (32, 32, 3)), 0, 255).round()
    check = ((np.arange(32)[:, None] // 4 + np.arange(32)[None] // 4) % 2).astype(bool)
    c = np.where(check[..., None], (30, 160, 60), (200, 40, 120)).astype(np.uint8)
    c[(yy * 31 - 20) ** 2 + (xx * 31 - 12) ** 2 < 36] = (250, 250, 200)
    imgs[5] = c
    np.save(HERE / "golden_inputs.npy", imgs)
    np.save(HERE / "golden_labels.npy", np.arange(6, dtype=np.int64))
    py, px = np.mgrid[0:39, 0:47]
    pat = np.stack([(px * 255 // 46), (py * 255 // 38), ((px // 3 + py // 3) % 2) * 255], -1)
    Image.fromarray(pat.astype(np.uint8)).save(HERE / "pattern_47x39.png")


if __name__ == "__main__":
    main()
