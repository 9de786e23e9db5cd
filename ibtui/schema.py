"""Declarative schemas for user input: one base model, one rule for numbers, one error text.

Every table a user writes (an experiment's fields, an attack's options, the MI options, the
executor) is a pydantic model derived from `Schema`. Strict types: a string is never read as a
number, true/false never as 0/1. Numbers follow one rule everywhere: an integer field takes an
integral float (`width = 64.0` is 64; `64.5` is refused), a number field takes an integer.

`problem(exc, model)` turns the first error of a ValidationError into (key, text), the text in
ibtui's form "<what is wrong>; allowed: <what is>"; callers put the file and the place in front.
`describe(model)` lists the fields (name, type, default, allowed, help) for help screens and docs.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WrapValidator
from pydantic import Field as SchemaField  # noqa: F401 (re-exported for the schemas)
from pydantic_core import PydanticCustomError

__all__ = ["Int", "Num", "Schema", "SchemaField", "ValidationError", "allowed_text", "describe",
           "integral", "problem", "type_name"]


def _integral(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral)]


def integral(value: Any) -> Any:
    """Before a choice of integers, `Annotated[Literal[4, 8], BeforeValidator(integral)]`: an
    integral float is the integer, and true/false is refused (a Literal takes True for 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("literal_error", "true/false is not one of the integers")
    return _integral(value)


def _keep_int(value: Any, handler: Any) -> Any:
    out = handler(value)
    return value if type(value) is int else out


# A number field that keeps an integer as written (`weight_decay = 0` stays 0, checked as 0.0):
# resolved values, and the run ids and configuration keys hashed from them, are what they were
# before the schema. Plain `float` turns it into 0.0.
Num = Annotated[float, WrapValidator(_keep_int)]


class Schema(BaseModel):
    """Base of every user-input model: unknown keys refused, no coercion across types."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)


def _plain(annotation: Any) -> tuple[Any, list[Any]]:
    """(the type under Annotated/Optional, the constraint objects found on the way)."""
    metadata: list[Any] = []
    while typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        annotation, metadata = args[0], metadata + list(args[1:])
    return annotation, metadata


def type_name(annotation: Any) -> str:
    """'integer', 'number', 'string', 'true/false', 'table', "'a' | 'b'", unions joined by ' or '."""
    annotation, _ = _plain(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        parts = [type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(parts)
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict or annotation is dict:
        return "table"
    names = {int: "integer", float: "number", str: "string", bool: "true/false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(model: type[BaseModel], key: str) -> str:
    """'[1, 1024]', '(0, 10]', '>= 2' ... from the field's constraints; '' if it has none."""
    field = model.model_fields.get(key)
    if field is None:
        return ""
    _, inner = _plain(field.annotation)
    lo = hi = None
    lo_in = hi_in = True
    for m in [*field.metadata, *inner]:
        if isinstance(m, at.Ge):
            lo, lo_in = m.ge, True
        elif isinstance(m, at.Gt):
            lo, lo_in = m.gt, False
        elif isinstance(m, at.Le):
            hi, hi_in = m.le, True
        elif isinstance(m, at.Lt):
            hi, hi_in = m.lt, False
        elif isinstance(m, at.Interval):
            for attr, is_lo, inclusive in (("ge", True, True), ("gt", True, False),
                                           ("le", False, True), ("lt", False, False)):
                v = getattr(m, attr)
                if v is not None:
                    lo, lo_in, hi, hi_in = ((v, inclusive, hi, hi_in) if is_lo else (lo, lo_in, v, inclusive))
    def g(x: float) -> str:  # exact for integers (2147483647, not 2.14748e+09)
        return str(x) if isinstance(x, int) else f"{x:g}"

    if lo is not None and hi is not None:
        return f"{'[' if lo_in else '('}{g(lo)}, {g(hi)}{']' if hi_in else ')'}"
    if lo is not None:
        return f"{'>=' if lo_in else '>'} {g(lo)}"
    if hi is not None:
        return f"{'<=' if hi_in else '<'} {g(hi)}"
    return ""


def allowed_text(model: type[BaseModel], key: str) -> str:
    """What a field allows, in words: "'a' | 'b'", 'integer in [1, 1024]', 'true/false', ..."""
    field = model.model_fields[key]
    name = type_name(field.annotation)
    bounds = _bounds(model, key)
    if not bounds:
        return name
    return f"{name} in {bounds}" if bounds[0] in "[(" else f"{name} {bounds}"


def problem(exc: ValidationError, model: type[BaseModel]) -> tuple[str, str]:
    """(dotted key, "<what is wrong>; allowed: <what is>") for the first error of `exc`."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    key = loc[0] if loc else ""
    dotted = ".".join(loc)
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        return dotted, f"unknown; allowed: {', '.join(model.model_fields)}"
    if kind == "missing":
        return dotted, f"missing; allowed: {allowed_text(model, key)}"
    if key not in model.model_fields:
        return dotted, err["msg"]
    allowed = allowed_text(model, key)
    if isinstance(value, float) and not math.isfinite(value) and kind != "float_type":
        return dotted, f"{value!r} is not a finite number; allowed: {allowed}"  # NaN fails bounds first
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return dotted, f"{value!r} out of range; allowed: {allowed}"
    if kind == "finite_number":
        return dotted, f"{value!r} is not a finite number; allowed: {allowed}"
    if kind in ("literal_error", "enum"):
        return dotted, f"{value!r} not allowed; allowed: {allowed}"
    if kind == "value_error":  # a field or model validator's own explanation
        return dotted, str(err.get("ctx", {}).get("error", err["msg"]))
    return dotted, f"expected {allowed}, got {value!r}"


def describe(model: type[BaseModel]) -> list[tuple[str, str, Any, str]]:
    """(name, allowed, default, help) for every field of `model`, in declaration order."""
    return [(name, allowed_text(model, name), f.default, f.description or "")
            for name, f in model.model_fields.items()]
