"""An MI checkpoint against its cost floor, today's path against the former one, in one run.

    .venv/bin/python bench/bench_mi_floor.py [experiments.toml] [--epochs 3] [--seeds 3] [--threads 1]

The first run of the file (the default run: BadNets on digits, ResNet-18 width 8, k = 4) is
poisoned and trained for `--epochs` epochs the worker's way; then, on that model:
- floor: k noisy forward passes of each distinct image of the MI subsets (the union), through
  the model as trained, at the fastest of several batch sizes;
- former: the checkpoint as it was (forward passes at 256 images, BatchNorm applied as a layer);
- now: the checkpoint as the worker runs it (BatchNorm folded into the convolutions, the
  device's batch size);
each with the representation statistics (what worker.log counts as MI), `--seeds` noise seeds
each, interleaved (former, now, former, ...). Prints every value, former against now, the
difference of their means over the seeds in units of its standard error (the spread over
seeds: forward-pass noise and Monte Carlo together), the times against the floor, and the MI
share of the default run's wall time projected from the measured epoch, checkpoint, per-class
statistics and poisoning times.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default="experiments.toml")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs before measuring")
    ap.add_argument("--seeds", type=int, default=3, help="noise seeds of each checkpoint path")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    from ibtui.runtime import configure_worker  # before torch, as in a worker

    runtime = configure_worker(a.threads)
    import numpy as np
    import torch

    import ibtui.experiment.measure as measure
    import ibtui.mi.checkpoint as ckpt
    from ibtui.experiment.measure import class_statistics, mi_subsets, representation_stats
    from ibtui.experiment.prepare import prepare_data
    from ibtui.experiment.run import Experiment, build_training, on_device
    from ibtui.runs.scheduler import create_runs
    from ibtui.spec import load_spec
    from ibtui.train import evaluate, seed_everything, train_epoch

    spec = load_spec(Path(a.file))[0]
    dev = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        (run_dir,) = create_runs([spec], Path(tmp) / "runs")
        exp = Experiment(run_dir)
        s = exp.spec
        seed_everything(s["seed"])
        data, poison_s, _ = prepare_data(s, run_dir, "cpu", lambda *_: None)
        model, opt, sched, gen = build_training(s, exp.num_classes, data.x_train, dev)
        xt, yt, xs, ys, xtrig = on_device(data, dev)
        epoch_s = []
        for _ in range(a.epochs):
            t = time.perf_counter()
            train_epoch(model, opt, xt, yt, s["batch_size"], gen, exp.num_classes)
            loss, _, _ = evaluate(model, xs, ys)
            evaluate(model, xtrig, ys)
            sched.step(loss)
            epoch_s.append(time.perf_counter() - t)

        opts, methods = s["mi_options"], s["mi_method"]
        k = opts["k"] if "noise-aware" in methods else 1
        subsets = mi_subsets(s, data)
        union = np.unique(np.concatenate(list(subsets.values())))
        model.eval()
        floor: dict[int, float] = {}
        for _ in range(2):
            for b in (32, 64, 128, 256, 1024):
                t = time.perf_counter()
                ckpt.forward_draws(model, xt, union, k, b, False)
                floor[b] = min(floor.get(b, math.inf), time.perf_counter() - t)
        best = min(floor, key=floor.get)

        real = (ckpt.folded_copy, measure.folded_copy, measure.default_forward_batch)
        epoch = a.epochs

        def checkpoint(path: str, seed: int) -> tuple[list[dict], float]:
            o = dict(opts)
            if path == "former":  # no folding, 256 images a pass (1024 for representations)
                ckpt.folded_copy = measure.folded_copy = lambda m: m
                measure.default_forward_batch = lambda device: 1024
                o["forward_batch"] = 256
            try:
                t = time.perf_counter()
                recs = ckpt.estimate_checkpoint(model, xt, subsets, methods=methods, options=o,
                                                seed=seed, device=dev)
                with torch.random.fork_rng():
                    representation_stats(s, run_dir, epoch, model, xt, data)
                return recs, time.perf_counter() - t
            finally:
                ckpt.folded_copy, measure.folded_copy, measure.default_forward_batch = real

        base_seed = s["seed"] * 1000 + epoch  # the worker's seed for this checkpoint
        runs: dict[str, list[tuple[list[dict], float]]] = {"former": [], "now": []}
        floors: dict[str, list[float]] = {"plain": [], "folded": []}  # at `best`, every round
        for i in range(a.seeds):
            for name, m in (("plain", model), ("folded", real[0](model))):
                t = time.perf_counter()
                ckpt.forward_draws(m, xt, union, k, best, False)
                floors[name].append(time.perf_counter() - t)
            for path in runs:
                runs[path].append(checkpoint(path, base_seed + 7919 * i))
        t = time.perf_counter()
        with torch.random.fork_rng():
            class_statistics(s, run_dir, epoch, model, xt, data.y_train, exp.num_classes)
        class_s = time.perf_counter() - t

    print(f"run: {spec.run_id} ({s['arch']} width {s['width']}, {s['dataset']}, k = {k}, "
          f"{len(subsets)} subsets of {min(len(v) for v in subsets.values())}: "
          f"{sum(len(v) for v in subsets.values())} subset images, {len(union)} distinct); "
          f"cpu, {runtime['threads']} thread(s), torch {runtime['torch']}; model after "
          f"{a.epochs} epochs; {a.seeds} noise seeds per path")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    keyed = {p: [{(r["term"], r["subset"], r["method"]): r for r in recs} for recs, _ in v]
             for p, v in runs.items()}
    print(f"\n{'term':<4} {'subset':<11} {'former':>7} {'now':>7} {'former mean±sd':>15} "
          f"{'now mean±sd':>13} {'Δ/SE':>6} {'MC se':>6}")
    # each term's values share one Monte Carlo error scale: pooled over subsets and both paths
    pooled = {}
    for term in ("xt", "ty"):
        var = [statistics.variance([d[key]["value"] for d in keyed[p]])
               for key in keyed["former"][0] if key[0] == term for p in keyed if a.seeds > 1]
        pooled[term] = math.sqrt(statistics.mean(var) * 2 / a.seeds) if var else 0.0
    zs, zp = [], []
    for key in keyed["former"][0]:
        old = [d[key]["value"] for d in keyed["former"]]
        new = [d[key]["value"] for d in keyed["now"]]
        so = statistics.stdev(old) if len(old) > 1 else 0.0
        sn = statistics.stdev(new) if len(new) > 1 else 0.0
        se = math.sqrt((so**2 + sn**2) / len(old))
        z = (statistics.mean(new) - statistics.mean(old)) / se if se > 0 else 0.0
        zs.append(z)
        zp.append((statistics.mean(new) - statistics.mean(old)) / pooled[key[0]]
                  if pooled[key[0]] > 0 else 0.0)
        mc = keyed["now"][0][key]["settings"].get("mc_stderr")
        print(f"{key[0]:<4} {key[1]:<11} {old[0]:>7.4f} {new[0]:>7.4f} "
              f"{statistics.mean(old):>8.4f}±{so:.4f} {statistics.mean(new):>6.4f}±{sn:.4f} "
              f"{z:>+6.2f} {mc if mc is None else round(mc, 4)!s:>6}")
    by_term = {t: [z for z, key in zip(zp, keyed["former"][0], strict=True) if key[0] == t]
               for t in ("xt", "ty")}
    print(f"largest |Δ/SE| {max(abs(z) for z in zs):.2f} over {len(zs)} values "
          f"(SE: the spread of each path's value over its {a.seeds} seeds); with each term's "
          f"SE pooled over its subsets: largest {max(abs(z) for z in zp):.2f}, mean "
          f"{statistics.mean(zp):+.2f} (xt {statistics.mean(by_term['xt']):+.2f}, "
          f"ty {statistics.mean(by_term['ty']):+.2f})")

    t_old = statistics.median(t for _, t in runs["former"])
    t_new = statistics.median(t for _, t in runs["now"])
    fwd_new = statistics.median(r[0]["settings"]["forward_seconds_shared"] for r, _ in runs["now"])
    fwd_old = statistics.median(r[0]["settings"]["forward_seconds_shared"]
                                for r, _ in runs["former"])
    print(f"\nfloor (k = {k} forward passes of each of {len(union)} distinct images): "
          f"fastest at batch {best} ("
          + ", ".join(f"{b}: {v:.2f} s" for b, v in floor.items()) + "; best of 2)")

    def ratio(path: str, fl: str) -> float:  # within each round, then the median
        return statistics.median(t / f for (_, t), f in zip(runs[path], floors[fl], strict=True))

    fp, ff = statistics.median(floors["plain"]), statistics.median(floors["folded"])
    print(f"each round, the floor through the model as trained {fp:.2f} s, through its folded "
          f"copy {ff:.2f} s (medians)")
    print(f"checkpoint former: {t_old:.2f} s (forward {fwd_old:.2f} s) = "
          f"{ratio('former', 'plain'):.2f}x the floor; now: {t_new:.2f} s (forward "
          f"{fwd_new:.2f} s) = {ratio('now', 'plain'):.2f}x the floor, "
          f"{ratio('now', 'folded'):.2f}x the folded floor; now/former {t_new / t_old:.2f} "
          "(ratios within each round, medians over rounds)")
    e = statistics.median(epoch_s)
    n_ep, n_mi = s["epochs"], len(s["mi_epochs"])
    n_cls = len(set(s["mi_epochs"]) | {n_ep})
    for name, tc in (("former", t_old), ("now", t_new)):
        wall = poison_s + n_ep * e + n_mi * tc + n_cls * class_s
        print(f"MI share of the default run ({n_ep} epochs x {e:.2f} s, {n_mi} checkpoints, "
              f"per-class statistics {class_s:.2f} s x {n_cls}, poisoning {poison_s:.1f} s), "
              f"{name}: {n_mi * tc / wall:.1%} of {wall:.0f} s")


if __name__ == "__main__":
    main()
