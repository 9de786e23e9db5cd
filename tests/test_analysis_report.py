"""`ibtui report` tables on a fixture runs directory, checked cell by cell, and the
perceptibility-vs-stealth scatter."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from test_analysis_fixture import write_run

from ibtui.analysis.report import perceptibility_scatter, report
from ibtui.errors import RunStoreError, SpecError
from ibtui.runs.store import list_runs


def make_runs(root: Path) -> Path:
    runs = root / "runs"
    common = {"with_features": False}
    write_run(runs, attack="badnets", seed=0, score=(0.3, 0.2),
              extra={"psnr": 20.0, "ssim": 0.80, "lpips": 0.10}, **common)
    write_run(runs, attack="badnets", seed=1, score=(0.5, 0.4),
              extra={"psnr": 22.0, "ssim": 0.90, "lpips": 0.20}, **common)
    write_run(runs, attack="blend", score=(0.6, 0.2), extra={"psnr": 30.0, "ssim": 0.95},
              **common)
    write_run(runs, attack="lc", poison_rate=0.25, score=(0.2, 0.4), **common)
    write_run(runs, attack="badnets", poison_rate=0.01, score=(0.7, 0.1), **common)
    write_run(runs, attack="wanet", dataset="svhn", score=(0.5, 0.5), **common)
    # never counted: not done, or done without a summary
    write_run(runs, attack="blend", dataset="svhn", state="failed", score=(9.0, 9.0), **common)
    write_run(runs, attack="ftrojan", state="queued", with_summary=False, **common)
    write_run(runs, attack="ftrojan", dataset="svhn", state="done", with_summary=False, **common)
    return runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list:
    """The fixture directory's runs, as the CLI hands them to the analyses."""
    return list_runs(make_runs(tmp_path_factory.mktemp("report")))


def test_markdown_table_i_layout(runs):
    text = report(runs, ["dataset", "poison_rate"], "md")
    assert text.splitlines() == [
        "| Attack | D_XT | D_TY | Score | Runs | Ties |",
        "|---|---:|---:|---:|---:|---|",
        "| **CIFAR-10 (25% poison)** | | | | | |",
        "| LC | 0.2000 (n = 1) | 0.4000 (n = 1) | 0.3000 (n = 1) | 1 | – |",
        "| **CIFAR-10 (10% poison)** | | | | | |",
        # two seeds: half-width t(0.975, 1)·s/√2 = 12.7062·0.1414/1.4142 = 1.2706
        "| BadNets | 0.4000 ± 1.2706 | 0.3000 ± 1.2706 | 0.3500 ± 1.2706 | 2 | Blend |",
        "| Blend | 0.6000 (n = 1) | 0.2000 (n = 1) | 0.4000 (n = 1) | 1 | BadNets |",
        "| **CIFAR-10 (1% poison)** | | | | | |",
        "| BadNets | 0.7000 (n = 1) | 0.1000 (n = 1) | 0.4000 (n = 1) | 1 | – |",
        "| **SVHN (10% poison)** | | | | | |",
        "| WaNet | 0.5000 (n = 1) | 0.5000 (n = 1) | 0.5000 (n = 1) | 1 | – |",
    ]


def test_markdown_grouped_by_dataset_names_the_rate(runs):
    lines = report(runs, ["dataset"], "md").splitlines()
    assert lines[2] == "| **CIFAR-10** | | | | | |"
    assert lines[3:8] == [
        "| BadNets-10% | 0.4000 ± 1.2706 | 0.3000 ± 1.2706 | 0.3500 ± 1.2706 | 2 | all |",
        "| BadNets-1% | 0.7000 (n = 1) | 0.1000 (n = 1) | 0.4000 (n = 1) | 1 | all |",
        "| Blend-10% | 0.6000 (n = 1) | 0.2000 (n = 1) | 0.4000 (n = 1) | 1 | all |",
        "| LC-25% | 0.2000 (n = 1) | 0.4000 (n = 1) | 0.3000 (n = 1) | 1 | all |",
        "| **SVHN** | | | | | |",
    ]


