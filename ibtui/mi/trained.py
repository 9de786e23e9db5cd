"""Trained (variational) estimators on samples: infonce-paper, infonce-separable, mine.

- infonce-paper (the authors' estimator, kept faithful): concat critic, K negatives per positive
  drawn with replacement from the current batch; I ≥ mean[f(a,b⁺) − logsumexp(f(a,b⁺),
  f(a,b⁻₁..K))] + log(K+1) ≤ log(K+1). Budget in epochs (one pass over a random permutation),
  per-epoch value = the mean of the batch estimates on the training pairs, result = the mean of
  the last `last_epochs` epochs; early stopping (our reading of "dynamic early stopping,
  δ = 1e-2"): stop when the epoch value has not exceeded its best by more than δ for
  `early_stop_patience` epochs. No input standardisation (the authors feed raw values).
  Each batch's bound and gradients come from `critics.infonce_batch`: the same function as
  scoring every (a_i, b_neg) pair through the MLP (tested against it), computed on the distinct
  pairs only (negatives repeat: drawn with replacement from the batch) with the first layer
  factorised and layers 2–3 fused in cache-sized chunks (2.6x less CPU per step on one
  thread at the I(T;Ŷ) settings; bench/bench_infonce_paper.py --time-steps).
- infonce-separable and mine (ours, built to converge): inputs standardised with the
  training pairs' mean and std; pairs split into training and held-out shares; the budget is a
  number of optimiser steps (`max_steps`), and every `eval_every` steps the bound is evaluated
  on the held-out pairs. Convergence rule: stop when the best mean of `window` consecutive
  held-out evaluations has not improved by more than `tol` nats for `patience` evaluations;
  `converged` records whether the rule fired before `max_steps` (False = "did not converge").
  The value is that best window mean (the curve is in settings["curve"]).
  - infonce-separable: separable critic g(a)·h(b), in-batch negatives for training; held-out
    bound over all held-out pairs at once (B = held-out count, capped at `eval_pairs`), so
    the ceiling log B is far above the values it measures at 2,000–10,000 pairs.
  - mine: Donsker–Varadhan bound E_p[f] − log E_{p⊗p}[e^f]. Product-of-marginals pairs are
    derangements, never a joint pair: (a_i, b_{i+s}) for `marg_shifts` random shifts s ≥ 1 of
    the (random) training batch, and the first `eval_shuffles` shifts of the held-out pairs. (A
    random permutation leaves ~1 joint pair per shuffle among the "marginal" ones; at high MI
    its e^f ~ e^{2I} dominates the log-mean-exp: with the exact critic on the 4-nat bmi task,
    32 random shuffles give 3.77 nats, 32 shifts 4.09, all pairs 4.03.) Gradient of the log
    term: E[e^f ∇f] divided by a moving average of E[e^f] (rate `ema`, Belghazi et al. 2018);
    the default ema = 1 divides by the batch's own mean (a softmax-weighted mean of ∇f:
    bounded). With ema < 1 the correction is unbiased but heavy-tailed at high MI (var e^f
    grows like e^{2I}); Adam normalises away its rare large steps and the critic drifts until
    the bound collapses (4 nats: from a critic at 4.0 to below 0 within 1,000 steps). The
    Gaussian-form path starts at the plug-in Gaussian log-density ratio of the training pairs
    (`gauss_init`; `GaussConcatCritic.init_gaussian`; cross-covariance shrinkage chosen inside
    the training pairs, `_choose_shrink`): without it Adam needs thousands of steps
    to grow the quadratic weights to their size at 4 nats (3.6 after 4,000 steps). No ceiling
    (it may overshoot).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ibtui.mi.critics import (
    FULL_QUADRATIC_DIMS,
    ConcatCritic,
    GaussConcatCritic,
    GaussSeparableCritic,
    gaussian_dv,
    gaussian_ratio,
    infonce_batch,
)
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
    if not bool(torch.isfinite(loss)):  # an overflowing batch (e.g. e^f in MINE): skip it
        return
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
    # converged: the early-stopping rule fired before the epoch budget ran out
    settings = {**settings, "epochs": len(hist), "curve": [round(v, 5) for v in hist],
                "converged": bool(stopper.patience) and stopper.since >= stopper.patience}
    return MIEstimate(value=float(sum(hist[-last:]) / len(hist[-last:])), method=method,
                      ceiling=ceiling, settings=settings, seconds=time.perf_counter() - t0)


def infonce_paper(a: torch.Tensor, b: torch.Tensor, *, batch_size: int = 128,
                  negatives: int = 512, lr: float = 3e-4, max_epochs: int = 350,
                  hidden: int = 128, weight_decay: float = 1e-4, grad_clip: float = 5.0,
                  early_stop_delta: float = 1e-2, early_stop_patience: int = 10,
                  last_epochs: int = 5, seed: int = 0, progress: Progress = None) -> MIEstimate:
    """The authors' InfoNCE (docs/method.md §5) with the factorised first layer."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = ConcatCritic(a.shape[1], b.shape[1], hidden).to(a.device)
    opt = torch.optim.AdamW(critic.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    log_k1 = math.log(negatives + 1)

    def batch_value(idx: torch.Tensor) -> float:
        neg = torch.randint(0, len(idx), (len(idx), negatives), generator=gen).to(a.device)
        est = infonce_batch(critic, a[idx], b[idx], neg)  # = infonce_batch_reference, faster
        _step(opt, critic.parameters(), -est, grad_clip)
        return est.item()

    stopper = _Stopper(max_epochs, early_stop_delta, early_stop_patience)
    _loop(len(a), batch_size, stopper, gen, a.device, batch_value, progress, "infonce-paper")
    settings = _settings(batch_size=batch_size, negatives=negatives, lr=lr, max_epochs=max_epochs,
                    hidden=hidden, weight_decay=weight_decay, grad_clip=grad_clip,
                    early_stop_delta=early_stop_delta, early_stop_patience=early_stop_patience,
                    last_epochs=last_epochs, seed=seed, n=len(a))
    return _finish("infonce-paper", stopper, last_epochs, log_k1, settings, t0)


def _standardise(x: torch.Tensor, rows: torch.Tensor, mode: str | bool = "rank"
                 ) -> torch.Tensor:
    """Per-column input standardisation fitted on the training `rows` only.

    "rank" (default): x ↦ Φ⁻¹(F̂(x)) with F̂ the training rows' empirical CDF (mid-ranks for
    ties): a monotone, hence MI-preserving, map of each coordinate that makes every marginal
    ≈ N(0, 1) (Gaussian-copula preprocessing). "zscore" (or True): (x − mean) / std. "none" (or
    False): unchanged.
    """
    if mode is False or mode == "none":
        return x
    ref = x[rows]
    if mode is True or mode == "zscore":
        return (x - ref.mean(0)) / ref.std(0).clamp_min(1e-8)
    if mode != "rank":
        raise ValueError("standardise must be 'rank', 'zscore' or 'none'")
    srt = ref.T.contiguous().sort(1).values  # (d, n_train)
    q = x.T.contiguous()
    mid = (torch.searchsorted(srt, q, right=False) + torch.searchsorted(srt, q, right=True)) / 2
    u = (mid.double() + 0.5) / (len(ref) + 1)
    return torch.special.ndtri(u).T.to(x.dtype).contiguous()


class _Converge:
    """The step-budget convergence rule of infonce-separable and mine (module doc)."""

    def __init__(self, max_steps: int, window: int, tol: float, patience: int):
        self.max_steps, self.window, self.tol, self.patience = max_steps, window, tol, patience
        self.curve: list[float] = []
        self.best, self.since = -math.inf, 0

    def add(self, value: float) -> bool:
        """Record one held-out evaluation; True when the rule says stop (converged)."""
        if not math.isfinite(value):  # diverged: counts as no improvement, kept out of windows
            value = -math.inf
        self.curve.append(value)
        if len(self.curve) < self.window:
            return False
        w = sum(self.curve[-self.window :]) / self.window
        if w > self.best + self.tol:
            self.best, self.since = w, 0
        else:
            self.best = max(self.best, w)
            self.since += 1
        return self.patience > 0 and self.since >= self.patience

    def value(self) -> float:
        if len(self.curve) < self.window or not math.isfinite(self.best):
            finite = [v for v in self.curve if math.isfinite(v)]
            return max(finite) if finite else math.nan
        return self.best


def _best_of(trained: float, start: float, settings: dict) -> float:
    """The held-out value of the trained critic or of the shrunk plug-in start, the better.

    The start is a critic on its own: training on the training pairs can move the Gaussian path
    back towards the unshrunk fit that sampling noise dominates (20 + 20 dims, 0.5 nats, 3,333
    training pairs: MINE 0.47 at the start, 0.45 after training). Picking the better of two on
    the held-out pairs is the same selection as the rule's best window. Records raw_value (a
    held-out bound below 0 says nothing: the estimators report it as 0) and start_value."""
    value = trained if math.isfinite(trained) and trained >= start else start
    value = value if math.isfinite(value) else trained
    settings["raw_value"] = value
    settings["start_value"] = start if math.isfinite(start) else None
    return value


def _split(n: int, holdout: float, gen: torch.Generator, device) -> tuple:
    order = torch.randperm(n, generator=gen).to(device)
    n_eval = min(max(2, round(n * holdout)), n - 2)
    return order[n_eval:], order[:n_eval]


def _start(a: torch.Tensor, b: torch.Tensor, rows: tuple | None, holdout: float,
           standardise: str, seed: int, batch_size: int, max_steps: int,
           max_epochs: int | None) -> tuple:
    """The seeded start of a step-trained estimator: (generator, a and b standardised on the
    training rows, training rows, held-out rows, training batch, step budget). The rows are
    `rows` (a cross-fitting fold) or a random split; a legacy `max_epochs` converts to steps:
    epochs x training batches per epoch."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tr, ev = rows if rows is not None else _split(len(a), holdout, gen, a.device)
    a, b = _standardise(a, tr, standardise), _standardise(b, tr, standardise)
    train_batch = min(batch_size, len(tr))
    if max_epochs is not None:
        max_steps = max_epochs * max(1, len(tr) // train_batch)
    return gen, a, b, tr, ev, train_batch, max_steps


def _train_steps(step_fn, eval_fn, rule: _Converge, eval_every: int, progress: Progress,
                 name: str, stages: int = 2) -> tuple[int, bool, list[int]]:
    """Run step_fn(stage) until the rule fires in every stage or the step budget is spent.

    Stage 0 trains the critic's Gaussian-form path alone, stage 1 everything (the MLP path
    starts at zero, so stage 1 begins where stage 0 ended); the value is the best held-out
    window over both. eval_fn(stage) evaluates the critic as it stands in that stage.
    Returns (steps, converged, the step at which each stage ended).
    """
    steps, stage, ends = 0, 0, []
    while steps < rule.max_steps:
        step_fn(stage)
        steps += 1
        if steps % eval_every == 0 or steps == rule.max_steps:
            with torch.no_grad():
                stop = rule.add(eval_fn(stage))
            if progress:
                progress(min(steps / rule.max_steps, 1.0), f"{name} step {steps}")
            if stop:
                ends.append(steps)
                stage += 1
                if stage >= stages:
                    return steps, True, ends
                rule.since = 0
    return steps, False, ends


def _crossfit(fn, a: torch.Tensor, b: torch.Tensor, folds: int, args: dict) -> MIEstimate:
    """K-fold cross-fitting: the pairs are cut into `folds` parts; for each, a critic trains on
    the others and is evaluated on it. Value = the mean of the folds' held-out values (every
    pair is evaluated once, so the sampling noise of the held-out bound shrinks about √folds
    against one split); converged = every fold converged; ceiling = the smallest fold's.
    `args`: fn's arguments as its locals() (the pairs, folds, rows and unknown keys dropped)."""
    kw = {k: v for k, v in args.items() if k not in ("a", "b", "folds", "rows", "_ignored")}
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(kw["seed"]) + 7919)
    order = torch.randperm(len(a), generator=gen).to(a.device)
    parts = order.tensor_split(folds)
    progress = kw.pop("progress")
    outs = []
    for f, ev in enumerate(parts):
        tr = torch.cat([p for g, p in enumerate(parts) if g != f])

        def inner(frac: float, detail: str, f=f) -> None:
            if progress:
                progress((f + frac) / folds, f"fold {f + 1}/{folds}: {detail}")

        outs.append(fn(a, b, **kw, folds=1, rows=(tr, ev), progress=inner))
    settings = dict(outs[0].settings)
    settings.update(folds=folds, fold_values=[o.value for o in outs],
                    steps=sum(o.settings["steps"] for o in outs),
                    converged=all(o.settings["converged"] for o in outs),
                    curves=[o.settings["curve"] for o in outs])
    settings.pop("curve", None)
    ceilings = [o.ceiling for o in outs if o.ceiling is not None]
    return MIEstimate(value=sum(o.value for o in outs) / folds, method=outs[0].method,
                      ceiling=min(ceilings) if ceilings else None, settings=settings,
                      seconds=time.perf_counter() - t0)


