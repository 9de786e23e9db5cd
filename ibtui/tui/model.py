"""What the screens show, computed from run directories: plain data, no widgets.

`RunRow` is one immutable row of the runs table (built from `ibtui.runs.store.Run`); `COLUMNS`
say how each column renders and sorts. `compile_filter` turns the `/` text into a predicate.
Everything here is cheap and pure, so the poll thread builds rows and the UI only renders them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from rich.text import Text

from ibtui.fmt import num
from ibtui.fmt import rate as rate_text
from ibtui.runs.board import (
    BOARD_COLUMNS,
    CEILING_TEXT,
    SANITY_TEXT,
    ceiling_share,
    ceiling_text,
    render,
)
from ibtui.runs.filter import Filter
from ibtui.runs.filter import compile_filter as _compile_filter
from ibtui.runs.store import HEARTBEAT_SILENT_S, REPEATED, Run

STATE_STYLE = {
    "queued": ("◌", "dim"),
    "running": ("●", "bold green"),
    "done": ("✔", "cyan"),
    "failed": ("✖", "bold red"),
    "crashed": ("✖", "bold magenta"),
    "cancelled": ("■", "yellow"),
    "interrupted": ("‖", "yellow"),
    "damaged": ("?", "bold red"),
}
ACTIVE = ("queued", "running")
RESUMABLE = ("crashed", "failed", "interrupted", "cancelled")


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


@dataclass(frozen=True)
class RunRow:
    """One run, flattened for tables. Frozen: rows compare equal when nothing changed."""

    id: str
    name: str = ""
    attack: str = ""
    dataset: str = ""
    arch: str = ""
    width: int | None = None
    rate: float | None = None
    seed: int | None = None
    state: str = "damaged"
    phase: str = ""
    detail: str = ""
    epoch: int | None = None
    epochs: int | None = None
    progress: float | None = None
    acc: float | None = None
    asr: float | None = None
    ra: float | None = None
    score: float | None = None
    d_xt: float | None = None
    d_ty: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    wall_s: float | None = None
    sanity_ok: bool | None = None
    ceiling: float | None = None  # share of the score's MI values at their estimator's ceiling
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    heartbeat: float | None = None
    pid: int | None = None
    gpu: str | None = None
    host: str | None = None
    note: str = ""  # why a run failed, crashed or is damaged
    has_summary: bool = False
    order: int = 0  # creation order in the runs directory
    sanity: tuple[tuple[bool, str], ...] = ()  # (ok, what) per MI sanity check, failed first
    alarm: str = ""  # backdoor alarm: "! c" names class c, "ok", "" = no data yet
    config: str = ""  # every spec field but the seed (ibtui.analysis.replicas.config_key)
    tags: tuple[str, ...] = ()
    score_lo: float | None = None  # the score's within-run 95% interval
    score_hi: float | None = None
    recipe: str = ""  # the training recipe (clean runs of it are the accuracy reference)
    min_asr: float | None = None
    min_asr_reason: str = ""
    # set over all rows by ranked_rows (ibtui.analysis.validity): valid None = not judged
    valid: bool | None = None
    why: str = ""
    rank: int | None = None
    ties: tuple[int, ...] = ()  # the nearest tied ranks
    ties_n: int = 0  # how many ranks it ties with

    def elapsed(self, now: float) -> float | None:
        if not self.started:
            return None
        if self.state == "running":
            end = now
        else:
            end = self.ended or self.heartbeat
        return None if end is None else max(0.0, end - self.started)


def sanity_lines(summary: dict) -> tuple[tuple[bool, str], ...]:
    """The summary's MI sanity checks as (ok, text), failed first, in their recorded order."""
    checks = summary.get("sanity") if isinstance(summary, dict) else None
    if not isinstance(checks, list):
        return ()
    out = []
    for c in checks:
        if not isinstance(c, dict):
            continue
        text = (f"{c.get('check')} · {c.get('subset')} · epoch {c.get('epoch')}: "
                f"{num(_num(c.get('value')))} vs bound {num(_num(c.get('bound')))}")
        if c.get("detail"):
            text += f" ({c['detail']})"
        out.append((bool(c.get("ok")), text))
    return tuple(sorted(out, key=lambda x: x[0]))


def _slurm_job(run: Run) -> str | None:
    """The job id the launcher got back (slurm.json), for a run that has not started yet."""
    from ibtui.runs.slurm import job_id

    return job_id(run.path)


