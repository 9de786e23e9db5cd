"""Replicas: runs that differ only in their seed, summarised as mean ± a 95% interval.

A configuration is every resolved spec field except `seed` (and except launch details that do
not change the science: `threads`, `device`, `data_root`, `download`). The interval is Student's
t interval for the mean over seeds, mean ± t(0.975, n-1)·s/√n. With the 3–5 seeds a sweep
affords, a percentile bootstrap over seeds cannot be wider than the seeds' own range and
under-covers badly; the t interval is the honest small-sample choice. One seed: no interval.

Ranking: configurations are ordered by their mean; two whose intervals overlap cannot be told
apart, and each row lists the ranks it is tied with (found by a sweep over the intervals:
O(G log G) plus the tied pairs for G configurations).
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field

from ibtui.fmt import mean_pm
from ibtui.runs.config import config_key

METRICS = ("score", "d_xt", "d_ty", "clean_acc", "asr")


@dataclass
class Interval:
    mean: float
    lo: float | None
    hi: float | None
    n: int

    def overlaps(self, other: Interval) -> bool:
        if self.lo is None or other.lo is None:
            return True  # one seed: nothing to tell them apart by
        return self.lo <= other.hi and other.lo <= self.hi

    def text(self) -> str:
        return mean_pm(self.mean, self.lo, self.hi)


def mean_interval(values: list[float], level: float = 0.95) -> Interval | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and abs(v) < 1e150]  # squares and sums stay finite
    if not vals:
        return None
    n = len(vals)
    mean = sum(vals) / n
    if n < 2:
        return Interval(mean, None, None, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    # Student's t quantile; scipy.special loads in half the time of scipy.stats (local: most
    # commands that import this module compute no interval)
    from scipy.special import stdtrit

    half = float(stdtrit(n - 1, 0.5 + level / 2)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


@dataclass
class Group:
    key: str
    label: dict            # the fields that describe the configuration in a table
    runs: list[str]
    seeds: list[int]       # the distinct seeds its intervals are computed over
    metrics: dict[str, Interval | None] = field(default_factory=dict)
    rank: int = 0
    ties: list[int] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # run -> the run it repeats
    set_aside: dict[str, str] = field(default_factory=dict)   # run -> why it is not counted

    @property
    def valid(self) -> bool:
        """At least one counted run (a seed not set aside) has a score."""
        return self.metrics.get("score") is not None


def _has(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def group_replicas(rows: list[dict], by: str = "score") -> list[Group]:
    """rows: dicts with `run`, `spec` (resolved spec), the METRICS and optionally `valid` and
    `why` (ibtui.runs.board.rank_records). A seed counts once: of the rows with one seed, the
    first with a `by` value is counted and the others are duplicates. Rows whose `valid` is
    False are set aside with their reason; unfinished rows (metric None) are left out of the
    intervals but counted in `runs`. Groups with a counted score are ranked first."""
    groups: dict[str, Group] = {}
    members_of: dict[str, list[dict]] = {}  # linear in the rows (10,000 runs in the app)
    for r in rows:
        spec = r.get("spec") or {}
        key = config_key(spec)
        g = groups.setdefault(key, Group(key, {k: spec.get(k) for k in (
            "name", "attack", "dataset", "arch", "poison_rate")}, [], []))
        g.runs.append(r["run"])
        members_of.setdefault(key, []).append(r)
    for key, g in groups.items():
        first: dict[str, dict] = {}
        for r in sorted(members_of[key], key=lambda r: not _has(r.get(by))):  # stable
            seed = json.dumps((r.get("spec") or {}).get("seed"), default=str)
            if seed in first:
                g.duplicates[r["run"]] = first[seed]["run"]
            else:
                first[seed] = r
        counted = []
        for r in first.values():
            if r.get("valid") is False:
                why = str(r.get("why") or "not valid")
                if not why.startswith("duplicate"):
                    g.set_aside[r["run"]] = why
                    continue
            counted.append(r)
        g.seeds = sorted(s for s in ((r.get("spec") or {}).get("seed") for r in counted
                                     if _has(r.get(by))) if isinstance(s, int))
        g.metrics = {m: mean_interval([r.get(m) for r in counted]) for m in METRICS}
    ordered = sorted(groups.values(), key=lambda g: (g.metrics.get(by) is None,
                                                     g.metrics[by].mean if g.metrics.get(by) else 0))
    for i, g in enumerate(ordered, 1):
        g.rank = i
    mark_ties(ordered, by)
    return ordered


def overlapping(ivs: list[Interval | None]) -> list[list[int]]:
    """For each interval, the indices (ascending) of the others it overlaps (Interval.overlaps:
    one with a single seed overlaps every interval; None, no value, overlaps none).

    A sweep over the intervals sorted by their lower end, keeping the open ones in a heap by
    upper end: O(n log n) plus the number of tied pairs, instead of testing every pair."""
    present = [i for i, iv in enumerate(ivs) if iv is not None]
    single = [i for i in present if ivs[i].lo is None]
    spans = sorted((i for i in present if ivs[i].lo is not None), key=lambda i: ivs[i].lo)
    tied: dict[int, list[int]] = {i: [] for i in present}
    open_: list[tuple[float, int]] = []  # (upper end, index) of intervals that may still overlap
    for i in spans:
        iv = ivs[i]
        while open_ and open_[0][0] < iv.lo:  # ends before this (and every later) one starts
            heapq.heappop(open_)
        for _, j in open_:  # started no later than this one, ends at or after its start
            tied[j].append(i)
            tied[i].append(j)
        heapq.heappush(open_, (iv.hi, i))
    out = []
    for i, iv in enumerate(ivs):
        if iv is None:
            out.append([])
        elif iv.lo is None:
            out.append([j for j in present if j != i])
        else:
            out.append(sorted(tied[i] + single))
    return out


def mark_ties(ordered: list[Group], by: str = "score") -> None:
    """g.ties = the ranks (ascending) of every other group whose `by` interval overlaps g's."""
    ties = overlapping([g.metrics.get(by) for g in ordered])
    for g, tie in zip(ordered, ties, strict=True):
        g.ties = sorted(ordered[j].rank for j in tie)
