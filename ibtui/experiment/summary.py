"""Step 4: summary.json, the run's leaderboard row (stealth score per MI method with its
within-run 95% intervals, sanity checks, accuracy/ASR of the last epoch, trigger
perceptibility, timing, and the runtime it ran under).

`score_interval`, `d_xt_interval`, `d_ty_interval` ([lo, hi] or None) are the main method's
within-run intervals; each method's stealth block holds its own under `bootstrap` (with B,
the seed, what the bootstrap covers and what it misses: ibtui.analysis.stealth.stealth_bootstrap).
"""

from __future__ import annotations

import time
from pathlib import Path

from ibtui.analysis.alarm import summary_record as alarm_record
from ibtui.analysis.phases import detect_phases
from ibtui.analysis.stealth import stealth_bootstrap, stealth_score
from ibtui.data.poison import PoisonedData
from ibtui.mi import sanity_checks
from ibtui.runs.store import read_jsonl


def summarise(spec: dict, run_dir: Path, data: PoisonedData, num_classes: int, poison_s: float,
              quality: dict, t0: float, runtime: dict | None = None) -> dict:
    s = spec
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    mi = read_jsonl(run_dir / "mi.jsonl")
    last = metrics[-1] if metrics else {}
    # a clean run (attack "none") has an empty t_backdoor: it is scored on the subsets it has,
    # so its score is the reference an attacked run is compared with
    roles = {k: r for k, r in data.roles.items() if len(data.subsets.get(k, ())) > 0}
    phases = detect_phases(mi, roles)
    epochs = phases.get("representative_epochs") if s["stealth_epochs"] == "phases" and phases else None
    by_method = {m: stealth_score(mi, roles, epochs=epochs, method=m) for m in s["mi_method"]}
    for m, st in by_method.items():  # within-run 95% intervals (parametric bootstrap)
        st["bootstrap"] = stealth_bootstrap(mi, roles, epochs=epochs, method=m)
    main = by_method[s["mi_method"][0]]
    boot = main["bootstrap"]
    sizes = {k: int(len(v)) for k, v in data.subsets.items()}
    try:
        sanity = sanity_checks(
            mi, subset_sizes=sizes,
            backdoor_share=len(data.backdoor_idx) / max(1, sizes[str(s["target"])]),
            num_classes=num_classes, error_rates=None)
    except Exception as e:  # a failing check never crashes the run
        sanity = [{"check": "sanity", "ok": False, "detail": f"checks could not run: {e}"}]
    train_s = sum(m.get("seconds", 0) for m in metrics)
    mi_s = sum(m.get("mi_seconds", 0) for m in metrics)  # whole checkpoints, forward passes included
    return {
        "run_id": run_dir.name, "name": s["name"], "attack": s["attack"],
        "dataset": s["dataset"], "arch": s["arch"], "width": s["width"],
        "poison_rate": s["poison_rate"], "seed": s["seed"], "target": s["target"],
        "mi_method": s["mi_method"][0],
        "score": main["score"], "d_xt": main["d_xt"], "d_ty": main["d_ty"],
        "ceiling_share": main.get("ceiling_share"),
        **{f"{k}_interval": boot[f"{k}_interval"] for k in ("score", "d_xt", "d_ty")},
        "stealth": main, "stealth_by_method": by_method,
        "clean_acc": last.get("test_acc"), "asr": last.get("asr"),
        "asr_all": last.get("asr_all"), "ra": last.get("ra"),
        "epochs": len(metrics),
        "n_poison": int(len(data.poison_idx)), "n_backdoor": int(len(data.backdoor_idx)),
        "subset_sizes": sizes,
        **{k: quality.get(k) for k in ("psnr", "ssim", "lpips", "lpips_note") if quality},
        "phases": phases, "sanity": sanity,
        "sanity_ok": all(c.get("ok", True) for c in sanity),
        "poison_seconds": round(poison_s, 3), "train_seconds": round(train_s, 3),
        "mi_seconds": round(mi_s, 3), "wall_seconds": round(time.time() - t0, 3),
        "runtime": runtime or {},
        # the backdoor alarm's verdict, from per-class records only (no attack/target)
        "alarm": alarm_record(run_dir),
    }
