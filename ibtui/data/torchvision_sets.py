"""CIFAR-10 and SVHN through torchvision, as uint8 NHWC (N, 32, 32, 3) arrays and int64 labels.

Route: the loaders construct `torchvision.datasets.CIFAR10(root, train=..., download=False)` and
`torchvision.datasets.SVHN(root, split=..., download=False)` and take their `.data` / targets, so
torchvision's readers and its md5 integrity check (against the checksum tables on those classes)
decide what is accepted. Downloads use torchvision's own download helpers with the same tables,
and only when asked (`download = true`, or `fetch_dataset` / `ibtui data fetch NAME`).

Files, relative to the data root (`data_root` in experiments.toml, else $IBTUI_DATA, else ./data):
  cifar10: cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta (the "python version")
  svhn:    train_32x32.mat, test_32x32.mat (the "cropped digits" format, torchvision's layout)

SVHN keeps the first `SVHN_TRAIN_PER_CLASS` (4,000) training images of every class, in file
order (40,000 images; docs/method.md §3); its test set is complete (26,032). torchvision maps
SVHN's label 10 to digit 0.

After a successful load the decoded arrays are cached as one uncompressed .npz next to the files
(`cifar-10-batches-py/ibtui-cache.npz`, `svhn-ibtui-cache.npz`). The cache is used only while
every source file has the size and modification time it had when the cache was written (and the
SVHN cap is unchanged); it is written atomically (temporary file + rename) and skipped silently
when the directory is not writable. Set `USE_CACHE = False` to disable it.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from ibtui.data.datasets import DATASETS, Dataset, data_root
from ibtui.errors import DataError
from ibtui.files import atomic_write

SVHN_TRAIN_PER_CLASS = 4000
USE_CACHE = True
_CACHE_VERSION = 1

# File names (torchvision's tables hold the same names with their md5; a test checks they
# agree). Known here so that a cache hit or a missing file is answered without importing
# torchvision, which costs seconds.
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
_CIFAR_CACHE = "ibtui-cache.npz"
_SVHN_CACHE = "svhn-ibtui-cache.npz"
_ROOT_HELP = "(the data root is `data_root` in experiments.toml, else $IBTUI_DATA, else ./data)"


# --------------------------------------------------------------------------- helpers


def _abs(p: Path) -> Path:
    return Path(os.path.abspath(p))


def _how_to_fetch(name: str, manual: str) -> str:
    return (f"To get them: run `ibtui data fetch {name}`, or set `download = true` in "
            f"experiments.toml, or {manual} {_ROOT_HELP}.")


def _signature(files: list[Path], extra: dict) -> str | None:
    """Identity of the source files (name, size, mtime_ns); None if one is missing."""
    parts = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            return None
        parts.append([f.name, st.st_size, st.st_mtime_ns])
    return json.dumps({"v": _CACHE_VERSION, "files": parts, **extra}, sort_keys=True)


_CACHE_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def _read_cache(path: Path, signature: str | None, name: str) -> Dataset | None:
    if not USE_CACHE or signature is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["signature"]) != signature:
                return None
            arrays = {k: z[k] for k in _CACHE_KEYS}
        ds = Dataset(name, arrays["x_train"], arrays["y_train"], arrays["x_test"],
                     arrays["y_test"], [str(c) for c in arrays["classes"]])
        _validate(ds, path)
        return ds
    except Exception:  # noqa: BLE001 - a damaged or foreign cache is ignored and rebuilt
        return None


def _write_cache(path: Path, signature: str | None, ds: Dataset) -> None:
    if not USE_CACHE or signature is None:
        return
    try:
        atomic_write(path, lambda f: np.savez(
            f, signature=np.array(signature), x_train=ds.x_train, y_train=ds.y_train,
            x_test=ds.x_test, y_test=ds.y_test, classes=np.array(ds.classes)))
    except OSError:
        pass  # read-only data directory, full disk...: the cache is only an optimisation


def _validate(ds: Dataset, where: Path) -> None:
    """Shapes, dtypes and label range, or DataError naming `where`."""
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise DataError(f"{where}: {split} images have shape {x.shape} and dtype {x.dtype}; "
                            "expected uint8 (N, 32, 32, 3). The file is damaged or not the "
                            f"{ds.name} format: delete it and fetch it again.")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where}: {split} has {len(x)} images but labels of shape {y.shape}. "
                            "The file is damaged: delete it and fetch it again.")
        if len(y) and (y.min() < 0 or y.max() >= len(ds.classes)):
            raise DataError(f"{where}: {split} labels range {int(y.min())}..{int(y.max())}; "
                            f"expected 0..{len(ds.classes) - 1}. The file is damaged: delete it "
                            "and fetch it again.")


def _load_cached(name: str, root: Path, cache: Path, files: list[Path], extra: dict,
                 download: bool, fetch, check, read) -> Dataset:
    """Dataset `name` from its `cache` while the source `files` (and `extra`) are unchanged;
    else fetch(root) when `download`, check(root) (missing files), read(root), validated against
    the cache's folder, and cached."""
    extra = {"dataset": name, **extra}
    cached = _read_cache(cache, _signature(files, extra), name)
    if cached is not None:
        return cached
    if download:
        fetch(root)
    check(root)
    ds = read(root)
    _validate(ds, cache.parent)
    _write_cache(cache, _signature(files, extra), ds)
    return ds


