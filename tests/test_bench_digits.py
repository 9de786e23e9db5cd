"""The embedded benchmark: `ibtui presets show` for every preset (round trip through the spec
validator), the digits-bench preset's settings, and the attack option `balance` (unit checks and
a tiny real run)."""

import subprocess
import sys
import tomllib

import numpy as np
import pytest

from ibtui.data.attacks import ATTACKS, create_attack
from ibtui.data.datasets import load_dataset
from ibtui.data.poison import poison_dataset
from ibtui.errors import SpecError
from ibtui.presets import list_presets, preset_path, preset_text
from ibtui.spec import load_spec, load_spec_text

DIRTY = ["badnets", "blend", "wanet", "adap-blend", "ftrojan"]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibtui.cli", *args], capture_output=True,
                          text=True, timeout=120, **kw)


@pytest.mark.parametrize("name", [n for n, _ in list_presets()])
def test_presets_show_round_trips(name, tmp_path):
    """The printed file parses to the preset's own tables, and where its data is here (digits)
    expands through the validator to exactly the preset's runs."""
    text = preset_text(name)
    assert tomllib.loads(text) == tomllib.loads(preset_path(name).read_text(encoding="utf-8"))
    copy = tmp_path / "experiments.toml"
    copy.write_text(text, encoding="utf-8")
    datasets = {e.get("dataset", tomllib.loads(text).get("defaults", {}).get("dataset", "digits"))
                for e in tomllib.loads(text)["experiment"]}
    if datasets == {"digits"}:
        mine, theirs = load_spec(copy), load_spec(preset_path(name))
        assert [s.run_id for s in mine] == [s.run_id for s in theirs]
        assert [s.values for s in mine] == [s.values for s in theirs]


def test_presets_show_cli(tmp_path):
    r = _cli("presets", "show", "digits-bench")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# preset digits-bench")
    (tmp_path / "e.toml").write_text(r.stdout)
    assert _cli("run", str(tmp_path / "e.toml"), "--dry-run", "--runs-dir",
                str(tmp_path / "runs")).returncode == 0
    bad = _cli("presets", "show", "no-such-preset")
    assert bad.returncode == 2 and "allowed:" in bad.stderr + bad.stdout
    listed = _cli("presets", env={"COLUMNS": "200", "PATH": ""})
    assert listed.returncode == 0 and "digits-bench" in listed.stdout


def test_digits_bench_preset_settings():
    """Every attack of Table I, 5 seeds each, every target class named by a seed, the recipe
    the preset's comments justify, and per-attack options inside each attack's own schema."""
    specs = load_spec(preset_path("digits-bench"))
    by_attack: dict[str, list] = {}
    for s in specs:
        by_attack.setdefault(s.values["attack"], []).append(s.values)
    assert set(DIRTY + ["lc"]) <= set(by_attack)
    for attack in DIRTY + ["lc"]:
        runs = [v for v in by_attack[attack] if v["name"] == "bench"]
        assert len({v["seed"] for v in runs}) >= 5, attack
        for v in runs:
            assert v["dataset"] == "digits" and v["arch"] == "resnet18"
            assert v["noise_xt"] == 0.4 and v["noise_ty"] == 0.4  # the paper's noise
            ATTACKS[attack].resolve_options(v["attack_options"])  # valid options
            assert v["poison_rate"] == (0.25 if attack == "lc" else 0.1)
    assert len({v["target"] for v in by_attack["badnets"]}) >= 5  # the alarm must name it


def test_balance_option_schema():
    for name in DIRTY:
        assert "balance" in ATTACKS[name].options
        assert ATTACKS[name].resolve_options({})["balance"] is False
    assert "balance" not in ATTACKS["lc"].options  # clean-label: labels and counts kept
    assert "balance" not in ATTACKS["none"].options
    with pytest.raises(SpecError, match="balance"):
        ATTACKS["badnets"].resolve_options({"balance": 1})
    with pytest.raises(SpecError, match="balance"):
        ATTACKS["lc"].resolve_options({"balance": True})


