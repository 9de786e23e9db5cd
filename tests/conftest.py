import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY = """
[[experiment]]
name = "{name}"
dataset = "digits"
width = 8
epochs = {epochs}
mi_epochs = {mi_epochs}
batch_size = 256
lr = 0.05
attack = "{attack}"
poison_rate = 0.1
observe_classes = [1, 2]
mi_method = "noise-aware"
mi_options = {{ k = 2, max_samples = 64 }}
"""


def tiny_spec(path: Path, name: str = "tiny", attack: str = "badnets", epochs: int = 2,
              mi_epochs: str = "[1, 2]") -> Path:
    path.write_text(TINY.format(name=name, attack=attack, epochs=epochs, mi_epochs=mi_epochs))
    return path


def ibtui_cmd() -> list[str]:
    return [sys.executable, "-m", "ibtui.cli"]


@pytest.fixture
def cli_env():
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "200"  # Rich tables: no folding of run ids in captured output
    return env


@pytest.fixture
def one_torch_thread():
    """Tiny problems: one thread is faster and immune to oversubscribed CPUs."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
