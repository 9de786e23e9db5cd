"""Backdoor alarm: which class is the backdoor target, and is there one at all, from
what a run records for every class alike, without being told the attack or the target.

Inputs (read from the run directory, each treated as untrusted; nothing else is read):
- `classes.jsonl` (ibtui.experiment.measure.class_statistics): at every MI checkpoint and the
  last epoch, per class c (all images *labelled* c, no poison mask): per-sample loss spread,
  the 2-means silhouette of its penultimate representations (activation clustering's number)
  and the variance share of their top singular direction (spectral signatures' number);
- `metrics.jsonl`: the training loss of every class at every epoch (`class_loss`);
- `mi.jsonl`: I(X;T) and I(T;Y^) of the subsets named by a class number, used only where every
  class has one at that checkpoint (observe_classes = "all"); the record's `role` is never read
  (it names the target). Caveat: the worker builds those subsets, and its non-target class
  subsets leave out images that carry a trigger but kept their label (WaNet noise samples,
  Adap-Blend cover samples); the target's subset is every image labelled t.
It never reads spec.toml, summary.json's attack/target, artifacts/ (poison indices, triggers).

Method. At every checkpoint e each feature f gives each class a robust z-score across classes,
    z_f(c) = (x_f(c) - median_c x_f) / (1.4826 MAD)     (1.2533 mean |x - median| if MAD = 0),
clipped to +-CLIP; one-sided features (larger = more suspicious: silhouette, top-direction share,
loss spread) keep the sign, two-sided ones (MI curves, class loss) use |z|. A score (SCORES
registry) averages its features' z per checkpoint, then over every checkpoint (or epoch, for the
class loss) up to e: that average over training is the "dynamics". The class suspicion at e is
the robust z across classes of that average; the top class is the largest.

Calibration. Under "no backdoor" the classes are exchangeable; we take their averaged scores as
C independent normals and compute, by Monte Carlo (NULL_DRAWS draws, fixed seed), the law of the
largest robust z among C such values. The p-value of a run at e is the share of null draws whose
largest z is at least the observed one; the alarm fires when p <= ALPHA (0.01). Real classes are
not exchangeable (digit 1 is always different), so this null is optimistic: `ibtui alarm-eval`
reports the false-positive rate measured on clean runs (attack = "none") at this threshold.

Baselines (ibtui.analysis.baselines, final model only): activation clustering (class score =
2-means silhouette) and spectral signatures (class score = top singular direction's variance
share) on the last classes.jsonl record, turned into a verdict by the same robust z and null.
`size` (the class counts) is a trivial reference, not a detector.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

ALPHA = 0.01
CLIP = 8.0
NULL_DRAWS = 20_000
NULL_SEED = 13
DEFAULT_SCORE = "dynamics"

# --- reading (untrusted files: wrong shapes are skipped, never raised) -------------------------


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _lines(path: Path) -> list[dict]:
    from ibtui.runs.store import read_jsonl

    try:
        return [r for r in read_jsonl(path) if isinstance(r, dict)]
    except Exception:  # noqa: BLE001 - a reader never breaks on a damaged run
        return []


def _epoch(r: dict) -> int | None:
    e = r.get("epoch")
    return e if isinstance(e, int) and not isinstance(e, bool) and e >= 0 else None


def load_inputs(run_dir: Path) -> dict:
    """What the detector may read: per checkpoint class statistics, per epoch class losses,
    per checkpoint MI of subsets named by a class number (values only)."""
    run_dir = Path(run_dir)
    classes: dict[int, dict[str, dict]] = {}
    for r in _lines(run_dir / "classes.jsonl"):
        e, cl = _epoch(r), r.get("classes")
        if e is None or not isinstance(cl, dict):
            continue
        classes[e] = {str(c): v for c, v in cl.items() if isinstance(v, dict) and str(c).isdecimal()}
    losses: dict[int, dict[str, float]] = {}
    acc: dict[int, float] = {}
    for r in _lines(run_dir / "metrics.jsonl"):
        e, cl = _epoch(r), r.get("class_loss")
        if e is not None and _num(r.get("test_acc")) is not None:
            acc[e] = _num(r["test_acc"])
        if e is None or not isinstance(cl, dict):
            continue
        vals = {str(c): _num(v) for c, v in cl.items() if str(c).isdecimal()}
        losses[e] = {c: v for c, v in vals.items() if v is not None}
    mi: dict[int, dict[str, dict[str, float]]] = {}
    method = None
    for r in _lines(run_dir / "mi.jsonl"):
        e, sub, term, v = _epoch(r), r.get("subset"), r.get("term"), _num(r.get("value"))
        if method is None and isinstance(r.get("method"), str):
            method = r["method"]
        if (e is None or not isinstance(sub, str) or not sub.isdecimal() or term not in ("xt", "ty")
                or v is None or r.get("method") != method):
            continue
        mi.setdefault(e, {}).setdefault(term, {})[sub] = v
    return {"classes": classes, "loss": losses, "mi": mi, "acc": acc}


# --- statistics ---------------------------------------------------------------------------------


def robust_z(values: dict[str, float], clip: float | None = CLIP) -> dict[str, float]:
    """Robust z-score of each value across the dict (median / MAD, Iglewicz & Hoaglin)."""
    keys = [k for k, v in values.items() if v is not None and math.isfinite(v)]
    if len(keys) < 3:
        return {k: 0.0 for k in keys}
    x = np.array([values[k] for k in keys], dtype=np.float64)
    med = float(np.median(x))
    dev = np.abs(x - med)
    scale = max(1.4826 * float(np.median(dev)), 1.2533 * float(dev.mean()),
                1e-9 * (1.0 + abs(med)))
    z = (x - med) / scale
    if clip is not None:
        z = np.clip(z, -clip, clip)
    return {k: float(v) for k, v in zip(keys, z, strict=True)}


@lru_cache(maxsize=32)
def _null_max(n_classes: int) -> np.ndarray:
    """Sorted largest robust z among n_classes iid normals, NULL_DRAWS Monte Carlo draws."""
    x = np.random.default_rng(NULL_SEED).standard_normal((NULL_DRAWS, n_classes))
    med = np.median(x, axis=1, keepdims=True)
    dev = np.abs(x - med)
    scale = np.maximum(1.4826 * np.median(dev, axis=1, keepdims=True),
                       1.2533 * dev.mean(axis=1, keepdims=True))
    return np.sort(((x - med) / scale).max(axis=1))


def p_value(z_max: float, n_classes: int) -> float:
    """P(largest robust z of n_classes exchangeable normal scores >= z_max)."""
    if n_classes < 3 or not math.isfinite(z_max):
        return 1.0
    null = _null_max(int(n_classes))
    above = len(null) - int(np.searchsorted(null, z_max, side="left"))
    return (above + 1) / (len(null) + 1)


def threshold_z(n_classes: int, alpha: float = ALPHA) -> float:
    """The suspicion z at which the alarm fires (the null's 1 - alpha quantile)."""
    return float(np.quantile(_null_max(int(n_classes)), 1 - alpha))


# --- scores: per checkpoint, per class; larger = more suspicious -------------------------------


def _one_sided(values: dict[str, float | None]) -> dict[str, float]:
    return robust_z({k: v for k, v in values.items() if v is not None})


def _two_sided(values: dict[str, float | None]) -> dict[str, float]:
    return {k: abs(v) for k, v in robust_z({k: v for k, v in values.items() if v is not None}).items()}


def _mean_of(parts: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for p in parts:
        for k, v in p.items():
            out.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in out.items()}


def _repr_at(inp: dict, e: int) -> dict[str, float]:
    cl = inp["classes"].get(e, {})
    parts = [_one_sided({c: _num(v.get(f)) for c, v in cl.items()})
             for f in ("ac_silhouette", "ss_top", "loss_std")]
    return _mean_of([p for p in parts if p])


def _mi_at(inp: dict, e: int) -> dict[str, float]:
    terms = inp["mi"].get(e, {})
    n = _n_classes(inp)
    parts = [_two_sided(vals) for vals in terms.values() if n and len(vals) == n]
    return _mean_of([p for p in parts if p])


def _loss_at(inp: dict, e: int) -> dict[str, float]:
    return _two_sided({c: math.log(v) if v > 0 else None for c, v in inp["loss"].get(e, {}).items()})


def _n_classes(inp: dict) -> int:
    seen = set()
    for cl in inp["classes"].values():
        seen |= set(cl)
    for cl in inp["loss"].values():
        seen |= set(cl)
    return len(seen)


def score_representation(inp: dict, upto: int) -> dict[str, float]:
    """Activation-clustering silhouette, top-direction share and loss spread of every class,
    robust z per checkpoint, averaged over the checkpoints so far."""
    es = sorted(e for e in inp["classes"] if e <= upto)
    return _mean_of([s for s in (_repr_at(inp, e) for e in es) if s])


def score_mi(inp: dict, upto: int) -> dict[str, float]:
    """|robust z| of each class's I(X;T) and I(T;Y^) per checkpoint, averaged over time."""
    es = sorted(e for e in inp["mi"] if e <= upto)
    return _mean_of([s for s in (_mi_at(inp, e) for e in es) if s])


def score_loss(inp: dict, upto: int) -> dict[str, float]:
    """|robust z| of each class's log training loss per epoch, averaged over the epochs so far."""
    es = sorted(e for e in inp["loss"] if e <= upto)
    return _mean_of([s for s in (_loss_at(inp, e) for e in es) if s])


def score_dynamics(inp: dict, upto: int) -> dict[str, float]:
    """The detector: the mean of the representation, MI and loss scores that are available."""
    return _mean_of([s for s in (score_representation(inp, upto), score_mi(inp, upto),
                                 score_loss(inp, upto)) if s])


def _last_record(inp: dict, upto: int) -> dict:
    es = [e for e in inp["classes"] if e <= upto]
    return inp["classes"][max(es)] if es else {}


def score_ac(inp: dict, upto: int) -> dict[str, float]:
    """Baseline, activation clustering (Chen et al. 2018): 2-means silhouette, latest model."""
    return {c: v for c, v in ((c, _num(r.get("ac_silhouette"))) for c, r in
                              _last_record(inp, upto).items()) if v is not None}


def score_ss(inp: dict, upto: int) -> dict[str, float]:
    """Baseline, spectral signatures (Tran et al. 2018): top singular direction's variance
    share, latest model."""
    return {c: v for c, v in ((c, _num(r.get("ss_top"))) for c, r in
                              _last_record(inp, upto).items()) if v is not None}


def score_size(inp: dict, upto: int) -> dict[str, float]:
    """Trivial reference: training images per class (dirty-label attacks enlarge the target)."""
    return {c: v for c, v in ((c, _num(r.get("n"))) for c, r in
                              _last_record(inp, upto).items()) if v is not None}


# name -> (function of (inputs, up to epoch) -> raw score per class, label)
SCORES: dict[str, tuple[Callable[[dict, int], dict[str, float]], str]] = {
    "dynamics": (score_dynamics, "dynamic detector (representation + MI + loss over training)"),
    "representation": (score_representation, "representation statistics over training"),
    "mi": (score_mi, "per-class MI curves"),
    "loss": (score_loss, "per-class training loss over epochs"),
    "ac": (score_ac, "baseline: activation clustering (Chen et al. 2018), final model"),
    "ss": (score_ss, "baseline: spectral signatures (Tran et al. 2018), final model"),
    "size": (score_size, "reference: class size (trivial)"),
}
BASELINES = {"ac": "activation clustering", "ss": "spectral signatures"}


# --- verdicts -------------------------------------------------------------------------------------


def judge(raw: dict[str, float], alpha: float = ALPHA) -> dict | None:
    """Suspicion per class (robust z across classes of the raw score), top class, p, alarm."""
    if len(raw) < 3:
        return None
    z = robust_z(raw, clip=None)
    top = max(z, key=lambda c: (z[c], -int(c)))
    p = p_value(z[top], len(z))
    return {"suspicion": {c: round(v, 4) for c, v in sorted(z.items(), key=lambda kv: int(kv[0]))},
            "top_class": int(top), "z": round(z[top], 4), "p": round(p, 6), "alarm": p <= alpha}


def checkpoints(inp: dict) -> list[int]:
    return sorted(inp["classes"])


def raw_score(inp: dict, upto: int, score: str = DEFAULT_SCORE,
              references: list[dict] | None = None) -> dict[str, float]:
    """A score's raw value per class up to epoch `upto`; with clean reference runs (their
    load_inputs), minus the references' mean value of each class at the same epoch: what is
    left is how far each class departs from how that class behaves in clean training."""
    fn = SCORES[score][0]
    raw = fn(inp, upto)
    refs = [r for r in (fn(ref, upto) for ref in references or []) if r]
    if not refs:
        return raw
    ref = _mean_of(refs)
    return {c: v - ref[c] for c, v in raw.items() if c in ref}


def timeline(inp: dict, score: str = DEFAULT_SCORE, alpha: float = ALPHA,
             references: list[dict] | None = None) -> list[dict]:
    """One verdict per checkpoint (every classes.jsonl epoch): {epoch, suspicion, top_class, z,
    p, alarm}."""
    out = []
    for e in checkpoints(inp):
        v = judge(raw_score(inp, e, score, references), alpha)
        if v is not None:
            out.append({"epoch": e, **v})
    return out


def verdict(run_dir: Path, score: str = DEFAULT_SCORE, alpha: float = ALPHA,
            inp: dict | None = None, references: list[dict] | None = None) -> dict | None:
    """The run's current verdict: the latest checkpoint's, plus `first_epoch`, the first
    checkpoint from which on the alarm has fired naming the same class at every checkpoint
    (None while it has not fired), the threshold it was judged with and the number of clean
    reference runs it was corrected by (0: robust z across classes alone)."""
    inp = load_inputs(run_dir) if inp is None else inp
    tl = timeline(inp, score, alpha, references)
    if not tl:
        return None
    last = dict(tl[-1])
    first = None
    if last["alarm"]:
        for v in reversed(tl):
            if v["alarm"] and v["top_class"] == last["top_class"]:
                first = v["epoch"]
            else:
                break
    n = len(last["suspicion"])
    last.update(score=score, alpha=alpha, threshold_z=round(threshold_z(n, alpha), 4),
                first_epoch=first, poisoned=bool(last.pop("alarm")),
                checkpoints=len(tl), references=len(references or []))
    untrained = clean_task_unlearned(inp, n)
    if untrained:  # a model that learned nothing has no backdoor to tell apart from its classes
        last.update(poisoned=None, first_epoch=None, no_verdict=untrained)
    return last


def clean_task_unlearned(inp: dict, n_classes: int) -> str | None:
    """`clean accuracy 0.18` when the model's latest clean test accuracy is below the validity
    floor (ibtui.analysis.validity.acc_floor: chance + half the way to 1), else None."""
    from ibtui.analysis.validity import acc_floor

    acc = inp.get("acc") or {}
    if not acc:
        return None
    last = acc[max(acc)]
    return f"clean accuracy {last:.2f}" if last < acc_floor(max(n_classes, 2)) else None


def summary_record(run_dir: Path) -> dict | None:
    """summary.json's `alarm`: the detector's verdict and both baselines' (never raises)."""
    try:
        inp = load_inputs(run_dir)
        v = verdict(run_dir, inp=inp)
        if v is None:
            return None
        v["baselines"] = {}
        for name in BASELINES:
            b = verdict(run_dir, name, inp=inp)
            if b is not None:
                v["baselines"][name] = {k: b[k] for k in ("top_class", "z", "p", "poisoned",
                                                          "suspicion")}
        return v
    except Exception as e:  # noqa: BLE001 - the alarm never breaks a run's summary
        return {"error": f"{type(e).__name__}: {e}"}


# --- display helpers for `ibtui show` and the app -------------------------------------------


def alarm_lines(run) -> list[str]:
    """Plain-text lines for `ibtui show`: verdict, first epoch, suspicion per class, baselines.
    `run` is an ibtui.runs.store.Run (or a run directory). Never raises."""
    try:
        return _alarm_lines(Path(getattr(run, "path", run)))
    except Exception as e:  # noqa: BLE001 - a reader never breaks on a damaged run
        return [f"backdoor alarm: unreadable per-class records ({type(e).__name__}: {e})"]


def _alarm_lines(path: Path) -> list[str]:
    v = verdict(path)
    if v is None:
        return ["backdoor alarm: no per-class statistics yet (classes.jsonl)"]
    if v.get("no_verdict"):
        from ibtui.analysis.validity import acc_floor

        return [f"backdoor alarm: no verdict: {v['no_verdict']} (the model did not learn its "
                f"clean task; a verdict needs ≥ {acc_floor(len(v['suspicion'])):.2f})"]
    if v["poisoned"]:
        head = (f"backdoor alarm: POISONED? yes: class {v['top_class']} is the suspected target "
                f"(z {v['z']:.2f}, p {v['p']:.4f}), first reached at epoch {v['first_epoch']}")
    else:
        head = (f"backdoor alarm: no alarm (top class {v['top_class']}, z {v['z']:.2f}, "
                f"p {v['p']:.4f}; fires at p <= {v['alpha']:g}, z >= {v['threshold_z']:.2f})")
    sus = "  ".join(f"{c}:{z:+.1f}" for c, z in v["suspicion"].items())
    lines = [head, f"  suspicion per class at epoch {v['epoch']}: {sus}"]
    parts = []
    for name, label in BASELINES.items():
        b = verdict(path, name)
        if b is not None:
            parts.append(f"{label}: class {b['top_class']} z {b['z']:.2f} "
                         f"{'ALARM' if b['poisoned'] else 'no alarm'}")
    if parts:
        lines.append("  baselines (latest model): " + "; ".join(parts))
    return lines


_LIVE: dict[str, tuple[tuple, dict | None]] = {}
LIVE_FILES = ("classes.jsonl", "metrics.jsonl", "mi.jsonl")


def live_verdict(run) -> dict | None:
    """The detector's current verdict for the app: summary.json's `alarm` once the run has one,
    else computed from the files, cached until classes/metrics/mi change. Never raises."""

    summ = getattr(run, "summary", None)
    if isinstance(summ, dict) and isinstance(summ.get("alarm"), dict) \
            and isinstance(summ["alarm"].get("suspicion"), dict):
        return summ["alarm"]
    path = Path(getattr(run, "path", run))
    from ibtui.runs.store import file_signature

    sig = file_signature(path, LIVE_FILES)
    key = str(path)
    cached = _LIVE.get(key)
    if cached is not None and cached[0] == sig:
        return cached[1]
    try:
        v = verdict(path) if sig[0] is not None else None
    except Exception:  # noqa: BLE001 - a reader never breaks on a damaged run
        v = None
    if len(_LIVE) > 4096:
        _LIVE.clear()
    _LIVE[key] = (tuple(sig), v)
    return v


def alarm_cell(run) -> str:
    """Short text for the runs list: '! 3' (the alarm names class 3), 'ok', or '' (no data)."""
    v = live_verdict(run)
    if not isinstance(v, dict) or "top_class" not in v:
        return ""
    return verdict_cell(v)


def verdict_cell(v: dict) -> str:
    """'! 3' (the alarm names class 3), 'no verdict' (untrained model) or 'ok'."""
    if v.get("no_verdict"):
        return "no verdict"
    return f"! {v['top_class']}" if v.get("poisoned") else "ok"


def suspicion_bars(v: dict | None, width: int = 20) -> list[tuple[str, str, bool]]:
    """(class, bar text, highlighted) per class: a small bar chart of a verdict's suspicion
    (live_verdict); the suspected class is highlighted once the alarm fires."""
    try:
        sus = {str(c): float(z) for c, z in (v or {}).get("suspicion", {}).items()}
        if not sus:
            return []
        scale = max(float(v.get("threshold_z") or 0.0), max(sus.values()), 1e-9)
        top = v.get("top_class")
        out = []
        for c, z in sus.items():
            n = int(round(max(z, 0.0) / scale * width))
            out.append((c, "█" * n + f" {z:+.1f}", bool(v.get("poisoned")) and str(top) == c))
        return out
    except (TypeError, ValueError, AttributeError):
        return []
