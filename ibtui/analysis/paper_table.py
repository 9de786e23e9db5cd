"""The paper's Table I beside the measured one (`ibtui report --paper`).

The paper's values (CIFAR-10, noisy ResNet-18, 10% poison, LC at 25% of the target class, its
InfoNCE estimator at the network's own noise, 120 epochs; docs/method.md §6) are facts to compare
with, not to reproduce to the digit: the data, schedule, width and estimator differ here, and
the table says so. For every attack it prints the paper's D_XT, D_TY and score next to the
measured mean and 95% Student-t interval over seeds (ibtui.analysis.replicas.mean_interval),
marking ✔ where the paper's value lies inside the measured interval.

Only runs whose backdoor was learned count: a poisoned run is kept when its final ASR reaches
its experiment's `min_asr` (default 0.9) and its clean accuracy is at least chance + half the
way to 1; the runs set aside are counted per attack. Which attacks the data tell apart is
decided per pair by Welch's two-sample t-test on the per-seed stealth scores (two-sided,
unequal variances), with Holm's step-down correction over all pairs at family-wise level 0.05.
The paper's two headline claims are then read off those tests:
- "BadNets is the most model-stealthy": holds when BadNets' mean score is the lowest and it is
  significantly lower than every other attack; contradicted when some attack is significantly
  lower than BadNets; otherwise "cannot tell".
- "FTrojan is the least model-stealthy": the same with the highest score.
"""

from __future__ import annotations

import math

from ibtui.analysis.replicas import mean_interval
from ibtui.data.attacks import attack_title, paper_rank
from ibtui.fmt import NONE, interval, mean_pm

# docs/method.md §6, Table I, CIFAR-10 (LC at 25% of the target class, the others at 10%)
PAPER_TABLE_I = {
    "badnets": {"d_xt": 0.3903, "d_ty": 0.1736, "score": 0.2820},
    "blend": {"d_xt": 0.3920, "d_ty": 0.4956, "score": 0.4438},
    "wanet": {"d_xt": 0.3263, "d_ty": 0.4727, "score": 0.3995},
    "lc": {"d_xt": 0.5930, "d_ty": 0.4632, "score": 0.5281},
    "adap-blend": {"d_xt": 0.5333, "d_ty": 0.4150, "score": 0.4742},
    "ftrojan": {"d_xt": 0.4163, "d_ty": 0.6833, "score": 0.5498},
}
PAPER_SETTING = ("CIFAR-10, noisy ResNet-18 (width 64), 120 epochs, 10% poison (LC: 25% of the "
                 "target class), InfoNCE at the network's own noise")
VALUES = ("d_xt", "d_ty", "score")
ALPHA = 0.05
ASR_MIN = 0.9
TEST_NAME = ("Welch's two-sample t-test on per-seed stealth scores (two-sided), Holm-corrected "
             "over all pairs at family-wise 0.05")


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def learned(run: dict) -> str | None:
    """None when the run counts; else why it is set aside. `run`: report.finished_runs' record."""
    s, summ = run["settings"], run["summary"]
    acc = _num(summ.get("clean_acc"))
    floor = 0.1 + 0.9 / 2
    if acc is None:
        return "no clean accuracy"
    if acc < floor:
        return f"clean task not learned (acc {acc:.2f} < {floor:.2f})"
    if s.get("attack") == "none":
        return None
    need = _num(s.get("min_asr"))
    need = ASR_MIN if need is None else need
    asr = _num(summ.get("asr"))
    if asr is None:
        return "no ASR"
    if asr < need:
        return f"backdoor not learned (ASR {asr:.2f} < {need:g})"
    return None


