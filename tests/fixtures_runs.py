"""A deterministic runs directory with a run in every state (and damaged ones), for tests.

`make_fixture_runs(root)` writes `<root>/runs` and returns its path. Every timestamp is fixed
relative to `now` (default `FIXTURE_NOW`); render elapsed times with a clock that returns the
same value (tests), or pass `now=time.time()` for a directory that looks live to the real clock
(tests/tmux_drive.py).

Live runs must look alive to `ibtui.runs.store.effective_state` (same host, pid alive, start
time as recorded): they claim pid 1 (init, always alive) on this host, with its start time.
A crashed run claims a pid that cannot exist.
Nothing here starts a process; nothing is random.
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

from ibtui.runs.store import atomic_write_json, process_start_time
from ibtui.spec import FIELDS, experiment_to_toml

FIXTURE_NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DEAD_PID = 999_999_999  # larger than any pid_max: never alive
LIVE_PID = 1  # init: always alive
LIVE_PID_START = process_start_time(LIVE_PID)  # recorded with the pid: proves it is the worker

ATTACK_OPTIONS = {
    "badnets": {"size": 5, "colour": "red", "corner": "top-left", "variant": "default"},
    "blend": {"alpha": 0.3, "test_alpha": 0.3, "pattern": "noise", "variant": "default"},
    "wanet": {"k": 4, "s": 0.5, "variant": "default"},
    "ftrojan": {"magnitude": 30.0, "window": 32, "variant": "default"},
}


def _spec(name: str, attack: str, arch: str, rate: float, seed: int, epochs: int,
          dataset: str = "digits") -> dict:
    values = {k: f.default for k, f in FIELDS.items()}
    values.update(name=name, dataset=dataset, arch=arch, width=8, attack=attack,
                  attack_options=ATTACK_OPTIONS[attack], poison_rate=rate, target=0,
                  epochs=epochs, mi_epochs=[e for e in (1, 2, 4, 6, 8, 10) if e <= epochs],
                  mi_method=["noise-aware"], mi_options={"k": 2},
                  observe_classes=list(range(1, 10)), seed=seed, device="cpu")
    return values


def _metrics(epochs_done: int, epochs: int, strength: float) -> list[dict]:
    out = []
    for e in range(1, epochs_done + 1):
        f = e / epochs
        acc = round(0.45 + 0.5 * (1 - math.exp(-4 * f)) * (0.96 + 0.02 * strength), 4)
        asr = round(min(0.999, 0.1 + 0.9 * (1 - math.exp(-(3 + 4 * strength) * f))), 4)
        loss = round(1.9 * math.exp(-3 * f) + 0.05, 4)
        out.append({
            "epoch": e, "lr": 0.01, "train_loss": loss, "train_acc": round(acc + 0.02, 4),
            "test_loss": round(loss * 1.1, 4), "test_acc": acc, "asr": asr,
            "asr_all": round(asr * 0.9 + 0.1, 4), "ra": round((1 - asr) * 0.8, 4),
            "class_loss": {str(c): round(loss * (0.6 + 0.08 * c) * (0.5 if c == 0 else 1), 4)
                           for c in range(10)},
            "seconds": 12.5, "time": FIXTURE_NOW - 3600 + 13 * e,
        })
    return out


def _mi(mi_epochs: list[int], epochs: int, strength: float) -> list[dict]:
    """I(X;T) rises then compresses; the backdoor subset fits fast and compresses hard."""
    subsets = [("0", "all"), ("0_backdoor", "backdoor"), ("0_clean", "clean"),
               ("0_sample", "sample")] + [(str(c), "class") for c in range(1, 10)]
    out = []
    for e in mi_epochs:
        f = e / epochs
        for term in ("xt", "ty"):
            for subset, role in subsets:
                c = int(subset.split("_")[0])
                if role == "backdoor":
                    base = 5.2 * math.exp(-2.5 * f * (1 + strength)) + 0.6
                elif term == "xt":
                    base = 3.0 + 2.0 * f * math.exp(-1.2 * f) - 0.04 * c
                else:
                    base = 0.4 + 1.6 * (1 - math.exp(-3 * f)) - 0.03 * c
                if term == "ty" and role == "backdoor":
                    base = 2.2 * (1 - math.exp(-6 * f))
                if role in ("clean", "sample"):
                    base += 0.15 if role == "clean" else -0.1
                value = round(base, 4)
                out.append({"epoch": e, "term": term, "subset": subset, "role": role,
                            "method": "noise-aware", "value": value, "lower": round(value - 0.1, 4),
                            "upper": round(value + 0.1, 4), "ceiling": 6.9, "n": 120,
                            "settings": {"k": 2}, "seconds": 1.5})
    return out


def _summary(spec: dict, strength: float, metrics: list[dict], extra: dict | None = None) -> dict:
    last = metrics[-1]
    score = round(0.2 + 0.5 * strength, 4)
    s = {
        "run_id": "", "name": spec["name"], "attack": spec["attack"], "dataset": spec["dataset"],
        "arch": spec["arch"], "width": spec["width"], "poison_rate": spec["poison_rate"],
        "seed": spec["seed"], "target": 0, "mi_method": "noise-aware", "score": score,
        "d_xt": round(score * 1.3, 4), "d_ty": round(score * 0.7, 4),
        "stealth": {"method": "noise-aware", "score": score, "d_xt": round(score * 1.3, 4),
                    "d_ty": round(score * 0.7, 4), "epochs": spec["mi_epochs"], "per_epoch": []},
        "clean_acc": last["test_acc"], "asr": last["asr"], "asr_all": last["asr_all"],
        "ra": last["ra"], "epochs": spec["epochs"], "n_poison": 120, "n_backdoor": 108,
        "subset_sizes": {"0": 140, "0_backdoor": 108, "0_clean": 140, "0_sample": 100},
        "psnr": None, "ssim": None, "phases": None,
        "sanity": [
            {"check": "xt <= log N", "subset": "0_backdoor", "epoch": 1, "ok": True,
             "value": 5.1, "bound": 6.9, "detail": ""},
            {"check": "ty <= H(Y)", "subset": "0", "epoch": 1, "ok": strength < 0.5,
             "value": 2.4, "bound": 2.3, "detail": "estimate above the entropy bound"},
        ],
        "poison_seconds": 1.2, "train_seconds": 125.0, "mi_seconds": 40.0, "wall_seconds": 170.0,
    }
    s["sanity_ok"] = all(c["ok"] for c in s["sanity"])
    s.update(extra or {})
    return s


def _write_run(runs: Path, run_id: str, spec: dict | None, status: dict | None,
               metrics: list[dict] = (), mi: list[dict] = (), summary: dict | None = None,
               log: list[str] = ()) -> Path:
    path = runs / run_id
    (path / "artifacts").mkdir(parents=True)
    if spec is not None:
        (path / "spec.toml").write_text(experiment_to_toml(spec, "[experiment]"))
    if status is not None:
        atomic_write_json(path / "status.json", status)
    if metrics:
        (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if mi:
        (path / "mi.jsonl").write_text("".join(json.dumps(m) + "\n" for m in mi))
    if summary is not None:
        summary = dict(summary, run_id=run_id)
        atomic_write_json(path / "summary.json", summary)
    if log:
        (path / "worker.log").write_text("\n".join(log) + "\n")
    return path


def make_fixture_runs(root: Path, now: float = FIXTURE_NOW) -> Path:
    """Write `<root>/runs` with 13 runs covering every state; return the runs directory."""
    runs = Path(root) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    t0 = now - 7200  # created two hours ago, one run a minute

    def status(i: int, state: str, **kw) -> dict:
        s = {"state": state, "created": t0 + 60 * i, "phase": state, "pid": None, "host": host,
             "gpu": None, "device": "cpu", "started": None, "ended": None, "heartbeat": None,
             "error": None, "epoch": 0, "epochs": 10, "progress": 0.0, "detail": "",
             "test_acc": None, "asr": None}
        s.update(kw)
        return s

    def finished(i: int, state: str, epochs: int, minutes: float, **kw) -> dict:
        start = t0 + 60 * i + 30
        fields = {"started": start, "ended": start + 60 * minutes,
                  "heartbeat": start + 60 * minutes, "epoch": epochs, "epochs": 10,
                  "progress": 1.0}
        return status(i, state, **{**fields, **kw})

    def log(run_id: str, lines: int, end: str) -> list[str]:
        out = [f"[worker] {run_id} starting", "[poison] 120 of 1437 training images poisoned"]
        out += [f"[train] epoch {e}/10 loss {1.9 * math.exp(-0.3 * e):.3f}"
                for e in range(1, lines + 1)]
        return out + ([end] if end else [])

    # 1-3: done, with summaries
    done = [
        ("paper-badnets-digits-resnet18-p0.1-s0", "badnets", "resnet18", 0.1, 0, 0.9, {}),
        ("paper-blend-digits-resnet18-p0.1-s0", "blend", "resnet18", 0.1, 0, 0.35,
         {"psnr": 21.37, "ssim": 0.712}),
        ("paper-wanet-digits-vgg16-p0.05-s1", "wanet", "vgg16", 0.05, 1, 0.15,
         {"psnr": 28.91, "ssim": 0.934}),
    ]
    for i, (rid, attack, arch, rate, seed, strength, extra) in enumerate(done):
        spec = _spec("paper", attack, arch, rate, seed, 10)
        m = _metrics(10, 10, strength)
        _write_run(runs, rid, spec,
                   finished(i, "done", 10, 4.5 + i, test_acc=m[-1]["test_acc"], asr=m[-1]["asr"]),
                   m, _mi(spec["mi_epochs"], 10, strength), _summary(spec, strength, m, extra),
                   log(rid, 10, "[worker] done"))

    # 4: running, training epoch 6 of 10; 5: running, estimating MI after epoch 4
    running = [
        ("paper-ftrojan-digits-resnet18-p0.1-s0", "ftrojan", 0, 5, 0.5, [1, 2, 4], "",
         {"gpu": "0", "started": t0 + 210, "heartbeat": now - 2, "phase": "training", "epoch": 6,
          "progress": 0.4}),
        ("paper-badnets-digits-resnet18-p0.1-s1", "badnets", 1, 4, 0.8, [1, 2],
         "[mi] epoch 4: 13 subsets",
         {"gpu": "1", "started": t0 + 270, "heartbeat": now - 1, "phase": "mi", "epoch": 4,
          "progress": 0.25, "detail": "I(X;T) 0_backdoor"}),
    ]
    for i, (rid, attack, seed, trained, strength, mi_epochs, end, kw) in enumerate(running, start=3):
        spec = _spec("paper", attack, "resnet18", 0.1, seed, 10)
        m = _metrics(trained, 10, strength)
        _write_run(runs, rid, spec,
                   status(i, "running", pid=LIVE_PID, pid_start=LIVE_PID_START, **kw,
                          test_acc=m[-1]["test_acc"], asr=m[-1]["asr"]),
                   m, _mi(mi_epochs, 10, strength), None, log(rid, trained, end))

    # 6-7: queued
    for i, (rid, attack, rate, seed) in enumerate([
            ("paper-blend-digits-resnet18-p0.05-s1", "blend", 0.05, 1),
            ("paper-wanet-digits-resnet18-p0.1-s2", "wanet", 0.1, 2)], start=5):
        _write_run(runs, rid, _spec("paper", attack, "resnet18", rate, seed, 10),
                   status(i, "queued", phase="queued"))

    # 8: failed
    rid = "paper-wanet-digits-resnet18-p0.1-s0"
    _write_run(runs, rid, _spec("paper", "wanet", "resnet18", 0.1, 0, 10),
               finished(7, "failed", 0, 0.2, phase="failed",
                        error="DataError: digits: cannot poison 0 images; raise poison_rate"),
               log=log(rid, 0, "[worker] failed: DataError: digits: cannot poison 0 images"))

    # 9: crashed: the stored state says running but the worker is gone
    rid = "paper-badnets-digits-resnet18-p0.2-s2"
    spec = _spec("paper", "badnets", "resnet18", 0.2, 2, 10)
    m = _metrics(3, 10, 0.9)
    _write_run(runs, rid, spec,
               status(8, "running", pid=DEAD_PID, started=t0 + 510,
                      heartbeat=t0 + 510 + 45, phase="training", epoch=4, progress=0.1,
                      test_acc=m[-1]["test_acc"], asr=m[-1]["asr"]),
               m, _mi([1, 2], 10, 0.9), None, log(rid, 3, "Killed"))

    # 10: cancelled, 11: interrupted
    _write_run(runs, "paper-blend-digits-resnet18-p0.1-s2",
               _spec("paper", "blend", "resnet18", 0.1, 2, 10),
               finished(9, "cancelled", 2, 0.5, phase="cancelled", error="cancelled by user"),
               _metrics(2, 10, 0.35))
    _write_run(runs, "paper-ftrojan-digits-vgg16-p0.1-s1",
               _spec("paper", "ftrojan", "vgg16", 0.1, 1, 10),
               finished(10, "interrupted", 3, 1.0, phase="interrupted",
                        error="stopped by SIGTERM"),
               _metrics(3, 10, 0.5))

    # 12: damaged: status.json half-written, spec.toml torn, metrics with a torn tail
    rid = "broken-run"
    path = _write_run(runs, rid, None, None)
    (path / "status.json").write_text('{"state": "runn')
    (path / "spec.toml").write_text('[experiment]\nname = "bro')
    (path / "metrics.jsonl").write_text(json.dumps(_metrics(1, 10, 0.1)[0]) + '\n{"epoch": 2, "tr')

    # 13: done but its summary never landed
    rid = "paper-badnets-digits-resnet18-p0.05-s0"
    _write_run(runs, rid, _spec("paper", "badnets", "resnet18", 0.05, 0, 10),
               finished(11, "done", 10, 3.0), _metrics(10, 10, 0.6))

    atomic_write_json(runs / ".scheduler.json", {
        "pid": LIVE_PID, "host": host, "jobs": 2, "gpus": ["0", "1"],
        "heartbeat": now - 1,
        "workers": [
            {"run": "paper-ftrojan-digits-resnet18-p0.1-s0", "pid": 4101, "gpu": "0",
             "since": t0 + 210},
            {"run": "paper-badnets-digits-resnet18-p0.1-s1", "pid": 4102, "gpu": "1",
             "since": t0 + 270},
        ],
    })
    return runs
