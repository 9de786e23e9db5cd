"""Stealth score on hand-computed examples (METHOD.md §6)."""

import pytest

from ibtui.analysis.stealth import stealth_score

ROLES = {"0": "all", "0_backdoor": "backdoor", "0_clean": "clean", "1": "class", "2": "class"}


def recs(epoch, term, values, method="m"):
    return [{"epoch": epoch, "term": term, "subset": s, "value": v, "method": method}
            for s, v in values.items()]


def test_single_epoch_by_hand():
    # xt: min 0, max 4 -> 0:.5, bd:1, clean:.25, c1:0, c2:.5; clean mean .25
    #     D = .25, .75, 0 -> 1/3
    # ty: min 1, max 3 -> 0:0, bd:0, clean:1, c1:1, c2:0; clean mean .5 -> D = .5 each -> .5
    r = recs(1, "xt", {"0": 2, "0_backdoor": 4, "0_clean": 1, "1": 0, "2": 2})
    r += recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1})
    out = stealth_score(r, ROLES)
    assert out["d_xt"] == pytest.approx(1 / 3)
    assert out["d_ty"] == pytest.approx(0.5)
    assert out["score"] == pytest.approx(5 / 12)
    assert out["epochs"] == [1]


def test_normalisation_spans_every_subset_and_epoch_and_epoch_selection():
    roles = dict(ROLES, **{"0_sample": "sample"})
    r = recs(1, "xt", {"0": 2, "0_backdoor": 4, "0_clean": 1, "1": 0, "2": 2, "0_sample": 8})
    r += recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1, "0_sample": 1})
    r += recs(2, "xt", {"0": 0, "0_backdoor": 0, "0_clean": 0, "1": 0, "2": 0, "0_sample": 0})
    r += recs(2, "ty", {"0": 2, "0_backdoor": 2, "0_clean": 2, "1": 2, "2": 2, "0_sample": 2})
    only1 = stealth_score(r, roles, epochs=[1])
    # xt range is now [0, 8]: D = |2-1|/8, |4-1|/8, |1-1|/8 -> mean 4/24 = 1/6
    assert only1["d_xt"] == pytest.approx(1 / 6)
    assert only1["d_ty"] == pytest.approx(0.5)
    both = stealth_score(r, roles)
    # epoch 2 adds three zeros to each term's D list
    assert both["d_xt"] == pytest.approx((1 / 6 * 3) / 6)
    assert both["d_ty"] == pytest.approx((0.5 * 3) / 6)
    assert both["epochs"] == [1, 2]


def test_method_filter_and_incomplete_checkpoints():
    r = recs(1, "xt", {"0": 2, "0_backdoor": 4, "0_clean": 1, "1": 0, "2": 2}, method="a")
    r += recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1}, method="a")
    r += recs(1, "xt", {"0": 9}, method="b")
    assert stealth_score(r, ROLES, method="a")["score"] == pytest.approx(5 / 12)
    out = stealth_score(r, ROLES, method="b")
    assert out["score"] is None and "note" in out


@pytest.mark.parametrize("dxt, dty, score", [(0.3903, 0.1736, 0.2820), (0.3920, 0.4956, 0.4438),
                                             (0.4163, 0.6833, 0.5498)])
def test_paper_table_rows_through_stealth_score(dxt, dty, score):
    # Table I rows (D_XT, D_TY, score), rebuilt as MI records that the project scores: the clean
    # classes sit at 0 and a sample subset at 1 (it fixes the min-max span to [0, 1] and is not a
    # target subset), so every target subset at d gives D = d
    roles = dict(ROLES, **{"0_sample": "sample"})
    r = []
    for term, d in (("xt", dxt), ("ty", dty)):
        r += recs(1, term, {"0": d, "0_backdoor": d, "0_clean": d, "1": 0.0, "2": 0.0, "0_sample": 1.0})
    out = stealth_score(r, roles)
    assert out["d_xt"] == pytest.approx(dxt)
    assert out["d_ty"] == pytest.approx(dty)
    assert out["score"] == pytest.approx(score, abs=1e-4)  # the paper's rounding


def test_constant_values_give_zero_not_amplified_rounding_noise():
    eps = 1e-9
    r = recs(1, "xt", {"0": 4.77, "0_backdoor": 4.77 + eps, "0_clean": 4.77, "1": 4.77 - eps, "2": 4.77})
    r += recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1})
    out = stealth_score(r, ROLES)
    assert out["d_xt"] == 0.0
    assert out["d_ty"] == pytest.approx(0.5)


def test_values_at_their_ceiling_are_flagged_with_their_share():
    # two epochs; at epoch 2 two of the five xt values sit at their ceiling
    r = recs(1, "xt", {"0": 2, "0_backdoor": 4, "0_clean": 1, "1": 0, "2": 2})
    r += recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1})
    e2 = recs(2, "xt", {"0": 4.7, "0_backdoor": 4.7, "0_clean": 4, "1": 3, "2": 4})
    for x in e2:
        x["at_ceiling"] = x["value"] == 4.7
    r += e2 + recs(2, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1})
    out = stealth_score(r, ROLES)
    # values used: 2 epochs x 2 terms x 5 subsets = 20; at ceiling: 2
    assert out["ceiling_share"] == pytest.approx(2 / 20) and out["ceiling_flag"] is True
    only_first = stealth_score(r, ROLES, epochs=[1])
    assert only_first["ceiling_share"] == 0 and only_first["ceiling_flag"] is False
