"""End to end through the real CLI, scheduler and worker subprocess on a tiny experiment."""

import json
import subprocess

import pytest
from helpers import ibtui_cmd, tiny_spec

from ibtui.runs.store import list_runs, read_jsonl

pytestmark = pytest.mark.slow


def run_cli(args, env, timeout=600):
    return subprocess.run(ibtui_cmd() + args, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_tiny_run_end_to_end(tiny_done_run, cli_env):
    """`ibtui run` of the tiny spec (the session's shared run, conftest.tiny_done_run: also
    test_faults' reference), what it wrote, and the reading commands on it."""
    runs, r = tiny_done_run.runs, tiny_done_run.result
    assert "leaderboard" in r.stdout
    (run,) = list_runs(runs)
    assert run.state == "done", run.log_tail()
    metrics = run.metrics()
    assert [m["epoch"] for m in metrics] == [1, 2]
    for key in ("lr", "train_loss", "train_acc", "test_loss", "test_acc", "asr", "asr_all", "ra",
                "class_loss", "seconds"):
        assert key in metrics[0]
    assert set(metrics[0]["class_loss"]) == {str(c) for c in range(10)}
    mi = run.mi()
    subsets = {"0", "0_backdoor", "0_clean", "0_sample", "1", "2"}
    assert {(m["epoch"], m["term"], m["subset"]) for m in mi} == {
        (e, t, s) for e in (1, 2) for t in ("xt", "ty") for s in subsets}
    assert all(m["method"] == "noise-aware" and m["value"] >= -0.05 for m in mi)
    s = run.summary
    for key in ("score", "d_xt", "d_ty", "clean_acc", "asr", "ra", "wall_seconds"):
        assert s[key] is not None, key
    assert 0 <= s["score"] <= 1
    art = run.path / "artifacts"
    assert (art / "poison_idx.npy").exists() and (art / "subsets.json").exists()
    assert (run.path / "checkpoint.pt").exists()
    status = json.loads((run.path / "status.json").read_text())
    assert status["state"] == "done" and status["ended"] >= status["started"]
    # reading commands work on the finished run
    for args in (["ls"], ["show", run.id[:10]], ["leaderboard", "--format", "json"]):
        out = run_cli(args + ["--runs-dir", str(runs)], cli_env)
        assert out.returncode == 0, out.stderr
    board = json.loads(run_cli(["leaderboard", "--format", "json", "--runs-dir", str(runs)],
                               cli_env).stdout)
    assert board[0]["run"] == run.id and board[0]["score"] == pytest.approx(s["score"])


def test_bad_spec_exits_2_and_creates_nothing(tmp_path, cli_env):
    spec = tmp_path / "bad.toml"
    spec.write_text('[[experiment]]\nname = "b"\npoison_rate = 2.0\n')
    runs = tmp_path / "runs"
    r = run_cli(["run", str(spec), "--runs-dir", str(runs)], cli_env)
    assert r.returncode == 2
    assert "bad.toml" in r.stderr and "poison_rate" in r.stderr and "Traceback" not in r.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_dry_run_lists_runs(tmp_path, cli_env):
    spec = tmp_path / "g.toml"
    spec.write_text('[[experiment]]\nname = "g"\nattack = ["badnets", "blend"]\nseed = [0, 1]\n')
    runs = tmp_path / "runs"
    r = run_cli(["run", str(spec), "--dry-run", "--runs-dir", str(runs)], cli_env)
    assert r.returncode == 0, r.stderr
    assert "4 runs" in r.stdout and "g-blend-digits-resnet18-p0.1-s1" in r.stdout
    assert not runs.exists()


def test_worker_failure_is_recorded_and_others_continue(tmp_path, cli_env):
    """A run that fails at run time (NaN loss at epoch 2) is recorded with the reason and makes
    `ibtui run` exit 1 naming it; the other run still finishes. Missing data is caught earlier,
    at validation: exit 2 and nothing created."""
    spec = tmp_path / "two.toml"
    tiny_spec(spec, name="ok", epochs=1, mi_epochs="[1]")
    # "bad" never gets to an MI epoch: what it checks is the failure, not its estimates
    spec.write_text(spec.read_text() + '\n[[experiment]]\nname = "bad"\nepochs = 2\nwidth = 8\n'
                    'mi_epochs = [2]\nbatch_size = 256\nobserve_classes = [1]\n')
    runs = tmp_path / "runs"
    # --jobs 2: both workers at once (the failure must not stop or spoil the other one)
    r = run_cli(["run", str(spec), "--runs-dir", str(runs), "--jobs", "2"],
                dict(cli_env, IBTUI_INJECT_NAN="loss-2"))
    assert r.returncode == 1, r.stderr
    states = {run.spec["name"]: run for run in list_runs(runs)}
    assert states["ok"].state == "done"
    assert states["bad"].state == "failed"
    assert "epoch 2" in states["bad"].status["error"]
    assert states["bad"].id in r.stderr and "worker.log" in r.stderr
    assert [m["epoch"] for m in read_jsonl(states["bad"].path / "metrics.jsonl")] == [1]

    nodata = tmp_path / "nodata.toml"
    nodata.write_text(f'[[experiment]]\nname = "nodata"\ndataset = "cifar10"\n'
                      f'data_root = "{tmp_path / "nothing"}"\n')
    r = run_cli(["run", str(nodata), "--runs-dir", str(tmp_path / "runs2")], cli_env)
    assert r.returncode == 2 and "CIFAR-10 files are missing" in r.stderr
    assert not list_runs(tmp_path / "runs2")
