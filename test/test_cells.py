"""MuJoCo cells (streaming_flow_ros/cells, ros/cell_nodes.py): robosuite's arm models behind the
real arms' joint names, limits and ros2_control topics. Skips without mujoco or robosuite's
model files (``pip install mujoco==3.3.7 && pip install --no-deps robosuite==1.5.2``)."""

from __future__ import annotations

import importlib.util
import json
import os
import time

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported: offscreen, headless
pytest.importorskip("mujoco")
if importlib.util.find_spec("robosuite") is None:
    pytest.skip("robosuite's model files are not installed", allow_module_level=True)

from streaming_flow_ros.cells.cell import Cell
from streaming_flow_ros.presets import load_preset
from streaming_flow_ros.sim.jtc import JointTrajectory, TrajectoryPoint

ROBOT_NAMES = ("panda", "ur5e")
IMAGE_SIZE = (64, 48)  # (W, H): not square, so a transposed image would show
# Preset limits outside the model's range, by design (not preset bugs): the Panda model stands in
# for the FR3. The franka_fr3 preset is Franka's FR3 limits shrunk by 0.05 rad (joint 6 up to
# 4.5169, joint 7 +-3.0159 on the FR3); the Panda model (robosuite panda/robot.xml, the Panda
# datasheet) stops joint 6 at 3.7525 and joint 7 at +-2.8973. The cell clamps commands there.
KNOWN_LIMIT_MISMATCHES = {("panda", "fr3_joint6", "upper"), ("panda", "fr3_joint7", "lower"),
                          ("panda", "fr3_joint7", "upper")}


@pytest.fixture(scope="module", params=ROBOT_NAMES)
def cell(request):
    c = Cell(request.param, image_size=IMAGE_SIZE)
    yield c
    c.close()


def test_joint_names_are_the_presets(cell):
    preset = load_preset(cell.robot.preset)
    assert tuple(preset["controller_joints"]) == cell.joint_names
    _, q, qd = cell.joint_state()
    assert q.shape == qd.shape == (len(cell.joint_names),)


def _limit_mismatches(cell) -> set:
    preset = load_preset(cell.robot.preset)
    out = set()
    for j, (lo, hi) in enumerate(zip(preset["position_lower"], preset["position_upper"])):
        name = cell.joint_names[j]
        if lo < cell.lower[j] - 1e-4:
            out.add((cell.robot.name, name, "lower"))
        if hi > cell.upper[j] + 1e-4:
            out.add((cell.robot.name, name, "upper"))
    return out


def test_preset_limits_fit_the_models_range(cell):
    mismatches = _limit_mismatches(cell)
    known = {m for m in KNOWN_LIMIT_MISMATCHES if m[0] == cell.robot.name}
    assert mismatches == known


def test_preset_gripper_is_the_cells_gripper(cell):
    """The preset's policy_gripper block names the cell's gripper joint, and its limits are the
    joint's full travel (open .. closed, in the driver's units)."""
    params = load_preset(cell.robot.preset, gripper=True)
    g = cell.robot.gripper
    assert params["gripper_joints"] == [g.joint]
    ends = sorted((g.joint_from_width(0.0), g.joint_from_width(g.max_width)))
    assert params["position_lower"][-1] == pytest.approx(ends[0], abs=1e-6)
    assert params["position_upper"][-1] == pytest.approx(ends[1], abs=1e-6)


def test_forward_command_moves_the_arm_there(cell):
    cell.reset()
    _, q0, _ = cell.joint_state()
    goal = q0 + np.where(np.arange(q0.size) < 3, 0.25, -0.2)
    assert cell.command_forward(goal).accepted
    cell.step(2.0)
    _, q, qd = cell.joint_state()
    np.testing.assert_allclose(q, goal, atol=0.01)
    assert np.abs(qd).max() < 0.05
    assert not cell.metrics().table_contact


def test_trajectory_command_follows_jtc_semantics(cell):
    cell.reset()
    _, q0, _ = cell.joint_state()
    goal = q0.copy()
    goal[0] += 0.4
    names = tuple(reversed(cell.joint_names))  # mapped by name, any order
    traj = JointTrajectory(names, (TrajectoryPoint(goal[::-1].tolist(), 1.0),))
    assert cell.command_trajectory(traj).accepted
    cell.step(0.5)
    _, q, _ = cell.joint_state()
    assert 0.1 < q[0] - q0[0] < 0.3  # halfway along the linear segment (servo lag allowed)
    cell.step(1.0)
    np.testing.assert_allclose(cell.joint_state()[1], goal, atol=0.01)
    bad = JointTrajectory(cell.joint_names[:-1], (TrajectoryPoint(goal[:-1].tolist(), 1.0),))
    assert not cell.command_trajectory(bad).accepted  # partial goal: rejected, arm holds
    cell.step(0.2)
    np.testing.assert_allclose(cell.joint_state()[1], goal, atol=0.01)


