"""Validity, duplicates, ranks and ties (ibtui.analysis.validity), by hand, and on real runs:
an unlearned tiny run, a copy of its directory and a relaunch of its spec, beside two runs whose
backdoor was learned, through every output (leaderboard table/csv/json/md, --replicas, show,
report)."""

import csv
import io
import json
import shutil
import subprocess

import pytest
from helpers import ibtui_cmd

from ibtui.analysis.replicas import group_replicas
from ibtui.analysis.validity import (
    ACC_MARGIN,
    acc_floor,
    assess,
    score_text,
    set_aside_summary,
    tied_ranks,
)


def rec(run, score=0.2, lo=None, hi=None, acc=0.95, asr=0.99, attack="badnets", seed=0,
        config="c1", recipe="r1", created=0.0, state="done", **kw):
    return {"run": run, "score": score, "score_lo": lo, "score_hi": hi, "clean_acc": acc,
            "asr": asr, "attack": attack, "seed": seed, "config": config, "recipe": recipe,
            "created": created, "state": state, **kw}


def test_floor_is_half_way_from_chance():
    assert acc_floor(10) == pytest.approx(0.55)
    assert acc_floor(2) == pytest.approx(0.75)


def test_unlearned_backdoor_is_set_aside_and_ranked_after_every_valid_run():
    rows = [rec("a", score=0.01, asr=0.10), rec("b", score=0.3, seed=1), rec("c", score=0.2, seed=2)]
    v = assess(rows)
    assert v[0].ok is False and v[0].reasons == ["backdoor not learned (ASR 0.10 < 0.9)"]
    assert v[0].rank is None
    assert (v[1].rank, v[2].rank) == (2, 1)  # by score among valid runs only


def test_experiment_threshold_and_clean_task_floor():
    lc = rec("lc", asr=0.6, min_asr=0.5, attack="lc")
    dead = rec("dead", acc=0.18, asr=1.0, seed=1)
    v = assess([lc, dead])
    assert v[0].ok is True
    assert v[1].ok is False and v[1].reasons == ["clean task not learned (acc 0.18 < 0.55)"]


def test_clean_reference_margin():
    clean = [rec(f"clean{s}", attack="none", acc=0.96, asr=None, score=None, seed=s, config="cc")
             for s in (0, 1)]
    near = rec("near", acc=0.96 - ACC_MARGIN + 0.001)
    far = rec("far", acc=0.80, seed=1)
    v = assess([*clean, near, far])
    assert v[0].ok is True and v[1].ok is True  # a clean run needs no backdoor
    assert v[2].ok is True
    assert v[3].ok is False and "0.16 below clean runs of its recipe (0.96" in v[3].reasons[0]
    other = rec("other", acc=0.80, recipe="r2", seed=2)  # another recipe: the floor applies
    assert assess([*clean, other])[2].ok is True


def test_duplicates_same_config_and_seed_count_once():
    rows = [rec("x", created=1.0), rec("x-2", created=2.0), rec("x-copy", created=0.5,
                                                                state="queued"),
            rec("y", seed=1, created=3.0)]
    v = assess(rows)
    assert v[0].ok is True and v[0].duplicate_of is None
    assert v[1].ok is False and v[1].duplicate_of == "x"
    assert v[1].reasons[0] == "duplicate of x (same configuration and seed)"
    assert v[2].ok is None  # not finished: no verdict, and never the "first" of its seed
    assert set_aside_summary(v) == "1 run set aside (not ranked): 1 duplicate"


def test_ties_by_hand():
    # ranks 1..4: [0.10, 0.20], [0.15, 0.30], [0.40, 0.50], no interval
    assert tied_ranks([(0.10, 0.20), (0.15, 0.30), (0.40, 0.50), None]) == [
        ([2, 4], 2), ([1, 4], 2), ([4], 1), ([1, 2, 3], 3)]
    # many overlapping runs: the nearest ranks are named, all are counted
    many = tied_ranks([(0.0, 1.0)] * 50, keep=4)
    assert many[0] == ([2, 3, 4, 5], 49) and many[25] == ([24, 25, 27, 28], 49)
    rows = [rec("a", 0.15, 0.10, 0.20), rec("b", 0.2, 0.15, 0.30, seed=1),
            rec("c", 0.45, 0.40, 0.50, seed=2)]
    assert [(x.ties, x.ties_n) for x in assess(rows)] == [([2], 1), ([1], 1), ([], 0)]


def test_score_text_carries_interval_and_ceiling_flag():
    assert score_text(0.16, 0.146, 0.168) == "0.160 [0.146, 0.168]"
    assert score_text(0.16, ceiling=0.06) == "0.160 ⚠"
    assert score_text(None) == "–"


def test_replicas_need_distinct_seeds():
    rows = [{"run": f"r{i}", "spec": {"config": "k", "seed": 0}, "score": 0.131, "d_xt": 0.1,
             "d_ty": 0.1, "clean_acc": 0.9, "asr": 1.0} for i in range(500)]
    (g,) = group_replicas(rows)
    assert g.seeds == [0] and len(g.duplicates) == 499
    assert g.metrics["score"].n == 1 and g.metrics["score"].text() == "0.131 (n = 1)"


# --- real runs ------------------------------------------------------------------------------

LEARNED = {"valid1": (1, 0.30, [0.25, 0.35]), "valid2": (2, 0.32, [0.28, 0.36])}


