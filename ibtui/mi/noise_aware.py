"""Noise-aware MI for noisy networks: no training, exact to the noise model (METHOD.md §2, §5).

Model. X is uniform over the N inputs of a subset. For input i we hold k noiseless draws
s_i1..s_ik of S (each draw carries fresh noise of the earlier layers), and T = S + N(0, σ²I).
So T | X=i is the mixture (1/k) Σ_j N(s_ij, σ²I) and T is the mixture (1/(Nk)) Σ_ij N(s_ij, σ²I).

`noisy_mi` returns the Monte Carlo estimate of I(X;T) = h(T) − h(T|X) for exactly this
mixture: draw t = s_ij + σz, average log p(t|x_i) − log p(t); the Gaussian constants cancel.
Every term is ≤ log N, so the estimate never exceeds log N. The bracket is the
Kolchinsky–Tracey pair (c = 8 lower, c = 2 upper) combined through the chain rule
I(X;T) = I(C;T) − I(J;T|X) with C = (i, j) the component and J = j its draw:
  lower = KT₈(C;T) − mean_i KT₂(J;T|X=i),  upper = KT₂(C;T) − mean_i KT₈(J;T|X=i),
clipped to [0, log N]; for k = 1 the second terms vanish. The bracket bounds the same
mixture the Monte Carlo value estimates, so MC noise aside the value lies inside it.

Finite k: the k draws stand in for the true T|X; too few draws make h(T|X) too small and bias
I(X;T) upward. Sweep `k` to check.

`noisy_mi_ty` handles I(T;Ŷ) where the logits are L = W(T + N(0, σ_ty²I)) + b, i.e.
L | T ~ N(WT + b, σ_ty² WWᵀ). The probability vector softmax(L) is unchanged by adding a constant
to every logit, and the centred logits L − mean(L) (= centred log-probabilities) are an
invertible function of it, so I(T; probs) = I(T; U) with U = Qᵀ L the coordinates of L on an
orthonormal basis Q of the subspace orthogonal to the all-ones vector (9-d for 10 classes).
With A = QᵀW: h(U|T) = ½ log det(2πe σ_ty² AAᵀ) exactly, and U is the Gaussian mixture
(1/M) Σ_m N(A s_m + Qᵀb, (σ_t² + σ_ty²) AAᵀ) over the M = N·k draws of S (T's own noise
integrated analytically when `sigma_t` > 0; pass T draws with sigma_t = 0 to use T samples).
h(U) is estimated by Monte Carlo over that mixture. After whitening by AAᵀ,
I(T;Ŷ) = I(C;V) + (r/2) log((σ_t² + σ_ty²)/σ_ty²) where r = rank of AAᵀ and V the whitened
mixture with isotropic variance σ_t² + σ_ty²; I(C;V) is estimated like I(X;T) above.
With `target="logits"` Q = I (the 10 logits themselves).
"""

from __future__ import annotations

import math
import time

import torch

from ibtui.mi.result import MIEstimate

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_BLOCK = 4096  # Monte Carlo queries per noise draw


def _sqdist(q: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor) -> torch.Tensor:
    d = (q * q).sum(1, keepdim=True) + c_sq[None, :] - 2.0 * (q @ c.T)
    return d.clamp_min_(0.0)