def test_gripper_closes_and_opens_clamped(cell):
    cell.reset()
    g = cell.robot.gripper
    assert cell.gripper_width() > 0.9 * g.max_width
    assert cell.command_gripper(-1.0) == 0.0  # clamped
    cell.step(1.0)
    assert cell.gripper_width() < 0.5 * g.max_width
    assert cell.command_gripper(1.0) == g.max_width
    cell.step(1.0)
    assert cell.gripper_width() > 0.9 * g.max_width
    with pytest.raises(ValueError):
        cell.command_gripper(float("nan"))


def test_episode_recorder_takes_the_grasp_at_the_first_close_only(cell):
    """The cell loop's tick hook records Cell.grasp_error() once, when the gripper command
    first closes past half its travel, and forgets it at the next episode's start."""
    pytest.importorskip("rclpy")
    from streaming_flow_ros.cells.tasks import LiftTask
    from streaming_flow_ros.ros.cell_loop import _Recorder

    task = LiftTask()
    task.reset(cell, 3)
    rec = _Recorder(task)
    rec.start()
    rec(cell)
    assert rec.grasp is None  # open
    cell.command_gripper(0.0)
    rec(cell)
    first = rec.grasp
    assert first is not None and first["cube"] == "red" and first == cell.grasp_error()
    cell.step(0.05)
    cell.command_gripper(0.2 * cell.robot.gripper.max_width)
    rec(cell)
    assert rec.grasp is first
    rec.start()
    assert rec.grasp is None


def test_cameras_render_the_configured_size(cell):
    for camera in cell.camera_names:
        t, img = cell.render(camera)
        assert img.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3) and img.dtype == np.uint8
        assert img.std() > 5  # not a blank frame
        assert t == cell.time


def test_cube_rests_on_the_table_and_lift_is_measured(cell):
    cell.reset(cube_xy=(0.05, -0.05))
    cell.step(0.3)
    m = cell.metrics()
    assert abs(m.cube_height) < 0.003 and not m.lifted
    np.testing.assert_allclose(cell.cube_position()[:2], (0.05, -0.05), atol=1e-3)


def test_arm_pressed_into_the_table_is_a_collision():
    cell = Cell("ur5e")
    _, q, _ = cell.joint_state()
    down = q.copy()
    down[1] += 1.2  # shoulder lift down: the forearm/wrist into the table
    cell.command_forward(down)
    cell.step(2.0)
    m = cell.metrics()
    assert m.table_contact and m.table_contact_bodies
    cell.reset()
    assert not cell.metrics().table_contact  # measurements restart with the episode
    cell.close()


