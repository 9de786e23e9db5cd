"""Stealth score on hand-computed examples (docs/method.md §6), and its within-run bootstrap."""

import math

import pytest

from ibtui.analysis.stealth import (
    bootstrap_label,
    interval_text,
    run_intervals,
    stealth_bootstrap,
    stealth_score,
)

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


# --- within-run bootstrap ---------------------------------------------------------------------

def with_se(records, se):
    """Records with settings.mc_stderr as noise-aware writes it (se: one number or {subset: se})."""
    for r in records:
        r["settings"] = {"mc_stderr": se if isinstance(se, (int, float)) else se[r["subset"]]}
    return records


def test_bootstrap_with_zero_stderr_is_the_score_itself():
    r = with_se(recs(1, "xt", {"0": 2, "0_backdoor": 4, "0_clean": 1, "1": 0, "2": 2})
                + recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1}), 0.0)
    out = stealth_bootstrap(r, ROLES, b=200)
    for key, want in (("score", 5 / 12), ("d_xt", 1 / 3), ("d_ty", 0.5)):
        assert out[f"{key}_interval"] == [pytest.approx(want), pytest.approx(want)]
    assert out["b"] == 200 and out["level"] == 0.95 and "which images" in out["covers"]
    assert stealth_score(r, ROLES)["score"] == pytest.approx(5 / 12)  # the score is unchanged


def test_bootstrap_width_matches_the_delta_method():
    # The clean classes fix min (0) and max (10) exactly (stderr 0), so the normalisation is
    # fixed: ref = 0.5 and each target's normalised value is v/10. The targets (stderr 0.2 each)
    # sit far from the reference (D = 0.3, 0.4, 0.2: |·| never folds), so D_m is linear in
    # them: D_m = mean of three (v_s/10 - 0.5), sd(D_m) = 0.2/10 · √3/3 = 0.011547, and
    # score = (D_XT + D_TY)/2 has sd √2·0.011547/2 = 0.0081650. The 95% delta-method interval
    # is ± 1.959964 sd.
    se = {"0": 0.2, "0_backdoor": 0.2, "0_clean": 0.2, "1": 0.0, "2": 0.0}
    r = with_se(recs(1, "xt", {"0": 8, "0_backdoor": 9, "0_clean": 7, "1": 0, "2": 10}), se)
    r += with_se(recs(1, "ty", {"0": 2, "0_backdoor": 1, "0_clean": 3, "1": 0, "2": 10}), se)
    base = stealth_score(r, ROLES)
    assert base["d_xt"] == pytest.approx(0.3) and base["d_ty"] == pytest.approx(0.3)
    out = stealth_bootstrap(r, ROLES, b=1000, seed=1)
    sd_d = 0.2 / 10 * math.sqrt(3) / 3
    sd_score = math.sqrt(2) * sd_d / 2
    for key, sd, centre in (("d_xt", sd_d, 0.3), ("d_ty", sd_d, 0.3), ("score", sd_score, 0.3)):
        lo, hi = out[f"{key}_interval"]
        assert hi - lo == pytest.approx(2 * 1.959964 * sd, rel=0.1), key  # B = 1000: ±~4%
        assert (lo + hi) / 2 == pytest.approx(centre, abs=0.2 * sd), key
    assert stealth_bootstrap(r, ROLES, b=1000, seed=1) == out  # seeded: the same every time


def test_bootstrap_needs_a_stderr_for_every_value():
    r = recs(1, "xt", {"0": 2, "0_backdoor": 4, "0_clean": 1, "1": 0, "2": 2})
    r += recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1})
    with_se(r[1:], 0.1)  # the first value has none (a trained estimator records none)
    out = stealth_bootstrap(r, ROLES)
    assert out["score_interval"] is None and out["note"] == "1 of 10 m MI values carry no standard error"
    assert bootstrap_label(out).startswith("(no within-run interval: 1 of 10")
    nothing = stealth_bootstrap([], ROLES)
    assert nothing["score_interval"] is None and "note" in nothing


def test_run_intervals_from_summary_or_computed_from_mi_jsonl():
    r = with_se(recs(1, "xt", {"0": 2, "0_backdoor": 4, "0_clean": 1, "1": 0, "2": 2})
                + recs(1, "ty", {"0": 1, "0_backdoor": 1, "0_clean": 3, "1": 3, "2": 1}), 0.05)
    for x in r:
        x["role"] = ROLES[x["subset"]]
    st = stealth_score(r, ROLES)
    # an old summary (no bootstrap block): computed now from the records, same score
    old = {"score": st["score"], "stealth": st}
    got = run_intervals(old, r)
    assert got["computed"] and got == {**stealth_bootstrap(r, ROLES, epochs=[1], method="m"),
                                       "computed": "now, from mi.jsonl"}
    assert bootstrap_label(got) == "(95%, within-run bootstrap, B=500, computed now)"
    # a summary with its own bootstrap: read as written
    boot = {"score_interval": [0.1, 0.2], "b": 300, "level": 0.95}
    assert run_intervals({"score": 0.15, "stealth": {**st, "bootstrap": boot}}, []) is boot
    assert bootstrap_label(boot) == "(95%, within-run bootstrap, B=300)"
    # records that no longer give the recorded score: no interval
    moved = run_intervals({"score": st["score"] + 0.1, "stealth": st}, r)
    assert moved["score_interval"] is None and "no longer" in moved["note"]
    assert run_intervals(None, r) is None and run_intervals({"score": None}, r) is None
    assert interval_text(0.0912, [0.0831, 0.0994]) == "0.091 [0.083, 0.099]"
    assert interval_text(0.0912, None) == "0.091" and interval_text(None, None) == "–"


def test_value_stderr_prefers_the_image_stderr():
    from ibtui.analysis.stealth import value_stderr

    assert value_stderr({"settings": {"mc_stderr": 0.01, "image_stderr": 0.05}}) == 0.05
    assert value_stderr({"settings": {"mc_stderr": 0.01}}) == 0.01  # older records
    assert value_stderr({"settings": {"image_stderr": None, "mc_stderr": 0.01}}) == 0.01
    assert value_stderr({"settings": {}}) is None
