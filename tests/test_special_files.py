"""Special files and links in a runs directory, extreme values, and output errors: readers never
block, never follow a link out of a run, never crash on a neighbour's damage, and report a
failed write with a code of its own (141 for a reader that left, 4 for anything else)."""

import json
import os
import shutil
import subprocess

import pytest
from fixtures_runs import make_fixture_runs
from helpers import DONE, QUEUED, ibtui_cmd

# another seed of DONE's configuration, so that `show DONE` and --replicas read it
NEIGHBOUR = DONE.replace("-s0", "-s7")


def ibtui(*args, env=None, timeout=60, **kw):
    return subprocess.run(ibtui_cmd() + list(args), capture_output=True, text=True,
                          env=env or {**os.environ, "COLUMNS": "200"}, timeout=timeout, **kw)


@pytest.fixture
def runs(tmp_path):
    return make_fixture_runs(tmp_path)


def _add_neighbour(runs, summary_update: dict) -> None:
    shutil.copytree(runs / DONE, runs / NEIGHBOUR)
    spec = runs / NEIGHBOUR / "spec.toml"
    spec.write_text(spec.read_text().replace("seed = 0", "seed = 7"))
    s = json.loads((runs / NEIGHBOUR / "summary.json").read_text())
    s.update(summary_update)
    (runs / NEIGHBOUR / "summary.json").write_text(json.dumps(s))


@pytest.mark.parametrize("args", [("ls",), ("leaderboard",), ("leaderboard", "--format", "json"),
                                  ("leaderboard", "--format", "csv"), ("show", DONE),
                                  ("report",), ("leaderboard", "--replicas")])
def test_a_fifo_in_a_run_never_blocks_a_reader(runs, args):
    (runs / DONE / "spec.toml").unlink()
    os.mkfifo(runs / DONE / "spec.toml")
    r = ibtui(*args, "--runs-dir", str(runs))  # timeout 60 s: a hang fails the test
    assert r.returncode == 0, r.stderr
    if args == ("ls",):
        listed = json.loads(ibtui("ls", "--format", "json", "--runs-dir", str(runs)).stdout)["runs"]
        (row,) = [x for x in listed if x["run"] == DONE]
        assert any("a FIFO, not a regular file" in d for d in row["damaged"])


