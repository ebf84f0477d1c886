"""A recorded sim episode (rosbag2 fixture) played into the LIVE policy node, as a user would
test a policy against recordings: /clock from the bag drives the node (use_sim_time), the default
policy streams in dry run, and its commands are checked against the contract and against the
recorded expert commands (open-loop error, re-anchoring on the measured state).

Fixture: test/fixtures/sim_episode (regenerate: see test/fixtures/README.md)."""

import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import ros_context
from trajectory_msgs.msg import JointTrajectoryPoint

from streaming_flow_ros.data.bags import read_messages
from streaming_flow_ros.presets import load_preset
from streaming_flow_ros.ros.play import BagPlayer
from streaming_flow_ros.ros.runner import autostart, run_node_in_thread, spin

BAG = Path(__file__).parent / "fixtures" / "sim_episode" / "episode_00000"
COMMANDS = "/joint_trajectory_controller/joint_trajectory"


def recorded_commands():
    msgs = read_messages(BAG, [COMMANDS])
    t = np.array([m.t_ns for m in msgs]) * 1e-9
    q = np.array([m.msg.points[-1].positions for m in msgs])
    return t, q


def test_bag_played_into_the_live_node_tracks_the_recording():
    received: list[tuple[float, JointTrajectoryPoint]] = []
    with ros_context() as ctx:
        params = {**load_preset("sim"), "use_sim_time": True, "enabled": False,
                  "anchor": "state", "reanchor": "observation", "start_sigma": 0.0}
        with BagPlayer(ctx, BAG, clock_hz=200.0, start_paused=True) as player:
            player.start()  # paused: /clock is published, messages wait
            runner = run_node_in_thread(ctx, params, autostart_node=False,
                                        cli_args=["--ros-args", "-r", "image_raw:=/camera/image_raw"])
            node = runner.node
            sub_node = rclpy.create_node("replay_probe", context=ctx)
            sub_node.create_subscription(
                JointTrajectoryPoint, "/policy_node/action",
                lambda m: received.append((node.now_s(), m)),
                QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
            ex = SingleThreadedExecutor(context=ctx)
            ex.add_node(sub_node)
            stop = threading.Event()
            th = threading.Thread(target=spin, args=(ex, ctx, stop), daemon=True)
            th.start()
            try:
                assert autostart(node), node.status_reason  # configure + activate
                player.wait_for_subscribers(5.0, ["/joint_states", "/camera/image_raw"])
                player.resume()
                assert player.wait(30.0), "playback did not finish"
                time.sleep(0.2)
                summary = node.telemetry.summary(node.now_s(), node.params.loop.control_rate_hz)
            finally:
                stop.set()
                th.join(2.0)
                ex.shutdown()
                sub_node.destroy_node()
                runner.stop()
    assert len(received) > 100, f"only {len(received)} commands streamed"
    pos = np.array([m.positions for _, m in received])
    assert pos.shape[1] == 3 and np.isfinite(pos).all()
    assert all(m.time_from_start.sec > 0 or m.time_from_start.nanosec > 0 for _, m in received)
    step = np.abs(np.diff(pos, axis=0)).max(axis=0)
    assert (step <= np.array(load_preset("sim")["max_velocity"]) / 100.0 + 1e-6).all()
    assert summary["reanchors"] >= 10, "each new observation should re-anchor the flow"
    # open-loop error: the streamed command vs the recorded expert command at the same bag time
    t_cmd, q_cmd = recorded_commands()
    t = np.array([t for t, _ in received])
    inside = (t > t_cmd[0] + 0.3) & (t < t_cmd[-1])
    idx = np.searchsorted(t_cmd, t[inside], side="right") - 1
    err = np.abs(pos[inside] - q_cmd[idx])
    print(f"open-loop error vs recorded commands: mean {err.mean():.4f} rad, p95 {np.percentile(err, 95):.4f} rad "
          f"over {inside.sum()} commands, {summary['reanchors']} re-anchors")
    assert err.mean() < 0.15
