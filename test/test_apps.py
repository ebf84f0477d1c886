"""The main job and the evaluation command, end to end: simulator nodes + the real policy node
over DDS, one short episode each. Success is not asserted (a noisy CI machine changes timing);
that the loop streams, moves the arm and reports is."""

import json

import numpy as np
import pytest
from domain_coordinator import domain_id
from ros_harness import tick_bar

from streaming_flow_ros.bench import sim_quality
from streaming_flow_ros.cli import main as sfp_main
from streaming_flow_ros.ros.closed_loop import ClosedLoop, summarize
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
    _model, ck = load_model(DEFAULT_CHECKPOINT)
    assert ck.spec.action_names == ("joint1", "joint2", "joint3") and ck.spec.cameras[0].name == "camera"


def test_closed_loop_episode_streams_through_the_node(ros_domain):
    from streaming_flow_ros.bench.common import CpuSteal

    steal = CpuSteal()
    with ClosedLoop(None, 100.0, seed=7, domain_id=ros_domain, time_limit_s=3.0) as loop:
        r = loop.run_episode(0)
        node = loop.node_summary()
    stolen = steal.share()
    path_len = np.linalg.norm(np.diff(r.ee_path, axis=0), axis=1).sum()
    assert path_len > 0.05, "the arm did not move under the policy's commands"
    s = summarize([r], node)
    assert s["ticks_ratio"] > tick_bar(0.8, stolen), (s["ticks_ratio"], f"CPU steal {stolen:.1%}")
    assert node["reanchors"] >= 1 and node["tick_errors"] == 0
    json.dumps(s, default=float)


def test_sfp_demo_and_eval_commands(tmp_path, ros_domain, capfd):  # capfd: rclpy needs a real stderr fd
    out = tmp_path / "demo"
    assert sfp_main(["demo", "--robot", "sim", "--episodes", "1", "--out", str(out)]) == 0
    text = capfd.readouterr().out
    assert "summary" in text and "ticks" in text
    assert (out / "demo.png").read_bytes()[:4] == b"\x89PNG"
    d = json.loads((out / "demo.json").read_text())
    assert d["episodes"] == 1 and 0.0 <= d["success_rate"] <= 1.0
    js = tmp_path / "eval.json"
    assert sfp_main(["eval", "sim", "--episodes", "1", "--param", "start_sigma=0.1", "--json", str(js)]) == 0
    e = json.loads(js.read_text())
    assert {"episodes", "success_rate", "collision_rate", "ticks_ratio"} <= set(e)
    assert e["episodes"] == 1 and 0.0 < e["ticks_ratio"] <= 1.0
    # the docs table (`sfp bench docs`) reads what the command writes, and names the command
    assert e["node_parameters"] == {"start_sigma": 0.1}
    text = sim_quality.render_eval([e])
    assert f"| shipped | `start_sigma=0.1` | 1 | {round(e['success_rate'])}/1 |" in text
    assert f"Command: `sfp eval sim --episodes 1 --param start_sigma=0.1 --json {js}`." in text


def test_sfp_demo_streams_the_shipped_lift_policy_to_the_panda_cell(tmp_path, capfd):
    """`make demo`: the shipped Lift policy through the node on the MuJoCo Panda cell (one
    episode); the picture and the JSON are written. Success is reported, not asserted (it is a
    learned policy on a shared CPU; BENCHMARKS.md has the measured rate)."""
    import importlib.util

    if importlib.util.find_spec("mujoco") is None or importlib.util.find_spec("robosuite") is None:
        pytest.skip("mujoco / robosuite's model files are not installed")  # not imported here: cells/ picks the GL
    out = tmp_path / "demo"
    assert sfp_main(["demo", "--episodes", "1", "--out", str(out)]) == 0
    text = capfd.readouterr().out
    assert "MuJoCo panda cell" in text and "summary: lifted" in text
    assert (out / "demo.png").read_bytes()[:4] == b"\x89PNG"
    d = json.loads((out / "demo.json").read_text())
    assert d["episodes"] == 1 and d["robot"] == "panda" and 0.5 < d["ticks_ratio"] <= 1.0
    assert d["per_episode"][0]["duration"] > 1.0 and d["node"]["input_errors"] == 0


def test_offline_closed_loop_evaluator_runs_the_default_policy():
    from streaming_flow_ros.apps.offline_eval import main as offline_main

    assert offline_main([str(DEFAULT_CHECKPOINT), "--episodes", "1"]) == 0


