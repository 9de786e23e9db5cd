import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY = """
[[experiment]]
name = "{name}"
dataset = "digits"
width = 8
epochs = {epochs}
mi_epochs = {mi_epochs}
batch_size = 256
lr = 0.05
attack = "{attack}"
poison_rate = 0.1
observe_classes = [1, 2]
mi_method = "noise-aware"
mi_options = {{ k = 2, max_samples = 64 }}
"""


def tiny_spec(path: Path, name: str = "tiny", attack: str = "badnets", epochs: int = 2,
              mi_epochs: str = "[1, 2]") -> Path:
    path.write_text(TINY.format(name=name, attack=attack, epochs=epochs, mi_epochs=mi_epochs))
    return path


def ibtui_cmd() -> list[str]:
    return [sys.executable, "-m", "ibtui.cli"]


@pytest.fixture
def cli_env():
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "200"  # Rich tables: no folding of run ids in captured output
    return env


@pytest.fixture
def one_torch_thread():
    """Tiny problems: one thread is faster and immune to oversubscribed CPUs."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@dataclass(frozen=True)
class TinyRun:
    """`ibtui run` of the default tiny spec, finished (see `tiny_done_run`)."""

    spec: Path  # the spec file
    runs: Path  # its runs directory (one run, done)
    result: subprocess.CompletedProcess  # the `ibtui run` that made it
    env: dict  # the environment it ran with (one thread)


@pytest.fixture(scope="session")
def tiny_done_run(tmp_path_factory) -> TinyRun:
    """One real `ibtui run` of `tiny_spec()` (2 epochs, MI at 1 and 2) with one thread, shared
    by the tests that only read a finished run or compare against it (test_e2e: what a run
    writes, the reading commands; test_faults: the uninterrupted reference a killed and resumed
    run must match bit for bit). Readers must not change the run: a test that resumes, cancels or
    deletes works on its own run."""
    tmp = tmp_path_factory.mktemp("tiny-done")
    spec = tiny_spec(tmp / "e.toml")
    runs = tmp / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    env.pop("IBTUI_PAUSE_AT", None)
    env.pop("IBTUI_INJECT_NAN", None)
    r = subprocess.run(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return TinyRun(spec, runs, r, env)
