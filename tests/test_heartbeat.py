"""The worker's per-step machinery: status.json at most about once a second, no fsync for
liveness, durable phase changes, and the stop checks still answered."""

import os
import time

import pytest
from helpers import tiny_spec

from ibtui.experiment import Experiment
from ibtui.experiment.control import Stop
from ibtui.runs import store
from ibtui.runs.scheduler import create_runs
from ibtui.spec import load_spec


@pytest.fixture
def exp(tmp_path, monkeypatch):
    (run_dir,) = create_runs(load_spec(tiny_spec(tmp_path / "e.toml")), tmp_path / "runs")
    e = Experiment(run_dir)
    e.w.set_status(state="running", phase="training", epoch=1)
    writes: list[bool] = []  # fsync flag of every status.json write
    real = store.atomic_write_bytes

    def counting(path, data, fsync=True):
        if os.path.basename(path) == "status.json":
            writes.append(fsync)
        return real(path, data, fsync=fsync)

    monkeypatch.setattr(store, "atomic_write_bytes", counting)
    e.writes = writes
    return e


def test_steps_write_status_at_most_once_a_second_without_fsync(exp, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("ibtui.experiment.liveness.time.monotonic", lambda: clock[0])
    hook = exp.step_hook(1)
    for b in range(1, 201):  # 200 steps in 2 simulated seconds
        hook(b, 200)
        clock[0] += 0.01
    exp.status.close()  # waits for the writer thread's write in progress
    assert 1 <= len(exp.writes) <= 2 and not any(exp.writes)  # coalesced, never fsynced
    assert 0 < store.read_json(exp.dir / "status.json")[0]["progress"] <= 1.0


def test_the_writer_thread_writes_what_the_steps_left(exp):
    hook = exp.step_hook(1)
    hook(1, 4)  # the first step asks for a write
    exp.status.close()
    assert exp.writes == [False]
    assert store.read_json(exp.dir / "status.json")[0]["progress"] == 0.25


def test_phase_changes_are_written_at_once_and_fsynced(exp):
    exp.beat(phase="mi", progress=0.0)  # a phase change: now, in this thread, durable
    exp.beat(force=True, test_acc=0.9)  # forced without a phase change: now, not fsynced
    assert exp.writes == [True, False]
    status = store.read_json(exp.dir / "status.json")[0]
    assert (status["phase"], status["progress"], status["test_acc"]) == ("mi", 0.0, 0.9)
    exp.status.close()


def test_cancel_and_signals_are_still_seen(exp):
    exp.beat(progress=0.1)
    (exp.dir / "cancel").write_text("")
    with pytest.raises(Stop, match="cancelled"):  # seen with the next write
        exp.beat(force=True)
    (exp.dir / "cancel").unlink()
    exp.beat(force=True)
    exp.should_stop = lambda: "stopped by SIGTERM"
    with pytest.raises(Stop, match="SIGTERM"):  # a signal: at the very next step
        exp.beat(progress=0.3)
    exp.status.close()


def test_nothing_is_written_after_the_run_ends(exp):
    exp.beat(progress=0.5)
    exp.status.close()
    n = len(exp.writes)
    exp.status._last -= 10  # a late step (none happens in a worker), long after the last write
    exp.beat(progress=0.6)
    time.sleep(0.05)
    assert len(exp.writes) == n


def test_atomic_write_without_fsync_replaces_atomically(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(store.os, "fsync", lambda fd: synced.append(fd))
    store.atomic_write_json(tmp_path / "s.json", {"a": 1}, fsync=False)
    store.atomic_write_json(tmp_path / "s.json", {"a": 2})
    assert store.read_json(tmp_path / "s.json")[0] == {"a": 2}
    assert len(synced) == 2  # the file, then its directory (the new name)
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left
