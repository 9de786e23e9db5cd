"""configure_worker: process-wide torch/OpenMP settings, set once at worker start-up."""

import json
import os
import subprocess
import sys

CODE = "import json; from ibtui.runtime import configure_worker; print(json.dumps(configure_worker(2)))"


def _info(**env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", CODE], env={**base, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_threads_and_passive_waiting_by_default_user_setting_wins():
    info = _info()
    assert info["threads"] == 2 and info["interop_threads"] == 1
    assert info["omp_wait_policy"] == "PASSIVE" and info["mkl_cbwr"] == "AUTO"
    assert info["numpy_blas_threads"] == "1"
    assert _info(OMP_WAIT_POLICY="ACTIVE")["omp_wait_policy"] == "ACTIVE"
    assert _info(OPENBLAS_NUM_THREADS="2")["numpy_blas_threads"] == "2"


def test_the_worker_reads_a_runs_threads_through_the_spec_reader(tmp_path):
    """The worker's thread count comes from the run's spec.toml as read_spec_file reads it (one
    TOML reader); a missing or unreadable spec means 'not set'."""
    from ibtui.worker import spec_threads

    (tmp_path / "spec.toml").write_text('[experiment]\nname = "t"\nthreads = 3\n')
    assert spec_threads(tmp_path) == 3
    (tmp_path / "spec.toml").write_text('[experiment]\nname = "t"\nthreads = true\n')
    assert spec_threads(tmp_path) == 0
    (tmp_path / "spec.toml").write_text("not toml [")
    assert spec_threads(tmp_path) == 0
    (tmp_path / "spec.toml").unlink()
    assert spec_threads(tmp_path) == 0
