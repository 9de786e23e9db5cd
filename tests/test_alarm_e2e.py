"""Backdoor alarm end to end: a tiny clean run (attack "none") and a tiny poisoned
one through the real CLI, scheduler and worker; per-class records, summary verdicts, `show`,
and `alarm-eval` on the pair. Tiny runs (2 epochs, width 8) are far too short for the detector
to be right: this checks the plumbing, not the detector's power (bench/alarm_eval.md does)."""

import json
import subprocess

import pytest
from helpers import ibtui_cmd

from ibtui.analysis import alarm
from ibtui.runs.store import list_runs, read_jsonl

pytestmark = pytest.mark.slow

PAIR = """
[[experiment]]
name = "pair"
dataset = "digits"
width = 8
epochs = 2
mi_epochs = [1, 2]
batch_size = 256
lr = 0.05
attack = ["none", "badnets"]
poison_rate = 0.1
target = 4
mi_method = "noise-aware"
mi_options = { k = 2, max_samples = 32 }
"""


def run_cli(args, env, timeout=600):
    return subprocess.run(ibtui_cmd() + args, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_clean_and_poisoned_pair(tmp_path, cli_env):
    spec = tmp_path / "pair.toml"
    spec.write_text(PAIR)
    runs_dir = tmp_path / "runs"
    r = run_cli(["run", str(spec), "--runs-dir", str(runs_dir), "--jobs", "2"], cli_env)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = {x.spec["attack"]: x for x in list_runs(runs_dir)}
    assert set(runs) == {"none", "badnets"} and all(x.state == "done" for x in runs.values())
    clean, poisoned = runs["none"], runs["badnets"]
    assert clean.id == "pair-none-digits-resnet18-p0-s0"

    # the clean run goes through the whole pipeline: no backdoor subset, a reference score
    mi_subsets = {m["subset"] for m in clean.mi()}
    assert "4_backdoor" not in mi_subsets and {"4", "4_clean", "4_sample", "0"} <= mi_subsets
    assert clean.summary["n_poison"] == 0 and clean.summary["score"] is not None

    for run in (clean, poisoned):
        recs = read_jsonl(run.path / "classes.jsonl")
        assert [c["epoch"] for c in recs] == [1, 2] and recs[-1]["final"]
        for rec in recs:
            assert set(rec["classes"]) == {str(c) for c in range(10)}
            for row in rec["classes"].values():
                for key in ("n", "loss_mean", "loss_std", "ac_silhouette", "ss_top"):
                    assert key in row
        a = run.summary["alarm"]
        assert set(a["suspicion"]) == {str(c) for c in range(10)}
        # a model below the accuracy floor gets no verdict (poisoned None, and why)
        assert 0 < a["p"] <= 1 and (isinstance(a["poisoned"], bool)
                                    or a["poisoned"] is None and a["no_verdict"])
        assert a["top_class"] in range(10) and a["epoch"] == 2
        assert set(a["baselines"]) == {"ac", "ss"}
        assert (a["first_epoch"] is None) == (not a["poisoned"])
        # the detector read nothing of the attack: same verdict from the files alone
        assert alarm.verdict(run.path)["suspicion"] == a["suspicion"]
    # the poisoned target class is larger (dirty label): the trivial size reference sees it
    assert alarm.verdict(poisoned.path, "size")["top_class"] == 4
    rec = read_jsonl(poisoned.path / "classes.jsonl")[-1]["classes"]
    assert rec["4"]["n"] > max(rec[str(c)]["n"] for c in range(10) if c != 4)

    out = run_cli(["show", poisoned.id, "--runs-dir", str(runs_dir)], cli_env)
    assert out.returncode == 0 and "backdoor alarm:" in out.stdout, out.stderr
    ev = run_cli(["alarm-eval", "--runs-dir", str(runs_dir), "--out", str(tmp_path / "bench")],
                 cli_env)
    assert ev.returncode == 0, ev.stdout + ev.stderr
    for name in ("alarm_eval.md", "alarm_eval.csv", "alarm_eval.png"):
        assert (tmp_path / "bench" / name).stat().st_size > 0
    assert "badnets" in (tmp_path / "bench" / "alarm_eval.md").read_text()
    board = json.loads(run_cli(["leaderboard", "--format", "json", "--runs-dir", str(runs_dir)],
                               cli_env).stdout)
    assert {b["run"] for b in board} == {clean.id, poisoned.id}
