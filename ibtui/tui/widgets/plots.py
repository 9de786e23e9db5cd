"""Terminal plots of a run (textual-plotext): MI over epochs per subset, accuracy/ASR, class loss.

Each chart is a `PlotextPlot`: `draw()` keeps the series and the chart is built through its
`.plt` when it renders, at its size (title, ticks and bars depend on it); never `show()`.
The series builders are plain functions of the run's records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual_plotext import PlotextPlot

TERM_LABEL = {"xt": "I(X;T)", "ty": "I(T;Ŷ)"}
# role: (color, point marker, legend label). Every line has its own point marker as well as
# its own colour (monochrome terminals, colour-blind users); the backdoor's line is solid
ROLE_STYLE = {
    "backdoor": ("red+", "●", "backdoor"),
    "all": ("blue+", "■", "target"),
    "clean": ("green+", "+", "target clean"),
    "sample": ("yellow", "◆", "target sample"),
    "class": ("gray", "○", "others mean"),
}
ROLE_ORDER = ("class", "sample", "clean", "all", "backdoor")  # drawn last = on top
BAND_MARKER = "·"  # the other classes' min–max band
BOUND_MARKER = "░"  # the band from a subset's certified lower bound up to its estimate
CEILING_MARKER = "╌"  # log N: the estimator cannot read a value above it
SATURATED_MARKER = "▲"  # a value at its ceiling (a lower bound, not an estimate)
SATURATED_MARGIN = 0.1  # nats: as ibtui.mi.checkpoint's CEILING_MARGIN
# which subsets the run screen's MI charts show (`v` cycles)
SUBSET_VIEWS = {
    "all": ("every subset", ("backdoor", "all", "clean", "sample", "class")),
    "target": ("target class only", ("backdoor", "all", "clean", "sample")),
    "backdoor": ("backdoor vs other classes", ("backdoor", "class")),
}
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
    name: str = ""  # its bar's name when there is one checkpoint ("" = no bar)
    scatter: bool = False  # points only, no line
    aux: bool = False  # a bound, band or ceiling: not a value of its own
    upper: list[float] | None = None  # a band: filled with `marker` from y up to upper
    point: str = ""  # marker of its data points, drawn over its (fine) line


def rich_color(color: str) -> str:
    """A plotext colour name as a Rich colour (`red+` is the bright variant)."""
    if color.endswith("+"):
        return f"bright_{color[:-1]}"
    return {"gray": "grey50", "orange": "dark_orange"}.get(color, color)


def line_glyph(marker: str) -> str:
    """How a line drawn with `marker` looks, for the legend."""
    glyphs = {"hd": "━━", "fhd": "━━", "braille": "⣀⣀", "sd": "██", "dot": "••"}
    if marker in glyphs:
        return glyphs[marker]
    return marker * 2 if len(marker) == 1 else "┈┈"


def glyph(s: Series) -> str:
    if s.scatter:
        return s.marker
    if s.point:
        return f"{line_glyph(s.marker)[0]}{s.point}{line_glyph(s.marker)[0]}"
    return line_glyph(s.marker)


def legend(series: list[Series]) -> Text:
    """One line naming the labelled series in their colours, for under a chart."""
    t = Text()
    for s in sorted(series, key=lambda s: s.marker != "hd"):  # the highlighted lines first
        if not s.label:
            continue
        if t:
            t.append("  ")
        t.append(f"{glyph(s)} ", style=rich_color(s.color))
        t.append(s.label)
    return t


def nice_step(span: float, n: int) -> float:
    """A step of 1, 2, 2.5 or 5 × 10^k giving about `n` intervals over `span`."""
    if span <= 0 or n <= 0:
        return 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def nice_ticks(lo: float, hi: float, n: int, integer: bool = False) -> list[float]:
    """Evenly spaced round tick values covering [lo, hi] with about `n` intervals."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = nice_step(hi - lo, max(1, n))
    if integer:
        step = max(1.0, round(step))
    start = math.floor(lo / step + 1e-9) * step
    ticks = []
    t = start
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def tick_label(v: float, step: float) -> str:
    """A tick value with as many decimals as the step needs (2.5 → 1, 0.25 → 2)."""
    digits = 0
    while digits < 4 and abs(step * 10 ** digits - round(step * 10 ** digits)) > 1e-6:
        digits += 1
    return f"{v:.{digits}f}"


