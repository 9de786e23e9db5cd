"""Gaussian noise inside the network (Goldfeld et al. 2019), active in training and evaluation.

Every model here is a NoisyNet: it maps uint8-derived float images to logits and exposes what the
MI estimators need:
  - `forward_mi(x)` -> (S, T, logits): S is the pooled last hidden representation *before* the
    last noise (one random draw of every earlier noise), T = S + N(0, sigma_t^2 I) the noisy
    representation, logits = W (T + N(0, sigma_ty^2 I)) + b.
  - `sigma_t`: the std of the noise that separates T from S.
  - `classifier`: the final nn.Linear (W, b); `noise_ty` its input-noise std.
"""

from __future__ import annotations

import copy
from abc import ABCMeta, abstractmethod

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class GaussianNoise(nn.Module):
    """x + N(0, sigma^2), in train *and* eval mode (MI is finite only with the noise)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0.0:
            return x
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class NoisyNet(nn.Module, metaclass=ABCMeta):
    """Base: subclasses implement `hidden(x) -> (S, sigma_t-noise applied later)` via `_s(x)`."""

    classifier: nn.Linear
    noise_ty: float
    t_dim: int

    # Per-channel normalisation of [0,1] images; set by the experiment from the training data.
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, noise_xt: float, noise_ty: float):
        super().__init__()
        self.noise_xt = float(noise_xt)
        self.noise_ty = float(noise_ty)
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("std", torch.ones(1, 3, 1, 1))

    def set_normalisation(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC (or float NCHW in [0,1]) -> normalised float NCHW."""
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
        # The NHWC->NCHW permute leaves channels_last strides. On CUDA that is the fast layout
        # (prepare_model converts the weights to match). On CPU, torch 2.14's oneDNN backward of
        # a strided 1x1 conv with channels_last input, < 16 input channels, an odd batch >= 3
        # and >= 2 threads corrupts the heap (bench/onednn_crash.py reproduces it), so CPU
        # activations are kept in plain NCHW, where that kernel is never chosen.
        fmt = torch.channels_last if x.is_cuda else torch.contiguous_format
        return ((x - self.mean) / self.std).contiguous(memory_format=fmt)

    @property
    @abstractmethod
    def sigma_t(self) -> float:
        """Std of the Gaussian noise that separates T from S."""

    @abstractmethod
    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """S: pooled last hidden representation before the last noise."""

    def forward_mi(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.pooled(self.preprocess(x))
        t = s + self.sigma_t * torch.randn_like(s) if self.sigma_t > 0 else s
        z = t + self.noise_ty * torch.randn_like(t) if self.noise_ty > 0 else t
        return s, t, self.classifier(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_mi(x)[2]


def folded_copy(model: NoisyNet) -> NoisyNet:
    """A copy of `model` in eval mode for forward passes only, every BatchNorm that directly
    follows a convolution folded into it: the same function up to float rounding (~1e-7
    relative), one pass less over the activations per layer. Pairs are a Conv2d registered
    right before a BatchNorm2d of its channel count in the same parent, which both models
    here apply as bn(conv(x)); the noise layers are untouched (same draws, same order)."""
    m = copy.deepcopy(model).eval()
    for parent in m.modules():
        names = list(parent._modules)
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = parent._modules[a], parent._modules[b]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d
                    and bn.num_features == conv.out_channels and bn.track_running_stats):
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = nn.Identity()
    w4 = [p for p in model.parameters() if p.dim() == 4]
    if w4 and not w4[0].is_contiguous() and w4[0].is_contiguous(memory_format=torch.channels_last):
        m.to(memory_format=torch.channels_last)  # keep the layout prepare_model chose
    return m
