"""The leaderboard's rows, columns and export formats, and the run filters a large sweep needs.

Shared by `ibtui leaderboard`/`ibtui ls` (ibtui/cli.py) and the app's export (ibtui/tui/), so
both write the same columns in the same cell format.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ibtui.analysis.validity import Verdict, assess, inputs_of, why_text
from ibtui.errors import IbtuiError
from ibtui.fmt import cell
from ibtui.runs.filter import name_filter
from ibtui.runs.states import STATES
from ibtui.runs.store import LineMaker

BOARD_COLUMNS = ["run", "attack", "dataset", "arch", "rate", "seed", "state", "rank", "score",
                 "score_lo", "score_hi", "ties", "ties_n", "d_xt", "d_ty", "clean_acc", "asr",
                 "ra", "psnr",
                 "ssim", "wall_s", "ok", "ceiling", "valid", "why", "config"]
SANITY_TEXT = ("ok: ✔ when every MI sanity check of the run passed, ✖ when one failed, – when "
               "none was recorded. The checks bound each estimate: I(X;T) ≤ log N, no estimate "
               "at its estimator's ceiling, I(X;Ŷ) ≤ min(I(X;T), I(T;Ŷ)) (data processing), "
               "the Fano lower bound from the error rate.")
CEILING_TEXT = ("ceiling: the share of the MI values the score was computed from that sit at "
                "their estimator's ceiling (within 0.1 nats of e.g. log N), ⚠ when any: such a "
                "value only says \"at least this much\", so the score then partly compares lower "
                "bounds; – when the run recorded none (exports: the share, 0 to 1).")


def ceiling_share(summary: dict | None) -> float | None:
    """The stealth score's share of inputs at their ceiling (summary.json `ceiling_share`)."""
    v = (summary or {}).get("ceiling_share")
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
    return float(v) if ok else None


def ceiling_text(share: float | None) -> str:
    """`⚠ 37%` when any input of the score sat at its ceiling, `0%` when none did, `–`
    when not recorded."""
    if share is None:
        return "–"
    return f"⚠ {max(1, round(share * 100))}%" if share > 0 else "0%"


def board_record(run, state: str | None = None) -> dict[str, Any]:
    """One leaderboard row of a run (`ibtui.runs.store.Run`) before ranking (`rank_records`
    fills rank, ties, valid and why); `state` defaults to the run's effective state, with its
    damage in brackets. It also holds what the ranking reads (validity.inputs_of)."""
    s = run.summary or {}
    sp = run.spec or {}
    inputs = inputs_of(run)
    if state is None:
        state = run.state if not run.damaged else f"{run.state} ({'; '.join(run.damaged)})"
    ok = s.get("sanity_ok")
    return {
        **{f"_{k}": v for k, v in inputs.items()}, "_name": sp.get("name"),
        "run": run.id, "attack": sp.get("attack"), "dataset": sp.get("dataset"),
        "arch": sp.get("arch"), "rate": sp.get("poison_rate"), "seed": sp.get("seed"),
        "state": state, "rank": None, "score": s.get("score"), "score_lo": inputs["score_lo"],
        "score_hi": inputs["score_hi"], "ties": [], "ties_n": 0, "d_xt": s.get("d_xt"),
        "d_ty": s.get("d_ty"),
        "clean_acc": s.get("clean_acc"), "asr": s.get("asr"), "ra": s.get("ra"),
        "psnr": s.get("psnr"), "ssim": s.get("ssim"), "wall_s": s.get("wall_seconds"),
        "ok": ok if isinstance(ok, bool) else None, "ceiling": ceiling_share(s),
        "valid": None, "why": None, "config": inputs["config"],
    }


def rank_records(records: list[dict]) -> list[Verdict]:
    """Fill each record's rank (among valid runs, by score), ties (the ranks whose score
    intervals overlap), valid and why (ibtui.analysis.validity); returns the verdicts."""
    inputs = [{k[1:]: v for k, v in r.items() if k.startswith("_") and k != "_name"}
              for r in records]
    verdicts = assess(inputs)
    for r, i, v in zip(records, inputs, verdicts, strict=True):
        r["rank"], r["ties"], r["ties_n"], r["valid"] = v.rank, v.ties, v.ties_n, v.ok
        r["why"] = why_text(v, i)
    return verdicts


def export_view(record: dict) -> dict:
    """A ranked record with the export columns only."""
    return {c: record.get(c) for c in BOARD_COLUMNS}


