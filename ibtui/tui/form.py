"""The compose form's data side: field texts -> an experiment table, validation, saving.

Texts are read the way experiments.toml reads values (`0.1`, `0.05, 0.1`, `[1, 5]`,
`size = 3, colour = "red"`), then `ibtui.spec.validate_experiment` applies the very rules and
messages of experiments.toml: nothing is re-checked here. Saving appends the table to a file,
re-loads the whole file with `load_spec` and only then replaces it atomically.
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibtui.errors import SpecError
from ibtui.runs.store import atomic_write_text
from ibtui.spec import FIELDS, RunSpec, experiment_to_toml, load_spec_text, validate_experiment

SOURCE_FILE = "compose"
SOURCE_EXP = "experiment"


@dataclass(frozen=True)
class FormField:
    key: str
    label: str
    kind: str  # text | value | table | classes | select | multi
    help: str = ""
    advanced: bool = False


FORM: list[FormField] = [
    FormField("name", "name", "text", "first part of every run id"),
    FormField("dataset", "dataset", "select"),
    FormField("arch", "arch", "select"),
    FormField("width", "width", "value", "base channels (64 = paper); a list makes a grid"),
    FormField("attack", "attack(s)", "multi", "space toggles; several make a grid"),
    FormField("attack_options", "attack options", "table", 'e.g. size = 3, colour = "blue"'),
    FormField("poison_rate", "poison rate(s)", "value", "e.g. 0.05, 0.1"),
    FormField("target", "target class", "value"),
    FormField("noise_xt", "noise σ_xt", "value", "noise std inside the blocks"),
    FormField("noise_ty", "noise σ_ty", "value", "noise std before the classifier"),
    FormField("epochs", "epochs", "value"),
    FormField("mi_epochs", "MI checkpoints", "value", "blank = the paper's, scaled to epochs"),
    FormField("mi_method", "MI method(s)", "multi", "several are recorded side by side"),
    FormField("mi_options", "MI options", "table", "e.g. k = 2, max_samples = 64"),
    FormField("seed", "seed(s)", "value", "e.g. 0, 1, 2 or 0-2"),
    FormField("observe_classes", "clean classes", "classes", "all, or e.g. 1, 2, 3"),
    FormField("lr", "learning rate", "value", advanced=True),
    FormField("batch_size", "batch size", "value", advanced=True),
    FormField("weight_decay", "weight decay", "value", advanced=True),
    FormField("plateau_patience", "plateau patience", "value", advanced=True),
    FormField("stealth_epochs", "stealth epochs", "text", "all | phases", advanced=True),
    FormField("device", "device", "text", "auto | cpu | cuda | cuda:N", advanced=True),
]
FORM_KEYS = {f.key: f for f in FORM}
ALWAYS = ("name", "dataset", "arch", "width", "attack", "poison_rate", "epochs", "seed")


def _umask() -> int:
    """The process umask (read from /proc without changing it where possible)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old

def default_text(key: str) -> str:
    """What a field shows before the user types: the built-in default, as TOML would write it."""
    d = FIELDS[key].default
    if key == "mi_epochs":
        return ""
    if isinstance(d, dict):
        return ""
    if isinstance(d, list):
        return ", ".join(str(x) for x in d)
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, float):
        return repr(d)
    return str(d)