def _rows(m: int, chunk_mb: int, itemsize: int) -> int:
    """Query rows per chunk so that a few (rows × m) temporaries fit in chunk_mb."""
    return max(1, (chunk_mb << 20) // (4 * m * itemsize))


def mixture_mi(centers: torch.Tensor, sigma: float, *, mc_samples: int = 1,
               bracket: bool = True, seed: int = 0, chunk_mb: int = 256,
               precision: str = "float64") -> dict:
    """I(G;T) for T = mixture over G groups of k equal-weight components N(c_gj, σ²I).

    centers: (G, k, d). Returns dict(value, stderr, lower, upper, n_mc) (lower/upper None
    when bracket is False). Memory is bounded by `chunk_mb` whatever G·k.
    """
    if sigma <= 0:
        raise ValueError("sigma must be > 0 (MI is infinite without noise)")
    g, k, d = centers.shape
    m = g * k
    dt = _DTYPES[precision]
    c = centers.reshape(m, d).to(dt)
    c = c - c.mean(0, keepdim=True)  # smaller norms: less cancellation in the Gram trick
    c_sq = (c * c).sum(1)
    own = (torch.arange(m, device=c.device) // k)[:, None] * k + torch.arange(k, device=c.device)
    rows = _rows(m, chunk_mb, c.element_size())
    gen = torch.Generator(device=c.device).manual_seed(int(seed))
    s2 = sigma * sigma
    log_m, log_k = math.log(m), math.log(k)

    n_mc = m * mc_samples
    total = torch.zeros((), dtype=torch.float64, device=c.device)
    total_sq = torch.zeros((), dtype=torch.float64, device=c.device)
    for block in range(0, n_mc, _BLOCK):  # noise drawn per fixed block: chunking-independent
        z_block = torch.randn(min(_BLOCK, n_mc - block), d, generator=gen, dtype=dt,
                              device=c.device)
        for start in range(0, len(z_block), rows):
            z = z_block[start : start + rows]
            idx = torch.arange(block + start, block + start + len(z), device=c.device) % m
            logits = _sqdist(c[idx] + sigma * z, c, c_sq).mul_(-0.5 / s2)
            marg = torch.logsumexp(logits, 1) - log_m
            cond = torch.logsumexp(logits.gather(1, own[idx]), 1) - log_k
            contrib = (cond - marg).double()
            total += contrib.sum()
            total_sq += (contrib * contrib).sum()
    mean = float(total) / n_mc
    var = max(float(total_sq) / n_mc - mean * mean, 0.0)
    out = {"value": mean, "stderr": math.sqrt(var / n_mc), "lower": None, "upper": None,
           "n_mc": n_mc}
    if not bracket:
        return out

    acc = torch.zeros(4, dtype=torch.float64, device=c.device)  # lse8, lse2 (all, own)
    for start in range(0, m, rows):
        sl = slice(start, min(start + rows, m))
        dist = _sqdist(c[sl], c, c_sq)
        dw = dist.gather(1, own[sl])
        acc[0] += (torch.logsumexp(dist / (-8 * s2), 1) - log_m).double().sum()
        acc[1] += (torch.logsumexp(dist / (-2 * s2), 1) - log_m).double().sum()
        acc[2] += (torch.logsumexp(dw / (-8 * s2), 1) - log_k).double().sum()
        acc[3] += (torch.logsumexp(dw / (-2 * s2), 1) - log_k).double().sum()
    kt8_all, kt2_all, kt8_own, kt2_own = (-acc / m).tolist()
    out["lower"] = min(max(kt8_all - kt2_own, 0.0), math.log(g))
    out["upper"] = min(max(kt2_all - kt8_own, 0.0), math.log(g))
    return out


def _as_draws(s: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(s)
    if s.ndim == 2:
        s = s[:, None, :]
    if s.ndim != 3:
        raise ValueError(f"expected (N, k, d) or (N, d) draws, got shape {tuple(s.shape)}")
    return s


def noisy_mi(s: torch.Tensor, sigma: float, *, mc_samples: int = 1, bracket: bool = True,
             seed: int = 0, chunk_mb: int = 256, precision: str = "float64",
             conditional: str = "draws") -> MIEstimate:
    """I(X;T) in nats for T = S + N(0, σ²I), X uniform over the N inputs (module doc).

    s: (N, k, d) noiseless draws of S (k per input), or (N, d) when S is deterministic.
    conditional="draws" (default): T|X=i is the mixture of the k draws, as in the module doc.
    conditional="gaussian": an approximation for when the k draws of one input lie far apart
    compared with σ (then "draws" returns ≈ log N for any affordable k): T|X=i ≈
    N(mean_i, diag(v) + σ²I), v = the within-input variance per coordinate pooled over the
    subset (N(k−1) degrees of freedom). Exact if S|X is Gaussian with a shared diagonal
    covariance; a model bias otherwise. The means' sampling noise (variance v/k) is removed
    by shrinking them per coordinate towards the grand mean (James–Stein), so the estimate
    depends much less on k. Needs k ≥ 2 to differ from "draws".
    value: Monte Carlo estimate (N·k·mc_samples draws; its standard error is in
    settings["mc_stderr"]). lower/upper: Kolchinsky–Tracey bracket of the same mixture.
    ceiling: log N.
    """
    t0 = time.perf_counter()
    s = _as_draws(s)
    n, k, d = s.shape
    if conditional == "gaussian" and k > 1:
        dt = _DTYPES[precision]
        mean = s.to(dt).mean(1)
        within = (s.to(dt) - mean[:, None]).pow(2).sum((0, 1)) / (n * (k - 1))
        # the means carry sampling noise of variance within/k that would inflate their spread:
        # shrink them per coordinate towards the grand mean (empirical Bayes / James–Stein)
        centred = mean - mean.mean(0)
        spread = centred.pow(2).mean(0).clamp_min(1e-300)
        shrink = (1 - within / k / spread).clamp_min(0.0)
        scale = (within + float(sigma) ** 2).sqrt()
        r = mixture_mi((centred * shrink / scale)[:, None, :], 1.0, mc_samples=mc_samples * k,
                       bracket=bracket, seed=seed, chunk_mb=chunk_mb, precision=precision)
    elif conditional in ("draws", "gaussian"):
        r = mixture_mi(s, float(sigma), mc_samples=mc_samples, bracket=bracket, seed=seed,
                       chunk_mb=chunk_mb, precision=precision)
    else:
        raise ValueError("conditional must be 'draws' or 'gaussian'")
    settings = {"term": "xt", "n": n, "k": k, "dim": d, "sigma": float(sigma),
                "conditional": conditional, "mc_samples": mc_samples,
                "mc_stderr": r["stderr"], "precision": precision, "seed": seed}
    return MIEstimate(value=r["value"], method="noise-aware", lower=r["lower"],
                      upper=r["upper"], ceiling=math.log(n), settings=settings,
                      seconds=time.perf_counter() - t0)


def ones_complement_basis(c: int, dtype=torch.float64) -> torch.Tensor:
    """(c, c−1) orthonormal basis of the subspace orthogonal to the all-ones vector."""
    e = torch.eye(c, dtype=dtype)
    q, _ = torch.linalg.qr(e[:, : c - 1] - e[:, c - 1 : c])
    return q


def noisy_mi_ty(s: torch.Tensor, weight: torch.Tensor, sigma_ty: float, *,
                sigma_t: float = 0.0, bias: torch.Tensor | None = None,
                target: str = "probs", mc_samples: int = 1, bracket: bool = True,
                seed: int = 0, chunk_mb: int = 256, precision: str = "float64") -> MIEstimate:
    """I(T;Ŷ) in nats for logits = W(T + N(0, σ_ty²I)) + b (module doc).

    s: (N, k, d) or (M, d) draws of S (with `sigma_t` = the std of T − S, integrated exactly)
    or of T itself (sigma_t = 0). weight: (C, d) classifier weight. bias does not change the
    MI and is accepted for symmetry. target: "probs" (Ŷ = softmax probabilities, i.e. the
    centred logits on the (C−1)-d ones-complement) or "logits" (all C logits).
    settings carry h_y_given_t and h_y (differential entropies of the C−1 (or C) orthonormal
    coordinates, nats) and the rank used.
    """
    del bias  # a shift of the logits changes no entropy
    t0 = time.perf_counter()
    if sigma_ty <= 0:
        raise ValueError("sigma_ty must be > 0 (I(T;Ŷ) is infinite without noise)")
    if target not in ("probs", "logits"):
        raise ValueError("target must be 'probs' or 'logits'")
    dt = _DTYPES[precision]
    s = _as_draws(s)
    m = s.shape[0] * s.shape[1]
    flat = s.reshape(m, s.shape[2]).to(dt)
    w = torch.as_tensor(weight).detach().to(device=flat.device, dtype=torch.float64)
    a = w if target == "logits" else ones_complement_basis(w.shape[0]).to(w.device).T @ w
    evals, evecs = torch.linalg.eigh(a @ a.T)
    keep = evals > evals.max().clamp_min(1e-300) * 1e-10
    r = int(keep.sum())
    if r == 0:  # W = 0: Ŷ does not depend on T
        return MIEstimate(0.0, "noise-aware", 0.0, 0.0, None,
                          {"term": "ty", "rank": 0}, time.perf_counter() - t0)
    whiten = (evecs[:, keep] / evals[keep].sqrt()).T @ a  # (r, d): V = whiten·T (+ const)
    mu = (flat @ whiten.T.to(dt))[:, None, :]
    tau2 = sigma_t**2 + sigma_ty**2
    res = mixture_mi(mu, math.sqrt(tau2), mc_samples=mc_samples, bracket=bracket, seed=seed,
                     chunk_mb=chunk_mb, precision=precision)
    shift = 0.5 * r * math.log(tau2 / sigma_ty**2)
    half_logdet = 0.5 * float(torch.log(evals[keep]).sum())
    h_cond = 0.5 * r * math.log(2 * math.pi * math.e * sigma_ty**2) + half_logdet
    settings = {"term": "ty", "n_draws": m, "k": s.shape[1], "dim": s.shape[2],
                "sigma_ty": float(sigma_ty), "sigma_t": float(sigma_t), "target": target,
                "rank": r, "h_y_given_t": h_cond, "h_y": h_cond + res["value"] + shift,
                "mc_samples": mc_samples, "mc_stderr": res["stderr"],
                "precision": precision, "seed": seed}
    lower = None if res["lower"] is None else res["lower"] + shift
    upper = None if res["upper"] is None else res["upper"] + shift
    return MIEstimate(value=res["value"] + shift, method="noise-aware", lower=lower,
                      upper=upper, ceiling=math.log(m) + shift, settings=settings,
                      seconds=time.perf_counter() - t0)
