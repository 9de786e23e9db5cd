"""Exactly once: a run is trained by one worker, whoever launched it and whoever died.

The double launch is forced deterministically with two fault-injection holds: the scheduler
parks right after it launched a worker and published it (`scheduler-launched`), and the worker
parks before its first status write (`worker-start`), so status.json still says `queued` while
the first scheduler is SIGKILLed and a second one, waiting on the lock, takes over."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ibtui_cmd, quick_spec, wait_until

from ibtui.runs import claim
from ibtui.runs.resources import plan_resources
from ibtui.runs.scheduler import INFO, Scheduler, create_runs, set_queued
from ibtui.runs.store import REPEATED, atomic_write_json, load_run, read_json
from ibtui.spec import load_spec


def spec_file(tmp_path, name):
    p = tmp_path / f"{name}.toml"
    p.write_text(quick_spec(name))
    return p


def env(**extra):
    out = {k: v for k, v in os.environ.items()
           if k not in ("IBTUI_PAUSE_AT", "IBTUI_THREADS", claim.FD_ENV)}
    out.update(OMP_NUM_THREADS="1", COLUMNS="200", **extra)
    return out


def trained_once(run):
    """What says how many workers trained a run: its worker.log and its logs' keys."""
    log = (run.path / "worker.log").read_text()
    epochs = [m["epoch"] for m in run.metrics()]
    mi = [(m["epoch"], m["term"], m["subset"], m["method"]) for m in run.mi()]
    return log.count(" starting:"), epochs, len(mi) - len(set(mi))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_of_a_killed_scheduler_is_not_launched_again(tmp_path):
    """Scheduler A launches run R and is SIGKILLed while R's worker has not yet written a
    status; `ibtui run` B, waiting on A's lock, takes over. B must not launch R again: R is
    trained once (one worker start, epochs [1], no MI value twice), and B's own run after it."""
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    a = subprocess.Popen([sys.executable, "-m", "ibtui.runs.scheduler", str(runs), "--jobs", "1",
                          "--threads", "1", "--gpus", ""],
                         env=env(IBTUI_PAUSE_AT="scheduler-launched,worker-start"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = None
    try:
        wait_until(lambda: (runs / ".paused-scheduler-launched").exists()
                   and (r / "paused-worker-start").exists(), timeout=300, what="A launched R's worker")
        assert [w["run"] for w in read_json(runs / INFO)[0]["workers"]] == [r.name]
        assert load_run(r).state == "queued"  # the window: nothing says R is taken but its claim
        b = subprocess.Popen(ibtui_cmd() + ["run", str(spec_file(tmp_path, "b")), "--runs-dir",
                                            str(runs), "--jobs", "1", "--threads", "1",
                                            "--gpus", ""],
                             env=env(IBTUI_PAUSE_AT="worker-start"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: len([p for p in runs.iterdir() if not p.name.startswith(".")]) == 2,
                   timeout=300, what="B's run created (B waits on A's lock)")
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        wait_until(lambda: (read_json(runs / INFO)[0] or {}).get("pid") == b.pid,
                   timeout=300, what="B took the queue over")
        time.sleep(2.0)  # B schedules a few ticks with R still queued and its worker parked
        # let every parked worker go (a second worker of R, if B started one, too)
        deadline = time.monotonic() + 600
        while b.poll() is None and time.monotonic() < deadline:
            for marker in runs.glob("*/paused-worker-start"):
                marker.unlink(missing_ok=True)
            time.sleep(0.2)
        out, err = b.communicate(timeout=60)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert b.returncode == 0, out + err
    run = load_run(r)
    assert run.state == "done"
    assert trained_once(run) == (1, [1], 0), (r / "worker.log").read_text()
    assert not any(REPEATED in d for d in run.damaged)
    other = next(load_run(p) for p in runs.iterdir() if p.name.startswith("b-"))
    assert other.state == "done" and trained_once(other) == (1, [1], 0)


def test_worker_leaves_a_run_another_worker_holds(tmp_path):
    """A worker started for a claimed run (a second launcher, a second Slurm task) leaves at once,
    touching nothing, with the exit status that says it did not start."""
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    before = (r / "status.json").read_bytes()
    held = claim.try_claim(r, "test")
    assert held is not None
    try:
        assert claim.claimed(r)
        p = subprocess.run([sys.executable, "-m", "ibtui.worker", str(r)], env=env(),
                           capture_output=True, text=True, timeout=120)
    finally:
        os.close(held)
    assert p.returncode == claim.NOT_STARTED, p.stdout + p.stderr
    assert "not started: another live worker holds it" in p.stdout
    assert (r / "status.json").read_bytes() == before
    assert not claim.claimed(r)  # the claim died with its holder


def test_worker_leaves_a_run_that_is_no_longer_queued(tmp_path):
    """A late worker (its run finished or was cancelled meanwhile) does not train it again."""
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    status = read_json(r / "status.json")[0]
    atomic_write_json(r / "status.json", dict(status, state="cancelled", error="cancelled by user"))
    p = subprocess.run([sys.executable, "-m", "ibtui.worker", str(r)], env=env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == claim.NOT_STARTED, p.stdout + p.stderr
    assert "the run is cancelled, not queued" in p.stdout
    assert load_run(r).state == "cancelled"


def test_scheduler_never_launches_a_claimed_run_and_counts_it_busy(tmp_path, monkeypatch):
    """A run whose worker is starting (claimed, still `queued`) is neither launched nor marked
    interrupted by another scheduler, and it takes a slot; resume refuses it."""
    runs = tmp_path / "runs"
    first, second = create_runs(load_spec(spec_file(tmp_path, "a")) * 2, runs)
    held = claim.try_claim(first, "test")
    try:
        s = Scheduler(runs, plan_resources(jobs=1, gpus="", threads=1))
        assert s.queued() == [second]
        assert s.foreign_workers() == 1
        s.step()
        assert s.workers == {}  # the one slot is the starting worker's
        monkeypatch.setattr(claim, "released", lambda path, wait_s=10.0: not claim.claimed(path))
        with pytest.raises(Exception, match="a live worker still holds it"):
            set_queued(first)
        s.stop()  # marks the never-started runs interrupted: not the claimed one
        assert load_run(first).state == "queued" and load_run(second).state == "interrupted"
    finally:
        os.close(held)


def test_scheduler_claims_before_it_starts_the_worker(tmp_path, monkeypatch):
    """The claim is taken before the worker process exists and handed to it."""
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    seen = {}

    class Proc:
        pid = 12345

        def __init__(self, cmd, **kw):
            seen["claimed"] = claim.claimed(r)
            seen["fd"] = kw["env"].get(claim.FD_ENV)
            seen["pass_fds"] = kw.get("pass_fds")

        def poll(self):
            return None

    monkeypatch.setattr("ibtui.runs.scheduler.subprocess.Popen", Proc)
    s = Scheduler(runs, plan_resources(jobs=1, gpus="", threads=1))
    assert s.launch(r)
    assert seen["claimed"] and seen["pass_fds"] == (int(seen["fd"]),)
    assert not claim.claimed(r)  # the scheduler's own copy is closed: the worker holds it


def test_readers_mark_a_run_trained_twice_damaged(tmp_path):
    """Epochs or MI values written twice (two workers at once) make a `done` run damaged, in
    Run.damaged and in `ibtui ls`, instead of a clean done."""
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    status = read_json(r / "status.json")[0]
    atomic_write_json(r / "status.json", dict(status, state="done", ended=time.time()))
    atomic_write_json(r / "summary.json", {"score": 0.5})
    metrics = [{"epoch": e, "test_acc": 0.5} for e in (1, 1, 2, 2)]
    mi = [{"epoch": 1, "term": "xt", "subset": s, "method": "noise-aware", "value": 1.0}
          for s in ("0", "1", "0", "1")]
    (r / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (r / "mi.jsonl").write_text("".join(json.dumps(m) + "\n" for m in mi))
    run = load_run(r)
    run.metrics()
    run.mi()
    assert any("metrics.jsonl: 2 of 2 epochs written more than once" in d for d in run.damaged)
    assert any("mi.jsonl: 2 of 2 MI values written more than once" in d for d in run.damaged)
    p = subprocess.run(ibtui_cmd() + ["ls", "--runs-dir", str(runs), "--format", "json"],
                       env=env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (row,) = json.loads(p.stdout)["runs"]
    assert row["state"] == "damaged" and any(REPEATED in d for d in row["damaged"])
    from ibtui.runs.store import RunIndex
    from ibtui.tui.model import row_from_run

    (listed,) = RunIndex(runs, persist=False).runs(logs=True)  # as the app reads its rows
    assert row_from_run(listed).state == "damaged"


def test_crash_message_names_the_runs_dir(tmp_path, monkeypatch):
    """The stored resume command works from any directory: it carries --runs-dir."""
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)

    class Killed:
        pid = 12345

        def __init__(self, cmd, **kw):
            pass

        def poll(self):
            return -signal.SIGKILL

    monkeypatch.setattr("ibtui.runs.scheduler.subprocess.Popen", Killed)
    monkeypatch.chdir(tmp_path)
    s = Scheduler(Path("runs"), plan_resources(jobs=1, gpus="", threads=1))  # relative
    assert s.launch(runs / r.name)
    s.reap()
    run = load_run(r)
    assert run.state == "crashed"
    assert "killed by SIGKILL" in run.status["error"]
    assert f"`ibtui resume --runs-dir {runs} {r.name}`" in run.status["error"]


def test_stalled_heartbeat_is_shown(tmp_path):
    """A live worker that stopped beating (SIGSTOP, a hung filesystem): `ibtui ls` and the app's
    runs list say `running, no heartbeat for 45 s`, not a plain running."""
    from ibtui.runs.store import process_start_time
    from ibtui.tui.model import COLUMNS, row_from_run

    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    now = time.time()
    status = read_json(r / "status.json")[0]
    atomic_write_json(r / "status.json", dict(  # this process stands in for the live worker
        status, state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
        host=socket.gethostname(), heartbeat=now - 45, phase="training", epoch=1, epochs=1))

    def ls(*extra: str) -> tuple[str, range]:
        """`ibtui ls` output and the heartbeat ages it may show (45 s plus its own run time,
        which a busy machine stretches)."""
        t0 = time.time()
        p = subprocess.run(ibtui_cmd() + ["ls", "--runs-dir", str(runs), *extra], env=env(),
                           capture_output=True, text=True, timeout=120)
        return p.stdout, range(45 + int(t0 - now), 45 + int(time.time() - now) + 2)

    out, ages = ls()
    age = re.search(r"running, no heartbeat for (\d+) s", out)
    assert age and int(age.group(1)) in ages, out
    out, ages = ls("--format", "json")
    (row,) = json.loads(out)["runs"]
    assert row["state"] == "running" and int(row["no_heartbeat_s"]) in ages
    cell = COLUMNS["state"].render(row_from_run(load_run(r)), now).plain
    assert cell == "● running, no heartbeat for 45 s"
    assert COLUMNS["state"].render(row_from_run(load_run(r)), now - 40).plain == "● running"


def test_app_header_says_queued_runs_have_no_scheduler_and_the_keys(tmp_path):
    from ibtui.tui.model import row_from_run
    from ibtui.tui.poller import Snapshot
    from ibtui.tui.screens.runs import scheduler_text

    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    rows = [row_from_run(load_run(r))]
    text = scheduler_text(Snapshot(rows=rows, scheduler=None, now=time.time())).plain
    assert text == "no scheduler for 1 queued: press w then s to start one"
    assert scheduler_text(Snapshot(rows=[], scheduler=None, now=time.time())).plain == \
        "no scheduler"


def test_resume_waits_for_a_worker_going_away(tmp_path):
    """A killed job's worker can hold the claim a moment after the run was marked crashed:
    resume waits for it (briefly) instead of refusing, and refuses a worker that stays."""
    import threading

    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    status = read_json(r / "status.json")[0]
    atomic_write_json(r / "status.json", dict(status, state="crashed", error="job cancelled"))
    held = claim.try_claim(r, "test")
    assert not claim.released(r, wait_s=0.3)
    threading.Timer(0.5, os.close, (held,)).start()
    set_queued(r)  # waited for the claim to go
    assert load_run(r).state == "queued"


def test_queued_runs_on_a_full_disk_are_marked(tmp_path, monkeypatch):
    """While the runs directory's disk is full nothing is started, and `ibtui ls` says why the
    queued runs wait (the scheduler publishes it too)."""
    from typer.testing import CliRunner

    from ibtui.cli import app

    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec_file(tmp_path, "a")), runs)
    monkeypatch.setattr("ibtui.runs.scheduler.disk_free", lambda path: 4096)
    s = Scheduler(runs, plan_resources(jobs=1, gpus="", threads=1))
    s.step()
    assert s.workers == {} and load_run(r).state == "queued"
    assert "waiting for disk space: 4 KiB free" in read_json(runs / INFO)[0]["waiting"]
    out = CliRunner().invoke(app, ["ls", "--runs-dir", str(runs), "--format", "json"],
                             env={"IBTUI_RUNS_DIR": None})
    (warning,) = json.loads(out.stdout)["warnings"]
    assert warning.startswith("1 queued run: waiting for disk space: 4 KiB free in ")
