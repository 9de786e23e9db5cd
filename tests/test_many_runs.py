"""Reading many runs: the runs-directory index is a cache that changes nothing but speed."""

from __future__ import annotations

import json
import os

from fixtures_runs import make_fixture_runs

from ibtui.runs import store
from ibtui.runs.store import (
    INDEX_NAME,
    RunIndex,
    light_spec,
    light_status,
    light_summary,
    list_runs,
    list_runs_cached,
)


def _view(runs):
    """What a listing shows: the index keeps summaries without their bulky tables."""
    return [(r.id, r.state, light_status(r.status), r.spec if r.light else light_spec(r.spec),
             r.summary if r.light else light_summary(r.summary), sorted(r.damaged))
            for r in runs]


def _age(runs_dir, seconds=60):
    """Push every file's mtime into the past, so the index keeps them (not 'racy')."""
    for root, _, files in os.walk(runs_dir):
        for f in files:
            p = os.path.join(root, f)
            st = os.stat(p)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_cached_listing_equals_a_full_read(tmp_path):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    plain = list_runs(runs)
    for r in plain:
        r.metrics(), r.mi()
    first = list_runs_cached(runs, logs=True)
    assert (runs / INDEX_NAME).is_file()
    again = list_runs_cached(runs, logs=True)  # from the index: nothing re-read
    assert _view(plain) == _view(first) == _view(again)
    assert INDEX_NAME not in {r.id for r in again}


def test_unchanged_runs_are_not_read_again(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    list_runs_cached(runs)
    loads = []
    real = store.load_run
    monkeypatch.setattr(store, "load_run", lambda p: loads.append(p.name) or real(p))
    list_runs_cached(runs)
    assert loads == []
    some = sorted(p for p in runs.iterdir() if (p / "summary.json").is_file())[0]
    (some / "summary.json").write_text("{broken")  # changed in place: size differs
    (new,) = [r for r in list_runs_cached(runs) if r.id == some.name]
    assert loads == [some.name] and any("summary.json" in d for d in new.damaged)


def test_index_is_only_a_cache(tmp_path):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    want = _view(list_runs(runs))
    list_runs_cached(runs)
    (runs / INDEX_NAME).unlink()  # deleting it loses nothing
    assert _view(list_runs_cached(runs)) == want
    (runs / INDEX_NAME).write_text('{"version": 4, "runs": {"x": 3, "y": {"sig": 1}}}')
    assert _view(list_runs_cached(runs)) == want  # damaged: rebuilt
    (runs / INDEX_NAME).write_text("\x00garbage")
    assert _view(list_runs_cached(runs)) == want
    idx = json.loads((runs / INDEX_NAME).read_text())
    assert set(idx["runs"]) == {r[0] for r in want}


def test_removed_and_added_runs(tmp_path):
    import shutil

    runs = make_fixture_runs(tmp_path)
    _age(runs)
    ids = [r.id for r in list_runs_cached(runs)]
    shutil.copytree(runs / ids[0], runs / "zz-copy")
    shutil.rmtree(runs / ids[1])
    now = {r.id for r in list_runs_cached(runs)}
    assert "zz-copy" in now and ids[1] not in now


def test_a_cached_running_run_is_still_checked_for_liveness(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "spec.toml").write_text('[experiment]\nname = "x"\n')
    # a running run whose pid is alive (this process) but recorded with another start time
    store.atomic_write_json(d / "status.json", {"state": "running", "pid": os.getpid(),
                                                "pid_start": store.process_start_time(os.getpid()),
                                                "created": 1.0})
    _age(tmp_path)
    idx = RunIndex(tmp_path, persist=False)
    (r,) = idx.runs()
    assert r.state == "running"
    real = store.pid_alive
    try:
        store.pid_alive = lambda pid: False  # the worker died; no file changed
        (r,) = idx.runs()
        assert r.state == "crashed"
    finally:
        store.pid_alive = real


def test_read_only_runs_dir_still_lists(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store, "atomic_write_text", refuse)
    assert _view(list_runs_cached(runs)) == _view(list_runs(runs))
