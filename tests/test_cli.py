"""The CLI's read side: RUN arguments stay inside --runs-dir, user text is printed literally,
errors are one line (exit 2), the runs directory reaches every command, JSON output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_runs import make_fixture_runs
from typer.testing import CliRunner

from ibtui.cli import app
from ibtui.runs.store import atomic_write_json, load_run, process_start_time

DONE = "paper-badnets-digits-resnet18-p0.1-s0"
RUN_CMDS = ("show", "cancel", "plot", "tsne", "resume")


def invoke(*args: str, env: dict | None = None):
    env = {"IBTUI_RUNS_DIR": None, **(env or {})}
    r = CliRunner().invoke(app, [str(a) for a in args], env=env)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        raise AssertionError("".join(traceback.format_exception(r.exception)))
    return r


def one_line_error(r, *fragments: str) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in r.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def add_run(runs: Path, name: str, status: dict, spec: str | None = None) -> Path:
    p = runs / name
    p.mkdir(parents=True)
    atomic_write_json(p / "status.json", status)
    (p / "spec.toml").write_text(spec or f'[experiment]\nname = "{name}"\nepochs = 2\n')
    return p


@pytest.fixture
def runs(tmp_path):
    return make_fixture_runs(tmp_path)


# --- RUN arguments resolve to a run directly inside --runs-dir --------------------------------

@pytest.mark.parametrize("cmd", RUN_CMDS)
@pytest.mark.parametrize("key", ["../outside/victim", "../../../../etc", "/etc", "", "tiny*",
                                 "pap?r", "a/b", ".", "..", ".hidden", "x" * 300, "a\x00b"])
def test_run_arguments_never_leave_the_runs_dir(tmp_path, runs, cmd, key, monkeypatch):
    import ibtui.runs.scheduler as scheduler

    def no_scheduler(*a, **k):
        raise AssertionError("a scheduler must not start")

    monkeypatch.setattr(scheduler, "ensure_scheduler", no_scheduler)
    victim = add_run(tmp_path / "outside", "victim", {"state": "crashed", "created": 1.0})
    (runs / ".hidden").mkdir()
    atomic_write_json(runs / ".hidden" / "status.json", {"state": "crashed"})
    before = (victim / "status.json").read_bytes()
    args = [cmd, key, "--runs-dir", runs]
    if cmd == "resume":
        args.append("--detach")
    if cmd == "plot":
        args += ["--out", tmp_path / "figs"]
    one_line_error(invoke(*args), "RUN")
    assert (victim / "status.json").read_bytes() == before
    assert not (victim / "cancel").exists() and not (tmp_path / "figs").exists()
    assert not (runs / ".hidden" / "cancel").exists()


def test_empty_run_argument_does_not_open_the_only_run(tmp_path):
    runs = tmp_path / "runs"
    add_run(runs, "only", {"state": "done", "created": 1.0})
    one_line_error(invoke("show", "", "--runs-dir", runs), "empty")
    assert invoke("show", "only", "--runs-dir", runs).exit_code == 0
    assert invoke("show", "on", "--runs-dir", runs).exit_code == 0  # a unique prefix still works


def test_symlink_out_of_the_runs_dir_is_not_a_run(tmp_path):
    victim = add_run(tmp_path / "outside", "victim", {"state": "queued", "created": 1.0})
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "link").symlink_to(victim)
    one_line_error(invoke("cancel", "link", "--runs-dir", runs), "link")
    assert json.loads((victim / "status.json").read_text())["state"] == "queued"


# --- user text printed literally -------------------------------------------------------------

def test_markup_in_arguments_paths_and_values_is_printed_literally(tmp_path):
    one_line_error(invoke("show", "[/]", "--runs-dir", tmp_path), "[/]")
    line = one_line_error(invoke("ls", "--runs-dir", tmp_path / "[old]runs"), "[old]runs")
    assert "does not exist" in line
    runs = tmp_path / "[bold]runs[/]"
    add_run(runs, "r1", {"state": "failed", "created": 1.0, "error": "boom [/] [old] [red]x"})
    r = invoke("show", "r1", "--runs-dir", runs)
    assert r.exit_code == 0 and "boom [/] [old] [red]x" in r.stdout
    r = invoke("ls", "--runs-dir", runs)
    assert r.exit_code == 0 and "[bold]runs[/]" in r.stdout
    r = invoke("cancel", "r1", "--runs-dir", runs)
    assert "already failed" in r.stderr


def test_bad_choice_messages_name_the_allowed_values(runs):
    line = one_line_error(invoke("leaderboard", "--runs-dir", runs, "--sort", "[nope]"), "[nope]")
    assert "clean_acc" in line and "wall_s" in line
    one_line_error(invoke("ls", "--format", "xml"), "xml", "table", "json")
    one_line_error(invoke("--bogus"), "--bogus")
    one_line_error(invoke("show"), "RUN")
    one_line_error(invoke("attacks"), "attacks --help")


def test_errors_are_one_line_when_piped(tmp_path):
    long = tmp_path / ("deep-" * 30) / "runs"
    r = subprocess.run([sys.executable, "-m", "ibtui.cli", "ls", "--runs-dir", str(long)],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and str(long) in r.stderr and "Traceback" not in r.stderr


def test_control_characters_in_messages_are_escaped(tmp_path):
    line = one_line_error(invoke("ls", "--runs-dir", tmp_path / "a\nb\x1b[31m"))
    assert "\x1b" not in line and "a\\nb" in line


# --- runs directory: missing, a file, from the top-level option, from the environment -------

@pytest.mark.parametrize("cmd", ["ls", "leaderboard", "report"])
def test_missing_or_file_runs_dir_exits_2(tmp_path, cmd):
    one_line_error(invoke(cmd, "--runs-dir", tmp_path / "nope"), "does not exist")
    (tmp_path / "file").write_text("x")
    one_line_error(invoke(cmd, "--runs-dir", tmp_path / "file"), "not a directory")


def test_runs_dir_reaches_every_subcommand_with_precedence(tmp_path, runs):
    other = tmp_path / "other"
    add_run(other, "lonely", {"state": "queued", "created": 1.0})

    def ids(r):
        assert r.exit_code == 0, r.output
        return {x["run"] for x in json.loads(r.stdout)["runs"]}

    assert ids(invoke("--runs-dir", other, "ls", "--format", "json")) == {"lonely"}
    assert ids(invoke("ls", "--format", "json", env={"IBTUI_RUNS_DIR": str(other)})) == {"lonely"}
    # subcommand option > top-level option > environment
    assert DONE in ids(invoke("--runs-dir", other, "ls", "--runs-dir", runs, "--format", "json"))
    assert DONE in ids(invoke("--runs-dir", runs, "ls", "--format", "json",
                              env={"IBTUI_RUNS_DIR": str(other)}))
    r = invoke("--runs-dir", runs, "leaderboard", "--format", "json")
    assert DONE in {x["run"] for x in json.loads(r.stdout)}
    assert invoke("--runs-dir", runs, "show", DONE).exit_code == 0
    cwd = os.getcwd()
    os.chdir(other)
    try:
        one_line_error(invoke("ls"), "runs")  # default: ./runs (absent here)
    finally:
        os.chdir(cwd)


def test_runs_dir_helper_for_other_commands(tmp_path):
    from ibtui.cli import resolve_runs_dir

    os.environ.pop("IBTUI_RUNS_DIR", None)
    assert resolve_runs_dir(None) == Path("runs")
    assert resolve_runs_dir(tmp_path) == tmp_path
    os.environ["IBTUI_RUNS_DIR"] = str(tmp_path / "env")
    try:
        assert resolve_runs_dir(None) == tmp_path / "env"
    finally:
        del os.environ["IBTUI_RUNS_DIR"]


# --- version, completion, choices, JSON -------------------------------------------------------

def test_version_completion_and_listed_choices(runs):
    import ibtui

    r = invoke("--version")
    assert r.exit_code == 0 and ibtui.__version__ in r.stdout
    assert "--install-completion" in invoke("--help").stdout
    h = invoke("leaderboard", "--help").stdout
    assert "table" in h and "csv" in h and "json" in h and "clean_acc" in h
    assert invoke("leaderboard", "--runs-dir", runs, "--format", "xml").exit_code == 2
    assert "json" in invoke("ls", "--help").stdout and "json" in invoke("show", "--help").stdout


def test_ls_and_show_json(runs):
    r = invoke("ls", "--runs-dir", runs, "--format", "json")
    data = json.loads(r.stdout)
    rows = {x["run"]: x for x in data["runs"]}
    assert len(rows) == 13 and rows[DONE]["state"] == "done" and rows[DONE]["score"] is not None
    assert rows["broken-run"]["state"] == "damaged" and rows["broken-run"]["damaged"]
    r = invoke("show", DONE, "--runs-dir", runs, "--format", "json")
    d = json.loads(r.stdout)
    assert d["run"] == DONE and d["summary"]["score"] is not None
    assert d["metrics"][0]["epoch"] == 1 and {m["method"] for m in d["mi"]} == {"noise-aware"}


def test_ls_says_when_queued_runs_have_no_scheduler(tmp_path):
    runs = tmp_path / "runs"
    add_run(runs, "waiting", {"state": "queued", "created": 1.0})
    r = invoke("ls", "--runs-dir", runs)
    assert "no scheduler" in r.stdout and "ibtui resume" in r.stdout and "ibtui run" in r.stdout
    data = json.loads(invoke("ls", "--runs-dir", runs, "--format", "json").stdout)
    assert data["scheduler"] is None and any("no scheduler" in w for w in data["warnings"])
    atomic_write_json(runs / ".scheduler.json", {"pid": os.getpid(), "host": socket.gethostname(),
                                                 "workers": []})
    assert "no scheduler" not in invoke("ls", "--runs-dir", runs).stdout


# --- liveness: pid reused by another process, stale heartbeat ---------------------------------

def test_cancel_and_resume_a_run_whose_pid_is_not_its_worker(tmp_path):
    from ibtui.runs.scheduler import set_queued

    runs = tmp_path / "runs"
    stale = {"state": "running", "pid": 1, "host": socket.gethostname(), "created": 1.0,
             "heartbeat": time.time() - 3 * 3600}
    a = add_run(runs, "a", stale)
    b = add_run(runs, "b", stale)
    assert load_run(a).state == "crashed"
    r = invoke("cancel", "a", "--runs-dir", runs)  # nothing runs: no relabelling of the crash
    assert r.exit_code == 2 and "crashed, nothing runs to cancel" in r.stderr
    assert load_run(a).state == "crashed"
    set_queued(b)  # what `ibtui resume` does first
    assert load_run(b).state == "queued"
    # pid alive and heartbeat fresh, but the start time says pid 1 is not the worker
    c = add_run(runs, "c", dict(stale, heartbeat=time.time(),
                                pid_start=(process_start_time(1) or 0) + 1000))
    assert load_run(c).state == "crashed"


# --- read-only runs dir, bad --out ------------------------------------------------------------

def test_os_errors_are_one_line(runs, tmp_path, monkeypatch):
    import ibtui.runs.scheduler as scheduler

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path / "cancel"))

    monkeypatch.setattr(scheduler, "request_cancel", denied)
    one_line_error(invoke("cancel", DONE, "--runs-dir", runs), "Permission denied", "cancel")


def test_plot_out_must_be_a_writable_directory(runs, tmp_path):
    f = tmp_path / "taken.png"
    f.write_text("x")
    one_line_error(invoke("plot", DONE, "--runs-dir", runs, "--out", f), "not a directory")
    one_line_error(invoke("plot", DONE, "--runs-dir", runs, "--out", tmp_path / ("x" * 300)),
                   "too long")
    one_line_error(invoke("tsne", DONE, "--runs-dir", runs, "--out", f), "not a directory")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        one_line_error(invoke("plot", DONE, "--runs-dir", runs, "--out", ro / "figs"))


def test_overlong_runs_dir_component(tmp_path):
    one_line_error(invoke("ls", "--runs-dir", tmp_path / ("r" * 300)))
    one_line_error(invoke("show", "x", "--runs-dir", tmp_path / ("r" * 300)))


def test_worker_records_its_start_time(tmp_path):
    from ibtui.runs.store import RunWriter

    w = RunWriter(tmp_path)
    w.set_status(state="running", pid=os.getpid(), host=socket.gethostname())
    st = json.loads((tmp_path / "status.json").read_text())
    assert st["pid_start"] == process_start_time(os.getpid()) is not None
    assert load_run(tmp_path).state == "running"


def test_plot_show_and_report_survive_wrong_types(tmp_path, runs):
    rid = "paper-wanet-digits-vgg16-p0.05-s1"
    d = runs / rid
    s = json.loads((d / "summary.json").read_text())
    s.update(score="abc", phases="x", target="zero", sanity=[1, "x"])
    (d / "summary.json").write_text(json.dumps(s))
    st = json.loads((d / "status.json").read_text())
    st.update(created="yesterday", pid=[1], error=["[/]"])
    (d / "status.json").write_text(json.dumps(st))
    with open(d / "mi.jsonl", "a") as f:
        f.write('{"epoch": 1, "term": "xt", "subset": "0", "value": 1.0}\n')  # no method
        f.write('{"epoch": "1", "term": "xt", "subset": 0, "method": "m", "value": "x"}\n')
    (d / "spec.toml").write_text((d / "spec.toml").read_text().replace("target = 0", 'target = "0"'))
    r = invoke("show", rid, "--runs-dir", runs)
    assert r.exit_code == 0
    for frag in ("score", "phases", "created", "pid", "mi.jsonl", "target"):
        assert frag in r.stdout, frag
    r = invoke("plot", rid, "--runs-dir", runs, "--out", tmp_path / "figs")
    assert r.exit_code == 0 and "mi_curves" in r.stdout
    assert invoke("report", "--runs-dir", runs).exit_code == 0
    r = invoke("leaderboard", "--runs-dir", runs, "--format", "json")
    row = next(x for x in json.loads(r.stdout) if x["run"] == rid)
    assert row["score"] is None and "score" in row["state"]


def test_read_only_runs_dir(tmp_path, monkeypatch):
    """resume, cancel and plot on a read-only file system: one line each, nothing half-written."""
    import ibtui.runs.scheduler as scheduler

    monkeypatch.setattr(scheduler, "ensure_scheduler", lambda *a, **k: pytest.fail("started"))
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        runs = make_fixture_runs(mnt)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        queued = "paper-blend-digits-resnet18-p0.05-s1"
        crashed = "paper-badnets-digits-resnet18-p0.2-s2"
        one_line_error(invoke("cancel", queued, "--runs-dir", runs), "Read-only file system")
        one_line_error(invoke("resume", crashed, "--runs-dir", runs, "--detach"),
                       "Read-only file system")
        one_line_error(invoke("plot", DONE, "--runs-dir", runs, "--out", runs / "figs"),
                       "Read-only file system")
        assert invoke("ls", "--runs-dir", runs).exit_code == 0
        assert load_run(runs / queued).state == "queued" and load_run(runs / crashed).state == "crashed"
    finally:
        subprocess.run(["umount", str(mnt)])
