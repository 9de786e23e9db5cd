"""The run itself, top to bottom like a training script: poison, build the model, train epoch by
epoch (MI at the checkpoint epochs, a resumable checkpoint after each), summarise."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import torch

import ibtui.faults as faults
from ibtui.data.datasets import DATASETS
from ibtui.experiment.checkpoint import resume_checkpoint, save_checkpoint
from ibtui.experiment.control import RunFailed, Stop
from ibtui.experiment.liveness import StatusBeat
from ibtui.experiment.measure import class_statistics, measure_mi, representation_stats
from ibtui.experiment.prepare import prepare_data
from ibtui.experiment.summary import summarise
from ibtui.mi import validate_mi_options
from ibtui.models import create_model
from ibtui.runs.store import RunWriter
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

HEARTBEAT_S = 1.0  # liveness writes at most this often (readers call a run lost after 30 s)


def build_training(s: dict, num_classes: int, x_train, dev: torch.device) -> tuple:
    """(model, optimiser, LR schedule, batch-order generator) of the run `s`, seeded apart from
    poisoning: training randomness (init, noise, batch order) does not depend on how much
    poisoning consumed."""
    seed_everything(s["seed"] + 1)
    model = create_model(s["arch"], num_classes, s["width"], s["noise_xt"], s["noise_ty"])
    model = prepare_model(model, x_train, dev)
    opt, sched = make_optimizer(model, s["lr"], s["momentum"], s["weight_decay"],
                                s["plateau_factor"], s["plateau_patience"])
    return model, opt, sched, torch.Generator().manual_seed(s["seed"])


def on_device(data, dev: torch.device) -> tuple:
    """x_train, y_train, x_test, y_test and x_test_trigger of the poisoned data, on `dev`."""
    return tuple(to_device(a, dev) for a in (data.x_train, data.y_train, data.x_test,
                                             data.y_test, data.x_test_trigger))


class Experiment:
    def __init__(self, run_dir: Path, should_stop: Callable[[], str | None] = lambda: None,
                 runtime: dict | None = None):
        self.dir = Path(run_dir)
        self.w = RunWriter(self.dir)
        self.spec = read_spec_file(self.dir / "spec.toml")
        opts = self.spec["mi_options"]
        if "xt_conditional" in opts and "xt_scale" not in opts:
            # written resolved before the measurement scale existed: its I(X;T) records are at
            # the network's own noise, and a resumed run must go on measuring the same quantity
            opts["xt_scale"] = 0.0
        for m in self.spec["mi_method"]:  # refill option defaults that TOML could not store
            self.spec["mi_options"] = validate_mi_options(m, self.spec["mi_options"])
        self.should_stop = should_stop
        self.runtime = runtime or {}
        self.num_classes = DATASETS[self.spec["dataset"]].num_classes
        self.status = StatusBeat(self.w, self.dir / "cancel", HEARTBEAT_S)

    def beat(self, force: bool = False, **fields) -> None:
        """Progress, liveness and the stop check; called every training step, so cheap.

        Fields are kept and written to status.json by a writer thread at most every
        HEARTBEAT_S (atomic replace, no fsync: liveness needs no durability), or at once in
        this thread when forced; a phase change is written at once and fsynced (the end of
        the run is written durably by the worker). The cancel file is looked at with each
        write; a stop signal at every call."""
        phase_change = "phase" in fields and fields["phase"] != self.w.status.get("phase")
        if phase_change and "detail" not in fields:
            fields["detail"] = ""  # a detail belongs to its phase: never a stale "(done)"
        if force or phase_change:
            self.status.write_now(fsync=phase_change, **fields)
        else:
            self.status.update(**fields)
        if self.status.cancelled:
            raise Stop("cancelled", "cancelled by user")
        reason = self.should_stop()
        if reason:
            raise Stop("interrupted", reason)

    def run(self) -> dict:
        try:
            return self._run()
        finally:  # no liveness write may follow the worker's final status
            self.status.close()

    def _run(self) -> dict:
        s = self.spec
        t0 = time.time()
        dev = self.device = pick_device(s["device"])
        self.w.set_status(state="running", pid=os.getpid(), host=socket.gethostname(),
                          gpu=os.environ.get("CUDA_VISIBLE_DEVICES"), device=str(dev),
                          started=t0, ended=None, error=None, phase="poisoning", epoch=0,
                          epochs=s["epochs"], progress=0.0, runtime=self.runtime)

        # 1. poison
        seed_everything(s["seed"])
        faults.hold("poisoning", self.dir, forever=True)
        data, poison_s, quality = prepare_data(
            s, self.dir, str(dev), lambda phase, frac: self.beat(phase=phase, progress=round(frac, 4)))
        print(f"[poison] {s['attack']} on {s['dataset']}: {len(data.poison_idx)} triggered, "
              f"{len(data.backdoor_idx)} backdoor samples; subsets "
              f"{ {k: len(v) for k, v in data.subsets.items()} }", flush=True)
        self.beat(force=True, phase="training")

        # 2. model and optimiser; a resumed run restores every RNG state below
        model, opt, sched, gen = build_training(s, self.num_classes, data.x_train, dev)
        start = resume_checkpoint(self.dir, model, opt, sched, gen, dev) + 1
        xt, yt, xs, ys, xtrig = on_device(data, dev)

        # 3. train; MI at the checkpoint epochs; a resumable checkpoint after every epoch
        for epoch in range(start, s["epochs"] + 1):
            record = self.train_one(epoch, model, opt, sched, gen, xt, yt, xs, ys, xtrig)
            if epoch in s["mi_epochs"]:
                t_mi = time.time()
                faults.hold(f"mi-{epoch}", self.dir, forever=True)
                self.beat(force=True, phase="mi", progress=0.0)
                self.w.log_mi(measure_mi(
                    s, self.dir, epoch, model, xt, data, dev,
                    lambda frac, detail="": self.beat(progress=round(frac, 4), detail=detail)))
                representation_stats(s, self.dir, epoch, model, xt, data)
                record["mi_seconds"] = round(time.time() - t_mi, 4)
            if epoch in s["mi_epochs"] or epoch == s["epochs"]:
                # per-class statistics of every class alike, for the backdoor alarm
                t_cls = time.time()
                class_statistics(s, self.dir, epoch, model, xt, data.y_train, self.num_classes,
                                 final=epoch == s["epochs"])
                record["class_seconds"] = round(time.time() - t_cls, 4)
            # the epoch's line is written once its MI is done too, just before its checkpoint
            self.w.log_metrics(record)
            print(f"[epoch {epoch}/{s['epochs']}] loss {record['train_loss']:.4f} "
                  f"acc {record['test_acc']:.4f} asr {record['asr']:.4f} ra {record['ra']:.4f} "
                  f"{record['seconds']:.1f}s" + (f" + MI {record['mi_seconds']:.1f}s"
                                                 if "mi_seconds" in record else ""), flush=True)
            save_checkpoint(self.dir, epoch, model, opt, sched, gen)
            faults.hold(f"after-epoch-{epoch}", self.dir, forever=True)

        # 4. score
        self.beat(force=True, phase="scoring")
        summary = summarise(s, self.dir, data, self.num_classes, poison_s, quality, t0, self.runtime)
        self.w.write_summary(summary)
        return summary

    def step_hook(self, epoch: int) -> Callable[[int, int], None]:
        """What the worker does after every training step (bench/bench_step_overhead.py)."""
        def on_batch(b: int, nb: int) -> None:
            self.beat(progress=round(b / nb, 4))
            if b == (nb + 1) // 2:
                faults.hold(f"mid-epoch-{epoch}", self.dir, forever=True)

        return on_batch

    def train_one(self, epoch, model, opt, sched, gen, xt, yt, xs, ys, xtrig) -> dict:
        s = self.spec
        t = time.time()
        self.beat(force=True, phase="training", epoch=epoch, progress=0.0)
        rec = train_epoch(model, opt, xt, yt, s["batch_size"], gen, self.num_classes,
                          self.step_hook(epoch))
        test_loss, test_acc, _ = evaluate(model, xs, ys)
        _, _, pred_trig = evaluate(model, xtrig, ys)
        am = attack_metrics(pred_trig, ys, s["target"])
        lr = opt.param_groups[0]["lr"]
        if faults.injected(f"loss-{epoch}"):
            rec["nonfinite"], rec["train_loss"] = True, float("nan")
        if rec.pop("nonfinite") or not math.isfinite(test_loss):
            raise RunFailed(f"epoch {epoch}: training loss is not finite (train {rec['train_loss']}, "
                            f"test {test_loss}); try a lower lr")
        sched.step(test_loss)
        self.beat(force=True, test_acc=test_acc, asr=am["asr"])
        return {"epoch": epoch, "lr": lr, "train_loss": rec["train_loss"],
                "train_acc": rec["train_acc"], "test_loss": test_loss, "test_acc": test_acc, **am,
                "class_loss": rec["class_loss"], "seconds": round(time.time() - t, 4),
                "time": time.time()}
