"""noise-aware: sample propagation for noisy networks (Goldfeld et al. 2019), no training.

I(X;T) = noisy_mi(S, σ) with σ² = σ_T² + σ_m², σ_m = xt_scale × the spread of S over every
measured image of the checkpoint (`prepare`: one measurement scale for every subset; xt_scale = 0
gives the network's own noise, whose value is also kept as settings["network_noise_value"]);
I(T;Ŷ) = noisy_mi_ty(S, W, σ_ty, sigma_t=σ_T). The maths is in ibtui/mi/noise_aware.py.
"""

from typing import Literal

from ibtui.mi.methods import register
from ibtui.mi.methods.base import Checkpoint, Estimator, Job, floats, ints, opt
from ibtui.mi.result import MIEstimate
from ibtui.schema import Schema


class NoiseAwareOptions(Schema):
    k: ints(1, 1024) = opt(8, "noisy forward draws of S per image")
    mc_samples: ints(1, 256) = opt(1, "Monte Carlo noise draws per mixture component")
    bracket: bool = opt(True, "also compute the Kolchinsky-Tracey bracket")
    xt_conditional: Literal["full", "diagonal", "gaussian", "draws"] = opt(
        "full", "T|X: Gaussian with a shared full within-input covariance (shrinkage chosen on "
                "held-out draws; captures correlated upstream noise), the former diagonal one "
                "('diagonal' = 'gaussian'), or the mixture of the k draws (exact as k grows)")
    xt_scale: floats(0.0, 100.0) = opt(
        0.5, "I(X;T) is measured on T + σ_m Z with σ_m = xt_scale × the spread of the "
             "representation at the checkpoint (RMS per coordinate of the images' mean S over "
             "every measured subset): clustering at a scale that follows the representation, so "
             "the curves move instead of sitting at log N. 0 = the network's own noise only (the "
             "paper's quantity; also recorded as settings.network_noise_value)")
    ty_target: Literal["probs", "logits"] = opt(
        "probs", "I(T;Ŷ) with Ŷ = probability vector (9-d) or the 10 logits")
    precision: Literal["float64", "float32"] = opt(
        "float64", "dtype of the pairwise-distance computations")
    chunk_mb: ints(1, 1 << 20) = opt(256, "memory per distance chunk (MiB)")


@register
class NoiseAware(Estimator):
    name = "noise-aware"
    Options = NoiseAwareOptions
    samples = False
    summary = "the network's own noise model, no training: use ibtui.mi.noisy_mi, noisy_mi_ty"

    @classmethod
    def draws(cls, opts: dict) -> int:
        return opts["k"]

    @classmethod
    def prepare(cls, ck: Checkpoint, opts: dict) -> tuple[float, dict]:
        from ibtui.mi.noise_aware import measurement_sigma

        return measurement_sigma(ck.s, ck.sigma_t, opts["xt_scale"])

    @classmethod
    def measure(cls, job: Job, opts: dict) -> MIEstimate:
        from ibtui.mi.noise_aware import noisy_mi, noisy_mi_ty

        na = {key: opts[key] for key in ("mc_samples", "bracket", "chunk_mb", "precision")}
        ck = job.ck
        if job.term == "ty":
            return noisy_mi_ty(job.s, ck.weight, ck.sigma_ty, sigma_t=ck.sigma_t,
                               target=opts["ty_target"], seed=job.seed, **na)
        sigma_xt, scale_info = job.prepared
        est = noisy_mi(job.s, sigma_xt, seed=job.seed, conditional=opts["xt_conditional"], **na)
        est.settings.update(scale_info)
        if opts["xt_scale"] > 0:  # the paper's quantity, for reference (no bounds)
            own = noisy_mi(job.s, ck.sigma_t, seed=job.seed, lower_bound=False,
                           conditional=opts["xt_conditional"], **{**na, "bracket": False})
            est.settings["network_noise_value"] = own.value
        return est
