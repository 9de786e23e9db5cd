"""Stealth score (paper §IV-D, Eq. 5-6; docs/method.md §6). Lower = stealthier.

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

from ibtui.fmt import interval

TARGET_ROLES = ("clean", "backdoor", "all")


def _scored(records: list[dict], roles: dict[str, str], method: str | None) -> list[dict]:
    """The records the score reads: `method`'s I(X;T) and I(T;Ŷ) of the subsets in `roles`,
    with a finite value."""
    return [r for r in records if r.get("method") == method and r.get("subset") in roles
            and r.get("term") in ("xt", "ty") and isinstance(r.get("value"), (int, float))
            and math.isfinite(r["value"])]


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
    recs = _scored(records, roles, method)
    targets = [s for s, r in roles.items() if r in TARGET_ROLES]
    clean = [s for s, r in roles.items() if r == "class"]
    table: dict[str, dict[int, dict[str, float]]] = {"xt": {}, "ty": {}}
    ceiling: dict[str, dict[int, dict[str, bool]]] = {"xt": {}, "ty": {}}
    for r in recs:
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


# --- within-run uncertainty ------------------------------------------------------------------

BOOTSTRAP_B = 500
BOOTSTRAP_COVERS = ("which images form each subset and the k noisy forward draws the "
                    "conditional model is fitted on (settings.image_stderr: the delta-method "
                    "error over images, Monte Carlo error included, and the delete-one-draw "
                    "jackknife over the draws, as a Student-t error; records written before the "
                    "draws were included: "
                    "the images alone; older ones: the Monte Carlo error alone), carried through "
                    "the normalisation and the score")
BOOTSTRAP_MISSES = ("the estimator's bias, the choice of representative epochs, and training "
                    "randomness (seeds)")


def value_stderr(record: dict) -> float | None:
    """The standard error recorded with an MI value: settings.image_stderr (noise-aware: over
    which images form the subset, Monte Carlo error included, and over the noise draws in
    records that carry settings.draws_stderr), else settings.mc_stderr (the
    Monte Carlo error alone, records written before image_stderr) or settings.stderr; None
    when none is a finite number ≥ 0."""
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    for key in ("image_stderr", "mc_stderr", "stderr"):
        v = settings.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
            return float(v)
    return None


def stealth_bootstrap(records: list[dict], roles: dict[str, str], epochs: list[int] | None = None,
                      method: str | None = None, *, b: int = BOOTSTRAP_B, seed: int = 0,
                      level: float = 0.95) -> dict:
    """Within-run 95% intervals of the stealth score, D_XT and D_TY: a parametric bootstrap.

    Each replicate draws every MI value of `method` that the score reads (every checkpoint and
    subset: the min-max normalisation spans them all) as value + stderr·Z, Z ~ N(0, 1)
    independent (stderr from `value_stderr`), and recomputes `stealth_score` on those values at
    the epochs the recorded score used. The interval is the replicates' percentile interval.
    It covers BOOTSTRAP_COVERS; it does not cover BOOTSTRAP_MISSES (across-seed intervals:
    ibtui.analysis.replicas). Because D takes |·|, a difference near 0 folds its replicates
    upward, so the interval can lie above a score close to 0. Seeded: the same records give the
    same interval.

    Returns {score_interval, d_xt_interval, d_ty_interval: [lo, hi] or None, b, level, seed,
    method, covers, misses} plus `note` when no interval can be given (no score, or a value
    without a standard error, as the trained estimators record none)."""
    base = stealth_score(records, roles, epochs=epochs, method=method)
    method = base["method"]
    out: dict = {"score_interval": None, "d_xt_interval": None, "d_ty_interval": None,
                 "b": int(b), "level": level, "seed": seed, "method": method,
                 "covers": BOOTSTRAP_COVERS, "misses": BOOTSTRAP_MISSES}
    if base["score"] is None:
        out["note"] = base.get("note") or "no score"
        return out
    used = _scored(records, roles, method)
    se = [value_stderr(r) for r in used]
    missing = sum(s is None for s in se)
    if missing:
        out["note"] = f"{missing} of {len(used)} {method} MI values carry no standard error"
        return out
    slim = [{"epoch": r["epoch"], "term": r["term"], "subset": r["subset"], "method": method,
             "value": float(r["value"]), "at_ceiling": r.get("at_ceiling")} for r in used]
    values = np.array([r["value"] for r in slim])
    draws = values + np.random.default_rng(seed).standard_normal((int(b), len(slim))) * np.array(se)
    reps = np.empty((int(b), 3))
    for i, row in enumerate(draws):
        for r, v in zip(slim, row, strict=True):
            r["value"] = v
        s = stealth_score(slim, roles, epochs=base["epochs"], method=method)
        reps[i] = s["score"], s["d_xt"], s["d_ty"]
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2], axis=0)
    for j, key in enumerate(("score", "d_xt", "d_ty")):
        out[f"{key}_interval"] = [float(lo[j]), float(hi[j])]
    return out


def run_intervals(summary: dict | None, mi: list[dict]) -> dict | None:
    """A run's within-run bootstrap (as `stealth_bootstrap` returns it): the one its summary
    holds, else (runs summarised before intervals existed) computed now from its mi.jsonl at
    the epochs and method of its recorded score, given only when it reproduces that score.
    None when the run has no summary or no scored stealth block."""
    if not isinstance(summary, dict):
        return None
    st = summary.get("stealth") if isinstance(summary.get("stealth"), dict) else {}
    if isinstance(st.get("bootstrap"), dict):
        return st["bootstrap"]
    score = summary.get("score")
    if not isinstance(score, (int, float)) or not st.get("epochs"):
        return None
    roles = {r["subset"]: r["role"] for r in mi
             if isinstance(r, dict) and isinstance(r.get("subset"), str)
             and isinstance(r.get("role"), str)}
    try:
        out = stealth_bootstrap(mi, roles, epochs=list(st["epochs"]), method=st.get("method"))
        again = stealth_score(mi, roles, epochs=list(st["epochs"]), method=st.get("method"))
    except (KeyError, TypeError, ValueError) as e:  # damaged records: no interval, no crash
        return {"score_interval": None, "note": f"records unreadable ({type(e).__name__})"}
    if out.get("note"):  # no interval anyway (e.g. values without a standard error)
        return out
    if again["score"] is None or abs(again["score"] - score) > 1e-9:
        return {**out, "score_interval": None, "d_xt_interval": None, "d_ty_interval": None,
                "note": "mi.jsonl no longer gives the recorded score"}
    out["computed"] = "now, from mi.jsonl"
    return out


def interval_text(value: float | None, bounds: list | None) -> str:
    """`0.091 [0.083, 0.099]` for a bootstrap's [lo, hi], or the value alone when there is no
    interval ("–": no value)."""
    ok = isinstance(bounds, (list, tuple)) and len(bounds) == 2
    return interval(value, *(bounds if ok else (None, None)))


def bootstrap_label(boot: dict | None) -> str:
    """`(95%, within-run bootstrap, B=500)`, or why there is no interval."""
    if not isinstance(boot, dict):
        return "(no within-run interval)"
    if boot.get("score_interval") is None:
        return f"(no within-run interval: {boot.get('note') or 'not recorded'})"
    level = boot.get("level", 0.95)
    when = ", computed now" if boot.get("computed") else ""
    return f"({level:.0%}, within-run bootstrap, B={boot.get('b')}{when})"


def xt_scale_of(records: list[dict], method: str | None = None) -> float | None:
    """The measurement scale (mi_options.xt_scale > 0) at which these I(X;T) records (of
    `method`, if given) were all measured, or None: the network's own noise, or mixed scales."""
    scales = {(r.get("settings") or {}).get("xt_scale") for r in records
              if r.get("term") == "xt" and (method is None or r.get("method") == method)}
    if len(scales) != 1:
        return None
    scale = scales.pop()
    return float(scale) if isinstance(scale, (int, float)) and scale > 0 else None
