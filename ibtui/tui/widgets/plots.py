"""Terminal plots of a run (textual-plotext): MI over epochs per subset, accuracy/ASR, class loss.

Each chart is a `PlotextPlot` drawn through its `.plt`: on new data `clear_data()`, plot,
`refresh()`; never `show()`. The series builders are plain functions of the run's records.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual_plotext import PlotextPlot

TERM_LABEL = {"xt": "I(X;T)", "ty": "I(T;Ŷ)"}
ROLE_STYLE = {  # role: (color, marker, legend label)
    "backdoor": ("red+", "hd", "backdoor"),
    "all": ("blue+", "braille", "target"),
    "clean": ("green+", "braille", "target clean"),
    "sample": ("yellow", "braille", "target sample"),
    "class": ("gray", "braille", "other classes"),
}
ROLE_ORDER = ("class", "sample", "clean", "all", "backdoor")  # drawn last = on top
COMPARE_COLORS = ("red+", "cyan+", "yellow+", "green+", "magenta+", "blue+", "orange",
                  "white", "red", "cyan", "yellow", "green")


def compare_color(i: int) -> str:
    return COMPARE_COLORS[i % len(COMPARE_COLORS)]


@dataclass
class Series:
    label: str  # "" = no legend entry
    x: list[float]
    y: list[float]
    color: str = "default"
    marker: str = "braille"
    points: bool = False  # also mark each data point


def rich_color(color: str) -> str:
    """A plotext colour name as a Rich colour (`red+` is the bright variant)."""
    if color.endswith("+"):
        return f"bright_{color[:-1]}"
    return {"gray": "grey50", "orange": "dark_orange"}.get(color, color)


def line_glyph(marker: str) -> str:
    """How a line drawn with `marker` looks, for the legend: solid, dotted or its marker."""
    if marker == "hd":
        return "━━"
    if marker in ("braille", "fhd", "sd", "dot"):
        return "┈┈"
    return marker * 2 if len(marker) == 1 else "┈┈"


def legend(series: list[Series]) -> Text:
    """One line naming the labelled series in their colours, for under a chart."""
    t = Text()
    for s in sorted(series, key=lambda s: s.marker != "hd"):  # the highlighted lines first
        if not s.label:
            continue
        if t:
            t.append("  ")
        t.append(f"{line_glyph(s.marker)} ", style=rich_color(s.color))
        t.append(s.label)
    return t


class Chart(PlotextPlot):
    """A titled line chart that redraws only when its series change. With `inside_legend`
    off the labels are left to a legend line outside the plot (small terminals)."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str = "", *, inside_legend: bool = True, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.inside_legend = inside_legend
        self._drawn: tuple | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.draw([], self.chart_title)

    def draw(self, series: list[Series], title: str | None = None, *, xlabel: str = "epoch",
             ylim: tuple[float, float] | None = None, xlim: tuple[float, float] | None = None,
             empty: str = "no data yet") -> None:
        if title is not None:
            self.chart_title = title
        key = (self.chart_title, xlabel, ylim, xlim, empty,
               tuple((s.label, tuple(s.x), tuple(s.y), s.color, s.marker, s.points)
                     for s in series))
        if key == self._drawn:
            return
        self._drawn = key
        plt = self.plt
        plt.clear_data()
        has_data = any(s.x for s in series)
        plt.title(self.chart_title if has_data else f"{self.chart_title} · {empty}")
        plt.xlabel(xlabel if has_data else "")
        xs = sorted({x for s in series for x in s.x})
        for s in series:
            if not s.x:
                continue
            label = s.label if self.inside_legend and s.label else None
            if len(s.x) == 1:  # a single checkpoint: a dot, not an invisible line
                plt.scatter(s.x, s.y, label=label, color=s.color, marker="●")
                continue
            plt.plot(s.x, s.y, label=label, color=s.color, marker=s.marker)
            if s.points:
                plt.scatter(s.x, s.y, color=s.color, marker="●")
        if xs:
            step = max(1, len(xs) // 8)
            ticks = xs[::step]
            plt.xticks(ticks, [f"{x:g}" for x in ticks])
        if ylim is not None and has_data:
            plt.ylim(*ylim)
        if xlim is not None and has_data:
            plt.xlim(*xlim)
        self.refresh()


def mi_methods(mi: list[dict]) -> list[str]:
    return list(dict.fromkeys(str(r.get("method")) for r in mi if r.get("method")))


def mi_series(mi: list[dict], term: str, method: str | None = None) -> list[Series]:
    """One line per subset; the backdoor subset drawn last, in red, with its points marked."""
    method = method or (mi_methods(mi) or [None])[0]
    by_subset: dict[str, tuple[str, dict[float, float]]] = {}
    for r in mi:
        if r.get("term") != term or (method and r.get("method") != method):
            continue
        v, e = r.get("value"), r.get("epoch")
        if not isinstance(v, (int, float)) or not isinstance(e, (int, float)):
            continue
        subset = str(r.get("subset"))
        role = str(r.get("role") or "class")
        by_subset.setdefault(subset, (role, {}))[1][float(e)] = float(v)
    out: list[Series] = []
    labelled: set[str] = set()
    for role in ROLE_ORDER:
        for _subset, (r_role, pts) in sorted(by_subset.items()):
            if r_role != role and not (role == "class" and r_role not in ROLE_STYLE):
                continue
            color, marker, label = ROLE_STYLE.get(role, ROLE_STYLE["class"])
            xs = sorted(pts)
            out.append(Series(label if role not in labelled else "", xs, [pts[x] for x in xs],
                              color, marker, points=role == "backdoor"))
            labelled.add(role)
    return out


def acc_series(metrics: list[dict]) -> list[Series]:
    out = []
    # clean acc and ASR differ in line style as well as colour (colour-blind users, monochrome
    # terminals): a solid line against a line of ×
    for key, label, color, marker in (("test_acc", "clean acc", "cyan+", "hd"),
                                      ("asr", "ASR", "red+", "×"),
                                      ("ra", "RA", "yellow", "braille")):
        pts = [(float(m["epoch"]), float(m[key])) for m in metrics
               if isinstance(m.get(key), (int, float)) and isinstance(m.get("epoch"), (int, float))]
        if pts:
            out.append(Series(label, [p[0] for p in pts], [p[1] for p in pts], color, marker))
    return out


def class_loss_series(metrics: list[dict], target: int | None) -> list[Series]:
    classes: dict[str, list[tuple[float, float]]] = {}
    for m in metrics:
        cl = m.get("class_loss")
        if not isinstance(cl, dict) or not isinstance(m.get("epoch"), (int, float)):
            continue
        for c, v in cl.items():
            if isinstance(v, (int, float)):
                classes.setdefault(str(c), []).append((float(m["epoch"]), float(v)))
    out = []
    labelled = False
    for c in sorted(classes, key=lambda c: (str(target) == c, c)):
        pts = classes[c]
        is_target = str(target) == c
        label = f"target {c}" if is_target else ("other classes" if not labelled else "")
        labelled = labelled or not is_target
        out.append(Series(label, [p[0] for p in pts], [p[1] for p in pts],
                          "red+" if is_target else "gray", "hd" if is_target else "braille",
                          points=is_target))
    return out


def compare_series(curves: list[tuple[str, list[dict]]], term: str, role: str,
                   method: str | None = None) -> list[Series]:
    """One line per run: the MI of the subset with `role` (the target class's)."""
    out = []
    for i, (label, mi) in enumerate(curves):
        m = method or (mi_methods(mi) or [None])[0]
        pts = {}
        for r in mi:
            if r.get("term") == term and r.get("role") == role and (not m or r.get("method") == m) \
                    and isinstance(r.get("value"), (int, float)):
                pts[float(r["epoch"])] = float(r["value"])
        xs = sorted(pts)
        out.append(Series(label, xs, [pts[x] for x in xs], compare_color(i), "hd"))
    return out