def band_points(x: list[float], lo: list[float], hi: list[float], xr: tuple[float, float],
                yr: tuple[float, float], cols: int, rows: int) -> tuple[list, list]:
    """Points filling the area between two curves, one a cell of a cols×rows plot."""
    if len(x) < 2 or xr[1] <= xr[0] or yr[1] <= yr[0]:
        return [], []
    bx, by = [], []
    dx, dy = (xr[1] - xr[0]) / cols, (yr[1] - yr[0]) / rows
    for i in range(cols + 1):
        px = xr[0] + i * dx
        if px < x[0] or px > x[-1]:
            continue
        k = max(1, next((j for j in range(1, len(x)) if x[j] >= px), len(x) - 1))
        f = (px - x[k - 1]) / ((x[k] - x[k - 1]) or 1.0)
        a = lo[k - 1] + f * (lo[k] - lo[k - 1])
        b = hi[k - 1] + f * (hi[k] - hi[k - 1])
        a, b = min(a, b), max(a, b)
        for j in range(rows + 1):
            py = yr[0] + j * dy
            if a <= py <= b:
                bx.append(px)
                by.append(py)
    return bx, by


def fit_title(titles: str | tuple[str, ...], width: int) -> str:
    """The longest of `titles` (longest first) that fits `width` cells; else the last, cut."""
    options = (titles,) if isinstance(titles, str) else tuple(titles)
    for t in options:
        if len(t) <= width:
            return t
    return options[-1][:max(1, width)] if options else ""