def sort_records(rows: list[dict], column: str) -> list[dict]:
    """Ascending by `column`; numbers before text, missing values last; every valid run
    (rank_records) before every run set aside or not judged, whatever the column."""
    if column not in BOARD_COLUMNS:
        raise IbtuiError(f"--sort {column!r}: unknown column; allowed: {', '.join(BOARD_COLUMNS)}")
    out = []
    for part in ([r for r in rows if r.get("valid") is True],
                 [r for r in rows if r.get("valid") is not True]):
        present = [r for r in part if r[column] is not None and r[column] != []]
        missing = [r for r in part if r[column] is None or r[column] == []]
        out += sorted(present, key=lambda r: sort_key(r[column])) + missing
    return out


def sort_key(v: Any) -> tuple:
    """A present cell's sort key: numbers before text, never a comparison between the two."""
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    return (0, v, "") if num else (1, 0, str(v))


_ENCODE = json.JSONEncoder(default=str).encode  # one encoder for every line


def encode_record(record: dict) -> str:
    """One record as a line of `render(..., "json")` (the runs index keeps it, so that a
    warm `leaderboard --format json` joins lines instead of encoding 10,000 records)."""
    return _ENCODE(record)


# The leaderboard's JSON line of a settled run, kept by the runs index (RunIndex(line=...)) so
# that a warm `leaderboard --format json` joins lines instead of building 10,000 records. Bump
# RECORD_VERSION by hand whenever board_record, encode_record, ceiling_share or what they call
# (ibtui.analysis.validity.inputs_of, BOARD_COLUMNS) would make another line for the same run:
# the lines of another version are made again.
RECORD_VERSION = 1
BOARD_LINE = LineMaker(RECORD_VERSION, lambda run: encode_record(board_record(run)))


def json_text(lines: list[str]) -> str:
    """`render(..., "json")` of records already encoded with encode_record."""
    if not lines:
        return "[]\n"
    return "[\n  " + ",\n  ".join(lines) + "\n]\n"


def _flat(c: str, v: Any) -> Any:
    """A csv/md cell of column `c`: ties as `2 3`, valid as ✔/✖."""
    if c == "ties":
        return " ".join(map(str, v or [])) or None
    if c == "valid" and v is not None:
        return "✔" if v else "✖"
    return v


def render(records: Iterable[dict], fmt: str, escape=lambda s: s) -> str:
    """Ranked records (rank_records) as `json`, `csv` or `md` text (in the given order) with
    the BOARD_COLUMNS; `escape` cleans md cells."""
    records = [export_view(r) for r in records]
    if fmt == "json":  # one record a line: readable, and the C encoder (fast at 10,000 rows)
        return json_text([encode_record(r) for r in records])
    if fmt == "csv":
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=BOARD_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows({c: _flat(c, r[c]) for c in BOARD_COLUMNS} for r in records)
        return out.getvalue()
    if fmt == "md":
        lines = ["| " + " | ".join(BOARD_COLUMNS) + " |", "|" + "---|" * len(BOARD_COLUMNS)]
        lines += ["| " + " | ".join(escape(ceiling_text(r[c]) if c == "ceiling"
                                           else cell(c, _flat(c, r[c])))
                                    .replace("|", "\\|") for c in BOARD_COLUMNS) + " |"
                  for r in records]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown export format {fmt!r}: csv, md or json")


# --- filters ----------------------------------------------------------------------------------

@dataclass
class RunFilter:
    """Runs of a large sweep: every given kind must match (any of its values). `names` are
    terms of the app's filter (ibtui.runs.filter: a glob, or a regex searched) on the run id
    and the experiment name; `tags` match the spec's `tags` list."""

    states: list[str] = field(default_factory=list)
    attacks: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    archs: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.states, self.attacks, self.datasets, self.archs, self.names, self.tags))

    def check(self) -> RunFilter:
        allowed = (*STATES, "damaged")
        for s in self.states:
            if s not in allowed:
                raise IbtuiError(f"--state {s!r}: unknown state; allowed: {', '.join(allowed)}")
        return self

    def matches(self, run_id: str, state: str, spec: dict) -> bool:
        if self.states and state not in self.states:
            return False
        for want, key in ((self.attacks, "attack"), (self.datasets, "dataset"),
                          (self.archs, "arch")):
            if want and spec.get(key) not in want:
                return False
        if self.names:
            name = spec.get("name")
            fields = {"id": run_id, "name": name if isinstance(name, str) else ""}
            if not any(name_filter(t)(fields) for t in self.names):
                return False
        if self.tags:
            tags = spec.get("tags")
            tags = [tags] if isinstance(tags, str) else tags if isinstance(tags, list) else []
            if not any(t in tags for t in self.tags):
                return False
        return True

    def __call__(self, run) -> bool:
        return self.matches(run.id, run.state, run.spec or {})

    def describe(self) -> str:
        parts = [f"{k} {'|'.join(v)}" for k, v in (
            ("state", self.states), ("attack", self.attacks), ("dataset", self.datasets),
            ("arch", self.archs), ("name", self.names), ("tag", self.tags)) if v]
        return ", ".join(parts)
