"""`sfp bench node --quick`: runs end to end and writes the documented JSON with sane values."""

import json
import math
import subprocess
import sys

from streaming_flow_ros.ros.bench import node as node_bench


def test_bench_node_quick_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "streaming_flow_ros.cli", "bench", "node", "--quick",
                           "--json", str(out)], check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "100 Hz" in proc.stdout and "500 Hz" in proc.stdout
    doc = json.loads(out.read_text())
    assert [r["rate"] for r in doc["runs"]] == [100.0, 500.0]
    keys = {"ticks_ratio", "period_err_p99_ms", "step_p99_ms", "obs_to_cmd_p50_ms", "obs_to_cmd_p99_ms"}
    for r in doc["runs"]:
        assert keys <= set(r), r["rate"]
        assert all(isinstance(r[k], float) and math.isfinite(r[k]) for k in keys), r
        assert 0.3 < r["ticks_ratio"] <= 1.05, r  # loose: a noisy 2-core machine
        assert 0 <= r["period_err_p99_ms"] < 1000 and 0 < r["step_p99_ms"] < 1000
        assert 0 < r["obs_to_cmd_p50_ms"] <= r["obs_to_cmd_p99_ms"] < 5000
    # the generated BENCHMARKS section: one row per run, the command that reproduces it
    text = node_bench.render(doc)
    assert text.count("\n| ") == 2 and "| 100 Hz |" in text and "| 500 Hz |" in text
    assert "Command: `sfp bench node --quick --rates 100 500" in text