def _toml(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


def parse_value(text: str) -> Any:
    """`0.1` -> 0.1, `0.05, 0.1` -> [0.05, 0.1], `0-3` -> [0, 1, 2, 3], `abc` -> "abc".

    Values that are not TOML stay strings, so validation reports them with the same message
    as a wrong value in experiments.toml."""
    text = text.strip()
    m = re.fullmatch(r"(\d+)\s*(?:-|\.\.)\s*(\d+)", text)
    if m and int(m.group(1)) <= int(m.group(2)):
        return list(range(int(m.group(1)), int(m.group(2)) + 1))
    for candidate in (text, f"[{text}]"):
        try:
            v = _toml(candidate)
        except tomllib.TOMLDecodeError:
            continue
        if isinstance(v, list) and len(v) == 1:
            return v[0]
        return v
    items = []
    for part in (p.strip() for p in text.split(",")):
        try:
            items.append(_toml(part))
        except tomllib.TOMLDecodeError:
            items.append(part)
    return items[0] if len(items) == 1 else items


def parse_table(key: str, text: str) -> dict:
    text = text.strip()
    if not text:
        return {}
    body = text[1:-1] if text.startswith("{") and text.endswith("}") else text
    try:
        return tomllib.loads(f"v = {{ {body} }}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{SOURCE_FILE}: {SOURCE_EXP}: field '{key}': not a TOML table "
                        f"(write key = value, key = \"text\"): {e}") from None


def build_raw(texts: dict[str, str], choices: dict[str, list[str]]) -> dict:
    """The experiment table the form describes: only the fields that matter (see ALWAYS) and
    those the user changed from their defaults. `choices` holds multi-select values."""
    raw: dict[str, Any] = {}
    for f in FORM:
        if f.kind == "multi":
            picked = choices.get(f.key) or []
            default = FIELDS[f.key].default
            default = default if isinstance(default, list) else [default]
            if f.key in ALWAYS or picked != default:
                if f.key == "mi_method":
                    raw[f.key] = picked
                else:
                    raw[f.key] = picked[0] if len(picked) == 1 else picked
            continue
        text = (texts.get(f.key) or "").strip()
        if f.key not in ALWAYS and text == default_text(f.key):
            continue
        if not text:
            continue
        if f.kind == "table":
            raw[f.key] = parse_table(f.key, text)
        elif f.kind == "text" or f.kind == "select":
            raw[f.key] = text
        elif f.kind == "classes":
            v = "all" if text == "all" else parse_value(text)
            raw[f.key] = v if isinstance(v, (list, str)) else [v]
        else:
            v = parse_value(text)
            if FIELDS[f.key].listy and not isinstance(v, list):
                v = [v]
            raw[f.key] = v
    return raw


def validate(raw: dict) -> list[RunSpec]:
    """The runs the experiment expands to; raises SpecError exactly as experiments.toml would."""
    return validate_experiment(raw, file=SOURCE_FILE, exp=SOURCE_EXP)


GRID_AXES = (("attack", "attacks"), ("dataset", "datasets"),
             ("arch", "archs"), ("width", "widths"),
             ("poison_rate", "rates"), ("target", "targets"),
             ("noise_xt", "σ_xt values"), ("noise_ty", "σ_ty values"),
             ("epochs", "epoch counts"), ("lr", "lrs"),
             ("batch_size", "batch sizes"), ("seed", "seeds"))


def breakdown(specs: list[RunSpec]) -> str:
    """`3 attacks × 2 rates × 3 seeds = 18 runs · 180 epochs to train`."""
    n = len(specs)
    runs = f"{n} run{'s' * (n != 1)}"
    if not n:
        return runs
    parts, product = [], 1
    for key, many in GRID_AXES:
        values = {repr(s.values.get(key)) for s in specs}
        if len(values) > 1:
            parts.append(f"{len(values)} {many}")
            product *= len(values)
    text = f"{' × '.join(parts)} = {runs}" if parts and product == n else runs
    epochs = sum(s.values.get("epochs") or 0 for s in specs
                 if isinstance(s.values.get("epochs"), int))
    if epochs:
        text += f" · {epochs} epoch{'s' * (epochs != 1)} to train"
    return text


def missing_data(dataset: str, root: str | None = None) -> str:
    """Why `dataset` cannot load from the data root without a download ("" when it can, or
    when it needs no files). Reads only file names: never loads the data."""
    try:
        from ibtui.data import torchvision_sets as tv
        from ibtui.data.datasets import DATASETS, data_root
    except Exception:  # noqa: BLE001 - a half-written data package must not break the form
        return ""
    info = DATASETS.get(dataset)
    if info is None or not info.needs_files:
        return ""
    root = data_root(root or None)
    wanted = {
        "cifar10": [root / getattr(tv, "_CIFAR_DIR", "cifar-10-batches-py") / f
                    for f in getattr(tv, "_CIFAR_FILES", ["data_batch_1"])],
        "svhn": [root / f for f in getattr(tv, "_SVHN_FILES", {}).values()],
    }.get(dataset)
    if not wanted:
        return ""
    missing = [p for p in wanted if not p.is_file()]
    if not missing:
        return ""
    return (f"{dataset} data not found under {root.absolute()} "
            f"(missing {missing[0].relative_to(root)}{' …' if len(missing) > 1 else ''}): "
            f"the runs would fail. Fetch it with `ibtui data fetch {dataset}`.")


def save_experiment(raw: dict, path: Path, when: float | None = None) -> list[RunSpec]:
    """Append `raw` as an [[experiment]] to `path` (created if missing), prove the whole file
    loads, then replace it atomically. Returns every run of the saved file."""
    path = Path(path)
    validate(raw)  # the form's own errors first, with the form's locations
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = ""
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read: {e}") from None
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when if when is not None else
                                                           time.time()))
    block = f"# composed in ibtui on {stamp}\n" + experiment_to_toml(raw)
    text = (old.rstrip() + "\n\n" if old.strip() else "") + block
    # the whole new file must load (with its [defaults]) before it replaces the old one
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML: {e}") from None
    runs = load_spec_text(data, str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # an existing file keeps its mode; a new one gets the umask's, as `>` would
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        atomic_write_text(path, text)
        os.chmod(path, mode)
    except OSError as e:
        raise SpecError(f"{path}: cannot write: {e.strerror}") from None
    return runs
