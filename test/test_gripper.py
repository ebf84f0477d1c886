"""The gripper channel: an action joint sent on its own topic (``gripper_joints``), continuous or
thresholded (``gripper_mode: binary``), safety-filtered like the arm, its joint state merged
from a split JointState stream."""

from __future__ import annotations

import numpy as np
import pytest
from invariants import assert_clean, live_node
from ros_harness import JOINTS, wait_until
from std_msgs.msg import Float64MultiArray

from streaming_flow_ros.checkpoint import make_untrained_checkpoint
from streaming_flow_ros.ros.params import NodeParams, controller_joints, resolve_limits
from streaming_flow_ros.spec import CameraSpec, IOSpec

ARM_GRIP = (*JOINTS, "finger")
GRIP = {"controller_joints": list(JOINTS), "gripper_joints": ["finger"],
        "position_lower": [-1.0, -1.0, -1.0, 0.0], "position_upper": [1.0, 1.0, 1.0, 0.08]}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    spec = IOSpec(ARM_GRIP, ARM_GRIP, (CameraSpec("cam", 32, 32, 3),), 10.0, (-2.0,) * 3 + (0.0,), (2.0,) * 3 + (0.1,))
    return str(make_untrained_checkpoint(tmp_path_factory.mktemp("grip") / "policy.safetensors", spec))


def test_gripper_params_bind_by_name():
    p = NodeParams.from_mapping({**GRIP, "max_velocity": [1.0, 1.0, 1.0, 0.2]})
    spec = IOSpec(("finger", "j3", "j2", "j1"), ("finger", "j3", "j2", "j1"))
    lim = resolve_limits(p, spec)
    np.testing.assert_allclose(lim.upper, [0.08, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(lim.max_step, [0.002, 0.01, 0.01, 0.01])
    assert controller_joints(p, spec) == JOINTS
    inferred = NodeParams.from_mapping({"gripper_joints": ["finger"]})
    assert controller_joints(inferred, spec) == ("j3", "j2", "j1")  # the rest, in checkpoint order
    for bad, match in (({**GRIP, "gripper_joints": ["j1"]}, "not controller_joints"),
                       ({"gripper_mode": "binary"}, "needs gripper_joints"),
                       ({**GRIP, "gripper_mode": "pinch"}, "gripper_mode"),
                       ({**GRIP, "gripper_mode": "binary", "gripper_hysteresis": 0.95}, "gripper_hysteresis"),
                       ({**GRIP, "position_lower": [-1.0] * 3, "position_upper": [1.0] * 3}, "4 controller_joints")):
        with pytest.raises(ValueError, match=match):
            NodeParams.from_mapping(bad)
    with pytest.raises(ValueError, match="do not match"):
        controller_joints(NodeParams.from_mapping({"gripper_joints": ["thumb"]}), spec)


@pytest.mark.parametrize("mode", ["continuous", "binary"])
def test_gripper_streams_on_its_own_topic(ckpt, mode):
    got: list[list[float]] = []
    # the gripper's state comes in the same message as j3, j1 and j2 in another (a split state)
    with live_node(ckpt, {**GRIP, "gripper_mode": mode}, peer_kw={"split": True, "extra": ("finger", 0.04)}) as lv:
        lv.inject.create_subscription(Float64MultiArray, "gripper_commands", lambda m: got.append(list(m.data)), 10)
        assert wait_until(lambda: len(got) > 100, 10.0), (len(got), lv.node.status_reason)
        trajs = lv.peer.take(lv.peer.trajectories)
        assert trajs and all(list(m.joint_names) == list(JOINTS) for m in trajs)  # the arm's joints only
        values = np.array(got)
        assert values.shape[1] == 1 and np.isfinite(values).all()
        assert ((values >= 0.0) & (values <= 0.08)).all()  # the gripper's limits, not the checkpoint's 0.1
        if mode == "binary":
            assert set(np.unique(values)) <= {0.0, 0.08}
        else:
            assert np.abs(np.diff(values[:, 0])).max() <= 1.0 / 100 + 1e-9  # max_velocity 1.0 at 100 Hz
    s = assert_clean(lv.inv, min_controller=20)
    assert s["gripper_msgs"] >= 20  # the checker judged the gripper stream too


class _Publisher:
    def __init__(self) -> None:
        self.sent: list = []

    def publish(self, msg) -> None:
        self.sent.append(msg)


class _Node:
    """What ros/outputs.py's Outputs uses of a node: a logger and publishers (recorded)."""

    def __init__(self) -> None:
        self.pubs: dict[str, _Publisher] = {}

    def get_logger(self):
        import logging

        return logging.getLogger("outputs-test")

    def create_publisher(self, _type, topic, _qos) -> _Publisher:
        return self.pubs.setdefault(topic, _Publisher())


def test_binary_band_holds_near_the_midpoint_and_restarts_from_the_arm():
    """Outputs with gripper_hysteresis 0.5 (open above 0.06, closed below 0.02 of 0-0.08): a
    command wandering inside the band keeps the gripper as it was; the tick the loop anchors at
    the measured state (``anchored``) takes that state's side of the midpoint, as a stateless
    threshold would, instead of what the band remembered from before."""
    from streaming_flow_ros.policy.control import TickOutput
    from streaming_flow_ros.policy.safety import SafetyLimits
    from streaming_flow_ros.ros.outputs import Outputs

    p = NodeParams.from_mapping({**GRIP, "gripper_mode": "binary", "gripper_hysteresis": 0.5})
    spec = IOSpec(ARM_GRIP, ARM_GRIP)
    lim = SafetyLimits.from_velocity([-1.0, -1.0, -1.0, 0.0], [1.0, 1.0, 1.0, 0.08], [1.0] * 4, 100.0)
    node = _Node()
    out = Outputs(node, p.output, spec, lim, JOINTS, 100.0)
    for g, anchored in [(0.08, True), (0.03, False), (0.05, False), (0.019, False), (0.05, False),
                        (0.061, False), (0.03, True), (0.05, False)]:
        out.publish(TickOutput(command=np.array([0.0, 0.0, 0.0, g]), to_controller=True, anchored=anchored), False)
    grip = [m.data[0] for m in node.pubs["gripper_commands"].sent]
    assert grip == [0.08, 0.08, 0.08, 0.0, 0.0, 0.08, 0.0, 0.0]
    assert len(node.pubs["joint_trajectory"].sent) == 8
