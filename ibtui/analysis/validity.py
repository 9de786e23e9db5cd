"""When a run's stealth score is a finding, and how runs are ranked (docs/method.md, Validity).

A stealth score says how quietly a learned backdoor sits in a trained model. It is a finding
only when the model learned both things it is measured on:
- its backdoor: final ASR >= `min_asr` (spec field, default ASR_MIN = 0.9; an experiment that
  lowers it, e.g. clean-label LC on a small model, says why in `min_asr_reason`). A clean run
  (attack "none") has no backdoor to learn;
- its clean task: clean accuracy within ACC_MARGIN of the mean clean accuracy of finished clean
  runs of the same training recipe (RECIPE_KEYS) when the runs directory holds any, else at
  least acc_floor(C) = chance + half the way from chance to 1 (0.55 for 10 classes): a model
  that far above chance has learned its task, one below it may not have.
A run is also set aside when another run of the same configuration and the same seed came first
(a duplicate: a relaunch or a copied directory measures nothing new; it is counted once).

Ranking (`assess`): runs that pass are ranked by score, ascending; every run set aside follows
all of them, with each failed condition named. Two ranked runs whose within-run score intervals
overlap are marked as ties (a run without an interval ties with every other).

Everything here works on plain records (dicts): `config` (replicas.config_key), `recipe`
(recipe_key), `seed`, `attack`, `state`, `score`, `score_lo`, `score_hi`, `clean_acc`, `asr`,
`min_asr`, `min_asr_reason`, `ceiling`, and `created` or list order for "came first".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ibtui.fmt import interval

ASR_MIN = 0.9
ACC_MARGIN = 0.05
N_CLASSES = 10  # every dataset ibtui ships has 10 classes
CLEAN_ATTACK = "none"
RECIPE_KEYS = ("dataset", "arch", "width", "epochs", "lr", "batch_size", "noise_xt", "noise_ty",
               "momentum", "weight_decay", "plateau_patience", "plateau_factor")
RULES_TEXT = (f"valid: ✔ when the run learned its backdoor (final ASR ≥ {ASR_MIN:g}, or the "
              f"experiment's min_asr) and its clean task (accuracy within {ACC_MARGIN:g} of "
              "clean runs of the same recipe, else ≥ chance + half the way to 1), and is no "
              "duplicate of an earlier run with the same configuration and seed; ✖ names what "
              "failed. Runs set aside are listed after every ranked run. Ranked runs whose "
              "score intervals overlap are ties.")


def score_interval(summary: dict | None) -> tuple[float | None, float | None]:
    """The within-run 95% interval of the score recorded in summary.json (stealth.bootstrap),
    or (None, None)."""
    st = (summary or {}).get("stealth")
    boot = st.get("bootstrap") if isinstance(st, dict) else None
    iv = boot.get("score_interval") if isinstance(boot, dict) else None
    if (isinstance(iv, (list, tuple)) and len(iv) == 2
            and all(_num(v) is not None for v in iv)):
        return float(iv[0]), float(iv[1])
    return None, None


def inputs_of(run) -> dict:
    """What `assess` reads of a run (an ibtui.runs.store.Run: id, spec, summary, status, state,
    damaged, config); a damaged run is not `done` here."""
    from ibtui.analysis.replicas import config_key

    s = run.summary if isinstance(run.summary, dict) else {}
    sp = run.spec if isinstance(run.spec, dict) else {}
    st = run.status if isinstance(run.status, dict) else {}
    lo, hi = score_interval(s)
    share = _num(s.get("ceiling_share"))
    has_spec = any(v is not None for v in sp.values())  # a light spec lists absent keys as None
    return {"run": run.id, "attack": sp.get("attack"), "seed": sp.get("seed"),
            "config": getattr(run, "config", None) or (config_key(sp) if has_spec else None),
            "recipe": recipe_key(sp) if has_spec else None, "min_asr": min_asr_of(sp),
            "min_asr_reason": sp.get("min_asr_reason") or None, "created": st.get("created"),
            "state": "damaged" if run.damaged else str(run.state),
            "score": s.get("score"), "score_lo": lo, "score_hi": hi,
            "clean_acc": s.get("clean_acc"), "asr": s.get("asr"), "ceiling": share}


def acc_floor(n_classes: int = N_CLASSES) -> float:
    """The clean-accuracy floor without a clean reference: chance + (1 - chance) / 2."""
    chance = 1.0 / max(int(n_classes), 2)
    return chance + (1.0 - chance) / 2


def recipe_key(spec: dict) -> str:
    """A short id of the training recipe (clean runs of the same recipe are the reference)."""
    core = {k: spec.get(k) for k in RECIPE_KEYS}
    return hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def min_asr_of(spec: dict) -> float:
    v = _num((spec or {}).get("min_asr"))
    return v if v is not None and 0 <= v <= 1 else ASR_MIN


@dataclass
class Verdict:
    """One run's validity: `ok` None while it has nothing to judge (not finished, no
    accuracy); `reasons` the failed conditions; `rank` among valid runs; `ties` ranks."""

    ok: bool | None = None
    reasons: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    rank: int | None = None
    ties: list[int] = field(default_factory=list)  # the nearest tied ranks (TIES_SHOWN)
    ties_n: int = 0  # how many ranks it ties with

    def text(self) -> str:
        if self.ok is None:
            return "–"
        return "✔" if self.ok else "✖ " + "; ".join(self.reasons)


def own_reasons(rec: dict, ref_acc: float | None = None) -> list[str] | None:
    """The failed conditions of one finished record, given the clean reference's accuracy
    (None: no reference); None when the record has no clean accuracy to judge."""
    acc = _num(rec.get("clean_acc"))
    if acc is None:
        return None
    reasons = []
    if ref_acc is not None and acc < ref_acc - ACC_MARGIN:
        reasons.append(f"clean accuracy {acc:.2f} is {ref_acc - acc:.2f} below clean runs of "
                       f"its recipe ({ref_acc:.2f}; margin {ACC_MARGIN:g})")
    elif ref_acc is None and acc < acc_floor():
        reasons.append(f"clean task not learned (acc {acc:.2f} < {acc_floor():.2f})")
    if rec.get("attack") != CLEAN_ATTACK:
        asr = _num(rec.get("asr"))
        need = _num(rec.get("min_asr"))
        need = ASR_MIN if need is None else need
        if asr is None:
            reasons.append("backdoor not measured (no ASR)")
        elif asr < need:
            reasons.append(f"backdoor not learned (ASR {asr:.2f} < {need:g})")
    return reasons


def clean_references(records: Iterable[dict]) -> dict[str, float]:
    """{recipe: mean clean accuracy} of the finished clean runs (one per seed)."""
    accs: dict[str, dict] = {}
    for r in records:
        acc = _num(r.get("clean_acc"))
        if r.get("attack") == CLEAN_ATTACK and r.get("state") == "done" and acc is not None:
            accs.setdefault(r.get("recipe"), {}).setdefault(r.get("seed"), acc)
    return {k: sum(v.values()) / len(v) for k, v in accs.items() if v}


def duplicates(records: list[dict]) -> dict[int, str]:
    """{index: run id of the earlier run} of every record that repeats an earlier record's
    configuration and seed (earlier = created first, then listed first; a finished run comes
    before an unfinished one, so a relaunch never displaces the run that did the work)."""
    order = sorted(range(len(records)), key=lambda i: (
        records[i].get("state") != "done", _num(records[i].get("created")) or 0.0, i))
    first: dict[tuple, str] = {}
    out = {}
    for i in order:
        r = records[i]
        if not r.get("config") or r.get("seed") is None:
            continue
        key = (r["config"], json.dumps(r["seed"], default=str))
        if key in first:
            out[i] = first[key]
        else:
            first[key] = r.get("run")
    return out


TIES_SHOWN = 10  # a run's ties name at most this many ranks (the nearest); ties_n counts all
TIES_SCAN = 200  # ranks looked at on each side for the nearest ties


def tied_ranks(spans: list[tuple[float, float] | None], keep: int = TIES_SHOWN
               ) -> list[tuple[list[int], int]]:
    """For intervals listed in rank order (rank = index + 1; None = no interval), the ranks each
    one cannot be told apart from (an overlapping interval, or none at all): (the `keep`
    nearest of them, ascending; how many there are). Counting by binary search over the sorted
    ends, O(n log n): with ten thousand overlapping runs a full list would be quadratic."""
    from bisect import bisect_left, bisect_right

    n = len(spans)
    los = sorted(s[0] for s in spans if s is not None)
    his = sorted(s[1] for s in spans if s is not None)
    bare = sum(s is None for s in spans)

    def tie(i: int, j: int) -> bool:
        a, b = spans[i], spans[j]
        return a is None or b is None or (a[0] <= b[1] and b[0] <= a[1])

    out = []
    for i, span in enumerate(spans):
        if span is None:
            count = n - 1
        else:
            lo, hi = span
            apart = bisect_left(his, lo) + (len(los) - bisect_right(los, hi))
            count = len(los) - apart - 1 + bare
        near: list[int] = []
        for d in range(1, min(n, TIES_SCAN + 1)):
            if len(near) >= min(keep, count):
                break
            near += [j + 1 for j in (i - d, i + d) if 0 <= j < n and tie(i, j)]
        out.append((sorted(near[:keep]), count))
    return out


def why_text(v: Verdict, rec: dict) -> str | None:
    """The verdict's reasons as one line, with the experiment's own ASR threshold's reason."""
    why = "; ".join(v.reasons) or None
    if why and rec.get("min_asr_reason") and "backdoor not learned" in why:
        why += f" (threshold: {rec['min_asr_reason']})"
    return why


