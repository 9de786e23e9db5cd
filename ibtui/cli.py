"""The `ibtui` command. Thin: parse, call, print. User errors exit with code 2, no traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ibtui.errors import IbtuiError

app = typer.Typer(add_completion=False, no_args_is_help=False,
                  help="Backdoor training dynamics through the information bottleneck.")
attacks_app = typer.Typer(help="Attacks: list them, draw the gallery.")
data_app = typer.Typer(help="Datasets: list, fetch.")
app.add_typer(attacks_app, name="attacks")
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

RunsDir = typer.Option(Path("runs"), "--runs-dir", help="runs directory")


def fail(e: IbtuiError) -> None:
    err.print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
    raise typer.Exit(e.exit_code)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, runs_dir: Path = RunsDir) -> None:
    """With no command: open the app on the runs directory."""
    if ctx.invoked_subcommand is None:
        tui(runs_dir, jobs=0, gpus=None, threads=0)


# --- run ------------------------------------------------------------------------------------

def _fmt(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


EXIT_RUNS_FAILED = 1  # some run ended failed, crashed, cancelled or interrupted (2 = user error)

JobsOpt = typer.Option(0, "--jobs", "-j", help="workers at once (default: one per GPU, "
                       "else one per two CPU cores)")
GpusOpt = typer.Option(None, "--gpus", help="GPU ids, e.g. 0,1 (default: all visible; '' = none)")
ThreadsOpt = typer.Option(0, "--threads", help="CPU threads per worker (default: cores / jobs; "
                          "a run's own `threads` field wins)")


def _plan(jobs: int, gpus: str | None, threads: int):
    from ibtui.runs.resources import plan_resources

    if jobs < 0 or threads < 0:
        raise IbtuiError(f"--jobs and --threads must be 0 (automatic) or positive, "
                         f"not {jobs if jobs < 0 else threads}")
    return plan_resources(jobs, gpus, threads)


def _launch(runs_dir: Path, paths: list[Path], res, detach: bool) -> None:
    """Follow the runs to their end, print the leaderboard, exit 1 if any did not end done."""
    from ibtui.progress import follow, unfinished
    from ibtui.runs.scheduler import ensure_scheduler

    if detach:
        pid = ensure_scheduler(runs_dir, res.jobs, res.gpus, res.threads)
        console.print(f"queued {len(paths)} runs; " + (f"scheduler started (pid {pid}, "
                      f"{res.describe()})" if pid else "the running scheduler picks them up"),
                      highlight=False)
    follow(runs_dir, paths, res, console, detach=detach)
    _print_board(runs_dir, {p.name for p in paths})
    bad = unfinished(paths)
    for name, state, why in bad:
        err.print(f"{name}: {state}" + (f" ({why})" if why else "")
                  + f"; log: {runs_dir / name / 'worker.log'}", markup=False, highlight=False,
                  soft_wrap=True)
    if bad:
        err.print(f"{len(bad)} of {len(paths)} runs did not finish", markup=False)
        raise typer.Exit(EXIT_RUNS_FAILED)


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
) -> None:
    """Run every experiment of FILE: one worker per run, live progress, then the leaderboard.

    Exit code: 0 when every run ended done, 1 when any failed, crashed or was interrupted
    (each is named with its worker.log), 2 for a user error."""
    from ibtui.runs.scheduler import create_runs
    from ibtui.spec import load_spec

    try:
        if preset:
            from ibtui.presets import preset_path

            file = preset_path(preset)
        specs = load_spec(file)
        if only:
            names = sorted({s.values["name"] for s in specs})
            unknown = [n for n in only if n not in names]
            if unknown:
                raise IbtuiError(f"{file}: --only {unknown[0]!r}: no such experiment; allowed: {', '.join(names)}")
            specs = [s for s in specs if s.values["name"] in only]
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
        paths = create_runs(specs, runs_dir)
    except IbtuiError as e:
        fail(e)
    _launch(runs_dir, paths, res, detach)


# --- reading runs -----------------------------------------------------------------------------

BOARD_COLUMNS = ["run", "attack", "dataset", "arch", "rate", "seed", "state", "score", "d_xt",
                 "d_ty", "clean_acc", "asr", "ra", "psnr", "ssim", "wall_s"]


def board_rows(runs_dir: Path, ids: set[str] | None = None) -> list[dict]:
    from ibtui.runs.store import list_runs

    rows = []
    for r in list_runs(runs_dir):
        if ids is not None and r.id not in ids:
            continue
        s = r.summary or {}
        sp = r.spec
        rows.append({
            "run": r.id, "attack": sp.get("attack"), "dataset": sp.get("dataset"),
            "arch": sp.get("arch"), "rate": sp.get("poison_rate"), "seed": sp.get("seed"),
            "state": r.state if not r.damaged else f"{r.state} ({'; '.join(r.damaged)})",
            "score": s.get("score"), "d_xt": s.get("d_xt"), "d_ty": s.get("d_ty"),
            "clean_acc": s.get("clean_acc"), "asr": s.get("asr"), "ra": s.get("ra"),
            "psnr": s.get("psnr"), "ssim": s.get("ssim"), "wall_s": s.get("wall_seconds"),
        })
    return rows


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def _num(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")


def _sort_rows(rows: list[dict], column: str) -> list[dict]:
    if column not in BOARD_COLUMNS:
        raise IbtuiError(f"--sort {column!r}: unknown column; allowed: {', '.join(BOARD_COLUMNS)}")
    present = [r for r in rows if r[column] is not None]
    missing = [r for r in rows if r[column] is None]
    return sorted(present, key=lambda r: r[column]) + missing


def _print_board(runs_dir: Path, ids: set[str] | None = None, sort: str = "score",
                 fmt: str = "table") -> None:
    rows = _sort_rows(board_rows(runs_dir, ids), sort)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        import csv

        w = csv.DictWriter(sys.stdout, fieldnames=BOARD_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    elif fmt == "md":
        print("| " + " | ".join(BOARD_COLUMNS) + " |")
        print("|" + "---|" * len(BOARD_COLUMNS))
        for r in rows:
            print("| " + " | ".join(_cell(r[c]) for c in BOARD_COLUMNS) + " |")
    else:
        # attack, dataset, arch, rate and seed are spelled out in the run id: keep the table narrow
        cols = ["run", "state", "score", "d_xt", "d_ty", "clean_acc", "asr", "ra", "psnr", "ssim"]
        if console.width < 110:  # an 80-column terminal: the essentials (all columns: --format)
            cols = cols[:7]
        t = Table(title="Stealth-score leaderboard (lower = stealthier)")
        for c in cols:
            t.add_column("acc" if c == "clean_acc" else c,
                         justify="left" if c in ("run", "state") else "right",
                         overflow="fold", no_wrap=c != "run", min_width=20 if c == "run" else None)
        for r in rows:
            t.add_row(*[_cell(r[c]) if c in ("run", "state") else _num(r[c]) for c in cols])
        console.print(t)


@app.command()
def leaderboard(
    runs_dir: Path = RunsDir,
    sort: str = typer.Option("score", "--sort", help="column to sort by"),
    fmt: str = typer.Option("table", "--format", help="table | csv | md | json"),
) -> None:
    """The stealth-score leaderboard of every run."""
    if fmt not in ("table", "csv", "md", "json"):
        fail(IbtuiError(f"--format {fmt!r}: allowed: table, csv, md, json"))
    try:
        _print_board(runs_dir, None, sort, fmt)
    except IbtuiError as e:
        fail(e)


@app.command("ls")
def ls(runs_dir: Path = RunsDir) -> None:
    """List runs with their state and progress."""
    from ibtui.runs.scheduler import scheduler_info
    from ibtui.runs.store import list_runs

    runs = list_runs(runs_dir)
    t = Table(title=f"{len(runs)} runs in {runs_dir}")
    for c in ("run", "state", "phase", "epoch", "acc", "asr", "score", "note"):
        t.add_column(c)
    for r in runs:
        st, s = r.status, r.summary or {}
        note = "; ".join(r.damaged) or (st.get("error") or "")
        t.add_row(r.id, r.state, str(st.get("phase", "-")),
                  f"{st.get('epoch', 0)}/{st.get('epochs') or r.spec.get('epochs', '?')}",
                  _cell(s.get("clean_acc", st.get("test_acc"))), _cell(s.get("asr", st.get("asr"))),
                  _cell(s.get("score")), note[:60])
    console.print(t)
    info = scheduler_info(runs_dir)
    if info:
        console.print(f"scheduler pid {info['pid']}: {len(info.get('workers', []))} workers")


@app.command()
def show(run_key: str = typer.Argument(..., metavar="RUN"), runs_dir: Path = RunsDir) -> None:
    """A run's spec, metrics, MI table and summary."""
    from ibtui.runs.store import find_run, load_run

    try:
        r = load_run(find_run(runs_dir, run_key))
    except IbtuiError as e:
        fail(e)
    console.print(f"[bold]{r.id}[/]  state [bold]{r.state}[/]"
                  + (f"  [red]{'; '.join(r.damaged)}[/]" if r.damaged else "")
                  + (f"\nerror: {r.status.get('error')}" if r.status.get("error") else ""))
    spec = Table(title="spec", show_header=False)
    for k, v in r.spec.items():
        spec.add_row(k, str(v))
    console.print(spec)
    metrics = r.metrics()
    if metrics:
        t = Table(title="metrics")
        for c in ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "asr", "ra", "seconds"):
            t.add_column(c, justify="right")
        for m in metrics:
            t.add_row(*[_cell(m.get(c)) for c in ("epoch", "lr", "train_loss", "train_acc", "test_loss",
                                                   "test_acc", "asr", "ra", "seconds")])
        console.print(t)
    mi = r.mi()
    if mi:
        methods = sorted({m["method"] for m in mi})
        for method in methods:
            recs = [m for m in mi if m["method"] == method]
            subsets = list(dict.fromkeys(m["subset"] for m in recs))
            for term, label in (("xt", "I(X;T)"), ("ty", "I(T;Ŷ)")):
                t = Table(title=f"{label} [nats], {method}")
                t.add_column("epoch", justify="right")
                for s in subsets:
                    t.add_column(s, justify="right")
                for e in sorted({m["epoch"] for m in recs}):
                    vals = {m["subset"]: m["value"] for m in recs if m["epoch"] == e and m["term"] == term}
                    t.add_row(str(e), *[_cell(vals.get(s)) for s in subsets])
                console.print(t)
    if r.summary:
        s = r.summary
        keys = ["score", "d_xt", "d_ty", "clean_acc", "asr", "asr_all", "ra", "psnr", "ssim",
                "lpips", "lpips_note", "n_poison", "n_backdoor", "sanity_ok", "poison_seconds",
                "train_seconds", "mi_seconds", "wall_seconds"]
        t = Table(title="summary", show_header=False)
        for k in keys:
            if k in s:
                t.add_row(k, _cell(s[k]))
        console.print(t)
        bad = [c for c in s.get("sanity", []) if not c.get("ok", True)]
        for c in bad:
            console.print(f"[yellow]sanity check failed:[/] {c.get('check')} {c.get('subset', '')} "
                          f"e{c.get('epoch', '')}: {c.get('detail', '')}")