@pytest.mark.parametrize("attack", DIRTY)
def test_balance_keeps_every_class_at_its_share(attack):
    """With balance, the target class shrinks by its own share of the poison as every other
    class does: the class counts equal those of the clean set minus each class's poisoned
    images that left it, and the target class is no larger than it was."""
    ds = load_dataset("digits", None, False)
    target = 3
    obs = [c for c in range(10) if c != target]
    plain = poison_dataset(ds, create_attack(attack, {}, target=target, seed=1), 0.05, target,
                           obs, 1)
    bal = poison_dataset(ds, create_attack(attack, {"balance": True}, target=target, seed=1),
                         0.05, target, obs, 1)
    before = np.bincount(ds.y_train, minlength=10)
    after = np.bincount(bal.y_train, minlength=10)
    assert np.bincount(plain.y_train, minlength=10)[target] > before[target]
    left = np.bincount(ds.y_train[plain.poison_idx][plain.y_train[plain.poison_idx] != ds.y_train[
        plain.poison_idx]], minlength=10)  # images that left their class
    own = int(np.sum((ds.y_train[plain.poison_idx] == target)
                     & np.isin(plain.poison_idx, plain.backdoor_idx)))
    expect = before - left
    expect[target] = before[target] - own
    assert (after == expect).all()
    assert len(bal.dropped_idx) == len(bal.backdoor_idx) == len(plain.backdoor_idx)
    # the kept arrays stay aligned with the clean set through source_idx
    assert (bal.y_true == ds.y_train[bal.source_idx]).all()
    assert (ds.y_train[bal.dropped_idx] == target).all()
    assert not np.isin(bal.dropped_idx, bal.source_idx[bal.poison_idx]).any()
    assert (bal.y_train[bal.backdoor_idx] == target).all()
    # the same seed drops the same images
    again = poison_dataset(ds, create_attack(attack, {"balance": True}, target=target, seed=1),
                           0.05, target, obs, 1)
    assert (again.dropped_idx == bal.dropped_idx).all()


def test_balance_refuses_when_the_target_class_is_too_small():
    ds = load_dataset("digits", None, False)
    with pytest.raises(SpecError, match="balance.*untriggered"):
        poison_dataset(ds, create_attack("badnets", {"balance": True}, target=0, seed=0), 0.1, 0,
                       list(range(1, 10)), 0)


@pytest.mark.parametrize("attack, target, rate", [("badnets", 0, 0.1), ("wanet", 8, 0.1),
                                                 ("adap-blend", 3, 0.2)])
def test_balance_infeasible_is_refused_at_validation_at_the_rate_the_run_would_refuse(
        attack, target, rate):
    """`ibtui run --dry-run` refuses a balanced rate the worker could not balance, and names
    the highest rate that can be: the worker balances at that rate, and refuses just above."""
    import re

    exp = {"name": "b", "attack": attack, "target": target, "poison_rate": rate,
           "attack_options": {"balance": True}}
    with pytest.raises(SpecError, match=r"balance = true.*untriggered.*poison_rate <= ") as e:
        load_spec_text({"experiment": [exp]}, "f.toml")
    assert "field 'poison_rate'" in str(e.value)
    top = float(re.search(r"poison_rate <= ([0-9.]+)", str(e.value)).group(1))
    load_spec_text({"experiment": [dict(exp, poison_rate=top)]}, "f.toml")  # accepted
    ds = load_dataset("digits", None, False)
    observe = [c for c in range(10) if c != target]
    poison_dataset(ds, create_attack(attack, {"balance": True}, target=target, seed=0), top,
                   target, observe, 0)  # the run balances it
    above = float(f"{top + 0.001:.4g}")
    with pytest.raises(SpecError, match="balance"):
        load_spec_text({"experiment": [dict(exp, poison_rate=above)]}, "f.toml")
    with pytest.raises(SpecError, match="balance.*untriggered"):
        poison_dataset(ds, create_attack(attack, {"balance": True}, target=target, seed=0),
                       above, target, observe, 0)


@pytest.mark.slow
def test_balance_tiny_run(tmp_path):
    """A real worker run with balance: done, class counts in classes.jsonl those of the balanced
    set, the dropped images saved."""
    import json

    from ibtui.runs.scheduler import create_runs
    from ibtui.runs.store import load_run

    exp = {"name": "bal", "dataset": "digits", "width": 4, "epochs": 1, "mi_epochs": [1],
           "batch_size": 256, "lr": 0.05, "attack": "badnets", "target": 2,
           "attack_options": {"balance": True}, "poison_rate": 0.05,
           "mi_options": {"k": 2, "max_samples": 32}, "threads": 1, "device": "cpu"}
    specs = load_spec_text({"experiment": [exp]}, "test.toml")
    (path,) = create_runs(specs, tmp_path / "runs")
    r = subprocess.run([sys.executable, "-m", "ibtui.runs.scheduler", str(tmp_path / "runs"),
                        "--jobs", "1", "--threads", "1", "--gpus", ""],
                       capture_output=True, text=True, timeout=600)
    run = load_run(path)
    assert run.state == "done", r.stdout + r.stderr + run.log_tail()
    art = path / "artifacts"
    dropped = np.load(art / "balance_dropped_idx.npy")
    assert len(dropped) == run.summary["n_backdoor"] > 0
    sizes = json.loads((art / "subsets.json").read_text())["sizes"]
    ds = load_dataset("digits", None, False)
    per_class = len(np.load(art / "poison_idx.npy")) // 10
    assert sizes["2"] == int(np.sum(ds.y_train == 2)) - per_class


