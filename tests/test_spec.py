"""experiments.toml: validation messages with locations, grid expansion, exit code 2 via the CLI."""

import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibtui import spec as spec_mod
from ibtui.errors import SpecError
from ibtui.spec import (
    ID_SCALAR_KEYS,
    MAX_RUN_ID_BYTES,
    check_run_id,
    experiment_to_toml,
    load_spec,
    load_spec_text,
    read_spec_file,
)

BASE = """
[defaults]
dataset = "digits"
width = 4
epochs = 4
mi_epochs = [1, 4]
"""


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(BASE + body)
    return p


def test_grid_expansion(tmp_path):
    p = write(tmp_path, """
[[experiment]]
name = "g"
attack = ["badnets", "blend"]
poison_rate = [0.1, 0.01]
seed = [0, 1, 2]
""")
    runs = load_spec(p)
    assert len(runs) == 12
    ids = {r.run_id for r in runs}
    assert len(ids) == 12
    assert "g-blend-digits-resnet18-p0.01-s2" in ids
    # list-valued fields are not expanded
    assert all(r.values["mi_epochs"] == [1, 4] for r in runs)
    assert runs[0].values["observe_classes"] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_defaults_and_paper_mi_epochs_scaled(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text('[[experiment]]\nname = "a"\nepochs = 12\n')
    (r,) = load_spec(p)
    assert r.values["mi_epochs"] == [1, 2, 4, 6, 8, 10, 12]
    assert r.values["attack_options"]["size"] == 5  # badnets default resolved


@pytest.mark.parametrize("body, needle", [
    ('[[experiment]]\nname = "x"\npoison_rat = 0.1\n', "field 'poison_rat': unknown field; allowed:"),
    ('[[experiment]]\nname = "x"\npoison_rate = 1.5\n',
     "field 'poison_rate': 1.5 out of range; allowed: number in (0, 1); any number in [0, 1) is "
     "ignored for attack 'none', which poisons nothing"),
    ('[[experiment]]\nname = "x"\npoison_rate = 0.0\n', "field 'poison_rate': 0.0 out of range"),
    ('[[experiment]]\nname = "x"\npoison_rate = "ten"\n', "field 'poison_rate': expected number"),
    ('[[experiment]]\nname = "x"\ntarget = 10\n', "field 'target': 10 out of range; allowed: 0..9"),
    ('[[experiment]]\nname = "x"\nmi_epochs = [1, 9]\n', "field 'mi_epochs': [9] outside the run; allowed: 1..4"),
    ('[[experiment]]\nname = "x"\nattack = "nope"\n', "field 'attack': unknown attack 'nope'; allowed: "),
    ('[[experiment]]\nname = "x"\ndataset = "mnist"\n', "field 'dataset': unknown dataset 'mnist'; allowed: "),
    ('[[experiment]]\nname = "x"\narch = "vit"\n', "field 'arch': unknown arch 'vit'; allowed: "),
    ('[[experiment]]\nname = "x"\nepochs = true\n', "field 'epochs': expected integer"),
    ('[[experiment]]\nname = "x"\nobserve_classes = [0, 1]\n', "field 'observe_classes': [0] not allowed"),
    ('[[experiment]]\nname = "x"\nattack_options = { size = "big" }\n', "attack_options.size: expected int"),
    ('[[experiment]]\nname = "x"\nattack_options = { sizee = 3 }\n',
     "attack_options.sizee: unknown option for badnets"),
    ('[[experiment]]\nname = "x"\nmi_method = "magic"\n', "field 'mi_method': unknown mi_method 'magic'"),
    ('[whatever]\n', "unknown top-level table 'whatever'"),
    ('', "no [[experiment]] table"),
    ('[[experiment]]\nname = "x"\n[[experiment]]\nname = "x"\n', "appears twice"),
    ('[[experiment]\nname = "x"\n', "malformed TOML"),
])
def test_errors_name_file_experiment_field(tmp_path, body, needle):
    p = write(tmp_path, body)
    with pytest.raises(SpecError) as e:
        load_spec(p)
    msg = str(e.value)
    assert str(p) in msg
    assert needle in msg


def test_error_names_the_experiment(tmp_path):
    p = write(tmp_path, '[[experiment]]\nname = "ok"\n[[experiment]]\nname = "bad"\nlr = -1.0\n')
    with pytest.raises(SpecError, match=r"experiment\[1\] \(bad\): field 'lr'"):
        load_spec(p)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "missing.toml")