@app.command()
def resume(runs: list[str] = typer.Argument(..., metavar="RUN..."), runs_dir: Path = RunsDir,
           jobs: int = JobsOpt, gpus: str | None = GpusOpt, threads: int = ThreadsOpt,
           detach: bool = typer.Option(False, "--detach",
                                       help="queue and follow; a background scheduler runs them")) -> None:
    """Continue crashed, failed or interrupted runs from their last checkpoint (exit codes as `run`)."""
    from ibtui.runs.scheduler import set_queued
    from ibtui.runs.store import find_run

    try:
        res = _plan(jobs, gpus, threads)
        paths = [find_run(runs_dir, k) for k in runs]
        for p in paths:
            set_queued(p)
    except IbtuiError as e:
        fail(e)
    _launch(runs_dir, paths, res, detach)


@app.command()
def cancel(runs: list[str] = typer.Argument(..., metavar="RUN..."), runs_dir: Path = RunsDir) -> None:
    """Cancel queued or running runs (a running worker stops at its next safe point)."""
    from ibtui.runs.scheduler import request_cancel
    from ibtui.runs.store import find_run

    try:
        for k in runs:
            request_cancel(find_run(runs_dir, k))
            console.print(f"cancel requested: {k}")
    except IbtuiError as e:
        fail(e)