def test_alarm_grid_uses_the_preset_recipe():
    """bench/bench_digits_alarm.toml copies the preset's recipe: clean references and the
    validity rules compare runs of one recipe."""
    from pathlib import Path

    from ibtui.analysis.validity import RECIPE_KEYS

    root = Path(__file__).resolve().parent.parent
    alarm = load_spec(root / "bench" / "bench_digits_alarm.toml")
    bench = load_spec(preset_path("digits-bench"))
    recipe = {tuple((k, str(s.values[k])) for k in (*RECIPE_KEYS, "mi_epochs", "mi_options"))
              for s in alarm + bench}
    assert len(recipe) == 1
    names = {s.values["name"] for s in alarm}
    assert names == {"clean", "low", "bal", "ballow"}
    assert sum(s.values["attack"] == "none" for s in alarm) >= 10
    bal = [s.values for s in alarm if s.values["name"] in ("bal", "ballow")]
    assert bal and all(v["attack_options"]["balance"] for v in bal)
    assert {s.run_id for s in alarm}.isdisjoint({s.run_id for s in bench})


def _fake(attack: str, seed: int, score: float, asr: float = 1.0, rate: float = 0.1) -> dict:
    return {"id": f"{attack}-{seed}", "settings": {"attack": attack, "poison_rate": rate,
                                                    "seed": seed, "dataset": "digits",
                                                    "attack_options": {}},
            "summary": {"score": score, "d_xt": score, "d_ty": score, "asr": asr,
                        "clean_acc": 0.95}}


def test_paper_table_claims_and_marks():
    from ibtui.analysis.paper_table import compare, render

    runs = [_fake("badnets", s, 0.10 + 0.002 * s) for s in range(5)]
    runs += [_fake("blend", s, 0.30 + 0.002 * s) for s in range(5)]
    runs += [_fake("ftrojan", s, 0.50 + 0.002 * s) for s in range(5)]
    runs += [_fake("wanet", s, 0.40 + 0.1 * s, asr=0.2) for s in range(5)]  # not learned
    runs += [_fake("lc", s, 0.101 + 0.002 * s, rate=0.25) for s in range(5)]
    res = compare(runs)
    rows = {r["attack"]: r for r in res["rows"]}
    assert rows["wanet"]["n"] == 0 and len(rows["wanet"]["aside"]) == 5
    assert rows["lc"]["score_inside"] is False  # paper LC 0.5281
    assert res["claims"]["ftrojan_least"][0] == "holds"
    # LC's scores overlap BadNets': BadNets is not significantly the lowest
    assert res["claims"]["badnets_most"][0] in ("cannot tell", "contradicted")
    text = render(res)
    assert "Welch" in text and "Holm" in text and "0.2820" in text and "FTrojan" in text
    near = compare([_fake("badnets", s, 0.27 + 0.01 * s) for s in range(5)])
    assert near["rows"][0]["score_inside"] is True  # 0.2820 inside [0.27, 0.31]
    assert near["claims"]["badnets_most"][0] == "cannot tell"


def test_alarm_eval_intervals_and_balanced_rows():
    from ibtui.analysis.alarm_eval import BALANCED, POOLED, auroc_interval, wilson

    assert wilson(0, 10)[0] == 0.0 and 0.2 < wilson(0, 10)[1] < 0.35
    assert wilson(5, 5)[1] == 1.0 and wilson(5, 5)[0] > 0.5
    lo, hi = auroc_interval([3, 4, 5, 6, 7], [0, 1, 2, 1, 0, 2, 1, 0, 1, 2])
    assert lo == hi == 1.0
    assert auroc_interval([1], [0, 1]) is None
    assert BALANCED.strip() and POOLED
