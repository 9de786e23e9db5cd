"""Ten thousand runs: `ibtui ls`, `ibtui leaderboard --format json` (and `--replicas`,
`ibtui report`, compared with `ls`), the app's start to first
rows and its idle CPU, at N runs against 2 runs, measured in one run of this script.

    .venv/bin/python bench/bench_many_runs.py [--src RUNS] [--n 1000 10000] [--idle 30]
                                              [--repeat 5] [--no-app]

--src: a runs directory with a few real finished runs (default: two are made first with a
tiny spec: digits, ResNet-18 width 8, 1 epoch, BadNets and Blend). The N synthetic runs are
copies of them (their small files; no checkpoint), varied in name, seed, poison rate, score and
creation time. Each command runs first without the runs index (its database, in a cache directory of this
run's own, is deleted first), then
--repeat times with it warm, the warm calls of every N interleaved (round r calls 2, 1,000 and
10,000 runs in turn, so that all see the same load from other processes); the medians of the
warm calls are compared. Each call is timed in wall seconds and in CPU seconds (the child's
user + system time, from getrusage: what other processes on the machine inflate the least).
The app starts with the index warm.
The app runs headless (Textual's run_test) in a child process: first rows = process start
until the runs table has rows; idle CPU = the child's user+system CPU over --idle seconds on
the runs screen with every run finished, as a share of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
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


def cli_call(runs: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one `ibtui ARGS --runs-dir runs`."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([PY, "-m", "ibtui.cli", *args, "--runs-dir", str(runs)], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "160"})
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def cli_cold(runs: Path, *args: str) -> tuple[float, float]:
    """cli_call without the runs index (its database deleted first); it leaves it warm."""
    from ibtui.runs.store import index_db_path

    index_db_path(runs).unlink(missing_ok=True)
    return cli_call(runs, *args)


def app_time(runs: Path, idle: float) -> tuple[float, float, int]:
    t0 = time.time()
    r = subprocess.run([PY, "-c", APP_CHILD, str(runs), str(t0), str(idle)], check=True,
                       capture_output=True, text=True)
    first, cpu, rows = r.stdout.split()[-3:]
    return float(first), float(cpu), int(rows)


COMMANDS = {"ls": ("ls",), "board": ("leaderboard", "--format", "json"),
            "replicas": ("leaderboard", "--replicas", "--format", "json"), "report": ("report",)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, help="runs directory with a few finished runs")
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    ap.add_argument("--repeat", type=int, default=5, help="warm calls of each command and N")
    ap.add_argument("--no-app", action="store_true", help="only the CLI commands")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from ibtui.runs.store import CACHE_ENV

        os.environ[CACHE_ENV] = str(tmp / "cache")  # the index databases: this run's own
        src = a.src or make_real_runs(tmp)
        two = tmp / "two"
        shutil.copytree(src, two, ignore=shutil.ignore_patterns("checkpoint.pt", "artifacts"))
        dirs = {2: two}
        for n in a.n:
            dirs[n] = tmp / f"n{n}"
            t = time.perf_counter()
            make_runs(src, dirs[n], n)
            print(f"made {n} runs in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        cold = {(n, c): cli_cold(runs, *args) for n, runs in dirs.items()
                for c, args in COMMANDS.items()}
        warm: dict[tuple, list] = {k: [] for k in cold}
        for _ in range(a.repeat):  # interleaved: every N sees the same load
            for n, runs in dirs.items():
                for c, args in COMMANDS.items():
                    warm[(n, c)].append(cli_call(runs, *args))
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for k, v in warm.items()}
        app = {n: app_time(runs, a.idle) for n, runs in dirs.items()} if not a.no_app else {}
        for n in dirs:
            line = "; ".join(
                f"{c} cold {cold[(n, c)][0]:.2f} s (CPU {cold[(n, c)][1]:.2f}), warm median "
                f"{med[(n, c)][0]:.2f} s (CPU {med[(n, c)][1]:.3f}; all "
                + " ".join(f"{x:.3f}" for _, x in warm[(n, c)]) + ")" for c in COMMANDS)
            if n in app:
                first, cpu, rows = app[n]
                line += (f"; app first rows {first:.2f} s ({rows} rows in the table), "
                         f"idle CPU {cpu:.1%} of a core")
            print(f"N={n}: {line}", file=sys.stderr)
        print("| runs | `ls` cold / warm (s) | warm vs 2: wall, CPU | `leaderboard --format json` "
              "cold / warm (s) | warm vs 2: wall, CPU | app first rows (s) | app idle CPU "
              "(one core) |")
        print("|---|---|---|---|---|---|---|")
        for n in dirs:
            cells = []
            for c in ("ls", "board"):
                w, cpu = med[(n, c)]
                bw, bcpu = med[(2, c)]
                cells += [f"{cold[(n, c)][0]:.2f} / {w:.2f} (CPU {cpu:.2f})",
                          f"{w / bw:.2f}×, **{cpu / bcpu:.2f}×**"]
            first, cpu, _ = app.get(n, (float("nan"),) * 3)
            print(f"| {n:,} | " + " | ".join(cells) + f" | {first:.2f} | {cpu:.1%} |")
        print("\n| runs | `leaderboard --replicas` warm (s) | vs warm `ls` | `report` warm (s) "
              "| vs warm `ls` |")
        print("|---|---|---|---|---|")
        for n in dirs:
            ls_w = med[(n, "ls")][0]
            print(f"| {n:,} | " + " | ".join(
                f"{med[(n, c)][0]:.2f} | {med[(n, c)][0] / ls_w:.2f}×"
                for c in ("replicas", "report")) + " |")


if __name__ == "__main__":
    main()
