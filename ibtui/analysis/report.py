"""Stealth-score tables (paper Table I) and the perceptibility-vs-stealth scatter (Fig. 10).

Only runs in state done with a summary.json count. Runs that share every setting but the
seed (and the run-id suffix) are one row: with two seeds or more, the mean ± the half-width of
its 95% Student-t interval over them (ibtui.analysis.replicas.mean_interval); with one, the
value and "n=1". Rows are grouped by the `group_by` fields (sections of the table); within a
group, a row is an attack plus any other setting that differs inside the group (named in the
row label). The Ties column names the rows of the same section whose score intervals overlap
this row's: their order cannot be told from these seeds (a row with one seed has no interval
and ties with every other row of its section).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ibtui.analysis.figures import (
    ARCH_NAMES,
    DATASET_NAMES,
    OKABE_ITO,
    attack_name,
    num,
    pct,
    pyplot,
    style_context,
    write_csv,
)
from ibtui.analysis.replicas import Interval, mean_interval, overlapping
from ibtui.data.attacks import paper_rank
from ibtui.errors import RunStoreError, SpecError
from ibtui.fmt import NONE, mean_pm

FORMATS = ("md", "latex", "csv")
VALUES = ("d_xt", "d_ty", "score")
HEADERS = {"md": ("Attack", "D_XT", "D_TY", "Score", "Runs", "Ties"),
           "latex": ("Attack", "$D_{XT}$", "$D_{TY}$", "Score", "Runs", "Ties")}
# settings that never make two runs different rows
IGNORED = ("seed", "data_root", "download", "device")
PERCEPTUAL = ("psnr", "ssim", "lpips")
LONG_LABEL = 40  # a tied row's label longer than this is named by its place in the section


def _fields() -> list[str]:
    from ibtui.spec import FIELDS

    return list(FIELDS)


def check_group_by(group_by: list[str] | None) -> list[str]:
    allowed = [f for f in _fields() if f not in IGNORED or f == "seed"]
    out = []
    for g in group_by or []:
        g = g.strip()
        if not g:
            continue
        if g not in allowed:
            raise SpecError(f"--group-by: unknown field {g!r}; allowed: {', '.join(allowed)}")
        if g not in out:
            out.append(g)
    return out


NO_FINISHED_RUNS = "no finished runs with a summary.json (state done)"


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def finished_runs(listed: list, set_aside: list | None = None) -> list[dict]:
    """Of the runs `listed` (ibtui.runs.store's runs of one directory), every valid done run
    with a summary (ibtui.analysis.validity: backdoor and clean task learned, no duplicate of an
    earlier seed): its resolved settings, overlaid by the summary. The verdicts of the runs set
    aside are appended to `set_aside` when given."""
    from ibtui.analysis.validity import assess, inputs_of

    verdicts = assess([inputs_of(r) for r in listed])
    if set_aside is not None:
        set_aside += [(r.id, v) for r, v in zip(listed, verdicts, strict=True) if v.ok is False]
    out = []
    for r, v in zip(listed, verdicts, strict=True):
        if r.state != "done" or not isinstance(r.summary, dict) or v.ok is False:
            continue
        values = {k: v for k, v in (r.spec or {}).items()}
        for k in ("attack", "dataset", "arch", "poison_rate", "seed", "target", "name", "width"):
            if k not in values and k in r.summary:
                values[k] = r.summary[k]
        out.append({"id": r.id, "settings": values, "summary": r.summary})
    return out


def _mean_std(vals: list[float]) -> tuple[float | None, float | None]:
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def _rate_sort(v: Any) -> float:
    n = num(v)
    return n if n is not None else math.inf


def group_label(group_by: list[str], values: dict) -> str:
    if not group_by:
        return ""
    head, rest = None, []
    for g in group_by:
        v = values.get(g)
        if g == "dataset":
            head = DATASET_NAMES.get(str(v), str(v))
        elif g == "poison_rate":
            rest.append(f"{pct(v)} poison")
        elif g == "arch":
            rest.append(ARCH_NAMES.get(str(v), str(v)))
        elif g == "attack":
            rest.append(attack_name(v))
        elif g in ("noise_xt", "noise_ty") and num(v) is not None:
            rest.append(f"σ_{g[-2:]} = {v:g}")
        elif g == "name":
            rest.append(str(v))
        else:
            rest.append(f"{g} = {v}" if not isinstance(v, (list, dict)) else f"{g} = {_canon(v)}")
    if head is None:
        return ", ".join(rest)
    return f"{head} ({', '.join(rest)})" if rest else head


def aggregate(runs: list[dict], group_by: list[str],
              values: tuple[str, ...] = VALUES) -> list[dict]:
    """Rows: {group: {field: value}, group_label, attack, poison_rate, label, n, runs,
    <value>: mean, <value>_std: std} in table order."""
    fields = [f for f in _fields() if f not in IGNORED]
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(_canon([r["settings"].get(g) for g in group_by]), []).append(r)
    rows = []
    for members in groups.values():
        gvals = {g: members[0]["settings"].get(g) for g in group_by}
        varying = [f for f in fields
                   if f not in group_by and f not in ("attack", "poison_rate", "attack_options")
                   and len({_canon(m["settings"].get(f)) for m in members}) > 1]
        rate_in_label = "poison_rate" not in group_by
        buckets: dict[str, list[dict]] = {}
        for m in members:
            key = _canon([m["settings"].get(f) for f in ["attack", "poison_rate", *varying]])
            buckets.setdefault(key, []).append(m)
        split: list[tuple[list[dict], list[str]]] = []
        for ms in buckets.values():  # attack options only compare within one attack
            if "attack_options" in group_by or len(
                    {_canon(m["settings"].get("attack_options")) for m in ms}) < 2:
                split.append((ms, varying))
                continue
            sub: dict[str, list[dict]] = {}
            for m in ms:
                sub.setdefault(_canon(m["settings"].get("attack_options")), []).append(m)
            split += [(v, [*varying, "attack_options"]) for v in sub.values()]
        for ms, shown in split:
            s0 = ms[0]["settings"]
            label = attack_name(s0.get("attack"))
            if rate_in_label:
                label += f"-{pct(s0.get('poison_rate'))}"
            extra = [f"{f}={_short(s0.get(f))}" for f in shown]
            if extra:
                label += f" ({', '.join(extra)})"
            row = {"group": gvals, "group_label": group_label(group_by, gvals),
                   "attack": s0.get("attack"), "poison_rate": s0.get("poison_rate"),
                   "label": label, "n": len(ms), "runs": sorted(m["id"] for m in ms),
                   "_sort": (paper_rank(s0.get("attack")), -_rate_sort(s0.get("poison_rate")),
                             label)}
            for v in values:
                vals = [x for x in (num(m["summary"].get(v)) for m in ms) if x is not None]
                mean, std = _mean_std(vals)
                iv = mean_interval(vals)
                row[v], row[f"{v}_std"] = mean, std
                row[f"{v}_lo"], row[f"{v}_hi"] = (None, None) if iv is None else (iv.lo, iv.hi)
                row[f"{v}_n"] = 0 if iv is None else iv.n
            rows.append(row)
    rows.sort(key=lambda r: (_group_sort(group_by, r["group"]), r["_sort"]))
    for r in rows:
        del r["_sort"]
    if "score" in values:
        _mark_ties(rows)
    return rows


def _mark_ties(rows: list[dict]) -> None:
    """row["ties"]: the labels of the rows of its section whose score intervals overlap its
    own (replicas.overlapping: a row with one seed overlaps every row)."""
    sections: dict[str, list[dict]] = {}
    for r in rows:
        sections.setdefault(_canon(r["group"]), []).append(r)
    for members in sections.values():
        ivs = [None if r["score"] is None else
               Interval(r["score"], r["score_lo"], r["score_hi"], r["score_n"]) for r in members]
        for r, tie in zip(members, overlapping(ivs), strict=True):
            r["ties"] = [members[j]["label"] for j in tie]


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return _canon(v)
    return str(v)


def _group_sort(group_by: list[str], gvals: dict) -> tuple:
    order = {"dataset": ("cifar10", "svhn", "digits")}
    key = []
    for g in group_by:
        v = gvals.get(g)
        if g == "dataset" and v in order["dataset"]:
            key.append((0, order["dataset"].index(v), ""))
        elif g == "poison_rate":
            key.append((0, -_rate_sort(v), ""))  # higher rates first, as in Table I
        elif num(v) is not None:
            key.append((0, num(v), ""))
        else:
            key.append((1, 0, _canon(v)))
    return tuple(key)


def _fmt(row: dict, v: str, fmt: str) -> str:
    """mean ± half-width of the 95% t-interval; one seed: the value and n=1."""
    mean, lo, hi = row[v], row.get(f"{v}_lo"), row.get(f"{v}_hi")
    if mean is None:
        return NONE if fmt == "md" else "--"
    if fmt == "latex" and lo is not None and hi is not None:
        return f"${mean:.4f} \\pm {(hi - lo) / 2:.4f}$"
    return mean_pm(mean, lo, hi, digits=4)  # the paper's tables: four decimals


def _ties(row: dict, section: list[dict]) -> str:
    """The labels this row ties with ("row 2, row 3": their places in the section when a label
    is too long to repeat); "all" when it ties with every other row of a section of three or
    more; "–" for none."""
    ties = row.get("ties") or []
    if not ties:
        return "–"
    if len(ties) == len(section) - 1 and len(section) > 2:
        return "all"
    if any(len(t) > LONG_LABEL for t in ties):
        labels = [r["label"] for r in section]
        return ", ".join(f"row {labels.index(t) + 1}" for t in ties)
    return ", ".join(ties)


def _latex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("σ", r"$\sigma$")):
        s = s.replace(a, b)
    return s


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def render(rows: list[dict], group_by: list[str], fmt: str) -> str:
    if fmt == "csv":
        import csv
        import io

        cols = [*group_by, "attack", *([] if "poison_rate" in group_by else ["poison_rate"]),
                "label", "n"] + [c for v in VALUES for c in (v, f"{v}_std", f"{v}_lo", f"{v}_hi")]
        cols.append("ties")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            cells = {**{g: r["group"].get(g) for g in group_by}, **r,
                     "ties": "; ".join(r.get("ties") or [])}
            w.writerow(["" if cells.get(c) is None else
                        (_canon(cells[c]) if isinstance(cells[c], (list, dict)) else cells[c])
                        for c in cols])
        return buf.getvalue()
    lines = []
    current = None
    sections: dict[str, list[dict]] = {}
    for r in rows:
        sections.setdefault(r["group_label"], []).append(r)
    if fmt == "md":
        h = HEADERS["md"]
        lines.append("| " + " | ".join(h) + " |")
        lines.append("|---|" + "---:|" * (len(h) - 2) + "---|")
        for r in rows:
            if group_by and r["group_label"] != current:
                current = r["group_label"]
                lines.append(f"| **{_md_escape(current)}** |" + " |" * (len(h) - 1))
            cells = [_md_escape(r["label"])] + [_fmt(r, v, fmt) for v in VALUES]
            ties = _md_escape(_ties(r, sections[r["group_label"]]))
            lines.append("| " + " | ".join([*cells, str(r["n"]), ties]) + " |")
        return "\n".join(lines) + "\n"
    h = HEADERS["latex"]
    lines += [r"\begin{tabular}{l" + "r" * (len(h) - 2) + "l}", r"\toprule",
              " & ".join(h) + r" \\", r"\midrule"]
    for r in rows:
        if group_by and r["group_label"] != current:
            if current is not None:
                lines.append(r"\midrule")
            current = r["group_label"]
            title = _latex_escape(current)
            lines.append(rf"\multicolumn{{{len(h)}}}{{l}}{{\textit{{{title}}}}} \\")
        cells = [_latex_escape(r["label"])] + [_fmt(r, v, fmt) for v in VALUES]
        ties = _ties(r, sections[r["group_label"]]).replace("–", "--")
        lines.append(" & ".join([*cells, str(r["n"]), _latex_escape(ties)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def report(listed: list, group_by: list[str] | None = None, fmt: str = "md") -> str:
    """Table I of the runs `listed` (one runs directory's): attack, D_XT, D_TY, score (mean ± 95% t-interval
    half-width over seeds, or the value and n=1), runs, ties."""
    fmt = (fmt or "md").lower()
    if fmt not in FORMATS:
        raise SpecError(f"report format {fmt!r} not allowed; allowed: {', '.join(FORMATS)}")
    group_by = check_group_by(group_by)
    aside: list = []
    runs = finished_runs(listed, aside)
    if not runs and not aside:
        raise RunStoreError(NO_FINISHED_RUNS)
    text = render(aggregate(runs, group_by), group_by, fmt) if runs else ""
    return text + (set_aside_note(aside, fmt) if fmt != "csv" else "")


def set_aside_note(aside: list, fmt: str) -> str:
    """The report's closing lines: how many runs were set aside and why, each named."""
    from ibtui.analysis.validity import set_aside_summary

    if not aside:
        return ""
    head = set_aside_summary([v for _, v in aside])
    lines = [f"{head}; duplicates of an earlier run with the same configuration and seed are "
             "counted once:"] + [f"- {run}: {'; '.join(v.reasons)}" for run, v in aside]
    if fmt == "latex":
        return "".join(f"% {line}\n" for line in lines)
    return "\n" + "\n".join(_md_escape(x) for x in lines) + "\n"


SCATTER_COLUMNS = ["label", "attack", "dataset", "poison_rate", "n", "score", "score_std",
                   "psnr", "psnr_std", "ssim", "ssim_std", "lpips", "lpips_std"]
ATTACK_COLOURS = {"badnets": OKABE_ITO["vermillion"], "blend": OKABE_ITO["blue"],
                  "wanet": OKABE_ITO["green"], "lc": OKABE_ITO["purple"],
                  "adap-blend": OKABE_ITO["orange"], "ftrojan": OKABE_ITO["sky"]}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def perceptibility_scatter(listed: list, out: Path) -> Path | None:
    """Stealth score against PSNR, SSIM and LPIPS (paper Fig. 10), one point per setting
    (mean ± std over seeds), with a CSV of the points. `out`: a file (.png/.pdf/.svg) or a
    directory (then out/perceptibility.png). None when no finished run has a perceptual
    metric."""
    runs = [r for r in finished_runs(listed)
            if any(num(r["summary"].get(p)) is not None for p in PERCEPTUAL)]
    rows = aggregate(runs, [], values=("score", *PERCEPTUAL))
    for r in rows:
        ds = {_canon(m["settings"].get("dataset")) for m in runs if m["id"] in r["runs"]}
        r["dataset"] = json.loads(next(iter(ds))) if len(ds) == 1 else None
    rows = [r for r in rows if r["score"] is not None and any(r[p] is not None for p in PERCEPTUAL)]
    if not rows:
        return None
    out = Path(out)
    if out.suffix.lower().lstrip(".") in ("png", "pdf", "svg"):
        path = out
    else:
        path = out / "perceptibility.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets = list(dict.fromkeys(str(r["dataset"]) for r in rows))
    plt = pyplot()
    titles = {"psnr": "PSNR [dB] (higher = less visible)",
              "ssim": "SSIM (higher = less visible)",
              "lpips": "LPIPS (lower = less visible)"}
    with style_context():
        fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.1), sharey=True)
        for ax, metric in zip(axes, PERCEPTUAL, strict=False):
            pts = [r for r in rows if r[metric] is not None]
            if not pts:
                ax.text(0.5, 0.5, f"{metric.upper()} not recorded", transform=ax.transAxes,
                        ha="center", va="center", color="#666666")
            for r in pts:
                colour = ATTACK_COLOURS.get(str(r["attack"]), "#444444")
                marker = MARKERS[datasets.index(str(r["dataset"])) % len(MARKERS)]
                ax.errorbar(r[metric], r["score"], xerr=r[f"{metric}_std"],
                            yerr=r["score_std"], fmt=marker, color=colour, ms=6, capsize=2,
                            lw=0.8, zorder=3)
                ax.annotate(r["label"], (r[metric], r["score"]), textcoords="offset points",
                            xytext=(4, 3), fontsize=6.5, color="#333333")
            ax.set_xlabel(titles[metric])
            ax.margins(x=0.15, y=0.1)
        axes[0].set_ylabel("stealth score (lower = stealthier)")
        if len(datasets) > 1:
            for i, d in enumerate(datasets):
                axes[-1].plot([], [], ls="none", marker=MARKERS[i % len(MARKERS)],
                              color="#444444", label=DATASET_NAMES.get(d, d))
            axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle("Perceptibility vs model-level stealth", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format=path.suffix.lstrip(".").lower())
        plt.close(fig)
    write_csv(path.with_suffix(".csv"), SCATTER_COLUMNS, rows)
    return path
