"""The shared schema base: one number rule, one error text (ibtui/schema.py)."""

from typing import Annotated, Literal

import pytest

from ibtui.schema import Int, Schema, SchemaField, ValidationError, allowed_text, describe, problem


class Example(Schema):
    width: Annotated[Int, SchemaField(ge=1, le=1024, description="channels")] = 64
    lr: Annotated[float, SchemaField(gt=0, le=10, allow_inf_nan=False)] = 0.1
    mode: Literal["a", "b"] = "a"
    flag: bool = False


def test_integral_float_is_an_integer_and_an_integer_is_a_number():
    m = Example(width=64.0, lr=1)
    assert m.width == 64 and type(m.width) is int
    assert m.lr == 1.0


@pytest.mark.parametrize("values, key, text", [
    ({"width": 64.5}, "width", "expected integer in [1, 1024], got 64.5"),
    ({"width": True}, "width", "expected integer in [1, 1024], got True"),
    ({"width": "64"}, "width", "expected integer in [1, 1024], got '64'"),
    ({"width": 0}, "width", "0 out of range; allowed: integer in [1, 1024]"),
    ({"lr": float("inf")}, "lr", "inf is not a finite number; allowed: number in (0, 10]"),
    ({"lr": 0}, "lr", "0 out of range; allowed: number in (0, 10]"),
    ({"mode": "z"}, "mode", "'z' not allowed; allowed: 'a' | 'b'"),
    ({"flag": 1}, "flag", "expected true/false, got 1"),
    ({"other": 1}, "other", "unknown; allowed: width, lr, mode, flag"),
])
def test_problem_names_the_key_and_what_is_allowed(values, key, text):
    with pytest.raises(ValidationError) as e:
        Example(**values)
    assert problem(e.value, Example) == (key, text)


def test_describe_lists_fields_in_order():
    rows = describe(Example)
    assert [r[0] for r in rows] == ["width", "lr", "mode", "flag"]
    assert rows[0] == ("width", "integer in [1, 1024]", 64, "channels")
    assert allowed_text(Example, "flag") == "true/false"
