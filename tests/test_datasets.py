"""CIFAR-10 and SVHN loaders on tiny files written in the real on-disk formats.

The loaders go through torchvision (`CIFAR10(...)`, `SVHN(...)`), whose integrity check compares
every file's md5 with the published checksum on the dataset class. Tiny test files cannot match
those, so the `tables` fixture replaces the class tables' checksums with the md5 of the test
files (monkeypatch, restored after each test); everything else (torchvision's readers and
checks, our wrapping, validation, capping and caching) is the code path used on real files.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from ibtui.data import torchvision_sets as tvs
from ibtui.data.datasets import DATASETS, load_dataset
from ibtui.errors import DataError

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


# --------------------------------------------------------------------- writers (real formats)


class _Py2Pickler(pickle._Pickler):
    """Writes `bytes` as Python 2 `str` (BINSTRING opcodes), like the cPickle files of CIFAR-10:
    read with encoding="latin1" (torchvision) the keys come back as str, with encoding="bytes"
    as b"data", b"labels"."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_pickle(path, obj) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar(root, n_per_batch=6, seed=0):
    """Batches: b"data" uint8 (n, 3072) rows = R plane, G plane, B plane, each 32x32 row-major."""
    rng = np.random.default_rng(seed)
    folder = root / CIFAR_DIR
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in CIFAR_TRAIN + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n_per_batch)]
        _py2_pickle(folder / name, {b"batch_label": name.encode(), b"labels": labels,
                                    b"data": data,
                                    b"filenames": [b"img%d.png" % i for i in range(n_per_batch)]})
        batches[name] = (data, labels)
    _py2_pickle(folder / "batches.meta", {b"num_cases_per_batch": n_per_batch,
                                          b"label_names": [c.encode() for c in CIFAR_NAMES],
                                          b"num_vis": 3072})
    return batches


def write_svhn_mat(path, X, y) -> None:
    scipy.io.savemat(str(path), {"X": X, "y": y})


def svhn_arrays(labels, seed=0):
    """X (32, 32, 3, n) uint8, y (n, 1) uint8 with 10 meaning digit 0, like the .mat files."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    X = rng.integers(0, 256, size=(32, 32, 3, len(labels)), dtype=np.uint8)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    return X, y


@pytest.fixture
def tables(monkeypatch):
    """Point torchvision's checksum tables at the test files; call after writing them."""
    from torchvision.datasets import CIFAR10, SVHN

    def cifar(root):
        folder = root / CIFAR_DIR
        monkeypatch.setattr(CIFAR10, "train_list", [[n, _md5(folder / n)] for n in CIFAR_TRAIN])
        monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(folder / "test_batch")]])
        monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta,
                                              "md5": _md5(folder / "batches.meta")})

    def svhn(root):
        new = dict(SVHN.split_list)
        for split in ("train", "test"):
            url, fn, _ = new[split]
            new[split] = [url, fn, _md5(root / fn)]
        monkeypatch.setattr(SVHN, "split_list", new)

    class T:
        pass

    t = T()
    t.cifar, t.svhn = cifar, svhn
    return t


# --------------------------------------------------------------------- CIFAR-10


def test_registry_entries():
    for name in ("cifar10", "svhn"):
        assert DATASETS[name].needs_files and DATASETS[name].num_classes == 10


