"""experiments.toml: validation messages with locations, grid expansion, exit code 2 via the CLI."""

from pathlib import Path

import pytest

from ibtui.errors import SpecError
from ibtui.spec import experiment_to_toml, load_spec, read_spec_file

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
    ('[[experiment]]\nname = "x"\npoison_rate = 1.5\n', "field 'poison_rate': 1.5 out of range; allowed: (0, 1)"),
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
