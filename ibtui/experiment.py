"""One run end to end: data -> poison -> train -> class-wise MI -> stealth score.

Called by the worker process (ibtui.runs.worker) with the run directory; it is the only writer
of that directory. Work survives a kill: every finished epoch is a flushed line in
metrics.jsonl, every MI estimate a line in mi.jsonl, and checkpoint.pt (written atomically after
each epoch, once its MI is done) lets `ibtui resume` continue without duplicates or gaps.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ibtui.analysis.stealth import stealth_score
from ibtui.data.attacks import create_attack
from ibtui.data.attacks.base import AttackContext
from ibtui.data.datasets import load_dataset
from ibtui.data.poison import PoisonedData, poison_dataset
from ibtui.models import create_model
from ibtui.runs.store import RunWriter, atomic_write_bytes, atomic_write_json, read_jsonl
from ibtui.spec import read_spec_file
from ibtui.train import (
    attack_metrics,
    evaluate,
    make_optimizer,
    pick_device,
    prepare_model,
    seed_everything,
    to_device,
    train_epoch,
)

CHECKPOINT_VERSION = 1


class Stop(Exception):
    """Raised at a safe point when the run was asked to stop (state = cancelled/interrupted)."""

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state


class RunFailed(Exception):
    """The run cannot go on (NaN loss, NaN MI...): state = failed with this reason."""


def pause_point(name: str, run_dir: Path) -> None:
    """Fault-injection hook for tests: IBTUI_PAUSE_AT=<name> makes the worker write
    <run>/paused-<name> and sleep there, so a test can SIGKILL it at a known point."""
    wanted = os.environ.get("IBTUI_PAUSE_AT", "")
    if wanted and wanted == name:
        (run_dir / f"paused-{name}").write_text(str(os.getpid()))
        while True:
            time.sleep(0.2)


class Experiment:
    def __init__(self, run_dir: Path, should_stop: Callable[[], str | None] = lambda: None):
        self.dir = Path(run_dir)
        self.w = RunWriter(self.dir)
        self.spec = read_spec_file(self.dir / "spec.toml")
        from ibtui.mi import validate_mi_options

        for m in self.spec["mi_method"]:  # refill option defaults that TOML could not store
            self.spec["mi_options"] = validate_mi_options(m, self.spec["mi_options"])
        self.should_stop = should_stop
        self._last_beat = 0.0

    # --- status -----------------------------------------------------------------------
    def beat(self, force: bool = False, **fields) -> None:
        now = time.time()
        if force or fields or now - self._last_beat > 2.0:
            self._last_beat = now
            self.w.heartbeat(**fields)
        reason = self.should_stop()
        if (self.dir / "cancel").exists():
            raise Stop("cancelled", "cancelled by user")
        if reason:
            raise Stop("interrupted", reason)

    # --- main -------------------------------------------------------------------------
    def run(self) -> dict:
        s = self.spec
        t0 = time.time()
        self.device = pick_device(s["device"])
        self.w.set_status(state="running", pid=os.getpid(), host=socket.gethostname(),
                          gpu=os.environ.get("CUDA_VISIBLE_DEVICES"), device=str(self.device),
                          started=t0, ended=None, error=None, phase="poisoning", epoch=0,
                          epochs=s["epochs"], progress=0.0)
        seed_everything(s["seed"])
        pause_point("poisoning", self.dir)
        data, poison_s, quality = self.poison()
        print(f"[poison] {s['attack']} on {s['dataset']}: {len(data.poison_idx)} triggered, "
              f"{len(data.backdoor_idx)} backdoor samples; subsets "
              f"{ {k: len(v) for k, v in data.subsets.items()} }", flush=True)
        self.beat(force=True, phase="training")
        # training randomness (init, noise, batch order) must not depend on how much poisoning
        # consumed; a resumed run restores every RNG state from its checkpoint below
        seed_everything(s["seed"] + 1)
        model = create_model(s["arch"], self.num_classes, s["width"], s["noise_xt"], s["noise_ty"])
        model = prepare_model(model, data.x_train, self.device)
        opt, sched = make_optimizer(model, s["lr"], s["momentum"], s["weight_decay"],
                                    s["plateau_factor"], s["plateau_patience"])
        gen = torch.Generator().manual_seed(s["seed"])
        start = self.resume(model, opt, sched, gen) + 1
        dev = self.device
        xt, yt = to_device(data.x_train, dev), to_device(data.y_train, dev)
        xs, ys = to_device(data.x_test, dev), to_device(data.y_test, dev)
        xtrig = to_device(data.x_test_trigger, dev)
        for epoch in range(start, s["epochs"] + 1):
            record = self.train_one(epoch, model, opt, sched, gen, xt, yt, xs, ys, xtrig)
            if epoch in s["mi_epochs"]:
                t_mi = time.time()
                self.mi_checkpoint(epoch, model, xt, data)
                record["mi_seconds"] = round(time.time() - t_mi, 4)
            # the epoch's line is written once its MI is done too, just before its checkpoint
            self.w.log_metrics(record)
            print(f"[epoch {epoch}/{s['epochs']}] loss {record['train_loss']:.4f} "
                  f"acc {record['test_acc']:.4f} asr {record['asr']:.4f} ra {record['ra']:.4f} "
                  f"{record['seconds']:.1f}s" + (f" + MI {record['mi_seconds']:.1f}s"
                                                 if "mi_seconds" in record else ""), flush=True)
            self.save_checkpoint(epoch, model, opt, sched, gen)
            pause_point(f"after-epoch-{epoch}", self.dir)
        self.beat(force=True, phase="scoring")
        summary = self.summarise(data, poison_s, quality, t0)
        self.w.write_summary(summary)
        return summary

    @property
    def num_classes(self) -> int:
        from ibtui.data.datasets import DATASETS

        return DATASETS[self.spec["dataset"]].num_classes

    def poison(self) -> tuple[PoisonedData, float, dict]:
        s = self.spec
        t = time.time()
        ds = load_dataset(s["dataset"], s["data_root"] or None, s["download"])
        attack = create_attack(s["attack"], s["attack_options"], target=s["target"], seed=s["seed"],
                               num_classes=ds.num_classes)
        runs_root = self.dir.parent
        ctx = AttackContext(
            dataset=ds, arch=s["arch"], width=s["width"], noise_xt=s["noise_xt"],
            noise_ty=s["noise_ty"], seed=s["seed"], device=str(self.device),
            recipe={"lr": s["lr"], "batch_size": s["batch_size"], "epochs": s["epochs"]},
            cache_dir=runs_root / ".cache",
            progress=lambda phase, frac: self.beat(phase=phase, progress=round(frac, 4)),
        )
        attack.prepare(ctx)
        data = poison_dataset(ds, attack, s["poison_rate"], s["target"], s["observe_classes"], s["seed"])
        art = self.w.artifacts
        np.save(art / "poison_idx.npy", data.poison_idx)
        np.save(art / "backdoor_idx.npy", data.backdoor_idx)
        for name, arr in attack.artifacts().items():
            np.save(art / f"{name}.npy", np.asarray(arr))
        atomic_write_json(art / "subsets.json", {
            "roles": data.roles, "sizes": {k: int(len(v)) for k, v in data.subsets.items()},
            "indices": {k: v.tolist() for k, v in data.subsets.items()},
        })
        quality = self.perceptibility(ds.x_train[data.poison_idx], data.x_train[data.poison_idx])
        return data, time.time() - t, quality

    @staticmethod
    def perceptibility(clean: np.ndarray, poisoned: np.ndarray) -> dict:
        try:
            from ibtui.data.quality import perceptibility
        except ImportError:
            return {}
        if len(clean) == 0:
            return {}
        return perceptibility(clean, poisoned)

    def train_one(self, epoch, model, opt, sched, gen, xt, yt, xs, ys, xtrig) -> dict:
        s = self.spec
        t = time.time()
        self.beat(force=True, phase="training", epoch=epoch, progress=0.0)

        def on_batch(b: int, nb: int) -> None:
            self.beat(progress=round(b / nb, 4))
            if b == (nb + 1) // 2:
                pause_point(f"mid-epoch-{epoch}", self.dir)

        rec = train_epoch(model, opt, xt, yt, s["batch_size"], gen, self.num_classes, on_batch)
        test_loss, test_acc, _ = evaluate(model, xs, ys)
        _, _, pred_trig = evaluate(model, xtrig, ys)
        am = attack_metrics(pred_trig, ys, s["target"])
        lr = opt.param_groups[0]["lr"]
        if os.environ.get("IBTUI_INJECT_NAN") == f"loss-{epoch}":  # fault-injection hook for tests
            rec["nonfinite"], rec["train_loss"] = True, float("nan")
        if rec.pop("nonfinite") or not math.isfinite(test_loss):
            raise RunFailed(f"epoch {epoch}: training loss is not finite (train {rec['train_loss']}, "
                            f"test {test_loss}); try a lower lr")
        sched.step(test_loss)
        record = {"epoch": epoch, "lr": lr, **{k: rec[k] for k in ("train_loss", "train_acc")},
                  "test_loss": test_loss, "test_acc": test_acc, **am,
                  "class_loss": rec["class_loss"], "seconds": round(time.time() - t, 4),
                  "time": time.time()}
        self.beat(force=True, test_acc=test_acc, asr=am["asr"])
        return record

    def mi_checkpoint(self, epoch: int, model, xt: torch.Tensor, data: PoisonedData) -> None:
        from ibtui.mi import estimate_checkpoint

        s = self.spec
        pause_point(f"mi-{epoch}", self.dir)
        self.beat(force=True, phase="mi", progress=0.0)
        # resumed mid-checkpoint: keep the finished estimates, redo none of them
        done = {(r["term"], r["subset"], r["method"]) for r in read_jsonl(self.dir / "mi.jsonl")
                if r.get("epoch") == epoch}
        methods = [m for m in s["mi_method"]
                   if not all((term, sub, m) in done for term in ("xt", "ty") for sub in data.subsets)]
        if not methods:
            return
        records = estimate_checkpoint(
            model, xt, self.mi_subsets(data), methods=methods, options=s["mi_options"],
            seed=s["seed"] * 1000 + epoch, device=self.device,
            progress=lambda frac, detail="": self.beat(progress=round(frac, 4), detail=detail),
        )
        out = []
        for r in records:
            if (r["term"], r["subset"], r["method"]) in done:
                continue
            v = r.get("value")
            if v is None or not math.isfinite(v):
                raise RunFailed(f"epoch {epoch}: MI {r['term']} of subset {r['subset']} "
                                f"({r['method']}) is not finite")
            out.append({"epoch": epoch, "term": r["term"], "subset": r["subset"],
                        "role": data.roles[r["subset"]], **{k: v for k, v in r.items()
                                                             if k not in ("term", "subset")}})
        self.w.log_mi(out)
        self.representation_stats(epoch, model, xt, data)

    def mi_subsets(self, data: PoisonedData) -> dict[str, np.ndarray]:
        """The images MI is estimated on. With mi_equal_n, every subset is subsampled (the same
        images at every checkpoint) to the smallest subset's size: estimators whose ceiling is
        log N would otherwise rank subsets by size, not by what the network does with them."""
        if not self.spec.get("mi_equal_n", True):
            return data.subsets
        n = min(len(v) for v in data.subsets.values() if len(v) >= 2)
        rng = np.random.default_rng([self.spec["seed"], 0xE9])
        return {k: np.sort(rng.choice(v, n, replace=False)) if len(v) > n else v
                for k, v in data.subsets.items()}

    def representation_stats(self, epoch: int, model, xt: torch.Tensor, data: PoisonedData) -> None:
        """T of the target class and a sample of the others, kept for t-SNE and cluster metrics."""
        s = self.spec
        rng = np.random.default_rng([s["seed"], epoch, 7])
        t = data.subsets[str(s["target"])]
        others = np.flatnonzero(data.y_train != s["target"])
        others = rng.choice(others, min(len(others), max(len(t), 500)), replace=False)
        idx = np.sort(np.concatenate([t, others]))
        model.eval()
        feats = []
        with torch.no_grad():
            for i in range(0, len(idx), 1024):
                _, tt, _ = model.forward_mi(xt[torch.from_numpy(idx[i:i + 1024]).to(xt.device)])
                feats.append(tt.float().cpu())
        feats = torch.cat(feats).numpy().astype(np.float16)
        is_bd = np.isin(idx, data.backdoor_idx)
        np.savez_compressed(self.w.artifacts / f"features_e{epoch:04d}.npz", t=feats, index=idx,
                            label=data.y_train[idx], true_label=data.y_true[idx], backdoor=is_bd)
        try:
            from ibtui.analysis.clusters import cluster_metrics
        except ImportError:
            return
        labels = data.y_train[idx]
        m = cluster_metrics(feats.astype(np.float32), labels, is_bd, s["target"])
        from ibtui.runs.store import append_jsonl

        append_jsonl(self.dir / "clusters.jsonl", {"epoch": epoch, **m})

    # --- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, epoch, model, opt, sched, gen) -> None:
        state = {
            "version": CHECKPOINT_VERSION, "epoch": epoch, "model": model.state_dict(),
            "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        import io

        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.dir / "checkpoint.pt", buf.getvalue())

    def resume(self, model, opt, sched, gen) -> int:
        """Load checkpoint.pt if present; return the last finished epoch (0 for a fresh run).
        Lines logged after that epoch (a kill between log and checkpoint) are dropped."""
        path = self.dir / "checkpoint.pt"
        last = 0
        if path.exists():
            try:
                state = torch.load(path, map_location=self.device, weights_only=False)
            except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
                raise RunFailed(f"checkpoint.pt unreadable ({e}); delete it to restart the run") from None
            if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
                raise RunFailed(f"checkpoint.pt is from an incompatible version "
                                f"({state.get('version') if isinstance(state, dict) else '?'}, "
                                f"expected {CHECKPOINT_VERSION}); delete it to restart the run")
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["numpy_rng"])
            random.setstate(state["python_rng"])
            if state.get("cuda_rng") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            last = int(state["epoch"])
        self._truncate_after(last)
        return last

    def _truncate_after(self, epoch: int) -> None:
        # MI lines of the epoch after the checkpoint are kept: that checkpoint's estimates
        # are reused by mi_checkpoint instead of being redone.
        for name, keep in (("metrics.jsonl", epoch), ("mi.jsonl", epoch + 1),
                           ("clusters.jsonl", epoch)):
            p = self.dir / name
            if not p.exists():
                continue
            recs = read_jsonl(p)
            kept = [r for r in recs if int(r.get("epoch", 0)) <= keep]
            raw = p.read_bytes()
            if len(kept) != len(recs) or (raw and not raw.endswith(b"\n")):
                text = "".join(json.dumps(r) + "\n" for r in kept)
                atomic_write_bytes(p, text.encode())

    # --- summary ------------------------------------------------------------------------
    def summarise(self, data: PoisonedData, poison_s: float, quality: dict, t0: float) -> dict:
        s = self.spec
        metrics = read_jsonl(self.dir / "metrics.jsonl")
        mi = read_jsonl(self.dir / "mi.jsonl")
        last = metrics[-1] if metrics else {}
        epochs = None
        phases = None
        try:
            from ibtui.analysis.phases import detect_phases

            phases = detect_phases(mi, data.roles)
            if s["stealth_epochs"] == "phases" and phases:
                epochs = phases.get("representative_epochs")
        except ImportError:
            pass
        by_method = {m: stealth_score(mi, data.roles, epochs=epochs, method=m) for m in s["mi_method"]}
        main = by_method[s["mi_method"][0]]
        sanity = []
        try:
            from ibtui.mi import sanity_checks

            n_t = len(data.subsets[str(s["target"])])
            sanity = sanity_checks(
                mi, subset_sizes={k: int(len(v)) for k, v in data.subsets.items()},
                backdoor_share=len(data.backdoor_idx) / max(1, n_t), num_classes=self.num_classes,
                error_rates=None)
        except Exception as e:  # a failing check never crashes the run
            sanity = [{"check": "sanity", "ok": False, "detail": f"checks could not run: {e}"}]
        train_s = sum(m.get("seconds", 0) for m in metrics)
        mi_s = sum(m.get("mi_seconds", 0) for m in metrics)  # whole checkpoints, forward passes included
        return {
            "run_id": self.dir.name, "name": s["name"], "attack": s["attack"],
            "dataset": s["dataset"], "arch": s["arch"], "width": s["width"],
            "poison_rate": s["poison_rate"], "seed": s["seed"], "target": s["target"],
            "mi_method": s["mi_method"][0],
            "score": main["score"], "d_xt": main["d_xt"], "d_ty": main["d_ty"],
            "stealth": main, "stealth_by_method": by_method,
            "clean_acc": last.get("test_acc"), "asr": last.get("asr"),
            "asr_all": last.get("asr_all"), "ra": last.get("ra"),
            "epochs": len(metrics),
            "n_poison": int(len(data.poison_idx)), "n_backdoor": int(len(data.backdoor_idx)),
            "subset_sizes": {k: int(len(v)) for k, v in data.subsets.items()},
            **{k: quality.get(k) for k in ("psnr", "ssim", "lpips", "lpips_note") if quality},
            "phases": phases, "sanity": sanity,
            "sanity_ok": all(c.get("ok", True) for c in sanity),
            "poison_seconds": round(poison_s, 3), "train_seconds": round(train_s, 3),
            "mi_seconds": round(mi_s, 3), "wall_seconds": round(time.time() - t0, 3),
        }