def test_resolved_spec_round_trips_through_toml(tmp_path):
    p = write(tmp_path, '[[experiment]]\nname = "r"\nattack = "blend"\nmi_options = {}\n')
    (r,) = load_spec(p)
    out = tmp_path / "spec.toml"
    out.write_text(experiment_to_toml(r.values, "[experiment]"))
    unset_dropped = {k: ({o: x for o, x in v.items() if x is not None} if isinstance(v, dict) else v)
                     for k, v in r.values.items()}
    assert read_spec_file(out) == unset_dropped


def test_repository_experiments_toml_is_valid():
    runs = load_spec(Path(__file__).parent.parent / "experiments.toml")
    assert {r.values["attack"] for r in runs} == {"badnets", "blend"}
    assert all(r.values["dataset"] == "digits" for r in runs)


# --- run ids: every sweepable field gives distinct, readable ids ----------------------------

# two valid values of every field that can be swept (a list expands as a grid); a field
# added to FIELDS without an entry here fails test_sweep_values_cover_every_sweepable_field
SWEEP_VALUES = {
    "data_root": ["", "data2"], "download": [False, True], "width": [4, 8], "target": [0, 1],
    "epochs": [4, 5], "lr": [0.01, 0.1], "momentum": [0.9, 0.0], "weight_decay": [5e-4, 0.0],
    "batch_size": [256, 32], "plateau_patience": [5, 2], "plateau_factor": [0.5, 0.1],
    "noise_xt": [0.4, 0.2], "noise_ty": [0.4, 0.0], "stealth_epochs": ["all", "phases"],
    "device": ["auto", "cpu"], "threads": [0, 1], "mi_equal_n": [True, False],
    "min_asr": [0.9, 0.95], "min_asr_reason": ["", "LC on a narrow net"],
}


def load_str(body: str, **kw):
    return load_spec_text(tomllib.loads(BASE + body), "f.toml", **kw)


def toml_list(values) -> str:
    return "[" + ", ".join(("true" if v else "false") if isinstance(v, bool) else
                           f'"{v}"' if isinstance(v, str) else repr(v) for v in values) + "]"


def test_sweep_values_cover_every_sweepable_field():
    assert set(SWEEP_VALUES) == set(ID_SCALAR_KEYS)


@pytest.mark.parametrize("key", sorted(SWEEP_VALUES))
def test_sweeping_any_field_gives_distinct_ids(key):
    runs = load_str(f'[[experiment]]\nname = "g"\n{key} = {toml_list(SWEEP_VALUES[key])}\n')
    ids = [r.run_id for r in runs]
    assert len(runs) == 2 and len(set(ids)) == 2, ids
    assert all(i.startswith("g-badnets-digits-resnet18-p0.1-s0-" + key) for i in ids), ids
    assert all(check_run_id(i) is None for i in ids)


def test_swept_ids_read_as_the_values_and_unswept_ids_are_unchanged():
    runs = load_str('[[experiment]]\nname = "g"\nlr = [0.01, 0.1]\ndevice = ["auto", "cpu"]\n'
                    '[[experiment]]\nname = "h"\nlr = 0.1\n')
    assert [r.run_id for r in runs] == [
        "g-badnets-digits-resnet18-p0.1-s0-lr0.01-device=auto",
        "g-badnets-digits-resnet18-p0.1-s0-lr0.01-device=cpu",
        "g-badnets-digits-resnet18-p0.1-s0-lr0.1-device=auto",
        "g-badnets-digits-resnet18-p0.1-s0-lr0.1-device=cpu",
        "h-badnets-digits-resnet18-p0.1-s0",
    ]


