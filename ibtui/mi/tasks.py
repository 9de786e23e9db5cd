"""Ground-truth tasks for validating the MI estimators (docs/method.md §5).

- paper_gaussian: X ~ N(0, I₅), Y = X[:, :3] + ε, ε ~ N(0, I₃/6). Each of the three used
  coordinates is an AWGN channel with SNR 6, so I(X;Y) = 3 · ½ ln(1 + 6) = 1.5 ln 7 ≈ 2.919 nats
  (equivalently, Y's coordinates have correlation ρ² = 6/7 with X's, and −½ Σ ln(1−ρ²) = 1.5 ln 7).
  Dims 4–5 of X are independent distractors.
- high_mi_gaussian: X ~ N(0, I_d), Y = ρX + √(1−ρ²) ε (d = 20), I = −(d/2) ln(1−ρ²).
- surrogate: X = N real images (scikit-learn digits, upsampled to 32×32×3 uint8), a frozen random
  conv net f (512-d out), T = f(X) + σZ; X uniform over the N images. I(X;T) and I(T;Ŷ) with
  Ŷ = softmax(W(T + σ_ty Z') + b) have no closed form: the truth is a Monte Carlo reference
  (`reference_xt`, `reference_ty`) written independently of the estimators (entropy form with
  full-covariance log-densities), at many draws. With `internal_noise` > 0, f itself is noisy
  (like the real network) and the reference uses many draws k per image.

Every task also carries the noise model, so the noise-aware estimator can run on it: for the
Gaussians S = (the clean part of Y) and σ = the noise std; their noise-aware value estimates the MI
for X uniform over the N drawn points, which tends to the continuous truth while I ≪ log N.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass
class Task:
    name: str
    truth: float
    a: torch.Tensor  # samples for the trained estimators
    b: torch.Tensor
    term: str  # which infonce-paper schedule fits ("xt": images -> T, "ty": else)
    s: torch.Tensor  # noise model: draws of S (N, k, d)
    sigma: float
    ty: dict = field(default_factory=dict)  # weight, sigma_ty, sigma_t for I(T;Ŷ) tasks
    detail: str = ""


def paper_gaussian(n: int = 10_000, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    sigma = math.sqrt(1 / 6)
    y = x[:, :3] + sigma * torch.randn(n, 3, generator=g)
    return Task("paper-gaussian", 1.5 * math.log(7), x, y, "ty", x[:, None, :3], sigma,
                detail="5-d X, Y = X[:3] + N(0, I/6)")


def high_mi_gaussian(mi: float, d: int = 20, n: int = 10_000, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed + int(mi * 1000))
    rho = math.sqrt(1 - math.exp(-2 * mi / d))
    x = torch.randn(n, d, generator=g)
    sigma = math.sqrt(1 - rho * rho)
    y = rho * x + sigma * torch.randn(n, d, generator=g)
    return Task(f"gauss{d}d-{mi:g}", -(d / 2) * math.log(1 - rho * rho), x, y, "ty",
                (rho * x)[:, None, :], sigma, detail=f"{d}-d, rho={rho:.4f}")


def gaussian_curve(mi: float, n: int, seed: int = 0) -> Task:
    """The paper's construction with its SNR scaled so that I = mi (for the comparison curve)."""
    g = torch.Generator().manual_seed(seed + int(mi * 1000))
    snr = math.exp(2 * mi / 3) - 1
    x = torch.randn(n, 5, generator=g)
    sigma = 1 / math.sqrt(snr)
    y = x[:, :3] + sigma * torch.randn(n, 3, generator=g)
    return Task(f"curve-{mi:g}", mi, x, y, "ty", x[:, None, :3], sigma)


def digit_images(n: int, seed: int = 0) -> torch.Tensor:
    """n real images (scikit-learn digits 8×8 → 32×32×3 uint8, NHWC)."""
    from sklearn.datasets import load_digits

    imgs = load_digits().images  # (1797, 8, 8) in 0..16
    idx = np.random.default_rng(seed).permutation(len(imgs))[:n]
    x = torch.from_numpy(imgs[idx]).float()[:, None] / 16.0
    x = nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).repeat(1, 1, 1, 3).contiguous()


class RandomConvNet(nn.Module):
    """Frozen random f: 32×32×3 → 512-d (4 conv stages, ReLU, global pool, unit-scale output)."""

    def __init__(self, seed: int = 0, internal_noise: float = 0.0, dim: int = 512):
        super().__init__()
        chans = [3, 32, 64, 128, dim]
        with torch.random.fork_rng(devices=[]):  # seeded init, global RNG left as found
            torch.manual_seed(seed)
            self.convs = nn.ModuleList(nn.Conv2d(ci, co, 3, 2, 1)
                                       for ci, co in itertools.pairwise(chans))
        self.internal_noise = internal_noise
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        h = x.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        for i, conv in enumerate(self.convs):
            h = torch.relu(conv(h))
            h = h / h.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-6).sqrt()
            if i == 0 and self.internal_noise > 0:
                h = h + self.internal_noise * torch.randn(h.shape, generator=gen)
        return h.mean(dim=(2, 3))


