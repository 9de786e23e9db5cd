"""Time to poison a dataset with every attack, and to score the poisoned images' perceptibility.

    .venv/bin/python bench/bench_poison.py [--attacks wanet,lc] [--lc-images 4] [--lc-steps 10]

- digits: the real embedded dataset, the run's index rule (dirty-label 10 % of the training set,
  LC 25 % of the target class).
- cifar-sized: a random uint8 array of 50,000 x 32 x 32 x 3 (10 classes): 5,000 images poisoned
  (10 %), the test trigger on 10,000 images.
- LC: only PGD is timed (the clean model's training is a normal training run, cached once per
  setting): --lc-images images for --lc-steps steps against a randomly initialised noisy
  ResNet-18 (width 64 unless --lc-width), extrapolated linearly to 100 steps and to the number of
  images the rule poisons (digits: 25 % of class 0; CIFAR-10: 1,250). Say so when quoting it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ibtui.data.attacks import ATTACKS, create_attack  # noqa: E402
from ibtui.data.datasets import load_dataset  # noqa: E402
from ibtui.data.gallery import attack_order  # noqa: E402
from ibtui.data.poison import select_poison_indices  # noqa: E402
from ibtui.data.quality import psnr, ssim  # noqa: E402


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def bench_dirty(name: str, x_train, y_train, x_test) -> dict:
    a = create_attack(name, {}, target=0, seed=0)
    idx = select_poison_indices(y_train, a.selection_rate(0.1), 0, a.label_mode, 10)
    (px, _), t_poison = timed(a.poison_train, x_train[idx], y_train[idx])
    _, t_test = timed(a.trigger_test, x_test)
    return {"n": len(idx), "poison_s": t_poison, "test_s": t_test, "x": x_train[idx], "px": px}


def bench_lc(x_train, y_train, x_test, n_rule: int, images: int, steps: int, width: int) -> dict:
    import torch

    from ibtui.models import create_model

    torch.manual_seed(0)
    a = create_attack("lc", {"steps": steps}, target=0, seed=0)
    a.set_model(create_model("resnet18", 10, width, 0.4, 0.4))
    idx = np.flatnonzero(y_train == 0)[:images]
    (px, _), t = timed(a.poison_train, x_train[idx], y_train[idx])
    per_image = t / len(idx) * 100 / steps
    _, t_test = timed(a.trigger_test, x_test)
    return {"n": n_rule, "poison_s": per_image * n_rule, "test_s": t_test, "per_image": per_image,
            "x": x_train[idx], "px": px}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attacks", default=",".join(attack_order()))
    ap.add_argument("--lc-images", type=int, default=32)
    ap.add_argument("--lc-steps", type=int, default=2)
    ap.add_argument("--lc-width", type=int, default=64)
    ap.add_argument("--cifar-n", type=int, default=50_000)
    args = ap.parse_args()
    names = [n for n in args.attacks.split(",") if n]
    unknown = set(names) - set(ATTACKS)
    if unknown:
        ap.error(f"unknown attacks: {sorted(unknown)}; known: {sorted(ATTACKS)}")

    import torch

    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load avg {os.getloadavg()[0]:.1f}")
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    cx = rng.integers(0, 256, size=(args.cifar_n, 32, 32, 3), dtype=np.uint8)
    cy = (np.arange(args.cifar_n) % 10).astype(np.int64)
    ctest = rng.integers(0, 256, size=(10_000, 32, 32, 3), dtype=np.uint8)
    n_lc_digits = int(round(0.25 * (ds.y_train == 0).sum()))
    n_lc_cifar = int(round(0.25 * (cy == 0).sum()))

    rows = []
    for name in names:
        if name == "lc":
            d = bench_lc(ds.x_train, ds.y_train, ds.x_test, n_lc_digits, args.lc_images,
                         args.lc_steps, args.lc_width)
            c = bench_lc(cx, cy, ctest, n_lc_cifar, args.lc_images, args.lc_steps, args.lc_width)
            note = (f"PGD extrapolated from {args.lc_images} images x {args.lc_steps} steps "
                    f"(w{args.lc_width}): {c['per_image']:.2f} s/image")
        else:
            d = bench_dirty(name, ds.x_train, ds.y_train, ds.x_test)
            c = bench_dirty(name, cx, cy, ctest)
            note = ""
        _, t_q = timed(lambda a, b: (psnr(a, b), ssim(a, b)), c["x"], c["px"])
        rows.append((name, d, c, t_q, note))
        print(f"  {name}: done", flush=True)

    print()
    print("| attack | digits poisoned | digits poison (s) | CIFAR-sized poisoned | "
          "CIFAR-sized poison (s) | ms / image | 10k test trigger (s) | PSNR+SSIM (s) | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, d, c, t_q, note in rows:
        print(f"| {name} | {d['n']} | {d['poison_s']:.3f} | {c['n']} | {c['poison_s']:.3f} | "
              f"{1000 * c['poison_s'] / max(1, c['n']):.3f} | {c['test_s']:.3f} | {t_q:.3f} "
              f"({len(c['x'])} img) | {note} |")


if __name__ == "__main__":
    main()