def test_experiments_sharing_a_name_are_told_apart_by_what_differs():
    runs = load_str('[[experiment]]\nname = "a"\nepochs = 4\n[[experiment]]\nname = "a"\nepochs = 5\n'
                    '[[experiment]]\nname = "b"\nmi_epochs = [1]\n[[experiment]]\nname = "b"\n')
    ids = [r.run_id for r in runs]
    assert ids[:2] == ["a-badnets-digits-resnet18-p0.1-s0-epochs4", "a-badnets-digits-resnet18-p0.1-s0-epochs5"]
    assert ids[2].startswith("b-badnets-digits-resnet18-p0.1-s0-mi_epochs.") and len(set(ids)) == 4
    with pytest.raises(SpecError, match="appears twice .* with the same values"):
        load_str('[[experiment]]\nname = "a"\nlr = 1\n[[experiment]]\nname = "a"\nlr = 1.0\n')


def test_close_rates_and_long_ids_stay_distinct_and_short():
    runs = load_str('[[experiment]]\nname = "g"\npoison_rate = [0.1, 0.1000001]\n')
    assert [r.run_id for r in runs][0] == "g-badnets-digits-resnet18-p0.1-s0"
    assert len({r.run_id for r in runs}) == 2
    long = "n" * 64
    runs = load_str(f'[[experiment]]\nname = "{long}"\ndata_root = ["{"x" * 200}", "{"x" * 199}"]\n'
                    'lr = [0.01, 0.02]\nnoise_xt = [0.1, 0.2]\nweight_decay = [0.001, 0.002]\n')
    ids = {r.run_id for r in runs}
    assert len(ids) == 16
    assert all(len(i.encode()) <= MAX_RUN_ID_BYTES and check_run_id(i) is None for i in ids)


# --- names, device, data files, poison rate ---------------------------------------------

@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a b", "a/b", "..", "x\\u0000y", "x\\ny", "tab\\t",
                                  "é", "[/]", "n" * 65, "x" * 300])
def test_bad_names_are_spec_errors(name):
    with pytest.raises(SpecError, match="field 'name': .*allowed: 1-64 characters") as e:
        load_str(f'[[experiment]]\nname = "{name}"\n')
    assert "\n" not in str(e.value) and "\x00" not in str(e.value)


@pytest.mark.parametrize("name", ["a", "A.b_c-1", "_x", "n" * 64, "0.5"])
def test_good_names(name):
    (r,) = load_str(f'[[experiment]]\nname = "{name}"\n')
    assert r.run_id.startswith(name + "-")


@pytest.mark.parametrize("device, gpus, needle", [
    ("banana", 0, "'banana' not allowed; allowed: auto, cpu, cuda, cuda:N"),
    ("", 0, "'' not allowed"),
    ("cuda:", 1, "not allowed"),
    ("CPU", 0, "not allowed"),
    ("cuda:7", 2, "'cuda:7' but this machine has 2 GPUs; allowed: auto, cpu, cuda, cuda:0, cuda:1"),
    ("cuda:0", 0, "CUDA is not available here; allowed here: auto, cpu"),
    ("cuda", 0, "CUDA is not available here"),
])
def test_bad_devices(monkeypatch, device, gpus, needle):
    monkeypatch.setattr(spec_mod, "gpu_count", lambda: gpus)
    with pytest.raises(SpecError, match="field 'device': ") as e:
        load_str(f'[[experiment]]\nname = "x"\ndevice = "{device}"\n')
    assert needle in str(e.value)


def test_good_devices(monkeypatch):
    monkeypatch.setattr(spec_mod, "gpu_count", lambda: 2)
    runs = load_str('[[experiment]]\nname = "x"\ndevice = ["auto", "cpu", "cuda", "cuda:1"]\n')
    assert [r.values["device"] for r in runs] == ["auto", "cpu", "cuda", "cuda:1"]