def row_from_run(run: Run, order: int = 0) -> RunRow:
    """Never raises: whatever is unreadable becomes a blank field and a note."""
    spec, st, summ = run.spec or {}, run.status or {}, run.summary or {}

    def pick(key: str, spec_key: str | None = None) -> Any:
        """A spec value; never guessed from the run id (`adap-blend` has a dash in it)."""
        return spec.get(spec_key or key)

    state = run.state
    if state == "done" and any(REPEATED in why for why in run.damaged):
        state = "damaged"  # trained by two workers at once: its results are not one run's
    notes = []
    for why in run.damaged:
        notes.append(why.replace(f"{run.path}/", ""))  # file names stay, paths go
    if st.get("error") and state in ("failed", "crashed", "cancelled", "interrupted"):
        notes.insert(0, str(st["error"]))
    elif state == "crashed":
        notes.insert(0, f"worker pid {st.get('pid')} is gone; r resumes from the checkpoint")
    if st.get("executor") == "slurm" and state in ("queued", "running"):
        job = st.get("slurm_job_id") or _slurm_job(run)
        notes.insert(0, f"Slurm job {job or '?'}" + (f" ({st['error']})" if st.get("error") else
                                                   " pending in the cluster's queue"
                                                   if state == "queued" else ""))
    acc = _num(summ.get("clean_acc"))
    asr = _num(summ.get("asr"))
    if acc is None:
        acc = _num(st.get("test_acc"))
    if asr is None:
        asr = _num(st.get("asr"))
    rate = pick("rate", "poison_rate")
    seed = pick("seed")
    from ibtui.analysis.validity import inputs_of

    inputs = inputs_of(run)
    width = spec.get("width")
    return _new_row(
        id=run.id, name=str(pick("name") or ""), attack=str(pick("attack") or ""),
        dataset=str(pick("dataset") or ""), arch=str(pick("arch") or ""),
        width=width if isinstance(width, int) else None,
        rate=_num(rate), seed=seed if isinstance(seed, int) else None,
        state=state, phase=str(st.get("phase") or ""), detail=str(st.get("detail") or ""),
        epoch=st.get("epoch") if isinstance(st.get("epoch"), int) else None,
        epochs=(st.get("epochs") if isinstance(st.get("epochs"), int)
                else spec.get("epochs") if isinstance(spec.get("epochs"), int) else None),
        progress=_num(st.get("progress")), acc=acc, asr=asr, ra=_num(summ.get("ra")),
        score=_num(summ.get("score")), d_xt=_num(summ.get("d_xt")), d_ty=_num(summ.get("d_ty")),
        psnr=_num(summ.get("psnr")), ssim=_num(summ.get("ssim")),
        wall_s=_num(summ.get("wall_seconds")),
        sanity_ok=summ.get("sanity_ok") if isinstance(summ.get("sanity_ok"), bool) else None,
        ceiling=ceiling_share(summ),
        created=_num(st.get("created")) or 0.0, started=_num(st.get("started")),
        ended=_num(st.get("ended")), heartbeat=_num(st.get("heartbeat")),
        pid=st.get("pid") if isinstance(st.get("pid"), int) else None,
        gpu=None if st.get("gpu") is None else str(st.get("gpu")),
        host=st.get("host") if isinstance(st.get("host"), str) else None,
        note="; ".join(notes), has_summary=run.summary is not None, order=order,
        sanity=sanity_lines(summ), alarm=_alarm_cell(run),
        config=run.config or _config_key(spec), tags=_tags(spec.get("tags")),
        score_lo=inputs["score_lo"], score_hi=inputs["score_hi"], recipe=inputs["recipe"] or "",
        min_asr=inputs["min_asr"], min_asr_reason=inputs["min_asr_reason"] or "",
    )


def _inputs(row: RunRow) -> dict:
    """What ibtui.analysis.validity.assess reads of a row."""
    return {"run": row.id, "attack": row.attack or None, "seed": row.seed,
            "config": row.config or None, "recipe": row.recipe or None, "min_asr": row.min_asr,
            "min_asr_reason": row.min_asr_reason or None, "created": row.created,
            "state": row.state, "score": row.score, "score_lo": row.score_lo,
            "score_hi": row.score_hi, "clean_acc": row.acc if row.has_summary else None,
            "asr": row.asr}


