"""Publication figures of one or several runs, each saved with the data behind it as CSV.

One run: `<run>-mi_curves` (paper Fig. 3: I(X;T) and I(T;Ŷ) per subset over epochs),
`<run>-info_plane` (I(X;T) vs I(T;Ŷ) trajectories), `<run>-accuracy` (train/test accuracy,
ASR, RA), `<run>-class_loss` (training loss by class). With an extra MI method, its curves and
plane get their own files (`-mi_curves-<method>`), and `<run>-mi_methods` puts every method's
backdoor and clean-mean curves on the same axes with each method's ceiling (dotted). Several runs: `compare-mi_curves`,
`compare-info_plane`, `compare-accuracy`, `compare-class_loss`, the same quantities overlaid.

Style: Okabe-Ito palette (colour-blind safe), the backdoor subset thick, vermillion and on
top, MI in nats, fonts readable at column width; PDF/SVG keep text as text.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ibtui.data.attacks import attack_title
from ibtui.errors import SpecError

FORMATS = ("png", "pdf", "svg")

OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
GREY = "#9A9A9A"
BACKDOOR = OKABE_ITO["vermillion"]
# runs overlaid in comparison figures (yellow last: weak on white)
RUN_COLOURS = [OKABE_ITO[c] for c in ("blue", "vermillion", "green", "orange", "purple", "sky",
                                      "black", "yellow")]
RUN_STYLES = ["-", "--", ":", "-."]
CLASS_COLOURS = [OKABE_ITO[c] for c in ("orange", "green", "black")]

STYLE: dict[str, Any] = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "lines.linewidth": 1.4, "lines.markersize": 3.5, "legend.frameon": False,
    "savefig.dpi": 300, "savefig.bbox": "tight", "pdf.fonttype": 42, "ps.fonttype": 42,
    "svg.fonttype": "none", "figure.dpi": 100, "axes.titleweight": "bold",
}

TERM_LABEL = {"xt": "I(X;T) [nats]", "ty": "I(T;Ŷ) [nats]"}
TERM_TITLE = {"xt": "I(X;T)", "ty": "I(T;Ŷ)"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "svhn": "SVHN", "digits": "Digits"}
ARCH_NAMES = {"resnet18": "ResNet-18", "vgg16": "VGG16"}
ROLE_ORDER = {"class": 0, "all": 1, "sample": 2, "clean": 3, "backdoor": 4}


# --- small helpers shared by tsne.py and report.py ------------------------------------------

def check_format(fmt: str) -> str:
    fmt = (fmt or "png").lower().lstrip(".")
    if fmt not in FORMATS:
        raise SpecError(f"figure format {fmt!r} not allowed; allowed: {', '.join(FORMATS)}")
    return fmt


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def style_context():
    import matplotlib

    return matplotlib.rc_context(STYLE)


def num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _cell(r.get(c)) for c in columns])
    return path


def _cell(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return v


def save_figure(fig, out_dir: Path, stem: str, fmt: str, columns: list[str],
                rows: list[dict]) -> list[Path]:
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.{fmt}"
    fig.savefig(path, format=fmt)
    plt.close(fig)
    return [path, write_csv(out_dir / f"{stem}.csv", columns, rows)]


def pct(rate: Any) -> str:
    r = num(rate)
    return "?" if r is None else f"{r * 100:g}%"


def attack_name(a: Any) -> str:
    return attack_title(a)


# --- reading a run ----------------------------------------------------------------------------

class RunData:
    """What the figures need from one run directory (works for unfinished runs too)."""

    def __init__(self, path: Path):
        from ibtui.runs.store import load_run

        self.path = Path(path)
        run = load_run(self.path)  # fields and lines of the wrong type are dropped there
        self.id = run.id
        self.spec = run.spec or {}
        self.summary = run.summary or {}
        self.metrics = run.metrics()
        self.mi = [r for r in run.mi() if r["term"] in ("xt", "ty") and num(r.get("value")) is not None]
        self.damaged = run.damaged
        target = self.spec.get("target", self.summary.get("target", 0))
        self.target = target if isinstance(target, int) and not isinstance(target, bool) else 0
        self.roles: dict[str, str] = {}
        for r in self.mi:
            if isinstance(r.get("role"), str):
                self.roles.setdefault(str(r["subset"]), r["role"])
        seen = list(dict.fromkeys(r.get("method") for r in self.mi))
        wanted = self.spec.get("mi_method") or []
        wanted = [wanted] if isinstance(wanted, str) else wanted
        first = next((m for m in wanted if m in seen), seen[0] if seen else None)
        self.methods = [first] + [m for m in seen if m != first] if first else []

    @property
    def method(self) -> str | None:
        return self.methods[0] if self.methods else None

    def get(self, key: str) -> Any:
        return self.spec.get(key, self.summary.get(key))

    def table(self, method: str | None = None) -> dict[str, dict[str, dict[int, dict]]]:
        """term -> subset -> epoch -> record (last record wins)."""
        method = method or self.method
        out: dict[str, dict[str, dict[int, dict]]] = {"xt": {}, "ty": {}}
        for r in self.mi:
            if r.get("method") == method:
                out[r["term"]].setdefault(str(r["subset"]), {})[int(r["epoch"])] = r
        return out

    def subsets(self, method: str | None = None) -> list[str]:
        t = self.table(method)
        names = set(t["xt"]) | set(t["ty"])

        def key(s: str) -> tuple:
            return (ROLE_ORDER.get(self.roles.get(s, "class"), 0), _natural(s))

        return sorted(names, key=key)

    def clean_classes(self, method: str | None = None) -> list[str]:
        return [s for s in self.subsets(method) if self.roles.get(s) == "class"]

    def subset_of_role(self, role: str) -> str | None:
        return next((s for s, r in self.roles.items() if r == role), None)

    def clean_mean(self, term: str, method: str | None = None) -> dict[int, float]:
        t = self.table(method)[term]
        per: dict[int, list[float]] = {}
        for s in self.clean_classes(method):
            for e, r in t.get(s, {}).items():
                per.setdefault(e, []).append(float(r["value"]))
        return {e: sum(v) / len(v) for e, v in sorted(per.items())}

    def phases(self) -> dict | None:
        ph = self.summary.get("phases")
        if isinstance(ph, dict) and isinstance(ph.get("phases"), dict) and _checkpoints_ok(ph):
            return ph
        if not self.mi:
            return None
        from ibtui.analysis.phases import detect_phases

        return detect_phases(self.mi, self.roles)


def _checkpoints_ok(ph: dict) -> bool:
    """A stored phase split is usable: checkpoints map phase names to non-empty lists of
    epochs (numbers), shared is a list. Anything else is recomputed from mi.jsonl."""
    cps = ph.get("checkpoints")
    if not isinstance(cps, dict) or not isinstance(ph.get("shared") or [], list):
        return False
    return all(isinstance(v, list) and v and all(num(x) is not None for x in v)
               for k, v in cps.items() if k in PHASE_NUMERALS and v)


def _natural(s: str) -> tuple:
    head = s.split("_")[0]
    return (int(head) if head.isdigit() else 1 << 30, s)


def subset_label(subset: str, role: str | None, target: int) -> str:
    return {
        "all": f"class {target} (all)", "backdoor": f"class {target} backdoor",
        "clean": f"class {target} clean", "sample": f"class {target} sample",
    }.get(role or "", f"class {subset}")


def subset_style(role: str | None, class_pos: int, many_classes: bool) -> dict:
    if role == "backdoor":
        return {"color": BACKDOOR, "lw": 2.6, "marker": "o", "ms": 4.5, "zorder": 10}
    if role == "all":
        return {"color": OKABE_ITO["blue"], "lw": 1.8, "marker": "s", "zorder": 6}
    if role == "clean":
        return {"color": OKABE_ITO["sky"], "lw": 1.6, "marker": "^", "ls": "--", "zorder": 5}
    if role == "sample":
        return {"color": OKABE_ITO["purple"], "lw": 1.4, "marker": "D", "ms": 3, "ls": "-.",
                "zorder": 4}
    if many_classes:
        return {"color": GREY, "lw": 0.8, "alpha": 0.7, "zorder": 2}
    return {"color": CLASS_COLOURS[class_pos % len(CLASS_COLOURS)], "lw": 1.1, "marker": ".",
            "zorder": 3}


PHASE_NUMERALS = {"early": "I", "transition": "II", "compression": "III", "convergence": "IV"}
PHASE_KEY = "phases: I early, II transition, III compression, IV convergence"


def draw_phases(ax, phases: dict | None, labels: bool = True) -> bool:
    """Dotted lines between phases (midway between their checkpoints) and the phase numerals
    I-IV above the axes, centred on each phase. Phases that borrow a checkpoint are not
    labelled. Returns whether anything was drawn."""
    if not phases or not isinstance(phases.get("checkpoints"), dict):
        return False
    cps = phases["checkpoints"]
    shared = set(phases.get("shared") or [])
    order = [p for p in PHASE_NUMERALS if cps.get(p) and p not in shared]
    if len(order) < 2:
        return False
    bounds = []
    for a, b in itertools.pairwise(order):
        last, first = max(cps[a]), min(cps[b])
        x = (last + first) / 2 if first > last else None
        bounds.append(x)
        if x is not None:
            ax.axvline(x, color="#555555", ls=":", lw=0.8, zorder=1)
    if labels:
        lo, hi = ax.get_xlim()
        for i, p in enumerate(order):
            left = bounds[i - 1] if i > 0 and bounds[i - 1] is not None else min(cps[p])
            right = bounds[i] if i < len(bounds) and bounds[i] is not None else max(cps[p])
            if i == 0:
                left = max(lo, min(left, min(cps[p])))
            if i == len(order) - 1:
                right = min(hi, max(right, max(cps[p])))
            ax.text((left + right) / 2, 1.01, PHASE_NUMERALS[p], transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, color="#555555")
    return True


def run_label(runs: list[RunData]) -> list[str]:
    """Short labels naming what differs between the runs (fallback: the run id)."""
    fields = ["attack", "poison_rate", "dataset", "arch", "width", "noise_xt", "noise_ty", "lr",
              "epochs", "name", "seed"]
    differ = [f for f in fields if len({json.dumps(r.get(f), sort_keys=True) for r in runs}) > 1]
    methods = {r.method for r in runs}
    out = []
    for r in runs:
        parts = []
        for f in differ:
            v = r.get(f)
            if f == "attack":
                parts.append(attack_name(v))
            elif f == "poison_rate":
                parts.append(pct(v))
            elif f == "dataset":
                parts.append(DATASET_NAMES.get(str(v), str(v)))
            elif f == "arch":
                parts.append(ARCH_NAMES.get(str(v), str(v)))
            elif f in ("noise_xt", "noise_ty"):
                parts.append(f"σ{'xt' if f == 'noise_xt' else 'ty'}={v:g}" if num(v) is not None
                             else f"{f}={v}")
            else:
                parts.append(f"{f}={v}")
        if len(methods) > 1:
            parts.append(str(r.method))
        label = " ".join(parts) if parts else r.id
        out.append(label)
    if len(set(out)) < len(out):
        out = [f"{lab} [{r.id}]" for lab, r in zip(out, runs, strict=False)]
    return out


def _bottom_legend(fig, axes, ncol: int = 4) -> None:
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(ncol, len(labels)),
                   bbox_to_anchor=(0.5, -0.02), columnspacing=1.2, handlelength=2.4)


def _series(points: dict[int, float]) -> tuple[list[int], list[float]]:
    es = sorted(points)
    return es, [points[e] for e in es]


# --- one run ----------------------------------------------------------------------------------

MI_COLUMNS = ["run", "method", "term", "epoch", "subset", "role", "value", "lower", "upper",
              "ceiling", "n"]


def fig_mi_curves(run: RunData, method: str):
    plt = pyplot()
    table = run.table(method)
    subsets = run.subsets(method)
    classes = run.clean_classes(method)
    many = len(classes) > 3
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0), sharex=True)
    rows: list[dict] = []
    phases = run.phases()
    for ax, term in zip(axes, ("xt", "ty"), strict=False):
        drawn_grey = False
        for s in subsets:
            pts = table[term].get(s, {})
            if not pts:
                continue
            role = run.roles.get(s)
            st = subset_style(role, classes.index(s) if s in classes else 0, many)
            es, vs = _series({e: float(r["value"]) for e, r in pts.items()})
            label = subset_label(s, role, run.target)
            if role == "class" and many:
                label = "clean classes (each)" if not drawn_grey else "_"
                drawn_grey = True
            ax.plot(es, vs, label=label, **st)
            if role == "backdoor":
                lo = [num(pts[e].get("lower")) for e in es]
                hi = [num(pts[e].get("upper")) for e in es]
                if all(v is not None for v in lo + hi):
                    ax.fill_between(es, lo, hi, color=BACKDOOR, alpha=0.15, lw=0, zorder=9,
                                    label="backdoor bounds")
            for e in es:
                r = pts[e]
                rows.append({"run": run.id, "method": method, "term": term, "epoch": e,
                             "subset": s, "role": role, "value": r.get("value"),
                             "lower": r.get("lower"), "upper": r.get("upper"),
                             "ceiling": r.get("ceiling"), "n": r.get("n")})
        if many:
            es, vs = _series(run.clean_mean(term, method))
            ax.plot(es, vs, color="black", lw=1.6, ls="--", label="clean-class mean", zorder=7)
        has_phases = draw_phases(ax, phases)
        ax.set_title(TERM_TITLE[term], pad=12 if has_phases else 6)
        ax.set_xlabel("epoch")
        ax.set_ylabel(TERM_LABEL[term])
    key = f"\n{PHASE_KEY}" if has_phases else ""
    fig.suptitle(f"{run.id}  ({method}){key}", fontsize=8, fontweight="normal", y=1.02)
    fig.tight_layout()
    _bottom_legend(fig, axes, ncol=4)
    fig.subplots_adjust(bottom=0.32)
    return fig, MI_COLUMNS, rows


METHODS_COLUMNS = ["run", "method", "term", "series", "subset", "epoch", "value", "ceiling"]
METHOD_COLOURS = [OKABE_ITO[c] for c in ("blue", "vermillion", "green", "purple")]


def fig_mi_methods(run: RunData):
    """Every MI method of the run on the same axes (one colour per method): the backdoor
    subset (thick) and the clean-class mean (dashed; else the first subset), with each
    method's ceiling for that term as a dotted line of its colour (e.g. infonce-paper's
    log(K+1)), so the ceiling's effect on the curves is visible next to the other method."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0), sharex=True)
    rows: list[dict] = []
    for ax, term in zip(axes, ("xt", "ty"), strict=False):
        for i, method in enumerate(run.methods):
            colour = METHOD_COLOURS[i % len(METHOD_COLOURS)]
            table = run.table(method)[term]
            series: list[tuple[str, str, dict[int, float], dict]] = []
            bd = next((s for s in run.subsets(method) if run.roles.get(s) == "backdoor"), None)
            if bd is not None and table.get(bd):
                series.append(("backdoor", bd, {e: float(r["value"]) for e, r in
                                                table[bd].items()}, {"lw": 2.2}))
            mean = run.clean_mean(term, method)
            if mean:
                series.append(("clean_mean", "clean_mean", mean, {"lw": 1.2, "ls": "--"}))
            elif not series and table:
                first = next(iter(sorted(table)))
                series.append(("subset", first, {e: float(r["value"]) for e, r in
                                                 table[first].items()}, {"lw": 1.2}))
            ceilings = [c for recs in table.values() for r in recs.values()
                        if (c := num(r.get("ceiling"))) is not None]
            ceiling = max(ceilings) if ceilings else None
            for name, subset, pts, st in series:
                what = {"backdoor": "backdoor", "clean_mean": "clean-class mean"}.get(
                    name) or subset_label(subset, run.roles.get(subset), run.target)
                label = f"{method}: {what}"
                ax.plot(*_series(pts), color=colour, label=label, marker="o", **st)
                rows += [{"run": run.id, "method": method, "term": term, "series": name,
                          "subset": subset, "epoch": e, "value": v, "ceiling": ceiling}
                         for e, v in sorted(pts.items())]
            if ceiling is not None and series:
                ax.axhline(ceiling, color=colour, ls=":", lw=1.0, label=f"{method}: ceiling")
        ax.set_title(TERM_TITLE[term])
        ax.set_xlabel("epoch")
        ax.set_ylabel(TERM_LABEL[term])
    fig.suptitle(f"{run.id}  (MI methods side by side)", fontsize=8, fontweight="normal", y=1.02)
    fig.tight_layout()
    _bottom_legend(fig, axes, ncol=3)
    fig.subplots_adjust(bottom=0.32)
    return fig, METHODS_COLUMNS, rows