def test_missing_dataset_files_fail_at_validation(tmp_path):
    body = f'[[experiment]]\nname = "x"\ndataset = "cifar10"\ndata_root = "{tmp_path}"\n'
    with pytest.raises(SpecError, match=r"field 'dataset': 'cifar10': CIFAR-10 files are missing in "
                                        f"{tmp_path}/cifar-10-batches-py") as e:
        load_str(body)
    assert "ibtui data fetch cifar10" in str(e.value)
    assert len(load_str(body + "download = true\n")) == 1  # fetched at run time, when asked
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / n).write_bytes(b"")
    assert len(load_str(body)) == 1


@pytest.mark.parametrize("body, minimum", [
    ('poison_rate = 1e-9\n', "0.00743 for badnets on digits"),
    ('poison_rate = 0.001\n', "0.00743 for badnets on digits"),
    ('poison_rate = 0.005\nattack = "lc"\n', "0.00752 for lc on digits"),  # 1 of 133
])
def test_rates_that_poison_nothing_name_the_minimum(body, minimum):
    with pytest.raises(SpecError, match="field 'poison_rate': .* poisons no image of digits") as e:
        load_str('[[experiment]]\nname = "x"\n' + body)
    assert f"allowed: poison_rate >= {minimum}" in str(e.value)
    rmin = float(str(e.value).split(">= ")[1].split()[0])
    load_str('[[experiment]]\nname = "x"\n' + body.replace(body.split("\n")[0], f"poison_rate = {rmin!r}"))


def test_min_poison_rate_is_the_smallest_that_poisons():
    from ibtui.spec import min_poison_rate, poisoned_count

    for ds, mode in [("digits", "dirty"), ("digits", "clean"), ("cifar10", "dirty"), ("svhn", "clean")]:
        r = min_poison_rate(ds, 0, mode)
        assert poisoned_count(ds, r, 0, mode) > 0
        assert poisoned_count(ds, r * 0.99, 0, mode) == 0


