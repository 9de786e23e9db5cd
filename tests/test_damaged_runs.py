"""Generated damaged run directories never break the read side of the CLI.

Each example builds a runs directory of one to three runs. Every file of a run (status.json,
summary.json, spec.toml, metrics.jsonl, mi.jsonl, worker.log) is, independently: intact,
truncated at a random byte, replaced by random bytes, valid JSON/TOML with values swapped for
values of other types (strings with Rich markup and control characters, NaN/inf, huge numbers,
nested lists and tables, null), missing, a directory, or unreadable; a whole run directory
may be unreadable too. Then `ls`, `ls --format json`, `leaderboard --format json`, `show` of
every run and `report` must end with exit code 0 or 2, with no exception, and every error
must be one line.

Cases per run of the suite: EXAMPLES (40) generated runs directories, each checked with
3 + (number of runs) + 1 commands, so about 40 directories, ~90 run directories and ~250
command invocations (set IBTUI_FUZZ_EXAMPLES to try more).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import tomli_w
from fixtures_runs import make_fixture_runs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ibtui.runs.store as store
from ibtui.cli import app

EXAMPLES = int(os.environ.get("IBTUI_FUZZ_EXAMPLES", "40"))
FILES = ("status.json", "summary.json", "spec.toml", "metrics.jsonl", "mi.jsonl", "worker.log")
DAMAGE = ("intact", "truncated", "garbage", "wrong types", "missing", "directory", "unreadable",
          "fifo", "link out", "extreme")
RUNS_DIR_FILES = (".scheduler.json", ".scheduler.lock", ".ibtui-index")
RUNS_DIR_DAMAGE = ("none", "none", "fifo", "directory", "link out", "garbage")
UNREADABLE = "unreadable-"  # reads of paths under a run named like this fail (as root too)

_TEMPLATE: dict[str, bytes] = {}


def template() -> dict[str, bytes]:
    """The files of one complete fixture run (done, with summary, metrics and MI)."""
    if not _TEMPLATE:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            runs = make_fixture_runs(Path(d))
            src = runs / "paper-blend-digits-resnet18-p0.1-s0"
            for f in FILES:
                data = (src / f).read_bytes()
                if f.endswith(".jsonl"):  # a few lines are enough, and keep failure reports short
                    data = b"".join(data.splitlines(keepends=True)[:4 if f == "mi.jsonl" else 2])
                _TEMPLATE[f] = data
    return _TEMPLATE


odd_text = st.one_of(st.sampled_from(["[/]", "[old]", "[bold red]x", "a\nb", "\x1b[31m", "",
                                      "running", "done", "x" * 300, "é∂", "\\"]),
                     st.text(max_size=12))
odd_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
              st.floats(allow_nan=True, allow_infinity=True), odd_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(odd_text, inner, max_size=3)),
    max_leaves=6)


def _json_dumps(obj) -> bytes:
    return json.dumps(obj, allow_nan=True, default=str).encode()


def _toml_value(v):
    """TOML cannot hold null or NaN/inf everywhere; map them to values it can."""
    if v is None:
        return "none"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63:
        return str(v)
    if isinstance(v, list):
        return [_toml_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _toml_value(x) for k, x in v.items()}
    return v


@st.composite
def wrong_types(draw, name: str, data: bytes) -> bytes:
    if name == "worker.log":
        return draw(st.binary(max_size=200))
    if name == "spec.toml":
        import tomllib

        exp = tomllib.loads(data.decode())["experiment"]
        for k in draw(st.lists(st.sampled_from(sorted(exp)), min_size=1, max_size=4)):
            exp[k] = _toml_value(draw(odd_value))
        try:
            return tomli_w.dumps({"experiment": exp}).encode()
        except (TypeError, ValueError):
            return data
    if name.endswith(".jsonl"):
        lines = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
        for i in draw(st.lists(st.integers(0, len(lines) - 1), min_size=1, max_size=3)):
            rec = lines[i]
            for k in draw(st.lists(st.sampled_from(sorted(rec)), min_size=1, max_size=3, unique=True)):
                if draw(st.booleans()):
                    del rec[k]
                else:
                    rec[k] = draw(odd_value)
        if draw(st.booleans()):
            lines.insert(0, draw(odd_value))  # a line that is not an object
        return b"\n".join(_json_dumps(x) for x in lines) + b"\n"
    obj = json.loads(data)
    for k in draw(st.lists(st.sampled_from(sorted(obj)), min_size=1, max_size=5)):
        obj[k] = draw(odd_value)
    return _json_dumps(obj if draw(st.integers(0, 9)) else draw(odd_value))


EXTREMES = (1e308, -1e308, 5e-324, 1e20, -1.0, 2.0)


def _extreme(name: str, data: bytes, x: float) -> bytes:
    """Every number of a JSON(L) file replaced by x (other files: unchanged)."""
    def swap(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return x
        if isinstance(v, list):
            return [swap(y) for y in v]
        return {k: swap(y) for k, y in v.items()}

    if name.endswith(".json"):
        return _json_dumps(swap(json.loads(data)))
    if name.endswith(".jsonl"):
        return b"".join(_json_dumps(swap(json.loads(line))) + b"\n"
                        for line in data.splitlines() if line.strip())
    return data


@st.composite
def damaged_run(draw) -> dict:
    files = {}
    for name in FILES:
        data = template()[name]
        how = draw(st.sampled_from(DAMAGE))
        if how == "truncated":
            files[name] = ("truncated", draw(st.integers(0, max(0, len(data) - 1))))
        elif how == "garbage":
            files[name] = ("file", draw(st.binary(max_size=300)))
        elif how == "wrong types":
            files[name] = ("file", draw(wrong_types(name, data)))
        elif how == "missing":
            files[name] = ("missing", b"")
        elif how == "extreme":  # numbers at the edge of a float: 1e308 and its kin
            files[name] = ("file", _extreme(name, data, draw(st.sampled_from(EXTREMES))))
        else:
            files[name] = (how, None)
    return {"files": files, "unreadable_dir": draw(st.integers(0, 7)) == 0}


@st.composite
def runs_dir_files(draw) -> dict:
    """What the runs directory's own files are, and links to run directories beside the runs
    (one to a run of the same directory, one to a run directory elsewhere)."""
    return {"files": {f: draw(st.sampled_from(RUNS_DIR_DAMAGE)) for f in RUNS_DIR_FILES},
            "links": draw(st.booleans())}


def write_runs(root: Path, runs: list[dict]) -> list[str]:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    names = []
    for i, run in enumerate(runs):
        name = f"{UNREADABLE}{i}" if run["unreadable_dir"] else f"r{i}-[old]x"
        d = root / name
        d.mkdir()
        for f, (kind, data) in run["files"].items():
            if kind == "truncated":
                kind, data = "file", template()[f][:data]
            elif kind == "intact":
                kind, data = "file", template()[f]
            elif kind == "unreadable":
                data = template()[f]
            if kind == "file":
                (d / f).write_bytes(data)
            elif kind == "directory":
                (d / f).mkdir()
            elif kind == "unreadable":
                (d / f"{UNREADABLE}{f}").write_bytes(data)  # name kept out of the schema...
                (d / f).symlink_to(d / f"{UNREADABLE}{f}")  # ...reached through this link
            elif kind == "fifo":
                os.mkfifo(d / f)
            elif kind == "link out":  # an intact file, but outside the run: never read
                outside = root.parent / f"outside-{i}-{f}"
                outside.write_bytes(template()[f])
                (d / f).symlink_to(outside)
        names.append(name)
    return names


def write_runs_dir_files(root: Path, spec: dict, names: list[str]) -> None:
    for f, how in spec["files"].items():
        p = root / f
        if how == "fifo":
            os.mkfifo(p)
        elif how == "directory":
            p.mkdir()
        elif how == "link out":
            target = root.parent / f"outside{f}"
            target.write_bytes(b"victim")
            p.symlink_to(target)
        elif how == "garbage":
            p.write_bytes(b"\x00garbage{[")
    if spec["links"] and names:
        (root / "twin-link").symlink_to(root / names[0], target_is_directory=True)
        elsewhere = root.parent / "elsewhere-run"
        elsewhere.mkdir()
        for f in FILES:
            (elsewhere / f).write_bytes(template()[f])
        (root / "out-link").symlink_to(elsewhere, target_is_directory=True)


def _denied(path) -> bool:
    return UNREADABLE in str(path) or UNREADABLE in os.path.realpath(path)


def _patched() -> ExitStack:
    """Reads under an UNREADABLE name fail with EACCES, as chmod 000 does for a normal user
    (the suite may run as root, who reads through any mode)."""
    real_listdir, real_read, real_stat = os.listdir, store._read_bytes, os.stat
    real_open = open

    def stat(p, *a, **k):
        # a file inside an unreadable directory cannot be stat'ed; the directory itself can
        if isinstance(p, (str, Path)) and Path(p).parent.name.startswith(UNREADABLE):
            raise PermissionError(13, "Permission denied", str(p))
        return real_stat(p, *a, **k)

    def listdir(p="."):
        if _denied(p) and Path(p).name.startswith(UNREADABLE):
            raise PermissionError(13, "Permission denied", str(p))
        return real_listdir(p)

    def read(p):
        if _denied(p):
            raise PermissionError(13, "Permission denied", str(p))
        return real_read(p)

    def opener(p, *a, **k):
        if isinstance(p, (str, Path)) and _denied(p):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **k)

    stack = ExitStack()
    stack.enter_context(mock.patch.object(store.os, "listdir", listdir))
    stack.enter_context(mock.patch.object(store.os, "stat", stat))
    stack.enter_context(mock.patch.object(store, "_read_bytes", read))
    stack.enter_context(mock.patch("builtins.open", opener))
    return stack


def check(r, what: str) -> None:
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        raise AssertionError(what + "\n" + "".join(traceback.format_exception(r.exception)))
    assert r.exit_code in (0, 2), (what, r.exit_code, r.output)
    assert "Traceback" not in r.output, what
    if r.exit_code == 2:
        assert len(r.stderr.strip().splitlines()) == 1, (what, r.stderr)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(damaged_run(), min_size=1, max_size=3), runs_dir_files())
def test_damaged_runs_never_break_ls_leaderboard_show_report(tmp_path_factory, runs, own):
    base = tmp_path_factory.getbasetemp() / "damaged"
    if base.exists():
        shutil.rmtree(base)
    root = base / "runs"
    names = write_runs(root, runs)
    write_runs_dir_files(root, own, names)
    cli = CliRunner()
    env = {"IBTUI_RUNS_DIR": None, "COLUMNS": "120"}
    with _patched():
        for args in (["ls"], ["ls", "--format", "json"], ["leaderboard", "--format", "json"],
                     ["report"], *[["show", n] for n in names]):
            r = cli.invoke(app, [*args, "--runs-dir", str(root)], env=env)
            check(r, " ".join(args))
            if args[-1] == "json" and r.exit_code == 0:
                json.loads(r.stdout)
        listed = json.loads(cli.invoke(app, ["ls", "--format", "json", "--runs-dir", str(root)],
                                       env=env).stdout)["runs"]
    expected = {n for n, run in zip(names, runs, strict=True) if run["unreadable_dir"] or any(
        run["files"][f][0] != "missing" for f in ("status.json", "spec.toml"))}
    assert {x["run"] for x in listed} == expected  # every run listed, damaged or not; no link
    for f, how in own["files"].items():
        if how == "link out":
            assert (base / f"outside{f}").read_bytes() == b"victim"  # never written through
    for x in listed:
        assert isinstance(x["state"], str)


def test_a_stored_spec_is_read_through_the_schema(tmp_path):
    """A hand-edited spec.toml: a value the schema refuses (out of range as much as of the wrong
    type) is dropped and named with what is allowed; the rest of the run still reads."""
    from ibtui.runs.store import check_spec

    good = {"name": "x", "width": 8, "lr": 0.1, "unknown_key": 1}
    assert check_spec(good) == (good, [])
    clean, problems = check_spec({"name": "x", "width": 0, "lr": "fast", "epochs": 4})
    assert clean == {"name": "x", "epochs": 4}
    assert problems == ["width = 0: 0 out of range; allowed: integer in [1, 1024]",
                        "lr = 'fast': expected number in (0, 10], got 'fast'"]
