"""Run creation: all or nothing, and two `ibtui run` of one spec at once never collide."""

import multiprocessing as mp

import pytest

from ibtui.errors import RunStoreError
from ibtui.runs.scheduler import create_runs
from ibtui.spec import load_spec_text


def specs(n = 1):
    return load_spec_text({"experiment": [{"name": "c", "seed": list(range(n))}]}, "f")


def _create(runs_dir, barrier):
    barrier.wait()
    for _ in range(10):
        create_runs(specs(), runs_dir)


def test_two_processes_creating_the_same_runs_get_distinct_directories(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_create, args=(runs, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names = sorted(p.name for p in runs.iterdir())
    assert len(names) == 20 and not [n for n in names if n.startswith(".creating")]
    assert all((runs / n / "status.json").exists() and (runs / n / "spec.toml").exists()
               for n in names)


def test_a_failure_while_staging_leaves_nothing(tmp_path, monkeypatch):
    import ibtui.runs.scheduler as sched

    runs = tmp_path / "runs"
    calls = {"n": 0}
    real = sched.atomic_write_json

    def failing(path, obj):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(path, obj)

    monkeypatch.setattr(sched, "atomic_write_json", failing)
    with pytest.raises(RunStoreError, match="nothing was created"):
        create_runs(specs(3), runs)
    assert list(runs.iterdir()) == []
