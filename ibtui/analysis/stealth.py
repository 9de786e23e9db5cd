"""Stealth score (paper §IV-D, Eq. 5-6; METHOD.md §6). Lower = stealthier.

1. Min-max normalise every MI value of the run to [0, 1], separately per term (xt, ty),
   over all checkpoints and subsets.
2. D_{m,s}(e) = | MI_{e,m,s} - mean over clean classes c of MI_{e,m,c} | for the target
   subsets s in {t_clean, t_backdoor, t} at each representative epoch e.
3. D_m = mean over e and s; score = (D_XT + D_TY) / 2.

A value within 0.1 nats of its estimator's ceiling (`at_ceiling` in mi.jsonl, e.g. log N) says
only "at least this much": differences between such values are not measurements. The score
never hides them: it reports `ceiling_share`, the share of the values it used (targets and
clean references at the chosen epochs) that sit at their ceiling, and `ceiling_flag` when any
do; the leaderboard shows it next to the score.
"""

from __future__ import annotations

import math

import numpy as np

TARGET_ROLES = ("clean", "backdoor", "all")


def stealth_score(records: list[dict], roles: dict[str, str], epochs: list[int] | None = None,
                  method: str | None = None) -> dict:
    """Score one run's MI records (as in mi.jsonl). `roles` maps subset -> role.

    Only records of `method` (default: the first method seen) count. `epochs`: representative
    epochs (default: every checkpoint that has every needed subset).
    Returns {score, d_xt, d_ty, epochs, per_epoch: {term: {epoch: {subset: D}}}} or, when
    nothing can be scored, the same keys with None and a `note`.
    """
    if method is None and records:
        method = records[0].get("method")
    recs = [r for r in records if r.get("method") == method and r.get("subset") in roles
            and isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])]
    targets = [s for s, r in roles.items() if r in TARGET_ROLES]
    clean = [s for s, r in roles.items() if r == "class"]
    table: dict[str, dict[int, dict[str, float]]] = {"xt": {}, "ty": {}}
    ceiling: dict[str, dict[int, dict[str, bool]]] = {"xt": {}, "ty": {}}
    for r in recs:
        if r.get("term") in table:
            table[r["term"]].setdefault(int(r["epoch"]), {})[r["subset"]] = float(r["value"])
            ceiling[r["term"]].setdefault(int(r["epoch"]), {})[r["subset"]] = r.get("at_ceiling") is True
    out: dict = {"method": method, "score": None, "d_xt": None, "d_ty": None, "epochs": [],
                 "per_epoch": {"xt": {}, "ty": {}}, "ceiling_share": None, "ceiling_flag": False}
    if not clean or not targets:
        out["note"] = "no clean-class or target subsets to compare"
        return out
    complete = sorted(
        e for e in set(table["xt"]) & set(table["ty"])
        if all(s in table[m][e] for m in ("xt", "ty") for s in targets + clean)
    )
    chosen = [e for e in complete if epochs is None or e in set(epochs)]
    if not chosen:
        out["note"] = "no checkpoint with every subset and both terms"
        return out
    d = {}
    for m in ("xt", "ty"):
        # normalise over every checkpoint and subset of the run, not only the chosen epochs
        vals = np.array([v for per_e in table[m].values() for v in per_e.values()])
        lo, span = float(vals.min()), float(vals.max() - vals.min())
        if span < 1e-6:  # a constant curve (e.g. every estimate at its log N ceiling): min-max
            span = 0.0   # would only blow rounding noise up to [0, 1]

        def norm(v: float, lo: float = lo, span: float = span) -> float:
            return (v - lo) / span if span > 0 else 0.0

        ds = []
        for e in chosen:
            ref = float(np.mean([norm(table[m][e][c]) for c in clean]))
            per = {s: abs(norm(table[m][e][s]) - ref) for s in targets}
            out["per_epoch"][m][e] = per
            ds.extend(per.values())
        d[m] = float(np.mean(ds))
    used = [ceiling[m][e][s] for m in ("xt", "ty") for e in chosen for s in targets + clean]
    share = sum(used) / len(used)
    out.update(d_xt=d["xt"], d_ty=d["ty"], score=(d["xt"] + d["ty"]) / 2, epochs=chosen,
               ceiling_share=share, ceiling_flag=share > 0)
    return out