def _row_key(run: dict) -> tuple:
    s = run["settings"]
    return (str(s.get("attack")), _num(s.get("poison_rate")),
            bool((s.get("attack_options") or {}).get("balance")), str(s.get("dataset")))


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None with fewer than two values on a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    if max(a) == min(a) and max(b) == min(b):
        return 0.0 if a[0] != b[0] else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(pvals: dict) -> dict:
    """Holm's step-down adjusted p-values (monotone, capped at 1)."""
    items = sorted(((p, k) for k, p in pvals.items() if p is not None), key=lambda t: t[0])
    m, out, running = len(items), {}, 0.0
    for i, (p, k) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def compare(runs: list[dict], aside: list[dict] | None = None) -> dict:
    """{rows, pairs, claims, set_aside} over report.finished_runs' records (poisoned rows at
    their paper rate and unbalanced only: 10%, LC 25%; other rates/settings are left out)."""
    rows: dict[tuple, dict] = {}
    for r in [*runs, *(aside or [])]:
        key = _row_key(r)
        attack, rate, balanced, _ = key
        if attack == "none" or balanced or attack not in PAPER_TABLE_I:
            continue
        if rate is None or abs(rate - (0.25 if attack == "lc" else 0.1)) > 1e-9:
            continue
        row = rows.setdefault(key, {"attack": attack, "rate": rate, "dataset": key[3],
                                    "runs": [], "aside": []})
        why = r.get("why") or learned(r)
        (row["aside"] if why else row["runs"]).append((r, why))
    out_rows = []
    for key in sorted(rows, key=lambda k: (paper_rank(k[0]), k[3])):
        row = rows[key]
        rec = {"attack": row["attack"], "rate": row["rate"], "dataset": row["dataset"],
               "n": len(row["runs"]), "aside": [why for _, why in row["aside"]],
               "scores": [v for v in (_num(r["summary"].get("score")) for r, _ in row["runs"])
                          if v is not None]}
        for v in (*VALUES, "asr", "clean_acc"):
            vals = [x for x in (_num(r["summary"].get(v)) for r, _ in row["runs"]) if x is not None]
            iv = mean_interval(vals)
            if iv is not None and (iv.lo is None or iv.hi is None):
                iv = None  # one seed: no interval
            rec[v] = sum(vals) / len(vals) if vals else None
            rec[f"{v}_lo"], rec[f"{v}_hi"] = (None, None) if iv is None else (iv.lo, iv.hi)
            if v in VALUES:
                paper = PAPER_TABLE_I[row["attack"]][v]
                rec[f"paper_{v}"] = paper
                rec[f"{v}_inside"] = (None if iv is None else iv.lo <= paper <= iv.hi)
        out_rows.append(rec)
    pairs = {}
    for i, a in enumerate(out_rows):
        for b in out_rows[i + 1:]:
            pairs[(a["attack"], b["attack"])] = welch_p(a["scores"], b["scores"])
    adj = holm(pairs)
    pair_rows = []
    for (a, b), p in pairs.items():
        ra = next(r for r in out_rows if r["attack"] == a)
        rb = next(r for r in out_rows if r["attack"] == b)
        q = adj.get((a, b))
        pair_rows.append({"a": a, "b": b, "p": p, "p_holm": q,
                          "distinguished": q is not None and q < ALPHA,
                          "lower": None if q is None or q >= ALPHA else
                          (a if ra["score"] < rb["score"] else b)})
    return {"rows": out_rows, "pairs": pair_rows,
            "claims": {"badnets_most": _claim(out_rows, pair_rows, "badnets", lowest=True),
                       "ftrojan_least": _claim(out_rows, pair_rows, "ftrojan", lowest=False)}}


def _claim(rows: list[dict], pairs: list[dict], attack: str, lowest: bool) -> tuple[str, str]:
    """("holds" | "contradicted" | "cannot tell", why)."""
    me = next((r for r in rows if r["attack"] == attack and r["score"] is not None), None)
    others = [r for r in rows if r["attack"] != attack and r["score"] is not None]
    nm = attack_title

    if me is None or me["n"] < 2:
        return "cannot tell", f"{nm(attack)}: fewer than 2 learned runs"
    if not others:
        return "cannot tell", "no other attack with learned runs"
    rel = []
    untested = sorted({nm(r["attack"]) for r in rows
                       if r["attack"] != attack and len(r["scores"]) < 2})
    for p in pairs:
        if attack not in (p["a"], p["b"]) or p["p_holm"] is None:
            continue  # a side without two learned runs is not ranked
        other = nm(p["b"] if p["a"] == attack else p["a"])
        if not p["distinguished"]:
            rel.append((other, "tie"))
        elif (p["lower"] == attack) == lowest:
            rel.append((other, "beats"))
        else:
            rel.append((other, "loses"))
    word = "lower" if lowest else "higher"
    losses = [o for o, k in rel if k == "loses"]
    ties = [o for o, k in rel if k == "tie"]
    note = f"; not ranked, fewer than 2 learned runs: {', '.join(untested)}" if untested else ""
    if not rel:
        return "cannot tell", "no other attack with two learned runs" + note
    if losses:
        return "contradicted", (f"{', '.join(losses)} significantly {word} than {nm(attack)}"
                                + note)
    if ties:
        return "cannot tell", f"not told apart from {', '.join(ties)}" + note
    return "holds", (f"significantly {word} than every other ranked attack ({len(rel)} pairs)"
                     + note)