def infonce_separable(a: torch.Tensor, b: torch.Tensor, *, batch_size: int = 256,
                      max_steps: int = 4000, lr: float = 1e-3, hidden: int = 64,
                      embed: int = 32, weight_decay: float = 1e-4, grad_clip: float = 5.0,
                      holdout: float = 0.3, eval_every: int = 50, eval_pairs: int = 4096,
                      window: int = 4, tol: float = 0.005, patience: int = 10,
                      standardise: str = "rank", gauss_lr: float = 3e-3, folds: int = 3,
                      gauss_init: bool = True,
                      max_epochs: int | None = None, seed: int = 0, progress: Progress = None,
                      rows: tuple | None = None, **_ignored) -> MIEstimate:
    """InfoNCE with a separable critic, trained in steps, evaluated on held-out pairs (module doc).

    max_epochs (legacy option) converts to steps: epochs × training batches per epoch.
    Ceiling: log B with B = the held-out pairs scored together (≤ eval_pairs).
    folds > 1: cross-fitting (`_crossfit`); the held-out share is then 1/folds.
    """
    if rows is None and folds > 1:
        return _crossfit(infonce_separable, a, b, folds, locals())
    t0 = time.perf_counter()
    gen, a, b, tr, ev, train_batch, max_steps = _start(a, b, rows, holdout, standardise, seed,
                                                       batch_size, max_steps, max_epochs)
    ev = ev[:eval_pairs]
    critic = GaussSeparableCritic(a.shape[1], b.shape[1], hidden, embed).to(a.device)
    # stage 0 trains the Gaussian-form path alone: the MLP part is exactly zero then (its b
    # side starts at zero and is not trained), so it is left out of the scores, and the
    # gradient is clipped over the parameters being trained
    stages = [[*critic.ga.parameters(), *critic.gb.parameters()], list(critic.parameters())]
    opts = [torch.optim.AdamW(stages[0], lr=gauss_lr, weight_decay=weight_decay, fused=True),
            torch.optim.AdamW(stages[1], lr=lr, weight_decay=weight_decay, fused=True)]

    def bound(idx: torch.Tensor, stage: int) -> torch.Tensor:
        scores = critic(a[idx], b[idx], mlp=stage > 0)
        return (scores.diagonal() - torch.logsumexp(scores, 1)).mean() + math.log(len(idx))

    def step(stage: int) -> None:
        idx = tr[torch.randint(0, len(tr), (train_batch,), generator=gen).to(a.device)]
        _step(opts[stage], stages[stage], -bound(idx, stage), grad_clip)

    shrink = _plug_in_start(critic, a[tr], b[tr], gen) if gauss_init else None
    started = shrink is not None
    with torch.no_grad():  # the plug-in start is a critic too (`_best_of`)
        start_value = bound(ev, 0).item() if started else -math.inf
    rule = _Converge(max_steps, window, tol, patience)
    steps, converged, ends = _train_steps(step, lambda stage: bound(ev, stage).item(), rule,
                                          eval_every, progress, "infonce-separable")
    settings = _settings(batch_size=batch_size, eval_batch=len(ev), lr=lr, gauss_lr=gauss_lr,
                         max_steps=max_steps, steps=steps, converged=converged, stage_ends=ends,
                         hidden=hidden, embed=embed,
                         weight_decay=weight_decay, grad_clip=grad_clip, holdout=holdout,
                         eval_every=eval_every, window=window, tol=tol, patience=patience,
                         standardise=standardise, gauss_init=bool(started),
                         gauss_shrink=shrink if started else None, seed=seed, n=len(a),
                         curve=[round(v, 5) if math.isfinite(v) else None for v in rule.curve])
    value = _best_of(rule.value(), start_value, settings)
    return MIEstimate(value=max(value, 0.0), method="infonce-separable",
                      ceiling=math.log(len(ev)), settings=settings,
                      seconds=time.perf_counter() - t0)


