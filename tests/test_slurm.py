"""The Slurm executor against a real cluster (a single-node one will do, docs/operations.md;
.ci/run starts one when it can). Skipped, with the reason, where sbatch does
not work. Settings checks that need no cluster run everywhere."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import helpers
import pytest
from helpers import ibtui_cmd, sync

from ibtui.errors import SpecError
from ibtui.runs.slurm import executor_config, job_id, reconcile
from ibtui.runs.store import list_runs, load_run


def cluster_works() -> str:
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH (these tests need a Slurm cluster; docs/operations.md)"
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed: {e}"
    if r.returncode != 0 or not ({"idle", "mixed", "allocated", "completing"} & set(r.stdout.split())):
        return f"no usable Slurm node (sinfo: {r.stdout.strip() or r.stderr.strip()})"
    r = subprocess.run(["sacct", "-n", "-X", "-S", "now-1minutes"], capture_output=True, timeout=10)
    if r.returncode != 0:
        return "sacct does not work (accounting off): job states cannot be read"
    return ""


REASON = cluster_works()
needs_cluster = pytest.mark.skipif(bool(REASON), reason=REASON or "cluster ok")

SPEC = """
[executor]
kind = "slurm"
partition = "debug"
cpus_per_run = 1
mem_gb = 2
time_min = {time_min}
signal_delay_s = {delay}
{extra}

