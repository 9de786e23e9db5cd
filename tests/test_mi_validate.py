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
