"""Fault injection with real processes: SIGKILL a worker at named points, resume, compare with an
uninterrupted run; Ctrl-C. Concurrent schedulers and their hand-over are in test_launch.py,
forced deterministically through the scheduler-release pause point. (IBTUI_PAUSE_AT makes the worker stop at
a named point so the kill is deterministic.)"""

import os
import signal
import subprocess
import time

import pytest
from conftest import ibtui_cmd, tiny_spec

from ibtui.runs.store import list_runs, load_run

pytestmark = pytest.mark.slow


def start(args, env, **kw):
    return subprocess.Popen(ibtui_cmd() + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def wait_for(path, timeout=300):
    t = time.time()
    while not path.exists():
        if time.time() - t > timeout:
            raise TimeoutError(path)
        time.sleep(0.2)


def results(run):
    metrics = [{k: v for k, v in m.items() if not k.endswith("seconds") and k != "time"} for m in run.metrics()]
    mi = sorted((m["epoch"], m["term"], m["subset"], m["method"], m["value"]) for m in run.mi())
    return metrics, mi, run.summary["score"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    spec = tiny_spec(tmp / "e.toml", epochs=2, mi_epochs="[1, 2]")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = start(["run", str(spec), "--runs-dir", str(tmp / "runs")], env)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err
    (run,) = list_runs(tmp / "runs")
    assert run.state == "done"
    return spec, results(run)


@pytest.mark.parametrize("point", ["poisoning", "mid-epoch-2", "mi-2"])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, reference, point):
    spec, expected = reference
    runs = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", IBTUI_PAUSE_AT=point)
    p = start(["run", str(spec), "--runs-dir", str(runs)], env)
    wait_for(runs.parent / "runs")
    t = time.time()
    while not list(runs.glob(f"*/paused-{point}")):
        assert p.poll() is None, p.communicate()
        assert time.time() - t < 600
        time.sleep(0.2)
    marker = next(runs.glob(f"*/paused-{point}"))
    os.kill(int(marker.read_text()), signal.SIGKILL)
    p.communicate(timeout=60)
    run = load_run(marker.parent)
    assert run.state == "crashed"
    assert "SIGKILL" in run.status["error"]
    marker.unlink()
    env.pop("IBTUI_PAUSE_AT")
    r = subprocess.run(ibtui_cmd() + ["resume", run.id, "--runs-dir", str(runs)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    run = load_run(run.path)
    assert run.state == "done", run.log_tail()
    metrics, mi, score = results(run)
    exp_metrics, exp_mi, exp_score = expected
    # bit-identical on CPU with a fixed seed and thread count
    assert metrics == exp_metrics
    assert mi == exp_mi
    assert score == exp_score


def test_sigint_interrupts_and_resume_finishes(tmp_path):
    runs = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", IBTUI_PAUSE_AT="after-epoch-1")
    spec = tiny_spec(tmp_path / "e.toml", epochs=2, mi_epochs="[2]")
    p = start(["run", str(spec), "--runs-dir", str(runs)], env)
    t = time.time()
    while not list(runs.glob("*/paused-after-epoch-1")):
        assert time.time() - t < 600 and p.poll() is None
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)  # first Ctrl-C: SIGTERM to workers, stop at a safe point
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)  # the worker is parked in the pause hook: second Ctrl-C kills
    p.communicate(timeout=60)
    (run,) = list_runs(runs)
    assert run.state == "interrupted"
    assert [m["epoch"] for m in run.metrics()] == [1]  # the finished epoch survived
    (run.path / "paused-after-epoch-1").unlink()
    env.pop("IBTUI_PAUSE_AT")
    r = subprocess.run(ibtui_cmd() + ["resume", run.id, "--runs-dir", str(runs)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    run = load_run(run.path)
    assert run.state == "done" and [m["epoch"] for m in run.metrics()] == [1, 2]
