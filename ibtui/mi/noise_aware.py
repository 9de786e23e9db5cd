"""Noise-aware MI for noisy networks: no training, exact to the noise model (docs/method.md §2, §5).

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
    per_comp = torch.zeros(m, dtype=torch.float64, device=c.device)  # summed per component
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
            per_comp.index_add_(0, idx, contrib)
    mean = float(total) / n_mc
    var = max(float(total_sq) / n_mc - mean * mean, 0.0)
    out = {"value": mean, "stderr": math.sqrt(var / n_mc), "lower": None, "upper": None,
           "n_mc": n_mc, "per_component": per_comp / mc_samples}
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


def image_stderr(per_component: torch.Tensor, draws_per_image: int) -> float | None:
    """Standard error of an MI estimate over which images form the subset (first order).

    With X uniform over the N images, the influence of image i on I(X;T) = h(T) − h(T|X) is
    c_i − I, where c_i = KL(p(t|i) ‖ p(t)) is the image's mean contribution to the Monte Carlo
    estimate (the derivative of the mixture's entropy in the weight of component i is its cross
    entropy with the mixture). So the delta-method (infinitesimal jackknife) standard error of
    resampling images is sd(c_i)/√N; each c_i carries its own Monte Carlo noise, so this covers
    that too. `per_component`: mean contribution per mixture component, `draws_per_image`
    consecutive components per image."""
    c = per_component.reshape(-1, draws_per_image).mean(1)
    if len(c) < 2:
        return None
    return float(c.std() / math.sqrt(len(c)))


_LAMBDAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)  # shrinkage full -> diagonal
CONDITIONALS = ("full", "diagonal", "gaussian", "draws")


def _within(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input means (N, d) and the pooled within-input covariance (d, d) of (N, k, d)."""
    n, k, _ = s.shape
    mean = s.mean(1)
    r = (s - mean[:, None]).reshape(n * k, -1)
    return mean, r.T @ r / (n * (k - 1))


def _shrunk(cov: torch.Tensor, lam: float) -> torch.Tensor:
    return (1 - lam) * cov + lam * torch.diag(torch.diagonal(cov))


def _gauss_loglik(r: torch.Tensor, cov: torch.Tensor) -> float:
    """Mean log N(r; 0, cov) over the rows of r, up to the 2π constant."""
    chol = torch.linalg.cholesky(cov)
    sol = torch.linalg.solve_triangular(chol, r.T, upper=False)
    return float(-0.5 * sol.pow(2).sum(0).mean() - torch.log(torch.diagonal(chol)).sum())


