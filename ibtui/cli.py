"""The `ibtui` command. Thin: parse, call, print. User errors exit with code 2, no traceback."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from enum import Enum, StrEnum
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from ibtui import errors
from ibtui.errors import IbtuiError
from ibtui.fmt import NONE, num
from ibtui.fmt import cell as fmt_cell


class _Group(TyperGroup):
    """Every command: an IbtuiError or an OSError (unreadable, read-only, name too long, disk
    full...) ends as one line on stderr with exit code 2, never as a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except IbtuiError as e:
            fail(e)
        except OutputError as e:  # stdout is full, gone or closed: the work's result is lost
            try:
                err.print(f"error: cannot write the output: {e.strerror or e}", markup=False,
                          highlight=False)
            except OSError:
                pass
            raise typer.Exit(EXIT_OUTPUT) from None
        except BrokenPipeError:  # `ibtui ls | head`: the reader left; say nothing
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
            except OSError:
                pass
            raise typer.Exit(141) from None
        except OSError as e:
            fail(IbtuiError(os_error_message(e)))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors (unknown option, bad choice, missing argument) as one line too, instead
        of a boxed message wrapped at the terminal width."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        _setup_output()
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        except _CLICK_ERROR as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                e.show()
                sys.exit(e.exit_code)
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            err.print(Text.assemble(("error: ", "bold red"), one_line(e.format_message() + hint)),
                      soft_wrap=True, highlight=False)
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


# click's base of every usage error (typer vendors click; reach it through a public subclass)
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


app = typer.Typer(cls=_Group, add_completion=True, no_args_is_help=False,
                  help="Backdoor training dynamics through the information bottleneck.")
attacks_app = typer.Typer(help="Attacks: list them, draw the gallery.")
data_app = typer.Typer(help="Datasets: list, fetch.")
app.add_typer(attacks_app, name="attacks")
app.add_typer(data_app, name="data")
EXIT_OUTPUT = 4  # standard output could not be written (full, closed); 141: its reader left


class OutputError(OSError):
    """A write to standard output failed (not a broken pipe): reported with EXIT_OUTPUT."""


