"""The run directory: the contract between worker, scheduler, CLI and TUI.

One writer per run directory (its worker). Files that are replaced are written atomically
(temp file in the same directory, fsync, os.replace); logs are append-only JSONL whose readers
skip a torn last line.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "failed", "crashed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled")
HEARTBEAT_STALE_S = 30.0


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(json.loads(dumps(obj)), indent=2) + "\n")


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record as a line, flushed and fsynced: a finished epoch is never lost."""
    line = dumps(record) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Every complete record; a torn or garbled line (a writer killed mid-write) is skipped."""
    out: list[dict] = []
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return out
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(object, None) or (None, reason) when the file is missing, empty or damaged."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{Path(path).name} missing"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{Path(path).name} unreadable: {e}"
    if not text.strip():
        return None, f"{Path(path).name} empty"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"{Path(path).name} damaged: {e.msg} at line {e.lineno}"
    if not isinstance(obj, dict):
        return None, f"{Path(path).name} damaged: not an object"
    return obj, None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    # a zombie child still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    except OSError:
        pass
    return True


@dataclass
class Run:
    """A read-only view of one run directory. Never raises on damaged content: `damaged` says why."""

    path: Path
    status: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    summary: dict | None = None
    damaged: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def state(self) -> str:
        return effective_state(self.status) if self.status else "damaged"

    def metrics(self) -> list[dict]:
        return read_jsonl(self.path / "metrics.jsonl")

    def mi(self) -> list[dict]:
        return read_jsonl(self.path / "mi.jsonl")

    def log_tail(self, n: int = 40) -> list[str]:
        try:
            with open(self.path / "worker.log", "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64_000))
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return data.splitlines()[-n:]


def effective_state(status: dict) -> str:
    """The stored state, corrected: a 'running' run whose worker is gone is 'crashed'."""
    state = status.get("state", "damaged")
    if state == "running":
        same_host = status.get("host") in (None, socket.gethostname())
        stale = time.time() - float(status.get("heartbeat") or 0) > HEARTBEAT_STALE_S
        if same_host and not pid_alive(status.get("pid")):
            return "crashed"
        if not same_host and stale:
            return "crashed"
    return state


def load_run(path: Path) -> Run:
    from ibtui.spec import read_spec_file  # local: spec imports nothing from runs

    path = Path(path)
    run = Run(path=path)
    status, why = read_json(path / "status.json")
    if status is None:
        run.damaged.append(why or "status.json unreadable")
    else:
        run.status = status
    try:
        run.spec = read_spec_file(path / "spec.toml")
    except Exception as e:  # a reader never breaks on a damaged run
        run.damaged.append(f"spec.toml: {e}")
    summary, why = read_json(path / "summary.json")
    run.summary = summary
    if summary is None and run.status.get("state") == "done":
        run.damaged.append(why or "summary.json unreadable")
    return run


def list_runs(runs_dir: Path) -> list[Run]:
    """Every run directory (a directory with a spec.toml or status.json), sorted by creation."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    out = []
    for p in sorted(runs_dir.iterdir()):
        if p.is_dir() and not p.name.startswith(".") and (
            (p / "status.json").exists() or (p / "spec.toml").exists()
        ):
            out.append(load_run(p))
    out.sort(key=lambda r: (r.status.get("created") or 0, r.id))
    return out


def find_run(runs_dir: Path, key: str) -> Path:
    """A run by exact id, or by a unique prefix."""
    from ibtui.errors import RunStoreError

    runs_dir = Path(runs_dir)
    exact = runs_dir / key
    if (exact / "status.json").exists() or (exact / "spec.toml").exists():
        return exact
    if Path(key).is_dir() and ((Path(key) / "status.json").exists()):
        return Path(key)
    matches = [p for p in runs_dir.glob(f"{key}*") if p.is_dir()] if runs_dir.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunStoreError(f"{runs_dir}: no run named {key!r} (see `ibtui ls`)")
    names = ", ".join(sorted(m.name for m in matches)[:8])
    raise RunStoreError(f"{runs_dir}: {key!r} matches several runs: {names}")


class RunWriter:
    """The worker's handle on its own run directory (the only writer)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.status, _ = read_json(self.path / "status.json")
        self.status = self.status or {}
        (self.path / "artifacts").mkdir(exist_ok=True)

    def set_status(self, **fields: Any) -> None:
        self.status.update(fields)
        self.status["heartbeat"] = time.time()
        atomic_write_json(self.path / "status.json", self.status)

    def heartbeat(self, **fields: Any) -> None:
        self.set_status(**fields)

    def log_metrics(self, record: dict) -> None:
        append_jsonl(self.path / "metrics.jsonl", record)

    def log_mi(self, records: list[dict]) -> None:
        for r in records:
            append_jsonl(self.path / "mi.jsonl", r)

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"


def iter_state_counts(runs: list[Run]) -> Iterator[tuple[str, int]]:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    yield from sorted(counts.items())