def surrogate(n: int = 500, k: int = 1, internal_noise: float = 0.0, seed: int = 0,
              spread: float = 0.3) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(images, S draws (n, k, 512), σ_T) with σ_T = spread × the RMS distance of the noiseless
    f(x_i) to their mean: what sets I(X;T) is ‖f(x_i) − f(x_j)‖²/σ², not the dimension."""
    x = digit_images(n, seed)
    f = RandomConvNet(seed, internal_noise)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        s = torch.stack([f(x, gen) for _ in range(k)], 1)
        clean = RandomConvNet(seed, 0.0)(x)
    centred = clean - clean.mean(0)
    sigma = spread * float(centred.pow(2).sum(1).mean().sqrt())
    return x, s, sigma


def reference_xt(s: torch.Tensor, sigma: float, draws: int = 64, seed: int = 123) -> float:
    """Independent reference for I(X;T): h(T) − h(T|X), T|X=i = (1/k) Σ_j N(s_ij, σ²I).

    Both entropies by Monte Carlo with full Gaussian log-densities (float64, numpy/scipy), h(T|X)
    analytic when k = 1. `draws` samples per component.
    """
    from scipy.special import logsumexp

    s = s.double().numpy()
    n, k, d = s.shape
    flat = s.reshape(n * k, d)
    rng = np.random.default_rng(seed)
    const = -0.5 * d * math.log(2 * math.pi * sigma**2)
    h_t, h_t_x = 0.0, 0.0
    for _ in range(draws):
        t = flat + sigma * rng.standard_normal(flat.shape)
        for lo in range(0, n * k, 512):
            tt = t[lo : lo + 512]
            d2 = (tt**2).sum(1)[:, None] + (flat**2).sum(1)[None] - 2 * tt @ flat.T
            logp = const + logsumexp(-np.maximum(d2, 0) / (2 * sigma**2), axis=1) - math.log(n * k)
            h_t -= logp.sum()
            rows = np.arange(lo, lo + len(tt)) // k
            own = d2[np.arange(len(tt))[:, None], rows[:, None] * k + np.arange(k)[None]]
            logc = const + logsumexp(-np.maximum(own, 0) / (2 * sigma**2), axis=1) - math.log(k)
            h_t_x -= logc.sum()
    m = draws * n * k
    return h_t / m - h_t_x / m


def reference_ty(s: torch.Tensor, weight: torch.Tensor, sigma_ty: float, sigma_t: float,
                 draws: int = 32, seed: int = 321) -> float:
    """Independent reference for I(T;Ŷ), Ŷ = probability vector.

    U = the centred logits expressed in C−1 coordinates (drop the last centred logit: an
    invertible linear map of the centred logits, not orthonormal; Jacobians cancel in the MI).
    Samples T = s_m + σ_t ξ explicitly, then U = A(T + σ_ty η), and averages
    log p(u|t) − log p(u) with full-covariance Gaussian densities: p(u|t) = N(At, σ_ty² AAᵀ),
    p(u) = (1/M) Σ_m N(A s_m, (σ_t² + σ_ty²) AAᵀ).
    """
    from scipy.special import logsumexp

    w = weight.double().numpy()
    c = w.shape[0]
    a = ((np.eye(c) - 1.0 / c) @ w)[: c - 1]  # (C−1, d)
    flat = s.double().numpy().reshape(-1, s.shape[-1])
    mu = flat @ a.T
    gram = a @ a.T
    chol_c = np.linalg.cholesky(sigma_ty**2 * gram)
    chol_m = np.linalg.cholesky((sigma_t**2 + sigma_ty**2) * gram)
    ld_c, ld_m = 2 * np.log(np.diag(chol_c)).sum(), 2 * np.log(np.diag(chol_m)).sum()
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(draws):
        t = flat + sigma_t * rng.standard_normal(flat.shape)
        u = (t + sigma_ty * rng.standard_normal(flat.shape)) @ a.T
        e_c = np.linalg.solve(chol_c, (u - t @ a.T).T).T
        log_cond = -0.5 * (e_c**2).sum(1) - 0.5 * ld_c
        for lo in range(0, len(u), 512):
            diff = u[lo : lo + 512, None, :] - mu[None]
            sol = np.linalg.solve(chol_m, diff.reshape(-1, c - 1).T).T.reshape(diff.shape)
            log_marg = logsumexp(-0.5 * (sol**2).sum(-1), axis=1) - 0.5 * ld_m - math.log(len(mu))
            total += (log_cond[lo : lo + 512] - log_marg).sum()
    return total / (draws * len(mu))


def surrogate_ty_weight(dim: int = 512, classes: int = 10, seed: int = 0,
                        scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 7)
    w = scale * torch.randn(classes, dim, generator=g) / math.sqrt(dim)
    return w, 0.1 * torch.randn(classes, generator=g)


# --- noisy networks with upstream noise: T|X has correlated, non-isotropic noise ---

@dataclass
class NoisyNetTask:
    """Draws of S for a noisy network with noise upstream of S; truth computed independently."""

    name: str
    truth: float
    s: torch.Tensor  # (N, k, d) draws of S given to the estimators
    sigma: float  # std of the last noise, T = S + σZ
    detail: str = ""


def _spectrum_matrix(rows: int, cols: int, decay: float, g: torch.Generator) -> torch.Tensor:
    """A random (rows, cols) matrix whose singular values decay geometrically (anisotropic)."""
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g, dtype=torch.float64))
    r = min(rows, cols)
    sv = decay ** torch.arange(r, dtype=torch.float64)
    return (u[:, :r] * sv) @ v[:, :r].T


def noisy_linear(scale: float, n: int = 118, k: int = 4, d: int = 32, seed: int = 0,
                 sigma: float = 0.1, upstream: float = 0.6, ref_draws: int = 64,
                 noise_seed: int | None = None, truth: float | None = None,
                 decay: float = 0.8, iso: float = 0.1, input_seed: int | None = None
                 ) -> NoisyNetTask:
    """Noisy *linear* network: x_i ~ N(0, I_16)·scale (N fixed inputs),
    h = A₁x + σ₁Z₁ (32-d), S = A₂h + 0.1σ Z₂ (d-d), T = S + σZ.

    A₂ has geometrically decaying singular values, so the upstream noise reaches S strongly
    correlated (within-input covariance Σ = σ₁²A₂A₂ᵀ + (0.1σ)²I, top eigenvalue ≫ σ², like the
    real network's). T|X=i = N(μ_i, Σ + σ²I) exactly; whitening by (Σ + σ²I)^(-1/2) turns it into
    a mixture of N unit-variance isotropic Gaussians, whose MI is computed by the independent
    Monte Carlo reference (`reference_xt`, `ref_draws` samples per input). `scale` sets the MI.
    noise_seed: draw the noise from its own seed (the network and inputs, hence the truth, stay
    those of `seed`): repeated noise draws of one task measure an estimator's bias. truth: the
    truth of that task when already known (skips the reference). decay: the geometric decay of
    A₂'s singular values (smaller: the upstream noise is lower-rank; with a larger `upstream`,
    strong low-rank noise). iso: the std of S's own isotropic noise Z₂ in units of σ (0.1;
    1.0 makes every direction of T noisy). input_seed: draw the N inputs from their own seed
    (the network stays that of `seed`): a fresh sample of the class, as another subset would be.
    """
    g = torch.Generator().manual_seed(seed)
    a1 = torch.randn(32, 16, generator=g, dtype=torch.float64) / 4.0
    a2 = _spectrum_matrix(d, 32, decay, g)
    gx = g if input_seed is None else torch.Generator().manual_seed(20_000 + input_seed)
    x = scale * torch.randn(n, 16, generator=gx, dtype=torch.float64)
    mu = x @ a1.T @ a2.T
    s2 = iso * sigma
    cov = upstream**2 * a2 @ a2.T + s2**2 * torch.eye(d, dtype=torch.float64)
    if noise_seed is not None:
        g = torch.Generator().manual_seed(10_000 + noise_seed)
    z1 = torch.randn(n, k, 32, generator=g, dtype=torch.float64)
    z2 = torch.randn(n, k, d, generator=g, dtype=torch.float64)
    s = mu[:, None] + upstream * z1 @ a2.T + s2 * z2
    if truth is None:
        chol = torch.linalg.cholesky(cov + sigma**2 * torch.eye(d, dtype=torch.float64))
        white = torch.linalg.solve_triangular(chol, mu.T, upper=False).T
        truth = reference_xt(white[:, None, :].float().double(), 1.0, draws=ref_draws,
                             seed=seed + 5)
    top = float(torch.linalg.eigvalsh(cov)[-1])
    name = f"linear{d}d-x{scale:g}" + ("" if (upstream, decay) == (0.6, 0.8) else
                                         f"-up{upstream:g}-r{decay:g}")
    name += "" if iso == 0.1 else f"-iso{iso:g}"
    return NoisyNetTask(name, truth, s.float(), sigma,
                        detail=f"N={n}, k={k}, within trace {float(cov.trace()):.2f}, "
                               f"top eig {top:.2f} vs σ²={sigma**2:g}")


class _TinyNoisyReLU:
    """x (4-d) → relu(A₁x + b + σ₁Z₁) (16-d) → S = A₂h (d-d): small, low-dimensional, noisy."""

    def __init__(self, d: int, upstream: float, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.a1 = torch.randn(16, 4, generator=g, dtype=torch.float64)
        self.b = 0.3 * torch.randn(16, generator=g, dtype=torch.float64)
        self.a2 = torch.randn(d, 16, generator=g, dtype=torch.float64) / 4.0
        self.upstream = upstream

    def draws(self, x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
        pre = (x @ self.a1.T + self.b)[:, None, :]
        noise = self.upstream * torch.randn(len(x), k, 16, generator=g, dtype=torch.float64)
        return torch.relu(pre + noise) @ self.a2.T


def noisy_relu(scale: float, n: int = 40, k: int = 8, d: int = 2, seed: int = 0,
               sigma: float = 0.3, upstream: float = 0.5, k_ref: int = 1024,
               noise_seed: int | None = None, truth: float | None = None) -> NoisyNetTask:
    """Small noisy ReLU network at low dimension (d = 2): T|X is a non-Gaussian (rectified)
    distribution. Truth: the mixture of k_ref draws per input (`conditional="draws"`), which
    converges at this dimension (the value at k_ref/4 is recorded in `detail`). noise_seed: the
    k draws given to the estimators from their own seed (network, inputs and truth unchanged);
    truth: the truth when already known (skips the reference)."""
    from ibtui.mi.noise_aware import mixture_mi  # reference = the exact mixture at large k

    g = torch.Generator().manual_seed(seed)
    net = _TinyNoisyReLU(d, upstream, seed)
    x = scale * torch.randn(n, 4, generator=g, dtype=torch.float64)
    ref = net.draws(x, k_ref, g)
    if truth is None:
        truth = mixture_mi(ref, sigma, bracket=False, seed=seed + 1, chunk_mb=64)["value"]
        quarter = mixture_mi(ref[:, : k_ref // 4], sigma, bracket=False, seed=seed + 2,
                             chunk_mb=64)["value"]
        note = f"truth at k={k_ref} (at k={k_ref // 4}: {quarter:.3f})"
    else:
        note = f"truth at k={k_ref} given"
    if noise_seed is not None:
        g = torch.Generator().manual_seed(20_000 + noise_seed)
    s = net.draws(x, k, g)
    return NoisyNetTask(f"relu{d}d-x{scale:g}", truth, s.float(), sigma,
                        detail=f"N={n}, k={k}, {note}")


# --- bmi-benchmark-style tasks (Czyż et al. 2023): closed-form MI under invertible transforms ---

def _half_cube(x: torch.Tensor) -> torch.Tensor:
    return x * x.abs().sqrt()


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


TRANSFORMS = {"id": lambda x: x, "halfcube": _half_cube, "asinh": torch.asinh,
              "normalcdf": _normal_cdf}


def bmi_task(mi: float, d: int = 5, transform: str = "id", sides: str = "both",
             n: int = 5000, seed: int = 0) -> Task:
    """X ~ N(0, I_d), Y = ρX + √(1−ρ²)ε coordinate-wise with I(X;Y) = −(d/2) ln(1−ρ²) = `mi`,
    then a coordinate-wise invertible `transform` (half-cube x|x|^½, asinh, or the normal CDF Φ)
    applied to Y ("y") or to both X and Y ("both"). MI is invariant to invertible maps of
    either side, so the truth stays `mi` (Czyż et al. 2023, "Beyond normal")."""
    g = torch.Generator().manual_seed(seed * 1009 + int(mi * 1000) + d)
    rho = math.sqrt(1 - math.exp(-2 * mi / d))
    x = torch.randn(n, d, generator=g)
    y = rho * x + math.sqrt(1 - rho * rho) * torch.randn(n, d, generator=g)
    f = TRANSFORMS[transform]
    if sides == "both":
        x = f(x)
    y = f(y)
    side = "" if transform == "id" else f"-{transform}-{sides}"
    return Task(f"bmi{d}d-{mi:g}{side}", mi, x, y, "ty", y[:, None, :0], 1.0,
                detail=f"{d}+{d}-d Gaussian, rho={rho:.3f}, {transform} on {sides}")