PLANE_COLUMNS = ["run", "method", "subset", "role", "epoch", "i_xt", "i_ty"]


def fig_info_plane(run: RunData, method: str):
    plt = pyplot()
    table = run.table(method)
    classes = run.clean_classes(method)
    many = len(classes) > 3
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    rows: list[dict] = []
    drawn_grey = False
    for s in run.subsets(method):
        xt, ty = table["xt"].get(s, {}), table["ty"].get(s, {})
        es = sorted(set(xt) & set(ty))
        if not es:
            continue
        role = run.roles.get(s)
        st = subset_style(role, classes.index(s) if s in classes else 0, many)
        x = [float(xt[e]["value"]) for e in es]
        y = [float(ty[e]["value"]) for e in es]
        label = subset_label(s, role, run.target)
        if role == "class" and many:
            label = "clean classes (each)" if not drawn_grey else "_"
            drawn_grey = True
        ax.plot(x, y, label=label, **st)
        _mark_ends(ax, x, y, st.get("color", "black"), st.get("zorder", 3))
        if role == "backdoor":
            for e, xi, yi in zip(es, x, y, strict=False):
                ax.annotate(str(e), (xi, yi), textcoords="offset points", xytext=(3, 3),
                            fontsize=6.5, color=BACKDOOR, zorder=11)
        rows += [{"run": run.id, "method": method, "subset": s, "role": role, "epoch": e,
                  "i_xt": a, "i_ty": b} for e, a, b in zip(es, x, y, strict=False)]
    if many:
        mx, my = run.clean_mean("xt", method), run.clean_mean("ty", method)
        es = sorted(set(mx) & set(my))
        if es:
            x, y = [mx[e] for e in es], [my[e] for e in es]
            ax.plot(x, y, color="black", lw=1.6, ls="--", label="clean-class mean", zorder=7)
            _mark_ends(ax, x, y, "black", 7)
            rows += [{"run": run.id, "method": method, "subset": "clean_mean", "role": "mean",
                      "epoch": e, "i_xt": a, "i_ty": b} for e, a, b in zip(es, x, y, strict=False)]
    ax.set_xlabel(TERM_LABEL["xt"])
    ax.set_ylabel(TERM_LABEL["ty"])
    ax.set_title(f"Information plane ({method})")
    ax.plot([], [], ls="none", marker="o", mfc="white", mec="black", label="first checkpoint")
    ax.plot([], [], ls="none", marker="*", color="black", ms=8, label="last checkpoint")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig, PLANE_COLUMNS, rows


