"""How many of a runs directory's MI values sit at their estimator's ceiling, and whether the
I(X;T) curves move.

    python bench/ceiling_share.py RUNS_DIR

Per run and term: the number of (subset, checkpoint) values within 0.1 nats of their ceiling
(log N for noise-aware I(X;T)), out of all, and the range of the values. For noise-aware I(X;T)
measured at a measurement scale (`xt_scale` > 0) every record also holds the value at the
network's own noise (`settings.network_noise_value`, the paper's quantity): both are counted, so
one run gives the before/after of the measurement scale. "moves" = the mean over subsets of each
curve's range over checkpoints (max − min across epochs), in nats.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

from ibtui.runs.store import list_runs

MARGIN = 0.1


def _ceiling(r: dict) -> float | None:
    ceiling = r.get("ceiling")
    if ceiling is None and r.get("term") == "xt" and r.get("n"):
        ceiling = math.log(r["n"])  # records written before `ceiling` existed
    return ceiling


def _movement(recs: list[dict], value) -> float:
    curves = defaultdict(list)
    for r in recs:
        curves[r["subset"]].append(value(r))
    ranges = [max(v) - min(v) for v in curves.values() if len(v) > 1]
    return sum(ranges) / len(ranges) if ranges else 0.0


def main(runs_dir: str) -> None:
    totals = defaultdict(lambda: [0, 0])
    moves = defaultdict(list)
    for run in list_runs(Path(runs_dir)):
        for term in ("xt", "ty"):
            recs = [r for r in run.mi() if r.get("term") == term and r.get("method") == "noise-aware"]
            if not recs:
                continue
            kinds = {"as recorded": lambda r: r["value"]}
            if term == "xt" and all("network_noise_value" in r.get("settings", {}) for r in recs):
                kinds["network noise only"] = lambda r: r["settings"]["network_noise_value"]
            for kind, value in kinds.items():
                hits = sum(_ceiling(r) is not None and value(r) >= _ceiling(r) - MARGIN for r in recs)
                vals = [value(r) for r in recs]
                move = _movement(recs, value)
                totals[(term, kind)][0] += hits
                totals[(term, kind)][1] += len(recs)
                moves[(term, kind)].append(move)
                print(f"{run.id:<45} {term} {kind:<19}: {hits:>3}/{len(recs)} at ceiling, "
                      f"values {min(vals):.2f}..{max(vals):.2f}, moves {move:.2f} nats")
    for (term, kind), (hit, n) in sorted(totals.items()):
        mv = moves[(term, kind)]
        print(f"all {term} {kind:<19}: {hit}/{n} = {hit / max(1, n):.0%} within {MARGIN} nats of "
              f"the ceiling; curves move {sum(mv) / len(mv):.2f} nats on average")
    xt = [(kind, h / max(1, n)) for (term, kind), (h, n) in totals.items() if term == "xt"]
    if len(xt) == 2:
        before = dict(xt)["network noise only"]
        after = dict(xt)["as recorded"]
        print(f"I(X;T) share at the ceiling: network noise only {before:.0%} -> measurement "
              f"scale {after:.0%}")


if __name__ == "__main__":
    main(sys.argv[1])