@app.command("validate-mi")
def validate_mi(
    quick: bool = typer.Option(False, "--quick", help="smaller tasks and shorter schedules"),
    out: Path = typer.Option(Path("validate-mi.png"), "--out", help="PNG of estimates vs truth"),
    method: list[str] | None = typer.Option(None, "--method", help="only these estimators"),
) -> None:
    """Check every MI estimator against tasks with exact ground truth; print and plot."""
    from ibtui.mi.validate import print_table, run_validation

    try:
        rows = run_validation(quick=quick, out_png=out, methods=method or None,
                              progress=lambda frac, detail="": err.print(f"[{frac:4.0%}] {detail}",
                                                                         highlight=False))
    except IbtuiError as e:
        fail(e)
    print_table(rows)
    console.print(f"wrote {out}")


@attacks_app.command("list")
def attacks_list() -> None:
    """Every attack with its options, defaults and variants."""
    from ibtui.data.attacks import ATTACKS

    t = Table(title="attacks")
    for c in ("attack", "labels", "options (default)", "variants", "description"):
        t.add_column(c, overflow="fold")
    for name, cls in sorted(ATTACKS.items()):
        opts = ", ".join(f"{k}={o.default}" for k, o in cls.options.items())
        t.add_row(name, cls.label_mode, opts, ", ".join(cls.variants) or "-", cls.description)
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
        path = make_gallery(dataset=dataset, out=out, attacks=attack or None, seed=seed)
    except IbtuiError as e:
        fail(e)
    console.print(f"wrote {path}")


