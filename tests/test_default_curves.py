"""The default I(X;T) measurement moves during training and stays off its ceiling:
a real (tiny) run through the worker's Experiment, default mi_options but k and max_samples."""

import math

import pytest
from helpers import tiny_spec

from ibtui.experiment.run import Experiment
from ibtui.runs.scheduler import create_runs
from ibtui.runs.store import read_jsonl
from ibtui.spec import load_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_default_xt_curves_move_and_stay_below_log_n(tmp_path):
    spec = tiny_spec(tmp_path / "e.toml", epochs=3, mi_epochs="[1, 2, 3]")
    (run_dir,) = create_runs(load_spec(spec), tmp_path / "runs")
    Experiment(run_dir).run()
    xt = [r for r in read_jsonl(run_dir / "mi.jsonl") if r["term"] == "xt"]
    subsets = {r["subset"] for r in xt}
    assert len(xt) == 3 * len(subsets) and len(subsets) >= 4
    for r in xt:
        st = r["settings"]
        assert st["xt_scale"] == 0.5 and st["sigma_m"] == pytest.approx(0.5 * st["spread"])
        assert st["sigma"] == pytest.approx(math.hypot(st["sigma_t"], st["sigma_m"]))
        # more noise than the network's own: never more information (up to Monte Carlo)
        assert r["value"] <= st["network_noise_value"] + 0.05
        assert r["at_ceiling"] == (r["value"] >= math.log(r["n"]) - 0.1)
    assert sum(r["at_ceiling"] for r in xt) < len(xt) / 4
    for name in subsets:
        curve = [r["value"] for r in sorted(xt, key=lambda r: r["epoch"]) if r["subset"] == name]
        assert max(curve) - min(curve) > 0.05, (name, curve)  # the curve moves


def test_runs_created_before_the_measurement_scale_keep_measuring_the_same(tmp_path):
    spec = tiny_spec(tmp_path / "e.toml")
    (run_dir,) = create_runs(load_spec(spec), tmp_path / "runs")
    text = (run_dir / "spec.toml").read_text()
    assert "xt_scale = 0.5" in text  # new runs store the scale they measure at
    (run_dir / "spec.toml").write_text(text.replace("xt_scale = 0.5\n", ""))
    assert Experiment(run_dir).spec["mi_options"]["xt_scale"] == 0.0
