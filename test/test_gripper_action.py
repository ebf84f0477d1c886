"""The gripper as GripperCommand action goals (``gripper_output: action``): which per-tick commands
become goals (policy/gripper.py), the parameters and launch plan that select it, the configure
that refuses it without control_msgs, and (where control_msgs imports: a real ROS install) the
goals a real action server receives over DDS."""

from __future__ import annotations

import importlib.util
import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.lifecycle import TransitionCallbackReturn
from ros_harness import JOINTS, Peer, ros_context, wait_until
from test_gripper import GRIP, ckpt  # noqa: F401 -- the module's checkpoint fixture

from streaming_flow_ros.policy.gripper import GripperGoalGate
from streaming_flow_ros.presets import launch_plan, load_preset
from streaming_flow_ros.ros.params import NodeParams
from streaming_flow_ros.ros.runner import NodeRunner, create_policy_node, make_executor

ACTION = {**GRIP, "gripper_output": "action", "gripper_action": "/grip/gripper_cmd"}
HAVE_CONTROL_MSGS = importlib.util.find_spec("control_msgs") is not None


def test_gate_sends_the_first_command_then_only_moves_beyond_the_deadband():
    gate = GripperGoalGate(0.0, 0.8, deadband=0.05, max_rate_hz=10.0)  # deadband 0.04 rad
    assert gate.offer(0.0, 0.1) == 0.1
    assert gate.offer(1.0, 0.13) is None  # 0.03 rad: inside the deadband, however late
    assert gate.offer(1.1, 0.15) == 0.15  # 0.05 rad from the last goal sent (drift accumulates)
    assert gate.offer(1.12, 0.6) is None  # far, but 20 ms after the last goal: too soon at 10 Hz
    assert gate.offer(1.2, 0.6) == 0.6  # the next tick after the interval sends it
    assert gate.offer(2.0, 5.0) == 0.8  # clamped into the limits
    assert gate.offer(3.0, 0.8) is None and gate.last == 0.8


def test_gate_never_sends_a_non_finite_command_and_resends_after_forget():
    gate = GripperGoalGate(0.0, 0.04, deadband=0.0, max_rate_hz=5.0)
    for bad in (math.nan, math.inf, -math.inf):
        assert gate.offer(0.0, bad) is None
    assert gate.offer(0.0, 0.02) == 0.02 and gate.offer(1.0, 0.02) is None  # deadband 0: a change, not a repeat
    gate.forget()  # the goal found no server / was rejected
    assert gate.offer(1.01, 0.02) == 0.02  # the same command goes out again at once
    assert gate.offer(2.0, math.nan) is None and gate.last == 0.02


def test_binary_commands_make_one_goal_per_switch():
    """gripper_mode binary: the command takes the two limits only; at 100 Hz with a 10 Hz cap
    every open/close switch (held longer than 0.1 s) is exactly one goal."""
    gate = GripperGoalGate(0.0, 0.08, deadband=0.02, max_rate_hz=10.0)
    pattern = [0.08] * 50 + [0.0] * 120 + [0.08] * 30 + [0.0] * 200
    goals = [g for k, v in enumerate(pattern) if (g := gate.offer(k / 100.0, v)) is not None]
    assert goals == [0.08, 0.0, 0.08, 0.0]


@pytest.mark.parametrize("kw, match", [({"lower": 0.1, "upper": 0.1}, "lower < upper"),
                                       ({"lower": 0.0, "upper": math.inf}, "finite"),
                                       ({"deadband": 1.0}, "deadband"), ({"max_rate_hz": 0.0}, "rate")])
def test_gate_refuses_unusable_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        GripperGoalGate(**{"lower": 0.0, "upper": 0.8, **kw})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=400),
       st.floats(0.0, 0.5), st.floats(1.0, 50.0))
def test_property_goals_are_finite_bounded_sparse_and_far_apart(values, deadband, rate):
    lo, hi, dt = -0.2, 0.6, 0.01
    gate = GripperGoalGate(lo, hi, deadband=deadband, max_rate_hz=rate)
    sent = [(k * dt, g) for k, v in enumerate(values) if (g := gate.offer(k * dt, v)) is not None]
    for t, g in sent:
        assert math.isfinite(g) and lo <= g <= hi
    for (t0, g0), (t1, g1) in itertools.pairwise(sent):
        assert t1 - t0 >= 1.0 / rate - 1e-9  # the rate cap
        assert abs(g1 - g0) > deadband * (hi - lo)  # the deadband
    assert len(sent) <= len(values) * dt * rate + 1


