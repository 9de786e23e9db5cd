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

from ibtui.runs.slurm import reconcile
from ibtui.runs.store import (
    RACY_NS,
    Run,
    RunIndex,
    effective_state,
    file_signature,
    load_run,
    no_gc,
    read_json,
)
from ibtui.tui.model import ACTIVE, RunRow, ranked_rows, row_from_run

SAVE_EVERY_S = 30.0  # the app writes the runs index at most this often (the CLI: each call)
SLURM_EVERY_S = 10.0  # one sacct call at most this often, for every Slurm run together
FIRST_ROWS = 500  # the first poll shows these oldest runs from the index, the rest follows
READ_AT_ONCE = 500  # runs read in full per call (a first read without an index: rows as they come)
DETAIL_FILES = ("status.json", "summary.json", "metrics.jsonl", "mi.jsonl", "worker.log",
                "spec.toml", "classes.jsonl")


@dataclass(frozen=True)
class Snapshot:
    """Everything the runs, leaderboard and workers screens show."""

    rows: tuple[RunRow, ...] = ()
    scheduler: dict | None = None
    now: float = 0.0
    error: str = ""  # the runs directory itself is unreadable
    loading: tuple[int, int] | None = None  # (runs shown, runs in all) while still reading

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
    alarm: dict | None = None  # the backdoor alarm's current verdict


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
        self._active: set[str] = set()  # queued or running: looked at on every poll
        self._fresh: set[str] = set()  # rows built in this poll
        self._later: list[str] = []  # indexed runs not yet shown (the first poll)
        self.more = False  # rows() has more to show right away
        self._ordered: tuple[RunRow, ...] = ()
        self._details: dict[str, tuple[tuple, RunDetail]] = {}
        self.changed = True  # whether the last rows() differed from the one before
        self._slurm_asked = float("-inf")

    def refresh(self, ids) -> None:
        """Look at these runs on the next poll (after the app changed them)."""
        self._pending.update(ids)

    def rows(self) -> tuple[tuple[RunRow, ...], str]:
        """Every run as a row (creation order) and an error if the directory is unreadable;
        `self.changed` says whether anything differs from the last call; `self.more` that
        runs are still to be read (at most READ_AT_ONCE are read again per call, so a first
        read without an index shows rows as they come): call again at once."""
        self.changed = False
        self.more = False
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
        if self._later:
            self._add(self._later)
            self._later = []
            self._order()
            return self._ordered, ""
        if self._dir_mtime is None and not self._rows and self._first():
            return self._ordered, ""
        self._ask_slurm()
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
                self._active.discard(gone)
                self.changed = True
            self.index.forget(self.index.known() - names)
            todo |= names - set(self._rows)
        todo |= self._active
        if not self._rotation:
            self._rotation = sorted(set(self._rows) - todo)
        k = max(1, int(len(self._rows) * self.per_poll + 0.999))
        todo.update(self._rotation[-k:])
        del self._rotation[-k:]
        fd = self.index.open_dir()
        reads = 0
        try:
            names = list(todo)
            for i, name in enumerate(names):
                if self._look(name, fd):
                    reads += 1
                    if reads >= READ_AT_ONCE and i + 1 < len(names):
                        self._pending.update(names[i + 1:])
                        self.more = True
                        break
        finally:
            if fd is not None:
                os.close(fd)
        self.index.save(every_s=SAVE_EVERY_S)
        if self.changed or len(self._ordered) != len(self._rows):
            self._order()
        self._fresh.clear()
        return self._ordered, ""

    def _ask_slurm(self) -> None:
        """Slurm runs: one sacct call (with a timeout) per SLURM_EVERY_S for all of them, so a
        job that ended CANCELLED/TIMEOUT/... shows as crashed with that reason. We run in the
        app's thread worker, never on the UI thread; a failing sacct is "state unknown"."""
        now = time.monotonic()
        if now - self._slurm_asked < SLURM_EVERY_S:
            return
        if not any(self._rows[n][0].status.get("executor") == "slurm"
                   for n in self._active if n in self._rows):
            return
        self._slurm_asked = now
        try:
            self._pending.update(reconcile(self.runs_dir))
        except OSError:
            pass

    def loading(self) -> tuple[int, int] | None:
        """(runs read, runs in all) while the first poll's rest is still to be read."""
        if not self._later:
            return None
        return len(self._rows), len(self._rows) + len(self._later)

    def _first(self) -> bool:
        """The first poll: the oldest runs as the index saw them, to show a first page at
        once (`more` says the rest follows on the next call, at once); every run is then
        checked on the poll after. False when there is no index."""
        names = self.index.indexed()  # a run removed since: gone on the next poll
        if not names:
            return False
        self._add(names[:FIRST_ROWS])
        self._later = names[FIRST_ROWS:]
        self.more = bool(self._later)
        self._pending.update(names)  # checked with the directory's listing
        self._order()
        return True

    def _add(self, names: list[str]) -> None:
        with no_gc():
            self._add_rows(names)

    def _add_rows(self, names: list[str]) -> None:
        for name in names:
            run = self.index.indexed_run(name)
            if run is None:
                continue
            row = row_from_run(run)
            self._rows[run.id] = (run, row)
            self._fresh.add(run.id)
            if row.state in ACTIVE or run.status.get("state") in ACTIVE:
                self._active.add(run.id)

    def _order(self) -> None:
        ordered = ranked_rows(sorted((row for _, row in self._rows.values()),
                                    key=lambda r: (r.created, r.id)), self._fresh)
        for i, r in enumerate(ordered):
            if self._rows[r.id][1] is not r:
                self._rows[r.id] = (self._rows[r.id][0], r)
            if r.order != i:
                if r.id in self._fresh:  # built in this poll, not shown yet: set in place
                    object.__setattr__(r, "order", i)
                else:
                    ordered[i] = _with_order(r, i)
                    self._rows[r.id] = (self._rows[r.id][0], ordered[i])
        self._ordered = tuple(ordered)
        self.changed = True
        self._fresh.clear()

    def _look(self, name: str, fd: int | None) -> bool:
        """Look at one run; whether its files were read again."""
        run, read = self.index.check(name, fd)
        if run is None:
            self._active.discard(name)
            if self._rows.pop(name, None) is not None:
                self.changed = True
            if (self.runs_dir / name).is_dir():
                self._pending.add(name)  # no spec.toml nor status.json yet: look again
            return False
        cached = self._rows.get(name)
        if cached is None or read:
            row = row_from_run(run)
        elif run.status.get("state") == "running" and effective_state(run.status) != cached[1].state:
            row = row_from_run(run)  # liveness changes without any file changing
        else:
            return read
        if cached is None or row != cached[1]:
            self._rows[name] = (run, row)
            self._fresh.add(name)
            self.changed = True
        if row.state in ACTIVE or run.status.get("state") in ACTIVE:
            self._active.add(name)
        else:
            self._active.discard(name)
        return read

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
        sig = file_signature(p, DETAIL_FILES)
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
    from ibtui.analysis.alarm import live_verdict  # never raises

    return live_verdict(run)


def _with_order(row: RunRow, order: int) -> RunRow:
    if row.order == order:
        return row
    from dataclasses import replace

    return replace(row, order=order)