def _mark_ends(ax, x: list[float], y: list[float], color: str, zorder: float) -> None:
    ax.plot(x[0], y[0], marker="o", ms=6, mfc="white", mec=color, ls="none", zorder=zorder + 0.5)
    ax.plot(x[-1], y[-1], marker="*", ms=10, color=color, ls="none", zorder=zorder + 0.5)


ACC_COLUMNS = ["run", "epoch", "train_acc", "test_acc", "asr", "asr_all", "ra"]
ACC_STYLE = {
    "train_acc": {"color": GREY, "lw": 1.2, "ls": "--", "label": "train accuracy"},
    "test_acc": {"color": OKABE_ITO["blue"], "lw": 1.8, "label": "clean test accuracy"},
    "asr": {"color": BACKDOOR, "lw": 2.6, "label": "ASR (non-target)", "zorder": 10},
    "asr_all": {"color": BACKDOOR, "lw": 1.0, "ls": ":", "label": "ASR (all test images)"},
    "ra": {"color": OKABE_ITO["green"], "lw": 1.4, "ls": "-.", "label": "robust accuracy"},
}


def fig_accuracy(run: RunData):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    rows = [{"run": run.id, "epoch": m.get("epoch"), **{k: num(m.get(k)) for k in ACC_STYLE}}
            for m in run.metrics if isinstance(m.get("epoch"), (int, float))]
    for key, st in ACC_STYLE.items():
        pts = [(r["epoch"], r[key] * 100) for r in rows if r[key] is not None]
        if pts:
            ax.plot(*zip(*pts, strict=False), **st)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("epoch")
    ax.set_ylabel("%")
    pad = 12 if draw_phases(ax, run.phases()) else 6
    ax.set_title(f"Accuracy and attack success — {attack_name(run.get('attack'))}", pad=pad)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig, ACC_COLUMNS, rows