def test_file_names_agree_with_torchvision():
    from torchvision.datasets import CIFAR10, SVHN

    assert CIFAR10.base_folder == tvs._CIFAR_DIR
    assert [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [
        CIFAR10.meta["filename"]] == tvs._CIFAR_FILES
    assert all(tvs._SVHN_FILES[s] == SVHN.split_list[s][1] for s in ("train", "test"))


def test_cache_hit_does_not_import_torchvision(tmp_path, tables):
    write_cifar(tmp_path, n_per_batch=1)
    tables.cifar(tmp_path)
    load_dataset("cifar10", tmp_path)  # writes the cache
    code = ("import sys; from ibtui.data.datasets import load_dataset; "
            f"ds = load_dataset('cifar10', {str(tmp_path)!r}); "
            "assert ds.x_train.shape == (5, 32, 32, 3); "
            "assert 'torchvision' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cifar_file_format_is_python2_pickle(tmp_path):
    write_cifar(tmp_path, n_per_batch=2)
    with open(tmp_path / CIFAR_DIR / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert set(entry) >= {b"data", b"labels"} and entry[b"data"].shape == (2, 3072)


def test_cifar_shapes_pixels_labels(tmp_path, tables):
    batches = write_cifar(tmp_path)
    tables.cifar(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (30, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (6, 32, 32, 3) and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.classes == CIFAR_NAMES and ds.num_classes == 10
    # labels in batch order
    exp_y = [v for n in CIFAR_TRAIN for v in batches[n][1]]
    assert ds.y_train.tolist() == exp_y and ds.y_test.tolist() == batches["test_batch"][1]
    # pixel (h, w) of channel c is byte c*1024 + h*32 + w of the row
    for name, offset, x in (("data_batch_3", 12, ds.x_train), ("test_batch", 0, ds.x_test)):
        data = batches[name][0]
        for i, h, w, c in [(0, 0, 0, 0), (1, 0, 31, 1), (2, 31, 0, 2), (3, 5, 17, 1),
                           (5, 31, 31, 2)]:
            assert x[offset + i, h, w, c] == data[i, c * 1024 + h * 32 + w]


def test_cifar_known_pixel(tmp_path, tables):
    write_cifar(tmp_path, n_per_batch=2)
    folder = tmp_path / CIFAR_DIR
    with open(folder / "data_batch_2", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    entry[b"data"][:] = 0
    entry[b"data"][1, 2 * 1024 + 7 * 32 + 20] = 201  # blue, row 7, column 20 of image 1
    _py2_pickle(folder / "data_batch_2", entry)
    tables.cifar(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    img = ds.x_train[2 + 1]
    assert img[7, 20, 2] == 201 and int(img.sum()) == 201


def test_cifar_missing_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / CIFAR_DIR) in msg
    for part in ("data_batch_1", "data_batch_1..5", "test_batch", "ibtui data fetch cifar10",
                 "download = true", "IBTUI_DATA"):
        assert part in msg


def test_cifar_one_file_missing(tmp_path, tables):
    write_cifar(tmp_path, n_per_batch=2)
    tables.cifar(tmp_path)
    (tmp_path / CIFAR_DIR / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"missing.*: data_batch_4\. Expected"):
        load_dataset("cifar10", tmp_path)


def test_cifar_checksum_mismatch_names_file(tmp_path, tables):
    write_cifar(tmp_path, n_per_batch=2)
    tables.cifar(tmp_path)
    p = tmp_path / CIFAR_DIR / "data_batch_3"
    p.write_bytes(p.read_bytes()[:-100])  # truncated download
    with pytest.raises(DataError, match="md5") as e:
        load_dataset("cifar10", tmp_path)
    assert str(p) in str(e.value) and "data_batch_1" not in str(e.value)


@pytest.mark.parametrize("damage", ["garbage", "wrong_shape"])
def test_cifar_undecodable_names_file(tmp_path, tables, damage):
    write_cifar(tmp_path, n_per_batch=2)
    p = tmp_path / CIFAR_DIR / "data_batch_2"
    if damage == "garbage":
        p.write_bytes(b"not a pickle at all" * 10)
    else:
        _py2_pickle(p, {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]})
    tables.cifar(tmp_path)  # checksums match the damaged file: the decoder must catch it
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path)
    assert str(p) in str(e.value)


def test_cifar_cache_and_invalidation(tmp_path, tables):
    write_cifar(tmp_path, n_per_batch=3)
    tables.cifar(tmp_path)
    first = load_dataset("cifar10", tmp_path)
    cache = tmp_path / CIFAR_DIR / "ibtui-cache.npz"
    assert cache.is_file()
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]
    # same size and mtime: the cache answers without reading the batches
    p = tmp_path / CIFAR_DIR / "data_batch_5"
    st = p.stat()
    raw = bytearray(p.read_bytes())
    raw[-50] ^= 0xFF
    p.write_bytes(bytes(raw))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = load_dataset("cifar10", tmp_path)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert second.classes == first.classes
    # a new mtime invalidates the cache: the damaged file is now read and rejected
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="data_batch_5"):
        load_dataset("cifar10", tmp_path)


def test_data_root_from_env(tmp_path, tables, monkeypatch):
    write_cifar(tmp_path, n_per_batch=1)
    tables.cifar(tmp_path)
    monkeypatch.setenv("IBTUI_DATA", str(tmp_path))
    assert load_dataset("cifar10").x_train.shape == (5, 32, 32, 3)


# --------------------------------------------------------------------- SVHN


def test_svhn_shapes_pixels_labels_cap(tmp_path, tables, monkeypatch):
    monkeypatch.setattr(tvs, "SVHN_TRAIN_PER_CLASS", 3)
    train_labels = [1, 0, 1, 2, 1, 1, 0, 2, 1, 3, 0, 0, 9, 0]
    Xtr, ytr = svhn_arrays(train_labels, seed=1)
    Xtr[4, 9, 1, 6] = 77  # row 4, column 9, green, image 6
    Xte, yte = svhn_arrays([0, 5, 9], seed=2)
    write_svhn_mat(tmp_path / "train_32x32.mat", Xtr, ytr)
    write_svhn_mat(tmp_path / "test_32x32.mat", Xte, yte)
    tables.svhn(tmp_path)
    ds = load_dataset("svhn", tmp_path)
    # first 3 of every class, file order kept: drops the 4th/5th "1" (idx 5, 8), 4th "0" (11),
    # 5th "0" (13)
    keep = [0, 1, 2, 3, 4, 6, 7, 9, 10, 12]
    assert ds.y_train.tolist() == [train_labels[i] for i in keep]  # 10 -> 0 by torchvision
    assert ds.y_test.tolist() == [0, 5, 9]
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (3, 32, 32, 3) and ds.y_train.dtype == np.int64
    assert ds.x_train[keep.index(6), 4, 9, 1] == 77
    for j, i in enumerate(keep):
        np.testing.assert_array_equal(ds.x_train[j], Xtr[..., i])  # X[h, w, c, n] -> x[n, h, w, c]
    np.testing.assert_array_equal(ds.x_test[2], Xte[..., 2])
    assert ds.classes == [str(i) for i in range(10)]


def test_svhn_default_cap_is_4000():
    assert tvs.SVHN_TRAIN_PER_CLASS == 4000
    y = np.repeat(np.arange(10), 4100)
    np.random.default_rng(0).shuffle(y)
    idx = tvs.first_per_class(y, 4000)
    assert len(idx) == 40000 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [4000] * 10


def test_svhn_cap_changes_invalidate_cache(tmp_path, tables, monkeypatch):
    Xtr, ytr = svhn_arrays([1, 1, 1, 2, 2])
    write_svhn_mat(tmp_path / "train_32x32.mat", Xtr, ytr)
    write_svhn_mat(tmp_path / "test_32x32.mat", *svhn_arrays([3]))
    tables.svhn(tmp_path)
    monkeypatch.setattr(tvs, "SVHN_TRAIN_PER_CLASS", 1)
    assert load_dataset("svhn", tmp_path).y_train.tolist() == [1, 2]
    assert (tmp_path / "svhn-ibtui-cache.npz").is_file()
    monkeypatch.setattr(tvs, "SVHN_TRAIN_PER_CLASS", 2)
    assert load_dataset("svhn", tmp_path).y_train.tolist() == [1, 1, 2, 2]


def test_svhn_missing_files(tmp_path):
    write_svhn_mat(tmp_path / "train_32x32.mat", *svhn_arrays([1]))
    with pytest.raises(DataError) as e:
        load_dataset("svhn", tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "test_32x32.mat" in msg and "train_32x32.mat" in msg
    assert "ibtui data fetch svhn" in msg and "download = true" in msg


def test_svhn_damaged_files(tmp_path, tables):
    write_svhn_mat(tmp_path / "train_32x32.mat", *svhn_arrays([1, 2]))
    write_svhn_mat(tmp_path / "test_32x32.mat", *svhn_arrays([3]))
    tables.svhn(tmp_path)
    p = tmp_path / "test_32x32.mat"
    p.write_bytes(p.read_bytes()[:200])  # checksum no longer matches
    with pytest.raises(DataError, match="md5") as e:
        load_dataset("svhn", tmp_path)
    assert str(p) in str(e.value)
    p.write_bytes(b"garbage" * 40)
    tables.svhn(tmp_path)  # checksum matches garbage: scipy's reader must fail
    with pytest.raises(DataError, match="cannot be read") as e:
        load_dataset("svhn", tmp_path)
    assert str(p) in str(e.value)
    X = np.zeros((32, 32, 2), np.uint8)  # an image stack without the channel axis
    write_svhn_mat(p, X, np.ones((2, 1), np.uint8))
    tables.svhn(tmp_path)
    with pytest.raises(DataError) as e:
        load_dataset("svhn", tmp_path)
    assert str(p) in str(e.value)


# --------------------------------------------------------------------- fetch


def test_fetch_embedded_and_unknown():
    with pytest.raises(DataError, match="embedded"):
        tvs.fetch_dataset("digits")
    with pytest.raises(DataError, match="allowed: .*cifar10"):
        tvs.fetch_dataset("imagenet")


def test_fetch_present_files_no_download(tmp_path, tables, monkeypatch):
    import torchvision.datasets.utils as tvu

    write_cifar(tmp_path, n_per_batch=1)
    tables.cifar(tmp_path)

    def boom(*a, **k):
        raise AssertionError("must not download verified files")

    monkeypatch.setattr(tvu, "download_and_extract_archive", boom)
    assert tvs.fetch_dataset("cifar10", tmp_path) == tmp_path / CIFAR_DIR


@pytest.mark.parametrize("name", ["cifar10", "svhn"])
def test_fetch_failure_is_data_error(tmp_path, monkeypatch, name):
    import urllib.error

    import torchvision.datasets.utils as tvu

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(DataError, match="downloading .* failed.*no network") as e:
        tvs.fetch_dataset(name, tmp_path)
    assert str(tmp_path) in str(e.value)


# --------------------------------------------------------------------- registry


def _imports(module_file) -> set[str]:
    """Every module a file imports, at any level (function-level imports included)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(module_file.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_registry_and_torchvision_sets_do_not_import_each_other():
    from pathlib import Path

    import ibtui.data.datasets as datasets_mod

    here = Path(datasets_mod.__file__).parent
    assert not any("torchvision_sets" in n for n in _imports(here / "datasets.py"))
    assert "ibtui.data.datasets" in _imports(here / "torchvision_sets.py")
    # importing the registry alone lists every dataset without the torchvision readers
    code = ("import sys; from ibtui.data.datasets import DATASETS; "
            "assert sorted(DATASETS) == ['cifar10', 'digits', 'svhn'], sorted(DATASETS); "
            "assert 'ibtui.data.torchvision_sets' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_registered_train_class_counts_match_the_loaded_data():
    ds = load_dataset("digits")
    assert tuple(np.bincount(ds.y_train).tolist()) == DATASETS["digits"].train_class_counts
    assert DATASETS["svhn"].train_class_counts == (tvs.SVHN_TRAIN_PER_CLASS,) * 10
    assert DATASETS["cifar10"].train_size == 50_000


def test_digits_is_scikit_learns_table_and_fixed_stratified_split():
    """The stored split is the train_test_split call it names, and the images are
    load_digits' (upscaled); loading imports no scikit-learn (workers start faster)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from ibtui.data.datasets import upscale_to_rgb32

    d = load_digits()
    tr, te = train_test_split(np.arange(len(d.target)), test_size=0.25, stratify=d.target,
                              random_state=0)
    tr.sort()
    te.sort()
    ds = load_dataset("digits")
    x = upscale_to_rgb32(d.images / 16.0)
    np.testing.assert_array_equal(ds.x_train, x[tr])
    np.testing.assert_array_equal(ds.x_test, x[te])
    np.testing.assert_array_equal(ds.y_train, d.target[tr])
    np.testing.assert_array_equal(ds.y_test, d.target[te])
    code = ("import sys; from ibtui.data.datasets import load_dataset; load_dataset('digits'); "
            "assert 'sklearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("name", ["cifar10", "svhn"])
def test_check_files_raises_what_the_loader_raises(tmp_path, name):
    with pytest.raises(DataError) as loaded:
        load_dataset(name, tmp_path)
    with pytest.raises(DataError) as checked:
        DATASETS[name].check_files(tmp_path)
    assert str(checked.value) == str(loaded.value)
    DATASETS[name].check_files(tmp_path, download=True)  # a download would fetch them
    DATASETS["digits"].check_files(tmp_path)  # embedded: nothing to check


def test_check_files_passes_when_present(tmp_path, tables):
    write_cifar(tmp_path, n_per_batch=1)
    DATASETS["cifar10"].check_files(tmp_path)
