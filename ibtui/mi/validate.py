"""`ibtui validate-mi [--quick]`: every estimator against ground truth (ibtui.mi.tasks).

`run_validation(quick, out_png, methods, progress)` returns one row per (task, method):
{task, truth, method, estimate, lower, upper, ceiling, error, rel_error, seconds, n, detail}
and, when out_png is given, saves a two-panel figure: estimate vs truth for every task, and the
paper's InfoNCE-vs-MINE comparison (estimate vs true MI as the Gaussian's MI grows).
Rows of the comparison curve have task "curve-<mi>".
`python -m ibtui.mi.validate [--quick] [--out FILE.png]` prints the rows as a Rich table.
Quick mode (a few minutes on 2 cores): one task of each family (`family`) on smaller sizes
(`_build_tasks`, `noisy_net_tasks`, `bmi_tasks`, one curve point); the noise-aware estimator runs
on every task, the trained estimators on QUICK_TRAINED_TASKS, the curve and the bmi task
(`plan_jobs`), seeing 500 (infonce-paper) or 1,000 pairs, infonce-paper for 4 epochs and
separable and mine for at most 200 steps: a smoke test that every estimator runs and lands near
the truth, far from their converged accuracy (the full run is the complete check). The
noise-aware estimator always sees every sample. Progress ends with an estimate of the time left.
Rows "noise-aware/gaussian" use `noisy_mi(..., conditional="gaussian")` on tasks with k > 1.
Full mode: all samples, the paper's schedules (hours on CPU).

Tasks for the noisy-network conditionals and the trained estimators (both modes):
- noisy networks with correlated upstream noise (`tasks.noisy_linear`: exact truth by whitening;
  `tasks.noisy_relu`: truth = the mixture over k = 1,024 draws, 2-d) for the noise-aware
  estimator with its three conditionals: "noise-aware" (full covariance, the default; its `lower`
  is the held-out Barber–Agakov bound), "noise-aware/diagonal" (the former default) and
  "noise-aware/draws" (mixture of the k draws);
- bmi-benchmark-style tasks (`tasks.bmi_task`, Czyż et al. 2023: Gaussian pairs under half-cube,
  asinh or normal-CDF transforms, 0.5–4 nats, 5–20 dims, 5,000 pairs) for infonce-separable and
  mine (default options: step budgets, convergence rule; `converged` in the row).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ibtui.fmt import NONE, num
from ibtui.mi import tasks as T
from ibtui.mi.estimate import estimate, sample_methods
from ibtui.mi.methods import METHODS
from ibtui.mi.noise_aware import noisy_mi, noisy_mi_ty
from ibtui.mi.result import MIEstimate

Progress = Callable[[float, str], None] | None
CURVE_METHODS = ("infonce-paper", "mine", "noise-aware")
QUICK_SAMPLES = {"infonce-paper": 500, "infonce-separable": 1000, "mine": 1000}
QUICK_EPOCHS = {"infonce-paper": 4}
QUICK_STEPS = 200  # infonce-separable and mine in quick mode (their convergence rule may stop sooner)


def _build_tasks(quick: bool) -> list[T.Task]:
    """Quick: every family once, smaller (2,000 Gaussian pairs, 200 digits with references at
    fewer draws, the noisy f on 64 digits with its truth at k = 32 and the estimators at k = 4)."""
    out = [T.paper_gaussian(2000 if quick else 10_000)]
    out += [T.high_mi_gaussian(mi, n=2000 if quick else 10_000)
            for mi in ((2,) if quick else (2, 4, 6, 8, 10))]
    # noisy-network surrogate, deterministic f: truth = independent MC reference (64 draws each)
    n_sur = 200 if quick else 500
    x, s, sigma = T.surrogate(n_sur, 1, 0.0)
    t = s[:, 0] + sigma * torch.randn(s[:, 0].shape, generator=torch.Generator().manual_seed(1))
    a = x.reshape(len(x), -1).float() / 255.0
    out.append(T.Task("surrogate-xt", T.reference_xt(s, sigma, draws=8 if quick else 64), a, t,
                      "xt", s, sigma, detail=f"{n_sur} digits, random conv f, T 512-d"))
    # I(T;Ŷ) on the same surrogate
    w, b = T.surrogate_ty_weight()
    sigma_ty = 4 * sigma  # the paper's ratio σ_ty / σ_T = 0.4 / 0.1
    g = torch.Generator().manual_seed(2)
    probs = torch.softmax((t + sigma_ty * torch.randn(t.shape, generator=g)) @ w.T + b, 1)
    ty_truth = T.reference_ty(s, w, sigma_ty, sigma, draws=8 if quick else 128)
    out.append(T.Task("surrogate-ty", ty_truth, t, probs, "ty", s, sigma,
                      {"weight": w, "sigma_ty": sigma_ty, "sigma_t": sigma},
                      detail="Ŷ = softmax(W(T + 4σ_T Z) + b)"))
    # noisy f (internal noise like the real network): truth at k = 64, estimators at k = 8
    n_f, k_f, k_est = (64, 32, 4) if quick else (128, 64, 8)
    x, s, sigma = T.surrogate(n_f, k_f, 0.05)
    truth = T.reference_xt(s, sigma, draws=1 if quick else 4)
    t = s[:, 0] + sigma * torch.randn(s[:, 0].shape, generator=torch.Generator().manual_seed(3))
    out.append(T.Task("surrogate-xt-noisy-f", truth, x.reshape(len(x), -1).float() / 255.0, t,
                      "xt", s[:, :k_est], sigma,
                      detail=f"{n_f} digits, noisy f, k={k_est} vs truth at k={k_f}"))
    return out


def family(task: str) -> str:
    """The family of a validation task, by name: the quick check runs every estimator on at
    least one task of each family it applies to."""
    for prefix, fam in (("paper-gaussian", "gaussian"), ("gauss", "gaussian"),
                        ("surrogate", "surrogate"), ("curve-", "curve"), ("linear", "noisy-linear"),
                        ("relu", "noisy-relu"), ("bmi", "bmi")):
        if task.startswith(prefix):
            return fam
    return task


# Quick mode: the trained estimators (the slow ones) run on one task of each family only
QUICK_TRAINED_TASKS = ("paper-gaussian", "surrogate-ty")
QUICK_CURVE_MI = (4,)
# relative cost of one job by method, for the estimate of the time left (measured in quick mode)
JOB_COST = {"noise-aware": 2.0, "noise-aware/gaussian": 2.0, "noise-aware/diagonal": 0.3,
            "noise-aware/draws": 0.3, "infonce-paper": 4.0, "infonce-separable": 8.0, "mine": 12.0}


NOISY_NET_METHODS = ("noise-aware", "noise-aware/diagonal", "noise-aware/draws")
BMI_METHODS = ("infonce-separable", "mine")


def noisy_net_tasks(quick: bool) -> list[T.NoisyNetTask]:
    """Correlated-upstream-noise tasks: noisy linear nets (16-, 32- and 64-d T, ~0.9 nats to
    log N; one noise draw each, so at k = 4 a low-MI value varies by up to ~10% around the
    truth: bench/bench_mi_noisy_tasks.py measures the bias over many draws) and small noisy
    ReLU nets (2-d)."""
    if quick:  # one of each
        return [T.noisy_linear(0.5, d=64, k=4, ref_draws=16),
                T.noisy_relu(2.0, n=30, k=8, k_ref=256)]
    lin = [(16, 0.4), (16, 0.8), (32, 0.3), (64, 0.5), (64, 0.8), (64, 1.6),
           (16, 1.6), (32, 0.6), (64, 0.3), (64, 1.2)]
    out = [T.noisy_linear(scale, d=d, k=4, ref_draws=64) for d, scale in lin]
    out += [T.noisy_relu(scale, n=40, k=8, k_ref=1024) for scale in (0.5, 1.0, 2.0, 4.0)]
    return out


def bmi_tasks(quick: bool, n: int = 5000) -> list[T.Task]:
    """Invertible-transform tasks with closed-form truth (0.5–4 nats, 5–20 dims)."""
    if quick:  # one, on the quick sample size
        return [T.bmi_task(2.0, 10, "halfcube", "both", n=QUICK_SAMPLES["mine"])]
    specs = [(0.5, 5, "id", "both"), (1.0, 20, "normalcdf", "y"), (2.0, 10, "halfcube", "both"),
             (4.0, 5, "normalcdf", "both"), (4.0, 20, "asinh", "y"),
             (0.5, 20, "asinh", "both"), (2.0, 5, "asinh", "y"),
             (1.0, 10, "halfcube", "y"), (3.0, 10, "normalcdf", "both")]
    return [T.bmi_task(mi, d, tr, side, n=n) for mi, d, tr, side in specs]


def _run_noisy_net(task: T.NoisyNetTask, method: str, seed: int = 0) -> MIEstimate:
    cond = {"noise-aware": "full", "noise-aware/diagonal": "diagonal",
            "noise-aware/draws": "draws"}[method]
    return noisy_mi(task.s, task.sigma, conditional=cond, mc_samples=4, seed=seed)


def _run(task: T.Task, method: str, quick: bool, seed: int = 0,
         progress: Progress = None) -> MIEstimate:
    if method == "noise-aware/gaussian":
        return noisy_mi(task.s, task.sigma, conditional="gaussian", seed=seed)
    if method == "noise-aware":
        if task.ty:
            return noisy_mi_ty(task.s, task.ty["weight"], task.ty["sigma_ty"],
                               sigma_t=task.ty["sigma_t"], mc_samples=4, seed=seed)
        return noisy_mi(task.s, task.sigma, mc_samples=4 if len(task.s) < 2000 else 1,
                        seed=seed)
    n = min(len(task.a), QUICK_SAMPLES.get(method, 1000) if quick else len(task.a))
    opts: dict = {"seed": seed, "progress": progress}
    if quick and method in QUICK_EPOCHS:
        opts["max_epochs"] = QUICK_EPOCHS[method]
    elif quick:
        opts["max_steps"] = QUICK_STEPS
    if method == "infonce-paper":
        opts["term"] = task.term
    return estimate(task.a[:n], task.b[:n], method, **opts)


def _row(task: str, truth: float, est: MIEstimate, n: int, detail: str = "") -> dict:
    err = est.value - truth
    return {"task": task, "truth": truth, "method": est.method, "estimate": est.value,
            "lower": est.lower, "upper": est.upper, "ceiling": est.ceiling, "error": err,
            "rel_error": err / truth if truth else None, "seconds": est.seconds, "n": n,
            "detail": detail}


def plan_jobs(quick: bool, methods: list[str], task_list: list, curve: list, noisy: list,
              bmi: list) -> list[tuple]:
    """The (task, method) jobs of a validation run, in order. Full: every method on every task.
    Quick: the noise-aware estimator (and its conditionals) on every task, the trained
    estimators on QUICK_TRAINED_TASKS, the curve and bmi tasks given (one each): every estimator
    on at least one task of every family it applies to (`family`)."""
    trained = [m for m in methods if m != "noise-aware"]
    jobs = []
    for t in task_list:
        for m in methods:
            if m == "noise-aware" or not quick or t.name in QUICK_TRAINED_TASKS:
                jobs.append((t, m))
    if "noise-aware" in methods:  # the k-bias-free variant where the draws of S differ
        jobs += [(t, "noise-aware/gaussian") for t in task_list if t.s.shape[1] > 1]
    jobs += [(t, m) for t in curve for m in CURVE_METHODS if m in methods]
    if "noise-aware" in methods:
        jobs += [(t, m) for t in noisy for m in NOISY_NET_METHODS]
    jobs += [(t, m) for t in bmi for m in BMI_METHODS if m in trained]
    return jobs


def _eta(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def run_validation(quick: bool, out_png: Path | None, methods: list[str] | None,
                   progress: Progress = None) -> list[dict]:
    """Run every method on every task (and the comparison curve); see the module doc.
    Progress details end with an estimate of the time left (elapsed time per unit of
    JOB_COST so far × the cost left)."""
    # the noise-aware estimator and those trained on samples (estimate()); an estimator of
    # another kind needs its own tasks here before it can be checked
    methods = [m for m in (methods or list(METHODS))
               if m == "noise-aware" or m in sample_methods()]
    report = progress or (lambda f, d: None)
    report(0.0, "building tasks")
    task_list = _build_tasks(quick)
    curve_mi = QUICK_CURVE_MI if quick else (0.5, 1, 2, 3, 4, 5, 6, 8)
    curve = [T.gaussian_curve(mi, 1000 if quick else 10_000) for mi in curve_mi]
    noisy = noisy_net_tasks(quick) if "noise-aware" in methods else []
    bmi = bmi_tasks(quick) if any(m in BMI_METHODS for m in methods) else []
    jobs = plan_jobs(quick, methods, task_list, curve, noisy, bmi)
    costs = [JOB_COST.get(m, 1.0) for _, m in jobs]
    total_cost, done_cost = sum(costs) or 1.0, 0.0
    t_jobs = time.perf_counter()
    rows = []
    for i, (task, method) in enumerate(jobs):
        label = f"{task.name} {method}"
        if done_cost > 0:
            per = (time.perf_counter() - t_jobs) / done_cost
            label += f" (~{_eta(per * (total_cost - done_cost))} left)"
        report(0.05 + 0.95 * done_cost / total_cost, label)
        done_cost += costs[i]
        if isinstance(task, T.NoisyNetTask):
            est = _run_noisy_net(task, method)
            row = _row(task.name, task.truth, est, len(task.s), task.detail)
            row["method"] = method
            rows.append(row)
            continue
        if task.name.startswith("bmi"):
            opts = {"max_steps": QUICK_STEPS} if quick else {}
            est = estimate(task.a, task.b, method, seed=0, **opts)
            row = _row(task.name, task.truth, est, len(task.a), task.detail)
            row["converged"] = est.settings.get("converged")
            rows.append(row)
            continue
        est = _run(task, method, quick)
        n = est.settings.get("n", len(task.a))
        row = _row(task.name, task.truth, est, n, task.detail)
        row["method"] = method
        rows.append(row)
    report(1.0, "done")
    if out_png is not None:
        plot(rows, Path(out_png))
    return rows


def plot(rows: list[dict], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    color = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(r["method"] for r in rows))}
    main = [r for r in rows if not r["task"].startswith("curve-")]
    names = list(dict.fromkeys(r["task"] for r in main))
    meths = list(dict.fromkeys(r["method"] for r in main))
    width = 0.8 / max(len(meths), 1)
    for j, m in enumerate(meths):
        xs, ys = [], []
        for i, name in enumerate(names):
            for r in main:
                if r["task"] == name and r["method"] == m:
                    xs.append(i + (j - (len(meths) - 1) / 2) * width)
                    ys.append(r["estimate"] - r["truth"])
        ax1.bar(xs, ys, width, label=m, color=color[m])
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    ax1.set_ylabel("estimate − truth (nats)")
    ax1.set_title("Error against ground truth")
    ax1.legend(fontsize=8)
    curve = [r for r in rows if r["task"].startswith("curve-")]
    for m in dict.fromkeys(r["method"] for r in curve):
        pts = sorted((r["truth"], r["estimate"]) for r in curve if r["method"] == m)
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=m, color=color[m])
    if curve:
        top = max(r["truth"] for r in curve)
        ax2.plot([0, top], [0, top], "k--", lw=0.8, label="truth")
        for r in curve:
            if r["method"] == "infonce-paper" and r["ceiling"]:
                ax2.axhline(r["ceiling"], color="grey", ls=":", lw=0.8)
                break
    ax2.set_xlabel("true I(X;Y) (nats)")
    ax2.set_ylabel("estimate (nats)")
    ax2.set_title("Paper's Gaussian task, MI scaled: InfoNCE vs MINE")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="MI estimators vs ground truth (nats)")
    for col in ("task", "method", "truth", "estimate", "error", "bracket", "ceiling", "n", "s"):
        table.add_column(col, justify="left" if col in ("task", "method") else "right")
    for r in rows:
        bracket = (f"[{num(r['lower'], 2)}, {num(r['upper'], 2)}]"
                   if r["lower"] is not None else NONE)
        table.add_row(r["task"], r["method"], num(r["truth"]), num(r["estimate"]),
                      f"{r['error']:+.3f}", bracket, num(r["ceiling"], 2), str(r["n"]),
                      num(r["seconds"], 1))
    Console(width=max(Console().width, 132)).print(table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ibtui.mi.validate", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer samples and epochs")
    p.add_argument("--out", type=Path, default=None, help="save the figure to this PNG")
    p.add_argument("--methods", default=None, help="comma-separated subset of methods")
    args = p.parse_args(argv)
    methods = args.methods.split(",") if args.methods else None
    t0 = time.perf_counter()
    def progress(frac: float, detail: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {100 * frac:5.1f}% {detail}", flush=True)

    rows = run_validation(args.quick, args.out, methods, progress)
    print_table(rows)
    print(f"total {time.perf_counter() - t0:.0f} s" + (f"; figure: {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