def _fmt(rec: dict, v: str) -> str:
    m, lo, hi = rec.get(v), rec.get(f"{v}_lo"), rec.get(f"{v}_hi")
    if lo is None or hi is None:
        return mean_pm(m, None, None) if m is not None else NONE
    # every value here lies in [0, 1] (rates, min-max normalised D): so does its interval
    return interval(m, max(0.0, lo), min(1.0, hi))


def render(result: dict, runs_dir: str = "") -> str:
    name = attack_title

    rows = result["rows"]
    lines = [f"Measured ({runs_dir or 'runs'}: learned runs only, mean [95% t-interval over "
             "seeds]) beside the paper's Table I "
             f"({PAPER_SETTING}). ✔ = the paper's value lies inside the measured interval.", "",
             "| attack | n learned (set aside) | ASR | clean acc | D_XT | paper | D_TY | paper "
             "| score | paper |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        label = name(r["attack"]) + (f"-{r['rate'] * 100:g}%" if r["attack"] == "lc" else "")
        cells = [label, f"{r['n']} ({len(r['aside'])})", _fmt(r, "asr"), _fmt(r, "clean_acc")]
        for v in VALUES:
            mark = {True: " ✔", False: "", None: ""}[r.get(f"{v}_inside")]
            cells += [_fmt(r, v), f"{r[f'paper_{v}']:.4f}{mark}"]
        lines.append("| " + " | ".join(cells) + " |")
    aside = [(r["attack"], why) for r in rows for why in r["aside"]]
    if aside:
        kinds: dict[str, int] = {}
        for a, why in aside:
            kinds[f"{name(a)}: {why.split(' (')[0]}"] = kinds.get(f"{name(a)}: {why.split(' (')[0]}", 0) + 1
        lines += ["", "Set aside (not ranked): " + "; ".join(f"{k} ×{n}" for k, n in kinds.items())]
    ranked = sorted((r for r in rows if r["score"] is not None), key=lambda r: r["score"])
    lines += ["", "Ranking by mean score (learned runs only, lower = stealthier): " +
              " < ".join(f"{name(r['attack'])} {r['score']:.3f}" for r in ranked), "",
              f"Pairwise: {TEST_NAME}.", "",
              "| pair | p | p (Holm) | told apart? |", "|---|---|---|---|"]
    for p in result["pairs"]:
        verdict = ("yes: " + name(p["lower"]) + " lower") if p["distinguished"] else \
            ("no" if p["p_holm"] is not None else "cannot test (n < 2)")
        lines.append(f"| {name(p['a'])} vs {name(p['b'])} | "
                     f"{'–' if p['p'] is None else format(p['p'], '.3g')} | "
                     f"{'–' if p['p_holm'] is None else format(p['p_holm'], '.3g')} | {verdict} |")
    c = result["claims"]
    lines += ["", "The paper's claims on these runs:",
              f"- \"BadNets is the most model-stealthy\": **{c['badnets_most'][0]}** "
              f"({c['badnets_most'][1]}).",
              f"- \"FTrojan is the least model-stealthy\": **{c['ftrojan_least'][0]}** "
              f"({c['ftrojan_least'][1]}).",
              "", "What differs from the paper: the data (here: the runs' own dataset, e.g. 8×8 "
              "digits upscaled), the width and schedule, and the estimator and scale (the score is "
              "the one each run recorded, by default noise-aware I(X;T) at xt_scale 0.5), so the "
              "paper's values are a reference point, not a prediction of these numbers."]
    return "\n".join(lines) + "\n"


def paper_report(listed: list, where: str = "") -> str:
    """The comparison with the paper's Table I over the runs `listed` (one runs directory's,
    named `where` in the text)."""
    from ibtui.analysis.report import NO_FINISHED_RUNS, finished_runs
    from ibtui.errors import RunStoreError

    aside: list = []
    runs = finished_runs(listed, aside)  # validity names the runs it sets aside
    extra = []
    if aside:
        specs = {r.id: r for r in listed}
        for run_id, verdict in aside:
            r = specs.get(run_id)
            if r is None:
                continue
            settings = dict(r.spec or {})
            reasons = getattr(verdict, "reasons", None) or ["set aside"]
            extra.append({"id": run_id, "settings": settings, "summary": r.summary or {},
                          "why": "; ".join(reasons)})
    if not runs and not extra:
        raise RunStoreError(NO_FINISHED_RUNS)
    result = compare(runs, extra)
    if not result["rows"]:
        raise RunStoreError("no finished run at the paper's Table I setting (poison_rate 0.1; "
                            "LC 0.25 of the target class) to set beside it")
    return render(result, where)