def _missing(files: list[Path]) -> list[Path]:
    return [f for f in files if not f.is_file()]


def _download_failed(name: str, where: Path, exc: BaseException, manual: str) -> DataError:
    return DataError(f"downloading {name} into {_abs(where)} failed: {exc}. Without internet "
                     f"access, {manual} {_ROOT_HELP}.")


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_MANUAL = ("download cifar-10-python.tar.gz (the python version) from "
                 "https://www.cs.toronto.edu/~kriz/cifar.html and unpack it into {root} so that "
                 "{root}/cifar-10-batches-py/ holds the batches")


def _cifar_tables():
    from torchvision.datasets import CIFAR10

    checks = [(n, md5) for n, md5 in CIFAR10.train_list + CIFAR10.test_list]
    checks.append((CIFAR10.meta["filename"], CIFAR10.meta["md5"]))
    return CIFAR10, checks


def _cifar_download(root: Path) -> None:
    import torchvision.datasets.utils as tvu

    CIFAR10, checks = _cifar_tables()
    folder = root / CIFAR10.base_folder
    if all(tvu.check_integrity(str(folder / n), md5) for n, md5 in checks):
        return
    manual = _CIFAR_MANUAL.format(root=_abs(root))
    try:
        tvu.download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                         md5=CIFAR10.tgz_md5)
    except Exception as e:  # network, checksum of the archive, extraction
        raise _download_failed("cifar10", root, e, manual) from e


def _cifar_damaged(folder: Path, checks, exc: BaseException) -> DataError:
    """Name the file that makes torchvision fail: checksum first, then decoding."""
    import torchvision.datasets.utils as tvu

    fix = ("Delete it and run `ibtui data fetch cifar10` (or set `download = true` in "
           "experiments.toml), or replace it with the file from cifar-10-python.tar.gz.")
    bad = [n for n, md5 in checks if not tvu.check_integrity(str(folder / n), md5)]
    if bad:
        names = ", ".join(str(_abs(folder / n)) for n in bad)
        if len(bad) > 1:
            fix = fix.replace("Delete it", "Delete them").replace("replace it with the file",
                                                                  "replace them with the files")
        return DataError(f"CIFAR-10 file(s) damaged or incomplete (md5 checksum differs from "
                         f"the published one): {names}. {fix}")
    for n, _ in checks:
        path = folder / n
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            if n == checks[-1][0]:
                ok = isinstance(entry, dict) and "label_names" in entry
            else:
                data = np.asarray(entry["data"])
                ok = (data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
                      and len(entry["labels"]) == len(data))
        except Exception as e:  # noqa: BLE001 - any decoding failure names the file
            return DataError(f"CIFAR-10 file {_abs(path)} cannot be read ({type(e).__name__}: "
                             f"{e}). {fix}")
        if not ok:
            return DataError(f"CIFAR-10 file {_abs(path)} does not hold a batch in the expected "
                             f"layout (uint8 data of shape (n, 3072), n labels). {fix}")
    return DataError(f"CIFAR-10 in {_abs(folder)} cannot be read ({type(exc).__name__}: {exc}). "
                     f"{fix}")


def check_cifar10_files(root: Path) -> None:
    """DataError naming the missing CIFAR-10 files and how to get them (registered in
    ibtui.data.datasets; the loader and spec validation both call it)."""
    root = Path(root)
    folder = root / _CIFAR_DIR
    missing = _missing([folder / n for n in _CIFAR_FILES])
    if missing:
        raise DataError(
            f"CIFAR-10 files are missing in {_abs(folder)}: "
            f"{', '.join(f.name for f in missing)}. Expected cifar-10-batches-py/data_batch_1..5, "
            f"test_batch and batches.meta under the data root {_abs(root)}. "
            + _how_to_fetch("cifar10", _CIFAR_MANUAL.format(root=_abs(root))))


def load_cifar10(root: Path, download: bool) -> Dataset:
    """Registered as `cifar10` in ibtui.data.datasets."""
    root = Path(root)
    folder = root / _CIFAR_DIR
    return _load_cached("cifar10", root, folder / _CIFAR_CACHE, [folder / n for n in _CIFAR_FILES],
                        {}, download, _cifar_download, check_cifar10_files, _read_cifar10)


def _read_cifar10(root: Path) -> Dataset:
    folder = root / _CIFAR_DIR
    CIFAR10, checks = _cifar_tables()
    try:
        train = CIFAR10(str(root), train=True, download=False)
        test = CIFAR10(str(root), train=False, download=False)
    except Exception as e:  # torchvision: RuntimeError (checksum), unpickling, reshape errors
        raise _cifar_damaged(folder, checks, e) from e
    ds = Dataset("cifar10", np.ascontiguousarray(train.data, dtype=np.uint8),
                 np.asarray(train.targets, dtype=np.int64),
                 np.ascontiguousarray(test.data, dtype=np.uint8),
                 np.asarray(test.targets, dtype=np.int64), [str(c) for c in train.classes])
    if len(ds.classes) != 10:
        raise DataError(f"{_abs(folder / checks[-1][0])} names {len(ds.classes)} classes; "
                        "CIFAR-10 has 10. Delete it and fetch the dataset again.")
    return ds


