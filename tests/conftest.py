"""Fixtures shared by the test modules. Shared helper functions and constants live in helpers.py."""

import asyncio
import fcntl
import inspect
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ibtui.runtime import one_numpy_blas_thread, passive_openmp

# The test processes themselves get a worker's defaults for numpy's BLAS (one thread) and
# OpenMP (threads that sleep when they wait), before anything imports numpy or torch: beside the
# other test processes and the workers, a second OpenBLAS thread and spinning OpenMP threads
# spent the CPU the suite lacks (an in-process MI test took 78 s under `make test`, 43 s with
# these, 7 s alone). Workers set the same defaults, so what they inherit from here changes
# nothing; the tests of those defaults remove both variables.
one_numpy_blas_thread()
passive_openmp()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # a pytest-xdist worker starts with COLUMNS=80 in its environment, which a plain run does
    # not have: ibtui's console would fix its width at import and ignore the COLUMNS that the
    # CLI tests give each command
    os.environ.pop("COLUMNS", None)


def pytest_configure(config):
    """pytest-xdist puts each worker's temporary folders one level below the session's
    (`.../pytest-N/popen-gw0/`), and CLI tables name the runs directory in their title, which
    wraps when the path is long: tests that read those tables failed under `-n 2` only. So an
    `-n` run without --basetemp gets a short base folder of its own (unique, under the system
    temporary folder), removed at the end when every test passed."""
    if (hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None)
            or config.option.basetemp):
        return
    import tempfile

    config.option.basetemp = tempfile.mkdtemp(prefix="ibt")
    config._ibtui_short_basetemp = config.option.basetemp


def pytest_sessionfinish(session, exitstatus):
    base = getattr(session.config, "_ibtui_short_basetemp", None)
    if base and exitstatus == 0:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`-n 3 --dist loadgroup`, Makefile) the tests of a module
    with a module-scoped fixture run in one worker process, so the fixture is made once; the
    Slurm tests all run in one worker, one after another, as the local cluster has few CPUs.
    Every other test goes to whichever worker is free."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
            continue
        fixtures = getattr(item, "_fixtureinfo", None)
        defs = fixtures.name2fixturedefs.values() if fixtures else ()
        if any(d and d[-1].scope == "module" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def made_once(tmp_path_factory, name: str, make) -> Path:
    """`make(folder)` run once for the whole test session, also across pytest-xdist workers
    (they share the parent of their base temporary directories): the first worker to ask
    makes it under a lock, the others wait and get the same folder. Returns the folder."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / f"{name}.made").exists():
            if folder.exists():  # a try that failed: start again
                import shutil

                shutil.rmtree(folder)
            folder.mkdir()
            make(folder)
            (root / f"{name}.made").touch()
    return folder


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """An `async def` test (the app's Pilot tests) runs to the end in a fresh event loop of its
    own (no asyncio pytest plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True


@pytest.fixture(scope="session", autouse=True)
def index_cache_dir(tmp_path_factory):
    """The suite's runs-index databases go to a temporary cache directory, never the user's
    ~/.cache (commands the tests start inherit it)."""
    os.environ["IBTUI_CACHE_DIR"] = str(tmp_path_factory.mktemp("ibtui-cache"))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """The fixture runs directory (fixtures_runs.py: every state, damaged runs) in tmp_path,
    the working directory (the app's header shows it as `runs`). Modules with runs of their
    own define their own `runs`."""
    from fixtures_runs import make_fixture_runs

    monkeypatch.chdir(tmp_path)
    return make_fixture_runs(tmp_path)


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
    deletes works on its own run. Made once per session, also across xdist workers."""
    from helpers import ibtui_cmd, tiny_spec

    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    env.pop("IBTUI_PAUSE_AT", None)
    env.pop("IBTUI_INJECT_NAN", None)

    def make(tmp: Path) -> None:
        spec = tiny_spec(tmp / "e.toml")
        r = subprocess.run(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(tmp / "runs")],
                           capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        (tmp / "result.json").write_text(json.dumps([r.args, r.returncode, r.stdout, r.stderr]))

    tmp = made_once(tmp_path_factory, "tiny-done", make)
    r = subprocess.CompletedProcess(*json.loads((tmp / "result.json").read_text()))
    return TinyRun(tmp / "e.toml", tmp / "runs", r, env)
