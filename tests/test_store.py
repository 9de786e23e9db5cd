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
    assert effective_state(st) == "running"
    (tmp_path / "r").mkdir()
    atomic_write_json(tmp_path / "r" / "status.json", dict(st, pid=p.pid))
    assert load_run(tmp_path / "r").state == "crashed"
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "running"
