"""How numbers are printed: one rule per kind of value, for CLI tables, progress lines, the md
export and the app, so that one run's score reads the same everywhere.

Measured values (score, D_XT/D_TY and other MI in nats, accuracy, ASR, RA, SSIM, losses) get
three decimals, PSNR (dB) two, seconds one; a poison rate or learning rate prints as written
(`0.05`). A missing value (None, NaN, not a number) is `–`.
"""

from __future__ import annotations

import math
from typing import Any

NONE = "–"
AS_WRITTEN = ("rate", "poison_rate", "lr")  # settings, not measurements: `0.05`, `1e-04`
DIGITS = {"psnr": 2}  # columns not printed with three decimals (seconds: one)


def _real(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def num(v: Any, digits: int = 3) -> str:
    """A measured value with `digits` decimals, `–` without one."""
    x = _real(v)
    return NONE if x is None else f"{x:.{digits}f}"


def rate(v: Any) -> str:
    """A poison rate as written: `0.05`, `0.1`."""
    x = _real(v)
    return NONE if x is None else f"{x:g}"


def interval(value: Any, lo: Any = None, hi: Any = None, digits: int = 3) -> str:
    """`0.160 [0.146, 0.168]`, the value alone without both ends, `–` without a value."""
    if _real(value) is None:
        return NONE
    if _real(lo) is None or _real(hi) is None:
        return num(value, digits)
    return f"{num(value, digits)} [{num(lo, digits)}, {num(hi, digits)}]"


def mean_pm(mean: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """A mean over seeds with its 95% interval as `0.200 ± 0.248`; one seed: `0.500 (n = 1)`."""
    if _real(lo) is None or _real(hi) is None:
        return f"{num(mean, digits)} (n = 1)"
    return f"{num(mean, digits)} ± {num((hi - lo) / 2, digits)}"


def cell(column: str, v: Any) -> str:
    """A table cell of `column` (a leaderboard column, a metric or summary key) as text:
    floats by the rule of their kind, ints and text as they are."""
    if v is None:
        return NONE
    if not isinstance(v, float):
        return str(v)
    if column in AS_WRITTEN:
        return rate(v)
    seconds = column.endswith(("seconds", "_s"))
    return num(v, 1 if seconds else DIGITS.get(column, 3))
