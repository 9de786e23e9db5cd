"""Process-wide settings of a worker, made once at its start-up and recorded with the run.

Everything that changes numerics for the whole process lives here and nowhere else: thread
counts (OpenMP, MKL, torch intra/inter-op) and MKL's reproducibility mode. They are set before
torch is imported where they can only be read at load time. `runtime_info()` is what goes into
status.json and summary.json so two runs can be compared knowingly.
"""

from __future__ import annotations

import os
import platform
import sys

# MKL's CPU results otherwise depend on memory alignment: AUTO = the same code path on every run
# of the same CPU. MKL reads this only when it loads, so it must be set before torch is imported.
MKL_MODE = "AUTO"


def passive_openmp() -> None:
    """OpenMP threads that wait by spinning collapse when the cores are shared (other workers,
    the app, a test suite): 2-thread training steps went from ~0.25 s to 3-5 s on a busy
    2-core box, and PASSIVE waiting avoids it (python bench/bench_omp_wait.py). A user's own
    setting wins. Must run before torch is imported (a worker, `validate-mi`)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def one_numpy_blas_thread() -> None:
    """numpy's and scipy's BLAS (OpenBLAS; torch uses MKL) only does the per-class statistics'
    small matrices in a worker, where a second thread costs more than it computes: 1.8-6x
    slower idle, 3.5x beside busy cores (python bench/bench_numpy_blas.py). A user's setting
    wins. Must run before numpy is imported (a worker; the test processes, tests/conftest.py)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def configure_worker(threads: int) -> dict:
    """Call first thing in a worker process, before anything imports torch."""
    threads = max(1, int(threads))
    if "torch" in sys.modules:
        raise RuntimeError("configure_worker must run before torch is imported")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    one_numpy_blas_thread()
    os.environ["MKL_CBWR"] = MKL_MODE
    passive_openmp()
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)  # one model per process: inter-op parallelism only contends
    return runtime_info()


def cpu_description() -> tuple[str, list[str]]:
    """(model name, the SIMD flags that change numerics) from /proc/cpuinfo where it exists."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags":
                    have = set(value.split())
                    flags = sorted(f for f in have if f.startswith(("avx", "amx", "fma", "sse4")))
                    break
    except OSError:
        pass
    return model, flags


def runtime_info() -> dict:
    import torch

    model, flags = cpu_description()
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "mkl": torch.backends.mkl.is_available(),
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "numpy_blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "onednn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        "cpu": model,
        "cpu_flags": flags,
        "python": platform.python_version(),
    }
