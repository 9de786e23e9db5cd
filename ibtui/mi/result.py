"""`MIEstimate`: what every estimator returns (JSON-friendly through `to_dict`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


def _plain(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if hasattr(o, "item") and callable(o.item):  # numpy / torch scalars
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (bool, int, float, str)) or o is None:
        return o
    return str(o)


@dataclass
class MIEstimate:
    """One mutual-information estimate, in nats.

    value: the estimate. lower/upper: a bracket the *estimator's target* provably lies in
    (noise-aware: Kolchinsky–Tracey bounds), else None. ceiling: the largest value the
    estimator can return whatever the truth (InfoNCE: log(K+1); noise-aware I(X;T): log N),
    else None. settings: everything needed to reproduce it (plus diagnostics such as the
    Monte Carlo standard error or the per-epoch training curve). seconds: wall time.
    """

    value: float
    method: str
    lower: float | None = None
    upper: float | None = None
    ceiling: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))
