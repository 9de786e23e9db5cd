"""Seeds as replicas: mean and 95% t-interval by hand for 3 seeds, ties, and the CLI."""

import json
import math

from typer.testing import CliRunner

from ibtui.analysis.replicas import (
    Group,
    Interval,
    config_key,
    group_replicas,
    mark_ties,
    mean_interval,
)
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
    assert one.mean == 0.5 and one.lo is None and one.text() == "0.500 (n = 1)"
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


def quadratic_ties(ordered, by="score"):
    """The definition: every other group whose interval overlaps (each pair tested)."""
    out = []
    for g in ordered:
        mine = g.metrics.get(by)
        out.append([o.rank for o in ordered if o is not g and mine is not None
                    and o.metrics.get(by) is not None and mine.overlaps(o.metrics[by])])
    return out


def test_sweep_ties_equal_the_pairwise_definition_on_random_groups():
    import random

    rng = random.Random(12)
    for trial in range(300):
        groups = []
        for i in range(rng.randint(0, 40)):
            kind = rng.random()
            if kind < 0.1:
                iv = None  # unfinished runs only
            else:
                mean = round(rng.uniform(0, 1), rng.choice([1, 2, 6]))  # rounded: equal ends
                if kind < 0.25:
                    iv = Interval(mean, None, None, 1)
                else:
                    half = rng.choice([0.0, round(rng.uniform(0, 0.3), 2), rng.expovariate(20)])
                    iv = Interval(mean, mean - half, mean + half, 3)
            groups.append(Group(str(i), {}, [], [], metrics={"score": iv}))
        ordered = sorted(groups, key=lambda g: (g.metrics["score"] is None,
                                                g.metrics["score"].mean if g.metrics["score"] else 0))
        for r, g in enumerate(ordered, 1):
            g.rank = r
        mark_ties(ordered)
        assert [g.ties for g in ordered] == quadratic_ties(ordered), trial


def test_touching_intervals_tie_and_disjoint_ones_do_not():
    def g(name, lo, hi):
        return Group(name, {}, [], [], metrics={"score": Interval((lo + hi) / 2, lo, hi, 3)})

    ordered = [g("a", 0.0, 0.2), g("b", 0.2, 0.4), g("c", 0.41, 0.5)]
    for r, x in enumerate(ordered, 1):
        x.rank = r
    mark_ties(ordered)
    assert [x.ties for x in ordered] == [[2], [1], []]


def test_leaderboard_replicas_cli(tmp_path):
    runs = tmp_path / "runs"
    three_seeds(runs)
    r = CliRunner().invoke(app, ["leaderboard", "--replicas", "--format", "json",
                                 "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    (g,) = json.loads(r.output)
    assert g["seeds"] == [0, 1, 2] and math.isclose(g["score"]["mean"], 0.2)
    assert math.isclose(g["score"]["hi"] - g["score"]["mean"], 4.302653 * 0.1 / math.sqrt(3), rel_tol=1e-5)


def three_seeds(runs, scores=(0.1, 0.2, 0.3)):
    ids = []
    for seed, score in enumerate(scores):
        (spec,) = load_spec_text({"experiment": [{"name": "e", "seed": seed}]}, "f")
        d = runs / spec.run_id
        d.mkdir(parents=True)
        (d / "spec.toml").write_text(experiment_to_toml(spec.values, "[experiment]"))
        atomic_write_json(d / "status.json", {"state": "done", "created": seed, "pid": None})
        atomic_write_json(d / "summary.json", {"score": score, "d_xt": score, "d_ty": score,
                                               "clean_acc": 0.9, "asr": 1.0})
        ids.append(spec.run_id)
    return ids


def test_show_gives_the_configuration_across_its_seeds(tmp_path):
    runs = tmp_path / "runs"
    ids = three_seeds(runs)
    # mean 0.2; s = 0.1; half = t(0.975, 2)·s/√3 = 4.302653·0.1/1.7320508 = 0.248414
    # interval [0.2 - 0.248414, 0.2 + 0.248414] = [-0.048, 0.448]
    r = CliRunner().invoke(app, ["show", ids[1], "--runs-dir", str(runs)], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "across seeds: configuration" in r.output and "seeds 0, 1, 2" in r.output
    assert "0.200 ± 0.248" in r.output and "[-0.048, 0.448]" in r.output
    assert "0.900 ± 0.000" in r.output  # clean acc: every seed the same
    # its summary has no stealth block to bootstrap: said, not invented
    assert "score 0.200 (no within-run interval)" in r.output
    j = CliRunner().invoke(app, ["show", ids[0], "--runs-dir", str(runs), "--format", "json"])
    across = json.loads(j.output)["across_seeds"]
    assert across["seeds"] == [0, 1, 2] and sorted(across["runs"]) == sorted(ids)
    assert math.isclose(across["score"]["mean"], 0.2)
    assert math.isclose(across["score"]["hi"], 0.2 + 4.302653 * 0.1 / math.sqrt(3), rel_tol=1e-6)
    assert across["score"]["n"] == 3


def test_show_without_replicas_has_no_seeds_table(tmp_path):
    runs = tmp_path / "runs"
    (rid,) = three_seeds(runs, scores=(0.1,))
    r = CliRunner().invoke(app, ["show", rid, "--runs-dir", str(runs)])
    assert r.exit_code == 0 and "across seeds" not in r.output
    j = CliRunner().invoke(app, ["show", rid, "--runs-dir", str(runs), "--format", "json"])
    assert json.loads(j.output)["across_seeds"] is None
