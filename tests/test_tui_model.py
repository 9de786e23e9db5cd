"""The app's data side without a terminal: rows, filters, column folding, the form, the poller."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("textual")

from fixtures_runs import FIXTURE_NOW, make_fixture_runs  # noqa: E402

from ibtui.errors import SpecError  # noqa: E402
from ibtui.runs.store import list_runs  # noqa: E402
from ibtui.spec import FIELDS, load_spec  # noqa: E402
from ibtui.tui.form import (  # noqa: E402
    breakdown,
    build_raw,
    default_text,
    parse_value,
    save_experiment,
)
from ibtui.tui.model import (  # noqa: E402
    COLUMN_LIST,
    COLUMNS,
    FOLDABLE,
    compile_filter,
    export_text,
    fmt_duration,
    plain_fields,
    row_from_run,
    sanity_lines,
    short_labels,
)
from ibtui.tui.poller import RunsReader  # noqa: E402
from ibtui.tui.widgets.tables import fold_columns  # noqa: E402


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    runs = make_fixture_runs(tmp_path_factory.mktemp("fx"))
    return [row_from_run(r, i) for i, r in enumerate(list_runs(runs))]


def test_rows_never_raise_and_explain(rows):
    by_id = {r.id: r for r in rows}
    broken = by_id["broken-run"]
    assert broken.state == "damaged" and broken.name == "" and broken.attack == ""
    assert COLUMNS["name"].render(broken, 0).plain == "unknown"  # never guessed from the id
    assert COLUMNS["id"].render(broken, 0).plain == "broken-run"
    crashed = by_id["paper-badnets-digits-resnet18-p0.2-s2"]
    assert crashed.state == "crashed" and "resumes" in crashed.note
    running = by_id["paper-ftrojan-digits-resnet18-p0.1-s0"]
    assert running.elapsed(FIXTURE_NOW) == pytest.approx(7200 - 210)
    assert by_id["paper-wanet-digits-resnet18-p0.1-s0"].note.startswith("DataError")


def test_filter_terms(rows):
    def ids(text):
        f = compile_filter(text)
        return {r.id for r in rows if f(plain_fields(r, FIXTURE_NOW))}

    assert ids("vgg16") == {"paper-wanet-digits-vgg16-p0.05-s1", "paper-ftrojan-digits-vgg16-p0.1-s1"}
    assert ids("vgg16 state:done") == {"paper-wanet-digits-vgg16-p0.05-s1"}
    assert ids("rate:^0.05$") == {"paper-wanet-digits-vgg16-p0.05-s1",
                                  "paper-blend-digits-resnet18-p0.05-s1",
                                  "paper-badnets-digits-resnet18-p0.05-s0"}
    assert ids("note:SIGTERM") == {"paper-ftrojan-digits-vgg16-p0.1-s1"}
    bad = compile_filter("a[")
    assert bad.error and bad({"x": "xa[y"})
    assert ids("") == {r.id for r in rows}


def test_fold_columns_by_width(rows):
    wide, folded = fold_columns(COLUMN_LIST, rows, FIXTURE_NOW, 200, FOLDABLE)
    assert wide == COLUMN_LIST and folded == {}
    narrow, folded = fold_columns(COLUMN_LIST, rows, FIXTURE_NOW, 80, FOLDABLE,
                                  ("id", "elapsed", "score"))
    keys = [c.key for c in narrow]
    assert folded == {"dataset": "digits", "name": "paper"}  # the damaged row does not count
    assert keys[0] == "run" and "state" in keys and "acc" in keys
    assert narrow[0].render(rows[1], 0).plain == "badnets resnet18 p0.1 s0"
    one, folded = fold_columns(COLUMN_LIST, rows[1:2], FIXTURE_NOW, 80, FOLDABLE, ("id",))
    assert folded == {} and one[0].key == "run"  # a single run keeps its identity
    assert "id" not in keys  # too long at 80 columns: the line under the table shows it


def test_merged_column_shows_the_id_of_rows_that_read_alike(rows):
    """Copies of a grid (`…-s0` and `…-s0-2`) would read identically: they show their ids."""
    import dataclasses

    done = next(r for r in rows if r.id == "paper-badnets-digits-resnet18-p0.1-s0")
    copy = dataclasses.replace(done, id=done.id + "-2", order=99)
    shown, _ = fold_columns(COLUMN_LIST, [*rows, copy], FIXTURE_NOW, 80, FOLDABLE,
                            ("id", "elapsed", "score"))
    run = shown[0]
    assert run.key == "run"
    assert run.render(done, 0).plain == done.id and run.render(copy, 0).plain == copy.id
    other = next(r for r in rows if r.id == "paper-ftrojan-digits-vgg16-p0.1-s1")
    assert run.render(other, 0).plain == "ftrojan vgg16 p0.1 s1"


def test_unreadable_spec_is_never_parsed_from_the_id(tmp_path):
    """`adap-blend` has a dash: splitting the id on dashes read attack `blend`."""
    from ibtui.runs.store import load_run

    rid = "x-adap-blend-digits-resnet18-p0.1-s0"
    (tmp_path / rid).mkdir()
    (tmp_path / rid / "spec.toml").write_text("not toml [")
    row = row_from_run(load_run(tmp_path / rid))
    assert row.attack == "" and row.name == "" and row.rate is None
    assert COLUMNS["attack"].render(row, 0).plain == "–"


def test_sanity_lines_failed_first():
    summary = {"sanity": [
        {"check": "a", "subset": "0", "epoch": 1, "ok": True, "value": 1.0, "bound": 2.0},
        {"check": "b", "subset": "0", "epoch": 2, "ok": False, "value": 3.0, "bound": 2.0,
         "detail": "above"},
        "garbage"]}
    lines = sanity_lines(summary)
    assert [ok for ok, _ in lines] == [False, True]
    assert lines[0][1] == "b · 0 · epoch 2: 3.000 vs bound 2.000 (above)"
    assert sanity_lines({"sanity": "x"}) == () and sanity_lines({}) == ()


def test_export_matches_the_cli_columns(rows):
    import csv
    import io

    from ibtui.cli import BOARD_COLUMNS

    done = [r for r in rows if r.has_summary]
    text = export_text(done, "csv")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == BOARD_COLUMNS and len(table) == len(done) + 1
    assert json.loads(export_text(done, "json"))[0]["run"] == done[0].id
    md = export_text(done, "md").splitlines()
    assert md[0] == "| " + " | ".join(BOARD_COLUMNS) + " |" and len(md) == len(done) + 2
    with pytest.raises(ValueError):
        export_text(done, "xls")


def test_breakdown_names_the_grid():
    from ibtui.spec import validate_experiment

    specs = validate_experiment({"name": "t", "attack": ["badnets", "blend", "wanet"],
                                 "poison_rate": [0.05, 0.1], "seed": [0, 1, 2], "epochs": 2},
                                file="f", exp="e")
    assert breakdown(specs) == "3 attacks × 2 rates × 3 seeds = 18 runs · 36 epochs to train"
    assert breakdown(specs[:1]) == "1 run · 2 epochs to train"


def test_short_labels(rows):
    labels = short_labels(rows)
    assert labels["paper-ftrojan-digits-vgg16-p0.1-s1"] == "ftrojan vgg16 p0.1 s1"
    assert labels["broken-run"] == "broken-run"


def test_fmt_duration():
    assert [fmt_duration(s) for s in (None, 5, 65, 3700, 90000)] == [
        "–", "5s", "1m05s", "1h01m", "1d01h"]


def test_parse_value_reads_like_toml():
    assert parse_value("0.1") == 0.1
    assert parse_value("0.05, 0.1") == [0.05, 0.1]
    assert parse_value("[1, 5]") == [1, 5]
    assert parse_value("0-3") == [0, 1, 2, 3]
    assert parse_value("abc") == "abc"  # left to validation, which names the field
    assert parse_value('"x", 2') == ["x", 2]


def test_build_raw_keeps_what_matters():
    texts = {f: default_text(f) for f in FIELDS if f not in ("attack", "mi_method")}
    texts.update(name="t", seed="0, 1", observe_classes="3", mi_options="k = 2")
    raw = build_raw(texts, {"attack": ["badnets"], "mi_method": ["noise-aware"]})
    assert raw["name"] == "t" and raw["seed"] == [0, 1] and raw["attack"] == "badnets"
    assert raw["observe_classes"] == [3] and raw["mi_options"] == {"k": 2}
    assert "noise_xt" not in raw and "mi_method" not in raw  # defaults stay implicit
    with pytest.raises(SpecError, match="attack_options"):
        build_raw({**texts, "attack_options": "size = "}, {"attack": ["badnets"]})


def test_save_experiment_appends_and_never_leaves_an_invalid_file(tmp_path):
    path = tmp_path / "experiments.toml"
    raw = {"name": "a", "width": 4, "epochs": 1, "mi_epochs": [1], "seed": [0, 1]}
    assert len(save_experiment(raw, path, when=FIXTURE_NOW)) == 2
    save_experiment({**raw, "name": "b"}, path, when=FIXTURE_NOW)
    assert len(load_spec(path)) == 4
    before = path.read_text()
    with pytest.raises(SpecError, match="appears twice"):
        save_experiment(raw, path)
    with pytest.raises(SpecError, match="field 'epochs'"):
        save_experiment({**raw, "name": "c", "epochs": 0}, path)
    assert path.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["experiments.toml"]


def test_reader_rereads_only_changed_runs(tmp_path, monkeypatch):
    runs = make_fixture_runs(tmp_path)
    reader = RunsReader(runs)
    first, error = reader.rows()
    assert len(first) == 13 and error == ""
    loads = []
    import ibtui.runs.store as store

    real = store.load_run
    monkeypatch.setattr(store, "load_run", lambda p: loads.append(p.name) or real(p))
    again, _ = reader.rows()
    assert loads == [] and again == first and not reader.changed
    rid = "paper-blend-digits-resnet18-p0.05-s1"
    status = json.loads((runs / rid / "status.json").read_text())
    status["phase"] = "poisoning"
    (runs / rid / "status.json").write_text(json.dumps(status) + "\n")
    third, _ = reader.rows()
    assert loads == [rid] and reader.changed
    assert {r.id: r for r in third}[rid].phase == "poisoning"
    monkeypatch.setattr(store, "load_run", real)
    detail, changed = reader.detail(rid)
    assert changed and detail is not None
    assert reader.detail(rid) == (detail, False)


def test_reader_looks_at_finished_runs_in_rotation(tmp_path):
    """Idle polls stat only a slice of the finished runs; a change to one (a resume from
    another terminal) is seen within one sweep; a new run at once."""
    import shutil

    runs = make_fixture_runs(tmp_path)
    reader = RunsReader(runs, sweep_s=4, poll_interval=1)
    rows, _ = reader.rows()
    done = next(r for r in rows if r.state == "done")
    status = json.loads((runs / done.id / "status.json").read_text())
    status["state"] = "queued"
    (runs / done.id / "status.json").write_text(json.dumps(status) + "\n")
    for _ in range(5):
        rows, _ = reader.rows()
    assert {r.id: r for r in rows}[done.id].state == "queued"
    shutil.copytree(runs / done.id, runs / "zz-new")
    rows, _ = reader.rows()
    assert reader.changed and "zz-new" in {r.id for r in rows}
    shutil.rmtree(runs / "zz-new")
    rows, _ = reader.rows()
    assert "zz-new" not in {r.id for r in rows}
