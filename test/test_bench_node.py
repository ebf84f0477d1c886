"""`sfp bench node --quick`: runs end to end and writes the documented JSON with sane values."""

import json
import math
import subprocess
import sys


def test_bench_node_quick_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "streaming_flow_ros.cli", "bench", "node", "--quick",
                           "--json", str(out)], check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "100 Hz" in proc.stdout and "500 Hz" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"100", "500"}
    keys = {"ticks_ratio", "period_err_p99_ms", "step_p99_ms", "obs_to_cmd_p50_ms", "obs_to_cmd_p99_ms"}
    for rate, r in data.items():
        assert keys <= set(r), rate
        assert all(isinstance(r[k], float) and math.isfinite(r[k]) for k in keys), r
        assert 0.3 < r["ticks_ratio"] <= 1.05, r  # loose: a noisy 2-core machine
        assert 0 <= r["period_err_p99_ms"] < 1000 and 0 < r["step_p99_ms"] < 1000
        assert 0 < r["obs_to_cmd_p50_ms"] <= r["obs_to_cmd_p99_ms"] < 5000