class _Stdout:
    """sys.stdout whose write errors are told apart from the command's own file errors."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _guard(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(e.errno, e.strerror or str(e)) from None

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader left (`| head`): quiet, with the shell's SIGPIPE status, as coreutils."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, AttributeError, ValueError):
            pass
        raise SystemExit(141)


console = _Console()
err = _Console(stderr=True)



def one_line(text: object) -> str:
    """User text for one line of output: control characters (newlines, escapes) spelled out."""
    return errors.one_line(str(text))


def lit(v: object) -> Text:
    """User text (ids, paths, values) for Rich: printed literally, never read as markup."""
    return Text(one_line(v))


def say(*parts: object, style: str | None = None) -> None:
    """Print a line of user text to stdout literally (no markup, no wrapping)."""
    console.print(Text(one_line(" ".join(str(p) for p in parts)), style=style or ""),
                  soft_wrap=True, highlight=False)


def os_error_message(e: OSError) -> str:
    where = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        where = f"{where} -> {e.filename2}"
    return f"{where}: {e.strerror or e}" if where != "" else str(e.strerror or e)


def fail(e: IbtuiError) -> None:
    """Print a user error as one line on stderr (literal text, no wrapping) and exit 2."""
    err.print(Text.assemble(("error: ", "bold red"), one_line(e)), soft_wrap=True, highlight=False)
    raise typer.Exit(getattr(e, "exit_code", 2))


def resolve_runs_dir(value: Path | str | None = None, ctx: typer.Context | None = None) -> Path:
    """The runs directory a command uses: its own --runs-dir, else the top-level
    `ibtui --runs-dir`, else $IBTUI_RUNS_DIR, else ./runs."""
    if value is not None:
        return Path(value)
    if ctx is None:
        try:  # inside a command: its context (typer vendors click; its path may move)
            from typer._click.globals import get_current_context

            ctx = get_current_context(silent=True)
        except ImportError:
            ctx = None
    top = ctx.find_root().params.get("runs_dir") if ctx is not None else None
    if top is not None:
        return Path(top)
    env = os.environ.get("IBTUI_RUNS_DIR")
    return Path(env) if env else Path("runs")


def _runs_dir_callback(ctx: typer.Context, value: Path | None) -> Path:
    return resolve_runs_dir(value, ctx)


RUNS_DIR_HELP = "runs directory (default: `ibtui --runs-dir`, else $IBTUI_RUNS_DIR, else ./runs)"
RunsDir = typer.Option(None, "--runs-dir", help=RUNS_DIR_HELP, callback=_runs_dir_callback,
                       show_default=False)


def _version(value: bool) -> None:
    if value:
        import ibtui

        print(f"ibtui {ibtui.__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context,
         runs_dir: Path | None = typer.Option(None, "--runs-dir", envvar="IBTUI_RUNS_DIR",
                                              help="runs directory for the app and every command "
                                              "(default: ./runs)", show_default=False),
         version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print the version and exit")) -> None:
    """With no command: open the app on the runs directory."""
    if ctx.invoked_subcommand is None:
        tui(resolve_runs_dir(runs_dir), jobs=0, gpus=None, threads=0)


# --- run ------------------------------------------------------------------------------------

class Executor(StrEnum):
    local = "local"
    slurm = "slurm"


EXIT_RUNS_FAILED = 1  # some run ended failed, crashed, cancelled or interrupted (2 = user error)

JobsOpt = typer.Option(0, "--jobs", "-j", help="workers at once (default: one per GPU, "
                       "else one per two CPU cores)")
GpusOpt = typer.Option(None, "--gpus", help="GPU ids, e.g. 0,1 (default: all visible; '' = none)")
ThreadsOpt = typer.Option(0, "--threads", help="CPU threads per worker (default: cores / jobs; "
                          "a run's own `threads` field wins)")


MAX_JOBS, MAX_THREADS = 256, 1024


def check_launch(jobs: int, gpus: str | None, threads: int) -> list[str] | None:
    """--jobs, --threads and --gpus as allowed (IbtuiError otherwise); the GPU ids or None."""
    from ibtui.runs.resources import detect_gpus, parse_gpus

    for name, v, top in (("--jobs", jobs, MAX_JOBS), ("--threads", threads, MAX_THREADS)):
        if not 0 <= v <= top:
            raise IbtuiError(f"{name} {v}: out of range; allowed: 0 (automatic) to {top}")
    ids = parse_gpus(gpus)
    if not ids:
        return ids
    bad = [g for g in ids if not (g.isdigit() or g.startswith(("GPU-", "MIG-")))]
    if bad:
        raise IbtuiError(f"--gpus {gpus!r}: {bad[0]!r} is no GPU id; allowed: indices such as "
                         "0,1 (or GPU-/MIG- UUIDs), '' for none")
    if len(set(ids)) != len(ids):
        raise IbtuiError(f"--gpus {gpus!r}: an id is given twice; allowed: each GPU once")
    seen = detect_gpus()
    missing = [g for g in ids if g.isdigit() and g not in seen]
    if missing:
        raise IbtuiError(f"--gpus {gpus!r}: GPU {missing[0]} is not visible here; allowed: "
                         f"{', '.join(seen) if seen else 'none visible'} ('' = CPU only)")
    return ids


def _plan(jobs: int, gpus: str | None, threads: int):
    from ibtui.runs.resources import plan_resources

    check_launch(jobs, gpus, threads)
    return plan_resources(jobs, gpus, threads)


def _launch(runs_dir: Path, paths: list[Path], res, detach: bool) -> None:
    """Follow the runs to their end, print the leaderboard, exit 1 if any did not end done."""
    from ibtui.progress import follow, unfinished
    from ibtui.runs.scheduler import ensure_scheduler
    from ibtui.runs.store import load_run

    if detach and any(load_run(p).status.get("executor", "local") == "local" for p in paths):
        pid = ensure_scheduler(runs_dir, res.jobs, res.gpus, res.threads)
        console.print(f"queued {len(paths)} runs; " + (f"scheduler started (pid {pid}, "
                      f"{res.describe()})" if pid else "the running scheduler picks them up"),
                      highlight=False)
    follow(runs_dir, paths, res, console, detach=detach)
    _print_board(runs_dir, {p.name for p in paths})
    for line in untrained_warnings(paths):
        say(line, style="bold yellow")
    bad = unfinished(paths)
    for name, state, why in bad:
        err.print(f"{name}: {state}" + (f" ({why})" if why else "")
                  + f"; log: {runs_dir / name / 'worker.log'}", markup=False, highlight=False,
                  soft_wrap=True)
    if bad:
        import shlex

        err.print(f"{len(bad)} of {len(paths)} runs did not finish; resume with `ibtui resume "
                  f"--runs-dir {shlex.quote(str(runs_dir.absolute()))} "
                  f"{' '.join(shlex.quote(name) for name, _, _ in bad)}`", markup=False,
                  highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUNS_FAILED)


def untrained_warnings(paths: list[Path]) -> list[str]:
    """A warning per finished run whose clean accuracy stayed near chance (below the validity
    floor), naming the setting that most often causes it: too few optimiser steps."""
    import math

    from ibtui.analysis.validity import acc_floor
    from ibtui.data.datasets import DATASETS
    from ibtui.runs.store import load_run

    out = []
    for p in paths:
        r = load_run(p)
        acc = (r.summary or {}).get("clean_acc")
        if r.state != "done" or not isinstance(acc, (int, float)) or acc >= acc_floor():
            continue
        sp = r.spec or {}
        steps = ""
        info = DATASETS.get(sp.get("dataset"))
        if info is not None and all(isinstance(sp.get(k), int) for k in ("epochs", "batch_size")):
            n, b, e = info.train_size, sp["batch_size"], sp["epochs"]
            steps = (f"; likely too few optimiser steps: epochs × ⌈n / batch_size⌉ = {e} × "
                     f"⌈{n:,} / {b}⌉ = {e * math.ceil(n / b):,} at lr {sp.get('lr')}: raise "
                     "epochs or lr, or lower batch_size")
        out.append(f"warning: {p.name} finished at clean accuracy {acc:.2f}, near chance (a "
                   f"learned model reaches ≥ {acc_floor():.2f}): its score and alarm are no "
                   f"finding{steps}")
    return out


@app.command()
def run(
    file: Path = typer.Argument(Path("experiments.toml"), help="experiments file"),
    only: list[str] | None = typer.Option(None, "--only", help="only experiments with this name"),
    jobs: int = JobsOpt,
    gpus: str | None = GpusOpt,
    threads: int = ThreadsOpt,
    runs_dir: Path = RunsDir,
    dry_run: bool = typer.Option(False, "--dry-run", help="list the expanded runs and stop"),
    preset: str | None = typer.Option(None, "--preset", help="run a named preset (see `ibtui presets`)"),
    detach: bool = typer.Option(False, "--detach", help="run the queue in a background scheduler "
                                "that survives this terminal (use over SSH); follow progress here"),
    executor: Executor | None = typer.Option(None, "--executor",
                                             help="where runs execute (default: \\[executor] kind "
                                             "in FILE, else local)"),
) -> None:
    """Run every experiment of FILE: one worker per run, live progress, then the leaderboard.

    Exit code: 0 when every run ended done, 1 when any failed, crashed or was interrupted
    (each is named with its worker.log), 2 for a user error."""
    from ibtui.runs.launch import launch
    from ibtui.runs.slurm import load_executor
    from ibtui.spec import load_spec

    try:
        if preset:
            from ibtui.presets import preset_path

            file = preset_path(preset)
        specs = load_spec(file)
        cfg = load_executor(file, executor.value if executor else None)
        if only:
            names = sorted({s.values["name"] for s in specs})
            unknown = [n for n in only if n not in names]
            if unknown:
                raise IbtuiError(f"{file}: --only {unknown[0]!r}: no such experiment; allowed: {', '.join(names)}")
            specs = [s for s in specs if s.values["name"] in only]
        check_launch(jobs, gpus, threads)
        if dry_run:
            t = Table(title=escape(f"{len(specs)} runs from {file}"))
            t.add_column("run", overflow="fold", min_width=20)
            for col in ("attack", "rate", "dataset", "arch", "width", "epochs", "MI epochs", "method"):
                t.add_column(col, overflow="fold")
            for s in specs:
                v = s.values
                t.add_row(*(escape(str(c)) for c in (
                    s.run_id, v["attack"], f"{v['poison_rate']:g}", v["dataset"], v["arch"],
                    v["width"], v["epochs"], ",".join(map(str, v["mi_epochs"])),
                    ",".join(v["mi_method"]))))
            console.print(t)
            return
        res = _plan(jobs, gpus, threads)
        launched = launch(specs, runs_dir, cfg, source=str(file))
    except IbtuiError as e:
        fail(e)
    if launched.slurm:
        console.print(launched.message(), highlight=False, markup=False)
    _launch(runs_dir, launched.paths, res, detach)


# --- reading runs -----------------------------------------------------------------------------

from ibtui.runs.board import BOARD_COLUMNS, RunFilter  # noqa: E402 (shared with the app)

SortColumn = Enum("SortColumn", {c: c for c in BOARD_COLUMNS}, type=str)
BoardFormat = Literal["table", "csv", "md", "json"]
ListFormat = Literal["table", "json"]


def _value(v):
    return v.value if isinstance(v, Enum) else v


def _all_records(runs_dir: Path, where: RunFilter | None) -> list[dict]:
    """Every run's leaderboard record, ranked over the whole runs directory (validity, ranks
    and ties: a clean reference or an earlier seed need not be among the rows shown), then
    only those `where` matches. Without a filter it joins the JSON lines the runs index keeps
    of settled runs (no Run built per run); a filter needs the runs themselves."""
    from ibtui.runs.board import BOARD_LINE, board_record, rank_records

    if where is None:
        from ibtui.runs.store import RunIndex

        index = RunIndex(runs_dir, line=BOARD_LINE)
        records = []
        for _, run_id, _, _, line in index.listing():
            if line is not None:
                records.append(json.loads(line))
            elif (run := index.run(run_id)) is not None:  # running (liveness checked now)
                records.append(board_record(run))
        rank_records(records)
        return records
    from ibtui.runs.store import list_runs_cached

    runs = list_runs_cached(runs_dir)
    records = [board_record(r) for r in runs]
    rank_records(records)
    return [rec for r, rec in zip(runs, records, strict=True) if where(r)]


def board_rows(runs_dir: Path, ids: set[str] | None = None,
               where: RunFilter | None = None) -> list[dict]:
    """Ranked leaderboard rows of the runs (through the runs directory's index: unchanged runs
    are not read again), optionally only `ids` and those `where` matches."""
    return [r for r in _all_records(runs_dir, where) if ids is None or r["run"] in ids]


def _sort_rows(rows: list[dict], column: str) -> list[dict]:
    from ibtui.runs.board import sort_records

    return sort_records(rows, _value(column))


def _ties_text(r: dict, n_ranked: int) -> str:
    """`2, 3`; `all` when a run ties with every other ranked run; `2, 3 … (14)` when it ties
    with more than it names; `-` when with none."""
    ties, count = r["ties"], r.get("ties_n") or len(r["ties"])
    if not count:
        return "-"
    if n_ranked > 3 and count == n_ranked - 1:
        return "all"
    shown = ties[:6]
    return ", ".join(map(str, shown)) + (f" … ({count})" if count > len(shown) else "")


def _valid_text(r: dict, short: bool = False) -> Text:
    from ibtui.analysis.validity import short_reason

    if r.get("valid") is None:
        return Text("–")
    if r["valid"]:
        return Text("✔", style="green")
    why = one_line(r.get("why") or "")
    return Text("✖ " + (short_reason(why) if short else why), style="bold red")


def _print_board(runs_dir: Path, ids: set[str] | None = None, sort: str = "score",
                 fmt: str = "table", where: RunFilter | None = None, limit: int = 0) -> None:
    from ibtui.analysis.validity import RULES_TEXT, score_text
    from ibtui.runs.board import CEILING_TEXT, SANITY_TEXT, ceiling_text, render

    rows = _sort_rows(board_rows(runs_dir, ids, where), sort)
    fmt = _value(fmt)
    if fmt in ("json", "csv", "md"):
        sys.stdout.write(render(rows, fmt, escape=one_line))
        return
    total = len(rows)
    n_ranked = sum(r["rank"] is not None for r in rows)
    set_aside = [r for r in rows if r["valid"] is False]
    if limit > 0:
        rows = rows[:limit]
    # attack, dataset, arch, rate and seed are spelled out in the run id: keep the table narrow
    wide = console.width >= 150
    cols = ["#", "run", "state", "score", "ties", "d_xt", "d_ty", "clean_acc", "asr", "ra",
            "psnr", "ssim", "ok", "ceiling", "valid"]
    if console.width < 110:  # an 80-column terminal: the essentials (all columns: --format)
        cols = ["#", "run", "state", "score", "ties", "clean_acc", "asr", "valid"]
    t = Table(title="Stealth-score leaderboard (lower = stealthier; valid runs ranked first)")
    for c in cols:
        t.add_column("acc" if c == "clean_acc" else "score [95%]" if c == "score" and wide else c,
                     justify="left" if c in ("run", "state", "valid", "ties") else "right",
                     overflow="fold", no_wrap=c not in ("run", "state", "valid"),
                     min_width=20 if c == "run" else None)

    def cell_of(r: dict, c: str):
        if c == "#":
            return "-" if r["rank"] is None else str(r["rank"])
        if c in ("run", "state"):
            return lit(fmt_cell(c, r[c]))
        if c == "score":  # the interval when there is room, the ceiling flag always
            return Text(score_text(r["score"], *((r["score_lo"], r["score_hi"]) if wide
                                                  else (None, None)), r["ceiling"]),
                        style="yellow" if r["ceiling"] else "")
        if c == "ties":
            return "-" if r["rank"] is None else _ties_text(r, n_ranked)
        if c == "ok":
            return _ok(r[c])
        if c == "ceiling":
            return _ceiling(r[c], ceiling_text)
        if c == "valid":
            return _valid_text(r, short=not wide)
        return fmt_cell(c, r[c])

    for r in rows:
        t.add_row(*[cell_of(r, c) for c in cols])
    console.print(t)
    if total > len(rows):
        say(f"the first {len(rows)} of {total} rows (--limit 0: all; --format json/csv/md: all; "
            "narrow with --state, --attack, --dataset, --arch, --name, --tag)", style="yellow")
    from ibtui.analysis.validity import set_aside_summary

    aside = set_aside_summary([_verdict_of(r) for r in set_aside])
    if aside:
        say(aside, style="yellow")
        if not wide:
            for r in set_aside[:5]:
                say(f"  ✖ {one_line(r['run'])}: {one_line(r['why'])}", style="yellow")
            if len(set_aside) > 5:
                say(f"  … and {len(set_aside) - 5} more (--format json: every reason)",
                    style="yellow")
    if not wide and any(r["score_lo"] is not None for r in rows):
        say("score intervals: a terminal ≥ 150 columns wide shows them; `ibtui show RUN` or "
            "--format csv/json/md (score_lo, score_hi)", style="dim")
    say(RULES_TEXT + " ⚠ after a score: part of its MI values sat at their ceiling.", style="dim")
    if any(r["ok"] is not None for r in rows):
        say(SANITY_TEXT + " `ibtui show RUN` lists a run's checks.", style="dim")
    if any(r["ceiling"] is not None for r in rows):
        say(CEILING_TEXT, style="dim")


def _verdict_of(r: dict):
    from ibtui.analysis.validity import Verdict

    return Verdict(ok=r.get("valid"), reasons=(r.get("why") or "").split("; ")
                   if r.get("why") else [])


def _ceiling(share, text) -> Text:
    return Text(text(share), style="yellow" if share else "")


def _ok(v) -> Text:
    if v is None:
        return Text("–")
    return Text("✔", style="green") if v else Text("✖", style="bold red")


STATE_HELP = "only runs in this state (repeatable: any of them)"
StateOpt = typer.Option(None, "--state", help=STATE_HELP)
AttackOpt = typer.Option(None, "--attack", help="only runs of this attack (repeatable)")
DatasetOpt = typer.Option(None, "--dataset", help="only runs on this dataset (repeatable)")
ArchOpt = typer.Option(None, "--arch", help="only runs of this network (repeatable)")
NameOpt = typer.Option(None, "--name", metavar="TERM", help="only runs whose id or experiment "
                       "name matches, as the app's / filter does (case-insensitive): a glob on "
                       "the whole value, e.g. 'sweep3-*', else a regular expression searched, "
                       "e.g. '^paper-.*-s0$'; id: or name: for one of them (repeatable: any)")
TagOpt = typer.Option(None, "--tag", help="only runs whose spec `tags` hold this tag (repeatable)")


def _where(state, attack, dataset, arch, name, tag) -> RunFilter | None:
    f = RunFilter(*(list(x or []) for x in (state, attack, dataset, arch, name, tag))).check()
    return f or None


def replica_rows(runs_dir: Path, where: RunFilter | None = None) -> list[dict]:
    """group_replicas' rows of the runs (through the index), with each run's validity."""
    from ibtui.analysis.replicas import METRICS

    return [{"run": rec["run"], "valid": rec["valid"], "why": rec["why"],
             "spec": {"config": rec["config"] or rec["run"], "name": rec.get("_name"),
                      "attack": rec["attack"], "dataset": rec["dataset"], "arch": rec["arch"],
                      "poison_rate": rec["rate"], "seed": rec["seed"]},
             **{m: rec[m] for m in METRICS}}
            for rec in _all_records(runs_dir, where)]


def _group_json(g) -> dict:
    return {"rank": g.rank, "ties": g.ties, "config": g.key, **g.label, "seeds": g.seeds,
            "n_seeds": len(g.seeds), "runs": g.runs, "duplicates": g.duplicates,
            "set_aside": g.set_aside,
            **{m: (None if iv is None else {"mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "n": iv.n})
               for m, iv in g.metrics.items()}}


def _print_replicas(runs_dir: Path, fmt: str, where: RunFilter | None = None) -> None:
    """One row per configuration across its distinct seeds: mean ± 95% interval, the ranks it
    ties with, duplicates counted once, runs set aside named."""
    from ibtui.analysis.replicas import group_replicas

    groups = group_replicas(replica_rows(runs_dir, where))
    if fmt == "json":
        print(json.dumps([_group_json(g) for g in groups], indent=2))
        return
    if fmt != "table":
        raise IbtuiError(f"--replicas: --format {fmt!r} is not available; allowed: table, json")
    t = Table(title="Leaderboard across seeds: mean ± 95% t-interval over distinct seeds "
                    "(lower score = stealthier)")
    for c in ("rank", "experiment", "seeds", "score", "d_xt", "d_ty", "acc", "asr", "tied with",
              "not counted"):
        t.add_column(c, justify="left" if c in ("experiment", "tied with", "not counted")
                     else "right")
    for g in groups:
        lab = g.label
        exp = f"{lab['name']}-{lab['attack']}-{lab['dataset']}-{lab['arch']}-p{lab['poison_rate']}"
        aside = [f"{len(g.duplicates)} duplicate{'s' * (len(g.duplicates) != 1)}"] \
            if g.duplicates else []
        aside += [f"{run}: {why}" for run, why in g.set_aside.items()]
        t.add_row(str(g.rank) if g.valid else "-", lit(exp), str(len(g.seeds)),
                  *[(NONE if g.metrics[m] is None else g.metrics[m].text())
                    for m in ("score", "d_xt", "d_ty", "clean_acc", "asr")],
                  (", ".join(map(str, g.ties)) or "-") if g.valid else "-",
                  lit(one_line("; ".join(aside)) or "-"))
    console.print(t)
    dup = sum(len(g.duplicates) for g in groups)
    aside = sum(len(g.set_aside) for g in groups)
    if dup:
        say(f"{dup} duplicate run{'s' * (dup != 1)} (same configuration and seed as an earlier "
            "run) counted once", style="yellow")
    if aside:
        say(f"{aside} run{'s' * (aside != 1)} set aside (not learned or below the clean "
            "reference); `ibtui leaderboard` names each reason", style="yellow")
    say("rows whose score intervals overlap cannot be ranked apart; an interval needs two "
        "distinct seeds (n = 1: none)")


@app.command()
def leaderboard(
    runs_dir: Path = RunsDir,
    sort: SortColumn = typer.Option("score", "--sort", help="column to sort by"),
    fmt: BoardFormat = typer.Option("table", "--format", help="output format"),
    replicas: bool = typer.Option(False, "--replicas", help="one row per configuration across "
                                  "its seeds, with 95% intervals and ties"),
    state: list[str] | None = StateOpt, attack: list[str] | None = AttackOpt,
    dataset: list[str] | None = DatasetOpt, arch: list[str] | None = ArchOpt,
    name: list[str] | None = NameOpt, tag: list[str] | None = TagOpt,
    limit: int = typer.Option(0, "--limit", help="table: at most this many rows (0 = all)"),
) -> None:
    """The stealth-score leaderboard of every run (or of every configuration across seeds)."""
    from ibtui.runs.store import require_runs_dir

    where = _where(state, attack, dataset, arch, name, tag)
    if replicas:
        _print_replicas(require_runs_dir(runs_dir), _value(fmt), where)
        return
    _print_board(require_runs_dir(runs_dir), None, _value(sort), fmt, where, max(limit, 0))


def _queue_warning(runs_dir: Path, runs, info: dict | None) -> str | None:
    queued = [r.id for r in runs if r.state == "queued"
              and r.status.get("executor", "local") == "local"]  # Slurm queues its own
    from ibtui.runs.scheduler import waiting_for_space

    full = waiting_for_space(runs_dir) if queued else None
    if full:
        return f"{len(queued)} queued run{'s' * (len(queued) > 1)}: {full}"
    if not queued or info:
        return None
    return (f"{len(queued)} queued run{'s' * (len(queued) > 1)} but no scheduler is alive for "
            f"{runs_dir}: start one with `ibtui resume --detach --runs-dir {runs_dir} RUN...` "
            "(or any `ibtui run` on this runs directory runs them too)")


LS_LIMIT = 100  # table rows by default: the newest; --limit 0 shows all


@app.command("ls")
def ls(runs_dir: Path = RunsDir,
       fmt: ListFormat = typer.Option("table", "--format", help="output format"),
       state: list[str] | None = StateOpt, attack: list[str] | None = AttackOpt,
       dataset: list[str] | None = DatasetOpt, arch: list[str] | None = ArchOpt,
       name: list[str] | None = NameOpt, tag: list[str] | None = TagOpt,
       limit: int = typer.Option(LS_LIMIT, "--limit", help="table: only the newest this many "
                                 "runs (0 = all; json lists all)")) -> None:
    """List runs with their state and progress (and whether a scheduler runs the queue)."""
    from ibtui.runs.scheduler import scheduler_info
    from ibtui.runs.store import RunIndex, require_runs_dir

    where = _where(state, attack, dataset, arch, name, tag)
    # through the runs directory's index: runs whose files did not change are not read again;
    # a Run is built only for the runs looked at closer (rows shown, unsettled, filtered)
    index = RunIndex(require_runs_dir(runs_dir))
    listed = index.listing()
    slurm_state: dict[str, str] = {}
    # sacct is asked only about Slurm runs not known to have ended well (reconcile's own test)
    if any(x[2] in ("queued", "running", "crashed")
           and index.run(x[1]).status.get("executor") == "slurm" for x in listed):
        from ibtui.runs.slurm import reconcile

        slurm_state = reconcile(runs_dir)  # one sacct call; badly ended jobs become crashed
        listed = index.listing()
    total = len(listed)
    try:
        info = scheduler_info(runs_dir)
    except Exception:  # a damaged scheduler file is no scheduler
        info = None
    # about every run, whatever is shown
    warning = _queue_warning(runs_dir, [index.run(x[1]) for x in listed if x[2] == "queued"],
                             info)
    if where:
        listed = [x for x in listed if where(index.run(x[1]))]
    # the table shows the newest `limit` runs: only their rows are built, and only their logs
    # are checked for damage (json lists every run with its logs' damage)
    picked = listed[-limit:] if fmt != "json" and 0 < limit < len(listed) else listed
    shown = [index.run(x[1]) for x in picked]
    index.add_log_damage(shown)
    rows = []
    if any(r.status.get("executor") == "slurm" for r in shown):
        from ibtui.runs.slurm import job_id
    from ibtui.runs.store import REPEATED, heartbeat_silence

    for r in shown:
        st, s = r.status, r.summary or {}
        silent = heartbeat_silence(st) if r.state == "running" else None
        twice = r.state == "done" and any(REPEATED in d for d in r.damaged)  # two workers
        rows.append({
            "run": r.id, "state": "damaged" if twice else r.state, "phase": st.get("phase"),
            "epoch": st.get("epoch"),
            **({"no_heartbeat_s": round(silent)} if silent is not None else {}),
            "epochs": st.get("epochs") or r.spec.get("epochs"),
            "acc": s.get("clean_acc", st.get("test_acc")), "asr": s.get("asr", st.get("asr")),
            "score": s.get("score"), "error": st.get("error"), "damaged": r.damaged,
            **({"slurm_job": job_id(r.path), "slurm_state": slurm_state.get(r.id)}
               if st.get("executor") == "slurm" else {}),
        })
    if fmt == "json":
        print(json.dumps({"runs_dir": str(runs_dir), "runs": rows,
                          "scheduler": info, "warnings": [warning] if warning else []},
                         indent=2, default=str))
        return
    title = f"{len(listed)} runs in {runs_dir}"
    if where:
        title = f"{len(listed)} of {total} runs in {runs_dir} ({where.describe()})"
    t = Table(title=Text(one_line(title)))
    for c in ("run", "state", "phase", "epoch", "acc", "asr", "score", "note"):
        t.add_column(c)
    for row in rows:
        note = "; ".join(row["damaged"]) or (row["error"] or "")
        if row.get("slurm_job") and row["state"] in ("queued", "running"):
            note = f"slurm {row['slurm_job']} {row.get('slurm_state') or 'state unknown'}"
        label = row["state"] + (f", no heartbeat for {row['no_heartbeat_s']} s"
                                if "no_heartbeat_s" in row else "")
        t.add_row(lit(row["run"]), label, lit(row["phase"] or "-"),
                  f"{row['epoch'] or 0}/{row['epochs'] or '?'}", fmt_cell("acc", row["acc"]),
                  fmt_cell("asr", row["asr"]), fmt_cell("score", row["score"]), lit(note[:60]))
    console.print(t)
    if len(shown) < len(listed):
        counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(x[2] for x in listed).items()))
        say(f"the newest {len(shown)} of {len(listed)} runs ({counts}); --limit 0 lists all; narrow "
            "with --state, --attack, --dataset, --arch, --name, --tag", style="yellow")
    if info:
        workers = info.get("workers")
        say(f"scheduler pid {info.get('pid')}: "
            f"{len(workers) if isinstance(workers, list) else 0} workers")
    if warning:
        say(warning, style="yellow")


@app.command()
def show(run_key: str = typer.Argument(..., metavar="RUN"), runs_dir: Path = RunsDir,
         fmt: ListFormat = typer.Option("table", "--format", help="output format")) -> None:
    """A run's spec, metrics, MI table and summary, with its score's within-run interval and,
    when other seeds of its configuration are in the runs directory, the mean ± 95% interval
    over them."""
    from ibtui.analysis.stealth import run_intervals
    from ibtui.runs.store import find_run, load_run

    r = load_run(find_run(runs_dir, run_key))
    metrics, mi = r.metrics(), r.mi()
    boot = run_intervals(r.summary, mi)
    seeds = _replicas_of(runs_dir, r.spec) if r.spec else None
    ranked = board_rows(runs_dir, ids={r.id})
    validity = ({k: ranked[0][k] for k in ("valid", "why", "rank", "ties", "ties_n")} if ranked
                else {"valid": None, "why": None, "rank": None, "ties": [], "ties_n": 0})
    if fmt == "json":
        across = None if seeds is None else _group_json(seeds)
        print(json.dumps({"run": r.id, "state": r.state, "damaged": r.damaged, "status": r.status,
                          "spec": r.spec, "summary": r.summary, "metrics": metrics, "mi": mi,
                          "within_run": boot, "validity": validity, "across_seeds": across},
                         indent=2, default=str))
        return
    head = Text.assemble(Text(one_line(r.id), style="bold"), "  state ", (r.state, "bold"))
    if r.damaged:
        head.append("  " + one_line("; ".join(r.damaged)), style="red")
    if r.status.get("error"):
        head.append("\nerror: " + one_line(r.status["error"]))
    console.print(head, soft_wrap=True)
    spec = Table(title="spec", show_header=False)
    for k, v in r.spec.items():
        spec.add_row(lit(k), lit(v))
    console.print(spec)
    cols = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "asr", "ra", "seconds")
    if metrics:
        t = Table(title="metrics")
        for c in cols:
            t.add_column(c, justify="right")
        for m in metrics:
            t.add_row(*[fmt_cell(c, m.get(c)) for c in cols])
        console.print(t)
    for method in sorted({m["method"] for m in mi}):
        recs = [m for m in mi if m["method"] == method]
        subsets = list(dict.fromkeys(m["subset"] for m in recs))
        for term, label in (("xt", "I(X;T)"), ("ty", "I(T;Ŷ)")):
            t = Table(title=Text(one_line(f"{label} [nats], {method}{_scale_note(recs, term)}")))
            t.add_column("epoch", justify="right")
            for sub in subsets:
                t.add_column(lit(sub), justify="right")
            for e in sorted({m["epoch"] for m in recs}):
                vals = {m["subset"]: m.get("value") for m in recs if m["epoch"] == e and m["term"] == term}
                t.add_row(str(e), *[num(vals.get(sub)) for sub in subsets])
            console.print(t)
        _show_bracket(recs, method)
    if r.summary:
        s = r.summary
        keys = ["score", "d_xt", "d_ty", "clean_acc", "asr", "asr_all", "ra", "psnr", "ssim",
                "lpips", "lpips_note", "n_poison", "n_backdoor", "sanity_ok", "poison_seconds",
                "train_seconds", "mi_seconds", "wall_seconds"]
        t = Table(title="summary", show_header=False)
        for k in keys:
            if k in s:
                t.add_row(k, lit(fmt_cell(k, s[k])))
        console.print(t)
        _show_intervals(s, boot)
        _show_validity(validity, s)
        for c in s.get("sanity") or []:
            if c.get("ok", True) is False:
                say(f"sanity check failed: {c.get('check')} {c.get('subset', '')} "
                    f"e{c.get('epoch', '')}: {c.get('detail', '')}", style="yellow")
    if seeds is not None:
        _show_seeds(seeds)
    from ibtui.analysis.alarm import alarm_lines  # the backdoor alarm's verdict

    try:
        lines = alarm_lines(r)
    except Exception as e:  # noqa: BLE001 (a damaged classes.jsonl must not hide the rest of `show`)
        lines = [f"backdoor alarm: unavailable ({type(e).__name__}: {e})"]
    for line in lines:
        say(line)


def _scale_note(recs: list[dict], term: str) -> str:
    """How I(X;T) was measured, when at a measurement scale (mi_options.xt_scale)."""
    from ibtui.analysis.stealth import xt_scale_of

    scale = xt_scale_of(recs) if term == "xt" else None
    if scale is None:
        return ""
    return (f", on T + σ_m·Z with σ_m = {scale:g} × the representation's spread "
            "(xt_scale; docs/mi.md)")


def _show_bracket(recs: list[dict], method: str) -> None:
    """I(X;T) at the last checkpoint as [lower bound, estimate, ceiling], with the value at the
    network's own noise where the estimate was measured at a scale."""
    xt = [m for m in recs if m.get("term") == "xt" and isinstance(m.get("epoch"), int)]
    if not xt or not any(m.get("lower") is not None for m in xt):
        return
    last = max(m["epoch"] for m in xt)
    rows = [m for m in xt if m["epoch"] == last]
    own = any("network_noise_value" in (m.get("settings") or {}) for m in rows)
    t = Table(title=Text(one_line(f"I(X;T) bracket at epoch {last}, {method}: certified lower "
                                  "bound ≤ truth; estimate; ceiling (⚠ = within 0.1 nats)")))
    for c in ("subset", "lower", "estimate", "ceiling", *(["network noise only"] if own else [])):
        t.add_column(c, justify="left" if c == "subset" else "right")
    for m in rows:
        est = num(m.get("value")) + (" ⚠" if m.get("at_ceiling") else "")
        extra = [num((m.get("settings") or {}).get("network_noise_value"))] if own else []
        t.add_row(lit(m.get("subset")), num(m.get("lower")), est, num(m.get("ceiling")),
                  *extra)
    console.print(t)


