"""How many of a runs directory's MI values sit at their estimator's ceiling.

    python bench/ceiling_share.py RUNS_DIR

Per run and term: the number of (subset, checkpoint) values within 0.1 nats of their ceiling
(log N for noise-aware I(X;T)), out of all, and the range of the values.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ibtui.runs.store import list_runs

MARGIN = 0.1


def main(runs_dir: str) -> None:
    total_hit = total = 0
    for run in list_runs(Path(runs_dir)):
        for term in ("xt", "ty"):
            recs = [r for r in run.mi() if r.get("term") == term]
            if not recs:
                continue
            hits = 0
            for r in recs:
                ceiling = r.get("ceiling")
                if ceiling is None and term == "xt" and r.get("n"):
                    ceiling = math.log(r["n"])  # records written before `ceiling` existed
                hits += ceiling is not None and r["value"] >= ceiling - MARGIN
            vals = [r["value"] for r in recs]
            total_hit += hits
            total += len(recs)
            print(f"{run.id:<45} {term}: {hits:>3}/{len(recs)} at ceiling, "
                  f"values {min(vals):.2f}..{max(vals):.2f}")
    print(f"all: {total_hit}/{total} = {total_hit / max(1, total):.0%} within {MARGIN} nats of the ceiling")


if __name__ == "__main__":
    main(sys.argv[1])