def test_ungrouped_table_has_no_sections(runs):
    lines = report(runs, [], "md").splitlines()
    assert len(lines) == 2 + 5 and not any("**" in ln for ln in lines)
    assert lines[2].startswith("| BadNets-10% (dataset=cifar10) |")


def test_latex_table(runs):
    lines = report(runs, ["dataset", "poison_rate"], "latex").splitlines()
    assert lines[:4] == [r"\begin{tabular}{lrrrrl}", r"\toprule",
                         r"Attack & $D_{XT}$ & $D_{TY}$ & Score & Runs & Ties \\", r"\midrule"]
    assert lines[4] == r"\multicolumn{6}{l}{\textit{CIFAR-10 (25\% poison)}} \\"
    assert lines[5] == r"LC & 0.2000 (n = 1) & 0.4000 (n = 1) & 0.3000 (n = 1) & 1 & -- \\"
    assert lines[6] == r"\midrule"
    assert lines[8] == (r"BadNets & $0.4000 \pm 1.2706$ & $0.3000 \pm 1.2706$ & "
                        r"$0.3500 \pm 1.2706$ & 2 & Blend \\")
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"]


def test_csv_table(runs):
    rows = list(csv.DictReader(io.StringIO(report(runs, ["dataset", "poison_rate"], "csv"))))
    assert list(rows[0]) == ["dataset", "poison_rate", "attack", "label", "n"] + [
        c for v in ("d_xt", "d_ty", "score") for c in (v, f"{v}_std", f"{v}_lo", f"{v}_hi")
    ] + ["ties"]
    assert [(r["dataset"], r["poison_rate"], r["attack"]) for r in rows] == [
        ("cifar10", "0.25", "lc"), ("cifar10", "0.1", "badnets"), ("cifar10", "0.1", "blend"),
        ("cifar10", "0.01", "badnets"), ("svhn", "0.1", "wanet")]
    bad = rows[1]
    assert bad["n"] == "2"
    assert float(bad["d_xt"]) == pytest.approx(0.4)
    assert float(bad["d_xt_std"]) == pytest.approx(0.1414, abs=1e-4)
    assert float(bad["score"]) == pytest.approx(0.35)
    assert float(bad["score_hi"]) - 0.35 == pytest.approx(12.706205 * 0.1414214 / 2 ** 0.5)
    assert bad["ties"] == "Blend" and rows[0]["ties"] == ""
    assert rows[2]["score_std"] == "" and rows[2]["score_lo"] == ""


def test_rows_split_by_a_setting_that_differs(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, attack="badnets", with_features=False, score=(0.1, 0.1))
    write_run(runs, attack="badnets", arch="vgg16", with_features=False, score=(0.3, 0.3),
              spec_extra={"lr": 0.001})
    lines = report(list_runs(runs), ["dataset", "poison_rate"], "md").splitlines()
    assert lines[3] == ("| BadNets (arch=resnet18, lr=0.01) | 0.1000 (n = 1) | 0.1000 (n = 1) | "
                        "0.1000 (n = 1) | 1 | BadNets (arch=vgg16, lr=0.001) |")
    assert lines[4] == ("| BadNets (arch=vgg16, lr=0.001) | 0.3000 (n = 1) | 0.3000 (n = 1) | "
                        "0.3000 (n = 1) | 1 | BadNets (arch=resnet18, lr=0.01) |")


