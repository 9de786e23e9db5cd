"""Trained (variational) estimators on samples: infonce-paper, infonce-separable, mine.

All three train a critic on the N pairs (a_i, b_i) for a number of epochs (one pass over a
random permutation each), report per epoch the mean of the batch estimates (weighted by batch
size) and return the mean of the last `last_epochs` epochs (the authors' rule).
Early stopping (our reading of "dynamic early stopping, δ = 1e-2"): stop when the epoch value has
not exceeded its best by more than δ for `early_stop_patience` epochs.

- infonce-paper: concat critic, K negatives per positive drawn with replacement from the
  current batch; I ≥ mean[f(a,b⁺) − logsumexp(f(a,b⁺), f(a,b⁻₁..K))] + log(K+1) ≤ log(K+1).
- infonce-separable: separable critic, every other pair of the batch is a negative; trained
  on half the pairs and evaluated on the other half (no memorisation); ceiling log B.
- mine: Donsker–Varadhan bound E_p[f] − log E_{p⊗p}[e^f] with b shuffled inside the batch;
  the gradient of the log term uses an exponential moving average (rate `ema`) of E[e^f]
  (Belghazi et al. 2018). No ceiling (it may overshoot).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ibtui.mi.critics import ConcatCritic, SeparableCritic
from ibtui.mi.result import MIEstimate

Progress = Callable[[float, str], None] | None


class _Stopper:
    def __init__(self, max_epochs: int, delta: float, patience: int):
        self.max_epochs, self.delta, self.patience = max_epochs, delta, patience
        self.best, self.since, self.history = -math.inf, 0, []

    def done(self, value: float) -> bool:
        self.history.append(value)
        if value > self.best + self.delta:
            self.best, self.since = value, 0
        else:
            self.since += 1
        if self.patience and self.since >= self.patience:
            return True
        return len(self.history) >= self.max_epochs


def _step(opt: torch.optim.Optimizer, params, loss: torch.Tensor, clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def _loop(n: int, batch: int, stopper: _Stopper, gen: torch.Generator, device,
          batch_value: Callable[[torch.Tensor], float], progress: Progress, name: str) -> None:
    epoch = 0
    while True:
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            total += batch_value(idx) * len(idx)
        epoch += 1
        if progress:
            progress(min(epoch / stopper.max_epochs, 1.0), f"{name} epoch {epoch}")
        if stopper.done(total / n):
            return


def _settings(**values) -> dict:
    return values


def _finish(method: str, stopper: _Stopper, last: int, ceiling: float | None,
            settings: dict, t0: float) -> MIEstimate:
    hist = stopper.history
    settings = {**settings, "epochs": len(hist), "curve": [round(v, 5) for v in hist]}
    return MIEstimate(value=float(sum(hist[-last:]) / len(hist[-last:])), method=method,
                      ceiling=ceiling, settings=settings, seconds=time.perf_counter() - t0)


def infonce_paper(a: torch.Tensor, b: torch.Tensor, *, batch_size: int = 128,
                  negatives: int = 512, lr: float = 3e-4, max_epochs: int = 350,
                  hidden: int = 128, weight_decay: float = 1e-4, grad_clip: float = 5.0,
                  early_stop_delta: float = 1e-2, early_stop_patience: int = 10,
                  last_epochs: int = 5, seed: int = 0, progress: Progress = None) -> MIEstimate:
    """The authors' InfoNCE (METHOD.md §5) with the factorised first layer."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = ConcatCritic(a.shape[1], b.shape[1], hidden).to(a.device)
    opt = torch.optim.AdamW(critic.parameters(), lr=lr, weight_decay=weight_decay)
    log_k1 = math.log(negatives + 1)

    def batch_value(idx: torch.Tensor) -> float:
        neg = torch.randint(0, len(idx), (len(idx), negatives), generator=gen).to(a.device)
        pos, negs = critic.pairs(a[idx], b[idx], neg)
        lse = torch.logsumexp(torch.cat([pos[:, None], negs], 1), 1)
        est = (pos - lse).mean() + log_k1
        _step(opt, critic.parameters(), -est, grad_clip)
        return est.item()

    stopper = _Stopper(max_epochs, early_stop_delta, early_stop_patience)
    _loop(len(a), batch_size, stopper, gen, a.device, batch_value, progress, "infonce-paper")
    settings = _settings(batch_size=batch_size, negatives=negatives, lr=lr, max_epochs=max_epochs,
                    hidden=hidden, weight_decay=weight_decay, grad_clip=grad_clip,
                    early_stop_delta=early_stop_delta, early_stop_patience=early_stop_patience,
                    last_epochs=last_epochs, seed=seed, n=len(a))
    return _finish("infonce-paper", stopper, last_epochs, log_k1, settings, t0)


