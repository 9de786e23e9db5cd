"""Noisy ResNet-18 for 32x32 inputs (docs/method.md §2).

3x3 stem with stride 1 and no max-pool; N(0, noise_xt^2) after the first ReLU and after the
final ReLU of every BasicBlock; N(0, noise_ty^2) on the pooled features before fc. `width` is
the stem's channel count (64 = paper), the stages use width, 2w, 4w, 8w.

T is the layer4 output (after its block noise), global-average-pooled: 8w-d (512 at w=64). On
32x32 inputs layer4 is 4x4, so the pooled block noise is N(0, noise_xt^2/16): sigma_t = noise_xt/4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ibtui.models import register
from ibtui.models.noisy import GaussianNoise, NoisyNet


class NoisyBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int, sigma: float, last_noise: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.noise1 = GaussianNoise(sigma)
        # the last block's final noise is applied after pooling (identical in law, see module doc)
        self.noise2 = GaussianNoise(sigma) if last_noise else nn.Identity()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.noise1(F.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.noise2(F.relu(out))


class NoisyResNet18(NoisyNet):
    def __init__(self, num_classes: int = 10, width: int = 64, noise_xt: float = 0.4,
                 noise_ty: float = 0.4):
        super().__init__(noise_xt, noise_ty)
        w = int(width)
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        blocks: list[nn.Module] = []
        cin = w
        stages = [(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]
        for si, (cout, stride) in enumerate(stages):
            for bi in range(2):
                last = si == len(stages) - 1 and bi == 1
                blocks.append(NoisyBasicBlock(cin, cout, stride if bi == 0 else 1, noise_xt,
                                              last_noise=not last))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.t_dim = 8 * w
        self.classifier = nn.Linear(self.t_dim, num_classes)
        self._positions = 16  # layer4 is 4x4 on 32x32 inputs; updated on every pass

    @property
    def sigma_t(self) -> float:
        return self.noise_xt / self._positions**0.5

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.blocks(out)
        self._positions = out.shape[-1] * out.shape[-2]
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


@register("resnet18")
def resnet18(num_classes: int = 10, width: int = 64, noise_xt: float = 0.4,
             noise_ty: float = 0.4) -> NoisyResNet18:
    return NoisyResNet18(num_classes, width, noise_xt, noise_ty)
