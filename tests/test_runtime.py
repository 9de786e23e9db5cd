"""configure_worker: process-wide torch/OpenMP settings, set once at worker start-up."""

import json
import os
import subprocess
import sys

CODE = "import json; from ibtui.runtime import configure_worker; print(json.dumps(configure_worker(2)))"


def _info(**env) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", CODE], env={**base, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_threads_and_passive_waiting_by_default_user_setting_wins():
    info = _info()
    assert info["threads"] == 2 and info["interop_threads"] == 1
    assert info["omp_wait_policy"] == "PASSIVE" and info["mkl_cbwr"] == "AUTO"
    assert _info(OMP_WAIT_POLICY="ACTIVE")["omp_wait_policy"] == "ACTIVE"
