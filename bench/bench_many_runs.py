"""Ten thousand runs: `ibtui ls`, `ibtui leaderboard --format json`, the app's start to first
rows and its idle CPU, at N runs against 2 runs, measured in one run of this script.

    .venv/bin/python bench/bench_many_runs.py [--src RUNS] [--n 1000 10000] [--idle 30]

--src: a runs directory with a few real finished runs (default: two are made first with a
tiny spec: digits, ResNet-18 width 8, 1 epoch, BadNets and Blend). The N synthetic runs are
copies of them (their small files; no checkpoint), varied in name, seed, poison rate, score and
creation time. Each command runs twice: without the runs index (it is deleted first) and
with it warm; the second call is the one compared. The app starts with the index warm.
The app runs headless (Textual's run_test) in a child process: first rows = process start
until the runs table has rows; idle CPU = the child's user+system CPU over --idle seconds on
the runs screen with every run finished, as a share of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SMALL = ("spec.toml", "status.json", "summary.json", "metrics.jsonl", "mi.jsonl",
         "classes.jsonl", "clusters.jsonl", "worker.log")
TINY = """[defaults]
dataset = "digits"
arch = "resnet18"
width = 8
epochs = 1
batch_size = 64
mi_epochs = [1]
mi_options = { k = 1 }

[[experiment]]
name = "tiny"
attack = ["badnets", "blend"]
poison_rate = 0.1
"""

APP_CHILD = r"""
import asyncio, sys, time
t0 = float(sys.argv[2])
from ibtui.tui.app import IbtuiApp
from ibtui.tui.widgets.tables import RunsTable

async def main():
    app = IbtuiApp(sys.argv[1])
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.screen.query_one(RunsTable)
        while not table.row_count:
            await asyncio.sleep(0.01)
        first = time.time() - t0
        await asyncio.sleep(3)  # settle: the first full poll and layout
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(float(sys.argv[3]))
        cpu = (time.process_time() - c0) / (time.perf_counter() - w0)
        print(f"{first} {cpu} {table.row_count}")
        app.exit()

asyncio.run(main())
"""


def make_real_runs(dest: Path) -> Path:
    spec = dest / "tiny.toml"
    spec.write_text(TINY)
    runs = dest / "real"
    subprocess.run([PY, "-m", "ibtui.cli", "run", str(spec), "--runs-dir", str(runs),
                    "--jobs", "1", "--threads", "1"], check=True, stdout=subprocess.DEVNULL)
    return runs


def make_runs(src: Path, dest: Path, n: int) -> None:
    """n runs: copies of src's finished runs, varied."""
    dest.mkdir(parents=True)
    bases = []
    for p in sorted(src.iterdir()):
        if (p / "summary.json").is_file():
            files = {f: (p / f).read_bytes() for f in SMALL if (p / f).is_file()}
            bases.append((p.name, files))
    rates = (0.01, 0.05, 0.1, 0.2)
    t0 = time.time() - 10 * 86400
    for i in range(n):
        base_id, files = bases[i % len(bases)]
        seed, rate, sweep = i % 5, rates[(i // 5) % len(rates)], i // 20
        rid = f"sweep{sweep}-{base_id}-p{rate}-s{seed}-{i}"
        d = dest / rid
        d.mkdir()
        for f, data in files.items():
            if f == "spec.toml":
                text = data.decode()
                text = text.replace('name = "tiny"', f'name = "sweep{sweep}"')
                text = text.replace("seed = 0", f"seed = {seed}")
                text = text.replace("poison_rate = 0.1", f"poison_rate = {rate}")
                data = text.encode()
            elif f == "status.json":
                st = json.loads(data)
                st["created"] = t0 + i
                data = json.dumps(st, indent=2).encode()
            elif f == "summary.json":
                s = json.loads(data)
                s["score"] = (s.get("score") or 0.5) * (1 + 0.01 * ((i * 7919) % 101 - 50))
                s["seed"], s["poison_rate"], s["name"] = seed, rate, f"sweep{sweep}"
                data = json.dumps(s, indent=2).encode()
            (d / f).write_bytes(data)
    old = time.time() - 3600  # nothing was written just now
    for root, _, names in os.walk(dest):
        for f in names:
            os.utime(os.path.join(root, f), (old, old))


def cli_time(runs: Path, *args: str) -> tuple[float, float]:
    """(first call: no index yet, second call: index warm) wall seconds of
    `ibtui ARGS --runs-dir runs`."""
    (runs / ".ibtui-index").unlink(missing_ok=True)
    out = []
    for _ in range(2):
        t = time.perf_counter()
        subprocess.run([PY, "-m", "ibtui.cli", *args, "--runs-dir", str(runs)], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "160"})
        out.append(time.perf_counter() - t)
    return out[0], out[1]


def app_time(runs: Path, idle: float) -> tuple[float, float, int]:
    t0 = time.time()
    r = subprocess.run([PY, "-c", APP_CHILD, str(runs), str(t0), str(idle)], check=True,
                       capture_output=True, text=True)
    first, cpu, rows = r.stdout.split()[-3:]
    return float(first), float(cpu), int(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, help="runs directory with a few finished runs")
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = a.src or make_real_runs(tmp)
        two = tmp / "two"
        shutil.copytree(src, two, ignore=shutil.ignore_patterns("checkpoint.pt", "artifacts"))
        results = {}
        for n in [2, *a.n]:
            runs = two if n == 2 else tmp / f"n{n}"
            if n != 2:
                t = time.perf_counter()
                make_runs(src, runs, n)
                print(f"made {n} runs in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            ls = cli_time(runs, "ls")
            board = cli_time(runs, "leaderboard", "--format", "json")
            first, cpu, rows = app_time(runs, a.idle)
            results[n] = dict(ls=ls, board=board, first=first, cpu=cpu, rows=rows)
            print(f"N={n}: ls {ls[0]:.2f}/{ls[1]:.2f} s, leaderboard {board[0]:.2f}/"
                  f"{board[1]:.2f} s, app first rows {first:.2f} s ({rows} rows in the table), "
                  f"idle CPU {cpu:.1%} of a core", file=sys.stderr)
        base = results[2]
        print("| runs | `ls` cold / warm (s) | warm vs 2 | `leaderboard --format json` cold / "
              "warm (s) | warm vs 2 | app first rows (s) | app idle CPU (one core) |")
        print("|---|---|---|---|---|---|---|")
        for n, r in results.items():
            print(f"| {n:,} | {r['ls'][0]:.2f} / {r['ls'][1]:.2f} | "
                  f"{r['ls'][1] / base['ls'][1]:.2f}× | {r['board'][0]:.2f} / "
                  f"{r['board'][1]:.2f} | {r['board'][1] / base['board'][1]:.2f}× | "
                  f"{r['first']:.2f} | {r['cpu']:.1%} |")


if __name__ == "__main__":
    main()
