"""Dataset registry. Every dataset is held as uint8 NHWC arrays (32x32 RGB) plus int64 labels.

`digits` is embedded (scikit-learn ships it), so it needs no download: the default for quick runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibtui.errors import DataError


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # uint8 (N, 32, 32, 3)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class DatasetInfo:
    name: str
    num_classes: int
    loader: Callable[..., Dataset]  # loader(root: Path | None, download: bool) -> Dataset
    needs_files: bool
    description: str


DATASETS: dict[str, DatasetInfo] = {}


def register(name: str, num_classes: int, needs_files: bool, description: str):
    def deco(fn):
        DATASETS[name] = DatasetInfo(name, num_classes, fn, needs_files, description)
        return fn

    return deco


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data directory: explicit root, else $IBTUI_DATA, else ./data."""
    return Path(root or os.environ.get("IBTUI_DATA") or "data").expanduser()


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[name].loader(data_root(root), download)


def upscale_to_rgb32(images: np.ndarray) -> np.ndarray:
    """(N, h, w) grey values in [0,1] -> (N, 32, 32, 3) uint8 by nearest-neighbour-free bilinear resize."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(images, dtype=torch.float32)[:, None]
    t = F.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False)
    t = (t.clamp(0, 1) * 255).round().to(torch.uint8)
    return t.repeat(1, 3, 1, 1).permute(0, 2, 3, 1).contiguous().numpy()


@register("digits", 10, needs_files=False,
          description="scikit-learn 8x8 digits (1,797 images) upscaled to 32x32 RGB; embedded")
def _load_digits(root: Path, download: bool) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = upscale_to_rgb32(d.images / 16.0)
    y = d.target.astype(np.int64)
    idx = np.arange(len(y))
    # fixed stratified split: 75% train, 25% test
    tr, te = train_test_split(idx, test_size=0.25, stratify=y, random_state=0)
    tr.sort()
    te.sort()
    return Dataset("digits", x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)])


# CIFAR-10 and SVHN arrive with their own module
try:
    from ibtui.data import torchvision_sets  # noqa: F401,E402
except ImportError:
    pass