LOSS_COLUMNS = ["run", "epoch", "class", "loss", "is_target"]


def fig_class_loss(run: RunData):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    per: dict[str, dict[int, float]] = {}
    for m in run.metrics:
        cl = m.get("class_loss")
        if isinstance(cl, dict) and isinstance(m.get("epoch"), (int, float)):
            for c, v in cl.items():
                if num(v) is not None:
                    per.setdefault(str(c), {})[int(m["epoch"])] = float(v)
    target = str(run.target)
    others = sorted((c for c in per if c != target), key=_natural)
    many = len(others) > 3
    rows: list[dict] = []
    for i, c in enumerate(others):
        es, vs = _series(per[c])
        if many:
            ax.plot(es, vs, color=GREY, lw=0.8, alpha=0.7,
                    label="other classes (each)" if i == 0 else "_", zorder=2)
        else:
            ax.plot(es, vs, color=CLASS_COLOURS[i % 3], lw=1.1, label=f"class {c}", zorder=3)
    if many:
        mean: dict[int, list[float]] = {}
        for c in others:
            for e, v in per[c].items():
                mean.setdefault(e, []).append(v)
        es, vs = _series({e: sum(v) / len(v) for e, v in mean.items()})
        ax.plot(es, vs, color="black", lw=1.6, ls="--", label="other-class mean", zorder=7)
    if target in per:
        es, vs = _series(per[target])
        ax.plot(es, vs, color=BACKDOOR, lw=2.6, zorder=10,
                label=f"class {target} (target, incl. backdoor)")
    for c in sorted(per, key=_natural):
        rows += [{"run": run.id, "epoch": e, "class": c, "loss": v, "is_target": c == target}
                 for e, v in sorted(per[c].items())]
    if rows and all(r["loss"] > 0 for r in rows):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title("Training loss by class", pad=12 if draw_phases(ax, run.phases()) else 6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig, LOSS_COLUMNS, rows


# --- several runs -------------------------------------------------------------------------------

CMP_MI_COLUMNS = ["run", "label", "method", "term", "series", "epoch", "value"]
CMP_SERIES = (("backdoor", "backdoor samples"), ("all", "target class (all)"),
              ("clean_mean", "clean-class mean"))


def _run_series(run: RunData, term: str, series: str) -> dict[int, float]:
    if series == "clean_mean":
        return run.clean_mean(term)
    s = run.subset_of_role(series)
    pts = run.table()[term].get(s, {}) if s else {}
    return {e: float(r["value"]) for e, r in pts.items()}


def _styled(runs: list[RunData], labels: list[str]) -> list[tuple[RunData, str, str, str]]:
    """(run, label, colour, line style) of each compared run: colours first, then styles."""
    return [(run, label, RUN_COLOURS[i % len(RUN_COLOURS)], RUN_STYLES[(i // len(RUN_COLOURS)) % 4])
            for i, (run, label) in enumerate(zip(runs, labels, strict=False))]


def fig_compare_mi(runs: list[RunData], labels: list[str]):
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(9.0, 5.2), sharex=True)
    rows: list[dict] = []
    for run, label, colour, ls in _styled(runs, labels):
        for r_i, term in enumerate(("xt", "ty")):
            for c_i, (series, _) in enumerate(CMP_SERIES):
                pts = _run_series(run, term, series)
                if not pts:
                    continue
                es, vs = _series(pts)
                lw = 2.2 if series == "backdoor" else 1.5
                axes[r_i, c_i].plot(es, vs, color=colour, ls=ls, lw=lw, marker=".", label=label)
                rows += [{"run": run.id, "label": label, "method": run.method, "term": term,
                          "series": series, "epoch": e, "value": v} for e, v in zip(es, vs, strict=False)]
    for c_i, (_, title) in enumerate(CMP_SERIES):
        axes[0, c_i].set_title(title)
        axes[1, c_i].set_xlabel("epoch")
    for r_i, term in enumerate(("xt", "ty")):
        axes[r_i, 0].set_ylabel(TERM_LABEL[term])
        ys = [ln.get_ydata() for ax in axes[r_i] for ln in ax.get_lines()]
        flat = [float(v) for y in ys for v in y]
        if flat:  # one y scale per row: the columns compare directly
            lo, hi = min(flat), max(flat)
            pad = 0.05 * (hi - lo or 1.0)
            for ax in axes[r_i]:
                ax.set_ylim(lo - pad, hi + pad)
    fig.tight_layout()
    _bottom_legend(fig, [axes[0, 0], axes[0, 1], axes[0, 2]], ncol=4)
    fig.subplots_adjust(bottom=0.12 + 0.04 * ((len(runs) - 1) // 4))
    return fig, CMP_MI_COLUMNS, rows


CMP_PLANE_COLUMNS = ["run", "label", "method", "series", "epoch", "i_xt", "i_ty"]


def fig_compare_plane(runs: list[RunData], labels: list[str]):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    rows: list[dict] = []
    for run, label, colour, _ in _styled(runs, labels):
        for series, lw, ls in (("backdoor", 2.2, "-"), ("clean_mean", 1.1, "--")):
            px, py = _run_series(run, "xt", series), _run_series(run, "ty", series)
            es = sorted(set(px) & set(py))
            if not es:
                continue
            x, y = [px[e] for e in es], [py[e] for e in es]
            ax.plot(x, y, color=colour, lw=lw, ls=ls, marker=".",
                    label=label if series == "backdoor" else "_")
            _mark_ends(ax, x, y, colour, 5)
            rows += [{"run": run.id, "label": label, "method": run.method, "series": series,
                      "epoch": e, "i_xt": a, "i_ty": b} for e, a, b in zip(es, x, y, strict=False)]
    ax.plot([], [], color="black", lw=2.2, label="backdoor samples")
    ax.plot([], [], color="black", lw=1.1, ls="--", label="clean-class mean")
    ax.set_xlabel(TERM_LABEL["xt"])
    ax.set_ylabel(TERM_LABEL["ty"])
    ax.set_title("Information plane")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig, CMP_PLANE_COLUMNS, rows


CMP_ACC_COLUMNS = ["run", "label", "epoch", "test_acc", "asr"]


def fig_compare_accuracy(runs: list[RunData], labels: list[str]):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0), sharex=True)
    rows: list[dict] = []
    for run, label, colour, _ in _styled(runs, labels):
        pts = [(m["epoch"], num(m.get("test_acc")), num(m.get("asr"))) for m in run.metrics
               if isinstance(m.get("epoch"), (int, float))]
        for ax, k in zip(axes, (1, 2), strict=False):
            xy = [(p[0], p[k] * 100) for p in pts if p[k] is not None]
            if xy:
                ax.plot(*zip(*xy, strict=False), color=colour, lw=1.8 if k == 2 else 1.4, label=label)
        rows += [{"run": run.id, "label": label, "epoch": e, "test_acc": a, "asr": s}
                 for e, a, s in pts]
    for ax, title in zip(axes, ("Clean test accuracy", "Attack success rate"), strict=False):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        ax.set_ylim(-2, 102)
    fig.tight_layout()
    _bottom_legend(fig, axes, ncol=4)
    fig.subplots_adjust(bottom=0.28 + 0.06 * ((len(runs) - 1) // 4))
    return fig, CMP_ACC_COLUMNS, rows


CMP_LOSS_COLUMNS = ["run", "label", "epoch", "target_loss", "other_loss_mean"]


def fig_compare_loss(runs: list[RunData], labels: list[str]):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 3.4))
    rows: list[dict] = []
    for run, label, colour, _ in _styled(runs, labels):
        target = str(run.target)
        tl, ol = {}, {}
        for m in run.metrics:
            cl = m.get("class_loss")
            if not isinstance(cl, dict) or not isinstance(m.get("epoch"), (int, float)):
                continue
            e = int(m["epoch"])
            if num(cl.get(target)) is not None:
                tl[e] = float(cl[target])
            oth = [float(v) for c, v in cl.items() if c != target and num(v) is not None]
            if oth:
                ol[e] = sum(oth) / len(oth)
        if tl:
            ax.plot(*_series(tl), color=colour, lw=2.0, label=label)
        if ol:
            ax.plot(*_series(ol), color=colour, lw=1.0, ls="--")
        rows += [{"run": run.id, "label": label, "epoch": e, "target_loss": tl.get(e),
                  "other_loss_mean": ol.get(e)} for e in sorted(set(tl) | set(ol))]
    vals = [v for r in rows for v in (r["target_loss"], r["other_loss_mean"]) if v is not None]
    if vals and min(vals) > 0:
        ax.set_yscale("log")
    ax.plot([], [], color="black", lw=2.0, label="target class")
    ax.plot([], [], color="black", lw=1.0, ls="--", label="other-class mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title("Training loss: target class vs other classes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig, CMP_LOSS_COLUMNS, rows


# --- entry point --------------------------------------------------------------------------------

def plot_runs(run_dirs: list[Path], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Write the figures (and one CSV per figure, same stem) of one run or a comparison of
    several into out_dir. Returns the files written; figures without data are skipped."""
    fmt = check_format(fmt)
    out_dir = Path(out_dir)
    runs = [RunData(Path(p)) for p in run_dirs]
    written: list[Path] = []
    jobs: list[tuple[str, Any]] = []
    if len(runs) == 1:
        run = runs[0]
        for i, method in enumerate(run.methods):
            suffix = "" if i == 0 else f"-{method}"
            jobs.append((f"{run.id}-mi_curves{suffix}", lambda m=method: fig_mi_curves(run, m)))
            jobs.append((f"{run.id}-info_plane{suffix}", lambda m=method: fig_info_plane(run, m)))
        if len(run.methods) > 1:
            jobs.append((f"{run.id}-mi_methods", lambda: fig_mi_methods(run)))
        if run.metrics:
            jobs.append((f"{run.id}-accuracy", lambda: fig_accuracy(run)))
            jobs.append((f"{run.id}-class_loss", lambda: fig_class_loss(run)))
    elif runs:
        labels = run_label(runs)
        if any(r.mi for r in runs):
            jobs.append(("compare-mi_curves", lambda: fig_compare_mi(runs, labels)))
            jobs.append(("compare-info_plane", lambda: fig_compare_plane(runs, labels)))
        if any(r.metrics for r in runs):
            jobs.append(("compare-accuracy", lambda: fig_compare_accuracy(runs, labels)))
            jobs.append(("compare-class_loss", lambda: fig_compare_loss(runs, labels)))
    with style_context():
        for stem, make in jobs:
            fig, columns, rows = make()
            written += save_figure(fig, out_dir, stem, fmt, columns, rows)
    return written
