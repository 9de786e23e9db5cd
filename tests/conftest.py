"""Fixtures shared by the test modules. Shared helper functions and constants live in helpers.py."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def index_cache_dir(tmp_path_factory):
    """The suite's runs-index databases go to a temporary cache directory, never the user's
    ~/.cache (commands the tests start inherit it)."""
    os.environ["IBTUI_CACHE_DIR"] = str(tmp_path_factory.mktemp("ibtui-cache"))


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
    from helpers import ibtui_cmd, tiny_spec

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
