"""The run directory: the contract between worker, scheduler, CLI and TUI.

One writer per run directory (its worker). Files that are replaced are written atomically
(temp file in the same directory, fsync, os.replace); logs are append-only JSONL whose readers
skip a torn last line.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import marshal
import math
import os
import socket
import stat as stat_mod
import sys
import threading
import time
import types
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibtui.errors import IbtuiError
from ibtui.files import atomic_write as atomic_write_bytes  # the one atomic write
from ibtui.files import read_regular
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
    """A stored spec.toml against the field types of ibtui.spec.FIELDS."""
    from ibtui.spec import FIELDS  # local: spec imports nothing from runs

    clean = dict(spec)
    problems = []
    for k, v in spec.items():
        f = FIELDS.get(k)
        if f is None:
            continue

        def fits(x: Any, f=f) -> bool:
            if isinstance(x, bool):
                return bool in f.types
            if float in f.types and _is_num(x):
                return True
            return isinstance(x, f.types) and (not isinstance(x, float) or math.isfinite(x))

        ok = fits(v) or (f.listy and isinstance(v, list) and all(fits(x) for x in v))
        if not ok:
            problems.append(f"{k} = {_show(v)} is not {'/'.join(t.__name__ for t in f.types)}"
                            + (" or a list of them" if f.listy else ""))
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
    """A read-only view of one run directory. Never raises on damaged content: `damaged` says
    why (a wrong-typed field is dropped from `status`/`summary`/`spec` and named there)."""

    path: Path
    status: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    summary: dict | None = None
    damaged: list[str] = field(default_factory=list)
    # read through the index: spec, summary and status without the parts listings do not use
    # (light_spec, light_summary, light_status); load_run(path) reads the whole run
    light: bool = False
    config: str = ""  # light runs: ibtui.analysis.replicas.config_key of the full spec

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

    def metrics(self) -> list[dict]:
        """The metrics.jsonl lines of the right shape; skipped ones are noted in `damaged`."""
        recs, problem = read_jsonl_checked(self.path / "metrics.jsonl", METRICS_LINE_SCHEMA,
                                           METRICS_LINE_REQUIRED)
        self._note(problem)
        self._note(repeated(recs, METRICS_LINE_REQUIRED, "metrics.jsonl", "epochs"))
        return recs

    def mi(self) -> list[dict]:
        """The mi.jsonl lines of the right shape; skipped ones are noted in `damaged`."""
        recs, problem = read_jsonl_checked(self.path / "mi.jsonl", MI_LINE_SCHEMA,
                                           MI_LINE_REQUIRED)
        self._note(problem)
        self._note(repeated(recs, MI_LINE_REQUIRED, "mi.jsonl", "MI values"))
        return recs

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
    from ibtui.spec import read_spec_file  # local: spec imports nothing from runs

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
    """p is a directory directly inside runs_dir, itself (a symbolic link is never a run: one
    pointing out would let a scheduler write elsewhere, one pointing in counts a run twice)."""
    try:
        return not p.is_symlink() and p.is_dir()
    except (OSError, RuntimeError):
        return False


def list_runs(runs_dir: Path) -> list[Run]:
    """Every run directory (a directory with a spec.toml or status.json; one that cannot be
    read is listed as damaged), sorted by creation."""
    runs_dir = Path(runs_dir)
    try:
        entries = sorted(runs_dir.iterdir())
    except OSError:
        return []
    out = []
    for p in entries:
        if p.name.startswith(".") or not _inside(runs_dir, p):
            continue
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
    from ibtui.errors import RunStoreError

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
    from ibtui.errors import RunStoreError

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
        names = sorted(n for n in os.listdir(runs_dir) if n.startswith(key))
    except OSError as e:
        raise RunStoreError(f"runs directory {runs_dir}: {_why(e)}") from None
    matches = []
    for n in names:
        p = runs_dir / n
        try:
            if _inside(runs_dir, p) and _run_files(p):
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

INDEX_NAME = ".ibtui-index"  # hidden: never taken for a run
OLD_INDEX_NAMES = (".ibtui-index.json",)  # earlier versions' index files: removed on save
INDEX_VERSION = 9  # 9: log damage names records written twice
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
# verdict without its per-class detail, the stealth score's share of inputs at their ceiling
LIGHT_SUMMARY = ("score", "d_xt", "d_ty", "clean_acc", "asr", "ra", "psnr", "ssim",
                 "wall_seconds", "sanity_ok", "sanity_failed", "sanity_passed", "alarm",
                 "ceiling_share")
RACY_S = 2.0  # a file changed this recently may change again within its mtime tick: not indexed
RACY_NS = int(RACY_S * 1e9)
# The index file: a header line, the length and CRC-32 of the heads, the heads: marshal's
# encoding of {run id: (signature, head, offset of its body)}, then the bodies, each its length,
# CRC-32 and bytes. The head is what a listing needs of every run (see _head: creation time, id,
# settled state, score, the leaderboard's JSON line); the body is the rest of the entry,
# marshal-encoded on its own, read (one pread) and decoded only for the runs a command looks at
# (rows shown, running runs, filters): a warm `ls` or `leaderboard --format json` at ten
# thousand runs reads and decodes the heads only. marshal decodes in C, several times faster
# than JSON. Its format belongs to one Python version, so the header names the version, the fields
# kept and the leaderboard record's code (see _index_head): an index written by another one is
# rebuilt. marshal is not meant for damaged input: the length and checksum make sure it never
# sees any (a torn or damaged file is rebuilt; like any unkeyed digest they do not stop someone
# who may write the runs directory, who could as well write the runs). It never runs code,
# whatever the file holds.
_DIGEST = 12  # the heads' length (8 bytes) and CRC-32 (4 bytes), little-endian
_BODY = 8  # before each body: its length and CRC-32 (4 bytes each, little-endian)
# RunIndex.listing's rows: (creation time, run id, state, score, leaderboard JSON line or None)
Listed = tuple
# a first read of at least this many runs is shared among processes (a fork costs a few ms
# but each run ~1 ms: TOML and JSON parsing in Python)
PARALLEL_MIN = 200


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
        out["alarm"] = {k: alarm[k] for k in ("top_class", "poisoned", "p", "epoch",
                                              "first_epoch", "no_verdict") if k in alarm}
        out["alarm"]["suspicion"] = {}
    stealth = summary.get("stealth")
    boot = stealth.get("bootstrap") if isinstance(stealth, dict) else None
    if isinstance(boot, dict) and "score_interval" in boot:  # the leaderboard's interval
        out["stealth"] = {"bootstrap": {"score_interval": boot["score_interval"]}}
    return out


_STAT_DIR_FD = os.stat in os.supports_dir_fd


def file_sig(path: Path | str, names: tuple[str, ...] = SIG_FILES, must_run: bool = True,
             dir_fd: int | None = None) -> tuple | None:
    """mtime_ns and size of each named file of a run directory, flat (-1, -1 where absent),
    or None when the directory holds neither status.json nor spec.toml (not a run). With
    `dir_fd`, `path` is relative to it. Raises OSError when the directory cannot be read.

    Why equal signatures mean unchanged files: every writer of a run either replaces a file
    (a new inode: new mtime) or appends to it (new size and mtime), and an edit in place
    changes the mtime, except a second one within the same mtime tick (nanoseconds here,
    2 s on old filesystems). The index therefore never keeps a file changed in the last
    RACY_S seconds: it is read again on the next look, after its tick has passed."""
    out: list[int] = []
    for n in names:
        try:
            st = (os.stat(f"{path}/{n}", dir_fd=dir_fd) if dir_fd is not None
                  else os.stat(os.path.join(path, n)))
        except FileNotFoundError:
            out += (-1, -1)
            continue
        except NotADirectoryError:
            return None
        out += (st.st_mtime_ns, st.st_size)
    if must_run and out[0] == -1 and out[2] == -1:
        return None
    return tuple(out)


def _sig_at(name: str, fd: int) -> tuple | None:
    """file_sig(name, dir_fd=fd) for SIG_FILES, spelled out: ten thousand runs are checked on
    every listing."""
    stat = os.stat
    try:
        a = stat(name + "/status.json", dir_fd=fd)
        a = (a.st_mtime_ns, a.st_size)
    except FileNotFoundError:
        a = (-1, -1)
    except NotADirectoryError:
        return None
    try:
        b = stat(name + "/spec.toml", dir_fd=fd)
        b = (b.st_mtime_ns, b.st_size)
    except FileNotFoundError:
        if a[0] == -1:  # neither status.json nor spec.toml: no run
            return None
        b = (-1, -1)
    except NotADirectoryError:
        return None
    try:
        c = stat(name + "/summary.json", dir_fd=fd)
    except FileNotFoundError:
        return (*a, *b, -1, -1)
    except NotADirectoryError:
        return None
    return (*a, *b, c.st_mtime_ns, c.st_size)


def _newest_ns(sig: tuple) -> int:
    return max(sig[::2], default=0)


def _settled(status: dict) -> str | None:
    """A run's state when no liveness check can change it (as Run.state answers), or None."""
    if not status:
        return "damaged"
    s = status.get("state")
    return s if type(s) is str and s in _SETTLED else None


