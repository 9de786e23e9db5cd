"""The run directory: the contract between worker, scheduler, CLI and TUI.

One writer per run directory (its worker). Files that are replaced are written atomically
(ibtui.files.atomic_write: temp file in the same directory, fsync, os.replace, fsync of the
directory); logs are append-only JSONL whose readers skip a torn last line. Many runs are read
through RunIndex, a cache in SQLite on this machine.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import socket
import sqlite3
import stat as stat_mod
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ibtui.errors import IbtuiError, RunStoreError
from ibtui.files import atomic_write as atomic_write_bytes  # the one atomic write
from ibtui.files import read_regular
from ibtui.runs.config import config_key
from ibtui.runs.states import FINISHED, STATES  # noqa: F401 (FINISHED re-exported)

_SETTLED = frozenset(STATES) - {"running"}  # states that no liveness check can change
# A worker beats at least once per training batch and per MI progress step.
HEARTBEAT_STALE_S = 30.0  # a worker on another host: no beat for this long = gone
# A worker on this host whose identity cannot be proven (no recorded start time, or none
# readable: another OS) and whose last beat is older than this is gone, even if its pid is
# alive: the pid then belongs to another process (reused after the worker died or a reboot).
HEARTBEAT_LOST_S = 1800.0
PID_START_TOLERANCE_S = 2.0  # boot time in /proc/stat has a resolution of one second
NAME_MAX = 255  # bytes in one path component


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every reader can parse the line."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def dumps(obj: Any) -> str:
    return json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default))), allow_nan=False)


def atomic_write_text(path: Path, text: str, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_json(path: Path, obj: Any, fsync: bool = True) -> None:
    atomic_write_text(path, json.dumps(json.loads(dumps(obj)), indent=2) + "\n", fsync=fsync)


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record as a line, flushed and fsynced: a finished epoch is never lost."""
    append_jsonl_many(path, [record])