[[experiment]]
name = "{name}"
dataset = "digits"
width = 8
epochs = {epochs}
mi_epochs = [{epochs}]
batch_size = 128
lr = 0.05
attack = {attack}
poison_rate = 0.1
observe_classes = [1]
mi_options = {{ k = 2, max_samples = 32 }}
"""


def spec_file(tmp_path, name="sl", epochs=1, attack='"badnets"', time_min=10, delay=90, extra=""):
    p = tmp_path / f"{name}.toml"
    p.write_text(SPEC.format(name=name, epochs=epochs, attack=attack, time_min=time_min,
                             delay=delay, extra=extra))
    return p


def cli(args, timeout=900, env=None):
    return subprocess.run(ibtui_cmd() + args, capture_output=True, text=True, timeout=timeout,
                          env=env or dict(os.environ, COLUMNS="200"))


def wait_until(cond, timeout, what):
    """helpers.wait_until, polling every 0.5 s: each look may ask squeue and sacct."""
    helpers.wait_until(cond, timeout, what, every=0.5)


def test_executor_settings_are_checked():
    assert executor_config({"kind": "slurm", "partition": "gpu", "max_parallel": 4}, "f").max_parallel == 4
    for table, text in (({"kind": "k8s"}, "kind: 'k8s' not allowed; allowed: 'local' | 'slurm'"),
                        ({"mem_gb": float("nan")}, "mem_gb: nan is not a finite number; allowed: number >= 0.1"),
                        ({"cpus_per_run": 0}, "cpus_per_run: 0 out of range; allowed: integer >= 1"),
                        ({"time_min": "1h"}, "time_min: expected integer >= 1, got '1h'"),
                        ({"time_min": 60.5}, "time_min: expected integer >= 1, got 60.5"),
                        ({"gpus_per_run": True}, "gpus_per_run: expected integer >= 0, got True"),
                        ({"partitions": "x"}, "partitions: unknown setting; allowed: kind, partition, ")):
        with pytest.raises(SpecError) as e:
            executor_config(table, "f")
        assert str(e.value).startswith(f"f: [executor] {text}")


def test_executor_integral_floats_are_integers():
    """`time_min = 60.0` is 60, as `width = 64.0` is 64 and attack `size = 5.0` is 5."""
    a = executor_config({"time_min": 60.0, "cpus_per_run": 4.0, "signal_delay_s": 120.0}, "f")
    b = executor_config({"time_min": 60, "cpus_per_run": 4, "signal_delay_s": 120}, "f")
    assert a == b and type(a.time_min) is int and a.model_dump() == b.model_dump()
    assert executor_config({"mem_gb": 4}, "f").mem_gb == 4  # an integer is a number


def test_no_sbatch_is_a_clear_error(tmp_path):
    spec = spec_file(tmp_path)
    env = dict(os.environ, PATH=os.path.dirname(shutil.which("python3") or "/usr/bin/python3"))
    r = cli(["run", str(spec), "--runs-dir", str(tmp_path / "runs")], env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "sbatch" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists() or not list_runs(tmp_path / "runs")


pytestmark = [pytest.mark.timeout(900)]


@needs_cluster
@pytest.mark.slurm
def test_unknown_partition_and_rejected_submission_exit_2_and_create_nothing(tmp_path):
    runs = tmp_path / "runs"
    bad = spec_file(tmp_path, "p").read_text().replace('partition = "debug"', 'partition = "nope"')
    (tmp_path / "p.toml").write_text(bad)
    r = cli(["run", str(tmp_path / "p.toml"), "--runs-dir", str(runs)])
    assert r.returncode == 2 and "partition 'nope' does not exist; allowed: debug" in r.stderr
    huge = spec_file(tmp_path, "m").read_text().replace("mem_gb = 2", "mem_gb = 100000")
    (tmp_path / "m.toml").write_text(huge)
    r = cli(["run", str(tmp_path / "m.toml"), "--runs-dir", str(runs)])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Slurm rejected the submission" in r.stderr and "Traceback" not in r.stderr
    assert list_runs(runs) == []


@needs_cluster
@pytest.mark.slurm
@pytest.mark.slow
def test_job_array_runs_to_done(tmp_path):
    runs = tmp_path / "runs"
    r = cli(["run", str(spec_file(tmp_path, attack='["badnets", "blend"]')), "--runs-dir", str(runs)])
    assert r.returncode == 0, r.stdout + r.stderr
    done = list_runs(runs)
    assert len(done) == 2
    arrays = set()
    for run in done:
        assert run.state == "done", run.log_tail()
        st = run.status
        assert st["executor"] == "slurm" and st["slurm"]["partition"] == "debug"
        arrays.add(st["slurm_array_job_id"])
        assert run.summary["score"] is not None and run.summary["runtime"]["threads"] == 1
    assert len(arrays) == 1  # one submission = one job array


@needs_cluster
@pytest.mark.slurm
@pytest.mark.slow
def test_scancel_shows_crashed_then_resume_finishes_without_lost_epochs(tmp_path):
    """The job is killed while its worker is parked after epoch 1 (IBTUI_PAUSE_AT reaches the
    job through sbatch's exported environment): a finished epoch to keep, one left to run."""
    runs = tmp_path / "runs"
    spec = spec_file(tmp_path, epochs=2)
    p = subprocess.Popen(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, IBTUI_PAUSE_AT="after-epoch-1"))
    wait_until(lambda: list(runs.glob("*/paused-after-epoch-1")), 600, "epoch 1 finished")
    (run,) = list_runs(runs)
    assert [m["epoch"] for m in run.metrics()] == [1]
    subprocess.run(["scancel", "--signal=KILL", "--full", load_run(run.path).status["slurm_job_id"]],
                   check=True, timeout=30)
    t0 = time.monotonic()
    wait_until(lambda: (reconcile(runs), load_run(run.path).state)[1] == "crashed", 60,
               "crashed within 60 s")
    assert time.monotonic() - t0 < 60
    assert "Slurm job" in load_run(run.path).status["error"]
    p.wait(timeout=120)
    assert p.returncode == 1
    (run.path / "paused-after-epoch-1").unlink()
    r = cli(["resume", run.id, "--runs-dir", str(runs)])
    assert r.returncode == 0, r.stdout + r.stderr
    run = load_run(run.path)
    assert run.state == "done" and [m["epoch"] for m in run.metrics()] == [1, 2]