def _head(p: Path, e: dict) -> tuple:
    """What every listing needs of a run, kept in the index apart from the rest so that a
    listing of ten thousand runs decodes only this: (creation time, run id, its state when
    settled else None, its score, its leaderboard record as a JSON line when its state is
    settled else None): a settled run's head is its Listed row as it is. A running run's state
    (and so its record) is worked out on every look."""
    from ibtui.runs.board import board_record, encode_record  # local: the board is above

    status, summary = e["status"], e["summary"]
    state = _settled(status)
    line = None
    if state is not None:
        run = Run(path=p, status=status, spec=e["spec"], summary=summary,
                  damaged=list(e["damaged"]), light=True, config=e["config"])
        line = encode_record(board_record(run))
    return (_created(status), p.name, state, summary.get("score") if summary else None, line)


def _body(e: dict) -> bytes:
    """The rest of an entry as the index file keeps it (raises ValueError for a value marshal
    cannot write: never from JSON or TOML)."""
    return marshal.dumps((e["config"], tuple(e["damaged"]), e["logs"], e["status"], e["spec"],
                          e["summary"]))


def _entry(saved: Any, body: bytes | None) -> dict | None:
    """An index entry (as saved; its body read) as the reader keeps it, or None when it is not
    well formed."""
    if type(saved) is not tuple or len(saved) != 3 or body is None:
        return None
    sig, head, _ = saved
    try:
        e = marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return None
    if type(e) is not tuple or len(e) != 6 or type(head) is not tuple or len(head) != 5:
        return None
    config, damaged, logs, status, spec, summary = e
    if not (type(sig) is tuple and type(config) is str and type(damaged) is tuple
            and (not damaged or all(type(x) is str for x in damaged))
            and (logs is None or (type(logs) is tuple and len(logs) == 2
                                  and type(logs[1]) is tuple
                                  and all(type(x) is str for x in logs[1])))
            and type(status) is dict and type(spec) is dict
            and (summary is None or type(summary) is dict)):
        return None
    return {"sig": sig, "newest": 0, "config": config, "damaged": list(damaged), "logs": logs,
            "status": status, "spec": spec, "summary": summary, "head": head,
            "saved": (sig, head, body)}


