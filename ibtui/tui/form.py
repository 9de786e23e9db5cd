"""The compose form's data side: field texts -> an experiment table, validation, saving.

Texts are read the way experiments.toml reads values (`0.1`, `0.05, 0.1`, `[1, 5]`,
`size = 3, colour = "red"`), then `ibtui.spec.validate_experiment` applies the very rules and
messages of experiments.toml: nothing is re-checked here. Saving appends the table to a file,
re-loads the whole file with `load_spec` and only then replaces it atomically.
"""

from __future__ import annotations

import functools
import os
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ibtui.errors import IbtuiError, SpecError
from ibtui.runs.store import atomic_write_text
from ibtui.spec import FIELDS, RunSpec, experiment_to_toml, load_spec_text, validate_experiment

SOURCE_FILE = "compose"
SOURCE_EXP = "experiment"


@dataclass(frozen=True)
class FormField:
    key: str
    label: str
    kind: str  # text | value | table | classes | select | multi | tags
    hint: str = ""  # an example of what to type (the field's meaning is FIELDS[key].help)
    advanced: bool = False

    @property
    def help(self) -> str:
        """What the field means, from the spec's field table (one text for docs/fields.md, the
        validation messages and the form), then the form's example if it has one."""
        text = str(FIELDS[self.key].help)
        return f"{text}; {self.hint}" if self.hint else text


FORM: list[FormField] = [
    FormField("name", "name", "text"),
    FormField("dataset", "dataset", "select"),
    FormField("arch", "arch", "select"),
    FormField("width", "width", "value", "a list makes a grid"),
    FormField("attack", "attack(s)", "multi", "space toggles; several make a grid"),
    FormField("attack_options", "attack options", "table", 'e.g. size = 3, colour = "blue"'),
    FormField("poison_rate", "poison rate(s)", "value", "e.g. 0.05, 0.1"),
    FormField("target", "target class", "value"),
    FormField("noise_xt", "noise σ_xt", "value"),
    FormField("noise_ty", "noise σ_ty", "value"),
    FormField("epochs", "epochs", "value"),
    FormField("mi_epochs", "MI checkpoints", "value", "blank = the paper's, scaled to epochs"),
    FormField("mi_method", "MI method(s)", "multi"),
    FormField("mi_options", "MI options", "table", "e.g. k = 2, max_samples = 64"),
    FormField("seed", "seed(s)", "value", "e.g. 0, 1, 2 or 0-2"),
    FormField("observe_classes", "clean classes", "classes", "e.g. 1, 2, 3"),
    FormField("tags", "tags", "tags", "e.g. pilot, lr-sweep"),
    FormField("lr", "learning rate", "value", advanced=True),
    FormField("momentum", "momentum", "value", advanced=True),
    FormField("batch_size", "batch size", "value", advanced=True),
    FormField("weight_decay", "weight decay", "value", advanced=True),
    FormField("plateau_patience", "plateau patience", "value", advanced=True),
    FormField("mi_equal_n", "MI equal n", "value", "true | false", advanced=True),
    FormField("stealth_epochs", "stealth epochs", "text", "all | phases", advanced=True),
    FormField("threads", "threads", "value", advanced=True),
    FormField("device", "device", "text", advanced=True),
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

def value_text(key: str, value: Any) -> str:
    """A field's value as the form shows it (as experiments.toml would write it, without the
    brackets and braces): `0.1`, `1, 4, 8`, `k = 4`, `true`."""
    if isinstance(value, dict):
        return ", ".join(tomli_w.dumps({k: v}).strip() for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(value_text(key, x) for x in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def default_text(key: str) -> str:
    """The built-in default as the form shows it: a field showing this text is left out of
    the experiment (it falls back to the default anyway)."""
    d = FIELDS[key].default
    if key == "mi_epochs" or isinstance(d, dict):
        return ""
    return value_text(key, d)


START_PRESET = "quick"


@functools.lru_cache(maxsize=1)
def start_values() -> dict[str, Any]:
    """The values a fresh form starts from: the embedded `quick` preset (the repository's
    experiments.toml, what `make run` runs), read from the preset file itself, so a fresh
    Launch finishes in minutes on a CPU. Its [defaults] and its first experiment, merged;
    fields it does not set keep the built-in defaults. {} if the preset cannot be read."""
    try:
        from ibtui.presets import preset_path

        data = tomllib.loads(preset_path(START_PRESET).read_text(encoding="utf-8"))
        exps = data.get("experiment") or [{}]
        merged = {**data.get("defaults", {}), **(exps[0] if isinstance(exps, list) else exps)}
    except (IbtuiError, OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return {k: v for k, v in merged.items() if k in FORM_KEYS}


def start_text(key: str) -> str:
    """What a text field shows in a fresh form (the quick preset's value, else the default)."""
    values = start_values()
    return value_text(key, values[key]) if key in values else default_text(key)


def start_value(key: str) -> Any:
    """A choice field's starting value (select: one name; multi: a list of names)."""
    v = start_values().get(key, FIELDS[key].default)
    if FORM_KEYS[key].kind == "multi":
        return list(v) if isinstance(v, list) else [v]
    return v


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


def parse_tags(text: str) -> list:
    """`pilot, lr-sweep` -> ["pilot", "lr-sweep"]; a TOML list (`["a", "b"]`) as written."""
    text = text.strip()
    if text.startswith("["):
        try:
            return _toml(text)
        except tomllib.TOMLDecodeError:
            pass
    return [t.strip().strip('"\'') for t in text.split(",") if t.strip().strip('"\'')]


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
        elif f.kind == "tags":
            raw[f.key] = parse_tags(text)
        elif f.kind == "classes":
            v = "all" if text == "all" else parse_value(text)
            raw[f.key] = v if isinstance(v, (list, str)) else [v]
        else:
            v = parse_value(text)
            if isinstance(FIELDS[f.key].default, list) and not isinstance(v, list):
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