@pytest.mark.parametrize("key", ["poison_rate", "lr", "momentum", "weight_decay", "plateau_factor",
                                 "noise_xt", "noise_ty"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf_are_rejected(key, value):
    with pytest.raises(SpecError, match=f"field '{key}': .*not a finite number"):
        load_str(f'[[experiment]]\nname = "x"\n{key} = {value}\n')


# --- size cap, BOM -------------------------------------------------------------------------

def test_run_cap_is_checked_before_expanding(monkeypatch):
    monkeypatch.delenv("IBTUI_MAX_RUNS", raising=False)
    data = tomllib.loads(BASE)
    data["experiment"] = [{"name": "x", "seed": list(range(25_000_000)), "attack": ["badnets", "blend"]}]
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"f.toml: experiment\[0\] \(x\): expands to 50,000,000 runs "
                                        r"\(seed 25,000,000 x attack 2\); allowed: at most 10,000 runs per file "
                                        r"\(raise the cap with \$IBTUI_MAX_RUNS\)"):
        load_spec_text(data, "f.toml")
    assert time.perf_counter() - t0 < 1.0


def test_run_cap_counts_the_whole_file_and_can_be_raised(monkeypatch):
    monkeypatch.delenv("IBTUI_MAX_RUNS", raising=False)
    body = '[[experiment]]\nname = "a"\nseed = [0, 1, 2]\n[[experiment]]\nname = "b"\nseed = [0, 1]\n'
    assert len(load_str(body)) == 5
    with pytest.raises(SpecError, match="expands to 5 runs .*allowed: at most 4 runs per file"):
        load_str(body, max_runs=4)
    with pytest.raises(SpecError, match=r"experiment\[0\] \(a\): expands to 3 runs"):
        load_str(body, max_runs=2)
    monkeypatch.setenv("IBTUI_MAX_RUNS", "4")
    with pytest.raises(SpecError, match="at most 4 runs"):
        load_str(body)
    assert len(load_str(body, max_runs=5)) == 5  # the parameter wins over the environment
    monkeypatch.setenv("IBTUI_MAX_RUNS", "lots")
    with pytest.raises(SpecError, match="IBTUI_MAX_RUNS='lots': not allowed; allowed: a positive integer"):
        load_str(body)


def test_utf8_bom_is_accepted(tmp_path):
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf" + (BASE + '[[experiment]]\nname = "b"\n').encode())
    assert [r.run_id for r in load_spec(p)] == ["b-badnets-digits-resnet18-p0.1-s0"]


def test_spec_errors_are_one_line():
    assert str(SpecError("a\nb\x00c\td\u2028")) == "a\\nb\\x00c\\td\\u2028"
    with pytest.raises(SpecError) as e:
        load_str('[[experiment]]\nname = "x"\n"bad\\nkey" = 1\n')
    assert "\n" not in str(e.value) and "bad\\nkey" in str(e.value)


# --- the TOML writer -----------------------------------------------------------------------

def test_writer_round_trips_control_characters_and_unicode_keys(tmp_path):
    values = {"name": "a\nb\x00\x1f\x7f\"'\\", "ключ": 1, "": "empty key", "a.b": [1, 2],
              "opts": {"é ü": "x\r\ny", "none": None, "f": 1.5e-300}, "t": True}
    text = experiment_to_toml(values, "[experiment]")
    back = tomllib.loads(text)["experiment"]
    assert back == {k: v for k, v in values.items() if k != "opts"} | {
        "opts": {"é ü": "x\r\ny", "f": 1.5e-300}}
    assert tomllib.loads(experiment_to_toml(values))["experiment"] == [back]


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalar = (st.booleans() | st.integers(-2**63, 2**63 - 1) | _text
           | st.floats(allow_nan=False))
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(_text, inner, max_size=3), max_leaves=8)


# 60 generated tables per run
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_text, _value, max_size=6))
def test_writer_round_trips_any_table(values):
    for header, unwrap in (("[experiment]", lambda d: d), ("[[experiment]]", lambda d: d[0])):
        back = unwrap(tomllib.loads(experiment_to_toml(values, header))["experiment"])
        assert back == values


def test_empty_experiment_array_is_an_error():
    with pytest.raises(SpecError, match="'experiment' is empty; add at least one"):
        load_spec_text({"experiment": []}, "f.toml")


def test_oversized_file_fails_before_parsing(tmp_path):
    p = tmp_path / "big.toml"
    p.write_text('[[experiment]]\nname = "x"\nseed = [' + "0," * 1_000_000 + "0]\n")
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"big.toml: 2,000,03\d bytes; allowed: at most 1,048,576 bytes"):
        load_spec(p)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("root", ["x" * 5000, "~no_such_user_zz/x"])
def test_unusable_data_root_is_a_spec_error(root):
    with pytest.raises(SpecError, match="field 'dataset': 'cifar10': cannot look for its files under data_root"):
        load_spec_text({"experiment": [{"name": "a", "dataset": "cifar10", "data_root": root}]}, "f.toml")


# --- the schema: one model for the fields, integral floats, a typed RunSpec, the README table --