def _show_validity(validity: dict, summary: dict) -> None:
    """`valid ✔ (rank 2 of the runs directory)` or `✖ backdoor not learned (ASR 0.10 < 0.9)`."""
    from ibtui.analysis.validity import RULES_TEXT

    if validity["valid"] is None:
        return
    if validity["valid"]:
        rank = f" (rank {validity['rank']})" if validity["rank"] else ""
        say(f"valid ✔{rank}: backdoor and clean task learned", style="green")
    else:
        say(f"✖ set aside, not ranked: {one_line(validity['why'])}", style="bold red")
    if board_ceiling(summary):
        say("⚠ part of the MI values this score was computed from sat at their ceiling "
            "(they are lower bounds)", style="yellow")
    say(RULES_TEXT, style="dim")


def board_ceiling(summary: dict) -> float | None:
    from ibtui.runs.board import ceiling_share

    share = ceiling_share(summary)
    return share if share else None


def _show_intervals(summary: dict, boot: dict | None) -> None:
    """`score 0.091 [0.083, 0.099] (95%, within-run bootstrap, B=500)` and D_XT, D_TY."""
    from ibtui.analysis.stealth import bootstrap_label, interval_text

    boot = boot or {}
    line = Text("score ", style="bold")
    line.append(interval_text(summary.get("score"), boot.get("score_interval")), style="bold")
    if board_ceiling(summary):
        line.append(" ⚠", style="yellow")
    line.append(" " + one_line(bootstrap_label(boot or None)))
    console.print(line, soft_wrap=True)
    if boot.get("score_interval") is not None:
        say(f"  D_XT {interval_text(summary.get('d_xt'), boot.get('d_xt_interval'))} · "
            f"D_TY {interval_text(summary.get('d_ty'), boot.get('d_ty_interval'))} · covers "
            "which images were drawn (first order) and the Monte Carlo error of the MI values, "
            "not the training seed", style="dim")


