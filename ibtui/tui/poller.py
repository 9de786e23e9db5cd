"""Reads a runs directory for the app, off the UI thread, re-reading only what changed.

`RunsReader.rows()` keeps every run as a row and looks again only where something may have
changed (see its docstring: a cheap check when nothing did). `RunsReader.detail(run_id)` reads
the heavier files of one run (metrics, MI, log tail), again only when they changed. Nothing
here touches Textual; the app calls these from a thread worker and posts the results as
messages.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ibtui.runs.store import Run, RunIndex, effective_state, load_run, read_json
from ibtui.tui.model import ACTIVE, RunRow, row_from_run

RACY_NS = 2_000_000_000
DETAIL_FILES = ("status.json", "summary.json", "metrics.jsonl", "mi.jsonl", "worker.log",
                "spec.toml", "classes.jsonl")


def _sig(path: Path, names: tuple[str, ...]) -> tuple:
    out = []
    for n in names:
        try:
            st = os.stat(path / n)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@dataclass(frozen=True)
class Snapshot:
    """Everything the runs, leaderboard and workers screens show."""

    rows: tuple[RunRow, ...] = ()
    scheduler: dict | None = None
    now: float = 0.0
    error: str = ""  # the runs directory itself is unreadable

    def by_id(self) -> dict[str, RunRow]:
        return {r.id: r for r in self.rows}


@dataclass
class RunDetail:
    """One run, fully read: what the run screen plots."""

    run_id: str
    row: RunRow
    status: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    summary: dict | None = None
    metrics: list[dict] = field(default_factory=list)
    mi: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    alarm: dict | None = None  # the backdoor alarm's current verdict (issue 13)


class RunsReader:
    """The runs of a directory as rows, re-read only where something changed.

    Reads go through the runs directory's index (`ibtui.runs.store.RunIndex`): a run is read
    again only when one of its files changed (mtime/size), and the app starts from the index
    that the last app or command left. Each poll then costs: one stat of the runs directory
    (a new or removed run changes its mtime; only then is it listed again), the files of the
    queued and running runs (and of directories not yet holding a run), and a slice of the
    other runs, so that every finished run is looked at again within `sweep_s` seconds (a run
    resumed from another terminal). A running run's liveness (pid, start time, heartbeat) is
    checked on every poll: a worker can die without any file changing."""

    def __init__(self, runs_dir: Path, log_lines: int = 200, sweep_s: float = 30.0,
                 poll_interval: float = 1.0):
        self.runs_dir = Path(runs_dir)
        self.log_lines = log_lines
        self.index = RunIndex(self.runs_dir)
        self.per_poll = max(1.0, poll_interval) / max(sweep_s, 1.0)  # share of finished runs
        self._rows: dict[str, tuple[Run, RunRow]] = {}
        self._pending: set[str] = set()  # directories that hold no run yet
        self._dir_mtime: int | None = None
        self._rotation: list[str] = []
        self._ordered: tuple[RunRow, ...] = ()
        self._details: dict[str, tuple[tuple, RunDetail]] = {}
        self.changed = True  # whether the last rows() differed from the one before

    def refresh(self, ids) -> None:
        """Look at these runs on the next poll (after the app changed them)."""
        self._pending.update(ids)

    def rows(self) -> tuple[tuple[RunRow, ...], str]:
        """Every run as a row (creation order) and an error if the directory is unreadable;
        `self.changed` says whether anything differs from the last call."""
        self.changed = False
        try:
            mtime = os.stat(self.runs_dir).st_mtime_ns
        except FileNotFoundError:
            if self._rows:
                self.changed = True
            self._rows.clear()
            self._ordered = ()
            self._dir_mtime = None
            return (), ""
        except OSError as e:
            return self._ordered, f"{self.runs_dir}: {e.strerror}"
        todo: set[str] = set(self._pending)
        self._pending.clear()
        # listed again when the directory changed, or changed so recently that another change
        # within the same mtime tick would go unseen
        if mtime != self._dir_mtime or time.time_ns() - mtime < RACY_NS:
            try:
                names = set(self.index.names())
            except OSError as e:
                return self._ordered, f"{self.runs_dir}: {e.strerror}"
            self._dir_mtime = mtime
            for gone in set(self._rows) - names:
                del self._rows[gone]
                self._details.pop(gone, None)
                self.changed = True
            self.index.forget(set(self.index._entries) - names)
            todo |= names - set(self._rows)
        for name, (run, row) in self._rows.items():
            if row.state in ACTIVE or run.status.get("state") in ACTIVE:
                todo.add(name)
        if not self._rotation:
            self._rotation = sorted(set(self._rows) - todo)
        k = max(1, int(len(self._rows) * self.per_poll + 0.999))
        todo.update(self._rotation[-k:])
        del self._rotation[-k:]
        fd = self.index.open_dir()
        try:
            for name in todo:
                self._look(name, fd)
        finally:
            if fd is not None:
                os.close(fd)
        self.index.save()
        if self.changed or len(self._ordered) != len(self._rows):
            ordered = sorted((row for _, row in self._rows.values()),
                             key=lambda r: (r.created, r.id))
            self._ordered = tuple(_with_order(r, i) for i, r in enumerate(ordered))
            self.changed = True
        return self._ordered, ""

    def _look(self, name: str, fd: int | None) -> None:
        run, read = self.index.check(name, fd)
        if run is None:
            if self._rows.pop(name, None) is not None:
                self.changed = True
            if (self.runs_dir / name).is_dir():
                self._pending.add(name)  # no spec.toml nor status.json yet: look again
            return
        cached = self._rows.get(name)
        if cached is None or read:
            row = row_from_run(run)
        elif run.status.get("state") == "running" and effective_state(run.status) != cached[1].state:
            row = row_from_run(run)  # liveness changes without any file changing
        else:
            return
        if cached is None or row != cached[1]:
            self._rows[name] = (run, row)
            self.changed = True

    def summary(self, run_id: str) -> dict | None:
        """A run's whole summary.json (rows keep only its headline numbers)."""
        obj, _ = read_json(self.runs_dir / run_id / "summary.json")
        return obj

    def detail(self, run_id: str) -> tuple[RunDetail | None, bool]:
        """(detail, changed) for one run, read in full; (None, True) when the run is gone."""
        p = self.runs_dir / run_id
        if not p.is_dir():
            self._details.pop(run_id, None)
            return None, True
        sig = _sig(p, DETAIL_FILES)
        cached = self._details.get(run_id)
        if cached is not None and cached[0] == sig:
            row = self._rows.get(run_id)
            if row is None or row[1].state == cached[1].row.state:
                return cached[1], False
        run = load_run(p)
        d = RunDetail(run_id=run_id, row=row_from_run(run), status=run.status, spec=run.spec,
                      summary=run.summary, metrics=run.metrics(), mi=run.mi(),
                      log=run.log_tail(self.log_lines), damaged=list(run.damaged),
                      alarm=_alarm_verdict(run))
        self._details[run_id] = (sig, d)
        return d, True


def _alarm_verdict(run: Run) -> dict | None:
    from ibtui.analysis.alarm import live_verdict  # issue 13; never raises

    return live_verdict(run)


def _with_order(row: RunRow, order: int) -> RunRow:
    if row.order == order:
        return row
    from dataclasses import replace

    return replace(row, order=order)
