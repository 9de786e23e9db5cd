"""Noisy networks. Registry: MODELS[name] = constructor(num_classes, width, noise_xt, noise_ty).

ARCHS names the module that registers each architecture: reading the names (spec validation,
the compose form, `ibtui run` before it starts workers) imports no torch; MODELS and
create_model import the modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ibtui.models.noisy import NoisyNet

ARCHS = {"resnet18": "resnet", "vgg16": "vgg"}  # name -> its module in ibtui.models
_MODELS: dict[str, Callable[..., NoisyNet]] = {}


def register(name: str):
    def deco(fn):
        _MODELS[name] = fn
        return fn

    return deco


def _constructor(arch: str) -> Callable[..., NoisyNet]:
    importlib.import_module(f"{__name__}.{ARCHS[arch]}")
    return _MODELS[arch]


def create_model(arch: str, num_classes: int = 10, width: int = 64, noise_xt: float = 0.4,
                 noise_ty: float = 0.4) -> NoisyNet:
    from ibtui.errors import SpecError

    if arch not in ARCHS:
        raise SpecError(f"unknown arch {arch!r}; allowed: {', '.join(sorted(ARCHS))}")
    return _constructor(arch)(num_classes=num_classes, width=width, noise_xt=noise_xt,
                              noise_ty=noise_ty)


def __getattr__(name: str):
    if name == "MODELS":
        return {arch: _constructor(arch) for arch in ARCHS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
