"""Seeds as replicas: mean and 95% t-interval by hand for 3 seeds, ties, and the CLI."""

import json
import math

from typer.testing import CliRunner

from ibtui.analysis.replicas import config_key, group_replicas, mean_interval
from ibtui.cli import app
from ibtui.runs.store import atomic_write_json
from ibtui.spec import experiment_to_toml, load_spec_text


def test_mean_interval_by_hand():
    iv = mean_interval([0.10, 0.20, 0.30])
    # mean 0.2; sd = sqrt(((.1)^2 + 0 + (.1)^2) / 2) = 0.1; t(0.975, 2) = 4.302653
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert math.isclose(iv.mean, 0.2) and iv.n == 3
    assert math.isclose(iv.lo, 0.2 - half, rel_tol=1e-6) and math.isclose(iv.hi, 0.2 + half, rel_tol=1e-6)
    one = mean_interval([0.5])
    assert one.mean == 0.5 and one.lo is None and one.text() == "0.500 (n=1)"
    assert mean_interval([None, float("nan")]) is None


def test_config_ignores_seed_and_launch_details_only():
    (a, b, c) = load_spec_text({"experiment": [{"name": "x", "seed": [0, 1], "lr": 0.1},
                                               {"name": "x", "seed": 0, "lr": 0.2}]}, "f")
    assert config_key(a.values) == config_key(b.values) != config_key(c.values)
    assert config_key(dict(a.values, threads=4, device="cpu")) == config_key(a.values)


def test_groups_rank_and_ties():
    base = {"name": "e", "dataset": "digits", "arch": "resnet18", "poison_rate": 0.1}
    rows = []
    for attack, scores in (("badnets", [0.10, 0.11, 0.12]), ("blend", [0.30, 0.31, 0.29]),
                           ("wanet", [0.11, 0.20, 0.05])):
        for seed, sc in enumerate(scores):
            rows.append({"run": f"{attack}-{seed}", "spec": dict(base, attack=attack, seed=seed),
                         "score": sc, "d_xt": sc, "d_ty": sc, "clean_acc": 0.9, "asr": 1.0})
    groups = group_replicas(rows)
    assert [g.label["attack"] for g in groups] == ["badnets", "wanet", "blend"]
    by = {g.label["attack"]: g for g in groups}
    assert by["badnets"].rank == 1 and sorted(by["badnets"].seeds) == [0, 1, 2]
    assert by["badnets"].ties == [2]          # wanet's wide interval overlaps badnets'
    assert 3 not in by["badnets"].ties        # blend is clearly worse
    assert math.isclose(by["blend"].metrics["score"].mean, 0.30)


def test_leaderboard_replicas_cli(tmp_path):
    runs = tmp_path / "runs"
    for seed, score in enumerate((0.1, 0.2, 0.3)):
        (spec,) = load_spec_text({"experiment": [{"name": "e", "seed": seed}]}, "f")
        d = runs / spec.run_id
        d.mkdir(parents=True)
        (d / "spec.toml").write_text(experiment_to_toml(spec.values, "[experiment]"))
        atomic_write_json(d / "status.json", {"state": "done", "created": seed, "pid": None})
        atomic_write_json(d / "summary.json", {"score": score, "d_xt": score, "d_ty": score,
                                               "clean_acc": 0.9, "asr": 1.0})
    r = CliRunner().invoke(app, ["leaderboard", "--replicas", "--format", "json",
                                 "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    (g,) = json.loads(r.output)
    assert g["seeds"] == [0, 1, 2] and math.isclose(g["score"]["mean"], 0.2)
    assert math.isclose(g["score"]["hi"] - g["score"]["mean"], 4.302653 * 0.1 / math.sqrt(3), rel_tol=1e-5)
