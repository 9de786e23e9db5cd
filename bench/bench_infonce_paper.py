"""infonce-paper on the paper's 2.92-nat Gaussian (5-d X, Y = X[:3] + N(0, I/6), 10,000 pairs).

    .venv/bin/python bench/bench_infonce_paper.py [--epochs 250] [--batch 512] [--hidden 128]
    .venv/bin/python bench/bench_infonce_paper.py --time-steps 6 [--epochs 0]

The paper's I(T;Ŷ) settings (batch 512, K = 256 negatives from the batch, AdamW lr 5e-4,
wd 1e-4, clip 5, hidden 128, early stop δ 1e-2 with patience 10, mean of the last 5 epochs),
capped at --epochs of its 250 (early stopping may end it sooner). Prints value, error, the
per-epoch curve and seconds per optimiser step.

--time-steps N: before/after seconds per optimiser step at those settings, on one CPU thread:
N steps of each way of computing the batch bound and its gradients, interleaved (round r runs
every way once, so a load change on a shared machine hits all of them alike); the median per
way (wall-clock and CPU process time) is printed with its ratio to the fused one:
  plain       every (a_i, b_neg) pair concatenated and run through the whole MLP;
  factorised  first layer once per a and once per b, layers 2-3 on every pair (autograd; what
              infonce-paper ran before 2026-11-30);
  fused       `critics.infonce_batch` (distinct pairs only, layers 2-3 fused in chunks; now).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ibtui.mi import tasks as T
from ibtui.mi.critics import ConcatCritic, infonce_batch, infonce_batch_reference
from ibtui.mi.estimate import estimate


def time_steps(n: int, batch: int, negatives: int, hidden: int) -> dict[str, tuple[float, float]]:
    task = T.paper_gaussian(10_000)
    ways = {
        "plain": lambda c, a, b, neg: infonce_batch_reference(c, a, b, neg, plain=True),
        "factorised": lambda c, a, b, neg: infonce_batch_reference(c, a, b, neg),
        "fused": infonce_batch,
    }
    torch.manual_seed(0)
    critics = {k: ConcatCritic(5, 3, hidden) for k in ways}
    for c in critics.values():
        c.load_state_dict(critics["plain"].state_dict())
    opts = {k: torch.optim.AdamW(c.parameters(), lr=5e-4, weight_decay=1e-4)
            for k, c in critics.items()}
    gen = torch.Generator().manual_seed(0)
    secs: dict[str, list[float]] = {k: [] for k in ways}
    cpu: dict[str, list[float]] = {k: [] for k in ways}
    for r in range(n + 1):  # round 0: warm-up, not counted
        idx = torch.randint(0, len(task.a), (batch,), generator=gen)
        neg = torch.randint(0, batch, (batch, negatives), generator=gen)
        for k, fn in ways.items():
            t0, c0 = time.perf_counter(), time.process_time()
            est = fn(critics[k], task.a[idx], task.b[idx], neg)
            opts[k].zero_grad(set_to_none=True)
            (-est).backward()
            torch.nn.utils.clip_grad_norm_(critics[k].parameters(), 5.0)
            opts[k].step()
            if r:
                secs[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
    return {k: (statistics.median(secs[k]), statistics.median(cpu[k])) for k in ways}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=250, help="0 = skip the estimator run")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--negatives", type=int, default=256)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--time-steps", type=int, default=0, metavar="N")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.time_steps:
        med = time_steps(args.time_steps, args.batch, args.negatives, args.hidden)
        print(f"seconds per step (median of {args.time_steps}, B {args.batch}, K "
              f"{args.negatives}, hidden {args.hidden}, 1 thread): wall, CPU (process time: "
              "what the step itself used, less sensitive to other jobs on a shared machine)")
        for k, (wall, cpu) in med.items():
            print(f"  {k:<11} wall {wall:.3f} s ({wall / med['fused'][0]:.2f}x the fused), "
                  f"CPU {cpu:.3f} s ({cpu / med['fused'][1]:.2f}x)")
    if not args.epochs:
        return
    task = T.paper_gaussian(10_000)
    t0 = time.perf_counter()
    e = estimate(task.a, task.b, "infonce-paper", term="ty", seed=0, max_epochs=args.epochs,
                 batch_size=args.batch, negatives=args.negatives, hidden=args.hidden)
    secs = time.perf_counter() - t0
    steps = e.settings["epochs"] * -(-len(task.a) // args.batch)
    print(f"value {e.value:.3f}, truth {task.truth:.3f}, error {e.value / task.truth - 1:+.1%}, "
          f"ceiling {e.ceiling:.2f}, epochs {e.settings['epochs']}, converged "
          f"{e.settings['converged']}, {secs:.0f} s ({steps} steps, {secs / steps:.2f} s/step)")
    print("curve", e.settings["curve"])


if __name__ == "__main__":
    main()