def test_three_seeds_mean_interval_and_ties_by_hand(tmp_path):
    """Three seeds per attack; the interval is mean ± t(0.975, 2)·s/√3, t = 4.302653."""
    runs = tmp_path / "runs"
    # badnets scores 0.10, 0.20, 0.30 (d_xt = d_ty = score); blend 0.50, 0.52, 0.54;
    # lc 0.25 (one seed)
    for seed, sc in enumerate((0.10, 0.20, 0.30)):
        write_run(runs, attack="badnets", seed=seed, score=(sc, sc), with_features=False)
    for seed, sc in enumerate((0.50, 0.52, 0.54)):
        write_run(runs, attack="blend", seed=seed, score=(sc, sc), with_features=False)
    write_run(runs, attack="lc", score=(0.25, 0.25), with_features=False)
    lines = report(list_runs(runs), ["dataset", "poison_rate"], "md").splitlines()
    # badnets: mean 0.2, s = 0.1, half = 4.302653·0.1/√3 = 0.248414 -> [-0.048, 0.448]
    # blend: mean 0.52, s = 0.02, half = 4.302653·0.02/√3 = 0.049683 -> [0.470, 0.570]
    # they do not overlap (0.448 < 0.470): no tie; lc (n = 1) ties with both ("all")
    assert lines[3:] == [
        "| BadNets | 0.2000 ± 0.2484 | 0.2000 ± 0.2484 | 0.2000 ± 0.2484 | 3 | LC |",
        "| Blend | 0.5200 ± 0.0497 | 0.5200 ± 0.0497 | 0.5200 ± 0.0497 | 3 | LC |",
        "| LC | 0.2500 (n = 1) | 0.2500 (n = 1) | 0.2500 (n = 1) | 1 | all |",
    ]
    rows = list(csv.DictReader(io.StringIO(report(list_runs(runs), ["dataset", "poison_rate"], "csv"))))
    half = 4.302653 * 0.1 / 3 ** 0.5
    assert float(rows[0]["score_lo"]) == pytest.approx(0.2 - half, rel=1e-6)
    assert float(rows[0]["score_hi"]) == pytest.approx(0.2 + half, rel=1e-6)


def test_report_errors(runs, tmp_path):
    with pytest.raises(SpecError, match="allowed: .*poison_rate"):
        report(runs, ["colour"], "md")
    with pytest.raises(SpecError, match="allowed: md, latex, csv"):
        report(runs, [], "html")
    with pytest.raises(RunStoreError, match="no finished runs"):
        report([], [], "md")


def test_perceptibility_scatter(runs, tmp_path):
    path = perceptibility_scatter(runs, tmp_path / "fig")
    assert path == tmp_path / "fig" / "perceptibility.png" and path.stat().st_size > 1000
    with open(path.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["label", "attack", "dataset", "poison_rate", "n", "score",
                             "score_std", "psnr", "psnr_std", "ssim", "ssim_std", "lpips",
                             "lpips_std"]
    assert [r["label"] for r in rows] == ["BadNets-10%", "Blend-10%"]
    assert float(rows[0]["psnr"]) == pytest.approx(21.0)
    assert float(rows[0]["ssim_std"]) == pytest.approx(0.0707, abs=1e-4)
    assert rows[1]["lpips"] == ""
    pdf = perceptibility_scatter(runs, tmp_path / "p.pdf")
    assert pdf == tmp_path / "p.pdf" and pdf.read_bytes()[:4] == b"%PDF"


def test_perceptibility_scatter_without_metrics(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, with_features=False)
    assert perceptibility_scatter(list_runs(runs), tmp_path / "out") is None


def test_ties_name_long_labels_by_their_place_in_the_section():
    from ibtui.analysis.report import _ties

    long = "BadNets-10% (mi_options=" + "x" * 40 + ")"
    section = [{"label": "BadNets", "ties": [long]}, {"label": long, "ties": ["BadNets"]}]
    assert _ties(section[0], section) == "row 2"
    assert _ties(section[1], section) == "BadNets"
    assert _ties({"label": "a", "ties": []}, section) == "–"


def test_paper_comparison_needs_runs_at_the_papers_setting(tmp_path):
    """Runs only at another rate give no empty table but an error saying what is missing."""
    from ibtui.analysis.paper_table import paper_report

    runs = tmp_path / "runs"
    write_run(runs, attack="badnets", poison_rate=0.01, with_features=False, score=(0.3, 0.2))
    with pytest.raises(RunStoreError, match="paper's Table I setting"):
        paper_report(list_runs(runs))