class Chart(PlotextPlot):
    """A titled line chart, built when it renders at its size and only when its series or size
    changed: titles shorten rather than vanish when narrow, ticks are round and evenly spaced
    over the whole x range, and a chart of one checkpoint shows a bar per series. With
    `inside_legend` off the labels are left to a legend line outside the plot."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str | tuple[str, ...] = "", *, inside_legend: bool = True,
                 ylabel: str = "", id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.ylabel = ylabel
        self.inside_legend = inside_legend
        self._drawn: tuple | None = None
        self._state: tuple = ([], "epoch", None, None, "no data yet")
        self._built: tuple | None = None
        self.shown_title = ""  # the title as last drawn (at the chart's width)

    def draw(self, series: list[Series], title: str | tuple[str, ...] | None = None, *,
             xlabel: str = "epoch", ylim: tuple[float, float] | None = None,
             xlim: tuple[float, float] | None = None, empty: str = "no data yet",
             ylabel: str | None = None) -> None:
        """Show `series`; `title` may be a tuple of titles, longest first (the longest that
        fits is shown)."""
        if title is not None:
            self.chart_title = title
        if ylabel is not None:
            self.ylabel = ylabel
        key = (self.chart_title, self.ylabel, xlabel, ylim, xlim, empty,
               tuple((s.label, tuple(s.x), tuple(s.y), s.color, s.marker, s.points, s.name,
                      s.scatter, s.aux) for s in series))
        if key == self._drawn:
            return
        self._drawn = key
        self._state = (list(series), xlabel, ylim, xlim, empty)
        self.refresh()

    def render(self):
        size = (self.size.width, self.size.height)
        if self._built != (self._drawn, size):
            self._built = (self._drawn, size)
            self._build(*size)
        return super().render()

    def _build(self, width: int, height: int) -> None:
        series, xlabel, ylim, xlim, empty = self._state
        plt = self.plt
        plt.clear_figure()
        values = [s for s in series if s.x and not s.aux]
        xs = sorted({x for s in values for x in s.x})
        titles = self.chart_title
        if not xs:
            options = (titles,) if isinstance(titles, str) else tuple(titles)
            titles = (*(f"{t} · {empty}" for t in options), *options)
            self.shown_title = fit_title(titles, width - 2)
            plt.title(self.shown_title)
            return
        if len(xs) == 1 and any(s.name for s in values):
            self._bars(values, xs[0], width, height)
            return
        # x: round ticks over the whole range (a live run's later epochs too)
        x_lo, x_hi = xlim if xlim is not None else (xs[0], xs[-1])
        x_lo, x_hi = min(x_lo, xs[0]), max(x_hi, xs[-1])
        integer = all(float(x).is_integer() for x in xs)
        xt = [t for t in nice_ticks(x_lo, x_hi, max(1, (width - 8) // 10), integer)
              if x_lo <= t <= x_hi] or [x_lo]
        if integer and x_lo not in xt and (len(xt) < 2 or xt[0] - x_lo > (xt[1] - xt[0]) / 2):
            xt = [x_lo, *xt]
        # y: round, evenly spaced ticks; the axis spans them
        ys = [y for s in series for y in (*s.y, *(s.upper or ()))
              if isinstance(y, (int, float)) and math.isfinite(y)]
        y_lo, y_hi = ylim if ylim is not None else (min(ys), max(ys))
        yt = nice_ticks(y_lo, y_hi, min(max(1, (height - 5) // 3), 6))
        if ylim is not None:
            yt = [t for t in yt if ylim[0] - 1e-9 <= t <= ylim[1] + 1e-9]
        step = yt[1] - yt[0] if len(yt) > 1 else 1.0
        ylabels = [tick_label(t, step) for t in yt]
        # plotext centres the title over the plot area and drops one that does not fit it
        self.shown_title = fit_title(titles, width - max(map(len, ylabels)) - 3)
        plt.title(self.shown_title)
        plt.xlabel(xlabel)
        plt.ylabel(self.ylabel)
        for s in series:
            if not s.x:
                continue
            label = s.label if self.inside_legend and s.label else None
            if s.upper is not None:
                bx, by = band_points(s.x, s.y, s.upper, (x_lo, x_hi), (yt[0], yt[-1]),
                                     max(2, width - 8), max(2, height - 5))
                if bx:
                    plt.scatter(bx, by, label=label, color=s.color, marker=s.marker)
                continue
            if s.scatter or len(s.x) == 1:  # a single point: a dot, not an invisible line
                plt.scatter(s.x, s.y, label=label, color=s.color,
                            marker=s.marker if s.scatter else (s.point or "●"))
                continue
            plt.plot(s.x, s.y, label=label, color=s.color, marker=s.marker)
            if s.points or s.point:
                plt.scatter(s.x, s.y, color=s.color, marker=s.point or "●")
        plt.xticks(xt, [f"{t:g}" for t in xt])
        plt.xlim(x_lo, x_hi)
        plt.yticks(yt, ylabels)
        plt.ylim(yt[0], yt[-1])

    def _bars(self, values: list[Series], x: float, width: int, height: int) -> None:
        """One checkpoint: a bar per named series, its value in its name."""
        plt = self.plt
        ceiling = next((s.y[0] for s in self._state[0] if s.marker == CEILING_MARKER and s.y),
                       None)
        bars = [s for s in values if s.name][::-1]  # the first named on top
        names = [f"{s.name} {s.y[0]:.2f}" + (" ▲" if ceiling is not None and s.y[0] >=
                                              ceiling - SATURATED_MARGIN else "") for s in bars]
        options = (self.chart_title,) if isinstance(self.chart_title, str) else self.chart_title
        at = f" · epoch {x:g}" + (f" · ceiling {ceiling:.2f}" if ceiling is not None else "")
        self.shown_title = fit_title(tuple(f"{t}{at}" for t in options) + options,
                                     width - max(map(len, names)) - 3)
        plt.title(self.shown_title)
        plt.xlabel(self.ylabel)
        for i, s in enumerate(bars):
            plt.bar([i + 1], [s.y[0]], orientation="horizontal", color=s.color, width=0.5)
        plt.yticks([i + 1 for i in range(len(bars))], names)
        hi = max(s.y[0] for s in bars)
        xt = nice_ticks(0.0, hi, max(1, (width - 20) // 10))
        step = xt[1] - xt[0] if len(xt) > 1 else 1.0
        plt.xticks(xt, [tick_label(t, step) for t in xt])
        plt.xlim(0, xt[-1])


def mi_methods(mi: list[dict]) -> list[str]:
    return list(dict.fromkeys(str(r.get("method")) for r in mi if r.get("method")))


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def mi_series(mi: list[dict], term: str, method: str | None = None, view: str = "all",
              bounds: bool = True) -> list[Series]:
    """The MI of a term per subset: each target subset a fine line with its own colour and
    point marker, the other classes as one mean line inside their min–max band (·), the
    backdoor subset a solid line on top; with `bounds`, the band from the backdoor's certified
    lower bound up to its estimate (░); the estimator's ceiling (log N) as a dashed line, and
    every value at its ceiling marked ▲ (it says "at least this much"). `view` (SUBSET_VIEWS)
    picks the subsets."""
    method = method or (mi_methods(mi) or [None])[0]
    roles_shown = SUBSET_VIEWS.get(view, SUBSET_VIEWS["all"])[1]
    by_subset: dict[str, tuple[str, dict[float, dict]]] = {}
    for r in mi:
        if r.get("term") != term or (method and r.get("method") != method):
            continue
        v, e = _num(r.get("value")), _num(r.get("epoch"))
        if v is None or e is None:
            continue
        role = str(r.get("role") or "class")
        role = role if role in ROLE_STYLE else "class"
        by_subset.setdefault(str(r.get("subset")), (role, {}))[1][e] = r
    bands: list[Series] = []
    lines: list[Series] = []
    ceilings: set[float] = set()
    saturated: dict[float, float] = {}  # epoch -> the highest value at its ceiling
    for role in ROLE_ORDER:
        if role not in roles_shown:
            continue
        color, point, label = ROLE_STYLE[role]
        members = [pts for _s, (r_role, pts) in sorted(by_subset.items()) if r_role == role]
        for pts in members:
            for e, rec in pts.items():
                c, v = _num(rec.get("ceiling")), float(rec["value"])
                if c is not None:
                    ceilings.add(round(c, 2))
                if rec.get("at_ceiling") is True or (c is not None and v >= c - SATURATED_MARGIN):
                    saturated[e] = max(v, saturated.get(e, v))
        if not members:
            continue
        if role == "class":
            epochs = sorted({e for pts in members for e in pts})
            per = {e: [float(pts[e]["value"]) for pts in members if e in pts] for e in epochs}
            if len(members) > 1:
                bands.append(Series("others min–max", epochs, [min(per[e]) for e in epochs],
                                    color, BAND_MARKER, aux=True,
                                    upper=[max(per[e]) for e in epochs]))
            lines.append(Series(label if len(members) > 1 else "other class", epochs,
                                [sum(per[e]) / len(per[e]) for e in epochs], color, "braille",
                                name="other classes", point=point))
            continue
        for i, pts in enumerate(members):
            xs = sorted(pts)
            ys = [float(pts[x]["value"]) for x in xs]
            backdoor = role == "backdoor"
            lines.append(Series(label if i == 0 else "", xs, ys, color,
                                "hd" if backdoor else "braille", points=backdoor,
                                name=label if i == 0 else "", point=point))
            lx = [x for x in xs if _num(pts[x].get("lower")) is not None]
            if bounds and backdoor and len(lx) > 1:
                bands.append(Series("lower bound" if i == 0 else "", lx,
                                    [float(pts[x]["lower"]) for x in lx], color, BOUND_MARKER,
                                    aux=True, upper=[float(pts[x]["value"]) for x in lx]))
    out = bands + lines  # the bands under the lines, the backdoor's line last (on top)
    xs_all = sorted({x for s in lines for x in s.x})
    if ceilings and xs_all:
        lo, hi = xs_all[0], xs_all[-1]
        for i, c in enumerate(sorted(ceilings)):
            label = ("ceiling log N") if i == 0 else ""
            out.insert(0, Series(label, [lo, hi] if hi > lo else [lo], [c, c] if hi > lo else [c],
                                 "default", CEILING_MARKER, aux=True))
    if saturated:
        xs = sorted(saturated)
        out.append(Series("at ceiling", xs, [saturated[x] for x in xs], "magenta+",
                          SATURATED_MARKER, scatter=True, aux=True))
    return out


def acc_series(metrics: list[dict]) -> list[Series]:
    out = []
    # clean acc, ASR and RA differ in line style as well as colour (colour-blind users,
    # monochrome terminals): a solid line, a line of ×, a fine line
    for key, label, color, marker in (("test_acc", "clean acc", "cyan+", "hd"),
                                      ("asr", "ASR", "red+", "×"),
                                      ("ra", "RA", "yellow", "braille")):
        pts = [(float(m["epoch"]), float(m[key])) for m in metrics
               if isinstance(m.get(key), (int, float)) and isinstance(m.get("epoch"), (int, float))]
        if pts:
            out.append(Series(label, [p[0] for p in pts], [p[1] for p in pts], color, marker,
                              name=label))
    return out


def acc_title(series: list[Series]) -> str:
    """`clean acc · ASR · RA`: every quantity the accuracy chart draws."""
    names = [s.label for s in series if s.label] or ["clean acc", "ASR"]
    return " · ".join(names)


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
                          points=is_target, name=f"class {c}"))
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
        out.append(Series(label, xs, [pts[x] for x in xs], compare_color(i), "hd", name=label))
    return out
