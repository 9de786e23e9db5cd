"""Dataset registry. Every dataset is held as uint8 NHWC arrays (32x32 RGB) plus int64 labels.

`digits` is embedded (scikit-learn ships it), so it needs no download: the default for quick runs.

This module owns the registry: every dataset, including the file-backed CIFAR-10 and SVHN, is
declared here. Their loaders live in `ibtui.data.torchvision_sets` and are referenced by dotted
name, imported on first use; that module imports this one and never the reverse (no import
cycle, and listing or validating datasets does not import the torchvision readers).
"""

from __future__ import annotations

import importlib
import importlib.util
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


def _resolve(ref: str | Callable | None) -> Callable | None:
    """A callable, or "module:function" imported now."""
    if ref is None or callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass
class DatasetInfo:
    name: str
    num_classes: int
    loader_ref: str | Callable[..., Dataset]  # loader(root: Path, download: bool) -> Dataset
    needs_files: bool
    description: str
    # training images per class after loading (the split and caps ibtui applies), for checks
    # that must not load the data, e.g. the smallest poison rate that poisons anything
    train_class_counts: tuple[int, ...] = ()
    # files_check(root: Path) raises the DataError the loader raises when a file is missing
    files_check_ref: str | Callable[[Path], None] | None = None

    @property
    def loader(self) -> Callable[..., Dataset]:
        return _resolve(self.loader_ref)

    @property
    def train_size(self) -> int:
        return sum(self.train_class_counts)

    def check_files(self, root: str | os.PathLike | None = None, download: bool = False) -> None:
        """Raise the loader's DataError if a needed file is missing under the data root (what
        the worker's load would raise); nothing to check when downloading or embedded."""
        check = _resolve(self.files_check_ref)
        if self.needs_files and not download and check is not None:
            check(data_root(root))


DATASETS: dict[str, DatasetInfo] = {}


def register(name: str, num_classes: int, needs_files: bool, description: str,
             train_class_counts: tuple[int, ...] = (), files_check: str | Callable | None = None):
    def deco(fn):
        DATASETS[name] = DatasetInfo(name, num_classes, fn, needs_files, description,
                                     tuple(train_class_counts), files_check)
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
          description="scikit-learn 8x8 digits (1,797 images) upscaled to 32x32 RGB; embedded",
          train_class_counts=(133, 136, 133, 137, 136, 136, 136, 134, 131, 135))
def _load_digits(root: Path, download: bool) -> Dataset:
    data = np.loadtxt(_digits_file(), delimiter=",")
    x = upscale_to_rgb32(data[:, :-1].reshape(-1, 8, 8) / 16.0)
    y = data[:, -1].astype(np.int64)
    test = np.unpackbits(np.frombuffer(bytes.fromhex(DIGITS_TEST_MASK), np.uint8))[: len(y)] == 1
    return Dataset("digits", x[~test], y[~test], x[test], y[test], [str(i) for i in range(10)])


# The fixed 75/25 split, stratified by class: scikit-learn's
# train_test_split(arange(1797), test_size=0.25, stratify=target, random_state=0), stored as a
# bit mask of the test images (tests/test_datasets.py checks it still equals that call).
# Stored, and the table read directly, so that a worker does not import scikit-learn (1.8 s).
DIGITS_TEST_MASK = (
    "000004883526104000164101934205001a00080102240028062c1e081108960a009019120420f8a0028110e04008"
    "0a9a304415244942c0a00a2030804004d821408b8020004885c400104008a0900005486800301000020ec4090012"
    "24840083b8013c21a69c0a0204000f48400804a4184902124061e5008024604e94376a819216015480004842a0a4"
    "180a5000a40b8561e688108049124c80c02205068e000109f202c141398813c009190000148e01008410a0e10033"
    "282900c144c8c0680a0102930292030922a6402c26042108a8608198c8a01412861202128138a41500")


def _digits_file() -> Path:
    """scikit-learn's digits table (8x8 pixels then the label, one image per row; its
    load_digits reads the same file), found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the digits dataset ships with scikit-learn, which is not installed; "
                        "install it with `pip install scikit-learn`")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


_TV = "ibtui.data.torchvision_sets"
DATASETS["cifar10"] = DatasetInfo(
    "cifar10", 10, f"{_TV}:load_cifar10", needs_files=True,
    description="CIFAR-10: 50,000 train / 10,000 test 32x32 colour images, 10 classes; "
                "files: cifar-10-batches-py/ (python version)",
    train_class_counts=(5000,) * 10, files_check_ref=f"{_TV}:check_cifar10_files")
DATASETS["svhn"] = DatasetInfo(
    "svhn", 10, f"{_TV}:load_svhn", needs_files=True,
    description="SVHN cropped digits: first 4,000 train images per class (40,000) / "
                "26,032 test, 32x32 colour; files: train_32x32.mat, test_32x32.mat",
    train_class_counts=(4000,) * 10, files_check_ref=f"{_TV}:check_svhn_files")