def _read_entry(p: Path, sig: tuple) -> dict:
    """A run read in full, kept as the index keeps it."""
    run = load_run(p)
    e = {"sig": sig, "newest": _newest_ns(sig), "config": _config_key(run.spec),
         "damaged": run.damaged, "logs": None, "status": light_status(run.status),
         "spec": light_spec(run.spec), "summary": light_summary(run.summary)}
    e["head"] = _head(p, e)
    return e


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
    # thread in this process: the CLI, not the app)
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


class RunIndex:
    """Every run of a runs directory, each re-read only when one of its files changed
    (mtime or size, see file_sig): a finished run is read once. Kept in memory and, with
    `persist`, in a small index file in the runs directory (`.ibtui-index`, written
    atomically) so that the next command starts warm. The index is a cache, never the truth:
    a missing, stale, damaged or unwritable one only costs a full read. It keeps what listings
    need of each run (LIGHT_STATUS, LIGHT_SPEC, LIGHT_SUMMARY: `Run.light`); load_run reads a
    run in full. Liveness is never cached: a 'running' run's `state` is re-checked (pid,
    process start time, heartbeat) on every access."""

    def __init__(self, runs_dir: Path, persist: bool = True):
        self.runs_dir = Path(runs_dir)
        self.persist = persist
        self._entries: dict[str, dict] = {}
        self._raw: dict[str, tuple] = {}  # as read from the index file, checked when used
        self._odd: dict[str, Run] = {}  # runs whose directory cannot be read (no entry)
        self._fd: int | None = None  # the loaded index file, while bodies are left to read
        self._base = 0  # where its bodies start
        self._closer: weakref.finalize | None = None
        self._listed_odd = 0
        self._loaded = False
        self._dirty = False
        self._saved_at = -1e9

    @property
    def index_path(self) -> Path:
        return self.runs_dir / INDEX_NAME

    def _load_index(self) -> None:
        self._loaded = True
        if not self.persist:
            return
        top = _index_head()
        try:
            fd = os.open(self.index_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return
        keep = False
        try:
            if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
                return
            first = os.pread(fd, len(top) + _DIGEST, 0)
            if len(first) != len(top) + _DIGEST or not first.startswith(top):
                return
            size = int.from_bytes(first[len(top):len(top) + 8], "little")
            if size > 1 << 40:
                return
            heads = os.pread(fd, size, len(first))
            if first[len(top):] != _digest(heads):
                return
            try:
                with no_gc():
                    obj = marshal.loads(heads)
            except (EOFError, ValueError, TypeError):
                return
            if type(obj) is dict and obj:
                # bodies are read from this descriptor when asked for (see _read_body): the
                # file as loaded, even after another process replaces it
                self._raw, self._fd, self._base = obj, fd, len(first) + size
                self._closer = weakref.finalize(self, os.close, fd)
                keep = True
        except OSError:
            return
        finally:
            if not keep:
                os.close(fd)

    def _read_body(self, ref: Any) -> bytes | None:
        """A body of the loaded index file (None when it cannot be read or is damaged)."""
        if type(ref) is bytes:
            return ref
        if self._fd is None or type(ref) is not int or ref < 0:
            return None
        try:
            head = os.pread(self._fd, _BODY, self._base + ref)
            if len(head) != _BODY:
                return None
            n = int.from_bytes(head[:4], "little")
            body = os.pread(self._fd, n, self._base + ref + _BODY)
        except (OSError, OverflowError):
            return None
        if len(body) != n or zlib.crc32(body) != int.from_bytes(head[4:], "little"):
            return None
        return body

    def _all_bodies(self) -> bytes:
        """Every body of the loaded index file, as saved (b"" when none can be read)."""
        if self._fd is None:
            return b""
        try:
            return os.pread(self._fd, os.fstat(self._fd).st_size - self._base, self._base)
        except (OSError, ValueError, OverflowError):
            return b""

    def _release(self) -> None:
        """Close the loaded index file once no body is left to read from it."""
        if self._fd is not None and not self._raw and self._closer is not None:
            self._closer()
            self._fd = self._closer = None

    def _get(self, name: str) -> dict | None:
        e = self._entries.get(name)
        if e is None and name in self._raw:
            saved = self._raw.pop(name)
            ref = saved[2] if type(saved) is tuple and len(saved) == 3 else None
            e = _entry(saved, self._read_body(ref))
            if e is not None:
                self._entries[name] = e
            self._release()
        return e

    def run(self, name: str) -> Run | None:
        """A run of the last `listing` (or `runs`) as a Run (its whole entry decoded)."""
        e = self._get(name)
        if e is None:
            odd = self._odd.get(name)
            if odd is not None:
                return odd
            # its body could not be read from the index file: read the run itself
            p, sig = self._look(name, None)
            if sig is None or isinstance(sig, OSError):
                return self._gone(name, p, sig)
            e = _read_entry(p, sig)
            self._keep(name, e)
        return self._run(self._child(name), e)

    def known(self) -> set[str]:
        """The runs the index knows (not necessarily still there)."""
        return set(self._entries) | set(self._raw)

    def save(self, every_s: float = 0.0) -> None:
        """Write the index when it changed (atomically; silently skipped when the runs
        directory is read-only or full), at most once every `every_s` seconds. Entries of
        files changed in the last RACY_S seconds are left out: they are read again next time."""
        if not (self.persist and self._dirty):
            return
        now = time.monotonic()
        if every_s and now - self._saved_at < every_s:
            return
        self._saved_at = now
        self._dirty = False
        racy = time.time_ns() - RACY_NS
        keep: dict[str, tuple] = {}
        bodies: list[bytes] = []
        at = 0
        old = self._all_bodies() if self._raw else b""
        for rid, saved in self._raw.items():  # as loaded: each body copied as it is
            try:
                off = saved[2]
                n = int.from_bytes(old[off:off + 4], "little")
                record = old[off:off + _BODY + n]
            except (TypeError, IndexError, ValueError):
                continue
            if type(off) is not int or off < 0 or len(record) != _BODY + n:
                continue  # not there: read again next time
            keep[rid] = (saved[0], saved[1], at)
            bodies.append(record)
            at += len(record)
        for rid, e in self._entries.items():
            if e["newest"] >= racy or type(rid) is not str:
                continue
            saved = e.get("saved")
            try:  # a value marshal cannot write (never from JSON or TOML): not kept
                if saved is None:
                    saved = e["saved"] = (e["sig"], e["head"], _body(e))
                marshal.dumps(saved[1])
            except ValueError:
                continue
            body = saved[2]
            keep[rid] = (saved[0], saved[1], at)
            bodies.append(len(body).to_bytes(4, "little") + zlib.crc32(body).to_bytes(4, "little"))
            bodies.append(body)
            at += _BODY + len(body)
        try:
            heads = marshal.dumps(keep)
        except ValueError:  # a value marshal cannot write: skip the entry
            keep = {rid: e for rid, e in keep.items() if _marshals(e)}
            heads = marshal.dumps(keep)
        data = b"".join([_index_head(), _digest(heads), heads, *bodies])
        try:
            atomic_write_bytes(self.index_path, data)
            for old in OLD_INDEX_NAMES:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.runs_dir / old)
        except OSError:
            pass

    def names(self) -> list[str]:
        """The names of the run directories' candidates (directories, not links, not hidden);
        raises OSError when the runs directory is unreadable."""
        runs_dir = self.runs_dir
        out = []
        for de in os.scandir(runs_dir):
            name = de.name
            if name[0] == ".":
                continue
            try:
                if de.is_symlink() or not de.is_dir():
                    continue
            except OSError:
                continue
            out.append(name)
        return out

    def _look(self, name: str, fd: int | None) -> tuple[Path, tuple | None | OSError]:
        """(the run's path, its file signature: None when it is no run, the error when its
        directory cannot be read)."""
        p = self._child(name)
        try:
            return p, (file_sig(name, dir_fd=fd) if fd is not None else file_sig(p))
        except OSError as e:
            return p, e

    def _gone(self, name: str, p: Path, sig: OSError | None) -> Run | None:
        self.forget({name})
        if sig is None:
            return None
        run = self._odd[name] = Run(path=p, damaged=[f"unreadable: {_why(sig)}"])
        return run

    def _keep(self, name: str, e: dict) -> None:
        self._entries[name] = e
        if self._raw.pop(name, None) is not None:
            self._release()
        self._odd.pop(name, None)
        # a run whose files just changed (a running one) is not saved: no write for it
        if e["newest"] < time.time_ns() - RACY_NS:
            self._dirty = True

    def check(self, name: str, fd: int | None = None) -> tuple[Run | None, bool]:
        """One run directory: (its Run, or None when it is no run; whether its files changed
        since the last look, so that it was read again). A run whose directory cannot be read
        is a damaged Run (changed: True)."""
        if not self._loaded:
            self._load_index()
        p, sig = self._look(name, fd)
        if sig is None or isinstance(sig, OSError):
            return self._gone(name, p, sig), True
        e = self._get(name)
        changed = e is None or e["sig"] != sig
        if changed:
            e = _read_entry(p, sig)
            self._keep(name, e)
        return self._run(p, e), changed

    def _run(self, p: Path, e: dict) -> Run:
        return Run(path=p, status=e["status"], spec=e["spec"], summary=e["summary"],
                   damaged=list(e["damaged"]), light=True, config=e["config"])

    def indexed(self) -> list[str]:
        """The runs the index file knows, oldest first, without looking at any run directory
        (see `indexed_run`): a first picture to show at once, checked with `check` after."""
        if not self._loaded:
            self._load_index()
        made = {n: (e["head"][0], n) for n, e in self._entries.items()}
        made.update({n: (_raw_created(e), n) for n, e in self._raw.items()})
        return sorted(made, key=made.__getitem__)

    def indexed_run(self, name: str) -> Run | None:
        """A run as the index file last saw it (None when it holds no such run)."""
        e = self._get(name)
        return None if e is None else self._run(self._child(name), e)

    def forget(self, names: set[str]) -> None:
        for n in names:
            self._odd.pop(n, None)
            if self._entries.pop(n, None) is not None or self._raw.pop(n, None) is not None:
                self._dirty = True
        self._release()

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
        """Every run as a Listed tuple (creation time, id, state, score, leaderboard JSON
        line or None), sorted by creation as `runs` sorts them, without building a Run per
        run: `run(id)` builds one. Every run's files are checked as `runs` checks them (a run
        changed since the index saw it is read again), and liveness is checked for every
        running run, so nothing is staler than `runs`; the line is None where the state is
        not settled or the directory cannot be read (board_record of `run(id)` then).
        `ids`: only these runs."""
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
        # (every listed run with an entry is known; entries and raw ones are disjoint)
        if ids is None and len(self._entries) + len(self._raw) != len(out) - self._listed_odd:
            self.forget(self.known() - set(names))
        out.sort()  # by creation time, then id: ids differ, so nothing further is compared
        return out

    def _scan(self, names: list[str], fd: int | None) -> list[Listed]:
        out: list[Listed] = []
        entries, raw = self._entries, self._raw
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
                if self._gone(name, self._child(name), sig) is not None:
                    out.append((0, name, "damaged", None, None))
                    self._listed_odd += 1
                continue
            e = entries.get(name)
            if e is not None:
                if e["sig"] == sig:
                    head = e["head"]
                    out.append(head if head[2] is not None else self._listed(name, head))
                    continue
            else:
                saved = raw.get(name)
                if type(saved) is tuple and len(saved) == 3 and saved[0] == sig:
                    head = saved[1]
                    if type(head) is tuple and len(head) == 5 and head[1] == name:
                        out.append(head if head[2] is not None else self._listed(name, head))
                        continue
            stale.append((name, self._child(name), sig))
        for (name, _, _), (e, _) in zip(
                stale, _read_jobs([(p, sig, False) for _, p, sig in stale]), strict=True):
            self._keep(name, e)
            out.append(self._listed(name, e["head"]))
        return out

    def _listed(self, name: str, head: tuple) -> Listed:
        if head[2] is not None:
            return head
        run = self.run(name)  # not settled: its liveness is checked now
        return (head[0], name, run.state if run is not None else "damaged", head[3], head[4])

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
            e.pop("saved", None)  # encoded again on save
            run.damaged += [x for x in damage if x not in run.damaged]
            self._dirty = True


