"""Noisy VGG16 with batch-norm for 32x32 inputs (docs/method.md §2).

Layers (channels scaled by width/64; 64 = paper):
  64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M
every number a 3x3 conv (padding 1) -> BatchNorm -> ReLU -> N(0, noise_xt^2); M a 2x2 max-pool.
Then one Linear(8w -> num_classes) with N(0, noise_ty^2) on its input, so
logits | T ~ N(W T + b, noise_ty^2 W W^T) exactly.

T (what I(X;T) is measured on) is the output of the last conv block after the final max-pool,
flattened: 8w-d (512 at w=64), 1x1 spatially on 32x32 inputs. The last block is computed as
conv -> BN -> max-pool -> ReLU -> noise. ReLU is monotone, so it commutes with max-pooling:
relu(maxpool(a)) == maxpool(relu(a)), and the deterministic part S is exactly the standard
VGG16-BN feature vector. The last noise then sits on the pooled 8w features instead of on the
2x2 map before the pool (a max over noisy values would not be S plus Gaussian noise), so
T = S + N(0, sigma_t^2 I) with sigma_t = noise_xt exactly; every earlier ReLU output carries
its own N(0, noise_xt^2) as usual. (Inputs larger than 32x32 are average-pooled to 1x1 after
the last max-pool, before the noise, so sigma_t = noise_xt still holds.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ibtui.models import register
from ibtui.models.noisy import GaussianNoise, NoisyNet

VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                              512, 512, 512, "M", 512, 512, 512, "M"]


class NoisyVGG16(NoisyNet):
    def __init__(self, num_classes: int = 10, width: int = 64, noise_xt: float = 0.4,
                 noise_ty: float = 0.4):
        super().__init__(noise_xt, noise_ty)
        w = int(width)
        if w < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        cfg = [c if c == "M" else max(1, int(c) * w // 64) for c in VGG16_CFG]
        # body: everything up to the last conv; the last conv + its max-pool form `last`
        assert cfg[-1] == "M" and cfg[-2] != "M"
        layers: list[nn.Module] = []
        cin = 3
        for c in cfg[:-2]:
            if c == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True), GaussianNoise(noise_xt)]
                cin = c
        self.features = nn.Sequential(*layers)
        cout = int(cfg[-2])
        self.last_conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.last_bn = nn.BatchNorm2d(cout)
        self.t_dim = cout
        self.classifier = nn.Linear(self.t_dim, num_classes)

    @property
    def sigma_t(self) -> float:
        return self.noise_xt

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        out = F.max_pool2d(self.last_bn(self.last_conv(out)), 2, 2)
        out = F.relu(out)
        if out.shape[-1] * out.shape[-2] > 1:
            out = F.adaptive_avg_pool2d(out, 1)
        return out.flatten(1)


@register("vgg16")
def vgg16(num_classes: int = 10, width: int = 64, noise_xt: float = 0.4,
          noise_ty: float = 0.4) -> NoisyVGG16:
    return NoisyVGG16(num_classes, width, noise_xt, noise_ty)
