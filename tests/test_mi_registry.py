"""The MI estimator registry (ibtui/mi/methods): one module registers an estimator, which the
checkpoint code then runs with its own options from the flat mi_options table; an unknown
name is refused, never run with another estimator's settings."""

import math

import numpy as np
import pytest
import torch

from ibtui.errors import SpecError
from ibtui.mi import ESTIMATORS, METHODS, Estimator, MIEstimate, estimate_checkpoint, register, validate_mi_options
from ibtui.mi.methods.base import Checkpoint, Job, floats, ints, opt
from ibtui.models import create_model
from ibtui.schema import Schema

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ToyOptions(Schema):
    toy_draws: ints(1, 16) = opt(2, "noisy draws of S per image it asks for")
    toy_scale: floats(0.0, 10.0) = opt(1.0, "multiplies its value")


class Toy(Estimator):
    """What one new module of ibtui/mi/methods would declare."""

    name = "toy"
    Options = ToyOptions
    seen: list = []

    @classmethod
    def draws(cls, opts: dict) -> int:
        return opts["toy_draws"]

    @classmethod
    def prepare(cls, ck: Checkpoint, opts: dict) -> int:
        return len(ck.union)

    @classmethod
    def measure(cls, job: Job, opts: dict) -> MIEstimate:
        a, b = job.pairs()
        cls.seen.append((job.term, job.subset, tuple(job.s.shape), tuple(a.shape), tuple(b.shape),
                         job.prepared, job.seed))
        n = len(job.images)
        return MIEstimate(opts["toy_scale"] * float(a.mean() > -1) * math.log(n), cls.name,
                          ceiling=math.log(n), settings={"union": job.prepared})


@pytest.fixture
def toy():
    register(Toy)
    Toy.seen.clear()
    yield Toy
    ESTIMATORS.pop(Toy.name)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width=4)
    x = torch.randint(0, 256, (30, 32, 32, 3), dtype=torch.uint8)
    subsets = {"0": np.arange(0, 12), "1": np.arange(12, 30), "tiny": np.arange(0, 1)}
    return model, x, subsets


def test_a_registered_estimator_runs_through_the_checkpoint(toy, setup):
    model, x, subsets = setup
    opts = validate_mi_options("toy", {"toy_scale": 2, "toy_draws": 3.0})
    assert opts["toy_scale"] == 2.0 and opts["toy_draws"] == 3 and type(opts["toy_draws"]) is int
    assert opts["k"] == 8  # the other estimators' keys stay in the one table
    recs = estimate_checkpoint(model, x, subsets, methods=["toy"], options=opts, seed=1,
                               device="cpu")
    assert [(r["term"], r["subset"]) for r in recs] == [("xt", "0"), ("ty", "0"), ("xt", "1"),
                                                       ("ty", "1")]  # "tiny": < 2 images
    for r in recs:
        assert r["method"] == "toy" and r["value"] == pytest.approx(2 * math.log(r["n"]))
        assert r["settings"]["k"] == 3 and r["settings"]["union"] == 30
        assert r["ceiling"] == pytest.approx(math.log(r["n"])) and r["at_ceiling"] is True
    d = model.classifier.in_features
    assert toy.seen[0][:5] == ("xt", "0", (12, 3, d), (12, 32 * 32 * 3), (12, d))
    assert toy.seen[1][:5] == ("ty", "0", (12, 3, d), (12, d), (12, 10))
    assert len({s[-1] for s in toy.seen}) == 4  # a seed of its own per job


def test_beside_noise_aware_the_forward_passes_give_the_most_draws_asked(toy, setup):
    model, x, subsets = setup
    opts = validate_mi_options(["noise-aware", "toy"], {"k": 2, "toy_draws": 5, "bracket": False})
    recs = estimate_checkpoint(model, x, {"1": subsets["1"]}, methods=["noise-aware", "toy"],
                               options=opts, seed=1, device="cpu")
    assert [r["method"] for r in recs] == ["noise-aware", "noise-aware", "toy", "toy"]
    assert {r["settings"]["k"] for r in recs} == {5}


def test_an_unknown_method_is_refused_never_given_other_settings(setup):
    model, x, subsets = setup
    allowed = ", ".join(METHODS)
    assert "toy" not in ESTIMATORS
    with pytest.raises(SpecError, match=f"^mi_method: unknown method 'toy'; allowed: {allowed}$"):
        validate_mi_options("toy", {})
    with pytest.raises(SpecError, match="^mi_method: unknown method 'toy'; allowed: "):
        estimate_checkpoint(model, x, subsets, methods=["noise-aware", "toy"],
                            options=validate_mi_options("noise-aware", {}), seed=1, device="cpu")
    # its options are no key of the table either
    with pytest.raises(SpecError, match="^mi_options.toy_scale: unknown; allowed: forward_batch, "):
        validate_mi_options("noise-aware", {"toy_scale": 2.0})


def test_one_key_means_one_thing():
    class Clash(Schema):
        k: ints(1, 4) = opt(2, "not noise-aware's k")

    class Bad(Estimator):
        name = "bad"
        Options = Clash

    with pytest.raises(TypeError, match="mi_options.k is declared differently by noise-aware"):
        register(Bad)

    class Nameless(Estimator):
        pass

    with pytest.raises(TypeError, match="needs a name"):
        register(Nameless)
    assert "bad" not in ESTIMATORS


def test_the_built_in_estimators():
    assert METHODS == ("noise-aware", "infonce-paper", "infonce-separable", "mine")
    for name in METHODS:
        assert ESTIMATORS[name].name == name and ESTIMATORS[name].summary