def test_action_output_parameters():
    p = NodeParams.from_mapping({**ACTION, "gripper_max_effort": 20, "gripper_goal_rate_hz": 5})
    assert p.output.gripper_output == "action" and p.output.gripper_max_effort == 20.0
    two = {**ACTION, "controller_joints": list(JOINTS[:2]), "gripper_joints": [JOINTS[2], "finger"]}
    for bad, match in (({**ACTION, "gripper_action": ""}, "needs gripper_action"),
                       (two, "one gripper joint"),
                       ({**ACTION, "gripper_output": "service"}, "gripper_output"),
                       ({**ACTION, "gripper_goal_deadband": 1.0}, "gripper_goal_deadband"),
                       ({**ACTION, "gripper_goal_rate_hz": 0.0}, "gripper_goal_rate_hz"),
                       ({**ACTION, "gripper_max_effort": -1.0}, "gripper_max_effort")):
        with pytest.raises(ValueError, match=match):
            NodeParams.from_mapping(bad)


def test_launch_plan_sends_goals_to_the_presets_gripper_server():
    ur = launch_plan("ur", {"gripper": "true", "gripper_output": "action"})
    assert ur.overrides["gripper_output"] == "action"
    assert ur.overrides["gripper_action"] == "/robotiq_gripper_controller/gripper_cmd"
    assert ur.overrides["gripper_joints"] == ["robotiq_85_left_knuckle_joint"]
    assert "gripper_commands" not in dict(ur.remappings)  # no topic to remap
    fr3 = launch_plan("franka_fr3", {"gripper": "true", "gripper_output": "action", "gripper_action": "/my/grip"})
    assert fr3.overrides["gripper_action"] == "/my/grip" and fr3.overrides["gripper_max_effort"] == 20.0
    node_params = {k: v for k, v in {**load_preset("franka_fr3"), **fr3.overrides}.items() if k != "use_sim_time"}
    assert NodeParams.from_mapping(node_params).output.gripper_output == "action"  # what the node gets is valid
    assert "gripper_output" not in launch_plan("ur", {"gripper": "true"}).overrides  # topic: the default
    with pytest.raises(ValueError, match="no `action`"):
        launch_plan("xarm7", {"gripper": "true", "gripper_output": "action"})  # pulse units: no server named
    with pytest.raises(ValueError, match="needs gripper:=true"):
        launch_plan("ur", {"gripper_output": "action"})
    with pytest.raises(ValueError, match="topic or action"):
        launch_plan("ur", {"gripper": "true", "gripper_output": "goal"})


@pytest.mark.skipif(HAVE_CONTROL_MSGS, reason="control_msgs is installed: the goals test below runs instead")
def test_configure_refuses_action_output_without_control_msgs(ckpt):  # noqa: F811
    """pip-only installs have no control_msgs: the configure fails and says what to install,
    rather than the node starting and never moving the gripper."""
    with ros_context() as ctx:
        peer = Peer(ctx)
        node = create_policy_node(ctx, {"checkpoint": ckpt, **ACTION, "diagnostics_period": 0.1})
        runner = NodeRunner(node, make_executor("events", ctx))
        try:
            assert node.trigger_configure() != TransitionCallbackReturn.SUCCESS
            assert node.lifecycle_state == "unconfigured"
            assert "configure failed" in node.status_reason and "control_msgs" in node.status_reason
            t0 = time.monotonic()
            diag = peer.wait_for(peer.diagnostics, 1, since=t0)[-1].status[0]
            assert diag.level == diag.ERROR and "control_msgs" in diag.message
        finally:
            runner.stop()
            peer.close()


@pytest.mark.skipif(not HAVE_CONTROL_MSGS, reason="control_msgs is not installable from PyPI: needs a ROS install")
def test_gripper_goals_reach_a_real_action_server(ckpt):  # noqa: F811
    """A GripperCommand ActionServer on DDS receives sparse, finite goals inside the gripper's
    limits, at most gripper_goal_rate_hz per second, while the arm streams on its own topic."""
    from control_msgs.action import GripperCommand
    from invariants import live_node
    from rclpy.action import ActionServer

    goals: list[tuple[float, float, float]] = []

    def execute(handle):
        goals.append((time.monotonic(), handle.request.command.position, handle.request.command.max_effort))
        handle.succeed()
        result = GripperCommand.Result()
        result.position, result.reached_goal = handle.request.command.position, True
        return result

    params = {**ACTION, "gripper_goal_deadband": 0.0, "gripper_goal_rate_hz": 5.0, "gripper_max_effort": 15.0}
    with live_node(ckpt, params, peer_kw={"split": True, "extra": ("finger", 0.04)}) as lv:
        server = ActionServer(lv.inject, GripperCommand, "/grip/gripper_cmd", execute)
        assert wait_until(lambda: len(goals) >= 5, 10.0), (len(goals), lv.node.status_reason,
                                                             lv.node.gripper_goal_counts)
        t = np.array([g[0] for g in goals])
        pos = np.array([g[1] for g in goals])
        assert np.isfinite(pos).all() and ((pos >= 0.0) & (pos <= 0.08)).all()
        assert (np.diff(t) >= 1.0 / 5.0 - 0.05).all()  # the rate cap (receive-time jitter allowed)
        assert {g[2] for g in goals} == {15.0}
        assert lv.node.gripper_goal_counts["gripper_goals_sent"] >= len(goals)
        assert lv.peer.take(lv.peer.trajectories)  # the arm still streams
        server.destroy()
