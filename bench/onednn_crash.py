"""Minimal reproduction of the torch 2.14 CPU (oneDNN) heap corruption behind the worker crashes.

Backward of a strided 1x1 convolution whose input is in channels_last layout, with fewer than 16
input channels, an odd batch of 3 or more and 2 or more OpenMP threads, corrupts the heap
(SIGSEGV, SIGABRT "free(): invalid next size", SIGBUS). ResNet-18's first downsampling shortcut
at width 8 is exactly that layer, and the last batch of an epoch on digits (1,347 images, batch
64) has 3 images. The same layer on plain NCHW input never crashes; ibtui keeps CPU activations
in NCHW (ibtui/models/noisy.py, NoisyNet.preprocess).

    python bench/onednn_crash.py          # each case in its own subprocess, 2 threads

prints one line per case: the layout, channels, batch, and whether the process survived.
"""

from __future__ import annotations

import os
import subprocess
import sys

CASE = """
import sys, torch
from torch import nn
layout, c, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conv = nn.Conv2d(c, 2 * c, 1, 2, bias=False)
fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
for _ in range(30):
    x = torch.rand(b, c, 16, 16).contiguous(memory_format=fmt).requires_grad_()
    conv(x).sum().backward()
"""


def run_case(layout: str, channels: int, batch: int, threads: int = 2) -> int:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run([sys.executable, "-c", CASE, layout, str(channels), str(batch)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return p.returncode


def main() -> None:
    import torch

    print(f"torch {torch.__version__}, 2 OpenMP threads, 1x1 stride-2 conv backward")
    crashed = {"channels_last": 0, "nchw": 0}
    cases = [(c, b) for c in (4, 8, 16) for b in (2, 3, 5)]
    for layout in crashed:
        for c, b in cases:
            rc = run_case(layout, c, b)
            crashed[layout] += rc != 0
            print(f"{layout:>13}  in-channels {c:>2}  batch {b}  "
                  + ("ok" if rc == 0 else f"CRASHED (rc {rc})"), flush=True)
    print(f"crashed: channels_last {crashed['channels_last']}/{len(cases)}, "
          f"nchw {crashed['nchw']}/{len(cases)}")


if __name__ == "__main__":
    main()
