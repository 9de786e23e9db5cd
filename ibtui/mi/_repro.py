"""Bit-for-bit reproducible CPU BLAS: MKL's results otherwise depend on memory alignment.

MKL honours conditional numerical reproducibility (CBWR) only if it is chosen before its first
call: through the MKL_CBWR environment variable read at load time, or `mkl_cbwr_set` before
any MKL work. We set both when we can; `mkl_reproducible()` says whether it took effect.
"""

from __future__ import annotations

import ctypes
import os
import sys

_AUTO = 2  # MKL_CBWR_AUTO: same code path every run on the same CPU


def _set_via_ctypes() -> bool:
    try:
        import torch

        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib",
                                       "libtorch_cpu.so"))
        if lib.mkl_serv_cbwr_get(1) == _AUTO:
            return True
        return lib.mkl_serv_cbwr_set(_AUTO) == 0
    except (OSError, AttributeError, ImportError):
        return False


def ensure_mkl_reproducible() -> bool:
    """Ask MKL for run-to-run identical results; True if it is in effect."""
    os.environ.setdefault("MKL_CBWR", "AUTO")
    if "torch" not in sys.modules:  # MKL not loaded yet: the variable is enough
        return True
    return _set_via_ctypes()


MKL_REPRODUCIBLE = ensure_mkl_reproducible()