def _replicas_of(runs_dir: Path, spec: dict):
    """The configuration of `spec` across the seeds of its runs in `runs_dir` (through the
    runs directory's index), or None unless at least two of them have a score."""
    from ibtui.analysis.replicas import config_key, group_replicas

    key = config_key(spec)
    rows = [r for r in replica_rows(runs_dir) if r["spec"]["config"] == key]
    if sum(isinstance(r["score"], (int, float)) for r in rows) < 2:
        return None
    (group,) = group_replicas(rows)
    group.key = key
    return group


def _show_seeds(group) -> None:
    """The run's configuration across its seeds: mean ± 95% t-interval per metric."""
    seeds = ", ".join(map(str, sorted(group.seeds))) or "–"
    t = Table(title=Text(one_line(f"across seeds: configuration {group.key}, seeds {seeds} "
                                  "(mean ± 95% t-interval)")))
    for c in ("metric", "mean ± half-width", "interval", "n"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for m, name in (("score", "score"), ("d_xt", "D_XT"), ("d_ty", "D_TY"),
                    ("clean_acc", "clean acc"), ("asr", "ASR")):
        iv = group.metrics.get(m)
        if iv is None:
            t.add_row(name, NONE, NONE, "0")
            continue
        span = NONE if iv.lo is None else f"[{num(iv.lo)}, {num(iv.hi)}]"
        t.add_row(name, iv.text(), span, str(iv.n))
    console.print(t)
    say(f"runs: {one_line(', '.join(group.runs))}", style="dim")
    for run, first in group.duplicates.items():
        say(f"duplicate, counted once: {one_line(run)} repeats {one_line(first)} (same "
            "configuration and seed)", style="yellow")
    for run, why in group.set_aside.items():
        say(f"not counted: {one_line(run)}: {one_line(why)}", style="yellow")


def _executor_file_opt(what: str, default: str):
    return typer.Option(None, "--executor-file", help="a TOML file whose \\[executor] table gives "
                        f"the Slurm settings{what} (default: {default})")


@app.command()
def resume(runs: list[str] = typer.Argument(..., metavar="RUN..."), runs_dir: Path = RunsDir,
           jobs: int = JobsOpt, gpus: str | None = GpusOpt, threads: int = ThreadsOpt,
           detach: bool = typer.Option(False, "--detach",
                                       help="queue and follow; a background scheduler runs them"),
           executor: Executor | None = typer.Option(
               None, "--executor", help="move the runs to this executor (default: each goes back "
               "to the one it ran on); Slurm settings from --executor-file"),
           executor_file: Path | None = _executor_file_opt(" for --executor slurm",
                                                           "the cluster's defaults")) -> None:
    """Continue crashed, failed or interrupted runs from their last checkpoint (exit codes as `run`)."""
    from ibtui.runs import launch
    from ibtui.runs.store import find_run

    try:
        res = _plan(jobs, gpus, threads)
        cfg = executor_settings(executor, executor_file)
        paths = [find_run(runs_dir, k) for k in runs]
        launched = launch.resume(paths, runs_dir, executor=cfg)
    except IbtuiError as e:
        fail(e)
    if launched.slurm:
        console.print(launched.message("resumed"), highlight=False, markup=False)
    _launch(runs_dir, paths, res, detach)


def executor_settings(kind, file: Path | None):
    """The executor `--executor KIND [--executor-file FILE]` names, or None (no choice made)."""
    from ibtui.runs.slurm import executor_config, load_executor

    if kind is None and file is None:
        return None
    kind = _value(kind) if kind else None
    if file is None:
        return executor_config(None, "--executor", kind)
    if not Path(file).is_file():
        raise IbtuiError(f"--executor-file {file}: no such file; allowed: a TOML file with an "
                         "[executor] table")
    return load_executor(file, kind)


@app.command()
def cancel(runs: list[str] = typer.Argument(..., metavar="RUN..."), runs_dir: Path = RunsDir) -> None:
    """Cancel queued or running runs (a running worker stops at its next safe point)."""
    from ibtui.runs.scheduler import request_cancel
    from ibtui.runs.store import find_run

    paths = [find_run(runs_dir, k) for k in runs]  # every RUN checked before any is touched
    for p in paths:
        request_cancel(p)
        say(f"cancel requested: {p.name}")


@app.command("validate-mi")
def validate_mi(
    quick: bool = typer.Option(False, "--quick", help="smaller tasks and shorter schedules"),
    out: Path = typer.Option(Path("validate-mi.png"), "--out", help="PNG of estimates vs truth"),
    method: list[str] | None = typer.Option(None, "--method", help="only these estimators"),
) -> None:
    """Check every MI estimator against tasks with exact ground truth; print and plot."""
    from ibtui.runtime import passive_openmp

    passive_openmp()  # before torch loads (validate-mi computes in this process)
    try:  # the arguments are checked before anything is computed
        from ibtui.mi import METHODS

        unknown = [m for m in method or [] if m not in METHODS]
        if unknown:
            raise IbtuiError(f"--method {unknown[0]!r}: unknown estimator; allowed: "
                             f"{', '.join(METHODS)}")
        if out.suffix.lower() != ".png":
            raise IbtuiError(f"--out {str(out)!r}: allowed: a .png file path")
        if out.parent != Path("") and not out.parent.is_dir():
            raise IbtuiError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist; "
                             "allowed: a .png path in an existing folder")
        from ibtui.mi.validate import print_table, run_validation

        rows = run_validation(quick=quick, out_png=out, methods=method or None,
                              progress=lambda frac, detail="": err.print(f"[{frac:4.0%}] {detail}",
                                                                         highlight=False,
                                                                         markup=False))
    except IbtuiError as e:
        fail(e)
    print_table(rows)
    say(f"wrote {out}")


