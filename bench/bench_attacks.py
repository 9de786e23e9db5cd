"""Attack fidelity and perceptibility per attack and variant.

1. Fidelity: on the golden inputs (tests/data/golden_inputs.npy, 6 images), the max and mean
   absolute difference (0-255) between ibtui's poisoned training / triggered test images and the
   reference equations of tests/test_attacks_golden.py. Target: <= 1 everywhere.
2. For the record, the pre-fix FTrojan rule (coefficient set to the magnitude) against the
   reference (coefficient increased by the magnitude), on the same inputs.
3. Perceptibility: PSNR / SSIM of poisoned training images against their originals, per attack
   and variant, on the golden inputs (colour) and on digits (greyscale; the images each variant's
   index rule selects at 10 %, LC 25 % of the target class with the gallery's quick clean model).

Usage: .venv/bin/python bench/bench_attacks.py [--no-digits] [--cache-dir /tmp/ibtui-bench-cache]
Prints markdown tables (pasted into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_attacks_golden import CASES, PATTERN, golden_inputs, ref_ftrojan, run_case  # noqa: E402

from ibtui.data.attacks import ATTACKS  # noqa: E402
from ibtui.data.quality import psnr, ssim  # noqa: E402


def fidelity() -> None:
    print("| attack / variant | train max | train mean | test max | test mean |")
    print("|---|---|---|---|---|")
    for case_id, name, options, reference in CASES:
        px, tx, rx, rt = run_case(name, options, reference)
        d_tr = np.abs(px.astype(int) - rx.astype(int))
        d_te = np.abs(tx.astype(int) - rt.astype(int))
        print(f"| {case_id} | {d_tr.max()} | {d_tr.mean():.4f} | {d_te.max()} | {d_te.mean():.4f} |")
    x, _ = golden_inputs()
    for mag in (30.0, 20.0):
        d = np.abs(ref_ftrojan(x, mag, mode="set").astype(int) - ref_ftrojan(x, mag))
        print(f"\npre-fix FTrojan rule (set to {mag:g}) vs the reference (add {mag:g}): "
              f"max {d.max()}, mean {d.mean():.3f}; greyscale input only (image 1): "
              f"max {d[1].max()}")


def quality_golden() -> None:
    print("| attack / variant | PSNR (dB) | SSIM |")
    print("|---|---|---|")
    x, _ = golden_inputs()
    for case_id, name, options, reference in CASES:
        px, _, _, _ = run_case(name, options, reference)
        print(f"| {case_id} | {psnr(x, px):.2f} | {ssim(x, px):.4f} |")


def quality_digits(cache_dir: Path) -> None:
    from ibtui.data.datasets import load_dataset
    from ibtui.data.gallery import poison_examples, variant_label

    ds = load_dataset("digits")
    print("| attack / variant | images | PSNR (dB) | SSIM | note | seconds |")
    print("|---|---|---|---|---|---|")
    for name in ["badnets", "blend", "wanet", "lc", "adap-blend", "ftrojan"]:
        for variant in ATTACKS[name].variants:
            opts = {"variant": variant}
            if name == "blend" and variant == "backdoorbench":
                opts["pattern"] = str(PATTERN)  # stand-in for BackdoorBench's photo
            t = time.time()
            r = poison_examples(ds, name, options=opts, cache_dir=cache_dir)
            note = r["note"] or ("pattern: tests/data/pattern_47x39.png" if "pattern" in opts else "")
            print(f"| {name} / {variant_label(name, variant)} | {r['n']} | {r['psnr']:.2f} | "
                  f"{r['ssim']:.4f} | {note} | {time.time() - t:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/ibtui-bench-cache"))
    args = ap.parse_args()
    print("### Fidelity to the reference equations (golden inputs, 0-255)\n")
    fidelity()
    print("\n### PSNR / SSIM per variant, golden inputs (6 colour/grey images)\n")
    quality_golden()
    if not args.no_digits:
        print("\n### PSNR / SSIM per variant, digits (the images each index rule selects)\n")
        quality_digits(args.cache_dir)


if __name__ == "__main__":
    main()
