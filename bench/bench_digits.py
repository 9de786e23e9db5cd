"""The embedded benchmark's table of ASR and clean accuracy per attack (and setting) over seeds.

    python bench/bench_digits.py RUNS_DIR [--out FILE.md]

Every finished run of RUNS_DIR counts here (learned or not: this table is what says whether the
backdoors were learned). One row per (experiment name, attack, poison rate, balance): seeds,
ASR and clean accuracy as mean [95% t-interval over seeds] and min, how many runs reached the
validity threshold (ASR >= the experiment's min_asr, default 0.9), and the mean wall time of a run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ibtui.analysis.replicas import mean_interval  # noqa: E402
from ibtui.data.attacks import PAPER_ORDER  # noqa: E402
from ibtui.runs.store import list_runs  # noqa: E402

ORDER = ["none", *PAPER_ORDER]


def _iv(vals: list[float]) -> str:
    if not vals:
        return "–"
    m = sum(vals) / len(vals)
    iv = mean_interval(vals)
    if iv is None or iv.lo is None:
        return f"{m:.3f} (n=1)"
    return f"{m:.3f} [{max(0.0, iv.lo):.3f}, {min(1.0, iv.hi):.3f}]"


def rows(runs_dir: Path) -> list[dict]:
    groups: dict[tuple, list] = {}
    states: dict[tuple, dict] = {}
    for r in list_runs(runs_dir):
        s = r.spec or {}
        key = (s.get("name"), s.get("attack"), float(s.get("poison_rate") or 0.0),
               bool((s.get("attack_options") or {}).get("balance")))
        states.setdefault(key, {}).setdefault(r.state, 0)
        states[key][r.state] += 1
        if r.state == "done" and isinstance(r.summary, dict):
            groups.setdefault(key, []).append((s, r.summary, r.status or {}))
    out = []
    for key in sorted(set(groups) | set(states), key=lambda k: (
            str(k[0]), -k[2], k[3], ORDER.index(k[1]) if k[1] in ORDER else 99)):
        got = groups.get(key, [])
        asr = [x["asr"] for _, x, _ in got if isinstance(x.get("asr"), (int, float))]
        acc = [x["clean_acc"] for _, x, _ in got if isinstance(x.get("clean_acc"), (int, float))]
        need = [float(s.get("min_asr", 0.9) or 0.9) for s, _, _ in got]
        learned = sum(a >= n for a, n in zip(asr, need, strict=False))
        secs = []
        for _, x, st in got:
            t = x.get("wall_seconds")
            if t is None and isinstance(st.get("started"), (int, float)) and isinstance(
                    st.get("ended"), (int, float)):
                t = st["ended"] - st["started"]
            if isinstance(t, (int, float)):
                secs.append(float(t))
        out.append({"name": key[0], "attack": key[1], "rate": key[2], "balanced": key[3],
                    "done": len(got), "states": states.get(key, {}), "asr": asr, "acc": acc,
                    "learned": learned, "seconds": secs,
                    "seeds": sorted(s.get("seed") for s, _, _ in got)})
    return out


def render(rs: list[dict], runs_dir: Path) -> str:
    lines = [f"Runs: `{runs_dir}`, read {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. "
             "ASR and clean accuracy: mean [95% t-interval over seeds] (min). Learned: runs with "
             "ASR ≥ 0.9 (the experiment's min_asr). Wall: mean seconds per run (shared 2-core "
             "box, other work running).", "",
             "| experiment | attack | rate | runs done (other states) | ASR | ASR min | clean acc "
             "| acc min | learned | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        other = {k: v for k, v in r["states"].items() if k != "done"}
        label = r["attack"] + (" (balanced)" if r["balanced"] else "")
        done = f"{r['done']}" + (" (" + ", ".join(f"{v} {k}" for k, v in other.items()) + ")"
                                 if other else "")
        clean = r["attack"] == "none"
        asr = "–" if clean else _iv(r["asr"])
        asr_min = "–" if clean or not r["asr"] else f"{min(r['asr']):.3f}"
        acc_min = f"{min(r['acc']):.3f}" if r["acc"] else "–"
        learned = "–" if clean else f"{r['learned']}/{r['done']}"
        wall = f"{sum(r['seconds']) / len(r['seconds']):.0f}" if r["seconds"] else "–"
        lines.append(f"| {r['name']} | {label} | {r['rate'] * 100:g}% | {done} | {asr} | "
                     f"{asr_min} | {_iv(r['acc'])} | {acc_min} | {learned} | {wall} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="the rows as JSON instead")
    a = ap.parse_args()
    rs = rows(a.runs_dir)
    text = json.dumps(rs, indent=1, default=str) if a.json else render(rs, a.runs_dir)
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