def ranked_rows(rows: list[RunRow], fresh: set[str] = frozenset()) -> list[RunRow]:
    """The rows with their validity, rank and ties (over all of them); rows whose verdict
    is unchanged are returned as they are, rows in `fresh` (not shown yet) set in place."""
    from ibtui.analysis.validity import assess, why_text

    out = []
    for r, v in zip(rows, assess([_inputs(r) for r in rows]), strict=True):
        new = {"valid": v.ok, "why": why_text(v, _inputs(r)) or "", "rank": v.rank,
               "ties": tuple(v.ties), "ties_n": v.ties_n}
        if all(getattr(r, k) == x for k, x in new.items()):
            out.append(r)
        elif r.id in fresh:
            for k, x in new.items():
                object.__setattr__(r, k, x)
            out.append(r)
        else:
            from dataclasses import replace

            out.append(replace(r, **new))
    return out


_ROW_DEFAULTS = {f.name: f.default for f in dataclass_fields(RunRow)}


def _new_row(**values: Any) -> RunRow:
    """RunRow(**values) without the frozen dataclass's per-field __setattr__ (a third of the
    time of building ten thousand rows); the same object in every other way."""
    row = object.__new__(RunRow)
    row.__dict__.update(_ROW_DEFAULTS)
    row.__dict__.update(values)
    return row


def _config_key(spec: dict) -> str:
    from ibtui.analysis.replicas import config_key

    return config_key(spec) if spec else ""


