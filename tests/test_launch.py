"""Every launch path with its defaults, real scheduler and real worker processes.

The worker crash of the 2-core box (oneDNN heap corruption at 2 threads, bench/onednn_crash.py)
was hidden because tests and `make run` ran workers with one thread. These tests use the
defaults a user gets (no --jobs, no OMP_NUM_THREADS) and a configuration that used to crash:
2 threads, widths 4 and 8, and a last batch of 3 images (1,347 digits training images, batch 64).
"""

import os
import signal
import subprocess
import sys

import pytest
from helpers import ibtui_cmd, wait_until

from ibtui.runs.resources import plan_resources
from ibtui.runs.scheduler import Scheduler, create_runs, ensure_scheduler
from ibtui.runs.store import list_runs, load_run
from ibtui.spec import load_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SPEC = """
[[experiment]]
name = "{name}"
dataset = "digits"
width = {width}
epochs = {epochs}
mi_epochs = [{epochs}]
batch_size = 64
lr = 0.05
attack = "badnets"
poison_rate = 0.1
observe_classes = [1]
threads = {threads}
mi_method = "noise-aware"
mi_options = {{ k = 2, max_samples = 32 }}
"""


def spec_file(tmp_path, name="t", width="8", epochs=1, threads=0):
    p = tmp_path / f"{name}.toml"
    p.write_text(SPEC.format(name=name, width=width, epochs=epochs, threads=threads))
    return p