def infonce_separable(a: torch.Tensor, b: torch.Tensor, *, batch_size: int = 4096,
                      max_epochs: int = 200, lr: float = 1e-3, hidden: int = 256,
                      embed: int = 64, weight_decay: float = 1e-4, grad_clip: float = 5.0,
                      early_stop_delta: float = 1e-2, early_stop_patience: int = 10,
                      last_epochs: int = 5, holdout: float = 0.5, seed: int = 0,
                      progress: Progress = None) -> MIEstimate:
    """InfoNCE with a separable critic and in-batch negatives, evaluated on held-out pairs.

    A bound computed on the pairs the critic was trained on can exceed the truth (the critic
    memorises them); so the critic trains on a random (1 − holdout) share and each epoch's
    value is the bound on the held-out pairs, in batches of B = min(batch_size, held-out).
    Ceiling log B.
    """
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(a), generator=gen).to(a.device)
    n_eval = min(max(2, round(len(a) * holdout)), len(a) - 2)
    tr, ev = order[n_eval:], order[:n_eval]
    train_batch = min(batch_size, len(tr))
    eval_batch = min(batch_size, n_eval)
    critic = SeparableCritic(a.shape[1], b.shape[1], hidden, embed).to(a.device)
    opt = torch.optim.AdamW(critic.parameters(), lr=lr, weight_decay=weight_decay)

    def bound(idx: torch.Tensor) -> torch.Tensor:
        scores = critic(a[idx], b[idx])
        return (scores.diagonal() - torch.logsumexp(scores, 1)).mean() + math.log(len(idx))

    stopper = _Stopper(max_epochs, early_stop_delta, early_stop_patience)
    epoch = 0
    while True:
        perm = tr[torch.randperm(len(tr), generator=gen).to(a.device)]
        for start in range(0, len(tr) - train_batch + 1, train_batch):  # equal batches
            _step(opt, critic.parameters(), -bound(perm[start : start + train_batch]), grad_clip)
        with torch.no_grad():
            vals = [bound(ev[i : i + eval_batch]).item()
                    for i in range(0, n_eval - eval_batch + 1, eval_batch)]
        epoch += 1
        if progress:
            progress(min(epoch / max_epochs, 1.0), f"infonce-separable epoch {epoch}")
        if stopper.done(sum(vals) / len(vals)):
            break
    settings = _settings(batch_size=batch_size, eval_batch=eval_batch, lr=lr,
                         max_epochs=max_epochs, hidden=hidden, embed=embed,
                         weight_decay=weight_decay, grad_clip=grad_clip, holdout=holdout,
                         early_stop_delta=early_stop_delta,
                         early_stop_patience=early_stop_patience, last_epochs=last_epochs,
                         seed=seed, n=len(a))
    return _finish("infonce-separable", stopper, last_epochs, math.log(eval_batch), settings, t0)


def mine(a: torch.Tensor, b: torch.Tensor, *, batch_size: int = 256, max_epochs: int = 300,
         lr: float = 2e-4, hidden: int = 512, ema: float = 0.01, weight_decay: float = 1e-4,
         grad_clip: float = 5.0, early_stop_delta: float = 1e-2, early_stop_patience: int = 0,
         last_epochs: int = 5, seed: int = 0, progress: Progress = None) -> MIEstimate:
    """MINE (Donsker–Varadhan) with the EMA-corrected gradient."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = ConcatCritic(a.shape[1], b.shape[1], hidden).to(a.device)
    opt = torch.optim.Adam(critic.parameters(), lr=lr, weight_decay=weight_decay)
    state = {"ma": None}

    def batch_value(idx: torch.Tensor) -> float:
        perm = torch.randperm(len(idx), generator=gen).to(a.device)
        joint, marg = critic.shuffled(a[idx], b[idx], perm)
        lme = torch.logsumexp(marg, 0) - math.log(len(idx))  # log mean e^f
        mean_exp = lme.detach().exp()
        state["ma"] = mean_exp if state["ma"] is None else (1 - ema) * state["ma"] + ema * mean_exp
        # gradient of log E[e^f] with E[e^f] replaced by its moving average in the denominator
        surrogate = joint.mean() - (marg - lme.detach()).exp().mean() * (mean_exp / state["ma"])
        _step(opt, critic.parameters(), -surrogate, grad_clip)
        return (joint.mean() - lme).item()

    stopper = _Stopper(max_epochs, early_stop_delta, early_stop_patience)
    _loop(len(a), batch_size, stopper, gen, a.device, batch_value, progress, "mine")
    settings = _settings(batch_size=batch_size, lr=lr, max_epochs=max_epochs, hidden=hidden, ema=ema,
                    weight_decay=weight_decay, grad_clip=grad_clip,
                    early_stop_delta=early_stop_delta, early_stop_patience=early_stop_patience,
                    last_epochs=last_epochs, seed=seed, n=len(a))
    return _finish("mine", stopper, last_epochs, None, settings, t0)
