"""Exactly once under Slurm: two array tasks for one run (a resubmission racing the first job)
train it once; the task that finds the run claimed does nothing and does not fail its job."""

import time

import pytest
from test_slurm import needs_cluster, spec_file, wait_until

from ibtui.runs.scheduler import create_runs
from ibtui.runs.slurm import load_executor, reconcile, sacct_states, submit
from ibtui.runs.store import load_run
from ibtui.spec import load_spec

pytestmark = [pytest.mark.slurm, needs_cluster]


@pytest.mark.timeout(900)
def test_two_tasks_for_one_run_train_it_once(tmp_path, monkeypatch):
    spec = spec_file(tmp_path, name="eo")
    runs = tmp_path / "runs"
    (r,) = create_runs(load_spec(spec), runs, executor="slurm")
    # both tasks start at once (one CPU each); the first to claim the run parks before training
    monkeypatch.setenv("IBTUI_PAUSE_AT", "worker-start")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ids = submit([r, r], load_executor(spec), runs)
    monkeypatch.delenv("IBTUI_PAUSE_AT")
    log = r / "worker.log"
    wait_until(lambda: (r / "paused-worker-start").exists(), 300, "the first task's worker")
    wait_until(lambda: log.exists() and "not started: another live worker holds it"
               in log.read_text(), 300, "the second task to leave")
    (r / "paused-worker-start").unlink()
    wait_until(lambda: load_run(r).state not in ("queued", "running"), 600, "the run")
    run = load_run(r)
    assert run.state == "done", run.log_tail()
    assert log.read_text().count(" starting:") == 1
    assert [m["epoch"] for m in run.metrics()] == [1] and not run.damaged

    def ended():
        states = sacct_states(ids) or {}
        return all(states.get(i) not in (None, "PENDING", "RUNNING") for i in ids)

    wait_until(ended, 120, "both tasks' Slurm records")
    assert set((sacct_states(ids) or {}).values()) == {"COMPLETED"}  # the idle task did not fail
    reconcile(runs)
    time.sleep(0.1)
    assert load_run(r).state == "done"
