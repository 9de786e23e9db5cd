"""Reading many runs: the runs-directory index is a cache that changes nothing but speed."""

from __future__ import annotations

import json
import os
import re
import sqlite3

import pytest
from fixtures_runs import make_fixture_runs
from helpers import piloted

from ibtui.runs import store
from ibtui.runs.store import (
    CACHE_ENV,
    IndexedRun,
    RunIndex,
    index_db_path,
    light_spec,
    light_status,
    light_summary,
    list_runs,
    list_runs_cached,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Every test's index databases in its own cache directory."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def _view(runs):
    """What a listing shows: the index keeps summaries without their bulky tables."""
    return [(r.id, r.state, light_status(r.status),
             r.spec if isinstance(r, IndexedRun) else light_spec(r.spec),
             r.summary if isinstance(r, IndexedRun) else light_summary(r.summary),
             sorted(r.damaged), r.config) for r in runs]


def _rows(runs) -> dict[str, tuple]:
    """The index database's rows by run id: (rowid, the rest), as another process sees them."""
    db = sqlite3.connect(index_db_path(runs))
    try:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT id, h.sig, created, state, score, b.rowid, b.sig, body, logs FROM heads h"
            " JOIN bodies b USING (id)")}
    finally:
        db.close()


def _age(runs_dir, seconds=60):
    """Push every file's mtime into the past, so the index keeps them (not 'racy')."""
    for root, _, files in os.walk(runs_dir):
        for f in files:
            p = os.path.join(root, f)
            st = os.stat(p)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_cached_listing_equals_a_full_read(tmp_path):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    plain = list_runs(runs)
    for r in plain:
        r.metrics(), r.mi()
    first = list_runs_cached(runs, logs=True)
    assert index_db_path(runs).is_file()
    assert not [p for p in runs.iterdir() if p.name.startswith(".ibtui")]  # nothing written there
    again = list_runs_cached(runs, logs=True)  # from the index: nothing re-read
    assert _view(plain) == _view(first) == _view(again)


