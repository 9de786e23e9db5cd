"""mi_method / mi_options validation and the JSON form of MIEstimate."""

import json
import math

import pytest

from ibtui.errors import SpecError
from ibtui.mi import DEFAULT_METHOD, METHODS, MIEstimate, validate_mi_options


def test_methods_and_default():
    for m in ("noise-aware", "infonce-paper", "infonce-separable", "mine"):
        assert m in METHODS
    assert DEFAULT_METHOD == "noise-aware"


def test_defaults_filled_and_idempotent():
    opts = validate_mi_options("noise-aware", {})
    assert opts["k"] == 8 and opts["schedule"] == "paper"
    assert opts["max_epochs_xt"] == 350 and opts["max_epochs_ty"] == 250
    assert opts["batch_xt"] == 128 and opts["negatives_xt"] == 512 and opts["lr_xt"] == 3e-4
    assert opts["batch_ty"] == 512 and opts["negatives_ty"] == 256 and opts["lr_ty"] == 5e-4
    assert validate_mi_options("noise-aware", opts) == opts


def test_quick_schedule_and_overrides():
    opts = validate_mi_options(["noise-aware", "infonce-paper"],
                               {"schedule": "quick", "max_epochs_ty": 7, "lr_xt": 1})
    assert opts["max_epochs_xt"] == 40 and opts["max_epochs_ty"] == 7
    assert opts["lr_xt"] == 1.0 and isinstance(opts["lr_xt"], float)


def test_keys_of_other_methods_are_fine():
    assert validate_mi_options("noise-aware", {"mine_ema": 0.05})["mine_ema"] == 0.05


@pytest.mark.parametrize("opts,key", [
    ({"bogus": 1}, "bogus"),
    ({"k": "8"}, "k"),
    ({"k": True}, "k"),
    ({"k": 0}, "k"),
    ({"k": 2.5}, "k"),
    ({"schedule": "slow"}, "schedule"),
    ({"bracket": 1}, "bracket"),
    ({"lr_xt": float("nan")}, "lr_xt"),
    ({"max_samples": 1}, "max_samples"),
    ({"k": None}, "k"),
])
def test_bad_options(opts, key):
    with pytest.raises(SpecError) as err:
        validate_mi_options("noise-aware", opts)
    msg = str(err.value)
    # ibtui.schema.problem's texts: "<what is wrong>; allowed: <...>", or for a value of the
    # wrong type "expected <what is allowed>, got <value>"
    assert msg.startswith(f"mi_options.{key}: ")
    assert "; allowed: " in msg or (msg.startswith(f"mi_options.{key}: expected ") and ", got " in msg)


def test_bad_method():
    with pytest.raises(SpecError, match="mi_method: unknown method 'nope'; allowed: "):
        validate_mi_options("nope", {})


def test_estimate_to_dict_is_json():
    est = MIEstimate(1.5, "noise-aware", None, 2.0, math.log(10),
                     {"curve": [1.0, float("nan")], "n": 10}, 0.1)
    d = json.loads(json.dumps(est.to_dict(), allow_nan=False))
    assert d["value"] == 1.5 and d["lower"] is None and d["settings"]["curve"] == [1.0, None]


def test_integral_float_is_an_integer_a_fraction_is_refused():
    opts = validate_mi_options("noise-aware", {"k": 4.0, "forward_batch": 64.0, "lr_xt": 1})
    assert opts["k"] == 4 and type(opts["k"]) is int and type(opts["forward_batch"]) is int
    assert type(opts["lr_xt"]) is float
    with pytest.raises(SpecError, match=r"^mi_options.k: expected integer in \[1, 1024\], got 4.5$"):
        validate_mi_options("noise-aware", {"k": 4.5})
    with pytest.raises(SpecError, match=r"^mi_options.k: 0 out of range; allowed: integer in "):
        validate_mi_options("noise-aware", {"k": 0})


def test_docs_table_is_the_models():
    """docs/mi.md's option table is made from the estimators' models (ibtui.schema.describe).
    To regenerate: python -c 'from ibtui.mi.options import write_docs; write_docs()'"""
    from pathlib import Path

    from ibtui.mi.options import docs_with_table, options_model
    from ibtui.schema import describe

    text = (Path(__file__).parent.parent / "docs" / "mi.md").read_text(encoding="utf-8")
    assert docs_with_table(text) == text, "regenerate: ibtui.mi.options.write_docs()"
    rows = describe(options_model())
    assert len(rows) == len(validate_mi_options("noise-aware", {}))
    assert all(help for _, _, _, help in rows)  # every option says what it does
