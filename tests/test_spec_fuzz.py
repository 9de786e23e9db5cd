"""Property-based tests of spec validation: specs generated from the documented schema
(`ibtui.spec.Experiment`, the pydantic model behind `FIELDS`, and the registries), with values mutated into wrong
types, NaN/inf, out-of-range numbers, Rich markup, control characters, lists and unknown keys.

Validation either accepts a spec, and then its runs have distinct ids that are valid directory
names and resolved values that survive spec.toml, or raises SpecError with a one-line message;
never any other exception. `ibtui run FILE --dry-run` on generated files exits 0, or exits 2
with a one-line message, and never prints a traceback.

Cases tried per run of the suite: 150 generated specs in-process
(test_validation_accepts_or_raises_one_line_spec_error), 4 generated files through the CLI in
subprocesses (test_dry_run_exits_0_or_2_with_one_line; generated only, not shrunk, as each
costs a torch import) and 5 fixed hostile files through the CLI (test_dry_run_on_hostile_files).
"""

from __future__ import annotations

import math
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
import tomli_w
from helpers import ibtui_cmd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ibtui.errors import SpecError
from ibtui.spec import FIELDS, Experiment, _registries, check_run_id, experiment_to_toml, load_spec_text

IN_PROCESS_EXAMPLES = 150
CLI_EXAMPLES = 4

REGISTRIES = _registries()
MARKUP = ["[/]", "[bold]x[/bold]", "[link=file:///etc]x", "x[/red", "\\[x]", "[old]", "[[x]]"]
CONTROL = ["\x00", "\n", "a\nb", "\r\n", "\t", "\x1b[31mred", "\u2028", "\ufeff", "\x7f", "\u202e"]


def _range(key: str) -> tuple[float, float, bool, bool] | None:
    """(lo, hi, lo inclusive, hi inclusive) of a number field of the schema, else None."""
    lo = hi = None
    lo_in = hi_in = True
    for m in Experiment.model_fields[key].metadata:
        lo, lo_in = (m.ge, True) if hasattr(m, "ge") else (m.gt, False) if hasattr(m, "gt") else (lo, lo_in)
        hi, hi_in = (m.le, True) if hasattr(m, "le") else (m.lt, False) if hasattr(m, "lt") else (hi, hi_in)
    return None if lo is None or hi is None else (lo, hi, lo_in, hi_in)


RANGES = {k: r for k in FIELDS if (r := _range(k))}


def _valid(key: str) -> st.SearchStrategy:
    """A value the README allows for `key` (small numbers, so that validation stays cheap)."""
    f = FIELDS[key]
    if key in RANGES:
        lo, hi, lo_in, hi_in = RANGES[key]
        if f.allowed.startswith("integer"):
            return st.integers(int(lo) + (0 if lo_in else 1), int(min(hi, lo + 64)))
        return st.floats(lo, hi, exclude_min=not lo_in, exclude_max=not hi_in)
    if key in REGISTRIES:
        choice = st.sampled_from(REGISTRIES[key])
        return st.lists(choice, min_size=1, max_size=2) if f.listy else choice
    if key == "stealth_epochs":
        return st.sampled_from(["all", "phases"])
    if f.allowed == "true/false":
        return st.booleans()
    if key == "name":
        return st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,10}", fullmatch=True)
    if key == "device":
        return st.sampled_from(["auto", "cpu"])
    if key == "data_root":  # read only for cifar10/svhn; hostile paths are still strings
        return st.sampled_from(["", "data", "~no_such_user_zz/x", "x" * 300, "/proc/1/root/x", "[/]"])
    if key == "mi_epochs":
        return st.lists(st.integers(1, 4), min_size=1, max_size=3)
    if key == "observe_classes":
        return st.just("all") | st.lists(st.integers(1, 9), min_size=1, max_size=3)
    return st.just(f.default)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
_mutant_scalar = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]),                      # non-finite
    st.integers(-(10**20), 10**20), st.floats(-1e300, 1e300),            # out of range
    st.sampled_from([0, -1, 1.5, True, False, "", "x", "all", "cuda:7"]),  # wrong types, edge values
    st.sampled_from(MARKUP), st.sampled_from(CONTROL), _text,             # markup, control chars
)
_mutant = st.one_of(
    _mutant_scalar,
    st.lists(_mutant_scalar, max_size=3),
    st.dictionaries(_text, _mutant_scalar, max_size=2),
    st.just([]), st.just({}),
)