def _learned_copy(src, runs, name, seed, score, interval):
    """A finished run whose backdoor was learned: the real run's directory with its seed and
    headline numbers set (what a longer run of the same spec records)."""
    dst = runs / name
    shutil.copytree(src, dst)
    spec = (dst / "spec.toml").read_text().replace("seed = 0", f"seed = {seed}")
    (dst / "spec.toml").write_text(spec)
    s = json.loads((dst / "summary.json").read_text())
    s.update(score=score, asr=1.0, clean_acc=0.97, ceiling_share=0.0)
    s["stealth"]["bootstrap"]["score_interval"] = interval
    (dst / "summary.json").write_text(json.dumps(s))


@pytest.fixture(scope="module")
def mixed_runs(tiny_done_run, tmp_path_factory):
    """The real tiny run (2 epochs: its backdoor is not learned), a copy of its directory, a
    relaunch of its spec (`-2`, trained for real), and two runs whose backdoor was learned."""
    runs = tmp_path_factory.mktemp("mixed") / "runs"
    shutil.copytree(tiny_done_run.runs, runs)
    (orig,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert json.loads((orig / "summary.json").read_text())["asr"] < 0.9
    shutil.copytree(orig, runs / f"{orig.name}-copy")
    for name, (seed, score, iv) in LEARNED.items():
        _learned_copy(orig, runs, name, seed, score, iv)
    r = subprocess.run(ibtui_cmd() + ["run", str(tiny_done_run.spec), "--runs-dir", str(runs)],
                       capture_output=True, text=True, env=tiny_done_run.env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (runs / f"{orig.name}-2" / "summary.json").is_file()
    return runs, orig.name, r


def cli(runs, *args, env):
    r = subprocess.run(ibtui_cmd() + [*args, "--runs-dir", str(runs)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_every_export_ranks_valid_runs_first_with_intervals(mixed_runs, tiny_done_run):
    runs, orig, _ = mixed_runs
    env = tiny_done_run.env
    rows = json.loads(cli(runs, "leaderboard", "--format", "json", env=env))
    by = {r["run"]: r for r in rows}
    assert [r["run"] for r in rows[:2]] == ["valid1", "valid2"]
    assert (by["valid1"]["rank"], by["valid2"]["rank"]) == (1, 2)
    assert by["valid1"]["ties"] == [2] and by["valid1"]["ties_n"] == 1  # overlapping intervals
    assert (by["valid1"]["score_lo"], by["valid1"]["score_hi"]) == (0.25, 0.35)
    assert by[orig]["valid"] is False and "backdoor not learned (ASR" in by[orig]["why"]
    assert by[orig]["rank"] is None
    dups = [by[f"{orig}-copy"], by[f"{orig}-2"]]
    # the copy keeps the original's creation time: one of the three is counted, two are not
    assert all(d["valid"] is False for d in dups)
    assert sum(d["why"].startswith("duplicate of ") for d in [*dups, by[orig]]) == 2
    assert all(r["score_lo"] is not None for r in rows)  # every real score has its interval
    text = cli(runs, "leaderboard", "--format", "csv", env=env)
    table = list(csv.DictReader(io.StringIO(text)))
    assert {"rank", "score_lo", "score_hi", "ties", "ties_n", "valid", "why"} <= set(table[0])
    assert table[0]["run"] == "valid1" and table[0]["ties"] == "2" and table[0]["valid"] == "✔"
    md = cli(runs, "leaderboard", "--format", "md", env=env)
    assert "| score_lo | score_hi | ties |" in md and "backdoor not learned" in md
    wide = dict(env, COLUMNS="200")
    out = cli(runs, "leaderboard", env=wide)
    assert "0.300 [0.250, 0.350]" in out
    assert "3 runs set aside (not ranked)" in out and "2 duplicate" in out


def test_replicas_count_each_seed_once(mixed_runs, tiny_done_run):
    runs, orig, _ = mixed_runs
    groups = json.loads(cli(runs, "leaderboard", "--replicas", "--format", "json",
                            env=tiny_done_run.env))
    (g,) = [g for g in groups if orig in g["runs"]]
    assert len(g["runs"]) == 5 and len(g["duplicates"]) == 2
    assert g["seeds"] == [1, 2]  # seed 0 is set aside (not learned), counted once
    assert "backdoor not learned" in list(g["set_aside"].values())[0]
    assert g["score"]["n"] == 2
    table = cli(runs, "leaderboard", "--replicas", env=tiny_done_run.env)
    assert "2 duplicate runs (same configuration and seed as an earlier run) counted once" in table


def test_show_and_report_name_the_verdict(mixed_runs, tiny_done_run):
    runs, orig, _ = mixed_runs
    env = tiny_done_run.env
    shown = cli(runs, "show", orig, env=env)
    assert "set aside, not ranked: clean task not learned" in shown
    assert "backdoor not learned (ASR" in shown
    assert "valid ✔ (rank 1)" in cli(runs, "show", "valid1", env=env)
    data = json.loads(cli(runs, "show", orig, "--format", "json", env=env))
    assert data["validity"]["valid"] is False
    report = cli(runs, "report", env=env)
    assert ("3 runs set aside (not ranked): 1 clean task not learned, 1 backdoor not learned, "
            "2 duplicate") in report
    assert f"- {orig}-2: duplicate of" in report


def test_run_warns_about_near_chance_accuracy(tiny_done_run):
    """The tiny run (2 epochs, 12 optimiser steps) learns nothing: `ibtui run` says so with the
    step count, and its alarm gives no verdict."""
    out = " ".join((tiny_done_run.result.stdout + tiny_done_run.result.stderr).split())
    assert "near chance" in out and "epochs × ⌈n / batch_size⌉ = 2 × ⌈1,347 / 256⌉ = 12" in out
    (run,) = [p.name for p in tiny_done_run.runs.iterdir() if not p.name.startswith(".")]
    shown = cli(tiny_done_run.runs, "show", run, env=tiny_done_run.env)
    assert "backdoor alarm: no verdict: clean accuracy" in shown