def _tags(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    return tuple(str(t) for t in v) if isinstance(v, list) else ()


def _alarm_cell(run: Run) -> str:
    a = (run.summary or {}).get("alarm")
    if isinstance(a, dict) and isinstance(a.get("suspicion"), dict):
        # a finished run's recorded verdict, as alarm_cell reads it (without the import and
        # the file checks: ten thousand rows)
        from ibtui.analysis.alarm import verdict_cell

        return "" if "top_class" not in a else verdict_cell(a)
    from ibtui.analysis.alarm import alarm_cell  # never raises

    return alarm_cell(run)


# --- formatting ---------------------------------------------------------------------------

def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


PHASE_SHORT = {"training": "train", "poisoning": "poison", "scoring": "score", "mi": "MI"}


def fmt_progress(row: RunRow) -> str:
    """`6/10 train 40%`: epoch of total, the current stage, progress inside the stage."""
    if row.state == "queued":
        return "waiting"
    if row.state == "damaged":
        return "unreadable"
    epoch = f"{row.epoch or 0}/{row.epochs}" if row.epochs else ""
    if row.state == "running":
        phase = PHASE_SHORT.get(row.phase, row.phase)
        pct = f" {row.progress:.0%}" if row.progress is not None and 0 < row.progress < 1 else ""
        return f"{epoch} {phase}{pct}".strip()
    return epoch or row.state


def state_text(state: str, silent: float | None = None) -> Text:
    """`● running`; `● running, no heartbeat for 45 s` when its worker has gone quiet."""
    sym, style = STATE_STYLE.get(state, ("?", ""))
    if silent is not None:
        return Text(f"{sym} {state}, no heartbeat for {silent:.0f} s", style="bold yellow")
    return Text(f"{sym} {state}", style=style)


def silence(r: RunRow, now: float) -> float | None:
    """Seconds a running run's worker has gone without a heartbeat, when that is long."""
    if r.state != "running" or r.heartbeat is None or now - r.heartbeat < HEARTBEAT_SILENT_S:
        return None
    return now - r.heartbeat


# --- columns ------------------------------------------------------------------------------

class Cell(Text):
    """Formatted text that keeps a raw value for sorting (missing values sort last)."""

    def __init__(self, text: str | Text, sort_value: Any, style: str = "",
                 justify: str | None = None):
        if isinstance(text, Text):
            super().__init__(justify=justify)  # type: ignore[arg-type]
            self.append_text(text)
        else:
            super().__init__(text, style=style, justify=justify)  # type: ignore[arg-type]
        self.sort_value = sort_value

    @property
    def sort_key(self) -> tuple:
        return (0, 0) if self.sort_value is None else (1, self.sort_value)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    render: Callable[[RunRow, float], Cell]
    numeric: bool = False
    fixed: bool = False  # never hidden in narrow mode
    help: str = ""


def _num_cell(value: float | None, digits: int = 3, style: str = "") -> Cell:
    return Cell(num(value, digits), value, style=style, justify="right")


ID_COLUMN = Column("id", "run id", lambda r, now: Cell(r.id, r.id, "bold"),
                   help="the run's directory name (unique)")
COLUMN_LIST: list[Column] = [
    ID_COLUMN,
    Column("name", "name", lambda r, now: Cell(r.name or "unknown", r.name, "" if r.name
                                                else "dim")),
    Column("attack", "attack", lambda r, now: Cell(r.attack or "–", r.attack)),
    Column("dataset", "dataset", lambda r, now: Cell(r.dataset or "–", r.dataset)),
    Column("arch", "arch", lambda r, now: Cell(r.arch or "–", r.arch)),
    Column("rate", "rate", lambda r, now: Cell(rate_text(r.rate), r.rate, justify="right"),
           numeric=True, help="poison rate"),
    Column("seed", "seed", lambda r, now: Cell("–" if r.seed is None else str(r.seed), r.seed,
                                               justify="right"), numeric=True),
    Column("state", "state", lambda r, now: Cell(state_text(r.state, silence(r, now)), r.state),
           fixed=True),
    Column("progress", "progress",
           lambda r, now: Cell(fmt_progress(r),
                               (r.epoch or 0) + (r.progress or 0) if r.epochs else None,
                               style="red" if r.state == "damaged" else ""), fixed=True),
    Column("acc", "acc", lambda r, now: _num_cell(r.acc), numeric=True, fixed=True,
           help="clean test accuracy"),
    Column("asr", "ASR", lambda r, now: _num_cell(r.asr), numeric=True, fixed=True,
           help="attack success rate"),
    Column("score", "score", lambda r, now: _num_cell(r.score), numeric=True, fixed=True,
           help="stealth score (lower = stealthier)"),
    Column("elapsed", "elapsed",
           lambda r, now: Cell(fmt_duration(r.elapsed(now)), r.elapsed(now), justify="right"),
           numeric=True, fixed=True),
    Column("alarm", "alarm", lambda r, now: Cell(alarm_text(r.alarm), r.alarm,
                                                 style="bold red" if r.alarm.startswith("!") else ""),
           help="backdoor alarm: ! c = class c looks like a backdoor target, clear = no alarm"),
]
def alarm_text(alarm: str) -> str:
    """The alarm cell: `! c`, `clear` (no alarm: never "ok", which the leaderboard's checks
    would share), `no verdict`, `–`."""
    return {"": "–", "ok": "clear"}.get(alarm, alarm)


def valid_cell(row: RunRow) -> Cell:
    """`✔`, `✖ no backdoor` (the first failed condition; the run screen names all), `–`."""
    if row.valid is None:
        return Cell("–", None, justify="left")
    if row.valid:
        return Cell("✔", 0, style="green")
    from ibtui.analysis.validity import short_reason

    return Cell(f"✖ {short_reason(row.why)}", 1, style="bold red")


COLUMN_LIST.append(Column(
    "valid", "valid", lambda r, now: valid_cell(r),
    help="✔: backdoor (final ASR ≥ min_asr, default 0.9) and clean task learned, no duplicate "
         "seed; ✖ names what failed; such runs are ranked after every valid run"))
COLUMNS: dict[str, Column] = {c.key: c for c in COLUMN_LIST}
# columns that may be folded into the header line when all rows agree and the screen is narrow
FOLDABLE = ("dataset", "arch", "name", "attack", "rate", "seed")


def plain_fields(row: RunRow, now: float) -> dict[str, str]:
    """The text of every column, plus the run id, for filtering."""
    out = {c.key: c.render(row, now).plain for c in COLUMN_LIST}
    out["id"] = row.id
    out["state"] = row.state
    out["note"] = row.note
    return out


# --- filtering ----------------------------------------------------------------------------

def compile_filter(text: str, columns: list[str] | None = None) -> Filter:
    """The `/` text as a predicate on a row's plain fields (the term language of
    ibtui.runs.filter, shared with the CLI's --name); `columns` default to every column."""
    return _compile_filter(text, columns or [*COLUMNS, "id", "note", "tag"])


# the leaderboard's column is called `checks` (the runs screen's alarm says `clear`)
SANITY_HELP = (SANITY_TEXT.replace("ok: ", "", 1)
               + " i lists a run's checks, failed first.")
def _score_cell(r: RunRow, now: float) -> Cell:
    """The score with its within-run interval, ⚠ when part of its inputs sat at a ceiling."""
    from ibtui.analysis.validity import score_text

    return Cell(score_text(r.score, r.score_lo, r.score_hi, r.ceiling), r.score,
                style="yellow" if r.ceiling else "", justify="right")


def _ties_cell(r: RunRow, now: float) -> Cell:
    if r.rank is None:
        return Cell("", None)
    text = " ".join(f"#{t}" for t in r.ties[:4]) + (f" …{r.ties_n}" if r.ties_n > 4 else "")
    return Cell(text or "–", r.ties_n)


LEADERBOARD_COLUMN_LIST: list[Column] = [
    Column("rank", "#", lambda r, now: Cell("–" if r.rank is None else str(r.rank), r.rank,
                                            justify="right"), numeric=True, fixed=True,
           help="rank among valid runs by score (runs set aside: –)"),
    ID_COLUMN, COLUMNS["name"], COLUMNS["attack"], COLUMNS["dataset"], COLUMNS["arch"], COLUMNS["rate"],
    COLUMNS["seed"],
    Column("score", "score [95%]", _score_cell, numeric=True, fixed=True,
           help="stealth score (lower = stealthier) with its within-run 95% interval; ⚠: part "
                "of its MI values sat at their ceiling"),
    Column("ties", "ties", _ties_cell, help="ranks whose score intervals overlap this run's"),
    COLUMNS["valid"],
    Column("d_xt", "D_XT", lambda r, now: _num_cell(r.d_xt), numeric=True, fixed=True,
           help="stealth distance in I(X;T)"),
    Column("d_ty", "D_TY", lambda r, now: _num_cell(r.d_ty), numeric=True, fixed=True,
           help="stealth distance in I(T;Ŷ)"),
    COLUMNS["acc"], COLUMNS["asr"],
    Column("ra", "RA", lambda r, now: _num_cell(r.ra), numeric=True, help="robust accuracy"),
    Column("psnr", "PSNR", lambda r, now: _num_cell(r.psnr, 2), numeric=True),
    Column("ssim", "SSIM", lambda r, now: _num_cell(r.ssim), numeric=True),
    Column("sanity", "checks", lambda r, now: Cell(
        "–" if r.sanity_ok is None else ("✔" if r.sanity_ok else "✖"), r.sanity_ok,
        style="" if r.sanity_ok is None else ("green" if r.sanity_ok else "bold red")),
        help="every MI sanity check passed (i lists them)"),
    Column("ceiling", "ceil", lambda r, now: Cell(
        ceiling_text(r.ceiling), r.ceiling, style="yellow" if r.ceiling else "", justify="right"),
        numeric=True, help=CEILING_TEXT),
]


def short_labels(rows: list[RunRow]) -> dict[str, str]:
    """Run labels without the parts every run shares: `ftrojan vgg16 p0.1 s1`."""
    parts = (("name", ""), ("attack", ""), ("dataset", ""), ("arch", ""), ("rate", "p"),
             ("seed", "s"))
    values = {k: {COLUMNS[k].render(r, 0).plain for r in rows if r.state != "damaged"}
              for k, _ in parts}
    varying = [(k, p) for k, p in parts if len(values[k]) > 1]
    out = {}
    for r in rows:
        texts = [p + COLUMNS[k].render(r, 0).plain for k, p in varying
                 if COLUMNS[k].render(r, 0).plain != "–"]
        out[r.id] = " ".join(texts) if texts and r.state != "damaged" else r.id
    return out


# --- export (the columns and cell format of `ibtui leaderboard --format`) -----------------

EXPORT_COLUMNS = BOARD_COLUMNS


def export_record(r: RunRow) -> dict[str, Any]:
    return {"run": r.id, "attack": r.attack or None, "dataset": r.dataset or None,
            "arch": r.arch or None, "rate": r.rate, "seed": r.seed, "state": r.state,
            "rank": r.rank, "score": r.score, "score_lo": r.score_lo, "score_hi": r.score_hi,
            "ties": list(r.ties), "ties_n": r.ties_n, "d_xt": r.d_xt, "d_ty": r.d_ty, "clean_acc": r.acc,
            "asr": r.asr, "ra": r.ra, "psnr": r.psnr, "ssim": r.ssim, "wall_s": r.wall_s,
            "ok": r.sanity_ok, "ceiling": r.ceiling, "valid": r.valid, "why": r.why or None,
            "config": r.config or None}


def export_text(rows: Iterable[RunRow], fmt: str, now: float = 0.0) -> str:
    """Rows as `csv`, `md` or `json`, in the given order (as `ibtui leaderboard --format`)."""
    return render([export_record(r) for r in rows], fmt)
