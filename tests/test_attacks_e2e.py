"""Every attack end to end on a tiny digits run (in-process Experiment: poison -> train -> MI ->
score), with its artefacts saved and its perceptibility in the summary."""

import pytest

from ibtui.experiment import Experiment
from ibtui.runs.scheduler import create_runs
from ibtui.runs.store import load_run
from ibtui.spec import load_spec_text

pytestmark = pytest.mark.slow

# badnets and blend run end to end through the real worker in test_e2e.py / test_faults.py
OPTIONS = {"wanet": {}, "adap-blend": {}, "ftrojan": {}, "lc": {"clean_epochs": 1, "steps": 3},
           # variants whose index rule or label-keeping samples differ from the default
           "wanet:backdoorbench": {"variant": "backdoorbench"},
           "adap-blend:original": {"variant": "original"},
           "ftrojan:original": {"variant": "original"}}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_attack_end_to_end(tmp_path, case):
    attack = case.partition(":")[0]
    exp = {"name": "e2e", "dataset": "digits", "width": 8, "epochs": 1, "mi_epochs": [1],
           "batch_size": 256, "lr": 0.05, "attack": attack, "attack_options": OPTIONS[case],
           "poison_rate": 0.25 if attack == "lc" else 0.1, "observe_classes": [1, 2],
           "mi_options": {"k": 2}}
    (spec,) = load_spec_text({"experiment": [exp]}, "test.toml")
    (path,) = create_runs([spec], tmp_path / "runs")
    summary = Experiment(path).run()
    run = load_run(path)
    assert run.summary["score"] == summary["score"] and run.summary["attack"] == attack
    assert summary["n_backdoor"] > 0
    assert summary["score"] is not None and 0 <= summary["score"] <= 1
    assert summary["psnr"] is not None and summary["ssim"] is not None
    assert {m["term"] for m in run.mi()} == {"xt", "ty"}
    assert (path / "artifacts" / "poison_idx.npy").exists()
    assert len(list((path / "artifacts").glob("*.npy"))) >= 3  # indices + trigger artefacts
