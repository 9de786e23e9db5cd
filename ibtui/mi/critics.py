"""Critics of the trained estimators.

ConcatCritic (the paper's): f(a, b) = MLP([a; b]) with two hidden ReLU layers. Its first layer is
linear in [a; b], so W[a; b] + c = W_a a + W_b b + c: `pairs(a, b, neg)` computes W_a a and
W_b b once per batch and broadcasts them over the K negatives — the same function as
`forward(cat([a, b]))` at a fraction of the cost.
SeparableCritic: f(a, b) = g(a)·h(b), all B×B pairs of a batch from one matrix product.
"""

from __future__ import annotations

import torch
from torch import nn


class ConcatCritic(nn.Module):
    def __init__(self, dim_a: int, dim_b: int, hidden: int = 128):
        super().__init__()
        self.dim_a = dim_a
        self.first = nn.Linear(dim_a + dim_b, hidden)
        self.rest = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, ab: torch.Tensor) -> torch.Tensor:
        """Plain concat critic: ab = [a; b] of shape (..., dim_a + dim_b) -> (...)."""
        return self.rest(self.first(ab)).squeeze(-1)

    def parts(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.first.weight
        return a @ w[:, : self.dim_a].T + self.first.bias, b @ w[:, self.dim_a :].T

    def pairs(self, a: torch.Tensor, b: torch.Tensor, neg: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Factorised scores: f(a_i, b_i) (B,) and f(a_i, b_neg[i, j]) (B, K)."""
        pa, pb = self.parts(a, b)
        pos = self.rest(pa + pb).squeeze(-1)
        negs = self.rest(pa[:, None, :] + pb[neg]).squeeze(-1)
        return pos, negs

    def matrix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """All B×B scores f(a_i, b_j) (factorised first layer)."""
        pa, pb = self.parts(a, b)
        return self.rest(pa[:, None, :] + pb[None, :, :]).squeeze(-1)

    def shuffled(self, a: torch.Tensor, b: torch.Tensor, perm: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """f(a_i, b_i) and f(a_i, b_perm[i]) (MINE's joint and product-of-marginals terms)."""
        pa, pb = self.parts(a, b)
        return self.rest(pa + pb).squeeze(-1), self.rest(pa + pb[perm]).squeeze(-1)


def _mlp(din: int, hidden: int, dout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, dout))


class SeparableCritic(nn.Module):
    def __init__(self, dim_a: int, dim_b: int, hidden: int = 256, embed: int = 64):
        super().__init__()
        self.g = _mlp(dim_a, hidden, embed)
        self.h = _mlp(dim_b, hidden, embed)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, B) scores f(a_i, b_j)."""
        return self.g(a) @ self.h(b).T


class _GaussPart(nn.Module):
    """x ↦ (Lx, −½ xᵀSx): the linear and quadratic features of a Gaussian log-density ratio.

    S is a free symmetric matrix starting at 0 when dim ≤ 64 (its gradient −½xxᵀ does not
    vanish there, unlike a factorised QᵀQ at small Q), else QᵀQ with Q of rank 64."""

    def __init__(self, dim: int, rank: int, full_up_to: int = 64):
        super().__init__()
        self.lin = nn.Linear(dim, rank, bias=False)
        self.full = dim <= full_up_to
        if self.full:
            self.s = nn.Parameter(torch.zeros(dim, dim))
        else:
            self.quad = nn.Linear(dim, min(rank, 64), bias=False)
            nn.init.normal_(self.quad.weight, std=0.3 / dim**0.5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.full:
            sym = 0.5 * (self.s + self.s.T)
            q = -0.5 * ((x @ sym) * x).sum(1, keepdim=True)
        else:
            q = -0.5 * self.quad(x).pow(2).sum(1, keepdim=True)
        return self.lin(x), q


class GaussSeparableCritic(nn.Module):
    """Separable critic with a Gaussian-form path: f(a, b) = g(a)·h(b) with
    g(a) = [L_a a, 1, mlp_a(a)] and h(b) = [L_b b, −½‖Q b‖², mlp_b(b)], i.e.
    f = aᵀL_aᵀL_b b − ½‖Qb‖² + mlp_a(a)·mlp_b(b). For (marginally Gaussianised) jointly Gaussian
    pairs the first two terms already hold the optimal InfoNCE critic (terms in a alone cancel in
    the softmax over b), so it is learnt in few steps from few pairs; the MLP part (its b side
    initialised at zero) adds the non-Gaussian structure."""

    def __init__(self, dim_a: int, dim_b: int, hidden: int = 64, embed: int = 32):
        super().__init__()
        rank = min(max(dim_a, dim_b), 64)
        self.ga, self.gb = nn.Linear(dim_a, rank, bias=False), _GaussPart(dim_b, rank)
        self.g = _mlp(dim_a, hidden, embed)
        self.h = _mlp(dim_b, hidden, embed)
        nn.init.zeros_(self.h[-1].weight)
        nn.init.zeros_(self.h[-1].bias)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        lb, qb = self.gb(b)
        return self.ga(a) @ lb.T + qb.T + self.g(a) @ self.h(b).T


class GaussConcatCritic(nn.Module):
    """MINE's critic with a Gaussian-form path: f(a, b) = aᵀWb − ½‖Qa‖² − ½‖Rb‖² + MLP([a; b])
    (the MLP's last layer initialised at zero). Same `parts`/`rest` interface as ConcatCritic
    through `shuffled`."""

    def __init__(self, dim_a: int, dim_b: int, hidden: int = 128):
        super().__init__()
        rank = min(max(dim_a, dim_b), 64)
        self.ga, self.gb = _GaussPart(dim_a, rank), _GaussPart(dim_b, rank)
        self.mlp = ConcatCritic(dim_a, dim_b, hidden)
        nn.init.zeros_(self.mlp.rest[-1].weight)
        nn.init.zeros_(self.mlp.rest[-1].bias)

    def shuffled(self, a: torch.Tensor, b: torch.Tensor, perm: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        la, qa = self.ga(a)
        lb, qb = self.gb(b)
        joint_m, marg_m = self.mlp.shuffled(a, b, perm)
        joint = (la * lb).sum(1) + qa[:, 0] + qb[:, 0] + joint_m
        marg = (la * lb[perm]).sum(1) + qa[:, 0] + qb[perm, 0] + marg_m
        return joint, marg