def pending_signals(pid: int) -> int:
    """The signal mask pending for `pid` (a stopped process keeps what it handles pending);
    -1 when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return -1
    mask = 0
    for line in text.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            mask |= int(line.split()[1], 16)
    return mask


WARNED = (1 << (signal.SIGUSR2 - 1)) | (1 << (signal.SIGTERM - 1))


@needs_cluster
@pytest.mark.slurm
@pytest.mark.slow
def test_time_limit_requeues_and_resumes(tmp_path):
    """A 1-minute limit with the warning 15 s before it (slurmctld checks limits every 30 s and
    sends the warning at the first check within signal_delay_s + 30 s of the limit: 15-45 s into
    each attempt): submitit checkpoints, Slurm requeues, the next attempt resumes from the last
    finished epoch; no epoch is lost or repeated.

    The run itself is short (3 epochs): once epoch 1 is written the test holds the first worker
    stopped (SIGSTOP) until Slurm's warning (USR2, or submitit's SIGTERM) is pending for it, then
    lets it go on (SIGCONT) to handle it at its next safe point, as a worker that is still
    computing would; the run outlives the warning without a minute of computing. (Slurm holds a
    requeued job for about two minutes, BeginTime; the test lifts the hold to save the wait, and
    gives the requeued job a 10-minute limit: with 1 minute, a loaded machine warned every later
    attempt too while it was still starting, and each further requeue cost a minute.)"""
    runs = tmp_path / "runs"
    spec = spec_file(tmp_path, epochs=3, time_min=1, delay=15)
    p = subprocess.Popen(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    frozen, held_s, thawed = None, 0.0, False
    held_since: dict[str, float] = {}
    try:
        while p.poll() is None:
            assert time.monotonic() - t < 800, "the requeued run did not finish"
            found = list_runs(runs) if runs.is_dir() else []
            st = found[0].status if found else {}
            if st.get("state") == "queued":  # requeued by the checkpoint: lift the hold. Not
                # after: a warning that lands as the last attempt ends requeues a done run too
                held = subprocess.run(["squeue", "-h", "-o", "%i %r"], capture_output=True,
                                      text=True, timeout=10).stdout.split("\n")
                for line in held:
                    if line.endswith("BeginTime"):
                        job = line.split()[0]
                        # not at once: an attempt started while the requeued one's step is still
                        # being torn down was cancelled by Slurm and the job ended FAILED
                        since = held_since.setdefault(job, time.monotonic())
                        if time.monotonic() - since > 10:
                            subprocess.run(["scontrol", "update", f"JobId={job}",
                                            "StartTime=now", "TimeLimit=10"],
                                           capture_output=True, timeout=10)
            else:  # each requeue waits its own 10 s
                held_since.clear()
            if frozen is None and not thawed:
                if found and found[0].metrics() and st.get("state") == "running" and st.get("pid"):
                    try:
                        os.kill(int(st["pid"]), signal.SIGSTOP)
                        frozen, held_s = int(st["pid"]), time.monotonic()
                    except ProcessLookupError:
                        pass
            elif frozen is not None:
                pending = pending_signals(frozen)
                if pending == -1 or pending & WARNED or time.monotonic() - held_s > 150:
                    try:
                        os.kill(frozen, signal.SIGCONT)
                    except ProcessLookupError:
                        pass
                    frozen, thawed = None, True
            time.sleep(0.5)
    finally:
        if frozen is not None:
            try:
                os.kill(frozen, signal.SIGCONT)
            except ProcessLookupError:
                pass
        for found in list_runs(runs) if runs.is_dir() else []:  # leave nothing in the queue
            if job_id(found.path):
                subprocess.run(["scancel", job_id(found.path)], capture_output=True, timeout=30)
        if p.poll() is None:
            p.kill()
    out, errs = p.communicate()
    (run,) = list_runs(runs)
    assert p.returncode == 0, out + errs + "\n".join(run.log_tail(40))
    assert thawed, "the test never held a worker after its first epoch"
    assert run.state == "done"
    assert int(run.status.get("slurm_restarts", 0)) >= 1 and run.status.get("requeued")
    assert (run.path / "worker.log").read_text().count("starting") >= 2
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3]


def test_app_rows_name_the_slurm_job(tmp_path):
    from ibtui.runs.store import atomic_write_json
    from ibtui.spec import experiment_to_toml, load_spec_text
    from ibtui.tui.model import row_from_run

    (spec,) = load_spec_text({"experiment": [{"name": "s"}]}, "f")
    d = tmp_path / spec.run_id
    d.mkdir()
    (d / "spec.toml").write_text(experiment_to_toml(spec.values, "[experiment]"))
    atomic_write_json(d / "status.json", {"state": "queued", "created": 1.0, "executor": "slurm"})
    atomic_write_json(d / "slurm.json", {"job_id": "12_0"})
    assert "Slurm job 12_0 pending" in row_from_run(load_run(d)).note


@pytest.mark.parametrize("state", ["done", "failed", "cancelled", "running"])
def test_time_limit_warning_requeues_only_an_unfinished_run(tmp_path, state):
    """A warning that lands as the run ends must not requeue it (a 4th attempt would redo it)."""
    import json

    from ibtui.runs.slurm import SlurmWorker

    (tmp_path / "status.json").write_text(json.dumps({"state": state}))
    delayed = SlurmWorker().checkpoint(str(tmp_path))
    after = json.loads((tmp_path / "status.json").read_text())["state"]
    if state == "running":
        assert delayed is not None and after == "queued"
    else:
        assert delayed is None and after == state


# --- the app launches and resumes through the same service as the CLI ----------------------

APP_RAW = {"name": "app-sl", "dataset": "digits", "width": 8, "epochs": 1, "mi_epochs": [1],
           "batch_size": 128, "lr": 0.05, "observe_classes": [1],
           "mi_options": {"k": 2, "max_samples": 32}}


async def _app_wait(pilot, cond, timeout, what):
    t = time.monotonic()
    while not cond():
        assert time.monotonic() - t < timeout, f"timed out after {timeout}s waiting for {what}"
        await pilot.pause(0.5)


@needs_cluster
@pytest.mark.slurm
@pytest.mark.slow
@sync
async def test_app_launches_on_slurm_and_resumes_a_local_run_there(tmp_path):
    """Compose's Launch with the executor set to slurm submits one job array (settings from the
    [executor] table of --executor-file); resume from an app started with --executor slurm
    moves a stopped local run to Slurm. Both end done, run by Slurm jobs."""
    from helpers import Starter, settle

    from ibtui.runs.launch import launch
    from ibtui.runs.slurm import ExecutorConfig
    from ibtui.spec import load_spec_text
    from ibtui.tui.app import IbtuiApp

    runs = tmp_path / "runs"
    settings = spec_file(tmp_path)  # [executor] kind slurm, partition debug, 1 cpu, 2 GB
    # a local run that never started, then cancelled: a stopped run to resume
    (local,) = launch(load_spec_text({"experiment": [dict(APP_RAW, name="was-local")]}, "t"),
                      runs, ExecutorConfig(), source="t").paths
    cli(["cancel", local.name, "--runs-dir", str(runs)])
    assert load_run(local).state == "cancelled"

    starter = Starter()
    app = IbtuiApp(runs, poll_interval=3600, start_scheduler=starter, executor="slurm",
                   executor_file=settings)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        compose = app.get_screen("compose")
        await app.push_screen(compose)
        await settle(pilot)
        assert compose.executor_kind == "slurm"
        compose._launch(dict(APP_RAW))
        await settle(pilot)
        app.resume_runs([local.name])
        await settle(pilot)
        launched = [p for p in runs.iterdir() if p.name.startswith("app-sl")]
        assert len(launched) == 1
        await _app_wait(pilot, lambda: all(load_run(p).state in ("done", "failed", "crashed")
                                           for p in (launched[0], local)), 600, "both runs end")
    assert starter.calls == []  # nothing local was started: both went to Slurm
    for p in (launched[0], local):
        run = load_run(p)
        assert run.state == "done", run.log_tail()
        assert run.status["executor"] == "slurm" and run.status["slurm"]["partition"] == "debug"
        assert job_id(p)  # slurm.json: submitted by the launch service
