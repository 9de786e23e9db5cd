"""Run store: atomic files, torn lines skipped, damaged runs reported, never raised."""

import json
import os

from ibtui.runs.store import (
    RunWriter,
    append_jsonl,
    atomic_write_json,
    effective_state,
    list_runs,
    load_run,
    read_json,
    read_jsonl,
)


def test_jsonl_round_trip_and_torn_tail(tmp_path):
    p = tmp_path / "metrics.jsonl"
    for e in range(1, 4):
        append_jsonl(p, {"epoch": e, "loss": 1.0 / e, "nan": float("nan")})
    with open(p, "a") as f:
        f.write('{"epoch": 4, "lo')  # writer killed mid-line
    recs = read_jsonl(p)
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    assert recs[0]["nan"] is None  # NaN stored as null: every reader parses the line


def test_garbage_lines_skipped(tmp_path):
    p = tmp_path / "mi.jsonl"
    p.write_bytes(b'{"a": 1}\n\xff\xfe garbage\n[1,2]\n{"a": 2}\n')
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}]


def test_atomic_json_and_damaged_status(tmp_path):
    atomic_write_json(tmp_path / "s.json", {"x": 1})
    assert read_json(tmp_path / "s.json") == ({"x": 1}, None)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    (tmp_path / "e.json").write_text("")
    assert read_json(tmp_path / "e.json")[1] == "e.json empty"
    (tmp_path / "t.json").write_text('{"state": "runn')
    assert "damaged" in read_json(tmp_path / "t.json")[1]


def test_list_runs_reports_damage(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "spec.toml").write_text('[experiment]\nname = "good"\nepochs = 2\n')
    w = RunWriter(good)
    w.set_status(state="done", created=1.0)
    w.log_metrics({"epoch": 1, "test_acc": 0.5})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "status.json").write_text("{trunc")
    (tmp_path / "stray.txt").write_text("not a run")
    runs = {r.id: r for r in list_runs(tmp_path)}
    assert set(runs) == {"good", "bad"}
    assert runs["good"].spec["epochs"] == 2 and runs["good"].metrics()[0]["epoch"] == 1
    assert "summary.json" in " ".join(runs["good"].damaged)  # done but no summary
    assert runs["bad"].state == "damaged" and runs["bad"].damaged


def test_running_with_dead_pid_is_crashed(tmp_path):
    import socket
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    st = {"state": "running", "pid": p.pid, "host": socket.gethostname(), "heartbeat": 0}
    assert effective_state(st) == "crashed"
    st["pid"] = os.getpid()
    assert effective_state(st) == "crashed"  # no start time recorded and no beat for ages
    import time

    st["heartbeat"] = time.time()
    assert effective_state(st) == "running"
    (tmp_path / "r").mkdir()
    atomic_write_json(tmp_path / "r" / "status.json", dict(st, pid=p.pid))
    assert load_run(tmp_path / "r").state == "crashed"
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "running"


def test_running_with_our_pid_and_start_time_is_running_however_old_the_heartbeat():
    import socket

    from ibtui.runs.store import process_start_time

    host = socket.gethostname()
    me = {"state": "running", "pid": os.getpid(), "host": host, "heartbeat": 0,
          "pid_start": process_start_time(os.getpid())}
    assert me["pid_start"] is not None
    assert effective_state(me) == "running"  # proven to be the worker: a slow step is no crash
    assert effective_state(dict(me, pid_start=me["pid_start"] - 3600)) == "crashed"  # pid reused
    legacy = dict(me, pid_start=None)  # start time not recorded: the heartbeat decides
    assert effective_state(legacy) == "crashed"
    import time

    assert effective_state(dict(legacy, heartbeat=time.time())) == "running"


def test_process_start_time_is_when_this_process_started():
    import time

    from ibtui.runs.store import process_start_time

    t = process_start_time(os.getpid())
    assert t is not None and time.time() - 24 * 3600 < t <= time.time()
    assert process_start_time(999_999_999) is None
    assert process_start_time(1) <= t