def _derangements(n: int, count: int, gen: torch.Generator, device) -> torch.Tensor:
    """(count, n) rearrangements of a batch with no fixed point: i ↦ i + s mod n for `count`
    distinct random shifts s in [1, n). The batch is a random draw, so (a_i, b_{i+s}) is a
    sample of the product of marginals; a random permutation instead keeps ~1 joint pair per
    row of marginals, whose large e^f biases the DV bound down at high MI."""
    s = torch.randperm(n - 1, generator=gen)[:count] + 1
    return ((torch.arange(n)[None] + s[:, None]) % n).to(device)


SHRINKS = tuple((mu, lam, alpha) for alpha in (0.0, 0.5, 1.0) for lam in (0.0, 0.3, 0.7, 1.0)
                for mu in (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7))


def _choose_shrink(a: torch.Tensor, b: torch.Tensor, gen: torch.Generator) -> tuple:
    """Covariance shrinkage (μ cross, λ within, α canonical pooling; `critics.gaussian_ratio`)
    of MINE's plug-in start, chosen inside the training pairs (fit on 70%, Donsker–Varadhan value of the
    quadratic critic on the other 30%; the held-out pairs are not used): at low MI in many dims
    the plug-in critic is mostly sampling noise (20 + 20 dims, 0.5 nats, 3,333 pairs: 820
    quadratic coefficients, ~0.06 nats lost on held-out pairs)."""
    order = torch.randperm(len(a), generator=gen).to(a.device)
    k = int(0.7 * len(a))
    fit, val = order[:k], order[k:]
    if k <= 2 * (a.shape[1] + b.shape[1]) or len(val) < 2:
        return (0.0, 0.0, 0.0)
    score = {s: gaussian_dv(gaussian_ratio(a[fit], b[fit], s), a[val], b[val], shifts=32)
             for s in SHRINKS}
    return max(score, key=score.get)


