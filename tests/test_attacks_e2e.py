"""Every attack end to end on a tiny digits run (poison -> train -> MI -> score), with its
artefacts saved and its perceptibility in the summary.

All cases are queued in one runs directory and run by the real scheduler (`python -m
ibtui.runs.scheduler`, two one-thread workers at once: a tiny run uses one core, CI has two);
each test checks its own run."""

import subprocess
import sys

import pytest

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


def experiment(case: str) -> dict:
    attack = case.partition(":")[0]
    return {"name": "e2e-" + case.replace(":", "-"), "dataset": "digits", "width": 8,
            "epochs": 1, "mi_epochs": [1], "batch_size": 256, "lr": 0.05, "attack": attack,
            "attack_options": OPTIONS[case], "poison_rate": 0.25 if attack == "lc" else 0.1,
            "observe_classes": [1, 2], "mi_options": {"k": 2}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """{case: run directory}, every run ended (done or not: each test says)."""
    runs = tmp_path_factory.mktemp("attacks") / "runs"
    cases = sorted(OPTIONS)
    specs = load_spec_text({"experiment": [experiment(c) for c in cases]}, "test.toml")
    paths = create_runs(specs, runs)
    r = subprocess.run([sys.executable, "-m", "ibtui.runs.scheduler", str(runs), "--jobs", "2",
                        "--threads", "1", "--gpus", ""],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(zip(cases, paths, strict=True))


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_attack_end_to_end(finished, case):
    attack = case.partition(":")[0]
    path = finished[case]
    run = load_run(path)
    assert run.state == "done", run.log_tail()
    summary = run.summary
    assert summary["attack"] == attack
    assert summary["n_backdoor"] > 0
    assert summary["score"] is not None and 0 <= summary["score"] <= 1
    assert summary["psnr"] is not None and summary["ssim"] is not None
    assert {m["term"] for m in run.mi()} == {"xt", "ty"}
    assert (path / "artifacts" / "poison_idx.npy").exists()
    assert len(list((path / "artifacts").glob("*.npy"))) >= 3  # indices + trigger artefacts