def assess(records: list[dict]) -> list[Verdict]:
    """Each record's Verdict (same order): validity, duplicates, rank and ties by score."""
    refs = clean_references(records)
    dups = duplicates(records)
    out = []
    for i, r in enumerate(records):
        v = Verdict()
        if r.get("state") == "done":
            reasons = own_reasons(r, refs.get(r.get("recipe")) if r.get("attack") != CLEAN_ATTACK
                                  else None)
            if i in dups:  # its own conditions are the earlier run's to answer for
                v.duplicate_of = dups[i]
                reasons = [f"duplicate of {dups[i]} (same configuration and seed)"]
            if reasons is not None:
                v.ok, v.reasons = not reasons, reasons
        out.append(v)
    ranked = sorted((i for i, v in enumerate(out) if v.ok and _num(records[i].get("score"))
                     is not None), key=lambda i: _num(records[i]["score"]))
    spans = []
    for pos, i in enumerate(ranked, 1):
        out[i].rank = pos
        lo, hi = _num(records[i].get("score_lo")), _num(records[i].get("score_hi"))
        spans.append(None if lo is None or hi is None else (lo, hi))
    for i, (ties, count) in zip(ranked, tied_ranks(spans), strict=True):
        out[i].ties, out[i].ties_n = ties, count
    return out