def _plug_in_start(critic, a: torch.Tensor, b: torch.Tensor, gen: torch.Generator
                   ) -> tuple | None:
    """Start the critic's Gaussian-form path at the plug-in log-density ratio of the training
    pairs (a, b), its shrinkage chosen inside them (`_choose_shrink`). Only when a and b have
    ≤ 64 dims each (a covariance is fitted: not images) and the critic takes the start (enough
    pairs); returns the shrinkage, or None when it did not start."""
    if max(a.shape[1], b.shape[1]) > FULL_QUADRATIC_DIMS:
        return None
    shrink = _choose_shrink(a, b, gen)
    return shrink if critic.init_gaussian(a, b, shrink) else None


def mine(a: torch.Tensor, b: torch.Tensor, *, batch_size: int = 512, max_steps: int = 4000,
         lr: float = 5e-4, hidden: int = 64, ema: float = 1.0, weight_decay: float = 1e-4,
         grad_clip: float = 5.0, holdout: float = 0.3, eval_every: int = 50,
         eval_shuffles: int = 32, marg_shifts: int = 8, window: int = 4, tol: float = 0.005, patience: int = 10,
         standardise: str = "rank", gauss_lr: float = 1e-3, folds: int = 3,
         gauss_path: bool = True, gauss_init: bool = True,
         max_epochs: int | None = None, seed: int = 0,
         progress: Progress = None,
         rows: tuple | None = None, **_ignored) -> MIEstimate:
    """MINE (Donsker–Varadhan) with the EMA-corrected gradient, in steps, held-out value;
    folds > 1: cross-fitting (`_crossfit`)."""
    if rows is None and folds > 1:
        return _crossfit(mine, a, b, folds, locals())
    t0 = time.perf_counter()
    gen, a, b, tr, ev, train_batch, max_steps = _start(a, b, rows, holdout, standardise, seed,
                                                       batch_size, max_steps, max_epochs)
    if gauss_path:
        critic = GaussConcatCritic(a.shape[1], b.shape[1], hidden).to(a.device)
        shrink = _plug_in_start(critic, a[tr], b[tr], gen) if gauss_init else None
        started = shrink is not None
        # as in infonce_separable: stage 0 trains the Gaussian-form path alone, the MLP path
        # (zero then) is left out of the scores and the clipped gradient
        stages = [[*critic.ga.parameters(), *critic.gb.parameters()], list(critic.parameters())]

        def scores(x, y, perm, stage):
            return critic.shuffled(x, y, perm, mlp=stage > 0)
    else:  # the plain concat MLP critic, one stage
        started, shrink = False, None
        critic = ConcatCritic(a.shape[1], b.shape[1], hidden).to(a.device)
        stages = [list(critic.parameters())]

        def scores(x, y, perm, stage):
            return critic.shuffled(x, y, perm)
    rates = [gauss_lr, lr] if gauss_path else [lr]
    opts = [torch.optim.Adam(params, lr=rate, weight_decay=weight_decay, fused=True)
            for params, rate in zip(stages, rates, strict=True)]
    state = {"ma": None}
    shifts = min(marg_shifts, train_batch - 1)

    def step(stage: int) -> None:
        idx = tr[torch.randint(0, len(tr), (train_batch,), generator=gen).to(a.device)]
        joint, marg = scores(a[idx], b[idx], _derangements(len(idx), shifts, gen, a.device),
                             stage)
        marg = marg.flatten()
        lme = torch.logsumexp(marg, 0) - math.log(len(marg))  # log mean e^f
        mean_exp = lme.detach().exp()
        state["ma"] = mean_exp if state["ma"] is None else (1 - ema) * state["ma"] + ema * mean_exp
        # gradient of log E[e^f] with E[e^f] replaced by its moving average in the denominator
        surrogate = joint.mean() - (marg - lme.detach()).exp().mean() * (mean_exp / state["ma"])
        _step(opts[stage], stages[stage], -surrogate, grad_clip)

    # held-out product of marginals: (a_i, b_{i+s}) for the first `eval_shuffles` shifts s ≥ 1
    # of the (randomly ordered) held-out pairs: distinct pairs, never a joint pair (fixed)
    n_shift = min(eval_shuffles, len(ev) - 1)
    eval_perms = (torch.arange(len(ev))[None] + torch.arange(1, n_shift + 1)[:, None]) % len(ev)
    eval_perms = eval_perms.to(a.device)

    def held_out(stage: int) -> float:
        joint, marg = scores(a[ev], b[ev], eval_perms, stage)
        marg = marg.flatten()
        return float(joint.mean() - (torch.logsumexp(marg, 0) - math.log(len(marg))))

    with torch.no_grad():  # the plug-in start is a critic too (`_best_of`)
        start_value = held_out(0) if started else -math.inf
    rule = _Converge(max_steps, window, tol, patience)
    steps, converged, ends = _train_steps(step, held_out, rule, eval_every, progress, "mine",
                                          stages=len(opts))
    settings = _settings(batch_size=batch_size, lr=lr, gauss_lr=gauss_lr, max_steps=max_steps,
                         steps=steps, converged=converged, stage_ends=ends, hidden=hidden, ema=ema,
                         weight_decay=weight_decay, grad_clip=grad_clip, holdout=holdout,
                         eval_every=eval_every, eval_shuffles=eval_shuffles, marg_shifts=marg_shifts, window=window,
                         tol=tol, patience=patience, standardise=standardise,
                         gauss_path=gauss_path, gauss_init=bool(started),
                         gauss_shrink=shrink if started else None, seed=seed, n=len(a),
                         curve=[round(v, 5) for v in rule.curve])
    value = _best_of(rule.value(), start_value, settings)
    return MIEstimate(value=max(value, 0.0) if math.isfinite(value) else value, method="mine",
                      ceiling=None, settings=settings,
                      seconds=time.perf_counter() - t0)
