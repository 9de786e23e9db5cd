"""The four training phases of paper §IV-C (docs/method.md §1), found on a run's MI curves.

Rule (one MI method: the first one in the records):

1. Curve c(e) = mean over the clean classes (role "class") of I(X;T) at every checkpoint e
   (fallback when a run has no clean-class subsets: the target's clean samples, then every
   subset).
2. R = max c - min c; tolerance tol = 10 % of R.
3. **Transition**: the peak checkpoint p = argmax c (first one on ties), widened to the
   contiguous checkpoints around it whose value is within tol of the peak.
4. **Early learning**: every checkpoint before the transition.
5. **Convergence**: the checkpoints after the transition from the first one q from which the
   curve stays within tol of its final value up to the end.
6. **Compression**: the checkpoints between the transition and q (I(X;T) falls there).
7. A phase left without a checkpoint of its own borrows one (listed in `shared`): early the
   first checkpoint, compression the first post-transition checkpoint when convergence has
   two or more (else the last checkpoint), convergence the last checkpoint.
   `compression_observed` is false when the curve's final value is within tol of the peak.

Representative epochs (for `stealth_epochs = "phases"` and t-SNE): early = the middle
checkpoint of the phase (upper median: 5 of [1, 5]), transition = the peak, compression = the
middle checkpoint of the phase (lower median), convergence = the last checkpoint.
"""

from __future__ import annotations

import math

PHASES = ("early", "transition", "compression", "convergence")
TOLERANCE = 0.10

RULE = ("curve = clean-class mean I(X;T); transition = checkpoints within 10% of the curve's "
        "range of its peak, contiguous around the peak; early = before it; convergence = after "
        "it, from the first checkpoint where the curve stays within 10% of the range of its "
        "final value; compression = between transition and convergence; representatives: "
        "middle of early (upper median), peak, middle of compression, last checkpoint")


def _roles(mi_records: list[dict], roles: dict[str, str] | None) -> dict[str, str]:
    out = dict(roles or {})
    for r in mi_records:
        s, role = r.get("subset"), r.get("role")
        if isinstance(s, str) and isinstance(role, str) and s not in out:
            out[s] = role
    return out


def xt_curve(mi_records: list[dict], roles: dict[str, str] | None,
             method: str | None = None) -> tuple[str | None, str, list[tuple[int, float]]]:
    """(method, which subsets, [(epoch, value)]) of the curve the phases are read from."""
    roles = _roles(mi_records, roles)
    if method is None:
        method = next((r.get("method") for r in mi_records if r.get("term") == "xt"), None)
    recs = [r for r in mi_records if r.get("term") == "xt" and r.get("method") == method
            and isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])
            and isinstance(r.get("epoch"), (int, float))]
    for source, wanted in (("clean classes", {"class"}), ("target clean", {"clean"}),
                           ("all subsets", None)):
        per: dict[int, list[float]] = {}
        for r in recs:
            if wanted is None or roles.get(r.get("subset")) in wanted:
                per.setdefault(int(r["epoch"]), []).append(float(r["value"]))
        if per:
            return method, source, [(e, sum(v) / len(v)) for e, v in sorted(per.items())]
    return method, "none", []


def _median(items: list[int], upper: bool) -> int:
    return items[len(items) // 2] if upper else items[(len(items) - 1) // 2]


def detect_phases(mi_records: list[dict], roles: dict[str, str] | None,
                  tolerance: float = TOLERANCE) -> dict | None:
    """Phases of one run from its MI records (mi.jsonl lines). None when no I(X;T) value."""
    method, source, curve = xt_curve(mi_records, roles)
    if not curve:
        return None
    epochs = [e for e, _ in curve]
    c = [v for _, v in curve]
    n = len(c)
    hi, lo = max(c), min(c)
    tol = tolerance * (hi - lo) + 1e-9 * max(1.0, abs(hi))  # float slack
    p = c.index(hi)
    t0 = p
    while t0 > 0 and c[t0 - 1] >= hi - tol:
        t0 -= 1
    t1 = p
    while t1 < n - 1 and c[t1 + 1] >= hi - tol:
        t1 += 1
    idx: dict[str, list[int]] = {"early": list(range(t0)), "transition": list(range(t0, t1 + 1))}
    post = list(range(t1 + 1, n))
    q = n
    for j in reversed(post):
        if abs(c[j] - c[-1]) <= tol:
            q = j
        else:
            break
    idx["compression"] = [j for j in post if j < q]
    idx["convergence"] = [j for j in post if j >= q]
    shared = []
    if not idx["early"]:
        idx["early"] = [0]
        shared.append("early")
    if not idx["compression"]:
        if len(idx["convergence"]) >= 2:
            idx["compression"] = [idx["convergence"].pop(0)]
        else:
            idx["compression"] = [n - 1]
            shared.append("compression")
    if not idx["convergence"]:
        idx["convergence"] = [n - 1]
        shared.append("convergence")
    rep_idx = {"early": _median(idx["early"], upper=True), "transition": p,
               "compression": _median(idx["compression"], upper=False),
               "convergence": idx["convergence"][-1]}
    out: dict = {
        "rule": RULE,
        "method": method,
        "curve_source": source,
        "tolerance": tolerance,
        "phases": {k: [epochs[idx[k][0]], epochs[idx[k][-1]]] for k in PHASES},
        "checkpoints": {k: [epochs[i] for i in idx[k]] for k in PHASES},
        "representative": {k: epochs[rep_idx[k]] for k in PHASES},
        "representative_epochs": sorted({epochs[i] for i in rep_idx.values()}),
        "peak_epoch": epochs[p],
        "peak_value": hi,
        "compression_observed": bool(c[-1] < hi - tol),
        "shared": shared,
        "curve": [[e, v] for e, v in curve],
    }
    notes = []
    if n < 4:
        notes.append(f"only {n} checkpoint{'s' if n != 1 else ''}: phases share checkpoints")
    elif shared:
        notes.append(f"phases without a checkpoint of their own: {', '.join(shared)}")
    if not out["compression_observed"]:
        notes.append("I(X;T) of the clean classes does not fall after its peak: "
                     "no compression observed")
    if source != "clean classes":
        notes.append(f"no clean-class subsets: curve from {source}")
    if notes:
        out["note"] = "; ".join(notes)
    return out