def set_aside_summary(verdicts: list[Verdict]) -> str | None:
    """`2 runs set aside: 1 backdoor not learned, 1 duplicate` (None when none was)."""
    bad = [v for v in verdicts if v.ok is False]
    if not bad:
        return None
    kinds: dict[str, int] = {}
    for v in bad:
        for why in v.reasons:
            kind = why.split(" (")[0].split(" of ")[0]
            kind = "clean accuracy below its clean reference" if kind.startswith("clean accuracy") \
                else kind
            kinds[kind] = kinds.get(kind, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return f"{len(bad)} run{'s' * (len(bad) != 1)} set aside (not ranked): {parts}"


def short_reason(why: str) -> str:
    """The first failed condition in a word or two, for narrow cells (` +` when more failed)."""
    more = " +" if "; " in why else ""
    for key, short in (("duplicate", "duplicate"), ("backdoor not", "no backdoor"),
                       ("clean task", "untrained"), ("clean accuracy", "below clean")):
        if why.startswith(key):
            return short + more
    return why.split(" (")[0][:14] + more


def score_text(score: float | None, lo: float | None = None, hi: float | None = None,
               ceiling: float | None = None) -> str:
    """`0.160 [0.146, 0.168]` (ibtui.fmt.interval), with ` ⚠` when any MI value it was computed
    from sat at its estimator's ceiling; `–` without a score."""
    text = interval(score, lo, hi)
    c = _num(ceiling)
    return text + (" ⚠" if _num(score) is not None and c is not None and c > 0 else "")