def append_jsonl_many(path: Path, records: list[dict]) -> None:
    """Append records as lines with one write and one fsync (a checkpoint's MI records)."""
    if not records:
        return
    text = "".join(dumps(r) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _read_bytes(path: Path) -> bytes:
    """A regular file's bytes (never blocks on a FIFO, reads a device or follows a link)."""
    return read_regular(path, follow=False)


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def _parse_jsonl(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """(line number, record) for every complete object line, and what was wrong with the
    rest. A torn last line (a writer killed mid-write, or still writing) is not damage."""
    out: list[tuple[int, dict]] = []
    problems: list[str] = []
    try:
        raw = _read_bytes(Path(path))
    except FileNotFoundError:
        return out, problems
    except OSError as e:
        return out, [f"{Path(path).name} unreadable: {_why(e)}"]
    lines = raw.split(b"\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            if i < len(lines):  # the last piece has no newline yet: a torn tail
                problems.append(f"line {i}: not JSON")
            continue
        if isinstance(rec, dict):
            out.append((i, rec))
        else:
            problems.append(f"line {i}: not an object")
    return out, problems


def read_jsonl(path: Path) -> list[dict]:
    """Every complete record; a torn or garbled line (a writer killed mid-write) is skipped."""
    return [rec for _, rec in _parse_jsonl(path)[0]]


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(object, None) or (None, reason) when the file is missing, empty or damaged."""
    name = Path(path).name
    try:
        text = _read_bytes(Path(path)).decode("utf-8")
    except FileNotFoundError:
        return None, f"{name} missing"
    except OSError as e:
        return None, f"{name} unreadable: {_why(e)}"
    except UnicodeDecodeError:
        return None, f"{name} damaged: not UTF-8"
    if not text.strip():
        return None, f"{name} empty"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        # json's own messages may end in "at" ("Unterminated string starting at"): no "at at"
        return None, f"{name} damaged: {e.msg.removesuffix(' at')} at line {e.lineno}"
    except RecursionError:
        return None, f"{name} damaged: nested too deeply"
    if not isinstance(obj, dict):
        return None, f"{name} damaged: not an object"
    return obj, None


# --- schemas: every reader checks types; a wrong field is dropped and named as damage ------------

def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt(check, what: str) -> tuple:
    return (lambda v: v is None or check(v)), what


NUM = _opt(_is_num, "a number")
INT = _opt(_is_int, "an integer")
STR = _opt(lambda v: isinstance(v, str), "a string")
DICT = _opt(lambda v: isinstance(v, dict), "a table")
LIST = _opt(lambda v: isinstance(v, list), "a list")
BOOL = _opt(lambda v: isinstance(v, bool), "true or false")

STATUS_SCHEMA: dict[str, tuple] = {
    "state": ((lambda v: isinstance(v, str) and v in STATES), f"one of {', '.join(STATES)}"),
    "pid": _opt(lambda v: _is_int(v) and v > 0, "a positive integer"),
    "pid_start": NUM, "host": STR, "gpu": _opt(lambda v: isinstance(v, (str, int))
                                              and not isinstance(v, bool), "a GPU id"),
    "device": STR, "created": NUM, "started": NUM, "ended": NUM, "heartbeat": NUM,
    "resumed": NUM, "error": STR, "phase": STR, "detail": STR, "source": STR, "epoch": INT,
    "epochs": INT, "progress": NUM, "test_acc": NUM, "asr": NUM,
}
SHARE = _opt(lambda v: _is_num(v) and 0 <= v <= 1, "a number from 0 to 1")
SUMMARY_SCHEMA: dict[str, tuple] = {
    # accuracies, rates and the stealth score (min-max normalised MI) lie in [0, 1]: a value
    # outside is damage, never a number that neighbours' intervals are computed from
    **{k: SHARE for k in ("score", "d_xt", "d_ty", "clean_acc", "asr", "asr_all", "ra",
                          "poison_rate", "ceiling_share")},
    **{k: NUM for k in ("psnr", "ssim", "lpips", "poison_seconds", "train_seconds", "mi_seconds",
                        "wall_seconds")},
    **{k: INT for k in ("n_poison", "n_backdoor", "epochs", "width", "seed", "target")},
    **{k: STR for k in ("run_id", "name", "attack", "dataset", "arch", "mi_method",
                        "lpips_note")},
    "phases": DICT, "stealth": DICT, "subset_sizes": DICT, "sanity_ok": BOOL, "alarm": DICT,
    "sanity": _opt(lambda v: isinstance(v, list) and all(isinstance(c, dict) for c in v),
                   "a list of tables"),
}
MI_LINE_SCHEMA: dict[str, tuple] = {
    "epoch": (_is_int, "an integer"), "term": ((lambda v: isinstance(v, str)), "a string"),
    "subset": ((lambda v: isinstance(v, str)), "a string"),
    "method": ((lambda v: isinstance(v, str)), "a string"), "value": NUM, "role": STR,
    "lower": NUM, "upper": NUM, "ceiling": NUM, "n": INT, "seconds": NUM, "settings": DICT,
}
MI_LINE_REQUIRED = ("epoch", "term", "subset", "method")
METRICS_LINE_SCHEMA: dict[str, tuple] = {
    "epoch": (_is_int, "an integer"),
    **{k: NUM for k in ("lr", "train_loss", "train_acc", "test_loss", "test_acc", "asr",
                        "asr_all", "ra", "seconds", "time", "mi_seconds")},
    "class_loss": _opt(lambda v: isinstance(v, dict) and all(
        x is None or _is_num(x) for x in v.values()), "a table of numbers"),
}
METRICS_LINE_REQUIRED = ("epoch",)


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def check_fields(obj: dict, schema: dict[str, tuple], required: tuple[str, ...] = ()
                 ) -> tuple[dict, list[str]]:
    """(obj without the fields of the wrong type, one reason per such field or missing
    required field). Fields the schema does not name are kept as they are."""
    clean = dict(obj)
    problems = [f"{k} missing" for k in required if k not in obj]
    for k, (ok, what) in schema.items():
        if k in obj and not ok(obj[k]):
            problems.append(f"{k} = {_show(obj[k])} is not {what}")
            del clean[k]
    return clean, problems


def check_spec(spec: dict) -> tuple[dict, list[str]]:
    """A stored spec.toml against the spec's schema (ibtui.spec.Experiment), field by field: a
    field whose value the schema refuses is dropped and named; unknown keys are left alone."""
    from ibtui.spec import FIELDS, field_problem  # local: only a full read checks a spec

    known = {k: v for k, v in spec.items() if k in FIELDS}
    if field_problem(None, known) is None:  # one call for a whole good spec (~20 µs)
        return dict(spec), []
    clean = dict(spec)
    problems = []
    for k, v in known.items():
        why = field_problem(k, v)
        if why is not None:
            problems.append(f"{k} = {_show(v)}: {why}")
            del clean[k]
    return clean, problems


def read_jsonl_checked(path: Path, schema: dict[str, tuple], required: tuple[str, ...]
                       ) -> tuple[list[dict], str | None]:
    """The records of a JSONL file that fit the schema, and one line saying what was skipped."""
    parsed, problems = _parse_jsonl(path)
    out = []
    for i, rec in parsed:
        _, bad = check_fields(rec, schema, required)
        if bad:
            problems.append(f"line {i}: {bad[0]}")
        else:
            out.append(rec)
    if not problems:
        return out, None
    name = Path(path).name
    if len(problems) == 1 and "unreadable" in problems[0]:
        return out, problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return out, f"{name}: {len(problems)} line{'s' * (len(problems) > 1)} skipped: {problems[0]}{more}"


def pid_alive(pid: int | None) -> bool:
    if not _is_int(pid) or pid <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):
        return False
    # a zombie child still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        pass
    return True


_BOOT_TIME: list[float] = []  # read once per process: /proc/stat is long on many-core machines


def _boot_time() -> float | None:
    if _BOOT_TIME:
        return _BOOT_TIME[0]
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    _BOOT_TIME.append(float(line.split()[1]))
                    return _BOOT_TIME[0]
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_start_time(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch: field 22 of /proc/<pid>/stat
    (clock ticks after boot) plus the boot time. None where it cannot be read (no such
    process, no /proc: then liveness falls back to the heartbeat). Recorded by the worker
    next to its pid, so a pid reused by another process (even after a reboot) is told apart."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            data = f.read()
        ticks = int(data.rsplit(b")", 1)[1].split()[19])
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError, OverflowError):
        return None
    boot = _boot_time()
    if boot is None or hz <= 0:
        return None
    return round(boot + ticks / hz, 2)


@dataclass
class Run:
    """A read-only view of one run directory, read in full (load_run). Never raises on damaged
    content: `damaged` says why (a wrong-typed field is dropped from `status`/`summary`/`spec`
    and named there)."""

    path: Path
    status: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    summary: dict | None = None
    damaged: list[str] = field(default_factory=list)
    config: str = ""  # ibtui.runs.config.config_key of the spec ("" when it has none)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def state(self) -> str:
        s = self.status.get("state") if self.status else None
        if type(s) is str and s in _SETTLED:  # effective_state's answer, without its checks
            return s
        return effective_state(self.status) if self.status else "damaged"

    def _note(self, problem: str | None) -> None:
        if problem and problem not in self.damaged:
            self.damaged.append(problem)

    def _lines(self, name: str, schema: dict, required: tuple, what: str) -> list[dict]:
        """The lines of `name` of the right shape; skipped and repeated ones are noted in
        `damaged`."""
        recs, problem = read_jsonl_checked(self.path / name, schema, required)
        self._note(problem)
        self._note(repeated(recs, required, name, what))
        return recs

    def metrics(self) -> list[dict]:
        return self._lines("metrics.jsonl", METRICS_LINE_SCHEMA, METRICS_LINE_REQUIRED, "epochs")

    def mi(self) -> list[dict]:
        return self._lines("mi.jsonl", MI_LINE_SCHEMA, MI_LINE_REQUIRED, "MI values")

    def log_tail(self, n: int = 40) -> list[str]:
        try:
            if not stat_mod.S_ISREG(os.stat(self.path / "worker.log").st_mode):
                return []
            with open(self.path / "worker.log", "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64_000))
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return data.splitlines()[-n:]


class IndexedRun(Run):
    """A run as the runs index (RunIndex) keeps it: `status`, `spec` and `summary` hold only
    the fields listings use (LIGHT_STATUS, LIGHT_SPEC: every one, None where the spec lacks
    it; LIGHT_SUMMARY, with the sanity checks as counts); `damaged` and `config` are those of
    the full read. load_run(run.path) reads the whole run."""


HEARTBEAT_SILENT_S = 30.0  # a live worker this long without a beat is shown as stalled


def heartbeat_silence(status: dict, now: float | None = None) -> float | None:
    """Seconds since a running run's last heartbeat when that is HEARTBEAT_SILENT_S or more
    (a stopped or frozen worker whose process still lives), else None."""
    if not isinstance(status, dict) or status.get("state") != "running":
        return None
    beat = status.get("heartbeat")
    if not _is_num(beat):
        return None
    silent = (time.time() if now is None else now) - beat
    return silent if silent >= HEARTBEAT_SILENT_S else None


REPEATED = "written more than once"  # in `damaged`: two workers trained the run at once


def repeated(recs: list[dict], key: tuple[str, ...], name: str, what: str) -> str | None:
    """A log line's key seen twice: a resumed run's logs are cut back to its checkpoint, so
    only two workers training the run at once write an epoch (or an MI value) twice."""
    seen: dict[tuple, int] = {}
    for r in recs:
        k = tuple(r.get(f) for f in key)
        seen[k] = seen.get(k, 0) + 1
    twice = [k for k, n in seen.items() if n > 1]
    if not twice:
        return None
    first = ", ".join(f"{f} {v}" for f, v in zip(key, twice[0], strict=True))
    return (f"{name}: {len(twice)} of {len(seen)} {what} {REPEATED} ({first}: "
            f"{seen[twice[0]]} times): trained by two workers at once")


def effective_state(status: dict, now: float | None = None) -> str:
    """The stored state, corrected: a 'running' run whose worker is gone is 'crashed'.

    On this host the worker is gone when its pid is dead, or when the pid is alive but is
    another process: its start time differs from the recorded `pid_start`, or (no start time
    to compare) the heartbeat is older than HEARTBEAT_LOST_S. A worker on another host is gone
    when its heartbeat is older than HEARTBEAT_STALE_S. Wrong-typed fields count as absent.
    """
    if not isinstance(status, dict):
        return "damaged"
    state = status.get("state")
    if isinstance(state, str) and state in STATES and state != "running":
        return state  # the same as below, without checking every field (many runs are listed)
    status, _ = check_fields(status, STATUS_SCHEMA)
    state = status.get("state", "damaged")
    if state != "running":
        return state
    now = time.time() if now is None else now
    beat = status.get("heartbeat")
    if status.get("host") not in (None, socket.gethostname()):
        return "crashed" if now - (beat or 0) > HEARTBEAT_STALE_S else state
    pid = status.get("pid")
    if not pid_alive(pid):
        return "crashed"
    recorded = status.get("pid_start")
    actual = process_start_time(pid)
    if recorded is not None and actual is not None:
        return state if abs(actual - recorded) <= PID_START_TOLERANCE_S else "crashed"
    if beat is not None and beat > now + HEARTBEAT_LOST_S:
        beat = None  # a heartbeat from the future says nothing about the worker
    if beat is None or now - beat > HEARTBEAT_LOST_S:
        return "crashed"  # no way to tell the worker from another process, and no recent beat
    return state


def load_run(path: Path) -> Run:
    # local: only a full read parses a spec; a warm listing does not pay for importing it
    from ibtui.spec import read_spec_file

    path = Path(path)
    run = Run(path=path)
    status, why = read_json(path / "status.json")
    if status is None:
        run.damaged.append(why or "status.json unreadable")
    else:
        run.status, bad = check_fields(status, STATUS_SCHEMA)
        if "state" not in status:
            bad.insert(0, "state missing")
        run.damaged += [f"status.json: {b}" for b in bad]
    try:
        spec = read_spec_file(path / "spec.toml")
    except Exception as e:  # a reader never breaks on a damaged run
        msg = str(e) if isinstance(e, IbtuiError) else f"{type(e).__name__}: {e}"
        run.damaged.append(msg if "spec.toml" in msg else f"spec.toml: {msg}")
    else:
        run.spec, bad = check_spec(spec if isinstance(spec, dict) else {})
        run.damaged += [f"spec.toml: {b}" for b in bad]
        run.config = config_key(run.spec) if run.spec else ""  # an unreadable spec: none
    summary, why = read_json(path / "summary.json")
    if summary is not None:
        summary, bad = check_fields(summary, SUMMARY_SCHEMA)
        run.damaged += [f"summary.json: {b}" for b in bad]
    elif run.status.get("state") == "done" or (why and not why.endswith("missing")):
        run.damaged.append(why or "summary.json unreadable")
    run.summary = summary
    return run


def _run_files(p: Path) -> bool:
    """Whether directory p holds a run (raises OSError when it cannot be read)."""
    names = os.listdir(p)
    return "status.json" in names or "spec.toml" in names


def _inside(runs_dir: Path, p: Path) -> bool:
    """p is a directory directly inside runs_dir, itself (never a link: see run_dirs)."""
    try:
        return not p.is_symlink() and p.is_dir()
    except (OSError, RuntimeError):
        return False


def run_dirs(runs_dir: Path) -> list[os.DirEntry]:
    """The candidates for runs of a runs directory, by name: its directories, not hidden, never a
    symbolic link (one pointing out would let a scheduler write elsewhere, one pointing in would
    count a run twice). Raises OSError when the runs directory cannot be read."""
    out = []
    with os.scandir(runs_dir) as entries:
        for de in entries:
            try:
                if de.name[0] != "." and not de.is_symlink() and de.is_dir():
                    out.append(de)
            except OSError:
                continue
    out.sort(key=lambda de: de.name)
    return out


def list_runs(runs_dir: Path) -> list[Run]:
    """Every run directory (a directory with a spec.toml or status.json; one that cannot be
    read is listed as damaged), sorted by creation."""
    runs_dir = Path(runs_dir)
    try:
        entries = [Path(de.path) for de in run_dirs(runs_dir)]
    except OSError:
        return []
    out = []
    for p in entries:
        try:
            is_run = _run_files(p)
        except OSError as e:
            out.append(Run(path=p, damaged=[f"unreadable: {_why(e)}"]))
            continue
        if is_run:
            out.append(load_run(p))
    out.sort(key=lambda r: (r.status.get("created") or 0, r.id))
    return out


def require_runs_dir(runs_dir: Path) -> Path:
    """The runs directory, or a RunStoreError saying why it cannot be read."""
    runs_dir = Path(runs_dir)
    try:
        st = os.stat(runs_dir)
    except FileNotFoundError:
        raise RunStoreError(f"runs directory {runs_dir} does not exist "
                            "(choose one with --runs-dir or $IBTUI_RUNS_DIR)") from None
    except (OSError, ValueError) as e:
        why = _why(e) if isinstance(e, OSError) else str(e)
        raise RunStoreError(f"runs directory {runs_dir}: {why}") from None
    if not stat_mod.S_ISDIR(st.st_mode):
        raise RunStoreError(f"runs directory {runs_dir} is not a directory")
    if not os.access(runs_dir, os.R_OK | os.X_OK):
        raise RunStoreError(f"runs directory {runs_dir} is not readable")
    return runs_dir


def run_key_problem(key: str) -> str | None:
    """Why `key` cannot name a run directly inside a runs directory, or None."""
    if not isinstance(key, str) or not key:
        return "empty; give a run id or a unique prefix of one (see `ibtui ls`)"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "contains control characters"
    if "/" in key or "\\" in key or os.sep in key:
        return "a run id, not a path: runs are the directories directly inside --runs-dir"
    if key.startswith("."):
        return "names starting with '.' are not runs"
    if len(key.encode("utf-8", "surrogateescape")) > NAME_MAX:
        return f"longer than {NAME_MAX} bytes, so no run id"
    return None


def find_run(runs_dir: Path, key: str) -> Path:
    """A run directly inside runs_dir, by exact id or by a unique prefix of one. Anything
    else (a path, '..', a pattern, '', a hidden name, a link out of runs_dir) is refused."""
    runs_dir = require_runs_dir(runs_dir)
    why = run_key_problem(key)
    if why:
        raise RunStoreError(f"RUN {key!r}: {why}")
    exact = runs_dir / key
    if _inside(runs_dir, exact):
        try:
            if _run_files(exact):
                return exact
        except OSError:
            return exact  # unreadable: load_run lists it as damaged, with the reason
    if any(c in key for c in "*?["):  # an exact id may hold them; a prefix may not
        raise RunStoreError(f"RUN {key!r}: no such run in {runs_dir}; give a run id or a unique "
                            "prefix of one, not a pattern")
    try:
        candidates = [Path(de.path) for de in run_dirs(runs_dir) if de.name.startswith(key)]
    except OSError as e:
        raise RunStoreError(f"runs directory {runs_dir}: {_why(e)}") from None
    matches = []
    for p in candidates:
        try:
            if _run_files(p):
                matches.append(p)
        except OSError:
            continue
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if exact.exists() or exact.is_symlink():
            raise RunStoreError(f"RUN {key!r}: {exact} is not a run directory")
        raise RunStoreError(f"RUN {key!r}: no such run in {runs_dir} (see `ibtui ls`)")
    shown = ", ".join(m.name for m in matches[:8]) + (", ..." if len(matches) > 8 else "")
    raise RunStoreError(f"RUN {key!r} matches several runs in {runs_dir}: {shown}")


class RunWriter:
    """The worker's handle on its own run directory (the only writer)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.status, _ = read_json(self.path / "status.json")
        self.status = self.status or {}
        (self.path / "artifacts").mkdir(exist_ok=True)

    def set_status(self, fsync: bool = True, **fields: Any) -> None:
        """Update and write status.json; durable (fsynced) unless fsync=False."""
        if fields.get("pid") and "pid_start" not in fields:  # who the pid is: see effective_state
            fields["pid_start"] = process_start_time(fields["pid"])
        self.status.update(fields)
        self.status["heartbeat"] = time.time()
        atomic_write_json(self.path / "status.json", self.status, fsync=fsync)

    def heartbeat(self, **fields: Any) -> None:
        """A liveness write: atomic, not fsynced (the caller limits how often)."""
        self.set_status(fsync=False, **fields)

    def log_metrics(self, record: dict) -> None:
        append_jsonl(self.path / "metrics.jsonl", record)

    def log_mi(self, records: list[dict]) -> None:
        append_jsonl_many(self.path / "mi.jsonl", records)

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"


# --- reading many runs: re-read only what changed ------------------------------------------------

SIG_FILES = ("status.json", "spec.toml", "summary.json")
LOG_FILES = ("metrics.jsonl", "mi.jsonl")
# What a listing (ls, leaderboard, the app's rows and filters) needs of a run: the index keeps
# only these fields of status.json, spec.toml and summary.json.
LIGHT_STATUS = ("state", "created", "started", "ended", "heartbeat", "pid", "pid_start", "host",
                "gpu", "phase", "detail", "epoch", "epochs", "progress", "test_acc", "asr",
                "error", "executor")
LIGHT_SPEC = ("name", "attack", "dataset", "arch", "width", "poison_rate", "seed", "epochs",
              "target", "tags", "min_asr", "min_asr_reason", "lr", "batch_size", "noise_xt",
              "noise_ty", "momentum", "weight_decay", "plateau_patience", "plateau_factor")
# summary.json: its headline numbers and flags; the sanity checks as counts, the alarm's
# verdict (ibtui.analysis.alarm: its per-class suspicion included, so that a recorded verdict
# reads as one), the stealth score's share of inputs at their ceiling
LIGHT_SUMMARY = ("score", "d_xt", "d_ty", "clean_acc", "asr", "ra", "psnr", "ssim",
                 "wall_seconds", "sanity_ok", "sanity_failed", "sanity_passed", "alarm",
                 "ceiling_share")
ALARM_KEPT = ("top_class", "poisoned", "p", "epoch", "first_epoch", "no_verdict", "suspicion",
              "threshold_z")
RACY_S = 2.0  # a file changed this recently may change again within its mtime tick: not indexed
RACY_NS = int(RACY_S * 1e9)
# The index's format: bump it by hand whenever what an entry holds or how it is computed
# changes (the columns below, LIGHT_*, ALARM_KEPT, light_*, file_sig, load_run, check_fields and
# the schemas, config_key): an index of another format is dropped and rebuilt. Nothing else
# (the Python version, bytecode) invalidates it.
INDEX_FORMAT = 2  # 2: heads, bodies and lines in tables of their own
DB_TIMEOUT_S = 2.0  # a database locked longer than this by another process: a cold read
CACHE_ENV = "IBTUI_CACHE_DIR"  # where the index databases live (else $XDG_CACHE_HOME/ibtui)
# earlier versions kept their index in the runs directory itself: removed when this host first
# builds the database of that runs directory
OLD_INDEX_NAMES = (".ibtui-index", ".ibtui-index.json")
# RunIndex.listing's rows: (creation time, run id, state, score, leaderboard JSON line or None)
Listed = tuple
# a first read of at least this many runs is shared among processes (a fork costs a few ms
# but each run ~1 ms: TOML and JSON parsing in Python)
PARALLEL_MIN = 200
_SIG = struct.Struct("<qqQqqQqqQ")  # a file_sig of SIG_FILES as the database keeps it
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    # per run: its files' signature (_SIG) and head (_head), all that a listing reads of every
    # run, in a small table of their own; the rest of the entry as JSON with its logs' damage
    # (and their signature); the line (LineMaker) made from it
    "CREATE TABLE heads (id TEXT PRIMARY KEY, sig BLOB NOT NULL, created, state, score)"
    " WITHOUT ROWID",
    "CREATE TABLE bodies (id TEXT PRIMARY KEY, sig BLOB NOT NULL, body TEXT NOT NULL, logs TEXT)",
    "CREATE TABLE lines (id TEXT PRIMARY KEY, sig BLOB NOT NULL, version INTEGER NOT NULL,"
    " line TEXT NOT NULL)",
)
_TABLES = ("heads", "bodies", "lines", "meta")


def light_status(status: dict) -> dict:
    return {k: status[k] for k in LIGHT_STATUS if k in status}


def light_spec(spec: dict) -> dict:
    """TOML has no null: a field the spec lacks is None here (spec.get reads the same)."""
    return {k: spec.get(k) for k in LIGHT_SPEC}


def light_summary(summary: dict | None) -> dict | None:
    if summary is None:
        return None
    out = {k: summary[k] for k in LIGHT_SUMMARY if k in summary}
    checks = summary.get("sanity")
    if isinstance(checks, list):
        checks = [c for c in checks if isinstance(c, dict)]
        out["sanity_failed"] = sum(c.get("ok") is False for c in checks)
        out["sanity_passed"] = len(checks) - out["sanity_failed"]
    alarm = summary.get("alarm")
    if isinstance(alarm, dict):
        out["alarm"] = {k: alarm[k] for k in ALARM_KEPT if k in alarm}
    stealth = summary.get("stealth")
    boot = stealth.get("bootstrap") if isinstance(stealth, dict) else None
    if isinstance(boot, dict) and "score_interval" in boot:  # the leaderboard's interval
        out["stealth"] = {"bootstrap": {"score_interval": boot["score_interval"]}}
    return out


_STAT_DIR_FD = os.stat in os.supports_dir_fd


def file_sig(path: Path | str, names: tuple[str, ...] = SIG_FILES, must_run: bool = True,
             dir_fd: int | None = None) -> tuple | None:
    """mtime_ns, size and inode of each named file of a run directory, flat (-1, -1, 0 where
    absent), or None when the directory holds neither status.json nor spec.toml (not a run).
    With `dir_fd`, `path` is relative to it. Raises OSError when the directory cannot be read.

    Why equal signatures mean unchanged files: every writer of a run either replaces a file
    (a new inode, and a new mtime) or appends to it (new size and mtime), and an edit in place
    changes the mtime, except a second one within the same mtime tick (nanoseconds here,
    2 s on old filesystems). The index therefore never keeps a file changed in the last
    RACY_S seconds: it is read again on the next look, after its tick has passed. On a
    filesystem shared by several hosts, another host's writes show the same way (its
    replacements as new inodes, even when the hosts' clocks disagree)."""
    out: list[int] = []
    for n in names:
        try:
            st = (os.stat(f"{path}/{n}", dir_fd=dir_fd) if dir_fd is not None
                  else os.stat(os.path.join(path, n)))
        except FileNotFoundError:
            out += (-1, -1, 0)
            continue
        except NotADirectoryError:
            return None
        out += (st.st_mtime_ns, st.st_size, st.st_ino)
    if must_run and out[0] == -1 and out[3] == -1:
        return None
    return tuple(out)


def _sig_at(name: str, fd: int) -> tuple | None:
    """file_sig(name, dir_fd=fd) for SIG_FILES, spelled out: ten thousand runs are checked on
    every listing."""
    stat = os.stat
    try:
        a = stat(name + "/status.json", dir_fd=fd)
        a = (a.st_mtime_ns, a.st_size, a.st_ino)
    except FileNotFoundError:
        a = (-1, -1, 0)
    except NotADirectoryError:
        return None
    try:
        b = stat(name + "/spec.toml", dir_fd=fd)
        b = (b.st_mtime_ns, b.st_size, b.st_ino)
    except FileNotFoundError:
        if a[0] == -1:  # neither status.json nor spec.toml: no run
            return None
        b = (-1, -1, 0)
    except NotADirectoryError:
        return None
    try:
        c = stat(name + "/summary.json", dir_fd=fd)
    except FileNotFoundError:
        return (*a, *b, -1, -1, 0)
    except NotADirectoryError:
        return None
    return (*a, *b, c.st_mtime_ns, c.st_size, c.st_ino)


def _newest_ns(sig: tuple) -> int:
    return max(sig[::3], default=0)


def _settled(status: dict) -> str | None:
    """A run's state when no liveness check can change it (as Run.state answers), or None."""
    if not status:
        return "damaged"
    s = status.get("state")
    return s if type(s) is str and s in _SETTLED else None


def _head(status: dict, summary: dict | None) -> tuple:
    """What every listing needs of a run, kept in the index's own columns so that a listing of
    ten thousand runs decodes only this: (creation time, its state when settled else None,
    its score). A running run's state is worked out on every look."""
    return (_created(status), _settled(status), summary.get("score") if summary else None)


def _read_entry(p: Path, sig: tuple) -> dict:
    """A run read in full, kept as the index keeps it."""
    run = load_run(p)
    return {"sig": sig, "newest": _newest_ns(sig), "config": run.config,
            "damaged": run.damaged, "logs": None, "status": light_status(run.status),
            "spec": light_spec(run.spec), "summary": light_summary(run.summary),
            "head": _head(run.status, run.summary), "line": None}


def _log_damage(p: Path) -> tuple[str, ...]:
    """What is wrong in a run's metrics.jsonl and mi.jsonl (as Run.metrics()/mi() note it)."""
    run = Run(path=p)
    run.metrics()
    run.mi()
    return tuple(run.damaged)


def _read_job(job: tuple) -> tuple[dict | None, tuple[str, ...] | None]:
    """(the run's entry, or None: not asked; its logs' damage, or None: not asked)."""
    p, sig, logs = job
    return (_read_entry(p, sig) if sig is not None else None,
            _log_damage(p) if logs else None)


def _read_jobs(jobs: list[tuple]) -> list[tuple]:
    """_read_job of each, shared among processes when there are many (a first read without
    an index: ten thousand runs take ~10 s of parsing in one process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    # fork: the children start at once, with everything imported; only where it is safe (one
    # thread in this process: the CLI, not the app). The index's database connection is not
    # used by the children (they only read run files and exit without closing it).
    if len(jobs) >= PARALLEL_MIN and cpus > 1 and sys.platform == "linux" \
            and threading.active_count() == 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        workers = min(cpus, 8)
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as ex:
                return list(ex.map(_read_job, jobs, chunksize=max(8, len(jobs) // workers // 8)))
        except Exception:  # no processes to be had (limits, a sandbox): read them here
            pass
    return [_read_job(j) for j in jobs]


def cache_dir() -> Path:
    """Where ibtui keeps caches of this user on this machine: $IBTUI_CACHE_DIR, else
    $XDG_CACHE_HOME/ibtui, else ~/.cache/ibtui."""
    own = os.environ.get(CACHE_ENV)
    if own:
        return Path(own)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg if xdg and os.path.isabs(xdg) else os.path.expanduser("~/.cache")) / "ibtui"


def index_db_path(runs_dir: Path) -> Path:
    """The database that indexes `runs_dir` on this host: one file per runs directory (by its
    resolved path) and host, in the cache directory's `index/`. Per host: a cache directory in
    a home shared over the network is then never written by two hosts at once, and each file
    stays small (a runs directory's runs only)."""
    key = os.fsencode(socket.gethostname()) + b"\0" + os.fsencode(Path(runs_dir).resolve())
    return cache_dir() / "index" / f"runs-{hashlib.sha256(key).hexdigest()[:24]}.sqlite3"


class LineMaker(NamedTuple):
    """A text the index keeps per settled run next to its entry, made from the run as indexed
    (the leaderboard's JSON line: ibtui.runs.board.BOARD_LINE). `version`: bumped by hand
    whenever `make`, or anything it calls, would make another text for the same run: lines of
    another version are made again."""

    version: int
    make: Callable[[Run], str]


def _format(db: sqlite3.Connection) -> Any:
    """The database's INDEX_FORMAT (None for a new file); raises sqlite3.Error otherwise."""
    try:
        got = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None
        raise
    return got[0][0] if got else None


def _db_broken(e: Exception) -> bool:
    """Whether a database error means the file itself is damaged or not what this format
    makes (a table missing), not merely locked: then it is deleted and made again."""
    text = str(e)
    if "no such table" in text or "no such column" in text:
        return True
    name = getattr(e, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return "malformed" in text or "not a database" in text


class RunIndex:
    """Every run of a runs directory, each re-read only when one of its files changed (mtime,
    size or inode, see file_sig): a finished run is read once. Kept in memory and, with
    `persist`, in an SQLite database on this machine's local cache directory (index_db_path,
    keyed by the runs directory), so that the next command starts warm; a save writes only the
    runs that changed. The index is a cache, never the truth: every entry is checked against
    its run's files before it is used (so another host's writes to a shared runs directory
    are seen), and a missing, stale, damaged, locked or unwritable database only costs a full
    read (a damaged one is deleted and built again). It keeps what listings need of each run
    (LIGHT_STATUS, LIGHT_SPEC, LIGHT_SUMMARY: an IndexedRun); load_run reads a run in full.
    Liveness is never cached: a 'running' run's `state` is re-checked (pid, process start
    time, heartbeat) on every access. With `line`, each settled run's line (LineMaker) is kept
    too and given in `listing`."""

    def __init__(self, runs_dir: Path, persist: bool = True, line: LineMaker | None = None):
        self.runs_dir = Path(runs_dir)
        self.persist = persist
        self.line = line
        self._entries: dict[str, dict] = {}
        # as the database held them when loaded: id -> (id, packed signature, created, state,
        # score), checked against the run's files when used, the rest read when asked; and the
        # lines made from these entries
        self._heads: dict[str, tuple] = {}
        self._lines: dict[str, str] = {}
        self._odd: dict[str, Run] = {}  # runs whose directory cannot be read (no entry)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._changed: set[str] = set()  # entries to write
        self._gone: set[str] = set()  # entries to delete
        self._new_lines: set[str] = set()  # lines made for entries the database holds
        self._new_logs: set[str] = set()  # log damage found for entries the database holds
        self._listed_odd = 0
        self._loaded = False
        self._saved_at = -1e9

    @property
    def db_path(self) -> Path:
        return index_db_path(self.runs_dir)

    # --- the database: every failure is a cold read, never an error ---------------------------

    def _open(self) -> sqlite3.Connection | None:
        path = self.db_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not path.exists()
            db = sqlite3.connect(path, timeout=DB_TIMEOUT_S, isolation_level=None,
                                 check_same_thread=False)
        except (OSError, sqlite3.Error):
            return None
        try:
            # a rollback journal (no WAL: its shared memory must not live on a network
            # filesystem, which a home directory's cache may be); the index is a cache, so a
            # crash may lose its last writes but never tears them
            db.execute("PRAGMA synchronous = NORMAL")
            if _format(db) != INDEX_FORMAT:
                db.execute("BEGIN IMMEDIATE")
                if _format(db) != INDEX_FORMAT:  # not made meanwhile by another process
                    for table in (*_TABLES, "runs"):  # "runs": an index of another format
                        db.execute(f"DROP TABLE IF EXISTS {table}")
                    for sql in _SCHEMA:
                        db.execute(sql)
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format", INDEX_FORMAT), ("runs_dir", os.fsencode(self.runs_dir.resolve())),
                        ("host", socket.gethostname())])
                    fresh = True
                db.execute("COMMIT")
        except sqlite3.Error as e:
            self._fail(db, e)
            return None
        if fresh:
            for old in OLD_INDEX_NAMES:  # an earlier version's index file: not ours to read
                with contextlib.suppress(OSError):
                    os.unlink(self.runs_dir / old)
            _prune(path)
        return db

    def _fail(self, db: sqlite3.Connection | None, e: Exception) -> None:
        """Stop using the database; delete it when it is damaged (the next command builds
        it again). Everything read so far stays."""
        with contextlib.suppress(sqlite3.Error):
            if db is not None:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                db.close()
        if db is self._db:
            self._db = None
        if _db_broken(e):
            for suffix in ("", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{self.db_path}{suffix}")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple] | None:
        db = self._db
        if db is None:
            return None
        with self._lock:
            try:
                return db.execute(sql, args).fetchall()  # fetched in full: no lock held after
            except sqlite3.Error as e:
                self._fail(db, e)
                return None

    def _load_index(self) -> None:
        self._loaded = True
        if not self.persist:
            return
        self._db = self._open()
        rows = self._query("SELECT id, sig, created, state, score FROM heads")
        lines = (self._query("SELECT id, sig, line FROM lines WHERE version = ?",
                             (self.line.version,)) if rows and self.line is not None else None)
        if rows:
            with no_gc():
                self._heads = {r[0]: r for r in rows}
                # a line counts only when it was made from the entry whose head is there
                self._lines = {r[0]: r[2] for r in lines or ()
                               if (h := self._heads.get(r[0])) is not None and h[1] == r[1]}

    def _get(self, name: str) -> dict | None:
        """The whole entry of a run (read from the database when only its head is loaded)."""
        e = self._entries.get(name)
        if e is not None or name not in self._heads:
            return e
        sig = self._heads.pop(name)[1]
        rows = self._query("SELECT sig, body, logs FROM bodies WHERE id = ?", (name,))
        if not rows or rows[0][0] != sig:  # gone, or replaced since (by another process)
            return None
        e = _entry(rows[0][1], rows[0][2], _SIG.unpack(sig), self._lines.pop(name, None))
        if e is not None:
            self._entries[name] = e
        return e

    def save(self, every_s: float = 0.0) -> None:
        """Write what changed to the database (one transaction: the runs read again, the runs
        gone, new lines and log damage), at most once every `every_s` seconds; silently
        skipped when the database cannot be written. Entries of files changed in the last
        RACY_S seconds are left out: they are read again next time."""
        if not (self._changed or self._gone or self._new_lines or self._new_logs):
            return
        now = time.monotonic()
        if every_s and now - self._saved_at < every_s:
            return
        self._saved_at = now
        racy = time.time_ns() - RACY_NS
        heads, bodies = [], []
        for rid in self._changed:
            e = self._entries.get(rid)
            if e is None or e["newest"] >= racy or not _storable(rid):
                continue
            try:  # a value JSON cannot hold (never from JSON or TOML): not kept
                body = json.dumps((e["config"], e["damaged"], e["status"], e["spec"],
                                   e["summary"]))
            except (TypeError, ValueError):
                continue
            if not all(type(v) is not int or -1 << 63 <= v < 1 << 63 for v in e["head"]):
                continue  # a number SQLite cannot hold (a creation time of 10**30): not kept
            sig = _SIG.pack(*e["sig"])
            heads.append((rid, sig, *e["head"]))
            bodies.append((rid, sig, body, _logs_text(e["logs"])))
            if e["line"] is not None:
                self._new_lines.add(rid)
        kept = {r[0] for r in heads}
        lines = [(r, _SIG.pack(*e["sig"]), self.line.version, e["line"])
                 for r in self._new_lines if (e := self._entries.get(r)) is not None
                 and e["line"] is not None and _storable(r)
                 and (r in kept or r not in self._changed)]
        logs = [(_logs_text(e["logs"]), r, _SIG.pack(*e["sig"])) for r in self._new_logs - kept
                if (e := self._entries.get(r)) is not None and _storable(r)]
        gone = [(r,) for r in self._gone if _storable(r)]
        self._changed, self._gone, self._new_lines, self._new_logs = set(), set(), set(), set()
        db = self._db
        if db is None:
            return
        with self._lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                for table in _TABLES[:3]:
                    db.executemany(f"DELETE FROM {table} WHERE id = ?", gone)
                db.executemany("INSERT OR REPLACE INTO heads VALUES (?, ?, ?, ?, ?)", heads)
                db.executemany("INSERT OR REPLACE INTO bodies VALUES (?, ?, ?, ?)", bodies)
                db.executemany("INSERT OR REPLACE INTO lines VALUES (?, ?, ?, ?)", lines)
                # onto the entry they were found for only (another process may have replaced it)
                db.executemany("UPDATE bodies SET logs = ? WHERE id = ? AND sig = ?", logs)
                db.execute("COMMIT")
            except (sqlite3.Error, OverflowError) as e:
                self._fail(db, e)

    def close(self) -> None:
        """Close the database (also done when the index is garbage collected)."""
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    # --- runs ----------------------------------------------------------------------------------

    def run(self, name: str) -> IndexedRun | Run | None:
        """A run of the last `listing` (or `runs`) as an IndexedRun (a Run with only a message
        when its directory cannot be read; None when it is no run)."""
        e = self._get(name)
        if e is None:
            odd = self._odd.get(name)
            if odd is not None:
                return odd
            # its entry could not be read from the database: read the run itself
            p, sig = self._look(name, None)
            if sig is None or isinstance(sig, OSError):
                return self._gone_run(name, p, sig)
            e = _read_entry(p, sig)
            self._keep(name, e)
        return self._run(self._child(name), e)

    def known(self) -> set[str]:
        """The runs the index knows (not necessarily still there)."""
        return set(self._entries) | set(self._heads)

    def names(self) -> list[str]:
        """The names of the run directories' candidates (directories, not links, not hidden);
        raises OSError when the runs directory is unreadable."""
        return [de.name for de in run_dirs(self.runs_dir)]

    def _look(self, name: str, fd: int | None) -> tuple[Path, tuple | None | OSError]:
        """(the run's path, its file signature: None when it is no run, the error when its
        directory cannot be read)."""
        p = self._child(name)
        try:
            return p, (file_sig(name, dir_fd=fd) if fd is not None else file_sig(p))
        except OSError as e:
            return p, e

    def _gone_run(self, name: str, p: Path, sig: OSError | None) -> Run | None:
        self.forget({name})
        if sig is None:
            return None
        run = self._odd[name] = Run(path=p, damaged=[f"unreadable: {_why(sig)}"])
        return run

    def _keep(self, name: str, e: dict) -> None:
        self._entries[name] = e
        self._heads.pop(name, None)
        self._lines.pop(name, None)
        self._odd.pop(name, None)
        self._gone.discard(name)
        self._changed.add(name)

    def check(self, name: str, fd: int | None = None) -> tuple[Run | None, bool]:
        """One run directory: (its IndexedRun, or None when it is no run; whether its files
        changed since the last look, so that it was read again). A run whose directory cannot
        be read is a damaged Run (changed: True)."""
        if not self._loaded:
            self._load_index()
        p, sig = self._look(name, fd)
        if sig is None or isinstance(sig, OSError):
            return self._gone_run(name, p, sig), True
        e = self._get(name)
        changed = e is None or e["sig"] != sig
        if changed:
            e = _read_entry(p, sig)
            self._keep(name, e)
        return self._run(p, e), changed

    def _run(self, p: Path, e: dict) -> IndexedRun:
        return IndexedRun(path=p, status=e["status"], spec=e["spec"], summary=e["summary"],
                          damaged=list(e["damaged"]), config=e["config"])

    def indexed(self) -> list[str]:
        """The runs the database knows, oldest first, without looking at any run directory
        (see `indexed_run`): a first picture to show at once, checked with `check` after."""
        if not self._loaded:
            self._load_index()
        made = {n: (_num_or_0(h[2]), n) for n, h in self._heads.items()}
        made.update({n: (e["head"][0], n) for n, e in self._entries.items()})
        return sorted(made, key=made.__getitem__)

    def indexed_run(self, name: str) -> IndexedRun | None:
        """A run as the database last saw it (None when it holds no such run)."""
        e = self._get(name)
        return None if e is None else self._run(self._child(name), e)

    def forget(self, names: set[str]) -> None:
        for n in names:
            self._odd.pop(n, None)
            self._changed.discard(n)
            self._new_lines.discard(n)
            self._new_logs.discard(n)
            self._lines.pop(n, None)
            if self._entries.pop(n, None) is not None or self._heads.pop(n, None) is not None:
                self._gone.add(n)

    def _child(self, name: str) -> Path:
        # pathlib's child without re-parsing the name (a tenth of the time at 10,000 runs)
        make = getattr(self.runs_dir, "_make_child_relpath", None)
        return make(name) if make is not None else self.runs_dir / name

    def open_dir(self) -> int | None:
        """A descriptor of the runs directory for stats relative to it (close it), or None."""
        try:
            return os.open(self.runs_dir, os.O_RDONLY) if _STAT_DIR_FD else None
        except OSError:
            return None

    def runs(self, logs: bool = False, ids: set[str] | None = None) -> list[Run]:
        """Every run (as `list_runs`: damaged ones listed, sorted by creation); with `logs`,
        damage in metrics.jsonl and mi.jsonl is listed too (as `Run.metrics()`/`mi()` note it;
        or later, for only some runs: `add_log_damage`). `ids`: only these runs (others are
        not even looked at)."""
        listed = self._listing(ids)
        with no_gc():
            out = [self.run(x[1]) for x in listed]
        if logs:
            self.add_log_damage(out)  # saves the index
        self.save()  # nothing to write when add_log_damage just did
        return out  # type: ignore[return-value]

    def listing(self, ids: set[str] | None = None) -> list[Listed]:
        """Every run as a Listed tuple (creation time, id, state, score, the run's line
        (LineMaker) or None), sorted by creation as `runs` sorts them, without building a Run
        per run: `run(id)` builds one. Every run's files are checked as `runs` checks them (a
        run changed since the index saw it is read again), and liveness is checked for every
        running run, so nothing is staler than `runs`; the line is None without `line`, where
        the state is not settled, or where the directory cannot be read. `ids`: only these
        runs."""
        out = self._listing(ids)
        self.save()
        return out

    def _listing(self, ids: set[str] | None) -> list[Listed]:
        if not self._loaded:
            self._load_index()
        try:
            names = self.names()
        except OSError:
            return []
        if ids is not None:
            names = [n for n in names if n in ids]
        fd = self.open_dir()
        try:
            with no_gc():
                out = self._scan(names, fd)
        finally:
            if fd is not None:
                os.close(fd)
        # runs the index knows that are no longer there: none when it knows as many as listed
        # (every listed run with an entry is known; entries and heads are disjoint)
        if ids is None and len(self._entries) + len(self._heads) != len(out) - self._listed_odd:
            self.forget(self.known() - set(names))
        out.sort()  # by creation time, then id: ids differ, so nothing further is compared
        return out

    def _scan(self, names: list[str], fd: int | None) -> list[Listed]:
        out: list[Listed] = []
        entries, heads, lines, pack = self._entries, self._heads, self._lines, _SIG.pack
        stale: list[tuple[str, Path, tuple]] = []  # runs whose files changed: read below
        self._listed_odd = 0  # unreadable runs listed (no entry)
        for name in names:
            if fd is not None:
                try:
                    sig = _sig_at(name, fd)
                except OSError as err:
                    sig = err
            else:
                sig = self._look(name, None)[1]
            if sig is None or isinstance(sig, OSError):
                if self._gone_run(name, self._child(name), sig) is not None:
                    out.append((0, name, "damaged", None, None))
                    self._listed_odd += 1
                continue
            e = entries.get(name)
            if e is not None:
                if e["sig"] == sig:
                    out.append(self._listed(name, e["head"], e["line"]))
                    continue
            else:
                h = heads.get(name)
                if h is not None and h[1] == pack(*sig):
                    out.append(self._listed(name, h[2:], lines.get(name)))
                    continue
            stale.append((name, self._child(name), sig))
        for (name, _, _), (e, _) in zip(
                stale, _read_jobs([(p, sig, False) for _, p, sig in stale]), strict=True):
            self._keep(name, e)
            out.append(self._listed(name, e["head"], None))
        return out

    def _listed(self, name: str, head: tuple, line: str | None) -> Listed:
        created, state, score = head
        if state is None:
            run = self.run(name)  # not settled: its liveness is checked now
            return (created, name, run.state if run is not None else "damaged", score, None)
        if line is None and self.line is not None:
            e = self._get(name)
            if e is not None:
                line = e["line"] = self.line.make(self._run(self._child(name), e))
                self._new_lines.add(name)
        return (created, name, state, score, line)

    def add_log_damage(self, runs: list[Run]) -> None:
        """Note the damage in these runs' metrics.jsonl and mi.jsonl in their `damaged` (read
        again only where a log changed), e.g. for only the rows a table shows."""
        fd = self.open_dir()
        try:
            with no_gc():
                self._add_logs(runs, fd)
        finally:
            if fd is not None:
                os.close(fd)
        self.save()

    def _add_logs(self, runs: list[Run], fd: int | None) -> None:
        todo = []
        for run in runs:
            e = self._entries.get(run.id)
            if e is None or not run.status:
                continue
            lsig = (file_sig(run.id, LOG_FILES, must_run=False, dir_fd=fd) if fd is not None
                    else file_sig(run.path, LOG_FILES, must_run=False))
            cached = e["logs"]
            if cached is not None and cached[0] == lsig:
                run.damaged += [x for x in cached[1] if x not in run.damaged]
            else:
                todo.append((run, e, lsig))
        for (run, e, lsig), (_, damage) in zip(
                todo, _read_jobs([(run.path, None, True) for run, _, _ in todo]), strict=True):
            e["logs"] = (lsig, damage)
            if _newest_ns(lsig) < time.time_ns() - RACY_NS:  # else read again next time
                self._new_logs.add(run.id)
            run.damaged += [x for x in damage if x not in run.damaged]


def _storable(name: str) -> bool:
    """Whether a run id can be kept in the database: a directory name that is no UTF-8 (a
    surrogate escape here) cannot, so such a run is read again on every listing."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _logs_text(logs: tuple | None) -> str | None:
    return None if logs is None else json.dumps([list(logs[0]), list(logs[1])])


def _entry(body: Any, logs: Any, sig: tuple, line: Any) -> dict | None:
    """An entry as the database holds it, or None when it is not well formed."""
    try:
        config, damaged, status, spec, summary = json.loads(body)
        if logs is not None:
            lsig, damage = json.loads(logs)
            logs = (tuple(lsig), tuple(damage))
            if not (all(type(x) is int for x in logs[0])
                    and all(type(x) is str for x in logs[1])):
                return None
    except (TypeError, ValueError, RecursionError):
        return None
    if not (type(config) is str and type(damaged) is list
            and all(type(x) is str for x in damaged)
            and type(status) is dict and type(spec) is dict
            and (summary is None or type(summary) is dict)
            and (line is None or type(line) is str)):
        return None
    return {"sig": sig, "newest": 0, "config": config, "damaged": damaged, "logs": logs,
            "status": status, "spec": spec, "summary": summary, "head": _head(status, summary),
            "line": line}


def _prune(keep: Path, at_most: int = 64) -> None:
    """Delete index databases (other than `keep`) of this host whose runs directory is gone
    (a cache that could never be used again), looking at no more than `at_most` of them."""
    host = socket.gethostname()
    try:
        others = [p for p in keep.parent.glob("runs-*.sqlite3") if p != keep][:at_most]
    except OSError:
        return
    for p in others:
        try:
            db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=0.1)
            try:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            finally:
                db.close()
        except sqlite3.Error:
            continue
        where = meta.get("runs_dir")
        if meta.get("host") == host and isinstance(where, bytes) and not os.path.isdir(where):
            with contextlib.suppress(OSError):
                p.unlink()


def _num_or_0(v: Any) -> float:
    return v if _is_num(v) else 0


@contextlib.contextmanager
def no_gc():
    """No garbage collection while building many small containers (a fifth of the time of
    listing ten thousand runs went to collections that find nothing to free)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # what was built stays (rows, listings): out of the collector's sight, so that the
        # next collection does not walk it all again (freed by reference counting as usual)
        gc.freeze()
        if was:
            gc.enable()


def _created(status: dict) -> float:
    c = status.get("created")
    return c if _is_num(c) else 0


def list_runs_cached(runs_dir: Path, logs: bool = False, ids: set[str] | None = None
                     ) -> list[Run]:
    """`list_runs` through the runs directory's index (see RunIndex): the same runs, the same
    damage, the same liveness, without re-reading runs whose files did not change."""
    index = RunIndex(runs_dir)
    try:
        return index.runs(logs=logs, ids=ids)
    finally:
        index.close()


def file_signature(path: Path, names: tuple[str, ...]) -> tuple:
    """(mtime_ns, size) of each named file in `path`, None for one that cannot be read: equal
    signatures mean nothing to re-read (readers' caches key on it)."""
    out = []
    for n in names:
        try:
            st = os.stat(Path(path) / n)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)
