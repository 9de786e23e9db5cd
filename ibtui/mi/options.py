"""The flat `mi_options` table shared by every method of a run, made from the registry.

Its keys are the checkpoint's own (`SharedOptions`: forward_batch, max_samples, schedule) and
every registered estimator's `Options`, whether or not the run selects that estimator (one
table serves several `mi_method`s). `validate_mi_options(method, options)` fills defaults,
resolves the budgets `schedule` sets, and raises `SpecError` with
"mi_options.<key>: <what is wrong>; allowed: <...>" for unknown keys, wrong types and values
out of range (ibtui.schema: strict types, an integral float is an integer: k = 4.0 is 4).
"""

from __future__ import annotations

from typing import Any

from pydantic import create_model

from ibtui.errors import SpecError
from ibtui.mi.methods import ESTIMATORS, names, validate_methods
from ibtui.mi.methods.base import SCHEDULE_NAMES, SharedOptions
from ibtui.schema import Schema, ValidationError, describe, problem

_MODELS: dict[tuple, type[Schema]] = {}


def owners() -> dict[str, list[str]]:
    """Each key of the table -> who declares it ("checkpoint" or estimator names), in order."""
    out: dict[str, list[str]] = {key: ["checkpoint"] for key in SharedOptions.model_fields}
    for name in names():
        for key in ESTIMATORS[name].Options.model_fields:
            out.setdefault(key, []).append(name)
    return out


def options_model() -> type[Schema]:
    """One model with every key of the table (rebuilt when the registry changes)."""
    state = tuple((name, ESTIMATORS[name]) for name in names())
    if state not in _MODELS:
        fields: dict[str, Any] = {}
        for model in (SharedOptions, *(cls.Options for _, cls in state)):
            for key, field in model.model_fields.items():
                fields.setdefault(key, (field.annotation, field))
        _MODELS.clear()
        _MODELS[state] = create_model("MIOptions", __base__=Schema, **fields)
    return _MODELS[state]


def schedules() -> dict[str, dict[str, int]]:
    """schedule -> the values it gives every estimator's null budget options."""
    out: dict[str, dict[str, int]] = {s: {} for s in SCHEDULE_NAMES}
    for name in names():
        for schedule, values in ESTIMATORS[name].schedules.items():
            out[schedule].update(values)
    return out


def validate_mi_options(method: str | list[str], options: dict[str, Any] | None) -> dict:
    """Resolved options (every key, defaults filled, schedule budgets resolved).

    `method` is one name, a list, or a comma-separated string of registered names.
    Idempotent: validating a resolved dict returns the same dict.
    """
    validate_methods(method)
    if options is not None and not isinstance(options, dict):
        raise SpecError(f"mi_options: expected a table, got {options!r}")
    model = options_model()
    try:
        out = model.model_validate(dict(options or {})).model_dump()
    except ValidationError as exc:
        key, text = problem(exc, model)
        raise SpecError(f"mi_options.{key}: {text}") from None
    for key, value in schedules()[out["schedule"]].items():
        if out[key] is None:
            out[key] = value
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else f"{value:g}"


def options_table() -> str:
    """docs/mi.md's table of mi_options, made from the models (`describe`)."""
    used = owners()
    lines = ["| option | used by | allowed | default | meaning |", "|---|---|---|---|---|"]
    for key, allowed, default, help in describe(options_model()):
        who = ", ".join("all" if n == "checkpoint" else f"`{n}`" for n in used[key])
        cells = [f"`{key}`", who, allowed, _cell(default), help]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


DOCS_BEGIN = "<!-- mi_options: generated from the estimators' Options, do not edit by hand -->\n"
DOCS_END = "<!-- end of mi_options -->"


def docs_with_table(text: str) -> str:
    """`text` (docs/mi.md) with the table between its markers replaced by `options_table()`."""
    head, rest = text.split(DOCS_BEGIN, 1)
    return head + DOCS_BEGIN + options_table() + DOCS_END + rest.split(DOCS_END, 1)[1]


def write_docs(path: str = "docs/mi.md") -> None:
    """Regenerate the table in docs/mi.md:
    python -c 'from ibtui.mi.options import write_docs; write_docs()'"""
    from pathlib import Path

    p = Path(path)
    p.write_text(docs_with_table(p.read_text(encoding="utf-8")), encoding="utf-8")