def _marshals(v: Any) -> bool:
    try:
        marshal.dumps(v)
    except ValueError:
        return False
    return True


def _config_key(spec: dict) -> str:
    from ibtui.analysis.replicas import config_key  # local: analysis is above the store

    return config_key(spec) if spec else ""  # an unreadable spec is no configuration


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


def _raw_created(e: Any) -> float:
    """The creation time in an index entry as saved (0 when absent or malformed)."""
    try:
        c = e[1][0]
    except (TypeError, IndexError, KeyError):
        return 0
    return c if _is_num(c) else 0


_INDEX_HEADS: list[bytes] = []


def _code_key(code: types.CodeType) -> tuple:
    """What a function's code is, stable across processes: a nested code object (a
    comprehension) by its own key, never by its repr, which holds its memory address."""
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return (code.co_code, consts, code.co_names)


def _index_head() -> bytes:
    """The index file's first line: its format (INDEX_VERSION), the Python and marshal
    versions, the fields kept, and the code that makes the leaderboard's JSON lines it keeps
    (a changed board_record makes every saved line stale: the index is then rebuilt)."""
    if not _INDEX_HEADS:
        from ibtui.runs import board

        code = [_code_key(f.__code__)
                for f in (board.board_record, board.ceiling_share, board.encode_record)]
        stamp = repr((LIGHT_STATUS, LIGHT_SPEC, LIGHT_SUMMARY, board.BOARD_COLUMNS, code))
        _INDEX_HEADS.append(
            (f"ibtui-index {INDEX_VERSION} python {sys.version_info[0]}.{sys.version_info[1]}"
             f" marshal {marshal.version} fields "
             + hashlib.blake2b(stamp.encode(), digest_size=8).hexdigest() + "\n").encode())
    return _INDEX_HEADS[0]


def _digest(payload: bytes | memoryview) -> bytes:
    return len(payload).to_bytes(8, "little") + zlib.crc32(payload).to_bytes(4, "little")


def _created(status: dict) -> float:
    c = status.get("created")
    return c if _is_num(c) else 0


def list_runs_cached(runs_dir: Path, logs: bool = False, ids: set[str] | None = None
                     ) -> list[Run]:
    """`list_runs` through the runs directory's index (see RunIndex): the same runs, the same
    damage, the same liveness, without re-reading runs whose files did not change."""
    return RunIndex(runs_dir).runs(logs=logs, ids=ids)


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
