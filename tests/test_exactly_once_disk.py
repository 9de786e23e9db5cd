"""A full disk is a failure with a reason, never a loop, never a run trained twice.

The runs directory is a real, small tmpfs (mounted here; skipped where mounting is not allowed),
filled to the last byte while the first of two runs trains, and freed once that run has failed:
  - the running worker fails and says why in status.json (`ibtui ls` shows it);
  - the scheduler (foreground, or `--detach`ed in the background) survives, starts nothing while
    the disk is full, and runs the queued run once space returns;
  - with `--detach`, the follower never starts a second scheduler."""

import errno
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from helpers import ibtui_cmd, quick_spec, wait_until

from ibtui import progress
from ibtui.runs import claim
from ibtui.runs.resources import plan_resources
from ibtui.runs.scheduler import create_runs
from ibtui.runs.store import atomic_write_json, list_runs, load_run, process_start_time, read_json
from ibtui.spec import load_spec


def env():
    out = {k: v for k, v in os.environ.items()
           if k not in ("IBTUI_PAUSE_AT", "IBTUI_THREADS", claim.FD_ENV)}
    out.update(OMP_NUM_THREADS="1", COLUMNS="200")
    return out


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs (room for two tiny runs, and little else)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): the "
                    "full-disk tests need one")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt: Path) -> Path:
    """Take every free byte of the filesystem; the filler file is returned to free it."""
    filler = mnt / f".filler-{uuid.uuid4().hex}"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):  # the last partial pages
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError:
                    break
    return filler


def by_width(runs: Path) -> dict:
    return {r.spec.get("width"): r for r in list_runs(runs)}


