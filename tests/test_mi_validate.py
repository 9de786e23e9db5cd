"""validate-mi rows for the newer tasks (noisy networks, bmi transforms), on small stand-ins."""

import math

import pytest

from ibtui.mi import tasks as T
from ibtui.mi import validate as V

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_validation_rows_for_noisy_net_and_bmi_tasks(monkeypatch):
    monkeypatch.setattr(V, "_build_tasks", lambda quick: [])
    monkeypatch.setattr(V, "noisy_net_tasks",
                        lambda quick: [T.noisy_linear(0.8, n=40, d=16, k=4, ref_draws=4)])
    monkeypatch.setattr(V, "bmi_tasks", lambda quick: [T.bmi_task(1.0, 5, "asinh", "y", n=300)])
    rows = V.run_validation(True, None, ["noise-aware", "infonce-separable"])
    by = {(r["task"], r["method"]): r for r in rows}
    lin = [r for (task, _), r in by.items() if task.startswith("linear")]
    assert {r["method"] for r in lin} == set(V.NOISY_NET_METHODS)
    full = by[("linear16d-x0.8", "noise-aware")]
    assert full["lower"] <= full["truth"] and full["ceiling"] == pytest.approx(math.log(40))
    assert abs(full["rel_error"]) < 0.15
    sep = by[("bmi5d-1-asinh-y", "infonce-separable")]
    assert sep["truth"] == 1.0 and isinstance(sep["converged"], bool)
    assert any(task.startswith("curve-") for task, _ in by)


def test_quick_plan_runs_every_estimator_on_every_family(monkeypatch):
    """The quick check's task lists and job plan, with the expensive pieces stubbed: every
    estimator on at least one task of each family it applies to, and the full plan a superset."""
    import torch

    from ibtui.mi import METHODS

    monkeypatch.setattr(T, "surrogate", lambda n, k, noise: (
        torch.zeros(n, 2, 2, 3, dtype=torch.uint8), torch.rand(n, k, 4), 1.0))
    monkeypatch.setattr(T, "surrogate_ty_weight", lambda: (torch.rand(10, 4), torch.zeros(10)))
    monkeypatch.setattr(T, "reference_xt", lambda *a, **kw: 1.0)
    monkeypatch.setattr(T, "reference_ty", lambda *a, **kw: 1.0)
    monkeypatch.setattr(T, "noisy_linear", lambda scale, d=32, k=4, **kw: T.NoisyNetTask(
        f"linear{d}d-x{scale:g}", 1.0, torch.zeros(2, k, 1), 0.1))
    monkeypatch.setattr(T, "noisy_relu", lambda scale, n=40, k=8, **kw: T.NoisyNetTask(
        f"relu2d-x{scale:g}", 1.0, torch.zeros(2, k, 1), 0.1))

    def plan(quick):
        curve = [T.gaussian_curve(mi, 10) for mi in (V.QUICK_CURVE_MI if quick else (0.5, 4))]
        return V.plan_jobs(quick, list(METHODS), V._build_tasks(quick), curve,
                           V.noisy_net_tasks(quick), V.bmi_tasks(quick))

    quick = {(V.family(t.name), m) for t, m in plan(True)}
    applies = {"noise-aware": ("gaussian", "surrogate", "curve", "noisy-linear", "noisy-relu"),
               "noise-aware/diagonal": ("noisy-linear", "noisy-relu"),
               "noise-aware/draws": ("noisy-linear", "noisy-relu"),
               "noise-aware/gaussian": ("surrogate",),
               "infonce-paper": ("gaussian", "surrogate", "curve"),
               "infonce-separable": ("gaussian", "surrogate", "bmi"),
               "mine": ("gaussian", "surrogate", "curve", "bmi")}
    for method, families in applies.items():
        for fam in families:
            assert (fam, method) in quick, (fam, method)
    full = plan(False)
    assert {(t.name, m) for t, m in plan(True)} <= {(t.name, m) for t, m in full}
    assert len(plan(True)) < len(full) / 2
    trained = [(t.name, m) for t, m in plan(True) if m in ("infonce-separable", "mine")]
    assert len(trained) <= 8  # the slow jobs stay few