def test_wrong_types_are_damage_not_errors(tmp_path):
    import socket

    r = tmp_path / "r"
    r.mkdir()
    (r / "spec.toml").write_text('[experiment]\nname = "r"\nepochs = "ten"\nseed = [1]\n')
    atomic_write_json(r / "status.json", {"state": "running", "created": "yesterday", "pid": [1],
                                          "host": socket.gethostname(), "heartbeat": "x"})
    atomic_write_json(r / "summary.json", {"score": "abc", "phases": "x", "asr": 0.5})
    (r / "mi.jsonl").write_text('{"epoch": 1, "term": "xt", "subset": "0", "value": 1.0}\n'
                                '{"epoch": 1, "term": "xt", "subset": "0", "value": 1.0, '
                                '"method": "m"}\n')
    (r / "metrics.jsonl").write_text('{"epoch": "one", "asr": 0.1}\n{"epoch": 2, "asr": "hi"}\n'
                                     '{"epoch": 3, "asr": 0.3}\n')
    run = load_run(r)
    text = "; ".join(run.damaged)
    for frag in ("created", "pid", "heartbeat", "score", "phases", "epochs", "seed"):
        assert frag in text, frag
    assert "created" not in run.status and "pid" not in run.status
    assert run.summary == {"asr": 0.5} and "epochs" not in run.spec
    assert run.state == "crashed"  # running, pid unusable: not a live worker
    assert [m["method"] for m in run.mi()] == ["m"] and "mi.jsonl" in "; ".join(run.damaged)
    assert [m["epoch"] for m in run.metrics()] == [3] and "metrics.jsonl" in "; ".join(run.damaged)
    atomic_write_json(r / "status.json", {"state": 5})
    assert load_run(r).state == "damaged" and "state" in "; ".join(load_run(r).damaged)


def test_unreadable_run_dir_is_listed_as_damaged(tmp_path, monkeypatch):
    import ibtui.runs.store as store

    good = tmp_path / "good"
    good.mkdir()
    atomic_write_json(good / "status.json", {"state": "done"})
    locked = tmp_path / "locked"
    locked.mkdir()
    atomic_write_json(locked / "status.json", {"state": "done"})
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads through chmod 000: make the reads fail as they would
        real_listdir, real_read = store.os.listdir, store._read_bytes

        def listdir(p="."):
            if str(p).startswith(str(locked)):
                raise PermissionError(13, "Permission denied", str(p))
            return real_listdir(p)

        def read(p):
            if str(p).startswith(str(locked)):
                raise PermissionError(13, "Permission denied", str(p))
            return real_read(p)

        monkeypatch.setattr(store.os, "listdir", listdir)
        monkeypatch.setattr(store, "_read_bytes", read)
    try:
        runs = {r.id: r for r in list_runs(tmp_path)}
        assert runs["good"].state == "done"
        assert runs["locked"].state == "damaged" and "ermission denied" in runs["locked"].damaged[0]
        assert runs["locked"].metrics() == [] and runs["locked"].mi() == []
    finally:
        locked.chmod(0o755)


def test_find_run_is_strict(tmp_path):
    import pytest

    from ibtui.errors import RunStoreError
    from ibtui.runs.store import find_run

    runs = tmp_path / "runs"
    for name in ("tiny-a", "tiny-b", "solo"):
        (runs / name).mkdir(parents=True)
        atomic_write_json(runs / name / "status.json", {"state": "done"})
    assert find_run(runs, "solo") == runs / "solo" and find_run(runs, "so") == runs / "solo"
    for key in ("", "tiny*", "../runs/solo", str(runs / "solo"), "solo/", ".", "..", "x" * 256):
        with pytest.raises(RunStoreError):
            find_run(runs, key)
    with pytest.raises(RunStoreError, match="several"):
        find_run(runs, "tiny")
    with pytest.raises(RunStoreError, match="does not exist"):
        find_run(tmp_path / "nope", "solo")