def test_closed_loop_over_dds_under_sim_time():
    """The cell node and a plain JointTrajectory publisher (use_sim_time) over real DDS: the
    publisher's clock follows /clock, and /joint_states (stamped in sim time) follows the
    command."""
    pytest.importorskip("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from ros_harness import ros_context
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg
    from trajectory_msgs.msg import JointTrajectoryPoint

    from streaming_flow_ros.ros.cell_nodes import create_cell_node, preset_topics

    cell = Cell("ur5e", image_size=IMAGE_SIZE)
    topics = preset_topics("ur")
    with ros_context() as ctx:
        node = create_cell_node(cell, context=ctx, camera_rate_hz=5.0, image_width=IMAGE_SIZE[0],
                                image_height=IMAGE_SIZE[1])
        peer = Node("commander", context=ctx, parameter_overrides=[Parameter("use_sim_time", value=True)])
        states, images = [], []
        peer.create_subscription(JointState, topics["joint_states"], states.append, 10)
        peer.create_subscription(Image, topics["image_raw"], images.append, 10)
        pub = peer.create_publisher(JointTrajectoryMsg, topics["joint_trajectory"],
                                    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        ex.add_node(peer)

        def spin_until(cond, timeout=20.0):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.05)
                if cond():
                    return True
            return False

        try:
            assert spin_until(lambda: len(states) >= 5 and pub.get_subscription_count() > 0 and images)
            js = states[-1]
            assert list(js.name) == [*cell.joint_names, cell.robot.gripper.joint]
            assert images[-1].encoding == "rgb8" and (images[-1].width, images[-1].height) == IMAGE_SIZE
            stamp = js.header.stamp.sec + js.header.stamp.nanosec * 1e-9
            assert abs(peer.get_clock().now().nanoseconds * 1e-9 - stamp) < 0.5  # peer runs on /clock
            q0 = np.array(js.position[:6])
            goal = q0.copy()
            goal[0] += 0.3
            msg = JointTrajectoryMsg()
            msg.joint_names = list(cell.joint_names)  # header.stamp = 0: start now
            point = JointTrajectoryPoint(positions=goal.tolist())
            point.time_from_start.nanosec = 500_000_000
            msg.points = [point]
            pub.publish(msg)
            assert spin_until(lambda: abs(states[-1].position[0] - goal[0]) < 0.01)
            js = states[-1]
            stamp = js.header.stamp.sec + js.header.stamp.nanosec * 1e-9
            assert abs(stamp - (1.0 + cell.time)) < 0.05  # sim time: 1 s + cell clock
            assert node.rejected == 0
        finally:
            ex.shutdown()
            node.destroy_node()
            peer.destroy_node()
            cell.close()


def test_policy_node_streams_arm_and_gripper_to_the_cell(tmp_path):
    """The whole user path on a cell (ros/cell_loop.py): the policy node configured as
    ``policy.launch.py robot:=franka_fr3 gripper:=true use_sim_time:=true`` streams a two-camera
    checkpoint (untrained) over DDS to the Panda cell, under /clock: the arm's JTC topic carries
    the preset's joints within the preset's limits, the gripper topic one value within the
    gripper's limits, and the cell accepts every command."""
    pytest.importorskip("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

    from streaming_flow_ros.checkpoint import make_untrained_checkpoint
    from streaming_flow_ros.ros.cell_loop import CellLoop, summarize
    from streaming_flow_ros.spec import CameraSpec, IOSpec

    preset = load_preset("franka_fr3", gripper=True)
    names = (*preset["controller_joints"], *preset["gripper_joints"])
    spec = IOSpec(names, names, (CameraSpec("scene", 48, 48, 3), CameraSpec("wrist", 48, 48, 3)), 10.0, (), ())
    ckpt = make_untrained_checkpoint(tmp_path / "panda.safetensors", spec, seed=0)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    grip, traj = [], []
    with CellLoop("panda", "lift", str(ckpt), image_size=(48, 48), time_limit_s=1.0, settle_s=0.3) as loop:
        peer = Node("watcher", context=loop.context)
        peer.create_subscription(Float64MultiArray, "/gripper_controller/commands", grip.append, reliable)
        peer.create_subscription(JointTrajectoryMsg, "/fr3_arm_controller/joint_trajectory", traj.append, reliable)
        ex = SingleThreadedExecutor(context=loop.context)
        ex.add_node(peer)
        import threading
        stop = threading.Event()
        spinner = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.02) for _ in iter(stop.is_set, True)])
        spinner.start()
        try:
            r = loop.run_episode(0)
            s = summarize([r], loop.node_summary())
            received, rejected = dict(loop.cell_node.received), loop.cell_node.rejected
        finally:
            stop.set()
            spinner.join(5.0)
            ex.shutdown()
            peer.destroy_node()
    assert r.duration >= 1.0 and not r.success and np.isfinite(r.jerk_rms)
    assert r.scene["seed"] == r.seed and len(r.scene["cube_xy"]) == 2
    assert r.grasp is None or set(r.grasp) == {"cube", "lateral_mm", "height_mm", "yaw_deg"}
    json.dumps(s)  # per-episode scene and grasp included
    assert rejected == 0 and received["trajectory"] > 20 and received["gripper"] > 20
    assert len(traj) > 20 and len(grip) > 20
    lower, upper = np.array(preset["position_lower"]), np.array(preset["position_upper"])
    for msg in traj:
        assert list(msg.joint_names) == preset["controller_joints"]
        for p in msg.points:
            q = np.array(p.positions)
            assert np.isfinite(q).all() and (q >= lower[:7] - 1e-9).all() and (q <= upper[:7] + 1e-9).all()
    values = np.array([m.data[0] for m in grip])
    assert all(len(m.data) == 1 for m in grip)
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 0.04
    assert s["node"]["ticks"] > 50 and s["node"]["input_errors"] == 0


@pytest.mark.parametrize("robot", ["gen3", "xarm7"])
def test_every_arm_cell_matches_its_preset(robot):
    """Kinova Gen3 and xArm7 (the tests above run on panda and ur5e): the preset's joint names,
    limits within the model's range, and its gripper block naming the cell's gripper joint."""
    c = Cell(robot, image_size=IMAGE_SIZE)
    try:
        preset = load_preset(c.robot.preset, gripper=True)
        assert tuple(preset["controller_joints"]) == c.joint_names
        assert preset["gripper_joints"] == [c.robot.gripper.joint]
        assert _limit_mismatches(c) == set()
        ends = sorted((c.robot.gripper.joint_from_width(0.0), c.robot.gripper.joint_from_width(c.robot.gripper.max_width)))
        assert (preset["position_lower"][-1], preset["position_upper"][-1]) == pytest.approx(ends, abs=1e-6)
    finally:
        c.close()
