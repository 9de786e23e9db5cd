"""Every figure command writes a non-empty file and its CSV with the right columns."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_analysis_fixture import MI_EPOCHS, mi_records, write_run

from ibtui.analysis.figures import RunData, plot_runs
from ibtui.analysis.tsne import default_epochs, feature_files, tsne_figures
from ibtui.errors import RunStoreError, SpecError


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


def check_pair(files: list[Path], stem: str, fmt: str, columns: list[str]) -> list[dict]:
    fig = next(p for p in files if p.name == f"{stem}.{fmt}")
    data = next(p for p in files if p.name == f"{stem}.csv")
    assert fig.stat().st_size > 1000
    header, rows = read_csv(data)
    assert header == columns
    assert rows
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(root, attack="badnets")
    write_run(root, attack="blend", mi=mi_records(shift=0.5) + mi_records(method="mine"))
    return root


def test_plot_one_run(runs, tmp_path):
    run = runs / "fx-badnets-cifar10-resnet18-p0.1-s0"
    files = plot_runs([run], tmp_path, "png")
    assert len(files) == 8 and all(p.exists() for p in files)  # one method: no -mi_methods
    rid = run.name
    mi = check_pair(files, f"{rid}-mi_curves", "png",
                    ["run", "method", "term", "epoch", "subset", "role", "value", "lower",
                     "upper", "ceiling", "n"])
    assert len(mi) == 2 * 13 * len(MI_EPOCHS)
    assert {r["subset"] for r in mi if r["role"] == "backdoor"} == {"0_backdoor"}
    first = next(r for r in mi if r["term"] == "xt" and r["subset"] == "0_backdoor"
                 and r["epoch"] == "1")
    assert float(first["value"]) == pytest.approx(6.0)
    plane = check_pair(files, f"{rid}-info_plane", "png",
                       ["run", "method", "subset", "role", "epoch", "i_xt", "i_ty"])
    assert any(r["subset"] == "clean_mean" for r in plane)
    acc = check_pair(files, f"{rid}-accuracy", "png",
                     ["run", "epoch", "train_acc", "test_acc", "asr", "asr_all", "ra"])
    assert len(acc) == 12 and float(acc[-1]["asr"]) == pytest.approx(0.95)
    loss = check_pair(files, f"{rid}-class_loss", "png",
                      ["run", "epoch", "class", "loss", "is_target"])
    assert len(loss) == 12 * 10
    assert {r["class"] for r in loss if r["is_target"] == "True"} == {"0"}


def test_plot_second_method_as_svg(runs, tmp_path):
    run = runs / "fx-blend-cifar10-resnet18-p0.1-s0"
    files = plot_runs([run], tmp_path, "svg")
    names = {p.name for p in files}
    assert f"{run.name}-mi_curves.svg" in names and f"{run.name}-mi_curves-mine.svg" in names
    rows = check_pair(files, f"{run.name}-info_plane-mine", "svg",
                      ["run", "method", "subset", "role", "epoch", "i_xt", "i_ty"])
    assert {r["method"] for r in rows} == {"mine"}
    assert "<svg" in (tmp_path / f"{run.name}-accuracy.svg").read_text()[:500]
    # both methods on the same axes, each with its ceiling
    both = check_pair(files, f"{run.name}-mi_methods", "svg",
                      ["run", "method", "term", "series", "subset", "epoch", "value", "ceiling"])
    data = RunData(run)
    assert {r["method"] for r in both} == set(data.methods) and len(data.methods) == 2
    for method in data.methods:
        for term in ("xt", "ty"):
            mine = [r for r in both if r["method"] == method and r["term"] == term]
            assert {r["series"] for r in mine} == {"backdoor", "clean_mean"}
            recs = data.table(method)[term]["0_backdoor"]
            bd = {int(r["epoch"]): float(r["value"]) for r in mine if r["series"] == "backdoor"}
            assert bd == pytest.approx({e: float(r["value"]) for e, r in recs.items()})
            assert float(mine[0]["ceiling"]) == pytest.approx(
                max(float(r["ceiling"]) for sub in data.table(method)[term].values()
                    for r in sub.values()))


def test_plot_several_runs(runs, tmp_path):
    dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    files = plot_runs(dirs, tmp_path, "pdf")
    assert len(files) == 8
    assert (tmp_path / "compare-accuracy.pdf").read_bytes()[:4] == b"%PDF"
    mi = check_pair(files, "compare-mi_curves", "pdf",
                    ["run", "label", "method", "term", "series", "epoch", "value"])
    assert {r["label"] for r in mi} == {"BadNets", "Blend"}
    assert {r["series"] for r in mi} == {"backdoor", "all", "clean_mean"}
    check_pair(files, "compare-info_plane", "pdf",
               ["run", "label", "method", "series", "epoch", "i_xt", "i_ty"])
    check_pair(files, "compare-accuracy", "pdf", ["run", "label", "epoch", "test_acc", "asr"])
    loss = check_pair(files, "compare-class_loss", "pdf",
                      ["run", "label", "epoch", "target_loss", "other_loss_mean"])
    assert len(loss) == 2 * 12


def test_plot_rejects_unknown_format(runs, tmp_path):
    with pytest.raises(SpecError, match="allowed: png, pdf, svg"):
        plot_runs([next(runs.iterdir())], tmp_path, "jpg")


def test_plot_run_without_mi_or_metrics(tmp_path):
    run = write_run(tmp_path / "runs", mi=[], with_features=False, with_summary=False,
                    state="running")
    (run / "metrics.jsonl").unlink()
    assert plot_runs([run], tmp_path / "out") == []


def test_tsne_default_epochs_from_phases(runs, tmp_path):
    run = runs / "fx-badnets-cifar10-resnet18-p0.1-s0"
    files = tsne_figures(run, None, tmp_path, "png", max_iter=250, max_points=60)
    assert [p.suffix for p in files] == [".png", ".csv"]
    rows = check_pair(files, f"{run.name}-tsne", "png",
                      ["epoch", "phase", "index", "label", "true_label", "group", "x", "y"])
    # early / compression / convergence representatives of the fixture (see EXPECTED_PHASES)
    assert sorted({int(r["epoch"]) for r in rows}) == [2, 6, 12]
    assert {r["phase"] for r in rows} == {"early", "compression", "convergence"}
    assert {r["group"] for r in rows} == {"backdoor", "target_clean", "other"}
    assert len(rows) == 3 * 60
    for e in (2, 6, 12):
        assert any(r["group"] == "backdoor" and r["epoch"] == str(e) for r in rows)


def test_tsne_epochs_and_errors(runs, tmp_path):
    run = runs / "fx-badnets-cifar10-resnet18-p0.1-s0"
    files = tsne_figures(run, [12], None, "svg", max_iter=250, max_points=50)
    assert files[0] == run / "figures" / f"{run.name}-tsne.svg"
    _, rows = read_csv(files[1])
    assert {int(r["epoch"]) for r in rows} == {12} and len(rows) == 50
    with pytest.raises(RunStoreError, match="allowed: 1, 2, 3, 4, 6, 9, 12"):
        tsne_figures(run, [5], tmp_path)
    bare = write_run(tmp_path / "runs", with_features=False)
    with pytest.raises(RunStoreError, match="features"):
        tsne_figures(bare, None, tmp_path)


def test_tsne_without_phases_uses_first_middle_last(tmp_path):
    run = write_run(tmp_path / "runs", with_summary=False, mi=[], state="running")
    chosen = default_epochs(RunData(run), list(feature_files(run)))
    assert chosen == [(1, None), (4, None), (12, None)]


def test_tsne_phases_from_mi_when_no_summary(tmp_path):
    run = write_run(tmp_path / "runs", with_summary=False, state="running")
    chosen = default_epochs(RunData(run), list(feature_files(run)))
    assert chosen == [(2, "early"), (6, "compression"), (12, "convergence")]
