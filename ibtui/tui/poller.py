"""Reads a runs directory for the app, off the UI thread, re-reading only what changed.

`RunsReader.poll()` stats a handful of files per run (status, spec, summary) and reloads a run
only when one of them changed (mtime or size). `RunsReader.detail(run_id)` reads the heavier
files of one run (metrics, MI, log tail) the same way. Nothing here touches Textual; the app
calls these from a thread worker and posts the results as messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ibtui.runs.store import Run, effective_state, load_run
from ibtui.tui.model import RunRow, row_from_run

ROW_FILES = ("status.json", "spec.toml", "summary.json")
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
    def __init__(self, runs_dir: Path, log_lines: int = 200):
        self.runs_dir = Path(runs_dir)
        self.log_lines = log_lines
        self._rows: dict[str, tuple[tuple, Run, RunRow]] = {}
        self._details: dict[str, tuple[tuple, RunDetail]] = {}

    def _run_dirs(self) -> list[Path]:
        out = []
        with os.scandir(self.runs_dir) as it:
            for e in it:
                if e.name.startswith(".") or not e.is_dir():
                    continue
                p = Path(e.path)
                if (p / "status.json").exists() or (p / "spec.toml").exists():
                    out.append(p)
        return out

    def rows(self) -> tuple[tuple[RunRow, ...], str]:
        """Every run as a row (creation order) and an error if the directory is unreadable."""
        try:
            dirs = self._run_dirs()
        except FileNotFoundError:
            self._rows.clear()
            return (), ""
        except OSError as e:
            return tuple(r for _, _, r in self._rows.values()), f"{self.runs_dir}: {e.strerror}"
        seen = set()
        for p in dirs:
            seen.add(p.name)
            sig = _sig(p, ROW_FILES)
            cached = self._rows.get(p.name)
            if cached is None or cached[0] != sig:
                run = load_run(p)
                self._rows[p.name] = (sig, run, row_from_run(run))
            elif (cached[1].status.get("state") == "running"
                  and effective_state(cached[1].status) != cached[2].state):
                # liveness changes without any file changing: a worker can die
                run = cached[1]
                self._rows[p.name] = (sig, run, row_from_run(run))
        for gone in set(self._rows) - seen:
            del self._rows[gone]
            self._details.pop(gone, None)
        ordered = sorted(self._rows.values(), key=lambda v: (v[2].created, v[2].id))
        return tuple(_with_order(r, i) for i, (_, _, r) in enumerate(ordered)), ""

    def detail(self, run_id: str) -> tuple[RunDetail | None, bool]:
        """(detail, changed) for one run; (None, True) when the run is gone."""
        p = self.runs_dir / run_id
        if not p.is_dir():
            self._details.pop(run_id, None)
            return None, True
        sig = _sig(p, DETAIL_FILES)
        cached = self._details.get(run_id)
        if cached is not None and cached[0] == sig:
            row = self._rows.get(run_id)
            if row is None or row[2] == cached[1].row:
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