@data_app.command("list")
def data_list() -> None:
    """Registered datasets."""
    from ibtui.data.datasets import DATASETS

    t = Table(title="datasets")
    for c in ("dataset", "classes", "files needed", "description"):
        t.add_column(c)
    for name, info in sorted(DATASETS.items()):
        t.add_row(name, str(info.num_classes), "yes" if info.needs_files else "no (embedded)",
                  info.description)
    console.print(t)


@data_app.command("fetch")
def data_fetch(name: str = typer.Argument(...),
               root: Path | None = typer.Option(None, "--root",
                                                help="data directory (default $IBTUI_DATA or ./data)")) -> None:
    """Download a dataset into the data directory (checked against its published md5)."""
    from ibtui.data.datasets import DATASETS

    if name in DATASETS and not DATASETS[name].needs_files:
        console.print(f"{name} is embedded; nothing to fetch")
        return
    try:
        from ibtui.data.torchvision_sets import fetch_dataset

        if name not in DATASETS:
            raise IbtuiError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
        path = fetch_dataset(name, root)
    except IbtuiError as e:
        fail(e)
    console.print(f"{name} ready in {path}")


@app.command()
def presets() -> None:
    """The paper's experiments as named presets (`ibtui run --preset NAME`)."""
    from ibtui.presets import list_presets

    t = Table(title="presets")
    t.add_column("preset")
    t.add_column("description", overflow="fold")
    for name, desc in list_presets():
        t.add_row(name, desc)
    console.print(t)


@app.command()
def plot(runs: list[str] = typer.Argument(..., metavar="RUN..."), runs_dir: Path = RunsDir,
         out: Path = typer.Option(Path("figures"), "--out"),
         fmt: str = typer.Option("png", "--format", help="png | pdf | svg")) -> None:
    """MI curves, information plane, accuracy/ASR and class-loss figures (+ CSV of each)."""
    from ibtui.analysis.figures import plot_runs
    from ibtui.runs.store import find_run

    try:
        paths = plot_runs([find_run(runs_dir, k) for k in runs], out, fmt)
    except IbtuiError as e:
        fail(e)
    for p in paths:
        console.print(f"wrote {p}")


@app.command()
def tsne(run_key: str = typer.Argument(..., metavar="RUN"), runs_dir: Path = RunsDir,
         epochs: str | None = typer.Option(None, "--epochs", help="e.g. 1,6,12 (default: one per phase)"),
         out: Path | None = typer.Option(None, "--out", help="output directory"),
         fmt: str = typer.Option("png", "--format")) -> None:
    """t-SNE maps of T with backdoor, target-clean and other samples distinguished."""
    from ibtui.analysis.tsne import tsne_figures
    from ibtui.runs.store import find_run

    try:
        ep = [int(e) for e in epochs.split(",") if e.strip()] if epochs else None
    except ValueError:
        fail(IbtuiError(f"--epochs {epochs!r}: expected comma-separated epoch numbers"))
    try:
        paths = tsne_figures(find_run(runs_dir, run_key), ep, out, fmt)
    except IbtuiError as e:
        fail(e)
    for p in paths:
        console.print(f"wrote {p}")


@app.command()
def report(runs_dir: Path = RunsDir,
           group_by: str = typer.Option("dataset,poison_rate", "--group-by"),
           fmt: str = typer.Option("md", "--format", help="md | latex | csv"),
           scatter: Path | None = typer.Option(None, "--scatter",
                                               help="also save the perceptibility-vs-stealth scatter here")) -> None:
    """The paper's Table I from the runs directory (mean ± std over seeds)."""
    from ibtui.analysis.report import perceptibility_scatter
    from ibtui.analysis.report import report as make_report

    try:
        print(make_report(runs_dir, [g for g in group_by.split(",") if g], fmt))
        if scatter:
            path = perceptibility_scatter(runs_dir, scatter)
            console.print(f"wrote {path}" if path else "no run has perceptibility figures yet",
                          highlight=False)
    except IbtuiError as e:
        fail(e)


@app.command()
def tui(runs_dir: Path = RunsDir, jobs: int = JobsOpt, gpus: str | None = GpusOpt,
        threads: int = ThreadsOpt) -> None:
    """Open the terminal app on a runs directory (Launch and resume use --jobs/--gpus/--threads)."""
    from ibtui.runs.resources import parse_gpus
    from ibtui.tui.app import run_app

    run_app(runs_dir, jobs=jobs or None, gpus=parse_gpus(gpus), threads=threads or None)


def cli() -> None:
    app()


if __name__ == "__main__":
    cli()
