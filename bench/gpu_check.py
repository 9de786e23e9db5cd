"""GPU readiness in one command: the paper's training and MI checkpoint on random CIFAR-shaped
data (no dataset files), with bf16, channels_last and torch.compile each on and off.

    python bench/gpu_check.py [--epochs 2] [--out gpu_check.json] [--no-compile]
    python bench/gpu_check.py --tiny      # a few seconds on CPU (the test suite runs it)

Full size: NoisyResNet18 width 64, batch 256, 50,000 training and 10,000 test images of
32x32x3 (random uint8, balanced random labels), BadNets at 10% to target 0, so the MI subsets
have the paper's sizes (every subset at the smallest one's size, mi_equal_n), the default
noise-aware options (k = 8). Each variant trains `--epochs` epochs the way a worker does
(train_epoch, then the clean and the triggered test set); the first epoch is shown apart (it
carries cuDNN autotuning and compilation). The baseline is what a worker does on this device
(CUDA: bf16 autocast and channels_last, no compile; CPU: fp32, NCHW); every other row flips one
switch (on CPU channels_last is not tried: it crashes there; `not_tried` in the JSON says why).
The MI checkpoint runs once, on the baseline model: MI (measure_mi) plus the
representation statistics (what worker.log counts as MI), the per-class statistics apart, and
the floor (k noisy forward passes of each distinct image of the subsets, best batch size).
The MI share is projected onto the paper's schedule: 9 checkpoints over 120 epochs.

Prints one table and writes everything to one JSON file (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

PAPER = {"train": 50_000, "test": 10_000, "width": 64, "batch": 256, "k": 8,
         "fwd_batches": (256, 1024, 2048)}
TINY = {"train": 384, "test": 100, "width": 4, "batch": 64, "k": 2, "fwd_batches": (64, 256)}
SCHEDULE = (120, 9)  # the paper's epochs and MI checkpoints


def fake_data(n_train: int, n_test: int, seed: int = 0):
    """A CIFAR-10-shaped dataset of random images, BadNets-poisoned at 10% to class 0."""
    import numpy as np

    from ibtui.data.attacks import create_attack
    from ibtui.data.attacks.base import AttackContext
    from ibtui.data.datasets import Dataset
    from ibtui.data.poison import poison_dataset

    rng = np.random.default_rng(seed)
    ds = Dataset("random-cifar10", rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
                 rng.permutation(np.arange(n_train) % 10).astype(np.int64),
                 rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
                 rng.permutation(np.arange(n_test) % 10).astype(np.int64),
                 [str(c) for c in range(10)])
    attack = create_attack("badnets", {}, target=0, seed=seed, num_classes=10)
    attack.prepare(AttackContext(dataset=ds, progress=lambda *_: None))
    return poison_dataset(ds, attack, 0.1, 0, list(range(1, 10)), seed)


def sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def train_variant(name: str, data, size: dict, dev, *, bf16: bool, channels_last: bool,
                  compile_: bool, epochs: int) -> dict:
    """`epochs` epochs of the worker's training loop under one setting; times and memory."""
    import torch

    from ibtui.models import create_model
    from ibtui.train import (
        attack_metrics,
        evaluate,
        make_optimizer,
        prepare_model,
        to_device,
        train_epoch,
    )

    row = {"variant": name, "bf16": bf16, "channels_last": channels_last, "compile": compile_}
    os.environ["IBTUI_NO_BF16"] = "0" if bf16 else "1"  # read by ibtui.train.autocast
    torch.manual_seed(1)
    model = prepare_model(create_model("resnet18", 10, size["width"], 0.4, 0.4), data.x_train, dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        plain = model.preprocess
        model.preprocess = lambda x: plain(x).contiguous(memory_format=torch.channels_last)
    else:
        model.to(memory_format=torch.contiguous_format)
        plain = model.preprocess
        model.preprocess = lambda x: plain(x).contiguous()
    opt, sched = make_optimizer(model, 0.01)
    net = model
    if compile_:
        net = torch.compile(model)
    xt, yt = to_device(data.x_train, dev), to_device(data.y_train, dev)
    xs, ys = to_device(data.x_test, dev), to_device(data.y_test, dev)
    xtrig = to_device(data.x_test_trigger, dev)
    gen = torch.Generator().manual_seed(0)
    nb = (len(yt) + size["batch"] - 1) // size["batch"]
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times = []
    try:
        for _ in range(epochs):
            sync(dev)
            t = time.perf_counter()
            train_epoch(net, opt, xt, yt, size["batch"], gen, 10)
            loss, acc, _ = evaluate(net, xs, ys)
            _, _, pred = evaluate(net, xtrig, ys)
            attack_metrics(pred, ys, 0)
            sched.step(loss)
            sync(dev)
            times.append(time.perf_counter() - t)
    except Exception as e:  # a switch that does not work here is a finding, not a crash
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    finally:
        os.environ.pop("IBTUI_NO_BF16", None)
    if times:
        rest = times[1:] or times
        row.update(first_epoch_s=times[0], epoch_s=statistics.median(rest),
                   step_ms=statistics.median(rest) / nb * 1e3, epochs=len(times))
    if dev.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    row["model"] = model
    return row


def mi_checkpoint(model, data, size: dict, dev, run_dir: Path) -> dict:
    """The worker's MI checkpoint on `model`, and its floor."""
    import numpy as np
    import torch

    from ibtui.experiment.measure import (
        class_statistics,
        measure_mi,
        mi_subsets,
        representation_stats,
    )
    from ibtui.mi import validate_mi_options
    from ibtui.mi.checkpoint import forward_draws
    from ibtui.train import to_device

    spec = {"seed": 0, "target": 0, "mi_equal_n": True, "mi_method": ["noise-aware"],
            "mi_options": validate_mi_options("noise-aware", {"k": size["k"]})}
    (run_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    xt = to_device(data.x_train, dev)
    subsets = mi_subsets(spec, data)
    union = np.unique(np.concatenate(list(subsets.values())))
    out = {"k": size["k"], "subsets": {k: int(len(v)) for k, v in subsets.items()},
           "subset_images": int(sum(len(v) for v in subsets.values())),
           "distinct_images": int(len(union))}
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    floor = {}
    model.eval()
    for b in size["fwd_batches"]:
        forward_draws(model, xt, union[:b], size["k"], b, False)  # warm-up at this size
        sync(dev)
        t = time.perf_counter()
        forward_draws(model, xt, union, size["k"], b, False)
        sync(dev)
        floor[b] = time.perf_counter() - t
    best = min(floor, key=floor.get)
    out.update(floor_s_by_batch={str(b): s for b, s in floor.items()}, floor_batch=best,
               floor_s=floor[best])
    if dev.type == "cuda":  # what bf16 would give the MI passes (they run in fp32 today)
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                forward_draws(model, xt, union[:best], size["k"], best, False)
                sync(dev)
                t = time.perf_counter()
                forward_draws(model, xt, union, size["k"], best, False)
                sync(dev)
            out["floor_bf16_s"] = time.perf_counter() - t
        except Exception as e:  # a finding, not a crash
            out["floor_bf16_error"] = f"{type(e).__name__}: {e}"[:200]
    sync(dev)
    t = time.perf_counter()
    records = measure_mi(spec, run_dir, 1, model, xt, data, dev, lambda *a, **k: None)
    sync(dev)
    out["measure_mi_s"] = time.perf_counter() - t
    t = time.perf_counter()
    representation_stats(spec, run_dir, 1, model, xt, data)
    sync(dev)
    out["representation_s"] = time.perf_counter() - t
    out["mi_checkpoint_s"] = out["measure_mi_s"] + out["representation_s"]
    t = time.perf_counter()
    class_statistics(spec, run_dir, 1, model, xt, data.y_train, 10)
    sync(dev)
    out["class_stats_s"] = time.perf_counter() - t
    out["forward_s"] = records[0]["settings"]["forward_seconds_shared"] if records else None
    out["estimators_s"] = sum(r["seconds"] for r in records)
    out["vs_floor"] = out["mi_checkpoint_s"] / out["floor_s"]
    if dev.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a few seconds on CPU (the tests)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per variant (first apart)")
    ap.add_argument("--out", default="gpu_check.json", help="the JSON file written")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    ap.add_argument("--compile", action="store_true", help="the torch.compile row on CPU too")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    a = ap.parse_args(argv)

    from ibtui.runs.resources import cpu_count
    from ibtui.runtime import configure_worker  # before torch, as in a worker

    runtime = configure_worker(a.threads or cpu_count())
    import torch

    from ibtui.train import pick_device

    dev = pick_device("cpu" if a.tiny and a.device == "auto" else a.device)
    size = TINY if a.tiny else PAPER
    t_all = time.perf_counter()
    data = fake_data(size["train"], size["test"])
    cuda = dev.type == "cuda"
    base = {"bf16": cuda, "channels_last": cuda, "compile_": False}
    variants = [("baseline", base)]
    not_tried = {}
    if cuda:
        variants.append(("bf16 off", {**base, "bf16": False}))
        variants.append(("channels_last off", {**base, "channels_last": False}))
    else:  # ibtui never trains channels_last on CPU; there it corrupts the heap
        not_tried["channels_last on"] = ("torch's CPU (oneDNN) backward of channels_last "
                                         "convolutions crashes the process on some CPUs "
                                         "(bench/onednn_crash.py); workers keep NCHW on CPU")
    if not a.no_compile and (cuda or a.compile):
        variants.append(("compile on", {**base, "compile_": True}))
    rows = []
    for name, kw in variants:
        rows.append(train_variant(name, data, size, dev, epochs=max(1, a.epochs), **kw))
        print(f"[{time.perf_counter() - t_all:.0f}s] {name}: "
              f"{rows[-1].get('epoch_s', rows[-1].get('error'))}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        mi = mi_checkpoint(rows[0]["model"], data, size, dev, Path(tmp) / "run")
    for r in rows:
        del r["model"]
    base_epoch = rows[0].get("epoch_s")
    for r in rows:
        r["vs_baseline"] = r["epoch_s"] / base_epoch if base_epoch and "epoch_s" in r else None
    epochs, checkpoints = SCHEDULE
    per_ckpt = mi["mi_checkpoint_s"] + mi["class_stats_s"]
    share = checkpoints * per_ckpt / (epochs * base_epoch + checkpoints * per_ckpt) \
        if base_epoch else None
    share_mi = checkpoints * mi["mi_checkpoint_s"] / (epochs * base_epoch + checkpoints * per_ckpt) \
        if base_epoch else None
    device = torch.cuda.get_device_name(dev) if cuda else (runtime["cpu"] or platform.processor())
    result = {
        "not_tried": not_tried, "device": device, "device_type": dev.type, "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None, "threads": runtime["threads"],
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "size": "tiny" if a.tiny else "paper", "config": {k: v for k, v in size.items()
                                                          if k != "fwd_batches"},
        "variants": rows, "mi": mi,
        "schedule": {"epochs": epochs, "mi_checkpoints": checkpoints},
        "mi_share": share_mi, "mi_and_class_stats_share": share,
        "wall_s": time.perf_counter() - t_all,
    }
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")

    print(f"\ndevice: {device} ({dev.type}), torch {torch.__version__}, "
          f"{runtime['threads']} CPU threads; {result['size']} size: ResNet-18 width "
          f"{size['width']}, batch {size['batch']}, {size['train']:,} training images")
    print(f"command: {result['command']}")
    head = (f"{'variant':<18} {'bf16':>5} {'ch_last':>7} {'compile':>7} {'1st epoch s':>11} "
            f"{'epoch s':>8} {'step ms':>8} {'peak GiB':>8} {'vs base':>8}")
    print(head)
    print("-" * len(head))

    def f(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) else "–"

    for r in rows:
        print(f"{r['variant']:<18} {('on' if r['bf16'] else 'off') if cuda else 'n/a':>5} "
              f"{'on' if r['channels_last'] else 'off':>7} {'on' if r['compile'] else 'off':>7} "
              f"{f(r.get('first_epoch_s'), '.2f'):>11} {f(r.get('epoch_s'), '.2f'):>8} "
              f"{f(r.get('step_ms'), '.2f'):>8} {f(r.get('peak_gib'), '.2f'):>8} "
              f"{f(r.get('vs_baseline'), '.2f'):>8}" + (f"  {r['error']}" if "error" in r else ""))
    print(f"\nMI checkpoint (baseline model, k = {mi['k']}, {len(mi['subsets'])} subsets of "
          f"{min(mi['subsets'].values())}: {mi['subset_images']:,} subset images, "
          f"{mi['distinct_images']:,} distinct):")
    print(f"  MI {mi['mi_checkpoint_s']:.2f} s (forward {f(mi['forward_s'], '.2f')} s + "
          f"estimators {mi['estimators_s']:.2f} s + representation stats "
          f"{mi['representation_s']:.2f} s); per-class stats {mi['class_stats_s']:.2f} s; "
          f"peak {f(mi.get('peak_gib'), '.2f')} GiB")
    print(f"  floor (k forward passes of each distinct image) {mi['floor_s']:.2f} s at batch "
          f"{mi['floor_batch']} (" + ", ".join(f"{b}: {s:.2f} s" for b, s in
                                              mi["floor_s_by_batch"].items())
          + f"); checkpoint / floor {mi['vs_floor']:.2f}x"
          + (f"; the floor under bf16 autocast {mi['floor_bf16_s']:.2f} s"
             if "floor_bf16_s" in mi else ""))
    print(f"MI share of the run on the paper's schedule ({checkpoints} checkpoints, {epochs} "
          f"epochs at the baseline's epoch time): {f(share_mi and share_mi * 100, '.1f')}% "
          f"(with per-class stats {f(share and share * 100, '.1f')}%)")
    print(f"JSON: {a.out} ({result['wall_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
