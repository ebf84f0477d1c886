"""`sfp soak` in CI: 20 s of the real node at 200 Hz on the simulator (camera on, episodes
auto-resetting) under the invariant checker. The 10-minute run and its numbers are in
docs/RELIABILITY.md; here only the contract: no violation, ticks delivered, JSON keys."""

from __future__ import annotations

import json
import math

from domain_coordinator import domain_id
from ros_harness import tick_bar

from streaming_flow_ros import cli
from streaming_flow_ros.bench.common import CpuSteal
from streaming_flow_ros.ros.bench import soak as soak_bench

KEYS = {"seconds", "ticks_ratio", "period_err_p99_ms", "rss_growth_mb", "violations", "cpu_steal"}


def test_soak_20s(tmp_path, monkeypatch, capfd):
    out = tmp_path / "soak.json"
    with domain_id() as did:
        monkeypatch.setenv("ROS_DOMAIN_ID", str(did))
        steal = CpuSteal()
        rc = cli.main(["soak", "--seconds", "20", "--rate", "200", "--json", str(out)])
        stolen = steal.share()
    printed = capfd.readouterr().out
    res = json.loads(out.read_text())
    print(printed)
    assert KEYS <= set(res), sorted(res)
    assert res["violations"] == 0 and rc == 0, res["checker"]
    assert res["ticks_ratio"] > tick_bar(0.9, stolen), (res, f"CPU steal {stolen:.1%}")
    assert res["seconds"] >= 19.0 and len(res["windows"]) == 2
    for v in [res["cpu_steal"], *(w["cpu_steal"] for w in res["windows"])]:  # NaN only without /proc/stat
        assert (0.0 <= v <= 1.0) if math.isfinite(stolen) else math.isnan(v)
    assert math.isfinite(res["period_err_p99_ms"]) and math.isfinite(res["rss_growth_mb"])
    assert res["checker"]["controller_msgs"] > 0.8 * 20 * 200  # the checker saw the stream
    assert "violations 0" in printed
    # the generated RELIABILITY section: totals, worst window, counts, and the reproducing command
    text = soak_bench.render(res)
    assert "**0 violations**" in text and "worst 10 s window" in text
    assert f"`sfp soak --seconds {res['seconds']:.0f} --rate 200`" in text
    assert res["tick_source"] in ("thread", "timer") and "/tmp" not in res["checkpoint"]
