"""What the worker's machinery costs per training step: the worker's epoch (ibtui.train.
train_epoch with the experiment's own per-step hook: progress, heartbeat, stop check) against a
bare loop over the same tensors and model (index, forward, loss, backward, step), and against
the former hook (status.json rewritten and fsynced after every step), in one run.

    .venv/bin/python bench/bench_step_overhead.py [experiments.toml] [--rounds 20] [--steps 6] [--threads 1]

The model, data and batch size are the first run of the file (the default run: NoisyResNet18
width 8, batch 64, digits). Epochs of the three loops are interleaved (bare, worker, former,
bare, ...) so that load from other processes hits each alike; prints ms per step (median over
epochs), the overhead of each against the bare loop in the same round (median of the rounds'
ratios), and how many status.json writes and fsyncs each loop made.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default="experiments.toml")
    ap.add_argument("--rounds", type=int, default=20, help="rounds (one epoch of each loop)")
    ap.add_argument("--steps", type=int, default=6,
                    help="steps per epoch (a slice of the training set; 0 = the whole set): "
                         "short rounds pair the loops more closely under varying load")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    from ibtui.runtime import configure_worker  # before torch, as in a worker

    runtime = configure_worker(a.threads)
    import torch
    import torch.nn.functional as F

    from ibtui.experiment.prepare import prepare_data
    from ibtui.experiment.run import Experiment
    from ibtui.models import create_model
    from ibtui.runs import store
    from ibtui.runs.scheduler import create_runs
    from ibtui.spec import load_spec
    from ibtui.train import make_optimizer, prepare_model, to_device, train_epoch

    spec = load_spec(Path(a.file))[0]
    with tempfile.TemporaryDirectory() as tmp:
        (run_dir,) = create_runs([spec], Path(tmp) / "runs")
        exp = Experiment(run_dir)
        s = exp.spec
        dev = torch.device("cpu")
        exp.w.set_status(state="running", pid=os.getpid(), phase="poisoning", epoch=0)
        data, _, _ = prepare_data(s, run_dir, "cpu", lambda *_: None)
        exp.beat(force=True, phase="training", epoch=1)
        torch.manual_seed(s["seed"])
        model = create_model(s["arch"], exp.num_classes, s["width"], s["noise_xt"], s["noise_ty"])
        model = prepare_model(model, data.x_train, dev)
        opt, _ = make_optimizer(model, s["lr"], s["momentum"], s["weight_decay"])
        xt, yt = to_device(data.x_train, dev), to_device(data.y_train, dev)
        bs = s["batch_size"]
        steps_full = (len(yt) + bs - 1) // bs
        if a.steps:
            xt, yt = xt[:a.steps * bs], yt[:a.steps * bs]
        nb = (len(yt) + bs - 1) // bs
        gen = torch.Generator().manual_seed(0)

        writes = {"n": 0, "fsync": 0}
        real_write = store.atomic_write_bytes

        def counting_write(path, data, fsync=True):
            if Path(path).name == "status.json":
                writes["n"] += 1
                writes["fsync"] += bool(fsync)
            return real_write(path, data, fsync=fsync)

        store.atomic_write_bytes = counting_write  # atomic_write_json reaches it by name

        def bare() -> None:
            model.train()
            perm = torch.randperm(len(yt), generator=gen)
            for b in range(nb):
                idx = perm[b * bs:(b + 1) * bs]
                loss = F.cross_entropy(model(xt[idx]).float(), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        hook_s = [0.0]
        calls: dict[bool, list[float]] = {True: [], False: []}  # hook times, by "it wrote"

        def worker(epoch: int) -> None:
            hook = exp.step_hook(epoch)

            def timed(b: int, n: int) -> None:
                before = writes["n"]
                t = time.perf_counter()
                hook(b, n)
                dt = time.perf_counter() - t
                hook_s[0] += dt
                calls[writes["n"] > before].append(dt)

            train_epoch(model, opt, xt, yt, bs, gen, exp.num_classes, timed)

        def former(epoch: int) -> None:  # the hook before: an fsynced status write every step
            def on_batch(b: int, n: int) -> None:
                exp.w.set_status(progress=round(b / n, 4))
                exp.should_stop()
                (run_dir / "cancel").exists()

            train_epoch(model, opt, xt, yt, bs, gen, exp.num_classes, on_batch)

        loops = {"bare": lambda e: bare(), "worker": worker, "former": former}
        for fn in loops.values():  # warm-up
            fn(1)
        times: dict[str, list[float]] = {k: [] for k in loops}
        counts: dict[str, list[tuple[int, int]]] = {k: [] for k in loops}
        hook_s[0] = 0.0
        calls[True].clear()
        calls[False].clear()
        for r in range(a.rounds):
            for name, fn in loops.items():
                writes.update(n=0, fsync=0)
                t = time.perf_counter()
                fn(r + 2)
                times[name].append((time.perf_counter() - t) / nb)
                counts[name].append((writes["n"], writes["fsync"]))
        store.atomic_write_bytes = real_write

    print(f"model: {s['arch']} width {s['width']}, batch {bs}, {s['dataset']} "
          f"({steps_full} steps/epoch; {nb} steps a round here); device cpu, "
          f"{runtime['threads']} thread(s), torch {runtime['torch']}; {a.rounds} interleaved "
          "rounds of each loop")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    bare_t = times["bare"]
    print(f"{'loop':<8} {'ms/step':>9} {'min ms/step':>12} {'overhead (median)':>18} "
          f"{'overhead (min)':>15} {'status writes/round':>20} {'fsyncs/round':>13}")
    for name in loops:
        ms = statistics.median(times[name]) * 1e3
        ratios = [t / b - 1 for t, b in zip(times[name], bare_t, strict=True)]
        n = sum(c[0] for c in counts[name]) / len(counts[name])
        f = sum(c[1] for c in counts[name]) / len(counts[name])
        over = "" if name == "bare" else f"{statistics.median(ratios) * 100:+.2f}%"
        over_min = "" if name == "bare" else f"{(min(times[name]) / min(bare_t) - 1) * 100:+.2f}%"
        print(f"{name:<8} {ms:>9.2f} {min(times[name]) * 1e3:>12.2f} {over:>18} {over_min:>15} "
              f"{n:>20.2f} {f:>13.2f}")
    spread = statistics.pstdev([t / b for t, b in zip(times["worker"], bare_t, strict=True)])
    per_step = hook_s[0] / (a.rounds * nb)
    share = hook_s[0] / sum(times["worker"]) / nb
    print(f"round-to-round spread of worker/bare: ±{spread * 100:.2f}% (the end-to-end "
          "overheads are only as precise as this)")
    hooks = calls[True] + calls[False]
    print(f"the worker's per-step hook on the training thread, timed directly: median "
          f"{statistics.median(hooks) * 1e6:.1f} µs, mean {per_step * 1e6:.1f} µs a step = "
          f"{share * 100:.3f}% of the worker's training time (status.json is written by a "
          "writer thread; the end-to-end figures above include its CPU time)")


if __name__ == "__main__":
    main()
