"""`ibtui alarm-eval`: how well the backdoor alarm (ibtui.analysis.alarm) and the two baselines
tell poisoned runs from clean ones and name the target, over finished runs of a runs directory
(bench/alarm_grid.toml is the grid; bench/alarm_eval.sh the command).

Ground truth (attack, target, poison rate, seed) is read here from each run's spec, for scoring
only; the detectors never see it. Per method and reference mode:
- run statistic: the largest suspicion z (top class) at the last checkpoint;
- AUROC poisoned vs clean per (attack, rate): per seed, the share of (poisoned, clean) pairs the
  statistic orders right (ties 1/2) against every clean run; mean and [min, max] over seeds;
- top-1: share of seeds whose top class is the target (poisoned runs), with its count;
- detected: share of seeds whose alarm fires (p <= ALPHA) naming the target;
- first epoch: median over seeds of the first checkpoint from which on the alarm names the target
  ("-" when it never does);
- a pooled row per rate over the five dirty-label attacks (the target set for the alarm: AUROC >= 0.9 and
  top-1 >= 80% at 10%);
- false-positive rate: clean runs whose alarm fires at the last checkpoint (any class).
Reference modes: "none" (robust z across classes alone) and "clean-ref" (each run corrected by
the clean runs of the other seeds: the null fitted on clean runs, leave-one-seed-out).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ibtui.analysis import alarm

METHODS = ["dynamics", "representation", "mi", "loss", "ac", "ss", "size"]
MAIN = ["dynamics", "ac", "ss"]
MODES = ["none", "clean-ref"]


def collect(listed: list) -> list[dict]:
    """The finished runs among `listed` with their truth and detector inputs."""
    out = []
    for r in listed:
        if r.state != "done" or not r.spec:
            continue
        inp = alarm.load_inputs(r.path)
        if not inp["classes"]:
            continue
        s = r.spec
        attack = s.get("attack")
        if (s.get("attack_options") or {}).get("balance"):
            attack = f"{attack}{BALANCED}"  # its own rows: class counts carry no signal there
        out.append({"id": r.id, "attack": attack, "clean": s.get("attack") == "none",
                    "target": s.get("target"), "rate": s.get("poison_rate"), "seed": s.get("seed"),
                    "epochs": s.get("epochs"), "inp": inp})
    return out


def _auroc(pos: float, negs: list[float]) -> float | None:
    if not negs or pos is None or not math.isfinite(pos):
        return None
    return float(np.mean([1.0 if pos > n else 0.5 if pos == n else 0.0 for n in negs]))


def judge_runs(runs: list[dict], method: str, mode: str) -> dict[str, dict]:
    """Per run id: the last verdict and the timeline under (method, mode)."""
    clean = [r for r in runs if r["clean"]]
    out = {}
    for r in runs:
        refs = None
        if mode == "clean-ref":
            refs = [c["inp"] for c in clean if c["seed"] != r["seed"] and c["id"] != r["id"]]
        tl = alarm.timeline(r["inp"], method, references=refs)
        if not tl:
            continue
        first = None
        if not r["clean"]:
            for v in reversed(tl):
                if v["alarm"] and v["top_class"] == r["target"]:
                    first = v["epoch"]
                else:
                    break
        out[r["id"]] = {"last": tl[-1], "first_right": first, "ever": any(v["alarm"] for v in tl)}
    return out


def evaluate(runs: list[dict], methods: list[str] | None = None,
             modes: list[str] | None = None) -> list[dict]:
    """One row per (mode, method, attack, rate) plus a 'clean' row per (mode, method)."""
    rows = []
    for mode in modes or MODES:
        for method in methods or METHODS:
            res = judge_runs(runs, method, mode)
            clean = [r for r in runs if r["clean"] and r["id"] in res]
            neg = [res[r["id"]]["last"]["z"] for r in clean]
            fp = [res[r["id"]]["last"]["alarm"] for r in clean]
            fp_ever = [res[r["id"]]["ever"] for r in clean]
            rows.append({"mode": mode, "method": method, "attack": "none (clean)", "rate": 0.0,
                         "n": len(clean), "fpr": _mean(fp), "fpr_any_checkpoint": _mean(fp_ever),
                         "fpr_k": int(sum(fp)), "fpr_ci": wilson(int(sum(fp)), len(fp))})
            groups: dict[tuple, list[dict]] = {}
            for r in runs:
                if not r["clean"] and r["id"] in res:
                    groups.setdefault((r["attack"], r["rate"]), []).append(r)
            pooled: dict[tuple, list[dict]] = {}
            for (attack, rate), grp in groups.items():
                if _label_mode(attack) == "dirty":
                    name = POOLED + (BALANCED if str(attack).endswith(BALANCED) else "")
                    pooled.setdefault((name, rate), []).extend(grp)
            order = sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
            order += sorted(pooled.items(), key=lambda kv: kv[0][1])
            for (attack, rate), grp in order:
                # AUROC per seed (its poisoned runs against every clean run), then over seeds
                by_seed: dict = {}
                for r in grp:
                    a = _auroc(res[r["id"]]["last"]["z"], neg)
                    if a is not None:
                        by_seed.setdefault(r["seed"], []).append(a)
                au = [float(np.mean(v)) for v in by_seed.values()]
                top = [res[r["id"]]["last"]["top_class"] == r["target"] for r in grp]
                det = [res[r["id"]]["last"]["alarm"] and res[r["id"]]["last"]["top_class"] == r["target"]
                       for r in grp]
                firsts = [res[r["id"]]["first_right"] for r in grp]
                hit = [f for f in firsts if f is not None]
                pos = [res[r["id"]]["last"]["z"] for r in grp]
                rows.append({
                    "mode": mode, "method": method, "attack": attack, "rate": rate, "n": len(grp),
                    "auroc": _mean(au), "auroc_min": min(au) if au else None,
                    "auroc_max": max(au) if au else None,
                    "auroc_ci": auroc_interval(pos, neg, seed=len(rows)),
                    "top1": _mean(top), "top1_k": int(sum(top)),
                    "top1_ci": wilson(int(sum(top)), len(top)),
                    "detected": _mean(det), "detected_k": int(sum(det)),
                    "detected_ci": wilson(int(sum(det)), len(det)),
                    "first_epoch": float(np.median(hit)) if len(hit) * 2 > len(grp) else None,
                    "first_epochs": [f if f is not None else "-" for f in firsts],
                })
    return rows


POOLED = "dirty-label, pooled"
BALANCED = " (balanced)"  # attack option balance: class counts carry no signal
BOOT = 2000  # bootstrap resamples of the AUROC interval


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion k/n (None for n = 0): it stays inside [0, 1]
    and keeps its coverage at 0/n and n/n, where the normal interval collapses."""
    if n <= 0:
        return None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _mw(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUROC: P(pos > neg) + P(tie) / 2 over every pair."""
    d = pos[:, None] - neg[None, :]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


def auroc_interval(pos: list, neg: list, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the AUROC poisoned vs clean, resampling the poisoned
    runs and the clean runs independently (B = BOOT, seeded). None with fewer than 2 on a side.
    With n runs a side the interval cannot be narrower than what n runs can show."""
    pos = np.array([v for v in pos if v is not None and math.isfinite(v)], dtype=float)
    neg = np.array([v for v in neg if v is not None and math.isfinite(v)], dtype=float)
    if len(pos) < 2 or len(neg) < 2:
        return None
    rng = np.random.default_rng([int(seed), 0xA0C])
    vals = [_mw(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(BOOT)]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def _label_mode(attack: str) -> str:
    from ibtui.data.attacks import ATTACKS

    cls = ATTACKS.get(str(attack).removesuffix(BALANCED))
    return cls.label_mode if cls is not None else "?"


def _mean(x: list) -> float | None:
    return float(np.mean(x)) if x else None


def _f(v, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def _ci(ci) -> str:
    return "[-]" if not ci else f"[{ci[0]:.2f}-{ci[1]:.2f}]"


def to_csv(rows: list[dict]) -> str:
    keys = ["mode", "method", "attack", "rate", "n", "auroc", "auroc_min", "auroc_max",
            "auroc_lo", "auroc_hi", "top1", "top1_k", "top1_lo", "top1_hi", "detected",
            "detected_k", "first_epoch", "first_epochs", "fpr", "fpr_k", "fpr_lo", "fpr_hi",
            "fpr_any_checkpoint"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        r = dict(r)
        for k in ("auroc", "top1", "fpr"):
            ci = r.get(f"{k}_ci")
            r[f"{k}_lo"], r[f"{k}_hi"] = (None, None) if ci is None else ci
        w.writerow({k: (" ".join(map(str, r[k])) if isinstance(r.get(k), list) else r.get(k))
                    for k in keys})
    return buf.getvalue()


def to_markdown(rows: list[dict], command: str, methods: list[str] | None = None) -> str:
    methods = methods or MAIN
    labels = {m: m for m in METHODS}
    labels.update(dynamics="dynamic detector", ac="activation clustering",
                  ss="spectral signatures", size="class size (trivial)")
    out = [f"Command: `{command}`", "",
           "Cells: AUROC poisoned vs clean [95% bootstrap interval over runs] / target top-1, "
           "k of n [95% Wilson interval] / alarm right (fires at p <= 0.01 naming the target, k "
           "of n) / median first epoch the alarm is right (when right for most seeds). Clean "
           "row: false-positive rate at the threshold, k of n [95% Wilson interval] (any "
           "checkpoint in brackets after it). Rows marked (balanced): attack option balance, "
           "every class as large as its share of the poison leaves it.", ""]
    for mode in MODES:
        sel = [r for r in rows if r["mode"] == mode]
        if not sel:
            continue
        out += [f"### reference: {mode}", "",
                "| attack | rate | " + " | ".join(labels[m] for m in methods) + " |",
                "|---|---|" + "---|" * len(methods)]
        keys = []
        for r in sel:
            k = (r["attack"], r["rate"])
            if k not in keys:
                keys.append(k)
        for attack, rate in keys:
            cells = []
            for m in methods:
                r = next((x for x in sel if x["method"] == m and x["attack"] == attack
                          and x["rate"] == rate), None)
                if r is None:
                    cells.append("-")
                elif attack == "none (clean)":
                    cells.append(f"FPR {r.get('fpr_k', '-')}/{r['n']} {_ci(r.get('fpr_ci'))} "
                                 f"({_f(r['fpr_any_checkpoint'])})")
                else:
                    cells.append(f"{_f(r['auroc'])} {_ci(r.get('auroc_ci'))} / "
                                 f"{r['top1_k']}/{r['n']} {_ci(r.get('top1_ci'))} / "
                                 f"{r['detected_k']}/{r['n']} / {_f(r['first_epoch'], 'g')}")
            out.append(f"| {attack} | {rate:g} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def figure(rows: list[dict], path: Path, methods: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = methods or MAIN
    colours = {"dynamics": "#D55E00", "ac": "#0072B2", "ss": "#009E73", "size": "#999999",
               "representation": "#CC79A7", "mi": "#E69F00", "loss": "#56B4E9"}
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharey="row")
    for col, mode in enumerate(MODES):
        sel = [r for r in rows if r["mode"] == mode and r["attack"] != "none (clean)"]
        keys = []
        for r in sel:
            if (r["attack"], r["rate"]) not in keys:
                keys.append((r["attack"], r["rate"]))
        x = np.arange(len(keys))
        w = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            got = {(r["attack"], r["rate"]): r for r in sel if r["method"] == m}
            au = [got[k]["auroc"] if k in got and got[k]["auroc"] is not None else np.nan
                  for k in keys]
            lo = [a - got[k]["auroc_min"] if k in got and got[k]["auroc_min"] is not None else 0
                  for a, k in zip(au, keys, strict=True)]
            hi = [got[k]["auroc_max"] - a if k in got and got[k]["auroc_max"] is not None else 0
                  for a, k in zip(au, keys, strict=True)]
            axes[0, col].bar(x + i * w, au, w, yerr=[lo, hi], label=m, color=colours.get(m),
                             capsize=2)
            t1 = [got[k]["top1"] if k in got and got[k]["top1"] is not None else np.nan
                  for k in keys]
            axes[1, col].bar(x + i * w, t1, w, label=m, color=colours.get(m))
        for row, what in enumerate(("AUROC poisoned vs clean", "target top-1")):
            ax = axes[row, col]
            ax.set_xticks(x + 0.4 - w / 2, [f"{'pooled' if a == POOLED else a}\n{r:g}"
                                            for a, r in keys], fontsize=7)
            ax.set_ylim(0, 1.05)
            ax.axhline(0.5 if row == 0 else 0.1, color="k", lw=0.6, ls=":")
            ax.set_title(f"{what} (reference: {mode})", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(methods), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_eval(listed: list, out_dir: Path, command: str) -> tuple[Path, Path, Path, str]:
    """Evaluate the runs `listed`, write alarm_eval.md, .csv and .png into out_dir; returns
    their paths and the markdown text."""
    from ibtui.errors import IbtuiError

    runs = collect(listed)
    if not any(r["clean"] for r in runs) or all(r["clean"] for r in runs):
        raise IbtuiError("alarm-eval needs finished clean (attack = \"none\") and "
                         f"poisoned runs; found {sum(r['clean'] for r in runs)} clean and "
                         f"{sum(not r['clean'] for r in runs)} poisoned (run bench/alarm_grid.toml "
                         "first)")
    rows = evaluate(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = to_markdown(rows, command)
    extra = to_markdown(rows, command, methods=["representation", "mi", "loss", "size"])
    md += "\n\nSub-scores of the dynamic detector, and the trivial class-size reference:\n\n" + \
        extra.split("\n", 2)[2]
    pm, pc, pf = out_dir / "alarm_eval.md", out_dir / "alarm_eval.csv", out_dir / "alarm_eval.png"
    pm.write_text(md + "\n")
    pc.write_text(to_csv(rows))
    figure(rows, pf)
    return pm, pc, pf, md