@attacks_app.command("list")
def attacks_list() -> None:
    """Every attack with its options, defaults and variants."""
    from ibtui.data.attacks import ATTACKS

    t = Table(title="attacks")
    for c in ("attack", "labels", "options (default)", "variants", "description"):
        t.add_column(c, overflow="fold")
    for name, cls in sorted(ATTACKS.items()):
        opts = ", ".join(f"{k}={o.default}" for k, o in cls.options.items())
        t.add_row(*(lit(c) for c in (name, cls.label_mode, opts, ", ".join(cls.variants) or "-",
                                     cls.description)))
    console.print(t)


@attacks_app.command("gallery")
def attacks_gallery(
    dataset: str = typer.Option("digits", "--dataset"),
    out: Path = typer.Option(Path("attack-gallery.png"), "--out"),
    attack: list[str] | None = typer.Option(None, "--attack", help="only these attacks"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Original, poisoned and amplified difference per attack, with PSNR/SSIM, as one PNG."""
    from ibtui.data.gallery import make_gallery

    try:
        if out.suffix.lower() != ".png":
            raise IbtuiError(f"--out {str(out)!r}: allowed: a .png file path (the gallery is "
                             "one PNG)")
        if not 0 <= seed < 2**31:
            raise IbtuiError(f"--seed {seed}: out of range; allowed: 0 to {2**31 - 1}")
        path = make_gallery(dataset=dataset, out=out, attacks=attack or None, seed=seed)
    except IbtuiError as e:
        fail(e)
    say(f"wrote {path}")


@data_app.command("list")
def data_list() -> None:
    """Registered datasets."""
    from ibtui.data.datasets import DATASETS

    t = Table(title="datasets")
    for c in ("dataset", "classes", "files needed", "description"):
        t.add_column(c)
    for name, info in sorted(DATASETS.items()):
        t.add_row(lit(name), str(info.num_classes), "yes" if info.needs_files else "no (embedded)",
                  lit(info.description))
    console.print(t)


@data_app.command("fetch")
def data_fetch(name: str = typer.Argument(...),
               root: Path | None = typer.Option(None, "--root",
                                                help="data directory (default $IBTUI_DATA or ./data)")) -> None:
    """Download a dataset into the data directory (checked against its published md5)."""
    from ibtui.data.datasets import DATASETS

    if name in DATASETS and not DATASETS[name].needs_files:
        say(f"{name} is embedded; nothing to fetch")
        return
    try:
        from ibtui.data.torchvision_sets import fetch_dataset

        if name not in DATASETS:
            raise IbtuiError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
        path = fetch_dataset(name, root)
    except IbtuiError as e:
        fail(e)
    say(f"{name} ready in {path}")


presets_app = typer.Typer(help="The paper's experiments as named presets (`ibtui run --preset "
                           "NAME`); `ibtui presets show NAME` prints one as an experiments.toml.",
                           invoke_without_command=True)
app.add_typer(presets_app, name="presets")


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., metavar="NAME")) -> None:
    """Print a preset as an experiments.toml to copy, edit and run."""
    from ibtui.presets import preset_text

    try:
        text = preset_text(name)
    except IbtuiError as e:
        fail(e)
    sys.stdout.write(text)


@presets_app.callback()
def presets(ctx: typer.Context) -> None:
    """The paper's experiments as named presets (`ibtui run --preset NAME`)."""
    from ibtui.presets import list_presets

    if ctx.invoked_subcommand is not None:
        return
    t = Table(title="presets")
    t.add_column("preset")
    t.add_column("description", overflow="fold")
    for name, desc in list_presets():
        t.add_row(lit(name), lit(desc))
    console.print(t)


FigureFormat = Literal["png", "pdf", "svg"]
ReportFormat = Literal["md", "latex", "csv"]


def _out_dir(out: Path) -> Path:
    """--out as a directory that exists (created if needed), or a one-line error."""
    if out.exists() and not out.is_dir():
        raise IbtuiError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)  # OSError (read-only, name too long): one line
    return out


@app.command()
def plot(runs: list[str] = typer.Argument(..., metavar="RUN..."), runs_dir: Path = RunsDir,
         out: Path = typer.Option(Path("figures"), "--out", help="output directory"),
         fmt: FigureFormat = typer.Option("png", "--format", help="figure format")) -> None:
    """MI curves, information plane, accuracy/ASR and class-loss figures (+ CSV of each)."""
    from ibtui.analysis.figures import plot_runs
    from ibtui.runs.store import find_run

    paths = [find_run(runs_dir, k) for k in runs]
    for p in plot_runs(paths, _out_dir(out), fmt):
        say(f"wrote {p}")


@app.command()
def tsne(run_key: str = typer.Argument(..., metavar="RUN"), runs_dir: Path = RunsDir,
         epochs: str | None = typer.Option(None, "--epochs", help="e.g. 1,6,12 (default: one per phase)"),
         out: Path | None = typer.Option(None, "--out", help="output directory (default: the run's figures/)"),
         fmt: FigureFormat = typer.Option("png", "--format", help="figure format")) -> None:
    """t-SNE maps of T with backdoor, target-clean and other samples distinguished."""
    from ibtui.analysis.tsne import tsne_figures
    from ibtui.runs.store import find_run

    try:
        ep = [int(e) for e in epochs.split(",") if e.strip()] if epochs else None
    except ValueError:
        fail(IbtuiError(f"--epochs {epochs!r}: expected comma-separated epoch numbers"))
    path = find_run(runs_dir, run_key)
    for p in tsne_figures(path, ep, _out_dir(out) if out is not None else None, fmt):
        say(f"wrote {p}")


def _runs_of(runs_dir: Path, full: bool = False) -> list:
    """Every run of an existing runs directory, for the analyses: through the index (the
    settings a leaderboard needs), or `full`: each run read with its whole spec (attack
    options, MI settings), for analyses that tell runs apart by those."""
    from ibtui.runs.store import list_runs, list_runs_cached, require_runs_dir

    runs_dir = require_runs_dir(runs_dir)
    return list_runs(runs_dir) if full else list_runs_cached(runs_dir)


@app.command()
def report(runs_dir: Path = RunsDir,
           group_by: str = typer.Option("dataset,poison_rate", "--group-by"),
           fmt: ReportFormat = typer.Option("md", "--format", help="table format"),
           scatter: Path | None = typer.Option(None, "--scatter",
                                               help="also save the perceptibility-vs-stealth scatter here"),
           paper: bool = typer.Option(False, "--paper", help="the paper's Table I values beside "
                                      "the measured ones (learned runs only), pairwise tests and "
                                      "the paper's claims")) -> None:
    """The paper's Table I from the runs directory (mean ± 95% t-interval over seeds, ties)."""
    from ibtui.analysis.report import perceptibility_scatter
    from ibtui.analysis.report import report as make_report
    from ibtui.errors import RunStoreError

    listed = _runs_of(runs_dir, full=paper)
    try:
        if paper:
            from ibtui.analysis.paper_table import paper_report

            print(paper_report(listed, str(runs_dir)))
            return
        print(make_report(listed, [g for g in group_by.split(",") if g], fmt))
    except RunStoreError as e:  # the analyses take runs: the directory is named here
        raise RunStoreError(f"{runs_dir}: {e}") from None
    if scatter:
        if scatter.exists() and not scatter.is_dir() and scatter.suffix.lower() not in (
                ".png", ".pdf", ".svg"):
            raise IbtuiError(f"--scatter {scatter}: exists and is not a directory or a figure")
        path = perceptibility_scatter(listed, scatter)
        say(f"wrote {path}" if path else "no run has perceptibility figures yet")


@app.command("alarm-eval")
def alarm_eval(runs_dir: Path = RunsDir,
               out: Path = typer.Option(Path("bench"), "--out", help="where the table and figure go")
               ) -> None:
    """Backdoor alarm vs activation clustering and spectral signatures over finished clean and
    poisoned runs (grid: bench/alarm_grid.toml): AUROC, target top-1, first epoch, FPR."""
    from ibtui.analysis.alarm_eval import run_eval

    command = " ".join(["ibtui", *sys.argv[1:]]) if sys.argv else "ibtui alarm-eval"
    listed = _runs_of(runs_dir, full=True)  # balanced runs are told apart by their options
    try:
        *paths, md = run_eval(listed, out, command)
    except IbtuiError as e:
        raise IbtuiError(f"{runs_dir}: {e}") from None
    print(md)
    say("wrote " + ", ".join(map(str, paths)))


@app.command()
def tui(runs_dir: Path = RunsDir, jobs: int = JobsOpt, gpus: str | None = GpusOpt,
        threads: int = ThreadsOpt,
        executor: Executor | None = typer.Option(
            None, "--executor", help="where Launch sends runs (compose can switch it) and where "
            "resumed runs go (default: Launch uses the \\[executor] kind of experiments.toml, else "
            "local; resume sends each run back to where it ran)"),
        executor_file: Path | None = _executor_file_opt("", "experiments.toml")) -> None:
    """Open the terminal app on a runs directory (Launch and resume use --jobs/--gpus/--threads)."""
    from ibtui.tui.app import run_app

    try:
        ids = check_launch(jobs, gpus, threads)
        executor_settings(executor, executor_file)  # a wrong table or file: said now, exit 2
    except IbtuiError as e:
        fail(e)
    if not (sys.stdin.isatty() and sys.__stdout__ is not None and sys.__stdout__.isatty()):
        fail(IbtuiError("ibtui tui: standard input and output must be a terminal; allowed: run "
                        "it in a terminal (over SSH: ssh -t); without one use `ibtui ls`, "
                        "`ibtui leaderboard` or `ibtui run`"))
    run_app(runs_dir, jobs=jobs or None, gpus=ids, threads=threads or None,
            executor=_value(executor) if executor else None, executor_file=executor_file)


def _setup_output() -> None:
    """Output never fails on encoding (a run dir named in other bytes, an ASCII-only
    terminal): what cannot be written is escaped. A closed stdout is an error of its own;
    stdout's write errors are told apart (OutputError)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (OSError, ValueError):
                pass
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        if sys.stderr is not None:
            print("error: standard output is closed; allowed: a terminal, file or pipe",
                  file=sys.stderr)
        sys.exit(EXIT_OUTPUT)
    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)


def cli() -> None:
    app()


if __name__ == "__main__":
    cli()
