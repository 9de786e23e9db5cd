"""MI checkpoints at their cost floor: forward passes through a BatchNorm-folded copy (the same
function), at the device's fastest batch size, every distinct image once per draw."""

import numpy as np
import pytest
import torch

from ibtui.mi.checkpoint import default_forward_batch, estimate_checkpoint
from ibtui.models import create_model
from ibtui.models.noisy import folded_copy


@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_folded_copy_is_the_same_function(arch, one_torch_thread):
    torch.manual_seed(0)
    m = create_model(arch, 10, 4, 0.4, 0.4)
    x = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8)
    m.train()
    for _ in range(3):  # running statistics away from their initial values
        m(x)
    m.train()
    f = folded_copy(m)
    assert m.training and not f.training  # the model is left as it was
    assert any(isinstance(b, torch.nn.BatchNorm2d) for b in m.modules())
    assert not any(isinstance(b, torch.nn.BatchNorm2d) for b in f.modules())
    m.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        s0, t0, l0 = m.forward_mi(x)
        torch.manual_seed(1)
        s1, t1, l1 = f.forward_mi(x)  # same noise draws, same order
    assert torch.allclose(s0, s1, rtol=1e-4, atol=1e-5)
    assert torch.allclose(l0, l1, rtol=1e-4, atol=1e-4)


def test_checkpoint_forwards_each_distinct_image_once_per_draw(one_torch_thread, monkeypatch):
    torch.manual_seed(0)
    m = create_model("resnet18", 10, 4, 0.4, 0.4)
    x = torch.randint(0, 256, (40, 32, 32, 3), dtype=torch.uint8)
    seen = []
    real = m.forward_mi

    def counting(model):
        f = folded_copy(model)
        inner = f.forward_mi

        def fwd(xb):
            seen.append(len(xb))
            return inner(xb)

        f.forward_mi = fwd
        return f

    monkeypatch.setattr("ibtui.mi.checkpoint.folded_copy", counting)
    subsets = {"a": np.arange(0, 20), "a_part": np.arange(0, 10), "b": np.arange(15, 40)}
    recs = estimate_checkpoint(m, x, subsets, methods=["noise-aware"],
                               options={"k": 3, "bracket": False}, seed=1, device="cpu")
    assert sum(seen) == 3 * 40  # 55 subset images, 40 distinct, 3 draws each
    assert {r["settings"]["forward_batch"] for r in recs} == {default_forward_batch("cpu")}
    assert m.forward_mi == real
