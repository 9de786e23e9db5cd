"""Bad input never produces anything but the documented error (fuzzing the spec loader and the
run-store readers), and writes fail without leaving half-written files."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibtui.errors import SpecError
from ibtui.runs.store import atomic_write_bytes, list_runs, load_run, read_json, read_jsonl
from ibtui.spec import load_spec, load_spec_text

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

toml_scalars = st.one_of(st.integers(-5, 200), st.floats(allow_nan=True), st.text(max_size=8),
                         st.booleans(), st.lists(st.integers(-2, 20), max_size=3))
keys = st.sampled_from(["name", "dataset", "arch", "width", "attack", "poison_rate", "target",
                        "epochs", "lr", "mi_epochs", "mi_method", "observe_classes", "seed",
                        "attack_options", "mi_options", "bogus", "noise_xt", "stealth_epochs"])


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_give_spec_error(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("f") / "e.toml"
    p.write_bytes(data)
    try:
        load_spec(p)
    except SpecError as e:
        assert str(p) in str(e)


@FUZZ
@given(st.dictionaries(keys, toml_scalars, max_size=6))
def test_random_experiments_give_spec_error_or_runs(exp):
    try:
        runs = load_spec_text({"experiment": [exp]}, "fuzz.toml")
    except SpecError as e:
        assert str(e).startswith("fuzz.toml")
    else:
        assert runs and all(r.run_id for r in runs)


@FUZZ
@given(st.binary(max_size=200), st.binary(max_size=200), st.binary(max_size=200))
def test_random_run_files_never_break_readers(tmp_path_factory, status, metrics, spec):
    d = tmp_path_factory.mktemp("runs")
    run = d / "r"
    run.mkdir()
    (run / "status.json").write_bytes(status)
    (run / "metrics.jsonl").write_bytes(metrics)
    (run / "spec.toml").write_bytes(spec)
    (run / "summary.json").write_bytes(status)
    (r,) = list_runs(d)
    assert isinstance(r.metrics(), list) and isinstance(r.state, str)
    read_json(run / "summary.json")


def test_atomic_write_failure_keeps_previous_file(tmp_path):
    p = tmp_path / "checkpoint.pt"
    atomic_write_bytes(p, b"good")

    class Boom:
        def __len__(self):
            return 1

    with pytest.raises(TypeError):
        atomic_write_bytes(p, Boom())  # the write itself fails half-way
    assert p.read_bytes() == b"good"
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_full_disk_keeps_previous_checkpoint(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        p = mnt / "checkpoint.pt"
        atomic_write_bytes(p, b"v1" * 1000)
        with pytest.raises(OSError) as e:
            atomic_write_bytes(p, b"x" * 200_000)
        assert e.value.errno == 28  # ENOSPC
        assert p.read_bytes() == b"v1" * 1000
        assert [f.name for f in mnt.iterdir()] == ["checkpoint.pt"]
    finally:
        subprocess.run(["umount", str(mnt)])


def test_malformed_toml_names_line_and_column(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text('[[experiment]]\nname = "a"\nepochs = = 3\n')
    with pytest.raises(SpecError, match=r"e\.toml: malformed TOML: .*line 3, column"):
        load_spec(p)


def test_unwritable_runs_dir_exits_2(tmp_path):
    from helpers import ibtui_cmd, tiny_spec

    if os.geteuid() == 0:
        target = "/proc/ibtui-runs"  # not writable even for root
    else:
        target = str(tmp_path / "ro")
        os.mkdir(target, 0o500)
    spec = tiny_spec(tmp_path / "e.toml")
    r = subprocess.run(ibtui_cmd() + ["run", str(spec), "--runs-dir", target],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "runs directory is not writable" in r.stderr and "--runs-dir" in r.stderr


def test_missing_dataset_files_error(tmp_path):
    from ibtui.data.datasets import load_dataset
    from ibtui.errors import DataError

    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path / "none")
    assert str(tmp_path / "none") in str(e.value) and "ibtui data fetch cifar10" in str(e.value)


def test_incompatible_checkpoint_fails_run_with_reason(tmp_path):
    """A checkpoint from another version: the run is failed with the reason; readers keep working."""
    from helpers import tiny_spec

    from ibtui.runs.scheduler import create_runs
    from ibtui.spec import load_spec as ls

    (path,) = create_runs(ls(tiny_spec(tmp_path / "e.toml")), tmp_path / "runs")
    import torch

    torch.save({"version": 999}, path / "checkpoint.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "ibtui.worker", str(path)], env=env,
                   capture_output=True, timeout=600)
    run = load_run(path)
    assert run.state == "failed"
    assert "incompatible version" in run.status["error"]


@pytest.mark.slow
def test_nan_loss_fails_the_run_with_epoch_and_quantity(tmp_path):
    from helpers import tiny_spec

    from ibtui.runs.scheduler import create_runs
    from ibtui.spec import load_spec as ls

    (path,) = create_runs(ls(tiny_spec(tmp_path / "e.toml")), tmp_path / "runs")
    env = dict(os.environ, OMP_NUM_THREADS="1", IBTUI_INJECT_NAN="loss-1")
    subprocess.run([sys.executable, "-m", "ibtui.worker", str(path)], env=env,
                   capture_output=True, timeout=600)
    run = load_run(path)
    assert run.state == "failed"
    assert "epoch 1" in run.status["error"] and "loss" in run.status["error"]
    assert read_jsonl(path / "metrics.jsonl") == []
    assert json.loads((path / "status.json").read_text())["ended"]
