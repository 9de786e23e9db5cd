"""Noisy networks. Registry: MODELS[name] = constructor(num_classes, width, noise_xt, noise_ty)."""

from __future__ import annotations

from collections.abc import Callable

from ibtui.models.noisy import NoisyNet

MODELS: dict[str, Callable[..., NoisyNet]] = {}


def register(name: str):
    def deco(fn):
        MODELS[name] = fn
        return fn

    return deco


def create_model(arch: str, num_classes: int = 10, width: int = 64, noise_xt: float = 0.4,
                 noise_ty: float = 0.4) -> NoisyNet:
    from ibtui.errors import SpecError

    if arch not in MODELS:
        raise SpecError(f"unknown arch {arch!r}; allowed: {', '.join(sorted(MODELS))}")
    return MODELS[arch](num_classes=num_classes, width=width, noise_xt=noise_xt, noise_ty=noise_ty)


# importing the modules fills the registry
from ibtui.models import resnet, vgg  # noqa: E402,F401