def user_env(**extra):
    """The environment of a user who set nothing: no thread variables."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "IBTUI_THREADS", "IBTUI_PAUSE_AT")}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def cli(args, env, timeout=800):
    return subprocess.run(ibtui_cmd() + args, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_default_run_with_two_threads_finishes(tmp_path):
    """`ibtui run FILE` with no options: default jobs, workers with 2 threads each."""
    spec = spec_file(tmp_path, width="[4, 8]", threads=2)
    runs = tmp_path / "runs"
    r = cli(["run", str(spec), "--runs-dir", str(runs)], user_env())
    assert r.returncode == 0, r.stdout + r.stderr
    done = list_runs(runs)
    assert len(done) == 2
    for run in done:
        assert run.state == "done", run.log_tail()
        assert run.summary["runtime"]["threads"] == 2
        assert run.summary["runtime"]["mkl_cbwr"] == "AUTO"
        assert run.status["runtime"]["torch"]


def test_default_threads_are_planned_and_recorded(tmp_path):
    """`ibtui run` plans the threads; `--threads` overrides the plan. The two commands run at
    once, each on its own runs directory (one scheduler each: each applies its own plan)."""
    spec = spec_file(tmp_path)
    planned, forced = tmp_path / "runs", tmp_path / "runs-forced"
    procs = [subprocess.Popen(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs)] + extra,
                              env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for runs, extra in ((planned, []), (forced, ["--threads", "1"]))]
    for p in procs:
        out, err = p.communicate(timeout=800)
        assert p.returncode == 0, out + err
    (run,) = list_runs(planned)
    assert run.state == "done", run.log_tail()
    assert run.summary["runtime"]["threads"] == plan_resources().threads
    (second,) = list_runs(forced)
    assert second.state == "done", second.log_tail()
    assert second.summary["runtime"]["threads"] == 1


def test_failed_run_exits_nonzero_naming_its_log(tmp_path):
    spec = spec_file(tmp_path)
    runs = tmp_path / "runs"
    r = cli(["run", str(spec), "--runs-dir", str(runs)], user_env(IBTUI_INJECT_NAN="loss-1"))
    assert r.returncode == 1, r.stdout + r.stderr
    (run,) = list_runs(runs)
    assert run.state == "failed"
    assert f"{run.id}: failed" in r.stderr and str(run.path / "worker.log") in r.stderr


def test_resume_without_options_finishes(tmp_path):
    spec = spec_file(tmp_path, epochs=2)
    runs = tmp_path / "runs"
    p = subprocess.Popen(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs)],
                         env=user_env(IBTUI_PAUSE_AT="after-epoch-1"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: list(runs.glob("*/paused-after-epoch-1")), what="epoch 1")
    marker = next(runs.glob("*/paused-after-epoch-1"))
    os.kill(int(marker.read_text()), signal.SIGKILL)
    p.wait(timeout=60)
    assert p.returncode == 1  # the run crashed
    marker.unlink()
    run = load_run(marker.parent)
    assert run.state == "crashed"
    r = cli(["resume", run.id, "--runs-dir", str(runs)], user_env())
    assert r.returncode == 0, r.stdout + r.stderr
    run = load_run(run.path)
    assert run.state == "done" and [m["epoch"] for m in run.metrics()] == [1, 2]
    assert run.summary["runtime"]["threads"] == plan_resources().threads


def test_runs_queued_while_the_scheduler_releases_its_lock_still_run(tmp_path):
    """The hand-over gap: scheduler A has decided there is nothing left and has not yet released
    its lock when the app queues runs and finds a scheduler 'alive'. A must run them."""
    runs = tmp_path / "runs"
    runs.mkdir()
    a = subprocess.Popen([sys.executable, "-m", "ibtui.runs.scheduler", str(runs)],
                         env=user_env(IBTUI_PAUSE_AT="scheduler-release"))
    marker = runs / ".paused-scheduler-release"
    wait_until(marker.exists, what="scheduler A in the gap")
    paths = create_runs(load_spec(spec_file(tmp_path)), runs)
    assert ensure_scheduler(runs) is None  # A holds the lock: nobody new is started
    marker.unlink()
    wait_until(lambda: load_run(paths[0]).state not in ("queued", "running"), what="the run")
    a.wait(timeout=60)
    assert load_run(paths[0]).state == "done", load_run(paths[0]).log_tail()


def test_second_run_command_takes_over_when_the_owner_finishes(tmp_path):
    """`ibtui run` B finds A's lock and watches; A finishes without seeing B's runs (it is
    parked in the gap); B must take the lock over and run them, not wait forever."""
    runs = tmp_path / "runs"
    env = user_env()
    pa = subprocess.Popen(ibtui_cmd() + ["run", str(spec_file(tmp_path, "a")), "--runs-dir", str(runs)],
                          env=user_env(IBTUI_PAUSE_AT="scheduler-release"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = runs / ".paused-scheduler-release"
    wait_until(marker.exists, what="A done with its run")
    pb = subprocess.Popen(ibtui_cmd() + ["run", str(spec_file(tmp_path, "b")), "--runs-dir", str(runs)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: any(r.spec.get("name") == "b" for r in list_runs(runs)), what="B's run")
    marker.unlink()
    outb, errb = pb.communicate(timeout=800)
    outa, erra = pa.communicate(timeout=800)
    assert pa.returncode == 0 and pb.returncode == 0, erra + errb
    done = {r.spec["name"]: r for r in list_runs(runs)}
    assert set(done) == {"a", "b"} and all(r.state == "done" for r in done.values())
    for r in done.values():
        assert (r.path / "worker.log").read_text().count("starting") == 1


def test_scheduler_counts_workers_it_did_not_start(tmp_path):
    """A worker left running by a scheduler that went away occupies a slot of the next one."""
    runs = tmp_path / "runs"
    first, second = create_runs(load_spec(spec_file(tmp_path, epochs=2)) * 2, runs)
    os.environ["IBTUI_PAUSE_AT"] = "poisoning"  # running (status written), parked before training
    try:
        a = Scheduler(runs, plan_resources(jobs=1, gpus="", threads=1), only={first.name})
        a.step()
    finally:
        del os.environ["IBTUI_PAUSE_AT"]
    wait_until(lambda: (first / "paused-poisoning").exists(), what="the first worker")
    assert load_run(first).state == "running"
    b = Scheduler(runs, plan_resources(jobs=1, gpus="", threads=1))
    b.step()
    assert b.workers == {} and load_run(second).state == "queued"
    a.workers[first.name].proc.kill()
    a.workers[first.name].proc.wait()
    b.step()
    assert set(b.workers) == {second.name}
    b.stop(hard=True)


def test_hangup_hands_the_queue_to_a_detached_scheduler(tmp_path):
    """A dropped SSH connection (SIGHUP) must not strand queued runs: they still run."""
    spec = spec_file(tmp_path, width="[4, 8]")
    runs = tmp_path / "runs"
    p = subprocess.Popen(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs), "--jobs", "1"],
                         env=user_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: any(r.state == "running" for r in list_runs(runs)), what="a running worker")
    p.send_signal(signal.SIGHUP)
    p.wait(timeout=60)
    wait_until(lambda: len(list_runs(runs)) == 2 and all(r.state == "done" for r in list_runs(runs)),
               timeout=800, what="both runs done after the hangup")


def test_detach_returns_control_and_the_runs_finish(tmp_path):
    spec = spec_file(tmp_path)
    runs = tmp_path / "runs"
    r = cli(["run", str(spec), "--runs-dir", str(runs), "--detach"], user_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scheduler started" in r.stdout
    (run,) = list_runs(runs)
    assert run.state == "done", run.log_tail()
