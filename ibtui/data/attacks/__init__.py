"""Attack registry: ATTACKS[name] = Attack subclass. Each attack is one module in this package."""

from __future__ import annotations

import importlib
import pkgutil

from ibtui.data.attacks.base import Attack

ATTACKS: dict[str, type[Attack]] = {}
# the paper's order (its Table I): tables, figures and the gallery list attacks in it
PAPER_ORDER = ("badnets", "blend", "wanet", "lc", "adap-blend", "ftrojan")


def attack_title(name: object) -> str:
    """An attack's name as papers print it ('adap-blend' -> 'Adap-Blend'); others as given."""
    cls = ATTACKS.get(str(name))
    return cls.title if cls is not None else str(name)


def paper_rank(name: object) -> tuple[int, str]:
    """Sort key: the paper's attacks in its order, then any other by name."""
    name = str(name)
    return (PAPER_ORDER.index(name), name) if name in PAPER_ORDER else (len(PAPER_ORDER), name)


def register(cls: type[Attack]) -> type[Attack]:
    ATTACKS[cls.name] = cls
    return cls


def create_attack(name: str, options: dict | None, *, target: int, seed: int,
                  num_classes: int = 10) -> Attack:
    from ibtui.errors import SpecError

    if name not in ATTACKS:
        raise SpecError(f"unknown attack {name!r}; allowed: {', '.join(sorted(ATTACKS))}")
    return ATTACKS[name](dict(options or {}), target=target, seed=seed, num_classes=num_classes)


# every module in this package registers itself
for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")