def test_docs_field_table_is_the_schema():
    """docs/fields.md's table is generated from ibtui.spec.Experiment; regenerate it with
    `python -c "from ibtui.spec import fields_markdown; print(fields_markdown())"`."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "fields.md").read_text(encoding="utf-8")
    start = readme.index("\n", readme.index("<!-- fields:")) + 1
    assert readme[start:readme.index("<!-- /fields -->")] == spec_mod.fields_markdown()


@pytest.mark.parametrize("key, integral, exact", [
    ("width", 4.0, 4), ("epochs", 4.0, 4), ("seed", 3.0, 3), ("batch_size", 64.0, 64),
    ("threads", 1.0, 1), ("target", 2.0, 2), ("plateau_patience", 2.0, 2),
])
def test_integral_float_is_the_integer(key, integral, exact):
    body = "[[experiment]]\nname = \"f\"\n"
    a = load_spec_text(tomllib.loads(BASE + body + f"{key} = {integral!r}\n"), "a.toml")
    b = load_spec_text(tomllib.loads(BASE + body + f"{key} = {exact}\n"), "b.toml")
    assert [r.values for r in a] == [r.values for r in b]
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert type(getattr(a[0], key)) is int
    c = load_spec_text(tomllib.loads(BASE + body + f"{key} = [{integral!r}, {exact + 1}]\n"), "c.toml")
    assert [getattr(r, key) for r in c] == [exact, exact + 1]  # a grid of integral floats too


@pytest.mark.parametrize("value, text", [
    ("4.5", "field 'width': expected integer in [1, 1024] or a list of them, got 4.5"),
    ('"4"', "field 'width': expected integer in [1, 1024] or a list of them, got '4'"),
    ("true", "field 'width': expected integer in [1, 1024] or a list of them, got True"),
    ("[4, 4.5]", "field 'width': expected integer in [1, 1024] or a list of them, got 4.5"),
    ("2000", "field 'width': 2000 out of range; allowed: integer in [1, 1024]"),
])
def test_non_integral_and_non_numbers_are_refused(tmp_path, value, text):
    p = write(tmp_path, f'[[experiment]]\nname = "f"\nwidth = {value}\n')
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert str(e.value) == f"{p}: experiment[0] (f): {text}"


def test_defaults_errors_name_the_defaults_table(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text('[defaults]\nlr = "fast"\n[[experiment]]\nname = "x"\n')
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert str(e.value) == (f"{p}: defaults: field 'lr': expected number in (0, 10] or a list "
                            "of them, got 'fast'")


def test_number_fields_keep_integers_and_run_ids(tmp_path):
    """`weight_decay = 0` stays the integer it was (stored spec, run id and configuration key
    as before the schema); 0.0 gives the same run id."""
    a = load_spec(write(tmp_path, '[[experiment]]\nname = "n"\nweight_decay = [0, 0.001]\n'))
    assert [r.weight_decay for r in a] == [0, 0.001] and type(a[0].weight_decay) is int
    assert a[0].run_id.endswith("-weight_decay0")


def test_run_spec_is_a_typed_frozen_object(tmp_path):
    r = load_spec(write(tmp_path, '[[experiment]]\nname = "t"\n'))[0]
    assert (r.name, r.epochs, r.width, r.observe_classes[:2]) == ("t", 4, 4, [1, 2])
    assert r.values["epochs"] == 4 and list(r.values) == list(spec_mod.FIELDS)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        r.epochs = 5
    assert "nope" not in r.values and not hasattr(r, "nope")


def test_fields_come_from_the_schema():
    f = spec_mod.FIELDS
    assert f["width"].default == 64 and f["width"].allowed == "integer in [1, 1024]"
    assert f["mi_epochs"].listy and f["attack_options"].table and not f["seed"].listy
    assert f["threads"].help == spec_mod.Experiment.model_fields["threads"].description


@pytest.mark.parametrize("integral, exact", [
    ("attack_options = { size = 3.0 }", "attack_options = { size = 3 }"),
    ('attack = "wanet"\nattack_options = { k = 8.0 }', 'attack = "wanet"\nattack_options = { k = 8 }'),
])
def test_integral_float_attack_options_give_the_same_run_ids(integral, exact):
    def ids(body: str) -> list[str]:
        two = f'[[experiment]]\nname = "a"\n{body}\n[[experiment]]\nname = "a"\n'  # ids show the table
        runs = load_spec_text(tomllib.loads(BASE + two), "a.toml")
        assert len({r.run_id for r in runs}) == 2
        return [r.run_id for r in runs]
    assert ids(integral) == ids(exact)
