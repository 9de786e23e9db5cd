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
