"""Sanity checks on MI records (docs/method.md §5). Never raises: a malformed record becomes a flag.

Each flag: {check, subset, epoch, ok, value, bound, detail}. Checks:
- ceiling:     value ≤ the estimator's ceiling (log(K+1), log N, ...).
- saturation:  value < ceiling − 0.1 nats (an estimate pinned at its ceiling says only "≥").
- log_n:       I(X;T) ≤ log N, N = the subset's size (X uniform over the subset's images).
- backdoor_entropy: for records of term "xb" (I(X;B), B = backdoor flag), value ≤ H(B) with
  H(B) the binary entropy of `backdoor_share` (0.325 nats at 10%).
- dpi:         for records of term "xy" (I(X;Ŷ)), value ≤ min(I(X;T), I(T;Ŷ)) of the same
  subset, epoch and method.
- fano:        for subsets in `error_rates` whose labels span the classes (name "all" or any
  name not starting with a class digit), I(X;T) and I(T;Ŷ) ≥ log C − h_b(Pe) − Pe log(C−1)
  (Y → X → T → Ŷ, uniform classes). For single-class subsets H(Y) = 0 and the bound is 0.
  I(X;T) measured at a scale (settings.network_noise_value present) is checked at the
  network's own noise: the classifier reads T, not T plus the measurement noise.
"""

from __future__ import annotations

import math
from typing import Any

_TOL = 1e-6


def binary_entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def fano_bound(error_rate: float, num_classes: int) -> float:
    """Least I(Y;Ŷ) (nats) a C-class predictor with error Pe needs when H(Y) = log C."""
    pe = min(max(float(error_rate), 0.0), 1.0)
    extra = pe * math.log(num_classes - 1) if num_classes > 1 else 0.0
    return max(math.log(num_classes) - binary_entropy(pe) - extra, 0.0)


def _flag(check: str, rec: dict, ok: bool, value: Any, bound: Any, detail: str) -> dict:
    return {"check": check, "subset": rec.get("subset"), "epoch": rec.get("epoch"),
            "ok": bool(ok), "value": value, "bound": bound, "detail": detail}


def _multi_class(name: str) -> bool:
    return name == "all" or not name[:1].isdigit()


def _one(rec: dict, by_key: dict, subset_sizes: dict, h_b: float, num_classes: int,
         error_rates: dict) -> list[dict]:
    out: list[dict] = []
    value, term, name = rec.get("value"), rec.get("term"), str(rec.get("subset"))
    method = rec.get("method", "?")
    if value is None or not math.isfinite(float(value)):
        return [_flag("value", rec, False, value, None, f"{method} {term}: no finite value")]
    value = float(value)
    ceiling = rec.get("ceiling")
    if ceiling is not None:
        out.append(_flag("ceiling", rec, value <= ceiling + _TOL, value, ceiling,
                         f"{method} {term}: estimate vs its ceiling"))
        out.append(_flag("saturation", rec, value < ceiling - 0.1, value, ceiling,
                         f"{method} {term}: within 0.1 nats of its ceiling = only a lower bound"))
    if term == "xt":
        n = subset_sizes.get(name, rec.get("n"))
        if n:
            out.append(_flag("log_n", rec, value <= math.log(n) + _TOL, value, math.log(n),
                             f"{method}: I(X;T) <= log N, N = {n}"))
    if term == "xb":
        out.append(_flag("backdoor_entropy", rec, value <= h_b + _TOL, value, h_b,
                         f"{method}: I(X;B) <= H(B)"))
    if term == "xy":
        others = [by_key.get((t, name, rec.get("epoch"), method)) for t in ("xt", "ty")]
        others = [o for o in others if o is not None]
        if others:
            bound = min(others)
            out.append(_flag("dpi", rec, value <= bound + _TOL, value, bound,
                             f"{method}: I(X;Y^) <= min(I(X;T), I(T;Y^))"))
    if term in ("xt", "ty") and name in error_rates:
        bound = fano_bound(error_rates[name], num_classes) if _multi_class(name) else 0.0
        # Fano holds for the T the classifier reads: I(X;T) at a measurement scale (T plus
        # extra noise, `xt_scale`) is compared through its value at the network's own noise
        own = (rec.get("settings") or {}).get("network_noise_value") if term == "xt" else None
        value = float(own) if isinstance(own, (int, float)) else value
        out.append(_flag("fano", rec, value >= bound - _TOL, value, bound,
                         f"{method} {term}: >= log C - h_b(Pe) - Pe log(C-1), "
                         f"Pe = {error_rates[name]:.4f}"))
    return out


def sanity_checks(records: list[dict], *, subset_sizes: dict[str, int], backdoor_share: float,
                  num_classes: int, error_rates: dict[str, float] | None) -> list[dict]:
    """Flags for every record (see module doc); never raises."""
    flags: list[dict] = []
    try:
        h_b = binary_entropy(float(backdoor_share))
        by_key = {}
        for r in records:
            try:
                by_key[(r.get("term"), str(r.get("subset")), r.get("epoch"),
                        r.get("method", "?"))] = float(r["value"])
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
        for r in records:
            try:
                flags.extend(_one(r, by_key, subset_sizes or {}, h_b, int(num_classes),
                                  error_rates or {}))
            except Exception as exc:  # noqa: BLE001 - a check must never break a run
                rec = r if isinstance(r, dict) else {}
                flags.append(_flag("record", rec, False, None, None, f"unreadable: {exc}"))
    except Exception as exc:  # noqa: BLE001
        flags.append({"check": "sanity", "subset": None, "epoch": None, "ok": False,
                      "value": None, "bound": None, "detail": f"checks failed: {exc}"})
    return flags
