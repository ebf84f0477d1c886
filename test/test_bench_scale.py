"""`sfp bench scale`: the real-time loop harness on a tiny network (behaviour, not timing) and
the generated table."""

from __future__ import annotations

from streaming_flow_ros.bench.scale import _spec, largest_one_step, realtime, render
from streaming_flow_ros.checkpoint import make_untrained_checkpoint


def test_realtime_runs_the_control_loop_with_plans_from_the_worker(tmp_path):
    path = make_untrained_checkpoint(tmp_path / "tiny.safetensors", _spec())
    for integration, mode in (("tick", "tick"), ("worker", "worker")):
        r = realtime(path, integration, 1.0, "cpu")
        assert r["mode"] == mode and r["ticks"] > 0 and r["prepare_errors"] == 0
        assert r["obs_to_start_ms"]["n"] >= 1  # the loop took a plan the worker prepared
        assert 0 < r["ticks_ratio"] <= 1 and r["tick_ms"]["n"] == r["ticks"]
    assert r["ticks_per_step"] >= 1 and r["delay_ticks"] == 2 * r["ticks_per_step"] and "stalls" in r


def _row(size: str, encoder: str, vel: float, ok: bool, auto_mode: str = "tick") -> dict:
    run = {"ticks_ratio": 0.995, "tick_ms": {"p99": 1.0}, "overran": 0, "cpu_steal": 0.01, "flow_steps_per_s": 99.0,
           "mode": "tick", "ticks_per_step": 1, "delay_ticks": 0}
    auto = {**run, "mode": auto_mode, "ticks_per_step": 5 if auto_mode == "worker" else 1, "stalls": 2}
    return {"size": size, "encoder": encoder, "velocity_params": vel, "encoder_params": 11.2e6,
            "pass_ms": {"p50": 1.0, "p99": 2.0}, "prepare_ms": {"p50": 20.0}, "tick": run, "auto": auto,
            "one_step_per_tick": ok, "ttfa_tick_ms": 21.0, "ttfa_auto_ms": 120.0}


def test_render_lists_every_network_and_the_largest_one_step_per_tick():
    rows = [_row("1m", "resnet18", 2e6, True), _row("16m", "resnet18", 20e6, True),
            _row("64m", "resnet18", 74e6, False, "worker")]
    doc = {"device": "cpu", "machine": {"cpu": "x", "cpu_count": 2, "load_avg_1_5_15": [1.0, 1.0, 1.0]},
           "seconds_per_run": 5.0, "rows": rows, "largest_one_step_per_tick": largest_one_step(rows),
           "command": "sfp bench scale", "node": None}
    text = render(doc)
    assert text.count("| resnet18 |") == 3 and "| worker 5, 99.5 %, 1.00, 2 |" in text
    assert "**resnet18 encoder + 16m velocity net** (31.2 M parameters)" in text
    assert "CPU steal per real-time run: 1.0-1.0 %" in text and "Command: `sfp bench scale`" in text
    assert largest_one_step([_row("1m", "small", 1.0, False)]) is None
