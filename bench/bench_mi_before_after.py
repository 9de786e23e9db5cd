"""The MI estimators before and after the full conditional and the converging trained estimators,
in one run (ratios printed).

    .venv/bin/python bench/bench_mi_before_after.py [--epochs 4] [--skip-trained] [--out FILE.md]

1. Error vs truth, noise-aware I(X;T), on the correlated-upstream-noise tasks
   (`validate.noisy_net_tasks(quick=True)`): before = `xt_conditional = "gaussian"` (the former
   shared diagonal covariance, kept bit-for-bit), after = "full" (the new default), and the
   mixture of draws ("draws", the former default of the public `noisy_mi`). Also the held-out
   lower bound of the new default.
2. Error vs truth, trained estimators, on the bmi-style tasks (`validate.bmi_tasks(quick=True)`,
   5,000 pairs): before = ibtui/mi/trained.py as of commit 533cfc3 (loaded from git history,
   with the defaults `estimate()` used then: separable 200 epochs of batch 4096; MINE with the
   "quick" 40 epochs, since its "paper" 300 epochs take minutes per task here), after = the
   current defaults.
3. A real model: NoisyResNet18 width 8 trained on digits for --epochs epochs (the default run's
   recipe: lr 0.02, batch 64, noise 0.4), 13 subsets of 118 training images (10 classes + 3
   resamples of class 0, the default run's equal-N size), k = 4 draws, noise-aware only. At
   epoch 1 and the last epoch: cost per MI checkpoint before/after, the bracket
   [lower bound, estimate, log N] per subset, and how many I(X;T) values sit within 0.1 nats of
   log N.
Torch runs on one thread. Writes the Markdown section to --out (default: stdout only).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from ibtui.mi import estimate, estimate_checkpoint, noisy_mi, validate_mi_options
from ibtui.mi.validate import bmi_tasks, noisy_net_tasks

OLD_COMMIT = "533cfc3"
ROOT = Path(__file__).resolve().parent.parent


def _old_trained() -> types.ModuleType:
    src = subprocess.run(["git", "show", f"{OLD_COMMIT}:ibtui/mi/trained.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType("old_trained")
    exec(compile(src, "old_trained.py", "exec"), mod.__dict__)  # our own code, older commit
    return mod


def _pct(est: float, truth: float) -> str:
    return f"{est:.3f} ({(est - truth) / truth:+.1%})"


def noise_aware_section() -> list[str]:
    lines = ["| task | truth | before: diagonal (`gaussian`) | after: `full` | lower bound (after) "
             "| `draws` (k) | before/after abs. error |", "|---|---:|---:|---:|---:|---:|---:|"]
    errs = {"gaussian": [], "full": [], "draws": []}
    for task in noisy_net_tasks(quick=True):
        vals = {c: noisy_mi(task.s, task.sigma, conditional=c, mc_samples=4, seed=0)
                for c in ("gaussian", "full", "draws")}
        for c, e in vals.items():
            errs[c].append(abs(e.value - task.truth) / task.truth)
        e_old = abs(vals["gaussian"].value - task.truth)
        e_new = abs(vals["full"].value - task.truth)
        lines.append(f"| {task.name} | {task.truth:.3f} | {_pct(vals['gaussian'].value, task.truth)}"
                     f" | {_pct(vals['full'].value, task.truth)} | {vals['full'].lower:.3f} | "
                     f"{_pct(vals['draws'].value, task.truth)} ({task.s.shape[1]}) | "
                     f"{e_old / max(e_new, 1e-9):.1f}x |")
    lines.append(f"| **mean abs. relative error** | | {np.mean(errs['gaussian']):.1%} | "
                 f"{np.mean(errs['full']):.1%} | | {np.mean(errs['draws']):.1%} | "
                 f"{np.mean(errs['gaussian']) / np.mean(errs['full']):.1f}x |")
    return lines


def trained_section() -> list[str]:
    old = _old_trained()
    lines = ["| task | truth | separable before | separable after | MINE before | MINE after |",
             "|---|---:|---:|---:|---:|---:|"]
    errs: dict[str, list[float]] = {k: [] for k in ("sb", "sa", "mb", "ma")}
    secs: dict[str, float] = dict.fromkeys(("sb", "sa", "mb", "ma"), 0.0)
    for task in bmi_tasks(quick=True):
        a, b = task.a, task.b
        runs = {
            "sb": lambda a=a, b=b: old.infonce_separable(a, b, max_epochs=200, seed=0),
            "sa": lambda a=a, b=b: estimate(a, b, "infonce-separable", seed=0),
            "mb": lambda a=a, b=b: old.mine(a, b, max_epochs=40, seed=0),
            "ma": lambda a=a, b=b: estimate(a, b, "mine", seed=0),
        }
        cells = []
        for key, fn in runs.items():
            t0 = time.perf_counter()
            est = fn()
            secs[key] += time.perf_counter() - t0
            errs[key].append(abs(est.value - task.truth) / task.truth)
            conv = est.settings.get("converged")
            flag = "" if conv is None else (" ✓" if conv else " ✗")
            cells.append(_pct(est.value, task.truth) + flag)
        lines.append(f"| {task.name} | {task.truth:g} | " + " | ".join(cells) + " |")
    lines.append("| **mean abs. relative error** | | " + " | ".join(
        f"{np.mean(errs[k]):.1%}" for k in ("sb", "sa", "mb", "ma")) + " |")
    lines.append("| seconds (all tasks) | | " + " | ".join(
        f"{secs[k]:.0f}" for k in ("sb", "sa", "mb", "ma")) + " |")
    lines.append("")
    lines.append(f"Error ratio before/after: separable {np.mean(errs['sb']) / np.mean(errs['sa']):.1f}x, "
                 f"MINE {np.mean(errs['mb']) / np.mean(errs['ma']):.1f}x. ✓/✗ = converged flag "
                 "(after only).")
    return lines


def _train(epochs: int):
    from ibtui.data.datasets import load_dataset
    from ibtui.models import create_model
    from ibtui.train import make_optimizer, prepare_model, to_device

    ds = load_dataset("digits")
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width=8, noise_xt=0.4, noise_ty=0.4)
    dev = torch.device("cpu")
    prepare_model(model, ds.x_train, dev)
    x = to_device(ds.x_train, dev)
    y = to_device(ds.y_train, dev)
    rng = np.random.default_rng(0)
    subsets = {str(c): np.sort(rng.choice(np.flatnonzero(ds.y_train == c), 118, replace=False))
               for c in range(10)}
    for r in range(3):
        subsets[f"0_resample{r}"] = np.sort(rng.choice(np.flatnonzero(ds.y_train == 0), 118,
                                                       replace=False))
    opt, _ = make_optimizer(model, 0.02)
    gen = torch.Generator().manual_seed(0)
    return model, opt, gen, x, y, subsets


def real_model_section(epochs: int) -> list[str]:
    from ibtui.train import train_epoch

    model, opt, gen, x, y, subsets = _train(epochs)
    lines: list[str] = []
    cost: dict[str, list[float]] = {"gaussian": [], "full": []}
    hits: dict[str, list[int]] = {"gaussian": [], "full": []}
    total = 0
    t_train = 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_epoch(model, opt, x, y, 64, gen, 10)
        t_train += time.perf_counter() - t0
        if epoch not in (1, epochs):
            continue
        recs = {}
        for cond in ("gaussian", "full"):
            opts = validate_mi_options("noise-aware", {"k": 4, "xt_conditional": cond})
            t0 = time.perf_counter()
            recs[cond] = estimate_checkpoint(model, x, subsets, methods=["noise-aware"],
                                             options=opts, seed=epoch, device="cpu")
            cost[cond].append(time.perf_counter() - t0)
            xt = [r for r in recs[cond] if r["term"] == "xt"]
            hits[cond].append(sum(r["value"] >= r["ceiling"] - 0.1 for r in xt))
        total += len(subsets)
        lines += ["", f"Epoch {epoch}: I(X;T) per subset, log N = {math.log(118):.3f}; before = "
                  "diagonal, after = full; [held-out lower bound, estimate] (after).", "",
                  "| subset | before | after | bracket (after) |", "|---|---:|---:|---|"]
        for name in subsets:
            old = next(r for r in recs["gaussian"] if r["term"] == "xt" and r["subset"] == name)
            new = next(r for r in recs["full"] if r["term"] == "xt" and r["subset"] == name)
            lines.append(f"| {name} | {old['value']:.3f} | {new['value']:.3f} | "
                         f"[{new['lower']:.3f}, {new['value']:.3f}, {new['ceiling']:.3f}] |")
        shr = [r["settings"].get("shrinkage") for r in recs["full"] if r["term"] == "xt"]
        top = [r["settings"].get("within_top_eig") for r in recs["full"] if r["term"] == "xt"]
        lines.append(f"\nChosen shrinkage λ (0 = full, 1 = diagonal): {sorted(set(shr))}; "
                     f"top within-image eigenvalue {min(top):.3g}–{max(top):.3g} vs σ_T² = "
                     f"{recs['full'][0]['settings']['sigma_t'] ** 2:.3g}.")
    lines = [
        f"NoisyResNet18 width 8 on digits, {epochs} training epochs ({t_train:.0f} s), 13 subsets "
        "x 118 images, k = 4, noise-aware, one MI checkpoint = both terms for every subset:", "",
        "| | before (`gaussian`) | after (`full`) | after / before |", "|---|---:|---:|---:|",
        f"| seconds per MI checkpoint (mean of {len(cost['full'])}) | "
        f"{np.mean(cost['gaussian']):.2f} | {np.mean(cost['full']):.2f} | "
        f"{np.mean(cost['full']) / np.mean(cost['gaussian']):.2f}x |",
        f"| I(X;T) values within 0.1 nats of log N | {sum(hits['gaussian'])}/{total} | "
        f"{sum(hits['full'])}/{total} | |",
        *lines]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--skip-trained", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    cmd = "python bench/bench_mi_before_after.py " + " ".join(sys.argv[1:])
    head = [f"Command: `{cmd.strip()}` ({os.cpu_count()} CPUs shared, torch {torch.__version__}, "
            f"1 thread, load avg {os.getloadavg()[0]:.1f})", ""]
    t0 = time.perf_counter()
    parts = ["### Noise-aware I(X;T) under correlated upstream noise (truth: exact MC for the "
             "linear nets, k = 512 mixture for the ReLU nets)", "", *noise_aware_section(), ""]
    print("\n".join(parts), flush=True)
    if not args.skip_trained:
        tr = ["### Trained estimators on bmi-style tasks (closed-form truth, 5,000 pairs)", "",
              *trained_section(), ""]
        print("\n".join(tr), flush=True)
        parts += tr
    real = ["### A real model: cost per MI checkpoint and the ceiling", "",
            *real_model_section(args.epochs), ""]
    print("\n".join(real), flush=True)
    parts += real
    parts.append(f"Total bench time {time.perf_counter() - t0:.0f} s.")
    text = "\n".join(head + parts)
    if args.out:
        args.out.write_text(text + "\n")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