@pytest.mark.parametrize("target", ["fifo", "/dev/zero"])
def test_run_refuses_a_special_experiments_file(tmp_path, target):
    if target == "fifo":
        target = str(tmp_path / "fifo.toml")
        os.mkfifo(target)
    r = ibtui("run", target, "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2
    assert "not a regular file; allowed: a regular TOML file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_linked_status_file_is_not_read(runs, tmp_path):
    victim = tmp_path / "secret.json"
    victim.write_text(json.dumps({"state": "done", "error": "SECRET-CONTENT"}))
    (runs / DONE / "status.json").unlink()
    (runs / DONE / "status.json").symlink_to(victim)
    for args in (("show", DONE), ("ls",), ("ls", "--format", "json")):
        r = ibtui(*args, "--runs-dir", str(runs))
        assert "SECRET-CONTENT" not in r.stdout + r.stderr
    listed = json.loads(ibtui("ls", "--format", "json", "--runs-dir", str(runs)).stdout)["runs"]
    (row,) = [x for x in listed if x["run"] == DONE]
    assert any("symbolic link" in d for d in row["damaged"])


def test_cancel_replaces_a_linked_marker_instead_of_writing_through_it(runs, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (runs / QUEUED / "cancel").symlink_to(victim)
    r = ibtui("cancel", QUEUED, "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "keep me"
    assert not (runs / QUEUED / "cancel").is_symlink()


def test_tsne_refuses_a_linked_figures_folder_and_a_damaged_features_file(tiny_done_run,
                                                                          tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(tiny_done_run.runs, runs)
    (run,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "figures").symlink_to(elsewhere, target_is_directory=True)
    r = ibtui("tsne", run.name, "--runs-dir", str(runs), env=tiny_done_run.env)
    assert r.returncode == 2 and "a symbolic link; allowed: a real directory" in r.stderr
    assert list(elsewhere.iterdir()) == []
    (run / "figures").unlink()
    for f in (run / "artifacts").glob("features_*.npz"):
        f.write_bytes(b"garbage, not an npz")
    r = ibtui("tsne", run.name, "--runs-dir", str(runs), env=tiny_done_run.env)
    assert r.returncode == 2 and "damaged features file" in r.stderr
    assert "Traceback" not in r.stderr and "pickle" not in r.stderr


@pytest.mark.parametrize("value", [1e308, -0.5, 7.0])
def test_an_extreme_value_damages_its_run_not_its_neighbours(runs, value):
    _add_neighbour(runs, {"clean_acc": value})
    for args in (("show", DONE), ("leaderboard", "--replicas"), ("report",), ("leaderboard",)):
        r = ibtui(*args, "--runs-dir", str(runs))
        assert r.returncode == 0, (args, r.stderr)
        assert "Traceback" not in r.stderr
    listed = json.loads(ibtui("ls", "--format", "json", "--runs-dir", str(runs)).stdout)["runs"]
    (row,) = [x for x in listed if x["run"] == NEIGHBOUR]
    assert any("clean_acc" in d for d in row["damaged"])


def test_deeply_nested_toml_is_one_line_exit_2(tmp_path):
    p = tmp_path / "deep.toml"
    p.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    r = ibtui("run", str(p), "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2 and "nested too deeply" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_output_errors_have_codes_of_their_own(runs, tmp_path):
    cmd = " ".join(ibtui_cmd())
    env = {**os.environ, "COLUMNS": "200"}
    for args in ("leaderboard", "show " + DONE):
        sh = f"{cmd} {args} --runs-dir {runs} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"
        r = subprocess.run(["bash", "-c", sh], capture_output=True, text=True, env=env,
                           timeout=60)
        # 141 when the write met the closed pipe, 0 when it all fit in the pipe first; never
        # the failed-run code 1, never a message
        assert r.stdout.strip() in ("0", "141") and r.stderr == "", (args, r.stdout, r.stderr)
    r = subprocess.run(["bash", "-c", f"{cmd} leaderboard --format json --runs-dir {runs} >&-"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 4 and "standard output is closed" in r.stderr
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            r = subprocess.run(ibtui_cmd() + ["ls", "--runs-dir", str(runs)], stdout=full,
                               stderr=subprocess.PIPE, text=True, env=env, timeout=60)
        assert r.returncode == 4 and "cannot write the output" in r.stderr
    r = ibtui("leaderboard", "--runs-dir", str(runs), env={**env, "PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and "\\u2714" in r.stdout  # escaped, not a UnicodeEncodeError


def test_a_run_dir_named_in_other_bytes_lists_under_strict_utf8(runs):
    odd = os.fsencode(str(runs)) + b"/bad-\xff-name"
    shutil.copytree(runs / DONE, os.fsdecode(odd))
    env = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    for args in (("ls",), ("leaderboard",), ("leaderboard", "--format", "json")):
        r = ibtui(*args, "--runs-dir", str(runs), env=env)
        assert r.returncode == 0, (args, r.stderr)
        assert "UnicodeEncodeError" not in r.stderr


def test_links_are_never_runs_and_scheduler_files_are_checked_first(runs, tmp_path):
    """A link to a queued run elsewhere is not queued (its worker would write there); a link
    to a run of the same directory is not counted twice; a linked or odd scheduler file is
    refused before any run is created."""
    from ibtui.runs.resources import plan_resources
    from ibtui.runs.scheduler import Scheduler

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(runs / QUEUED, elsewhere)
    (runs / "evil").symlink_to(elsewhere, target_is_directory=True)
    (runs / "twin").symlink_to(runs / DONE, target_is_directory=True)
    s = Scheduler(runs, plan_resources(jobs=1, gpus="", threads=1))
    queued = [p.name for p in s.queued()]
    assert QUEUED in queued and "evil" not in queued
    listed = json.loads(ibtui("ls", "--format", "json", "--runs-dir", str(runs)).stdout)["runs"]
    assert {"evil", "twin"}.isdisjoint(r["run"] for r in listed)
    groups = json.loads(ibtui("leaderboard", "--replicas", "--format", "json", "--runs-dir",
                              str(runs)).stdout)
    assert all("twin" not in g["runs"] for g in groups)

    spec = tmp_path / "e.toml"
    spec.write_text((runs / DONE / "spec.toml").read_text().replace("[experiment]",
                                                                      "[[experiment]]"))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".scheduler.lock").symlink_to(victim)
    r = ibtui("run", str(spec), "--runs-dir", str(fresh))
    assert r.returncode == 2 and "a symbolic link; allowed: a regular file or none" in r.stderr
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in fresh.iterdir()) == [".scheduler.lock"]  # nothing created
    (fresh / ".scheduler.lock").unlink()
    (fresh / ".scheduler.json").mkdir()
    r = ibtui("run", str(spec), "--runs-dir", str(fresh))
    assert r.returncode == 2 and ".scheduler.json: a directory" in r.stderr
    assert sorted(p.name for p in fresh.iterdir()) == [".scheduler.json"]


def test_a_damaged_scheduler_file_is_read_as_no_workers(runs):
    from ibtui.runs.scheduler import scheduler_alive, scheduler_info

    (runs / ".scheduler.json").write_text(json.dumps({"pid": "x", "host": "elsewhere",
                                                      "workers": "x"}))
    info = scheduler_info(runs)
    assert info["workers"] == [] and info["pid"] is None
    os.mkfifo(runs / ".scheduler.lock")
    assert scheduler_alive(runs) is False  # returns at once: a FIFO is never opened blocking


@pytest.mark.parametrize("args,message", [
    (("--gpus", "banana"), "'banana' is no GPU id"), (("--gpus", "99"), "GPU 99 is not visible"),
    (("--gpus", "0,0"), "an id is given twice"), (("--threads", "100000"), "--threads 100000"),
    (("--jobs", "-1"), "--jobs -1: out of range")])
def test_launch_options_are_checked(runs, args, message):
    for cmd in (("resume", QUEUED), ("tui",)):
        r = ibtui(*cmd, *args, "--runs-dir", str(runs), env={**os.environ,
                                                             "CUDA_VISIBLE_DEVICES": ""})
        assert r.returncode == 2 and message in r.stderr, (cmd, r.stderr)


def test_validate_mi_and_gallery_check_arguments_first(tmp_path):
    r = ibtui("validate-mi", "--method", "banana", "--out", str(tmp_path / "v.png"))
    assert r.returncode == 2 and "unknown estimator" in r.stderr
    assert not (tmp_path / "v.png").exists()
    for args, message in ((("--out", str(tmp_path / "x.txt")), "a .png file path"),
                          (("--seed", "-1"), "--seed -1: out of range")):
        r = ibtui("attacks", "gallery", *args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_tui_without_a_terminal_says_so(runs):
    r = subprocess.run(ibtui_cmd() + ["tui", "--runs-dir", str(runs)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "must be a terminal" in r.stderr


@pytest.mark.parametrize("body,message", [
    ("poison_rate = 0.99", "keeps no image of its own"),
    ('attack = "wanet"\nattack_options = { cross_ratio = 9 }', "selects 100% of the training"),
    ('attack = "wanet"\nattack_options = { cross_ratio = 100 }', "selects 1010%"),
    ('attack = "adap-blend"\nattack_options = { cover_rate = 0.95 }', "selects 105%"),
    ('attack = "adap-blend"\nattack_options = { conservatism = 1.0 }',
     "no selected image carries the backdoor")])
def test_near_total_poisoning_is_refused(tmp_path, body, message):
    from ibtui.errors import SpecError
    from ibtui.spec import load_spec

    p = tmp_path / "e.toml"
    attack = "" if "attack =" in body else 'attack = "badnets"\n'
    p.write_text(f'[[experiment]]\nname = "t"\nepochs = 2\nmi_epochs = [2]\n{attack}{body}\n')
    with pytest.raises(SpecError, match=message):
        load_spec(p)


def test_values_that_would_fail_in_the_worker_are_refused(tmp_path, monkeypatch):
    import numpy as np

    from ibtui.errors import SpecError
    from ibtui.spec import load_spec

    def load(body: str):
        p = tmp_path / "e.toml"
        p.write_text(f'[[experiment]]\nname = "t"\nepochs = 2\nmi_epochs = [2]\n{body}\n')
        return load_spec(p)

    with pytest.raises(SpecError, match="has none to model"):
        load("noise_xt = 0.0\nnoise_ty = 0.0")
    with pytest.raises(SpecError, match="is not a torch.save file"):
        load('attack = "lc"\nattack_options = { clean_checkpoint = "/etc/passwd" }')
    np.save(tmp_path / "p.npy", np.full((32, 32, 3), 7, np.uint8))
    monkeypatch.chdir(tmp_path)
    (run,) = load('attack = "blend"\nattack_options = { pattern = "p.npy" }')
    assert run.values["attack_options"]["pattern"] == str(tmp_path.resolve() / "p.npy")


def test_a_ghost_running_run_can_be_resumed_and_a_crash_is_not_relabelled(runs):
    """'running' with a live unrelated pid (1), no start time and no heartbeat: crashed, so
    resume takes it; cancel refuses a crashed run instead of calling it cancelled; resume
    checks a hand-edited spec.toml again."""
    from ibtui.runs.store import effective_state

    st = json.loads((runs / QUEUED / "status.json").read_text())
    st.update(state="running", pid=1, host=os.uname().nodename)
    st.pop("pid_start", None)
    st.pop("heartbeat", None)
    (runs / QUEUED / "status.json").write_text(json.dumps(st))
    assert effective_state(st) == "crashed"
    st["heartbeat"] = 4e9  # from the future
    assert effective_state(st) == "crashed"
    r = ibtui("cancel", QUEUED, "--runs-dir", str(runs))
    assert r.returncode == 2 and "crashed, nothing runs to cancel" in r.stderr
    assert json.loads((runs / QUEUED / "status.json").read_text())["state"] == "running"
    spec = runs / QUEUED / "spec.toml"
    good = spec.read_text()
    spec.write_text(good.replace("epochs = ", "epochs = -", 1))
    r = ibtui("resume", QUEUED, "--runs-dir", str(runs), "--detach")
    assert r.returncode == 2 and "spec.toml" in r.stderr and "out of range" in r.stderr
    assert json.loads((runs / QUEUED / "status.json").read_text())["state"] == "running"
    spec.write_text(good)
    from ibtui.runs.scheduler import set_queued

    set_queued(runs / QUEUED)
    assert json.loads((runs / QUEUED / "status.json").read_text())["state"] == "queued"


@pytest.mark.timeout(600)
def test_a_run_directory_deleted_while_it_trains_ends_ibtui_run(tmp_path):
    """`ibtui run` counts a run whose directory was deleted as gone and exits 1, instead of
    following a damaged run forever."""
    import time

    from helpers import tiny_spec

    spec = tiny_spec(tmp_path / "e.toml", epochs=1, mi_epochs="[1]")
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200",
           "IBTUI_PAUSE_AT": "worker-start"}
    proc = subprocess.Popen(ibtui_cmd() + ["run", str(spec), "--runs-dir", str(runs),
                                           "--gpus", ""], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(runs.glob("*/paused-worker-start")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        (marker,) = runs.glob("*/paused-worker-start")
        shutil.rmtree(marker.parent)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    assert "gone" in err and "run directory was deleted" in err
