"""Fault injection with real processes: SIGKILL a worker at named points, resume, compare with an
uninterrupted run; Ctrl-C. Concurrent schedulers and their hand-over are in test_launch.py,
forced deterministically through the scheduler-release pause point; a run launched twice, a
closed terminal and a full disk are in test_exactly_once*.py. (IBTUI_PAUSE_AT makes the worker stop at
a named point so the kill is deterministic.)

Every scenario is a separate `ibtui run` (own runs directory, one thread) faulted and resumed by
real processes; the module's fixture drives them all at once (a tiny run uses one core, CI has
two), and each test checks its own scenario. The uninterrupted reference is the session's shared
tiny run (conftest.tiny_done_run), same spec and thread count."""

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import ibtui_cmd, tiny_spec

from ibtui.runs.store import list_runs, load_run

pytestmark = pytest.mark.slow

KILL_POINTS = ["poisoning", "mid-epoch-2", "mi-2"]


def start(args, env, **kw):
    return subprocess.Popen(ibtui_cmd() + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def results(run):
    metrics = [{k: v for k, v in m.items() if not k.endswith("seconds") and k != "time"} for m in run.metrics()]
    mi = sorted((m["epoch"], m["term"], m["subset"], m["method"], m["value"]) for m in run.mi())
    return metrics, mi, run.summary["score"]


@pytest.fixture(scope="module")
def reference(tiny_done_run):
    (run,) = list_runs(tiny_done_run.runs)
    assert run.state == "done"
    return tiny_done_run.spec, results(run)


@dataclass
class Scenario:
    """One `ibtui run` parked at `point`, faulted (`fault`: "sigkill" the worker, or "sigint"
    the `ibtui run` twice), then `ibtui resume`d; what was seen at each step."""

    point: str
    fault: str
    spec: Path
    runs: Path
    env: dict
    proc: subprocess.Popen | None = None
    path: Path | None = None  # the run directory
    run_code: int | None = None  # exit status of the faulted `ibtui run`
    faulted: dict = field(default_factory=dict)  # state, error, epochs after the fault
    resume: subprocess.Popen | None = None
    resume_code: int | None = None
    resume_err: str = ""
    problem: str = ""  # why the scenario could not be driven to its end

    def marker(self) -> Path | None:
        return next(self.runs.glob(f"*/paused-{self.point}"), None)


def apply_fault(sc: Scenario, marker: Path) -> None:
    if sc.fault == "sigkill":
        os.kill(int(marker.read_text()), signal.SIGKILL)
    else:
        sc.proc.send_signal(signal.SIGINT)  # first Ctrl-C: SIGTERM to workers, stop at a safe point
        time.sleep(1.0)
        sc.proc.send_signal(signal.SIGINT)  # the worker is parked in the pause hook: second Ctrl-C kills
    sc.proc.communicate(timeout=60)
    sc.run_code = sc.proc.returncode
    sc.path = marker.parent
    run = load_run(sc.path)
    sc.faulted = {"state": run.state, "error": run.status.get("error") or "",
                  "epochs": [m["epoch"] for m in run.metrics()]}
    marker.unlink()
    env = dict(sc.env)
    env.pop("IBTUI_PAUSE_AT")
    sc.resume = start(["resume", run.id, "--runs-dir", str(sc.runs)], env)


def drive(scenarios: list[Scenario], timeout: float = 900) -> None:
    """Start every scenario, fault each as soon as it is parked, resume it at once; return when
    every resume has ended. A scenario that goes wrong records why and leaves the others alone."""
    for sc in scenarios:
        sc.proc = start(["run", str(sc.spec), "--runs-dir", str(sc.runs)], sc.env)
    t = time.monotonic()
    try:
        while True:
            pending = False
            for sc in scenarios:
                if sc.problem or sc.resume_code is not None:
                    continue
                pending = True
                if sc.resume is None:
                    marker = sc.marker()
                    if marker is not None:
                        try:
                            apply_fault(sc, marker)
                        except Exception as e:  # noqa: BLE001 - reported by the scenario's test
                            sc.problem = f"fault at {sc.point}: {type(e).__name__}: {e}"
                    elif sc.proc.poll() is not None:
                        out, err = sc.proc.communicate()
                        sc.problem = f"`ibtui run` ended before {sc.point}: {out}\n{err}"
                elif sc.resume.poll() is not None:
                    _, sc.resume_err = sc.resume.communicate()
                    sc.resume_code = sc.resume.returncode
            if not pending:
                return
            if time.monotonic() - t > timeout:
                for sc in scenarios:
                    if not sc.problem and sc.resume_code is None:
                        sc.problem = f"timed out after {timeout}s"
                return
            time.sleep(0.2)
    finally:
        for sc in scenarios:
            for p in (sc.proc, sc.resume):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.communicate()


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory, reference):
    spec, _ = reference
    base = tmp_path_factory.mktemp("faults")
    out = {}
    for point in KILL_POINTS:
        out[point] = Scenario(point, "sigkill", spec, base / point / "runs",
                              dict(os.environ, OMP_NUM_THREADS="1", IBTUI_PAUSE_AT=point))
    sigint_spec = tiny_spec(base / "sigint.toml", epochs=2, mi_epochs="[2]")
    out["sigint"] = Scenario("after-epoch-1", "sigint", sigint_spec, base / "sigint" / "runs",
                             dict(os.environ, OMP_NUM_THREADS="1", IBTUI_PAUSE_AT="after-epoch-1"))
    drive(list(out.values()))
    return out


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_resume_matches_uninterrupted(reference, scenarios, point):
    _, expected = reference
    sc = scenarios[point]
    assert not sc.problem, sc.problem
    assert sc.faulted["state"] == "crashed"
    assert "SIGKILL" in sc.faulted["error"]
    assert sc.resume_code == 0, sc.resume_err
    run = load_run(sc.path)
    assert run.state == "done", run.log_tail()
    metrics, mi, score = results(run)
    exp_metrics, exp_mi, exp_score = expected
    # bit-identical on CPU with a fixed seed and thread count
    assert metrics == exp_metrics
    assert mi == exp_mi
    assert score == exp_score


def test_sigint_interrupts_and_resume_finishes(scenarios):
    sc = scenarios["sigint"]
    assert not sc.problem, sc.problem
    assert sc.faulted["state"] == "interrupted"
    assert sc.faulted["epochs"] == [1]  # the finished epoch survived
    assert sc.resume_code == 0, sc.resume_err
    run = load_run(sc.path)
    assert run.state == "done" and [m["epoch"] for m in run.metrics()] == [1, 2]
