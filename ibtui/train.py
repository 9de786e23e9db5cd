"""Training on tensors held on the device (no DataLoader): batches are slices of a seeded
permutation. The paper's recipe (docs/method.md §3): SGD momentum 0.9, weight decay 5e-4,
ReduceLROnPlateau(factor 0.5, patience 5) on test loss, cross-entropy, no augmentation."""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ibtui.models import create_model
from ibtui.models.noisy import NoisyNet


def pick_device(pref: str = "auto") -> torch.device:
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        from ibtui.errors import SpecError

        raise SpecError(f"device {pref!r} requested but CUDA is not available; allowed here: auto, cpu")
    dev = torch.device(pref)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        # the scheduler pins each worker to one GPU (CUDA_VISIBLE_DEVICES), which is cuda:0 here
        print(f"[device] {pref} maps to this worker's GPU slot "
              f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}): cuda:0", flush=True)
        return torch.device("cuda:0")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (tensor cores); plain fp32 on CPU."""
    if device.type == "cuda" and os.environ.get("IBTUI_NO_BF16") != "1":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


class SGD:
    """SGD with momentum and weight decay: torch.optim.SGD's update, bit for bit (no dampening,
    no Nesterov), and its state_dict, so a checkpoint written with either resumes with either
    (tests/test_models.py). Written here because making any torch.optim optimiser imports
    torch._dynamo, 1.7-2 s of every worker's start-up on a CPU. The foreach kernels are those
    torch.optim.SGD uses on CUDA; on a CPU they run its per-tensor arithmetic."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)
        self.param_groups = [{"lr": lr, "momentum": momentum, "dampening": 0,
                              "weight_decay": weight_decay, "nesterov": False, "maximize": False,
                              "foreach": None, "differentiable": False, "fused": None,
                              "params": list(range(len(self.params)))}]
        self.momentum_buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        if group["momentum"]:
            if all(self.momentum_buffers[i] is not None for i in live):
                bufs = [self.momentum_buffers[i] for i in live]
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_add_(bufs, grads)
            else:  # the first step: each buffer starts as its gradient
                bufs = []
                for i, g in zip(live, grads, strict=True):
                    buf = self.momentum_buffers[i]
                    if buf is None:
                        buf = self.momentum_buffers[i] = torch.clone(g).detach()
                    else:
                        buf.mul_(group["momentum"]).add_(g)
                    bufs.append(buf)
            grads = bufs
        torch._foreach_add_(params, grads, alpha=-group["lr"])

    def state_dict(self) -> dict:
        return {"state": {i: {"momentum_buffer": b} for i, b in enumerate(self.momentum_buffers)
                          if b is not None},
                "param_groups": [dict(self.param_groups[0])]}

    def load_state_dict(self, state: dict) -> None:
        (group,) = state["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"the saved optimiser has {len(group['params'])} parameters, this "
                             f"model {len(self.params)}")
        self.param_groups[0].update({k: v for k, v in group.items() if k != "params"})
        saved = state["state"]
        self.momentum_buffers = [
            saved[i]["momentum_buffer"].to(p.device, p.dtype)
            if i in saved and saved[i].get("momentum_buffer") is not None else None
            for i, p in enumerate(self.params)]