@st.composite
def tables(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=6))
    table = {}
    for key in keys:
        kind = draw(st.sampled_from(["valid"] * 5 + ["sweep"] * 2 + ["mutant"] * 2))
        if kind == "valid":
            table[key] = draw(_valid(key))
        elif kind == "sweep" and not FIELDS[key].listy:
            table[key] = draw(st.lists(_valid(key), min_size=1, max_size=3))
        else:
            table[key] = draw(_mutant)
    if draw(st.sampled_from([False] * 9 + [True])):  # an unknown key, itself hostile
        table[draw(st.sampled_from(MARKUP + CONTROL) | _text)] = 1
    table.setdefault("epochs", 4)  # keep the paper's 120-epoch MI schedule out of the way
    table.setdefault("width", 4)
    return table


@st.composite
def specs(draw) -> dict:
    data: dict = {"experiment": draw(st.lists(tables(), min_size=1, max_size=2))}
    if draw(st.booleans()):
        data["defaults"] = draw(tables())
    shape = draw(st.sampled_from(["tables"] * 18 + ["mutant", "top"]))
    if shape == "mutant":
        data["experiment"] = draw(_mutant)  # not an array of tables
    elif shape == "top":
        data[draw(st.sampled_from(["default", "[/]", "x\ny"]))] = {}
    return data


def _same(a, b) -> bool:
    """Equality that lets NaN equal NaN (resolved attack options may hold floats)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def _drop_none(v):
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_none(x) for x in v]
    return v


def check(data: dict) -> list | None:
    """Validate `data`; assert the property. Returns the runs, or None after a SpecError."""
    try:
        runs = load_spec_text(data, "fuzz.toml")
    except SpecError as e:
        msg = str(e)
        assert msg.startswith("fuzz.toml") or msg.startswith("IBTUI_"), msg
        assert msg.isprintable(), repr(msg)  # one line: no newline or other control character
        return None
    ids = [r.run_id for r in runs]
    assert runs and len(set(ids)) == len(ids), ids
    for r in runs:
        assert check_run_id(r.run_id) is None, r.run_id
        assert len(r.run_id.encode()) < 255 and "/" not in r.run_id
        back = tomllib.loads(experiment_to_toml(r.values, "[experiment]"))["experiment"]
        assert _same(back, _drop_none(r.values)), (back, r.values)
        for key in RANGES:
            assert not isinstance(r.values[key], float) or math.isfinite(r.values[key])
    return runs


# 150 generated specs per run
@settings(max_examples=IN_PROCESS_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_validation_accepts_or_raises_one_line_spec_error(data):
    check(data)


def test_generated_specs_include_accepted_ones():
    """The generator is not all noise: valid tables are accepted (guards the property above
    from passing vacuously)."""
    from hypothesis import find

    found = find(specs(), lambda d: isinstance(d.get("experiment"), list) and _accepts(d),
                 settings=settings(max_examples=300, deadline=None, database=None))
    assert check(found)


def _accepts(data: dict) -> bool:
    try:
        load_spec_text(data, "fuzz.toml")
        return True
    except SpecError:
        return False


def _cli_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.pop("COLUMNS", None)  # output is a pipe, as in a script: errors must not wrap
    env["IBTUI_DATA"] = str(tmp_path / "no-data")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _dry_run(tmp_path: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(ibtui_cmd() + ["run", str(path), "--dry-run", "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_cli_env(tmp_path))


def _assert_cli_outcome(r: subprocess.CompletedProcess, expect_ok: bool | None) -> None:
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert r.returncode in (0, 2), out
    if r.returncode == 2:
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) == 1, out
    if expect_ok is not None:
        assert (r.returncode == 0) == expect_ok, out
    runs_dir = Path(r.args[-1])
    assert not runs_dir.is_dir() or not [p for p in runs_dir.iterdir() if not p.name.startswith(".")], \
        "--dry-run created a run"


# 4 generated files through the CLI per run (each a subprocess that imports torch; no shrinking)
@settings(max_examples=CLI_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs())
def test_dry_run_exits_0_or_2_with_one_line(tmp_path, data):
    path = tmp_path / "fuzz.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    expect_ok = _accepts(data)
    _assert_cli_outcome(_dry_run(tmp_path, path), expect_ok)


HOSTILE = {
    "markup-name": '[[experiment]]\nname = "[/]"\nwidth = 4\nepochs = 2\n',
    "markup-value": '[[experiment]]\nname = "m"\nattack = "[bold]x[/"\n',
    "control-chars": '[[experiment]]\nname = "a\\u0000b\\nc"\n',
    "bom": '\ufeff[[experiment]]\nname = "bom"\nwidth = 4\nepochs = 2\n',
    "huge-grid": '[[experiment]]\nname = "h"\nseed = [' + ", ".join(map(str, range(20_001))) + "]\n",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_dry_run_on_hostile_files(tmp_path, case):
    path = tmp_path / f"{case}.toml"
    path.write_text(HOSTILE[case], encoding="utf-8")
    _assert_cli_outcome(_dry_run(tmp_path, path), expect_ok=case == "bom")