def test_unchanged_runs_are_not_read_again(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    list_runs_cached(runs)
    loads = []
    real = store.load_run
    monkeypatch.setattr(store, "load_run", lambda p: loads.append(p.name) or real(p))
    list_runs_cached(runs)
    assert loads == []
    some = sorted(p for p in runs.iterdir() if (p / "summary.json").is_file())[0]
    (some / "summary.json").write_text("{broken")  # changed in place: size differs
    (new,) = [r for r in list_runs_cached(runs) if r.id == some.name]
    assert loads == [some.name] and any("summary.json" in d for d in new.damaged)


def test_index_is_only_a_cache(tmp_path):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    want = _view(list_runs(runs))
    list_runs_cached(runs)
    db = index_db_path(runs)
    db.unlink()  # deleting it loses nothing
    assert _view(list_runs_cached(runs)) == want
    good = db.read_bytes()
    for bad in (b"\x00garbage", good[:len(good) // 2], good[:100] + b"\xff" * 4000,
                good[:1024] + bytes(len(good) - 1024)):  # not a database, torn, damaged pages
        db.write_bytes(bad)
        assert _view(list_runs_cached(runs)) == want
        assert _view(list_runs_cached(runs)) == want  # and again, from what was made then
    idx = RunIndex(runs)
    assert set(idx.indexed()) == {r[0] for r in want}


def test_a_damaged_database_falls_back_to_a_cold_read_with_the_same_output(tmp_path):
    runs = _fifty(tmp_path)
    cold = _outputs(runs, cold=True)
    db = index_db_path(runs)
    good = db.read_bytes()
    db.write_bytes(good[:4096] + b"\xa5" * (len(good) - 4096))  # every page but the first
    assert _outputs(runs, cold=False) == cold
    db.write_text("this is not a database")
    assert _outputs(runs, cold=False) == cold
    assert _rows(runs)  # built again


def test_the_database_is_reused_and_only_changed_runs_are_written(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    list_runs_cached(runs)
    before = _rows(runs)
    inode = index_db_path(runs).stat().st_ino
    loads = []
    real = store.load_run
    monkeypatch.setattr(store, "load_run", lambda p: loads.append(p.name) or real(p))
    list_runs_cached(runs)
    assert loads == [] and _rows(runs) == before  # warm: nothing read, nothing written
    some = sorted(p for p in runs.iterdir() if (p / "summary.json").is_file())[0]
    s = json.loads((some / "summary.json").read_text())
    s["score"] = 0.4242
    store.atomic_write_json(some / "summary.json", s)
    _age(some)
    (new,) = [r for r in list_runs_cached(runs) if r.id == some.name]
    assert loads == [some.name] and new.summary["score"] == 0.4242
    after = _rows(runs)
    assert index_db_path(runs).stat().st_ino == inode  # the same file, updated in place
    assert {k for k in before if after[k] != before[k]} == {some.name}  # that run's row only
    assert after.keys() == before.keys()


def test_a_run_changed_by_another_host_is_read_again(tmp_path):
    """Another host replaced summary.json on the shared runs directory: the same size and,
    with that host's clock, the very same mtime. Only the new inode tells, and suffices."""
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    list_runs_cached(runs)
    some = runs / "paper-blend-digits-resnet18-p0.1-s0"
    p = some / "summary.json"
    st = p.stat()
    s = json.loads(p.read_text())
    s["score"] = 0.5 if s["score"] != 0.5 else 0.25
    text = json.dumps(s)
    text += " " * (st.st_size - len(text))
    assert len(text) == st.st_size
    other = some / "summary.json.other-host"
    other.write_text(text)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, p)
    assert p.stat().st_mtime_ns == st.st_mtime_ns and p.stat().st_size == st.st_size
    (r,) = [r for r in list_runs_cached(runs) if r.id == some.name]
    assert r.summary["score"] == s["score"]
    assert _view(list_runs_cached(runs)) == _view(list_runs(runs))


def test_an_old_index_file_is_ignored_and_removed(tmp_path):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    old = runs / ".ibtui-index"
    old.write_bytes(b"ibtui-index 9 python 3.11 marshal 4 fields 0123456789abcdef\n" + bytes(64))
    (runs / ".ibtui-index.json").write_text('{"version": 4, "runs": {}}')
    assert _view(list_runs_cached(runs)) == _view(list_runs(runs))
    assert not old.exists() and not (runs / ".ibtui-index.json").exists()


def test_the_cache_directory(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    list_runs_cached(runs)
    assert index_db_path(runs).parent == tmp_path / "mine" / "index"
    assert index_db_path(runs).is_file()
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert index_db_path(runs).parent == tmp_path / "xdg" / "ibtui" / "index"
    # one database per runs directory, the same one by any path to it
    other = tmp_path / "other"
    other.mkdir()
    (tmp_path / "link").symlink_to(runs)
    assert index_db_path(tmp_path / "link") == index_db_path(runs) != index_db_path(other)
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert index_db_path(runs).parent == tmp_path / "home" / ".cache" / "ibtui" / "index"


def test_an_unwritable_or_locked_database_still_lists(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    want = _view(list_runs(runs))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("no directory here")
    assert _view(list_runs_cached(runs)) == want
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    list_runs_cached(runs)
    monkeypatch.setattr(store, "DB_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(index_db_path(runs), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, and never done
    try:
        assert _view(list_runs_cached(runs)) == want
        r = _cli("leaderboard", "--runs-dir", runs, "--format", "json")
        assert r.exit_code == 0 and len(json.loads(r.stdout)) == len(want)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _rows(runs)  # not deleted: it was only locked


def test_an_index_of_another_format_is_rebuilt(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    list_runs_cached(runs)
    db = sqlite3.connect(index_db_path(runs), isolation_level=None)
    db.execute("UPDATE meta SET value = 0 WHERE key = 'format'")
    db.execute("UPDATE bodies SET body = '[\"x\", [], {}, {}, null]'")  # what format 0 meant
    db.close()
    want = _view(list_runs(runs))
    loads = []
    real = store.load_run
    monkeypatch.setattr(store, "load_run", lambda p: loads.append(p.name) or real(p))
    assert _view(list_runs_cached(runs)) == want
    assert len(loads) == len(want)  # every run read again
    db = sqlite3.connect(index_db_path(runs), isolation_level=None)
    db.execute("DROP TABLE bodies")  # not what this format makes: deleted, and made again
    db.close()
    assert _view(list_runs_cached(runs)) == want
    assert _view(list_runs_cached(runs)) == want and len(_rows(runs)) == len(want)


def test_a_first_read_shared_among_processes_reads_the_same(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    _age(runs)
    plain = list_runs(runs)
    for r in plain:
        r.metrics(), r.mi()
    monkeypatch.setattr(store, "PARALLEL_MIN", 1)  # every first read in child processes
    first = list_runs_cached(runs, logs=True)
    assert _view(first) == _view(plain)
    assert _view(list_runs_cached(runs, logs=True)) == _view(plain)


def test_log_damage_of_some_runs_only(tmp_path):
    runs = make_fixture_runs(tmp_path)
    ids = [r.id for r in list_runs(runs) if r.status]
    for rid in (ids[0], ids[-1]):  # one run shown below, one not
        with open(runs / rid / "metrics.jsonl", "a") as f:
            f.write("{garbage\n")
    _age(runs)
    plain = {r.id: r for r in list_runs(runs)}
    for r in plain.values():
        r.metrics(), r.mi()
    idx = RunIndex(runs)
    listed = idx.runs()
    idx.add_log_damage(listed[-3:])
    for r in listed:
        want = plain[r.id].damaged if r in listed[-3:] else \
            [d for d in plain[r.id].damaged if "jsonl" not in d]
        assert sorted(r.damaged) == sorted(want), r.id
    assert sum("metrics.jsonl" in d for r in listed for d in r.damaged) == 1
    again = RunIndex(runs).runs(logs=True)  # the rest read now, the three from the index
    assert _view(again) == _view(list(plain.values()))
    assert sum("metrics.jsonl" in d for r in again for d in r.damaged) == 2


def test_removed_and_added_runs(tmp_path):
    import shutil

    runs = make_fixture_runs(tmp_path)
    _age(runs)
    ids = [r.id for r in list_runs_cached(runs)]
    shutil.copytree(runs / ids[0], runs / "zz-copy")
    shutil.rmtree(runs / ids[1])
    now = {r.id for r in list_runs_cached(runs)}
    assert "zz-copy" in now and ids[1] not in now


def test_a_cached_running_run_is_still_checked_for_liveness(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "spec.toml").write_text('[experiment]\nname = "x"\n')
    # a running run whose pid is alive (this process) but recorded with another start time
    store.atomic_write_json(d / "status.json", {"state": "running", "pid": os.getpid(),
                                                "pid_start": store.process_start_time(os.getpid()),
                                                "created": 1.0})
    _age(tmp_path)
    idx = RunIndex(tmp_path, persist=False)
    (r,) = idx.runs()
    assert r.state == "running"
    real = store.pid_alive
    try:
        store.pid_alive = lambda pid: False  # the worker died; no file changed
        (r,) = idx.runs()
        assert r.state == "crashed"
    finally:
        store.pid_alive = real


def test_read_only_runs_dir_still_lists(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    real = os.open

    def refuse(path, flags, *a, **k):  # nothing may be created or written in the runs dir
        if str(path).startswith(str(runs)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", refuse)
    assert _view(list_runs_cached(runs)) == _view(list_runs(runs))


# --- the CLI's filters, limits and the ok column --------------------------------------------------

def _cli(*args):
    from typer.testing import CliRunner

    from ibtui.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args], env={"IBTUI_RUNS_DIR": None,
                                                             "COLUMNS": "160"})
    return r


def test_ls_and_leaderboard_filters(tmp_path):
    runs = make_fixture_runs(tmp_path)
    r = _cli("ls", "--runs-dir", runs, "--format", "json", "--state", "done", "--attack", "badnets")
    assert r.exit_code == 0, r.output
    got = {x["run"] for x in json.loads(r.stdout)["runs"]}
    assert got == {"paper-badnets-digits-resnet18-p0.1-s0", "paper-badnets-digits-resnet18-p0.05-s0"}
    r = _cli("leaderboard", "--runs-dir", runs, "--format", "json", "--arch", "vgg16",
             "--name", "*-s1")
    assert {x["run"] for x in json.loads(r.stdout)} == {"paper-wanet-digits-vgg16-p0.05-s1",
                                                        "paper-ftrojan-digits-vgg16-p0.1-s1"}
    r = _cli("ls", "--runs-dir", runs, "--state", "nope")
    assert r.exit_code == 2 and "allowed: queued, running" in r.stderr
    r = _cli("ls", "--runs-dir", runs, "--name", "paper*", "--dataset", "digits")
    assert r.exit_code == 0 and "12 of 13 runs" in r.stdout


def test_tags_filter_runs(tmp_path):
    runs = make_fixture_runs(tmp_path)
    spec = runs / "paper-blend-digits-resnet18-p0.1-s0" / "spec.toml"
    spec.write_text(spec.read_text().replace("tags = []", 'tags = ["sweep-a", "x"]'))
    r = _cli("leaderboard", "--runs-dir", runs, "--format", "json", "--tag", "sweep-a")
    assert [x["run"] for x in json.loads(r.stdout)] == ["paper-blend-digits-resnet18-p0.1-s0"]


def test_ls_table_shows_the_newest_and_says_how_many_are_left_out(tmp_path):
    runs = make_fixture_runs(tmp_path)
    r = _cli("ls", "--runs-dir", runs, "--limit", "3")
    assert r.exit_code == 0
    assert "the newest 3 of 13 runs" in r.stdout and "--limit 0" in r.stdout
    assert "paper-badnets-digits-resnet18-p0.05-s0" in r.stdout  # the newest
    assert "broken-run" not in r.stdout


def test_leaderboard_ceiling_column(tmp_path):
    runs = make_fixture_runs(tmp_path)
    p = runs / "paper-blend-digits-resnet18-p0.1-s0" / "summary.json"
    s = json.loads(p.read_text())
    s["ceiling_share"], s["stealth"]["ceiling_flag"] = 0.37, True
    p.write_text(json.dumps(s))
    r = _cli("leaderboard", "--runs-dir", runs)
    assert r.exit_code == 0 and "⚠ 37%" in r.stdout and "ceiling: the share" in r.stdout
    rows = {x["run"]: x for x in json.loads(_cli("leaderboard", "--runs-dir", runs,
                                                  "--format", "json").stdout)}
    assert rows["paper-blend-digits-resnet18-p0.1-s0"]["ceiling"] == 0.37
    assert rows["paper-badnets-digits-resnet18-p0.1-s0"]["ceiling"] is None
    md = _cli("leaderboard", "--runs-dir", runs, "--format", "md").stdout
    assert "| ceiling |" in md.splitlines()[0] and "⚠ 37%" in md
    csv = _cli("leaderboard", "--runs-dir", runs, "--format", "csv").stdout.splitlines()
    head = csv[0].split(",")
    at = head.index("ceiling")
    assert head[at - 1] == "ok" and any(line.split(",")[at] == "0.37" for line in csv[1:])


def test_leaderboard_explains_the_ok_column(tmp_path):
    runs = make_fixture_runs(tmp_path)
    r = _cli("leaderboard", "--runs-dir", runs)
    assert r.exit_code == 0 and "ok: ✔ when every MI sanity check" in r.stdout
    rows = json.loads(_cli("leaderboard", "--runs-dir", runs, "--format", "json").stdout)
    ok = {x["run"]: x["ok"] for x in rows}
    assert ok["paper-badnets-digits-resnet18-p0.1-s0"] is False
    assert ok["paper-blend-digits-resnet18-p0.1-s0"] is True


# --- the app: pages, and idle means idle ------------------------------------------------------------

@pytest.fixture
def finished_runs(tmp_path, monkeypatch):
    """The fixture runs less the running and queued ones, in the working directory."""
    import shutil

    monkeypatch.chdir(tmp_path)
    runs = make_fixture_runs(tmp_path)
    for r in list_runs(runs):
        if r.state in ("running", "queued"):
            shutil.rmtree(r.path)
    return runs


async def _next_page_is_new(pilot, table) -> None:
    """`]` turns the table to a page that shares no row with the one before."""
    first = {str(r.key.value) for r in table.ordered_rows}
    await pilot.press("right_square_bracket")
    assert not first & {str(r.key.value) for r in table.ordered_rows}


async def test_app_tables_are_paged_and_idle_polls_post_nothing(finished_runs, monkeypatch):
    from ibtui.tui.widgets.tables import LeaderboardTable, RunsTable, RunTableBase

    monkeypatch.setattr(RunTableBase, "PAGE_SIZE", 4)
    async with piloted(finished_runs, (160, 40)) as (app, pilot):
        t = app.screen.query_one(RunsTable)
        total = len(app.snapshot.rows)
        assert total == 9 and t.row_count == 4 and len(t.visible_ids) == total
        await _next_page_is_new(pilot, t)
        assert t.page == 1 and t.row_count == 4
        assert "rows 5–8 of 9" in t.page_text()
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert t.page == 2 and t.row_count == 1  # the last page
        t.set_filter("state:done")
        assert t.page == 0 and t.row_count == 4 and len(t.visible_ids) == 4 and t.pages == 1
        # idle: polls that find nothing new post no snapshot, and nothing is redrawn
        posted = app._posted
        for _ in range(3):
            app.poll_now()
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert app._posted is posted
        await pilot.press("l")
        await pilot.pause()
        lt = app.screen.query_one(LeaderboardTable)
        assert lt.row_count == len(lt.visible_ids) == 3  # the runs with a summary
        for _ in range(5):  # v: attack, dataset, arch, rate, config
            await pilot.press("v")
        assert lt.group == "config"
        keys = [str(r.key.value) for r in lt.ordered_rows]
        assert keys[0].startswith("group:")


async def test_workers_needs_attention_table_is_paged(finished_runs, monkeypatch):
    from textual.widgets import DataTable, Static

    from ibtui.tui.widgets.tables import RunTableBase

    monkeypatch.setattr(RunTableBase, "PAGE_SIZE", 2)
    async with piloted(finished_runs, (160, 40)) as (app, pilot):
        await pilot.press("w")
        await pilot.pause()
        queue = app.screen.query_one("#queue", DataTable)
        waiting = [r for r in app.snapshot.rows if r.state != "done"]
        assert len(waiting) > 4 and queue.row_count == 2
        await _next_page_is_new(pilot, queue)
        assert queue.row_count == 2
        title = str(app.screen.query_one("#queue-title", Static).render())
        assert f"rows 3–4 of {len(waiting)}" in title and "page 2/" in title
        for _ in range(5):
            await pilot.press("right_square_bracket")
        assert queue.row_count == len(waiting) - 2 * ((len(waiting) - 1) // 2)  # the last
        await pilot.press("left_square_bracket")
        assert queue.row_count == 2


# --- the index changes no byte of ls and leaderboard output ------------------------------------------

OUTPUTS = (("ls",), ("ls", "--format", "json"), ("ls", "--limit", "0"), ("ls", "--limit", "7"),
           ("ls", "--state", "done", "--limit", "5"), ("leaderboard", "--format", "json"),
           ("leaderboard", "--format", "csv"), ("leaderboard", "--format", "md"),
           ("leaderboard", "--format", "json", "--sort", "d_xt"), ("leaderboard",))


def _fifty(tmp_path):
    """The fixture's 13 runs and 37 copies of them: equal scores, equal creation times."""
    import shutil

    runs = make_fixture_runs(tmp_path)
    base = sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name[0] != ".")
    for i in range(37):
        src = base[i % len(base)]
        dst = runs / f"copy{i:02d}-{src}"
        shutil.copytree(runs / src, dst)
        st = dst / "status.json"
        if i % 3 and st.is_file():  # a third keep the creation time of their original
            try:
                s = json.loads(st.read_text())
                s["created"] = s["created"] + i
                st.write_text(json.dumps(s))
            except (ValueError, TypeError, KeyError):
                pass
    _age(runs)
    return runs


def _outputs(runs, cold):
    out = {}
    for args in OUTPUTS:
        if cold:
            index_db_path(runs).unlink(missing_ok=True)
        r = _cli(*args, "--runs-dir", runs)
        assert r.exit_code == 0, (args, r.output)
        # a stalled run's silence grows with the clock between two calls: not index state
        out[args] = re.sub(r"(no heartbeat for |\"no_heartbeat_s\": )\d+", r"\1N", r.stdout)
    return out


def _reference_board(runs, fmt):
    """The leaderboard as a full read of every run (no index) makes it."""
    from ibtui.runs.board import board_record, rank_records, render, sort_records

    records = [board_record(r) for r in list_runs(runs)]
    rank_records(records)  # validity, ranks and ties over the whole directory
    return render(sort_records(records, "score"), fmt)


def _set_score(run_dir, score, mtime_ns):
    """Change summary.json in place (same size), its mtime set to `mtime_ns`."""
    p = run_dir / "summary.json"
    s = json.loads(p.read_text())
    old = p.read_bytes()
    s["score"] = score
    new = json.dumps(s, separators=(",", ":")).encode()  # shorter: padded below
    new += b" " * (len(old) - len(new))
    assert len(new) == len(old)
    with open(p, "r+b") as f:  # in place: the same inode
        f.write(new)
    os.utime(p, ns=(mtime_ns, mtime_ns))


def test_warm_output_is_the_cold_output_byte_for_byte(tmp_path):
    runs = _fifty(tmp_path)
    cold = _outputs(runs, cold=True)
    assert cold[("leaderboard", "--format", "json")] == _reference_board(runs, "json")
    assert cold[("leaderboard", "--format", "csv")] == _reference_board(runs, "csv")
    assert len(json.loads(cold[("leaderboard", "--format", "json")])) == 50
    _outputs(runs, cold=False)  # the index written
    assert index_db_path(runs).is_file()
    assert _outputs(runs, cold=False) == cold
    # a run changed in place (same size, an older mtime than before): never shown stale
    some = next(d for d in sorted(runs.glob("copy*-paper-blend-*"))
                if (d / "summary.json").is_file())
    mtime = (some / "summary.json").stat().st_mtime_ns
    _set_score(some, 0.123456, mtime - 10**9)
    warm = _outputs(runs, cold=False)
    rows = {x["run"]: x for x in json.loads(warm[("leaderboard", "--format", "json")])}
    assert rows[some.name]["score"] == 0.123456
    assert warm == _outputs(runs, cold=True)
    assert warm[("leaderboard", "--format", "json")] == _reference_board(runs, "json")


def test_a_file_changed_just_now_is_never_trusted_from_the_index(tmp_path):
    import time

    runs = _fifty(tmp_path)
    _outputs(runs, cold=False)
    some = runs / "paper-blend-digits-resnet18-p0.1-s0"
    now = time.time_ns()
    _set_score(some, 0.111111, now)
    board = ("leaderboard", "--format", "json")
    first = _cli(*board, "--runs-dir", runs).stdout
    assert {x["run"]: x["score"] for x in json.loads(first)}[some.name] == 0.111111
    _set_score(some, 0.222222, now)  # again within the same mtime: the signature is unchanged
    again = _outputs(runs, cold=False)
    assert {x["run"]: x["score"] for x in json.loads(again[board])}[some.name] == 0.222222
    assert again == _outputs(runs, cold=True)


def test_a_changed_leaderboard_record_makes_the_saved_lines_stale(tmp_path, monkeypatch):
    from ibtui.runs import board
    from ibtui.runs.store import LineMaker

    runs = make_fixture_runs(tmp_path)
    _age(runs)
    lines = [x[4] for x in RunIndex(runs, line=board.BOARD_LINE).listing() if x[4] is not None]
    assert lines and all(set(json.loads(x)) == set(board.BOARD_COLUMNS) | {
        k for k in json.loads(x) if k.startswith("_")} for x in lines)
    loads = []
    real = store.load_run
    monkeypatch.setattr(store, "load_run", lambda p: loads.append(p.name) or real(p))
    other = LineMaker(board.RECORD_VERSION + 1, lambda run: json.dumps({"run": run.id}))
    got = [x[4] for x in RunIndex(runs, line=other).listing() if x[4] is not None]
    assert got == [json.dumps({"run": json.loads(x)["run"]}) for x in lines]
    assert loads == []  # made again from the index, no run read
    again = [x[4] for x in RunIndex(runs, line=board.BOARD_LINE).listing() if x[4] is not None]
    assert again == lines


def test_the_listing_signature_is_file_sig(tmp_path):
    runs = make_fixture_runs(tmp_path)
    (runs / "not-a-run").mkdir()
    (runs / "only-summary").mkdir()
    (runs / "only-summary" / "summary.json").write_text("{}")
    (runs / "a-file").write_text("x")
    fd = os.open(runs, os.O_RDONLY)
    try:
        for name in os.listdir(runs):
            assert store._sig_at(name, fd) == store.file_sig(name, dir_fd=fd), name
    finally:
        os.close(fd)


def test_names_in_other_bytes_are_listed_warm_and_cold(tmp_path):
    import shutil

    runs = make_fixture_runs(tmp_path)
    odd_runs = os.fsdecode(os.fsencode(str(tmp_path)) + b"/runs-\xfe")
    shutil.copytree(runs, odd_runs)
    done = next(p for p in sorted(runs.iterdir()) if (p / "summary.json").is_file())
    shutil.copytree(done, os.fsdecode(os.fsencode(odd_runs) + b"/bad-\xff-name"))
    from pathlib import Path

    odd = Path(odd_runs)
    _age(odd)
    want = _view(list_runs(odd))
    assert _view(list_runs_cached(odd)) == want == _view(list_runs_cached(odd))
    assert index_db_path(odd).is_file() and len(_rows(odd)) == len(want) - 1  # that one not kept


def test_a_number_sqlite_cannot_hold_keeps_that_run_out_of_the_index_only(tmp_path):
    runs = make_fixture_runs(tmp_path)
    some = next(p for p in sorted(runs.iterdir()) if (p / "summary.json").is_file())
    st = json.loads((some / "status.json").read_text())
    (some / "status.json").write_text(json.dumps(dict(st, created=10**30)))
    _age(runs)
    want = _view(list_runs(runs))
    assert _view(list_runs_cached(runs)) == want == _view(list_runs_cached(runs))
    assert some.name not in _rows(runs) and len(_rows(runs)) == len(want) - 1