class ReduceOnPlateau:
    """torch's ReduceLROnPlateau in "min" mode with a relative threshold and no cooldown: the
    learning rate times `factor` once the metric has not improved on its best by the relative
    `threshold` for more than `patience` steps. Same state_dict keys (see SGD for why)."""

    def __init__(self, opt: SGD, factor: float, patience: int, threshold: float = 1e-4,
                 eps: float = 1e-8):
        self.opt, self.factor, self.patience = opt, factor, patience
        self.threshold, self.eps = threshold, eps
        self.best, self.num_bad_epochs, self.last_epoch = math.inf, 0, 0

    def step(self, metric: float) -> None:
        current = float(metric)
        self.last_epoch += 1
        if current < self.best * (1.0 - self.threshold):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            group = self.opt.param_groups[0]
            new = float(group["lr"]) * self.factor
            if float(group["lr"]) - new > self.eps:
                group["lr"] = new
            self.num_bad_epochs = 0

    def state_dict(self) -> dict:
        return {"factor": self.factor, "patience": self.patience, "threshold": self.threshold,
                "threshold_mode": "rel", "mode": "min", "cooldown": 0, "cooldown_counter": 0,
                "eps": self.eps, "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "last_epoch": self.last_epoch, "_last_lr": [self.opt.param_groups[0]["lr"]]}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.num_bad_epochs = float(state["best"]), int(state["num_bad_epochs"])
        self.last_epoch = int(state["last_epoch"])


def make_optimizer(model: NoisyNet, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4,
                   factor: float = 0.5, patience: int = 5) -> tuple[SGD, ReduceOnPlateau]:
    opt = SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    return opt, ReduceOnPlateau(opt, factor=factor, patience=patience)


def prepare_model(model: NoisyNet, x_train: np.ndarray, device: torch.device) -> NoisyNet:
    """Per-channel normalisation from the (poisoned) training images; channels_last on CUDA."""
    xf = x_train.reshape(-1, 3).astype(np.float64) / 255.0
    model.set_normalisation(xf.mean(0), xf.std(0) + 1e-8)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


def train_epoch(model: NoisyNet, opt, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                gen: torch.Generator, num_classes: int,
                on_batch: Callable[[int, int], None] | None = None) -> dict:
    """One epoch over a permutation drawn from `gen` (CPU generator, saved in checkpoints)."""
    model.train()
    n = len(y)
    perm = torch.randperm(n, generator=gen).to(x.device)
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    class_loss = torch.zeros(num_classes, device=x.device, dtype=torch.float64)
    class_n = torch.bincount(y, minlength=num_classes).double()
    nb = (n + batch_size - 1) // batch_size
    for b in range(nb):
        idx = perm[b * batch_size:(b + 1) * batch_size]
        xb, yb = x[idx], y[idx]
        with autocast(x.device):
            logits = model(xb)
            losses = F.cross_entropy(logits.float(), yb, reduction="none")
        loss = losses.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            lossd = losses.detach().double()
            loss_sum += lossd.sum()
            correct += (logits.argmax(1) == yb).sum()
            class_loss.index_add_(0, yb, lossd)
        if on_batch is not None:
            on_batch(b + 1, nb)
    return {
        "train_loss": float(loss_sum) / n,
        "train_acc": float(correct) / n,
        "class_loss": {str(c): float(v) for c, v in enumerate((class_loss / class_n.clamp(min=1)).tolist())},
        "nonfinite": not torch.isfinite(loss_sum).item(),
    }


@torch.no_grad()
def predict(model: NoisyNet, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits (float32) in eval mode; the noise stays active."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        with autocast(x.device):
            out.append(model(x[i:i + batch_size]).float())
    return torch.cat(out) if out else torch.zeros(0, 1, device=x.device)


def evaluate(model: NoisyNet, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 1024) -> tuple[float, float, torch.Tensor]:
    logits = predict(model, x, batch_size)
    loss = float(F.cross_entropy(logits, y)) if len(y) else float("nan")
    pred = logits.argmax(1)
    acc = float((pred == y).float().mean()) if len(y) else float("nan")
    return loss, acc, pred


def attack_metrics(pred_trigger: torch.Tensor, y_test: torch.Tensor, target: int) -> dict:
    """ASR over non-target classes (paper), over all test images (authors' code), and RA."""
    nt = y_test != target
    hit = pred_trigger == target
    return {
        "asr": float(hit[nt].float().mean()) if nt.any() else float("nan"),
        "asr_all": float(hit.float().mean()) if len(hit) else float("nan"),
        "ra": float((pred_trigger == y_test)[nt].float().mean()) if nt.any() else float("nan"),
    }


def train_clean_model(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                      y_test: np.ndarray, *, arch: str, width: int, noise_xt: float,
                      noise_ty: float, epochs: int, lr: float, batch_size: int, seed: int,
                      device: str | torch.device = "cpu",
                      progress: Callable[[float], None] | None = None) -> NoisyNet:
    """A model trained with the same recipe on clean data (LC's adversarial source)."""
    device = torch.device(device)
    torch.manual_seed(seed)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    model = prepare_model(create_model(arch, num_classes, width, noise_xt, noise_ty), x_train, device)
    opt, sched = make_optimizer(model, lr)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = to_device(x_train, device), to_device(y_train.astype(np.int64), device)
    xs, ys = to_device(x_test, device), to_device(y_test.astype(np.int64), device)
    for epoch in range(epochs):
        train_epoch(model, opt, xt, yt, batch_size, gen, num_classes)
        test_loss, _, _ = evaluate(model, xs, ys)
        sched.step(test_loss)
        if progress is not None:
            progress((epoch + 1) / epochs)
    model.eval()
    return model
