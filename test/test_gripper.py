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
                       ({**GRIP, "position_lower": [-1.0] * 3, "position_upper": [1.0] * 3}, "4 controller_joints")):
        with pytest.raises(ValueError, match=match):
            NodeParams.from_mapping(bad)
    with pytest.raises(ValueError, match="do not match"):
        controller_joints(NodeParams.from_mapping({"gripper_joints": ["thumb"]}), spec)


@pytest.mark.parametrize("mode,band", [("continuous", 0.0), ("binary", 0.0), ("binary", 0.3)])
def test_gripper_streams_on_its_own_topic(ckpt, mode, band):
    got: list[list[float]] = []
    # the gripper's state comes in the same message as j3, j1 and j2 in another (a split state)
    with live_node(ckpt, {**GRIP, "gripper_mode": mode, "gripper_hysteresis": band},
                   peer_kw={"split": True, "extra": ("finger", 0.04)}) as lv:
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
