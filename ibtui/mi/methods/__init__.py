"""MI estimator registry: ESTIMATORS[name] = Estimator subclass, one module per estimator in
this package (base.py says what an estimator declares). Every module here is imported and
registers itself with `@register`: adding an estimator is one file here plus its test.

`METHODS` is the names registered at import, the default first; `names()` is the live list
(a test may register more). An unknown name is a SpecError naming it and the allowed ones.
"""

from __future__ import annotations

import importlib
import pkgutil

from ibtui.errors import SpecError
from ibtui.mi.methods.base import SCHEDULE_NAMES, Estimator, SharedOptions

ESTIMATORS: dict[str, type[Estimator]] = {}
DEFAULT_METHOD = "noise-aware"


def _declared(field) -> str:
    return repr((field.annotation, field.default, field.metadata, field.description))


def register(cls: type[Estimator]) -> type[Estimator]:
    """Add `cls` under `cls.name`. A key of the flat mi_options table means one thing: an
    option another estimator (or the checkpoint) already declares must be declared alike."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or "," in name:
        raise TypeError(f"{cls.__name__}: an estimator needs a name (a string without commas)")
    if name in ESTIMATORS and ESTIMATORS[name] is not cls:
        raise TypeError(f"estimator {name!r} is registered twice ({ESTIMATORS[name].__name__}, "
                        f"{cls.__name__})")
    seen = {key: ("the checkpoint", f) for key, f in SharedOptions.model_fields.items()}
    for other in ESTIMATORS.values():
        if other is not cls:
            seen.update({key: (other.name, f) for key, f in other.Options.model_fields.items()})
    for key, field in cls.Options.model_fields.items():
        if key in seen and _declared(seen[key][1]) != _declared(field):
            raise TypeError(f"estimator {name!r}: mi_options.{key} is declared differently by "
                            f"{seen[key][0]}; share one declaration (a common Options base)")
    for schedule, values in cls.schedules.items():
        bad = [k for k in values if k not in cls.Options.model_fields]
        if schedule not in SCHEDULE_NAMES or bad:
            raise TypeError(f"estimator {name!r}: schedule {schedule!r} sets {bad or values}; "
                            f"allowed: schedules {SCHEDULE_NAMES} of its own options")
    ESTIMATORS[name] = cls
    return cls


def names() -> tuple[str, ...]:
    """Registered estimators, the default first, then in registration order."""
    return tuple(sorted(ESTIMATORS, key=lambda n: n != DEFAULT_METHOD))


def get(name: str) -> type[Estimator]:
    if name not in ESTIMATORS:
        raise SpecError(f"mi_method: unknown method {name!r}; allowed: {', '.join(names())}")
    return ESTIMATORS[name]


def validate_methods(method: str | list[str] | tuple[str, ...]) -> list[str]:
    """Registered names from one name, a list, or comma-separated names; duplicates dropped."""
    parts = [method] if isinstance(method, str) else list(method)
    out: list[str] = []
    for item in parts:
        for part in str(item).split(","):
            part = part.strip()
            get(part)
            if part not in out:
                out.append(part)
    if not out:
        raise SpecError(f"mi_method: empty; allowed: {', '.join(names())}")
    return out


# every module in this package registers itself (modules in name order)
for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

METHODS: tuple[str, ...] = names()
