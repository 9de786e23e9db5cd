"""experiments.toml: schema, validation with locations, grid expansion.

A file has an optional `[defaults]` table and one or more `[[experiment]]` tables. Every field
of an experiment falls back to `[defaults]`, then to the defaults of the `Experiment` model
below (the one place each field's type, range, default and help live; `FIELDS`, the app's form
and docs/fields.md's table are derived from it). A scalar field given as a list expands as a
grid (attack x poison_rate x seed x ...); fields that are lists by nature (mi_epochs,
observe_classes, mi_method, tags) and tables do not. Each value is checked by the model where it
is written ([defaults] or the experiment); `_check_values` then makes the checks that need
several fields, the registries or the machine.

Run ids: `<name>-<attack>-<dataset>-<arch>-p<rate>-s<seed>`, followed, only where runs would
otherwise share that id (a swept `lr`, two experiments of one name that differ in `epochs`...),
by the fields that tell them apart: `-lr0.1` for numbers, `-device=cpu` / `-download=true` for
strings and booleans, `-attack_options.<hash>` for tables and lists. An id is one path component
of at most MAX_RUN_ID_BYTES bytes (longer ones end in a hash of the whole id).

A file may expand to at most `max_runs` runs (DEFAULT_MAX_RUNS, or $IBTUI_MAX_RUNS), counted
from the grid sizes before anything is expanded.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import AfterValidator, BeforeValidator, ConfigDict, PrivateAttr

from ibtui.errors import DataError, SpecError
from ibtui.files import NotRegularFile, TooBig, read_regular
from ibtui.schema import Int, Num, Schema, SchemaField, ValidationError, describe, problem

DEFAULT_MAX_RUNS = 10_000
MAX_RUNS_ENV = "IBTUI_MAX_RUNS"
MAX_SPEC_BYTES = 2**20  # 1 MiB: parsing costs about 1 s per MiB; real files are a few KiB
MAX_NAME_CHARS = 64
# a run directory is `<id>` or `<id>-N`, created through `.creating-<id>-N-<pid>`: all < 255 bytes
MAX_RUN_ID_BYTES = 200
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
NAME_RULE = (f"1-{MAX_NAME_CHARS} characters from A-Z a-z 0-9 . _ -, not starting with '.' or '-'")
DEVICE_RE = re.compile(r"auto|cpu|cuda(?::(\d{1,6}))?")

PAPER_MI_EPOCHS = [1, 5, 10, 20, 40, 60, 80, 100, 120]
POISON_RATE_ALLOWED = ("number in (0, 1); any number in [0, 1) is ignored for attack 'none', "
                       "which poisons nothing")


def _name_rule(name: str) -> str:
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{name[:MAX_NAME_CHARS]!r}... has {len(name)} characters; allowed: {NAME_RULE}")
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"{name!r} not allowed; allowed: {NAME_RULE}")
    return name


def _path_rule(path: str) -> str:
    if "\0" in path or not path.isprintable():
        raise ValueError(f"{path!r} not allowed; allowed: a directory path without control characters")
    return path


def _classes_rule(value: Any) -> Any:
    ok = value == "all" or (isinstance(value, list) and all(
        type(c) is int or (isinstance(c, float) and c.is_integer()) for c in value))
    if not ok:
        raise ValueError(f"expected \"all\" or a list of class numbers, got {value!r}")
    return value if value == "all" else [int(c) for c in value]


class Experiment(Schema):
    """One [[experiment]] table (or [defaults]): the one place each field's type, range,
    default and help live. A value given as a list is a grid of such values, except for the
    list fields (`LIST_FIELDS`), whose value is itself a list. Checks that need several fields,
    the registries or the machine are in `_check_values`."""

    name: Annotated[str, AfterValidator(_name_rule), SchemaField(
        description=f"experiment name, first part of the run id ({NAME_RULE})")] = "exp"
    dataset: Annotated[str, SchemaField(
        description="dataset: digits (embedded), cifar10, svhn (`ibtui data list`)")] = "digits"
    data_root: Annotated[str, AfterValidator(_path_rule), SchemaField(
        description="data directory (default: $IBTUI_DATA, else ./data)")] = ""
    download: Annotated[bool, SchemaField(description="download the dataset if missing")] = False
    arch: Annotated[str, SchemaField(description="network: resnet18 or vgg16")] = "resnet18"
    width: Annotated[Int, SchemaField(ge=1, le=1024,
                                      description="base channel width (64 = paper)")] = 64
    attack: Annotated[str, SchemaField(
        description="attack name (`ibtui attacks list`; \"none\" = a clean reference run)")] = "badnets"
    attack_options: Annotated[dict[str, Any], SchemaField(
        description="attack options table; `variant = \"...\"` picks a peer preset "
                    "(`ibtui attacks list`; docs/method.md §4)")] = {}
    poison_rate: Annotated[Num, SchemaField(
        ge=0, lt=1, allow_inf_nan=False,
        description="dirty-label: share of the training set; clean-label: share of the target "
                    "class; 0 only for attack \"none\", which ignores it (stored as 0)")] = 0.1
    target: Annotated[Int, SchemaField(description="target class (below the dataset's classes)")] = 0
    epochs: Annotated[Int, SchemaField(ge=1, le=100_000, description="training epochs")] = 120
    lr: Annotated[Num, SchemaField(gt=0, le=10, allow_inf_nan=False, description=(
        "SGD learning rate (paper 0.01, authors' code 0.1)"))] = 0.01
    momentum: Annotated[Num, SchemaField(ge=0, lt=1, allow_inf_nan=False,
                                         description="SGD momentum")] = 0.9
    weight_decay: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False,
                                             description="SGD weight decay")] = 5e-4
    batch_size: Annotated[Int, SchemaField(ge=1, le=1_000_000,
                                           description="training batch size")] = 256
    plateau_patience: Annotated[Int, SchemaField(ge=0, le=100_000, description=(
        "ReduceLROnPlateau patience (epochs, on test loss)"))] = 5
    plateau_factor: Annotated[Num, SchemaField(gt=0, lt=1, allow_inf_nan=False,
                                               description="ReduceLROnPlateau factor")] = 0.5
    noise_xt: Annotated[Num, SchemaField(ge=0, le=100, allow_inf_nan=False, description=(
        "Gaussian noise std inside the blocks (sigma_xt)"))] = 0.4
    noise_ty: Annotated[Num, SchemaField(ge=0, le=100, allow_inf_nan=False, description=(
        "Gaussian noise std before the classifier (sigma_ty)"))] = 0.4
    mi_epochs: Annotated[list[Int], SchemaField(description=(
        "epochs after which MI is estimated (1..epochs); default: the paper's "
        "1,5,10,20,40,60,80,100,120 scaled to `epochs`"))] = PAPER_MI_EPOCHS
    mi_method: Annotated[list[str], SchemaField(description=(
        "MI estimator(s): noise-aware, infonce-paper, infonce-separable, mine; several are "
        "recorded side by side (the first one scores)"))] = ["noise-aware"]
    mi_options: Annotated[dict[str, Any], SchemaField(
        description="estimator options table (docs/mi.md)")] = {}
    mi_equal_n: Annotated[bool, SchemaField(description=(
        "estimate every subset on the same number of images (the smallest subset's), so that "
        "log N ceilings agree"))] = True
    observe_classes: Annotated[Literal["all"] | list[int], BeforeValidator(_classes_rule),
                               SchemaField(description=(
        "clean classes whose MI is estimated: \"all\" or a list (not the target)"))] = "all"
    stealth_epochs: Annotated[Literal["all", "phases"], SchemaField(description=(
        "representative epochs of the stealth score: every MI checkpoint (\"all\") or one per "
        "training phase (\"phases\")"))] = "all"
    min_asr: Annotated[Num, SchemaField(ge=0, le=1, allow_inf_nan=False, description=(
        "a poisoned run is ranked only when its final ASR reaches this (README: Leaderboard); "
        "a lower value needs min_asr_reason"))] = 0.9
    min_asr_reason: Annotated[str, SchemaField(description=(
        "why this experiment's min_asr is below 0.9 (shown with the verdict)"))] = ""
    seed: Annotated[Int, SchemaField(ge=0, le=2**31 - 1, description="random seed")] = 0
    tags: Annotated[list[str], SchemaField(description=(
        "labels to filter runs by (`ibtui ls --tag`, `tag:` in the app); runs that differ only "
        "in tags get them in their id"))] = []
    device: Annotated[str, SchemaField(description=(
        "auto | cpu | cuda | cuda:N (auto = CUDA when present)"))] = "auto"
    threads: Annotated[Int, SchemaField(ge=0, le=1024, description=(
        "CPU threads of the worker (torch and OpenMP); 0 = the launcher's choice: the "
        "machine's cores shared among the jobs"))] = 0


# fields whose value is itself a list (never expanded as a grid), and tables (never either)
LIST_FIELDS = ("mi_epochs", "mi_method", "observe_classes", "tags")
TABLE_FIELDS = ("attack_options", "mi_options")


@dataclass(frozen=True)
class Field:
    """What callers (the app's form, help, docs) read about one field; derived from `Experiment`."""

    default: Any
    help: str
    allowed: str  # "integer in [1, 1024]", "'all' | 'phases'", ...
    listy: bool = False  # the value itself is a list (never expanded as a grid)
    table: bool = False  # the value is a table (never expanded either)


FIELDS: dict[str, Field] = {
    name: Field(default, help, allowed, name in LIST_FIELDS, name in TABLE_FIELDS)
    for name, allowed, default, help in describe(Experiment)
}


def fields_markdown() -> str:
    """The field table of docs/fields.md, from the schema (tests/test_spec.py keeps it equal)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| field | default | allowed | meaning |", "|---|---|---|---|"]
    for key, f in FIELDS.items():
        default = json.dumps(f.default).replace(" ", "") if f.default != [] else "[]"
        if key == "mi_epochs":
            default = "(scaled to epochs)"
        rows.append(f"| `{key}` | `{cell(default)}` | {cell(f.allowed)} | {cell(f.help)} |")
    return "\n".join(rows) + "\n"


def _registries() -> dict[str, list[str]]:
    from ibtui.data.attacks import ATTACKS
    from ibtui.data.datasets import DATASETS
    from ibtui.mi import METHODS
    from ibtui.models import ARCHS

    return {"dataset": sorted(DATASETS), "arch": sorted(ARCHS), "attack": sorted(ATTACKS),
            "mi_method": list(METHODS)}


ID_BASE_KEYS = ("name", "attack", "dataset", "arch", "poison_rate", "seed")
# fields that can tell runs with one base id apart: scalars first (readable), then the rest
ID_SCALAR_KEYS = tuple(k for k, f in FIELDS.items()
                       if k not in ID_BASE_KEYS and not f.listy and not f.table)
ID_OTHER_KEYS = tuple(k for k in FIELDS if k not in ID_BASE_KEYS and k not in ID_SCALAR_KEYS)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _num(x: int | float) -> str:
    """A number as short as `:g` where that is exact, else repr (distinct numbers, distinct text)."""
    if isinstance(x, int):
        return str(x)
    text = f"{x:g}"
    return text if float(text) == x else repr(float(x))


def id_part(key: str, value: Any) -> str:
    """How one field shows in a run id: `lr0.1`, `device=cpu`, `attack_options.1a2b3c4d`."""
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{key}{_num(value)}"
    if isinstance(value, str):
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", value)[:24]
        return f"{key}={safe}" + ("" if safe == value else f".{_short_hash(value)}")
    return f"{key}.{_short_hash(json.dumps(value, sort_keys=True, default=repr))}"


class RunSpec(Experiment):
    """One fully resolved run (one point of a grid): the experiment's fields as typed attributes
    (`spec.epochs`), `values` the same as a dict (what spec.toml holds), `source` the file and
    experiment it came from, `id_keys` the fields shown after the base id (assign_run_ids).
    Built by `RunSpec.resolved` from values that validate_experiment has checked."""

    model_config = ConfigDict(frozen=True)
    _source: str = PrivateAttr("")
    _id_keys: tuple[str, ...] = PrivateAttr(())

    @classmethod
    def resolved(cls, values: dict[str, Any], source: str = "") -> RunSpec:
        spec = cls.model_construct(**values)
        spec._source = source
        return spec

    @property
    def values(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in FIELDS}

    @property
    def source(self) -> str:
        """"file:experiment[i]" for messages."""
        return self._source

    @property
    def id_keys(self) -> tuple[str, ...]:
        return self._id_keys

    @property
    def base_id(self) -> str:
        return (f"{self.name}-{self.attack}-{self.dataset}-{self.arch}-p{_num(self.poison_rate)}"
                f"-s{self.seed}")

    @property
    def run_id(self) -> str:
        rid = "-".join([self.base_id, *(id_part(k, getattr(self, k)) for k in self.id_keys)])
        if len(rid.encode("utf-8", "surrogatepass")) > MAX_RUN_ID_BYTES:
            rid = rid.encode("utf-8", "surrogatepass")[:MAX_RUN_ID_BYTES - 9].decode(
                "utf-8", "ignore") + "-" + _short_hash(rid)
        return rid


def assign_run_ids(runs: list[RunSpec]) -> None:
    """Give runs that share a base id the fields that differ among them (scalars first, tables
    and lists only where scalars do not tell them apart). Runs alone keep the base id; runs
    identical in every field keep one id (reported as a duplicate by load_spec_text)."""
    def differing(group: list[RunSpec], keys: tuple[str, ...]) -> list[str]:
        return [k for k in keys if len({id_part(k, getattr(r, k)) for r in group}) > 1]

    groups: dict[str, list[RunSpec]] = {}
    for r in runs:
        r._id_keys = ()
        groups.setdefault(r.base_id, []).append(r)
    for group in groups.values():
        if len(group) < 2:
            continue
        scalar = differing(group, ID_SCALAR_KEYS)
        for r in group:
            r._id_keys = tuple(scalar)
        same: dict[str, list[RunSpec]] = {}
        for r in group:
            same.setdefault(r.run_id, []).append(r)
        for sub in same.values():
            if len(sub) > 1:
                keys = set(scalar) | set(differing(sub, ID_OTHER_KEYS))
                for r in sub:
                    r._id_keys = tuple(k for k in FIELDS if k in keys)


def check_run_id(run_id: str) -> str | None:
    """Why `run_id` cannot be a run directory name, or None."""
    if not run_id or run_id in (".", "..") or run_id[0] in ".-":
        return "must not be empty or start with '.' or '-'"
    if "/" in run_id or "\\" in run_id or not run_id.isprintable():
        return "must be one path component without control characters"
    if len(run_id.encode("utf-8", "surrogatepass")) > MAX_RUN_ID_BYTES:
        return f"longer than {MAX_RUN_ID_BYTES} bytes"
    return None


def max_runs_limit(max_runs: int | None = None) -> int:
    """The cap on runs per file: `max_runs` if given, else $IBTUI_MAX_RUNS, else DEFAULT_MAX_RUNS."""
    if max_runs is not None:
        return int(max_runs)
    env = os.environ.get(MAX_RUNS_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_RUNS
    try:
        value = int(env.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise SpecError(f"{MAX_RUNS_ENV}={env!r}: not allowed; allowed: a positive integer "
                        f"(the most runs one file may expand to; default {DEFAULT_MAX_RUNS:,})")
    return value


def _grid(raw: Any, defaults: Any) -> tuple[int, list[tuple[str, int]]]:
    """Runs an experiment table expands to and the swept fields with their sizes (no checks)."""
    merged: dict[str, Any] = {}
    for layer in (defaults, raw):
        if isinstance(layer, dict):
            merged.update({k: v for k, v in layer.items() if k in FIELDS and not FIELDS[k].listy})
    sizes = [(k, len(v)) for k, v in merged.items() if isinstance(v, list) and not FIELDS[k].table]
    return math.prod(n for _, n in sizes), sizes


def _too_many(file: str, where: str, n: int, sizes: list[tuple[str, int]], cap: int) -> SpecError:
    grid = " x ".join(f"{k} {m:,}" for k, m in sizes if m > 1) or "one run each"
    return SpecError(f"{file}: {where}: expands to {n:,} runs ({grid}); allowed: at most {cap:,} "
                     f"runs per file (raise the cap with ${MAX_RUNS_ENV})")


def _where(file: str, exp: str, key: str) -> str:
    return f"{file}: {exp}: field '{key}'"


def _check_field(key: str, value: Any, where: str) -> Any:
    """One value of one field (one point of a grid, or a list field's whole list), checked and
    normalised by the schema (`width = 64.0` is 64)."""
    try:
        return getattr(Experiment.model_validate({key: value}), key)
    except ValidationError as e:
        _, text = problem(e, Experiment)
        if key == "poison_rate":  # the schema's [0, 1) holds 0 for attack "none" only
            text = text.replace("allowed: number in [0, 1)", f"allowed: {POISON_RATE_ALLOWED}")
        if text.startswith("expected ") and key not in LIST_FIELDS and key not in TABLE_FIELDS:
            text = text.replace(", got ", " or a list of them, got ", 1)
        raise SpecError(f"{where}: {text}") from None


def field_problem(key: str | None, value: Any) -> str | None:
    """What the schema refuses in one stored value of field `key` (a run's spec.toml, resolved:
    a grid field holds one value), or None; `key` None: `value` is a table of fields."""
    try:
        Experiment.model_validate(value if key is None else {key: value})
    except ValidationError as e:
        return problem(e, Experiment)[1]
    return None


def _layer_value(key: str, value: Any, where: str) -> Any:
    """A field as one layer ([defaults] or an experiment) gives it: a list field's list, a
    table, or a scalar or a grid (list) of scalars, each checked by the schema."""
    f = FIELDS[key]
    if isinstance(value, list) and not value and key != "tags":  # no tags: fine
        raise SpecError(f"{where}: empty list; allowed: " + (
            f"{f.allowed}, not empty" if f.listy else f.allowed if f.table
            else f"{f.allowed} or a non-empty list of them"))
    if f.listy and not isinstance(value, list) and not (key == "observe_classes" and isinstance(value, str)):
        value = [value]
    if isinstance(value, list) and not (f.listy or f.table):
        return [_check_field(key, x, where) for x in value]
    return _check_field(key, value, where)


def read_toml(path: Path, follow: bool = True) -> dict:
    """A TOML file as a dict (SpecError naming the file otherwise): a regular file of at most
    MAX_SPEC_BYTES (a FIFO or a device is refused, never read); `follow` False: a symbolic
    link is refused too (a run's spec.toml)."""
    path = Path(path)
    try:
        data = read_regular(path, limit=MAX_SPEC_BYTES, follow=follow)
        if len(data) > MAX_SPEC_BYTES:
            raise TooBig(len(data), str(path))
        text = data.decode("utf-8-sig")  # a leading UTF-8 BOM is dropped
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except TooBig as e:
        raise SpecError(f"{path}: {e.size:,} bytes; allowed: at most {MAX_SPEC_BYTES:,} bytes "
                        "for an experiments file (sweep with short lists)") from None
    except NotRegularFile as e:
        raise SpecError(f"{path}: {e.strerror}; allowed: a regular TOML file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SpecError(f"{path}: cannot read: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML: {e}") from None
    except RecursionError:
        raise SpecError(f"{path}: malformed TOML: nested too deeply; allowed: tables and arrays "
                        "a few levels deep") from None


def validate_experiment(raw: dict, *, file: str, exp: str, defaults: dict | None = None,
                        max_runs: int | None = None, _memo: dict | None = None) -> list[RunSpec]:
    """Check each field against the schema, merge, expand the grid and make the cross-field
    checks of one experiment table.

    Raises SpecError (one line: file, experiment, field, what is allowed), also when the table
    expands to more than `max_runs` runs (default: $IBTUI_MAX_RUNS or DEFAULT_MAX_RUNS)."""
    cap = max_runs_limit(max_runs)
    n, sizes = _grid(raw, defaults)
    if n > cap:
        raise _too_many(file, exp, n, sizes, cap)
    memo = {} if _memo is None else _memo
    merged: dict[str, Any] = {k: f.default for k, f in FIELDS.items()}
    explicit_mi_epochs = False
    for layer_name, layer in (("defaults", defaults or {}), (exp, raw)):
        if not isinstance(layer, dict):
            raise SpecError(f"{file}: {layer_name}: must be a table, got {type(layer).__name__}")
        for key, value in layer.items():
            where = _where(file, layer_name, key)
            if key not in FIELDS:
                raise SpecError(f"{where}: unknown field; allowed: {', '.join(FIELDS)}")
            merged[key] = _layer_value(key, value, where)
            explicit_mi_epochs = explicit_mi_epochs or key == "mi_epochs"

    grid_keys = [k for k, v in merged.items() if isinstance(v, list) and not FIELDS[k].listy]
    combos = itertools.product(*[merged[k] for k in grid_keys]) if grid_keys else [()]
    regs = _registries()
    out: list[RunSpec] = []
    clean: set[str] = set()
    for combo in combos:
        v = dict(merged)
        v.update(zip(grid_keys, combo, strict=True))
        if not explicit_mi_epochs:
            # the paper's checkpoints, scaled to the run's length
            v["mi_epochs"] = sorted({max(1, min(v["epochs"], round(e * v["epochs"] / 120)))
                                     for e in PAPER_MI_EPOCHS})
        _check_values(v, file=file, exp=exp, regs=regs, memo=memo)
        if v["attack"] == "none":  # it ignores poison_rate: one clean run per other combination
            key = json.dumps(v, sort_keys=True, default=repr)
            if key in clean:
                continue
            clean.add(key)
        out.append(RunSpec.resolved(v, source=f"{file}:{exp}"))
    assign_run_ids(out)
    for r in out:
        why = check_run_id(r.run_id)
        if why:
            raise SpecError(f"{file}: {exp}: run id {r.run_id!r} {why}; allowed: a name of {NAME_RULE}")
    return out


def gpu_count() -> int:
    """CUDA devices torch sees here (0 without CUDA)."""
    import torch

    try:
        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - a broken driver means no usable GPU
        return 0


def _device_error(device: str) -> str | None:
    m = DEVICE_RE.fullmatch(device)
    if not m:
        return f"{device!r} not allowed; allowed: auto, cpu, cuda, cuda:N"
    if device.startswith("cuda"):
        n = gpu_count()
        if n == 0:
            return f"{device!r} but CUDA is not available here; allowed here: auto, cpu"
        if m.group(1) is not None and int(m.group(1)) >= n:
            return (f"{device!r} but this machine has {n} GPU{'s' if n > 1 else ''}; allowed: auto, cpu, "
                    f"cuda, {', '.join(f'cuda:{i}' for i in range(n))}")
    return None


def poisoned_count(dataset: str, rate: float, target: int, label_mode: str,
                   rule: str = "authors", seed: int = 0) -> int:
    """Training images the index rule of ibtui.data.poison selects for `rate` on `dataset`,
    from the registered per-class training counts (no data is loaded); -1 if unknown."""
    import inspect

    import numpy as np

    from ibtui.data.datasets import DATASETS
    from ibtui.data.poison import select_poison_indices

    info = DATASETS[dataset]
    counts = info.train_class_counts
    if not counts:
        return -1
    y = np.repeat(np.arange(len(counts)), counts)
    kw = {"rule": rule, "seed": seed} if "rule" in inspect.signature(select_poison_indices).parameters else {}
    return len(select_poison_indices(y, rate, target, label_mode, info.num_classes, **kw))


def poisoning_problem(v: dict, attack_cls, num_classes: int) -> str | None:
    """Why a resolved spec's poisoning leaves nothing to measure, or None: the attack selects
    all of the training set (its label-keeping samples on top of the payload), no selected
    image carries the backdoor, a class keeps no image of its own, or the target class keeps
    no clean image (its clean subset would be empty)."""
    import numpy as np

    from ibtui.data.datasets import DATASETS
    from ibtui.data.poison import select_poison_indices

    attack = attack_cls(v["attack_options"], target=v["target"], seed=v["seed"],
                        num_classes=num_classes)
    rate = v["poison_rate"]
    sel = attack.selection_rate(rate)
    if sel >= 1:
        return (f"poison_rate {rate:g} with these attack options selects {sel:.0%} of the "
                "training set; allowed: together below 100% (lower poison_rate or the "
                "label-keeping share, e.g. cross_ratio, cover_rate)")
    counts = DATASETS[v["dataset"]].train_class_counts
    if not counts:
        return None
    y = np.repeat(np.arange(len(counts)), counts)
    idx = select_poison_indices(y, sel, v["target"], attack.label_mode, num_classes,
                                rule=v["attack_options"].get("index", "authors"), seed=v["seed"])
    if len(idx) and attack.payload_count(len(idx)) == 0:
        return ("no selected image carries the backdoor (every one keeps its label as a cover "
                "or noise sample); allowed: a label-keeping share below 1 (conservatism, "
                "cover_rate, cross_ratio)")
    left = np.bincount(np.delete(y, idx), minlength=len(counts))
    empty = [c for c in range(len(counts)) if left[c] == 0]
    if empty:
        what = ("the target class keeps no clean image" if empty == [v["target"]]
                else f"class {empty[0]} keeps no image of its own")
        return (f"poison_rate {rate:g} poisons {len(idx):,} of {len(y):,} training images: "
                f"{what}, so its subset cannot be measured; allowed: a lower poison_rate")
    if v["attack_options"].get("balance"):
        rule = v["attack_options"].get("index", "authors")

        def short(r: float) -> tuple[int, int]:
            """(images given the target label, untriggered target images to drop them from)."""
            chosen = select_poison_indices(y, attack.selection_rate(r), v["target"],
                                           attack.label_mode, num_classes, rule=rule, seed=v["seed"])
            pool = int(np.sum(y == v["target"])) - int(np.sum(y[chosen] == v["target"]))
            return attack.payload_count(len(chosen)), pool

        def can_balance(r: float) -> bool:
            given, droppable = short(r)
            return given <= droppable

        need, pool = short(rate)
        if need > pool:  # data/poison.py balance_drop would refuse the run at its start
            top = _edge_rate(can_balance, false_at=rate, true_at=0.0, steps=30)
            return (f"{rate:g} with attack_options.balance = true: {v['attack']} gives {need:,} "
                    f"images the target label {v['target']}, but the target class keeps only "
                    f"{pool:,} untriggered images to drop to balance them; allowed: poison_rate "
                    f"<= {top:g} for balance on {v['dataset']}, or balance = false")
    return None


def _edge_rate(holds: Callable[[float], bool], *, false_at: float, true_at: float,
               steps: int = 64) -> float:
    """Where `holds` turns from false to true between two rates (it turns once), as the
    3-significant-digit rate nearest to the edge on the side where it holds."""
    f, t = false_at, true_at
    for _ in range(steps):
        mid = (f + t) / 2
        f, t = (f, mid) if holds(mid) else (mid, t)
    rate, up = float(f"{t:.3g}"), true_at > false_at
    while rate > 0 and not holds(rate):
        step = 10 ** (math.floor(math.log10(rate)) - 2)
        rate = float(f"{rate + step if up else rate - step:.3g}")
    return rate


def min_poison_rate(dataset: str, target: int, label_mode: str, rule: str = "authors") -> float:
    """The smallest rate, rounded up to 3 significant digits, that poisons at least one image."""
    # none at 0, some at 1; the count never falls as the rate grows
    return _edge_rate(lambda r: poisoned_count(dataset, r, target, label_mode, rule) > 0,
                      false_at=0.0, true_at=1.0)


def _check_values(v: dict, *, file: str, exp: str, regs: dict[str, list[str]], memo: dict) -> None:
    """The checks one field's schema cannot make: names in the registries, the machine
    (device, dataset files), the attack's options, and fields that depend on each other
    (target < classes, a rate that poisons something, mi_epochs within epochs, observe_classes,
    min_asr_reason, noise for the noise-aware estimator). Normalises `v` in place."""
    from ibtui.data.datasets import DATASETS

    def err(key: str, msg: str) -> SpecError:
        return SpecError(f"{_where(file, exp, key)}: {msg}")

    for key, allowed in regs.items():
        for x in v[key] if isinstance(v[key], list) else [v[key]]:
            if x not in allowed:
                raise err(key, f"unknown {key} {x!r}; allowed: {', '.join(allowed)}")
    _check_machine(v, err, memo)
    ncls = DATASETS[v["dataset"]].num_classes
    if not 0 <= v["target"] < ncls:
        raise err("target", f"{v['target']} out of range; allowed: 0..{ncls - 1} ({v['dataset']} has {ncls} classes)")
    v["mi_method"] = list(dict.fromkeys(v["mi_method"]))
    _check_poisoning(v, err, memo, file=file, exp=exp)
    _check_measurement(v, err, ncls, file=file, exp=exp)


def _check_machine(v: dict, err: Callable[[str, str], SpecError], memo: dict) -> None:
    """The device exists here and the dataset's files are there (or may be downloaded)."""
    from ibtui.data.datasets import DATASETS

    key = ("device", v["device"])
    if key not in memo:
        memo[key] = _device_error(v["device"])
    if memo[key]:
        raise err("device", memo[key])
    key = ("files", v["dataset"], v["data_root"], v["download"])
    if key not in memo:
        try:
            DATASETS[v["dataset"]].check_files(v["data_root"] or None, v["download"])
            memo[key] = None
        except DataError as e:
            memo[key] = str(e)
        except (OSError, RuntimeError, ValueError) as e:  # a name too long, ~unknown-user, EACCES
            memo[key] = (f"cannot look for its files under data_root {v['data_root']!r} "
                         f"({getattr(e, 'strerror', None) or e}); allowed: a readable directory "
                         "(data_root, else $IBTUI_DATA, else ./data)")
    if memo[key]:
        raise err("dataset", f"{v['dataset']!r}: {memo[key]}")


def _check_poisoning(v: dict, err: Callable[[str, str], SpecError], memo: dict, *,
                     file: str, exp: str) -> None:
    """The attack's options (its schema), and a poison rate that poisons something measurable;
    attack "none" ignores the rate (stored as 0)."""
    from ibtui.data.attacks import ATTACKS
    from ibtui.data.datasets import DATASETS

    try:
        v["attack_options"] = ATTACKS[v["attack"]].resolve_options(v["attack_options"])
    except SpecError as e:
        raise SpecError(f"{file}: {exp}: {e}") from None
    if v["attack"] == "none":
        v["poison_rate"] = 0.0
        return
    if v["poison_rate"] == 0:
        raise err("poison_rate", f"{v['poison_rate']!r} out of range; allowed: {POISON_RATE_ALLOWED}")
    mode = ATTACKS[v["attack"]].label_mode
    rule = v["attack_options"].get("index", "authors")
    key = ("rate", v["dataset"], v["poison_rate"], v["target"], mode, rule)
    if key not in memo:
        memo[key] = poisoned_count(v["dataset"], v["poison_rate"], v["target"], mode, rule, v["seed"])
    if memo[key] == 0:
        info = DATASETS[v["dataset"]]
        if mode == "clean":
            pool = (f"clean-label: a share of the {info.train_class_counts[v['target']]:,} training "
                    f"images of target class {v['target']}")
        else:
            pool = f"{info.train_size:,} training images, {info.num_classes} classes"
        rmin = min_poison_rate(v["dataset"], v["target"], mode, rule)
        raise err("poison_rate", f"{v['poison_rate']!r} poisons no image of {v['dataset']} ({pool}; index "
                                 f"rule {rule!r}); allowed: poison_rate >= {rmin:g} for {v['attack']} "
                                 f"on {v['dataset']}")
    key = ("poisoning", v["dataset"], v["poison_rate"], v["target"], v["seed"], v["attack"],
           json.dumps(v["attack_options"], sort_keys=True, default=str))
    if key not in memo:
        memo[key] = poisoning_problem(v, ATTACKS[v["attack"]], DATASETS[v["dataset"]].num_classes)
    if memo[key]:
        raise err("poison_rate", memo[key])


def _check_measurement(v: dict, err: Callable[[str, str], SpecError], ncls: int, *,
                       file: str, exp: str) -> None:
    """min_asr_reason, noise for the noise-aware estimator, mi_epochs within the run,
    observe_classes among the clean classes, and the estimators' options."""
    from ibtui.mi import validate_mi_options

    if v["min_asr"] < FIELDS["min_asr"].default and not v["min_asr_reason"].strip():
        raise err("min_asr_reason", f"empty while min_asr = {v['min_asr']:g}; allowed: a short "
                                    "reason for the threshold (e.g. \"clean-label LC on an "
                                    "8-wide net reaches 0.6\"), or min_asr = 0.9")
    if "noise-aware" in v["mi_method"] and v["noise_xt"] == 0 and v["noise_ty"] == 0:
        raise err("noise_xt", "0 with noise_ty = 0: the noise-aware estimator models the "
                              "network's own noise and has none to model; allowed: noise_xt > 0 "
                              "or noise_ty > 0, or a trained estimator (mi_method = \"mine\", "
                              "\"infonce-paper\", \"infonce-separable\")")
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
    try:
        for m in v["mi_method"]:
            v["mi_options"] = validate_mi_options(m, dict(v["mi_options"]))
    except SpecError as e:
        raise SpecError(f"{file}: {exp}: {e}") from None


def load_spec_text(data: dict, file: str, *, max_runs: int | None = None) -> list[RunSpec]:
    """Every run of a parsed experiments file. Raises SpecError, also when the file expands to
    more than `max_runs` runs (default: $IBTUI_MAX_RUNS, else DEFAULT_MAX_RUNS), which is
    counted from the grid sizes before anything is expanded."""
    unknown = [k for k in data if k not in ("defaults", "experiment", "executor")]
    if unknown:
        raise SpecError(f"{file}: unknown top-level table {unknown[0]!r}; "
                        "allowed: [defaults], [[experiment]], [executor]")
    experiments = data.get("experiment")
    if experiments is None:
        raise SpecError(f"{file}: no [[experiment]] table; add at least one")
    if isinstance(experiments, dict):
        experiments = [experiments]
    if not isinstance(experiments, list):
        raise SpecError(f"{file}: 'experiment' must be an array of tables ([[experiment]])")
    if not experiments:
        raise SpecError(f"{file}: 'experiment' is empty; add at least one [[experiment]] table")
    labels = []
    for i, raw in enumerate(experiments):
        label = f"experiment[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name'][:MAX_NAME_CHARS]})"
        labels.append(label)
    cap = max_runs_limit(max_runs)
    grids = [_grid(raw, data.get("defaults")) for raw in experiments]
    total = sum(n for n, _ in grids)
    if total > cap:
        big = max(range(len(grids)), key=lambda i: grids[i][0])
        if grids[big][0] > cap:
            raise _too_many(file, labels[big], grids[big][0], grids[big][1], cap)
        raise SpecError(f"{file}: expands to {total:,} runs ({len(grids)} experiments, the largest "
                        f"{labels[big]} with {grids[big][0]:,}); allowed: at most {cap:,} runs per file "
                        f"(raise the cap with ${MAX_RUNS_ENV})")
    runs: list[RunSpec] = []
    memo: dict = {}
    for raw, label in zip(experiments, labels, strict=True):
        runs.extend(validate_experiment(raw, file=file, exp=label, defaults=data.get("defaults"),
                                        max_runs=cap, _memo=memo))
    assign_run_ids(runs)  # experiments that share a name are told apart by what differs
    seen: dict[str, str] = {}
    for r in runs:
        if r.run_id in seen:
            raise SpecError(f"{file}: run {r.run_id!r} appears twice ({seen[r.run_id]} and {r.source}) "
                            "with the same values; give the experiments different names or values")
        seen[r.run_id] = r.source
    for r in runs:
        why = check_run_id(r.run_id)
        if why:
            raise SpecError(f"{file}: run id {r.run_id!r} {why}; allowed: names of {NAME_RULE}")
    return runs


def load_spec(path: Path, *, max_runs: int | None = None) -> list[RunSpec]:
    """Every run of an experiments.toml, validated and expanded. Raises SpecError.

    `max_runs` caps the runs the file may expand to (default: $IBTUI_MAX_RUNS, else
    DEFAULT_MAX_RUNS = 10,000)."""
    return load_spec_text(read_toml(path), str(path), max_runs=max_runs)


# --- spec.toml of a run: one resolved experiment ------------------------------------------

def _drop_none(v: Any) -> Any:
    """TOML has no null: an option left unset (None) is omitted."""
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_drop_none(x) for x in v]
    return v


def experiment_to_toml(values: dict, header: str = "[[experiment]]") -> str:
    """`values` as one TOML table (`[name]`) or array-of-tables entry (`[[name]]`), written by
    tomli-w: any string (newlines, control characters) and any key round-trip through tomllib."""
    m = re.fullmatch(r"(\[\[?)([A-Za-z0-9_-]+)(\]\]?)", header)
    if not m or len(m.group(1)) != len(m.group(3)):
        raise ValueError(f"header must be [name] or [[name]], got {header!r}")
    body = _drop_none(values)
    return tomli_w.dumps({m.group(2): [body] if m.group(1) == "[[" else body})


def check_stored_spec(path: Path) -> None:
    """A run's spec.toml validated again, as experiments.toml is (a hand edit since the run
    was created is caught before the run is queued again); SpecError names the file."""
    values = read_spec_file(path)
    load_spec_text({"experiment": [values]}, str(path))


def read_spec_file(path: Path) -> dict:
    """The resolved values of a run's spec.toml (options left unset are absent)."""
    data = read_toml(path, follow=False)
    exp = data.get("experiment")
    if isinstance(exp, list):
        exp = exp[0] if exp else None
    if not isinstance(exp, dict):
        raise SpecError(f"{path}: no [experiment] table")
    return exp