def choose_shrinkage(s: torch.Tensor, sigma: float, lambdas=_LAMBDAS) -> tuple[float, dict]:
    """Shrinkage λ of the within-input covariance Σ_λ = (1−λ)Σ̂ + λ diag(Σ̂) that best predicts
    held-out draws: 2-fold over inputs (covariance fitted on one half of the inputs, scored on the
    other half's within-input residuals of T), summed over both directions. λ = 0: full, 1: diag.

    A residual r = t_ij − mean_i of T = S + σZ has covariance (1 − 1/k)(Σ + σ²I); its expected
    log-likelihood over Z is log N(s_ij − mean_i; 0, C) − ½ σ²(1 − 1/k) tr C⁻¹.
    """
    n, k, d = s.shape
    if n < 4 or k < 2:
        return 1.0, {}
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    folds = (perm[: n // 2], perm[n // 2 :])
    score = {lam: 0.0 for lam in lambdas}
    eye = torch.eye(d, dtype=s.dtype, device=s.device)
    for fit, ev in (folds, folds[::-1]):
        _, cov = _within(s[fit])
        mean_e = s[ev].mean(1, keepdim=True)
        r = (s[ev] - mean_e).reshape(-1, d)
        f = 1 - 1 / k
        for lam in lambdas:
            c = f * (_shrunk(cov, lam) + sigma**2 * eye)
            trace = float(torch.cholesky_inverse(torch.linalg.cholesky(c)).diagonal().sum())
            score[lam] += _gauss_loglik(r, c) - 0.5 * sigma**2 * f * trace
    best = max(lambdas, key=lambda lam: score[lam])
    return best, {str(lam): round(v / 2, 4) for lam, v in score.items()}


def _psd_root(a: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Symmetric square root (or pseudo-inverse square root) of the PSD part of a."""
    e, u = torch.linalg.eigh((a + a.T) / 2)
    e = e.clamp_min(0.0)
    if inverse:
        e = torch.where(e > e.max().clamp_min(1e-300) * 1e-12, e.rsqrt(), torch.zeros_like(e))
    else:
        e = e.sqrt()
    return (u * e) @ u.T


def sym_powers(m: torch.Tensor, *powers: float) -> tuple[torch.Tensor, ...]:
    """m^p for each p in powers, m symmetric positive semi-definite, from one eigendecomposition;
    eigenvalues floored at 1e-12 × the largest, so negative powers stay finite."""
    e, u = torch.linalg.eigh((m + m.T) / 2)
    e = e.clamp_min(1e-12 * float(e.max().clamp_min(1e-300)))
    return tuple((u * e.pow(p)) @ u.T for p in powers)


def _signal_cov(between: torch.Tensor, noise: torch.Tensor, dof_between: int,
                dof_noise: int) -> torch.Tensor:
    """Estimate of the true means' covariance Λ from the means' covariance B = Λ + V + sampling
    fluctuations (dof_between degrees of freedom) and the estimated noise in them V
    (dof_noise degrees of freedom).

    B − V is unbiased, but its eigenvalues spread: pure-noise directions come out positive as
    often as negative, and the signal's eigenvalues are pushed up by the noise mixed into them;
    keeping its PSD part biased I(X;T) up by 8–15% at 0.9–1.4 nats on 32-d noisy linear nets
    (k = 4; bench/RESULTS.md). So B is read in the coordinates where V = I: a direction is
    kept only when its eigenvalue ℓ there exceeds the Marchenko–Pastur edge (1 + √(d/dof_B))²,
    the largest eigenvalue pure noise reaches, and contributes ℓ − 1 (noise removed); the rest
    is taken for noise and dropped. Directions in which the means carry no noise (V ≈ 0) have
    ℓ ≫ 1 and are kept whole. The edge treats V as known; the wider Wachter edge that allows for
    V's own estimation error dropped too much signal (−6% to −21% at 0.9–2 nats, k = 4), the
    MP edge leaves the bias within ±3% over noise draws (bench/bench_mi_noisy_tasks.py). Falls
    back to (B − V)₊ when V has fewer degrees of freedom than dimensions.
    """
    d = len(between)
    if dof_noise <= d:
        return _psd_root(between - noise).matrix_power(2)
    if float(noise.diagonal().max()) <= 0:  # V = 0 (V is PSD): the draws of every input
        return between                     # coincide, the means are exact
    root, root_inv = sym_powers(noise, 0.5, -0.5)
    ell, q = torch.linalg.eigh(root_inv @ between @ root_inv)
    edge = (1 + math.sqrt(d / max(dof_between, 1))) ** 2
    lam = torch.where(ell > edge, ell - 1, torch.zeros_like(ell))
    return root @ (q * lam) @ q.T @ root


def _whitened_means(s: torch.Tensor, cov: torch.Tensor, sigma: float) -> torch.Tensor:
    """Means of the draws s (N, k, d) in the coordinates where T|X=i ~ N(mean_i, cov + σ²I)
    becomes N(·, I), with their spread matched to that of the true means.

    A mean of k draws carries noise of covariance V = W/k, W the within-input covariance of the
    whitened draws (T's own σ is not in the draws), so the means' covariance B overstates the
    true means' covariance by V: in every direction, including those the true means do not
    use at all. The means are mapped by Λ̂^½ B^−½ with Λ̂ the estimate of the true means'
    covariance (`_signal_cov`), so that their covariance is Λ̂ while keeping their shape
    (variance matching as a matrix). The posterior mean Λ̂B⁻¹ would shrink the spread to
    Λ̂B⁻¹Λ̂ and bias I(X;T) down; the raw means bias it up.
    """
    n, k, d = s.shape
    evals, evecs = torch.linalg.eigh(cov)
    scale = (evals.clamp_min(0.0) + sigma**2).sqrt()
    z = ((s - s.mean((0, 1))) @ evecs) / scale  # whitened draws, centred
    y = z.mean(1)  # centred too: every input has k draws
    if k < 2 or n < 2:
        return y
    between = y.T @ y / (n - 1)
    r = (z - z.mean(1, keepdim=True)).reshape(n * k, d)
    noise = r.T @ r / (n * (k - 1)) / k
    signal = _signal_cov(between, noise, n - 1, n * (k - 1))
    return y @ (_psd_root(signal) @ _psd_root(between, inverse=True)).T


def gaussian_conditional(s: torch.Tensor, sigma: float, *, lam: float | None = None
                         ) -> tuple[torch.Tensor, dict]:
    """Whitened (shrunk) means of the model T|X=i ~ N(mean_i, Σ_λ + σ²I) and what was chosen.

    lam None: chosen on held-out draws (`choose_shrinkage`); 1.0 = diagonal.
    """
    info: dict = {}
    if lam is None:
        lam, info["shrinkage_scores"] = choose_shrinkage(s, sigma)
    _, cov = _within(s)
    cov = _shrunk(cov, lam)
    info["shrinkage"] = lam
    info["within_trace"] = float(torch.diagonal(cov).sum())
    info["within_top_eig"] = float(torch.linalg.eigvalsh(cov)[-1])
    return _whitened_means(s, cov, sigma), info


def _class_loglik(query: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """log q(i | query) for the equal-weight isotropic unit-variance model over centres."""
    logits = _sqdist(query, centres, (centres * centres).sum(1)).mul_(-0.5)
    return logits - torch.logsumexp(logits, 1, keepdim=True)


def ba_lower_bound(s: torch.Tensor, sigma: float, *, mc_samples: int = 2, seed: int = 0,
                   z: float = 2.0) -> dict:
    """Held-out Barber–Agakov lower bound on I(X;T), X uniform over the N inputs, T = S + σZ.

    I(X;T) ≥ log N + E log q(X|T) for *any* q. For every draw j, q_j is the Gaussian classifier
    q_j(i|t) ∝ N(t; m_i, Σ + σ²I) fitted on the *other* draws only (means m_i, shrunk towards
    their grand mean by James–Stein in the whitened eigenbasis, and the within-input covariance
    Σ, its shrinkage chosen on those draws), and is scored on
    t = s_ij + σz for fresh z. Each q_j is independent of the draws it is scored on, so each
    term estimates a valid bound without bias; `lower` subtracts z standard errors of the Monte
    Carlo mean (≈ 97.7% one-sided for z = 2) and is clipped to [0, log N].
    k = 1: q uses the exact T|X = N(s_i, σ²I) (then the bound is tight up to Monte Carlo).
    k = 2: one draw per fit, no within covariance: Σ is taken diagonal from the spread of that
    draw across inputs times 0.25 (valid, looser).
    """
    s = s.to(torch.float64)
    n, k, d = s.shape
    gen = torch.Generator().manual_seed(int(seed) + 17)
    vals = []
    folds = range(k) if k > 1 else [None]
    for j in folds:
        if j is None:
            fit, held, cov = s, s[:, 0], torch.zeros(d, d, dtype=s.dtype, device=s.device)
        else:
            others = [i for i in range(k) if i != j]
            fit, held = s[:, others], s[:, j]
            if len(others) >= 2:
                lam, _ = choose_shrinkage(fit, sigma)
                cov = _shrunk(_within(fit)[1], lam)
            else:
                cov = 0.25 * torch.diag(fit[:, 0].var(0))
        kk = fit.shape[1]
        mean = fit.mean(1)
        evals, evecs = torch.linalg.eigh(cov)
        evals = evals.clamp_min(0.0)
        scale = (evals + sigma**2).sqrt()
        centre = mean.mean(0)
        centres = ((mean - centre) @ evecs) / scale
        pred = torch.ones_like(scale)
        if kk > 1 and n > 1:  # posterior-mean (James–Stein) centres: a better classifier
            noise = evals / scale.pow(2) / kk
            spread = (centres.pow(2).sum(0) / (n - 1)).clamp_min(1e-300)
            shrink = (1 - noise / spread).clamp_min(0.0)
            centres = centres * shrink
            pred = 1 + shrink * noise  # predictive variance: T's own + the centre's posterior
        centres = centres / pred.sqrt()
        for _ in range(mc_samples):
            # drawn on the CPU generator whatever the device: the same bound everywhere
            t = held + sigma * torch.randn(held.shape, generator=gen, dtype=s.dtype).to(s.device)
            ll = _class_loglik(((t - centre) @ evecs) / scale / pred.sqrt(), centres)
            vals.append(ll[torch.arange(n), torch.arange(n)])
    per_input = torch.stack(vals).mean(0)  # inputs are the independent unit: conservative
    mean_ll = float(per_input.mean())
    se = float(per_input.std() / math.sqrt(n)) if n > 1 else 0.0
    est = math.log(n) + mean_ll
    return {"estimate": est, "stderr": se,
            "lower": min(max(est - z * se, 0.0), math.log(n)), "n_eval": n * len(vals)}


def _as_draws(s: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(s)
    if s.ndim == 2:
        s = s[:, None, :]
    if s.ndim != 3:
        raise ValueError(f"expected (N, k, d) or (N, d) draws, got shape {tuple(s.shape)}")
    return s


def _white(s: torch.Tensor, sigma: float, conditional: str, dt: torch.dtype,
           lam: float | None = None) -> tuple[torch.Tensor, dict]:
    """Whitened means of the Gaussian conditionals ("full", "diagonal" = "gaussian") of (N, k, d)
    draws, k ≥ 2, and what was chosen (`noisy_mi`)."""
    n, k, _ = s.shape
    if conditional in ("diagonal", "gaussian"):  # the former default, kept bit-for-bit
        mean = s.to(dt).mean(1)
        within = (s.to(dt) - mean[:, None]).pow(2).sum((0, 1)) / (n * (k - 1))
        centred = mean - mean.mean(0)
        spread = centred.pow(2).mean(0).clamp_min(1e-300)
        shrink = (1 - within / k / spread).clamp_min(0.0)
        return centred * shrink / (within + sigma**2).sqrt(), {}
    white, info = gaussian_conditional(s.to(torch.float64), sigma, lam=lam)
    return white.to(dt), info


def draws_jackknife(s: torch.Tensor, sigma: float, conditional: str, *, mc_samples: int,
                    seed: int, chunk_mb: int, precision: str, lam: float | None = None
                    ) -> dict | None:
    """Standard error of the Gaussian-conditional I(X;T) over the k noise draws (the part the
    delta method over images, `image_stderr`, leaves out: which noisy forward draws the model
    was fitted on).

    Delete-one-draw jackknife: the estimate is refitted k times on the other k − 1 draws of
    every input, and var = (k−1)/k Σ_j (θ_(j) − θ̄)². The refits use the same Monte Carlo noise
    as each other (same seed, same number of queries: common random numbers, so the Monte Carlo
    error, already in image_stderr, does not enter twice) and the shrinkage λ chosen on all k
    draws. Needs k ≥ 3 (a refit on one draw has no within-input covariance); None otherwise.
    Returns {"stderr", "values", "mean"}; (k−1)(mean − θ̂_k) is the jackknife's estimate of the
    finite-k bias (recorded by `noisy_mi` as settings["draws_bias"], never subtracted)."""
    s = _as_draws(s)
    n, k, _ = s.shape
    if k < 3 or n < 2 or conditional == "draws":
        return None
    dt = _DTYPES[precision]
    vals = []
    for j in range(k):
        sub = s[:, [i for i in range(k) if i != j]]
        white, _ = _white(sub, sigma, conditional, dt, lam=lam)
        vals.append(mixture_mi(white[:, None, :], 1.0, mc_samples=mc_samples * k, bracket=False,
                               seed=seed, chunk_mb=chunk_mb, precision=precision)["value"])
    mean = sum(vals) / k
    var = (k - 1) / k * sum((v - mean) ** 2 for v in vals)
    return {"stderr": math.sqrt(var), "values": vals, "mean": mean}


# Regimes where the Gaussian-conditional I(X;T) is measured to miss 5% (bias over noise draws,
# bench/bench_mi_noisy_tasks.py): the record carries the flag and the bound, and its error
# includes the bound (so a 95% interval is at least ± bound × value wide).
K2_BIAS = 0.6  # k = 2: +14% to +60% at low MI (one draw per half cannot part noise from signal)
FEW_INPUTS_BIAS = 0.25  # noisy directions d_eff > FEW_INPUTS_RATIO · N: +7% to +24% at k = 4
FEW_INPUTS_RATIO = 0.3
MANY_NOISY = ((0.75, 1.5), (0.45, 0.5))  # (d_eff / N above, bound): at k = 4 every direction
# noisy gave +28% at 0.54 N and +82% to +128% at 1.08 N
NOISY_SHARE = 0.05  # a whitened direction counts as noisy when the draws' noise is ≥ 5% of it


def accuracy_flag(s: torch.Tensor, sigma: float, cov: torch.Tensor | None = None
                  ) -> tuple[str, float, int] | None:
    """(why, relative bias bound, d_eff) when the draws s (N, k, d) fall in a regime where the
    Gaussian-conditional I(X;T) is known to miss 5%, else None.

    - k = 2: no jackknife over draws, and the bias reached +60% at low MI.
    - d_eff > 0.3 N, d_eff = the number of directions of T in which the draws' own noise is
      ≥ 5% of T|X's variance (eigenvalues λ of the within-input covariance with
      λ/(λ + σ²) ≥ 0.05): too few inputs to tell the means' signal from their noise there
      (32-d T, N = 40, k = 4: +7% to +24% at 0.7–1.7 nats); beyond 0.45 N worse (every
      direction noisy, N = 118, k = 4: +28% with 64, bound 50%; +82% to +128% with 128, bound
      150% beyond 0.75 N): the pure-noise
      eigenvalues of the means' covariance that clear the Marchenko–Pastur edge each keep
      ℓ − 1 ≈ c + 2√c of spread, large once c = d/(N − 1) nears 1."""
    s = _as_draws(s)
    n, k, _ = s.shape
    if k < 2:
        return None
    if cov is None:
        cov = _within(s.to(torch.float64))[1]
    lam = torch.linalg.eigvalsh(cov).clamp_min(0.0)
    d_eff = int((lam / (lam + sigma**2) >= NOISY_SHARE).sum())
    if k == 2:
        return (f"k=2: the spread over noise draws cannot be estimated and the bias reaches "
                f"{K2_BIAS:.0%} at low MI; use k >= 4", K2_BIAS, d_eff)
    for ratio, bound in (*MANY_NOISY, (FEW_INPUTS_RATIO, FEW_INPUTS_BIAS)):
        if d_eff > ratio * n:
            return (f"{d_eff} noisy directions for N={n} inputs (> {ratio:g} N): biased by up "
                    f"to {bound:.0%} at low MI; use more inputs or draws", bound, d_eff)
    return None


def _draws_error(settings: dict, s: torch.Tensor, sigma: float, conditional: str, value: float,
                 **kw) -> None:
    """Fold the spread over noise draws, and the bias bound of a flagged regime, into
    settings["image_stderr"] (`noisy_mi`)."""
    images = settings["image_stderr"]
    settings["images_stderr"] = images
    jack = draws_jackknife(s, sigma, conditional, lam=settings.get("shrinkage"), **kw)
    k = s.shape[1]
    settings["draws_stderr"] = None if jack is None else jack["stderr"]
    if jack is not None:
        settings["draws_bias"] = (k - 1) * (jack["mean"] - value)
    flag = accuracy_flag(s, sigma)
    extra = 0.0
    if flag is not None:
        settings["accuracy_flag"], settings["bias_bound"], settings["noisy_directions"] = flag
        extra = flag[1] * abs(value) / 1.96
    if images is not None:
        draws = 0.0 if jack is None else jack["stderr"]
        settings["t_factor"] = t_factor(images, draws, s.shape[0], k)
        settings["image_stderr"] = math.sqrt((images**2 + draws**2) * settings["t_factor"]**2
                                             + extra**2)


def t_factor(images: float, draws: float, n: int, k: int) -> float:
    """t(ν, 0.975) / 1.96 for the error √(images² + draws²), ν by Welch–Satterthwaite: the
    images' error has N − 1 degrees of freedom, the jackknife over k draws only k − 1 (3 at the
    default k = 4, where ± 1.96 of it alone covers ~85%). Scaling the error by this factor makes
    value ± 1.96 · image_stderr the Student-t interval every reader of the record already uses."""
    from scipy.special import stdtrit

    var = images**2 + draws**2
    denom = images**4 / max(n - 1, 1) + (draws**4 / (k - 1) if k > 1 else 0.0)
    if var <= 0 or denom <= 0:
        return 1.0
    return float(stdtrit(var**2 / denom, 0.975)) / 1.959963984540054


def noisy_mi(s: torch.Tensor, sigma: float, *, mc_samples: int = 1, bracket: bool = True,
             seed: int = 0, chunk_mb: int = 256, precision: str = "float64",
             conditional: str = "full", lower_bound: bool = True,
             draws_stderr: bool | None = None) -> MIEstimate:
    """I(X;T) in nats for T = S + N(0, σ²I), X uniform over the N inputs (module doc).

    s: (N, k, d) noiseless draws of S (k per input), or (N, d) when S is deterministic.
    conditional (how T|X=i is modelled from its k draws; all the same when k = 1, where
    T|X=i = N(s_i, σ²I) exactly):
    - "full" (default): T|X=i ≈ N(mean_i, Σ_λ + σ²I) with Σ_λ = (1−λ)Σ̂ + λ diag(Σ̂) the pooled
      within-input covariance, its shrinkage λ chosen on held-out draws (`choose_shrinkage`),
      so upstream noise that reaches S correlated is modelled (λ = 0: full covariance). Exact
      when S|X is Gaussian with a shared covariance (noisy linear networks).
    - "diagonal" (alias "gaussian", the former default, unchanged): T|X=i ≈ N(mean_i,
      diag(v) + σ²I), v the pooled within-input variance per coordinate, means shrunk by
      James–Stein per coordinate. Misses correlated upstream noise.
    - "draws": T|X=i = the mixture of the k draws (exact as k → ∞; biased upward at finite k,
      often to ≈ log N when the draws of one input lie far apart compared with σ).
    "full" maps the whitened means so that their covariance is the estimate of the true means'
    covariance kept above the Marchenko–Pastur edge (`_whitened_means`, `_signal_cov`). The value is the Monte Carlo MI
    of the fitted mixture (N·k·mc_samples draws, standard error in settings["mc_stderr"]),
    whitened to unit variance.
    lower: a certified held-out Barber–Agakov lower bound on the true I(X;T) (`ba_lower_bound`;
    for k = 1, the Kolchinsky–Tracey lower bound, exact for that model). upper: log N when
    k > 1 (the KT pair bounds only the fitted model: settings["model_bracket"]), else the KT
    upper bound. ceiling: log N. lower_bound=False skips the bound (lower then None for k > 1).
    Standard error: settings["image_stderr"] is the error of the value as an interval reads it,
    as an error of the class's I(X;T) at N images, f·√(images² + draws²): over which images
    form the subset (delta method, Monte Carlo error included; alone in
    settings["images_stderr"]) and over the k noise draws the conditional model is fitted on
    (delete-one-draw jackknife, `draws_jackknife`; settings["draws_stderr"]), scaled by
    f = settings["t_factor"] (`t_factor`: the jackknife has only k − 1 degrees of freedom).
    draws_stderr (default: as lower_bound, i.e. whenever bounds are computed) turns the
    jackknife on (k refits of the model). In a regime where the value is known to miss 5%
    (`accuracy_flag`: k = 2, or too few inputs for the noisy directions) settings carry
    "accuracy_flag" (why) and "bias_bound" (relative), and image_stderr also includes
    bias_bound × value / 1.96, so the 95% interval never claims more than the value has.
    """
    t0 = time.perf_counter()
    s = _as_draws(s)
    n, k, d = s.shape
    if conditional not in CONDITIONALS:
        raise ValueError(f"conditional must be one of {', '.join(CONDITIONALS)}")
    dt = _DTYPES[precision]
    info: dict = {}
    if conditional != "draws" and k > 1:
        white, info = _white(s, float(sigma), conditional, dt)
        r = mixture_mi(white[:, None, :], 1.0, mc_samples=mc_samples * k, bracket=bracket,
                       seed=seed, chunk_mb=chunk_mb, precision=precision)
    else:
        r = mixture_mi(s, float(sigma), mc_samples=mc_samples, bracket=bracket, seed=seed,
                       chunk_mb=chunk_mb, precision=precision)
    per_image = 1 if (conditional != "draws" and k > 1) else k  # components per image
    settings = {"term": "xt", "n": n, "k": k, "dim": d, "sigma": float(sigma),
                "conditional": conditional, "mc_samples": mc_samples,
                "mc_stderr": r["stderr"], "image_stderr": image_stderr(r["per_component"], per_image),
                "precision": precision, "seed": seed, **info}
    if draws_stderr is None:
        draws_stderr = lower_bound
    if conditional != "draws" and k > 1 and draws_stderr:
        _draws_error(settings, s, float(sigma), conditional, r["value"], mc_samples=mc_samples,
                     seed=seed, chunk_mb=chunk_mb, precision=precision)
    log_n = math.log(n)
    lower, upper = r["lower"], r["upper"]
    if k > 1:
        settings["model_bracket"] = [r["lower"], r["upper"]]
        upper = log_n
        lower = None
        if lower_bound:
            ba = ba_lower_bound(s, float(sigma), seed=seed)
            settings["lower_bound"] = {"method": "barber-agakov held-out", **ba}
            lower = ba["lower"]
    return MIEstimate(value=r["value"], method="noise-aware", lower=lower,
                      upper=upper, ceiling=log_n, settings=settings,
                      seconds=time.perf_counter() - t0)


def representation_spread(s: torch.Tensor) -> float:
    """RMS per-coordinate spread of the inputs' mean representations: sqrt(tr Cov(mean_i) / d)
    for draws s of shape (N, k, d) or (N, d). The unit of the measurement scale (`measurement_sigma`)."""
    means = _as_draws(s).to(torch.float64).mean(1)
    return float((means - means.mean(0)).pow(2).mean().sqrt())


def measurement_sigma(s: torch.Tensor, sigma_t: float, scale: float) -> tuple[float, dict]:
    """The noise std of T_m = T + σ_m Z, σ_m = scale · representation_spread(s), for measuring
    I(X; T_m) (Goldfeld et al. 2019: compression is clustering at a scale).

    Why: with only the network's own noise σ_t, which stays fixed while the representation's
    spread grows during training (0.5 → 1.3 per coordinate on the default digits run, σ_t = 0.1),
    the inputs of a class soon lie far apart compared with σ_t and I(X;T) sits at log N from
    the second checkpoint on: it says "all N inputs distinguishable" and nothing else. Added
    noise at a scale that follows the representation measures how tightly the network clusters
    a class's inputs *relative to how far apart it places everything it sees*, which moves
    during training and is unchanged by a mere rescaling of S. T's own noise is kept:
    σ² = σ_t² + σ_m². scale = 0: the network's own noise only (the paper's quantity).
    Returns (σ, {"xt_scale", "spread", "sigma_m", "sigma_t"})."""
    spread = representation_spread(s) if scale > 0 else 0.0
    sigma_m = float(scale) * spread
    return math.sqrt(sigma_t**2 + sigma_m**2), {"xt_scale": float(scale), "spread": spread,
                                                "sigma_m": sigma_m, "sigma_t": float(sigma_t)}


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
                "image_stderr": image_stderr(res["per_component"], s.shape[1]),
                "precision": precision, "seed": seed}
    lower = None if res["lower"] is None else res["lower"] + shift
    upper = None if res["upper"] is None else res["upper"] + shift
    return MIEstimate(value=res["value"] + shift, method="noise-aware", lower=lower,
                      upper=upper, ceiling=math.log(m) + shift, settings=settings,
                      seconds=time.perf_counter() - t0)
