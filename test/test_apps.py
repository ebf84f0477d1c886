"""The main job and the evaluation command, end to end: simulator nodes + the real policy node
over DDS, one short episode each. Success is not asserted (a noisy CI machine changes timing);
that the loop streams, moves the arm and reports is."""

import json
import os

import numpy as np
import pytest
from domain_coordinator import domain_id

from streaming_flow_ros.ros.closed_loop import ClosedLoop, summarize
from streaming_flow_ros.cli import main as sfp_main
from streaming_flow_ros.ros.node import DEFAULT_CHECKPOINT


@pytest.fixture
def ros_domain(monkeypatch):
    with domain_id() as did:
        monkeypatch.setenv("ROS_DOMAIN_ID", str(did))
        yield did


def test_default_policy_is_shipped_and_valid():
    from streaming_flow_ros.checkpoint import load_model

    assert DEFAULT_CHECKPOINT.is_file(), "run `make default-policy` to regenerate it"
    assert DEFAULT_CHECKPOINT.stat().st_size < 2_000_000
    model, ck = load_model(DEFAULT_CHECKPOINT)
    assert ck.spec.action_names == ("joint1", "joint2", "joint3") and ck.spec.cameras[0].name == "camera"


def test_closed_loop_episode_streams_through_the_node(ros_domain):
    with ClosedLoop(None, 100.0, seed=7, domain_id=ros_domain, time_limit_s=3.0) as loop:
        r = loop.run_episode(0)
        node = loop.node_summary()
    path_len = np.linalg.norm(np.diff(r.ee_path, axis=0), axis=1).sum()
    assert path_len > 0.05, "the arm did not move under the policy's commands"
    s = summarize([r], node)
    assert s["ticks_ratio"] > 0.8 and node["reanchors"] >= 1 and node["tick_errors"] == 0
    json.dumps(s, default=float)


def test_sfp_demo_and_eval_commands(tmp_path, ros_domain, capfd):  # capfd: rclpy needs a real stderr fd
    out = tmp_path / "demo"
    assert sfp_main(["demo", "--episodes", "1", "--out", str(out)]) == 0
    text = capfd.readouterr().out
    assert "summary" in text and "ticks" in text
    assert (out / "demo.png").read_bytes()[:4] == b"\x89PNG"
    d = json.loads((out / "demo.json").read_text())
    assert d["episodes"] == 1 and 0.0 <= d["success_rate"] <= 1.0
    js = tmp_path / "eval.json"
    assert sfp_main(["eval", "sim", "--episodes", "1", "--json", str(js)]) == 0
    e = json.loads(js.read_text())
    assert {"episodes", "success_rate", "collision_rate", "ticks_ratio"} <= set(e)
    assert e["episodes"] == 1 and 0.0 < e["ticks_ratio"] <= 1.0


def test_offline_closed_loop_evaluator_runs_the_default_policy():
    from streaming_flow_ros.apps.offline_eval import main as offline_main

    assert offline_main([str(DEFAULT_CHECKPOINT), "--episodes", "1"]) == 0