def test_offline_evaluator_runs_a_chunk_baseline_with_a_chosen_sampler(tmp_path, capsys):
    """--sampler: a DP checkpoint (untrained, with the default policy's spec) sampled with DDIM."""
    from streaming_flow_ros.apps.offline_eval import main as offline_main
    from streaming_flow_ros.baselines.config import DPConfig
    from streaming_flow_ros.baselines.train import make_untrained_baseline_checkpoint
    from streaming_flow_ros.checkpoint import read_checkpoint

    spec = read_checkpoint(DEFAULT_CHECKPOINT).spec
    ck = make_untrained_baseline_checkpoint(tmp_path / "dp.safetensors", spec, DPConfig(down_dims=(16, 32)))
    assert offline_main([str(ck), "--episodes", "1", "--sampler", "ddim"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["episodes"] == 1 and 0.0 <= out["success_rate"] <= 1.0


def test_bench_sim_quick_trains_and_evaluates_through_the_node(tmp_path, ros_domain, capfd):
    """`sfp bench sim --quick`: a dataset built from the fixture bag, SFP and DP trained for a few
    steps, each run through the real node on the sim; the JSON has every method's numbers."""
    from pathlib import Path

    bag = Path(__file__).parent / "fixtures" / "sim_episode" / "episode_00000"
    data = tmp_path / "dataset"
    assert sfp_main(["dataset", "build", str(bag), "--out", str(data), "--joint-topic", "/joint_states",
                     "--camera-topic", "camera=/camera/image_raw", "--rate", "10", "--action-source", "command",
                     "--action-topic", "/joint_trajectory_controller/joint_trajectory"]) == 0
    js = tmp_path / "sim.json"
    stress = ["--latency-ms", "0,300", "--stress-methods", "sfp"]
    assert sfp_main(["bench", "sim", "--quick", "--dataset", str(data), "--workdir", str(tmp_path / "work"),
                     "--methods", "sfp,dp_ddim", "--json", str(js), *stress]) == 0
    doc = json.loads(js.read_text())
    lat = doc["stress"]["latency"]
    assert set(lat) == {"sfp"} and set(lat["sfp"]) == {"0", "300"}
    assert [lat["sfp"][k]["latency_s"] for k in ("0", "300")] == [0.0, 0.3]
    assert all(r["episodes"] == 1 and 0.0 <= r["success_rate"] <= 1.0 for r in lat["sfp"].values())
    none = tmp_path / "none.json"
    assert sfp_main(["bench", "plot", "--sim", str(js), "--latency", str(none), "--pusht", str(none), "--pusht-pixels", str(none),
                     "--out", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img" / "sim_quality.png").stat().st_size > 5000
    for m in ("sfp", "dp_ddim"):
        r = doc[m]
        assert len(r["seeds"]) == 1 and r["seeds"][0]["episodes"] == 2 and r["seeds"][0]["train"]["steps"] == 20
        assert 0.0 <= r["success_mean"] <= 1.0 and 0.0 < r["ticks_ratio_mean"] <= 1.0
    assert doc["dp_ddim"]["seeds"][0]["node_params"]["sampler"] == "ddim"
    text = sim_quality.render(doc)  # the docs section `sfp bench docs` draws from this JSON
    assert "| SFP | " in text and "| DP-DDIM | " in text and "| 0 ms | 300 ms |" in text
    assert f"`sfp bench sim --quick --dataset {data} --workdir {tmp_path / 'work'} --methods sfp,dp_ddim --latency-ms 0,300 --stress-methods sfp`" in text
    assert "dp_ddim" in capfd.readouterr().out
    # a re-run reuses the trainings and evaluations (their files are not rewritten)
    cached = sorted((tmp_path / "work").rglob("*.json")) + sorted((tmp_path / "work").rglob("*.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in cached}
    assert sfp_main(["bench", "sim", "--quick", "--dataset", str(data), "--workdir", str(tmp_path / "work"),
                     "--methods", "sfp,dp_ddim", "--json", str(js), *stress]) == 0
    assert len(before) >= 8 and all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert json.loads(js.read_text())["sfp"]["success_mean"] == doc["sfp"]["success_mean"]


@pytest.mark.parametrize("args, msg", [
    (["--latency-ms", "abc"], "comma-separated integers"),
    (["--latency-ms", "5000"], r"\[0, 2000\]"),
    (["--latency-ms", "100", "--stress-methods", "foo"], "unknown stress methods"),
])
def test_bench_sim_rejects_bad_stress_arguments(tmp_path, capsys, args, msg):
    import re

    assert sfp_main(["bench", "sim", "--dataset", str(tmp_path), "--workdir", str(tmp_path / "w"), *args]) == 2
    assert re.search(msg, capsys.readouterr().err)
