"""experiments.toml: schema, validation with locations, grid expansion.

A file has an optional `[defaults]` table and one or more `[[experiment]]` tables. Every field
of an experiment falls back to `[defaults]`, then to the built-in defaults below. A scalar field
given as a list expands as a grid (attack x poison_rate x seed x ...); fields that are lists by
nature (mi_epochs, observe_classes, mi_method) do not.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ibtui.errors import SpecError

PAPER_MI_EPOCHS = [1, 5, 10, 20, 40, 60, 80, 100, 120]


@dataclass(frozen=True)
class Field:
    default: Any
    types: tuple[type, ...]
    help: str
    listy: bool = False  # the value itself is a list (never expanded as a grid)


FIELDS: dict[str, Field] = {
    "name": Field("exp", (str,), "experiment name (first part of the run id)"),
    "dataset": Field("digits", (str,), "dataset name"),
    "data_root": Field("", (str,), "data directory (default: $IBTUI_DATA or ./data)"),
    "download": Field(False, (bool,), "download the dataset if missing"),
    "arch": Field("resnet18", (str,), "network"),
    "width": Field(64, (int,), "base channel width (64 = paper)"),
    "attack": Field("badnets", (str,), "attack name"),
    "attack_options": Field({}, (dict,), "attack options table (see README)"),
    "poison_rate": Field(0.1, (float,), "dirty-label: share of the training set; "
                                        "clean-label: share of the target class"),
    "target": Field(0, (int,), "target class"),
    "epochs": Field(120, (int,), "training epochs"),
    "lr": Field(0.01, (float,), "SGD learning rate (paper 0.01, authors' code 0.1)"),
    "momentum": Field(0.9, (float,), "SGD momentum"),
    "weight_decay": Field(5e-4, (float,), "SGD weight decay"),
    "batch_size": Field(256, (int,), "training batch size"),
    "plateau_patience": Field(5, (int,), "ReduceLROnPlateau patience (epochs)"),
    "plateau_factor": Field(0.5, (float,), "ReduceLROnPlateau factor"),
    "noise_xt": Field(0.4, (float,), "noise std inside the blocks (sigma_xt)"),
    "noise_ty": Field(0.4, (float,), "noise std before the classifier (sigma_ty)"),
    "mi_epochs": Field(PAPER_MI_EPOCHS, (int,), "epochs at which MI is estimated", listy=True),
    "mi_method": Field(["noise-aware"], (str,), "MI estimator(s); several are recorded side by side", listy=True),
    "mi_options": Field({}, (dict,), "estimator options table (see README)"),
    "mi_equal_n": Field(True, (bool,), "estimate every subset on the same number of images "
                        "(the smallest subset's), so that log N ceilings agree"),
    "observe_classes": Field("all", (int, str), "clean classes whose MI is estimated: \"all\" or a list", listy=True),
    "stealth_epochs": Field("all", (str,), "representative epochs for the stealth score"),
    "seed": Field(0, (int,), "random seed"),
    "device": Field("auto", (str,), "auto | cpu | cuda | cuda:N"),
    "threads": Field(0, (int,), "CPU threads of the worker (torch and OpenMP); "
                     "0 = the launcher's choice: the machine's cores shared among the jobs"),
}

RANGES: dict[str, tuple[float, float, bool, bool]] = {
    # name: (lo, hi, lo_inclusive, hi_inclusive)
    "poison_rate": (0.0, 1.0, False, False),
    "width": (1, 1024, True, True),
    "epochs": (1, 100_000, True, True),
    "lr": (0.0, 10.0, False, True),
    "momentum": (0.0, 1.0, True, False),
    "weight_decay": (0.0, 1.0, True, True),
    "batch_size": (1, 1_000_000, True, True),
    "plateau_patience": (0, 100_000, True, True),
    "plateau_factor": (0.0, 1.0, False, False),
    "noise_xt": (0.0, 100.0, True, True),
    "noise_ty": (0.0, 100.0, True, True),
    "seed": (0, 2**31 - 1, True, True),
    "threads": (0, 1024, True, True),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "stealth_epochs": ("all", "phases"),
}


def _registries() -> dict[str, list[str]]:
    from ibtui.data.attacks import ATTACKS
    from ibtui.data.datasets import DATASETS
    from ibtui.mi import METHODS
    from ibtui.models import MODELS

    return {"dataset": sorted(DATASETS), "arch": sorted(MODELS), "attack": sorted(ATTACKS),
            "mi_method": list(METHODS)}


@dataclass
class RunSpec:
    """One fully resolved run (one point of a grid)."""

    values: dict[str, Any]
    source: str = ""  # "file:experiment[i]" for messages

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def run_id(self) -> str:
        v = self.values
        rate = f"{v['poison_rate']:g}"
        return f"{v['name']}-{v['attack']}-{v['dataset']}-{v['arch']}-p{rate}-s{v['seed']}"


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", bool: "true/false", dict: "table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_type(value: Any, f: Field) -> bool:
    if isinstance(value, bool):
        return bool in f.types
    if float in f.types and isinstance(value, int):
        return True
    return isinstance(value, f.types)


def _where(file: str, exp: str, key: str) -> str:
    return f"{file}: {exp}: field '{key}'"


def read_toml(path: Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML: {e}") from None


def validate_experiment(raw: dict, *, file: str, exp: str, defaults: dict | None = None) -> list[RunSpec]:
    """Merge, type-check, expand the grid and range-check one experiment table."""
    merged: dict[str, Any] = {k: f.default for k, f in FIELDS.items()}
    explicit_mi_epochs = False
    for layer_name, layer in (("defaults", defaults or {}), (exp, raw)):
        if not isinstance(layer, dict):
            raise SpecError(f"{file}: {layer_name}: must be a table, got {type(layer).__name__}")
        for key, value in layer.items():
            where = _where(file, layer_name, key)
            if key not in FIELDS:
                raise SpecError(f"{where}: unknown field; allowed: {', '.join(FIELDS)}")
            f = FIELDS[key]
            items = value if isinstance(value, list) else [value]
            if isinstance(value, list) and not value:
                raise SpecError(f"{where}: empty list")
            if f.listy and key == "observe_classes" and value == "all":
                items = []
            for item in items:
                if not _check_type(item, f):
                    raise SpecError(f"{where}: expected {_type_name(f.types)}"
                                    f"{' or a list of them' if f.types != (dict,) else ''}, got {item!r}")
            if isinstance(value, list) and f.types == (dict,):
                raise SpecError(f"{where}: expected a table, got a list")
            if key == "observe_classes" and value != "all":
                if isinstance(value, int) and not isinstance(value, bool):
                    value = [value]
                if not isinstance(value, list) or not all(
                        isinstance(c, int) and not isinstance(c, bool) for c in value):
                    raise SpecError(f"{where}: expected \"all\" or a list of class numbers, got {value!r}")
            if key == "mi_epochs":
                explicit_mi_epochs = True
            if f.listy and not isinstance(value, list) and key != "observe_classes":
                value = [value]
            merged[key] = value

    grid_keys = [k for k, v in merged.items() if isinstance(v, list) and not FIELDS[k].listy]
    combos = itertools.product(*[merged[k] for k in grid_keys]) if grid_keys else [()]
    regs = _registries()
    out = []
    for combo in combos:
        v = dict(merged)
        v.update(zip(grid_keys, combo, strict=True))
        if not explicit_mi_epochs:
            # the paper's checkpoints, scaled to the run's length
            v["mi_epochs"] = sorted({max(1, min(v["epochs"], round(e * v["epochs"] / 120)))
                                     for e in PAPER_MI_EPOCHS})
        _check_values(v, file=file, exp=exp, regs=regs)
        out.append(RunSpec(v, source=f"{file}:{exp}"))
    return out


def _check_values(v: dict, *, file: str, exp: str, regs: dict[str, list[str]]) -> None:
    from ibtui.data.attacks import ATTACKS
    from ibtui.data.datasets import DATASETS
    from ibtui.mi import validate_mi_options

    def err(key: str, msg: str) -> SpecError:
        return SpecError(f"{_where(file, exp, key)}: {msg}")

    for key, allowed in regs.items():
        values = v[key] if isinstance(v[key], list) else [v[key]]
        for x in values:
            if x not in allowed:
                raise err(key, f"unknown {key} {x!r}; allowed: {', '.join(allowed)}")
    for key, (lo, hi, lo_in, hi_in) in RANGES.items():
        x = v[key]
        if isinstance(x, float) and not math.isfinite(x):
            raise err(key, f"{x!r} is not a finite number")
        bad = (x < lo if lo_in else x <= lo) or (x > hi if hi_in else x >= hi)
        if bad:
            lb, rb = ("[" if lo_in else "("), ("]" if hi_in else ")")
            raise err(key, f"{x!r} out of range; allowed: {lb}{lo:g}, {hi:g}{rb}")
    for key, allowed in CHOICES.items():
        if v[key] not in allowed:
            raise err(key, f"{v[key]!r} not allowed; allowed: {', '.join(allowed)}")
    if not v["name"] or any(c in v["name"] for c in "/\\ \t\n"):
        raise err("name", f"{v['name']!r}: must be non-empty, without spaces or slashes")
    ncls = DATASETS[v["dataset"]].num_classes
    if not 0 <= v["target"] < ncls:
        raise err("target", f"{v['target']} out of range; allowed: 0..{ncls - 1} ({v['dataset']} has {ncls} classes)")
    bad_epochs = [e for e in v["mi_epochs"] if not 1 <= e <= v["epochs"]]
    if bad_epochs:
        raise err("mi_epochs", f"{bad_epochs} outside the run; allowed: 1..{v['epochs']} (epochs = {v['epochs']})")
    v["mi_epochs"] = sorted(set(v["mi_epochs"]))
    obs = v["observe_classes"]
    if obs == "all":
        v["observe_classes"] = [c for c in range(ncls) if c != v["target"]]
    else:
        bad = [c for c in obs if not 0 <= c < ncls or c == v["target"]]
        if bad:
            raise err("observe_classes",
                      f"{bad} not allowed; allowed: classes 0..{ncls - 1} except the target {v['target']}")
        v["observe_classes"] = sorted(set(obs))
    v["mi_method"] = list(dict.fromkeys(v["mi_method"]))
    try:
        v["attack_options"] = ATTACKS[v["attack"]].resolve_options(v["attack_options"])
    except SpecError as e:
        raise SpecError(f"{file}: {exp}: {e}") from None
    try:
        for m in v["mi_method"]:
            v["mi_options"] = validate_mi_options(m, dict(v["mi_options"]))
    except SpecError as e:
        raise SpecError(f"{file}: {exp}: {e}") from None


def load_spec_text(data: dict, file: str) -> list[RunSpec]:
    unknown = [k for k in data if k not in ("defaults", "experiment")]
    if unknown:
        raise SpecError(f"{file}: unknown top-level table {unknown[0]!r}; allowed: [defaults], [[experiment]]")
    experiments = data.get("experiment")
    if experiments is None:
        raise SpecError(f"{file}: no [[experiment]] table; add at least one")
    if isinstance(experiments, dict):
        experiments = [experiments]
    if not isinstance(experiments, list):
        raise SpecError(f"{file}: 'experiment' must be an array of tables ([[experiment]])")
    runs: list[RunSpec] = []
    for i, raw in enumerate(experiments):
        label = f"experiment[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']})"
        runs.extend(validate_experiment(raw, file=file, exp=label, defaults=data.get("defaults")))
    seen: dict[str, str] = {}
    for r in runs:
        if r.run_id in seen:
            raise SpecError(f"{file}: run {r.run_id!r} appears twice ({seen[r.run_id]} and {r.source}); "
                            "give the experiments different names or values")
        seen[r.run_id] = r.source
    return runs


def load_spec(path: Path) -> list[RunSpec]:
    """Every run of an experiments.toml, validated and expanded. Raises SpecError."""
    return load_spec_text(read_toml(path), str(path))


# --- spec.toml of a run: one resolved experiment ------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # TOML has no null: an option left unset (None) is omitted
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()
                                if x is not None) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def experiment_to_toml(values: dict, header: str = "[[experiment]]") -> str:
    lines = [header]
    for k, v in values.items():
        if v is None:
            continue
        lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def read_spec_file(path: Path) -> dict:
    """The resolved values of a run's spec.toml (options left unset are absent)."""
    data = read_toml(path)
    exp = data.get("experiment")
    if isinstance(exp, list):
        exp = exp[0] if exp else None
    if not isinstance(exp, dict):
        raise SpecError(f"{path}: no [experiment] table")
    return exp