def drive_full_disk(tmp_path, mnt: Path, detach: bool):
    """`ibtui run` of two runs (jobs 1) on the small fs, filled while the first one trains and
    freed once it has failed. Returns (process, stdout, stderr, run 1, run 2, seen while full)."""
    spec = tmp_path / "d.toml"
    spec.write_text(quick_spec("d", "[4, 8]"))
    runs = mnt / "runs"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as o, open(err, "w") as e:
        p = subprocess.Popen(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs), "--jobs",
                                            "1", "--threads", "1", "--gpus", ""]
                             + (["--detach"] if detach else []), stdout=o, stderr=e, env=env())
    try:
        wait_until(lambda: runs.exists() and any(r.state == "running" for r in list_runs(runs)),
                   what="the first run running")
        first = next(r.path for r in list_runs(runs) if r.state == "running")
        second = next(r.path for r in list_runs(runs) if r.path != first)
        filler = fill(mnt)
        wait_until(lambda: load_run(first).state not in ("queued", "running"), timeout=300,
                   what="the first run to end on the full disk")
        time.sleep(3.0)  # a few scheduler ticks on the full disk
        seen = {"alive": p.poll() is None, "second": load_run(second).state,
                "claimed": claim.claimed(second)}
        filler.unlink()
        p.wait(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p, out.read_text(), err.read_text(), load_run(first), load_run(second), seen


def check_outcome(first, second, seen):
    # the worker that hit the full disk said so where `ls` reads it
    assert first.state == "failed", (first.status, first.log_tail())
    assert "no space left on device" in first.status["error"]
    assert f"--runs-dir {first.path.parent}" in first.status["error"]
    # nothing was started on the full disk; the queued run ran once space returned, once
    assert seen["second"] == "queued" and not seen["claimed"]
    assert second.state == "done", second.log_tail()
    for r in (first, second):
        assert (r.path / "worker.log").read_text().count(" starting:") == 1
        epochs = [m["epoch"] for m in r.metrics()]
        assert len(epochs) == len(set(epochs)) and not r.damaged


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_full_disk_in_the_foreground(tmp_path, small_fs):
    p, out, err, first, second, seen = drive_full_disk(tmp_path, small_fs, detach=False)
    assert seen["alive"], out + err  # the scheduler survived the full disk
    check_outcome(first, second, seen)
    assert p.returncode == 1, out + err  # a run failed (not 2: no user error, no crash)
    assert first.id in err and "no space left on device" in err
    assert f"resume with `ibtui resume --runs-dir {small_fs / 'runs'} {first.id}`" in err
    ls = subprocess.run(ibtui_cmd() + ["ls", "--runs-dir", str(small_fs / "runs"), "--format",
                                       "json"], env=env(), capture_output=True, text=True)
    rows = {r["run"]: r for r in json.loads(ls.stdout)["runs"]}
    assert "no space left on device" in rows[first.id]["error"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_full_disk_with_detach_starts_no_second_scheduler(tmp_path, small_fs):
    p, out, err, first, second, seen = drive_full_disk(tmp_path, small_fs, detach=True)
    check_outcome(first, second, seen)
    log = (small_fs / "runs" / ".scheduler.log").read_text()
    assert log.count("[scheduler] pid") == 1, log  # never respawned
    assert p.returncode == 1, out + err


def test_worker_outcome_survives_a_full_disk(tmp_path, small_fs):
    """The reserve is given back to write the outcome; without one, it is written in place."""
    from ibtui.worker import RESERVE, reserve_space, write_outcome

    runs = small_fs / "runs"
    (r,) = create_runs(load_spec(_one(tmp_path)), runs)
    reserve_space(r)
    assert (r / RESERVE).stat().st_size > 0
    fillers = [fill(small_fs)]
    try:
        assert not write_outcome(r, state="failed", error="no space left on device writing x")
        assert load_run(r).status["error"] == "no space left on device writing x"
        assert not (r / RESERVE).exists()
        # no reserve left (what it gave back taken too): in place, over the last good status
        fillers.append(fill(small_fs))
        assert not write_outcome(r, state="failed", error="second outcome")
        status, why = read_json(r / "status.json")
        assert why is None and status["state"] == "failed" and status["error"] == "second outcome"
    finally:
        for f in fillers:
            f.unlink()


def _one(tmp_path):
    p = tmp_path / "one.toml"
    p.write_text(quick_spec("d", "4"))
    return p


def test_follower_restarts_a_dead_scheduler_once_per_reason(tmp_path, monkeypatch):
    """A background scheduler that died is started again, but not while a worker of the runs
    directory lives, and not after it died twice for the same reason."""
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(_one(tmp_path)), runs)
    log = runs / ".scheduler.log"
    log.write_text("[scheduler] pid 1: CPU\n")
    started = []

    def fake_start(runs_dir, *a, **k):  # a scheduler that dies of a full disk at once
        started.append(runs_dir)
        with open(log, "a") as f:
            f.write(f"[scheduler] pid {len(started) + 1}: CPU\n"
                    f"[scheduler] stopped: No space left on device: {runs_dir}\n")
        return 99999

    monkeypatch.setattr(progress, "ensure_scheduler", fake_start)
    restarts = progress.Restarts(runs)
    res = plan_resources(jobs=1, gpus="", threads=1)
    # a worker of the dead scheduler still lives: nothing is started
    status = read_json(r / "status.json")[0]
    atomic_write_json(r / "status.json", dict(status, state="running", pid=os.getpid(),
                                              pid_start=process_start_time(os.getpid()),
                                              heartbeat=time.time()))
    assert restarts.start(res) is None and started == []
    atomic_write_json(r / "status.json", status)  # that worker is gone, its run queued
    with open(log, "a") as f:
        f.write(f"[scheduler] stopped: No space left on device: {runs}\n")
    assert restarts.start(res) == 99999 and len(started) == 1
    assert restarts.start(res) is None  # died again for the same reason: given up
    assert restarts.gave_up == f"[scheduler] stopped: No space left on device: {runs}"
    assert restarts.start(res) is None and len(started) == 1


def test_follower_gives_up_on_a_scheduler_dying_the_same_way(tmp_path, monkeypatch):
    """`--detach`'s follower: a background scheduler that keeps dying for one reason is started
    again once, then the follower says why, names the resume command, and fails (exit 1)."""
    import io

    from rich.console import Console

    runs = tmp_path / "runs"
    paths = create_runs(load_spec(_one(tmp_path)), runs)
    log = runs / ".scheduler.log"
    started = []

    def dying(runs_dir, *a, **k):
        started.append(1)
        with open(log, "a") as f:
            f.write(f"[scheduler] pid {len(started)}: CPU\n"
                    "[scheduler] stopped: No space left on device: /x/.scheduler.json\n")
        return 99999

    monkeypatch.setattr(progress, "ensure_scheduler", dying)
    out = io.StringIO()
    with pytest.raises(SystemExit) as e:
        progress.follow(runs, paths, plan_resources(jobs=1, gpus="", threads=1),
                        Console(file=out, width=200), detach=True)
    assert e.value.code == 1
    assert len(started) == 2  # none alive at first; after its death once more; not a third
    text = out.getvalue()
    assert "stopped twice for the same reason: [scheduler] stopped: No space left" in text
    assert f"ibtui resume --detach --runs-dir {runs} {paths[0].name}" in text
