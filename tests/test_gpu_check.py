"""bench/gpu_check.py keeps working: its tiny CPU size runs here, prints one table and writes
one JSON file with every figure a GPU run reports."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_tiny_runs_on_cpu(tmp_path):
    out = tmp_path / "check.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--tiny",
                        "--epochs", "1", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "variant" in r.stdout and "MI share" in r.stdout and "floor" in r.stdout
    res = json.loads(out.read_text())
    assert res["size"] == "tiny" and res["device_type"] == "cpu"
    names = [v["variant"] for v in res["variants"]]
    assert names == ["baseline"] and "channels_last on" in res["not_tried"]  # CPU: NCHW only
    assert all(v.get("epoch_s", 0) > 0 and "error" not in v for v in res["variants"])
    mi = res["mi"]
    assert len(mi["subsets"]) == 13 and mi["distinct_images"] <= mi["subset_images"]
    assert mi["mi_checkpoint_s"] > 0 and mi["floor_s"] > 0 and 0 < res["mi_share"] < 1