# --------------------------------------------------------------------------- SVHN

_SVHN_MANUAL = ("download train_32x32.mat and test_32x32.mat (format 2, cropped digits) from "
                "http://ufldl.stanford.edu/housenumbers/ into {root}")


def first_per_class(y: np.ndarray, per_class: int) -> np.ndarray:
    """Indices (in file order) of the first `per_class` samples of every label."""
    y = np.asarray(y)
    keep = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        keep[np.flatnonzero(y == c)[:per_class]] = True
    return np.flatnonzero(keep)


def _svhn_tables():
    from torchvision.datasets import SVHN

    return SVHN, {s: SVHN.split_list[s] for s in ("train", "test")}  # split -> [url, file, md5]


def _svhn_download(root: Path) -> None:
    import torchvision.datasets.utils as tvu

    _, tables = _svhn_tables()
    manual = _SVHN_MANUAL.format(root=_abs(root))
    for url, filename, md5 in tables.values():
        try:
            tvu.download_url(url, str(root), filename, md5)  # skips a file that checks out
        except Exception as e:
            raise _download_failed("svhn", root, e, manual) from e


def _svhn_split(SVHN, root: Path, split: str, filename: str, md5: str):
    import torchvision.datasets.utils as tvu

    path = root / filename
    fix = ("Delete it and run `ibtui data fetch svhn` (or set `download = true` in "
           "experiments.toml), or replace it with the file from "
           "http://ufldl.stanford.edu/housenumbers/.")
    try:
        d = SVHN(str(root), split=split, download=False)
    except Exception as e:  # RuntimeError (checksum), scipy read errors, missing X / y
        if not tvu.check_integrity(str(path), md5):
            raise DataError(f"SVHN file {_abs(path)} is damaged or incomplete (md5 checksum "
                            f"differs from the published one). {fix}") from e
        raise DataError(f"SVHN file {_abs(path)} cannot be read ({type(e).__name__}: {e}). "
                        f"{fix}") from e
    x = np.asarray(d.data)  # torchvision: (N, 3, 32, 32) from the file's X (32, 32, 3, N)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, 32, 32):
        raise DataError(f"SVHN file {_abs(path)}: X has layout {x.shape[1:]} / {x.dtype} after "
                        f"loading; expected uint8 (32, 32, 3, N). {fix}")
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.asarray(d.labels, np.int64).ravel()


def check_svhn_files(root: Path) -> None:
    """DataError naming the missing SVHN files and how to get them (registered in
    ibtui.data.datasets; the loader and spec validation both call it)."""
    root = Path(root)
    missing = _missing([root / _SVHN_FILES[s] for s in ("train", "test")])
    if missing:
        raise DataError(
            f"SVHN files are missing in {_abs(root)}: {', '.join(f.name for f in missing)}. "
            "Expected train_32x32.mat and test_32x32.mat directly in the data root. "
            + _how_to_fetch("svhn", _SVHN_MANUAL.format(root=_abs(root))))


def load_svhn(root: Path, download: bool) -> Dataset:
    """Registered as `svhn` in ibtui.data.datasets."""
    root = Path(root)
    per_class = int(SVHN_TRAIN_PER_CLASS)

    def read(root: Path) -> Dataset:
        SVHN, tables = _svhn_tables()
        x_tr, y_tr = _svhn_split(SVHN, root, "train", tables["train"][1], tables["train"][2])
        x_te, y_te = _svhn_split(SVHN, root, "test", tables["test"][1], tables["test"][2])
        keep = first_per_class(y_tr, per_class)
        return Dataset("svhn", np.ascontiguousarray(x_tr[keep]), y_tr[keep], x_te, y_te,
                       [str(i) for i in range(10)])

    return _load_cached("svhn", root, root / _SVHN_CACHE,
                        [root / _SVHN_FILES[s] for s in ("train", "test")],
                        {"per_class": per_class}, download, _svhn_download, check_svhn_files, read)


# --------------------------------------------------------------------------- fetch

_FETCH_DIR = {"cifar10": lambda root: root / _CIFAR_DIR, "svhn": lambda root: root}


def fetch_dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """Download (if needed) and verify dataset `name` under the data root; return its directory.

    Files already present and matching their published checksums are not downloaded again.
    The load that follows the download verifies the files and writes the decoded-array cache.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    info = DATASETS[name]
    if not info.needs_files:
        raise DataError(f"dataset {name!r} is embedded in ibtui ({info.description}); "
                        "there is nothing to fetch.")
    base = data_root(root)
    info.loader(base, True)
    return _abs(_FETCH_DIR.get(name, lambda r: r)(base))
