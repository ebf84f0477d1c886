"""Cell tasks: IK on the MuJoCo model, the scripted Lift expert, recording Lift demos as bags
through the cell's topics (`sfp dataset record-sim --cell`), and `sfp dataset build` merging
several command topics (arm + gripper) by joint name. The MuJoCo tests skip without mujoco or
robosuite's model files; the synthetic merge tests need neither."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from streaming_flow_ros.data.bags import BagWriter, read_messages
from streaming_flow_ros.data.build import BuildOptions, bag_to_episodes, options_from_argv

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported: offscreen, headless
HAVE_CELLS = importlib.util.find_spec("mujoco") is not None and importlib.util.find_spec("robosuite") is not None
needs_cells = pytest.mark.skipif(not HAVE_CELLS, reason="mujoco or robosuite's model files are not installed")


# -- MuJoCo ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def panda():
    from streaming_flow_ros.cells.cell import Cell

    cell = Cell("panda", image_size=(32, 32))
    yield cell
    cell.close()


@needs_cells
def test_ik_reaches_a_cartesian_target_within_limits(panda):
    from streaming_flow_ros.cells.expert import DOWN
    from streaming_flow_ros.cells.ik import rot_z, rotation_error

    panda.reset()
    _, q0, _ = panda.joint_state()
    ik = panda.make_ik()
    p0, _ = ik.pose(q0)
    target, rot = p0 + [0.15, -0.1, -0.12], rot_z(0.4) @ DOWN
    res = ik.solve(target, q0, rot)
    assert res.converged(pos_tol=1e-3, rot_tol=0.01), res
    assert np.all(res.q >= panda.lower) and np.all(res.q <= panda.upper)
    p, r = ik.pose(res.q)  # independent forward kinematics check
    assert np.linalg.norm(p - target) < 1e-3 and np.linalg.norm(rotation_error(rot, r)) < 0.01
    np.testing.assert_array_equal(panda.joint_state()[1], q0)  # the cell's physics is untouched
    far = ik.solve(p0 + [2.0, 0.0, 0.0], q0)  # out of reach: a residual, not an exception
    assert not far.converged() and np.all(far.q <= panda.upper) and np.all(far.q >= panda.lower)


@needs_cells
@pytest.mark.parametrize("seed", [3, 17])
def test_expert_lifts_the_cube(panda, seed):
    from streaming_flow_ros.cells.expert import run_expert_episode
    from streaming_flow_ros.cells.tasks import LiftTask

    task = LiftTask()
    scene = task.scene(seed)
    assert scene == task.scene(seed) and scene != task.scene(seed + 1)  # deterministic per seed
    out = run_expert_episode(panda, task, seed)
    assert out["success"] and out["max_cube_height"] > 0.1 and not out["table_contact"]
    np.testing.assert_allclose(panda.cube_position()[:2], scene.cube_xy, atol=0.02)  # lifted in place


@needs_cells
def test_expert_turning_above_the_cube_keeps_its_yaw_on_the_approach(panda):
    from streaming_flow_ros.cells.expert import LiftExpert, LiftExpertConfig, run_expert_episode
    from streaming_flow_ros.cells.ik import gripper_yaw
    from streaming_flow_ros.cells.tasks import LiftTask

    panda.reset(cube_xy=(0.05, -0.03), cube_yaw=0.7)
    ik = panda.make_ik()
    yaw0 = gripper_yaw(ik.pose(panda.joint_state()[1])[1])
    plan = LiftExpert(panda, LiftExpertConfig(turn_above_s=1.0)).plan
    assert list(plan.phases) == ["approach", "turn", "descend", "close", "lift", "hold"]
    above = plan.position(plan.phases["turn"])
    p_above, r_above = ik.pose(above)
    assert gripper_yaw(r_above) == pytest.approx(yaw0, abs=0.02)  # not turned yet
    np.testing.assert_allclose(p_above[:2], (0.05, -0.03), atol=3e-3)  # but above the cube
    assert plan.phases["descend"] - plan.phases["turn"] == pytest.approx(1.0)
    panda.reset(q=plan.position(plan.close_time), cube_xy=(0.05, -0.03), cube_yaw=0.7)
    assert abs(panda.grasp_error()["yaw_deg"]) < 2.0  # turned to the cube by the grasp
    assert run_expert_episode(panda, LiftTask(), 18, LiftExpertConfig(turn_above_s=1.0))["success"]


@needs_cells
@pytest.mark.parametrize("cube_yaw", [0.0, 0.7, -0.7])
def test_grasp_error_is_small_at_the_experts_grasp_and_sees_a_turned_gripper(panda, cube_yaw):
    from streaming_flow_ros.cells.expert import LiftExpert

    panda.reset(cube_xy=(0.05, -0.03), cube_yaw=cube_yaw)
    expert = LiftExpert(panda)
    q = expert.plan.position(expert.plan.close_time)
    panda.reset(q=q, cube_xy=(0.05, -0.03), cube_yaw=cube_yaw)
    g = panda.grasp_error()
    assert g["cube"] == "red" and g["lateral_mm"] < 3.0 and abs(g["yaw_deg"]) < 2.0, g
    assert g["height_mm"] == pytest.approx(panda.robot.gripper.grasp_offset * 1e3, abs=3.0)
    q_turned = q.copy()
    q_turned[-1] += 0.5  # the Panda's last joint turns the hand about the vertical when it points down
    panda.reset(q=q_turned, cube_xy=(0.05, -0.03), cube_yaw=cube_yaw)
    turned = panda.grasp_error()
    assert abs(abs(turned["yaw_deg"]) - np.degrees(0.5)) < 3.0 and turned["lateral_mm"] < 3.0, turned
    panda.reset(q=q, cube_xy=(0.05, -0.03), cube_yaw=cube_yaw + np.pi / 2)  # the same cube, a face on
    assert abs(panda.grasp_error()["yaw_deg"]) < 2.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from streaming_flow_ros.cli import main as sfp_main

    out = tmp_path_factory.mktemp("cell_bags") / "bags"
    assert sfp_main(["dataset", "record-sim", "--cell", "panda", "--task", "lift", "--episodes", "1",
                     "--out", str(out), "--seed", "5", "--image-size", "32", "24", "--turn-above", "0.5"]) == 0
    return out


@needs_cells
def test_record_one_lift_episode_as_a_bag(recorded):
    from streaming_flow_ros.cells.record import cell_topics

    index = json.loads((recorded / "episodes.json").read_text())
    assert index["cell"] == "panda" and index["episodes"][0]["success"]
    assert index["expert"]["turn_above_s"] == 0.5
    bag = recorded / "episode_00000"
    assert list(bag.glob("*.mcap"))
    topics = cell_topics("franka_fr3")
    msgs = read_messages(bag)
    types = {m.topic: m.msgtype for m in msgs}
    assert types == {
        "/franka/joint_states": "sensor_msgs/msg/JointState",
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/wrist_camera/image_raw": "sensor_msgs/msg/Image",
        "/fr3_arm_controller/joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
        "/gripper_controller/commands": "std_msgs/msg/Float64MultiArray",
        "/clock": "rosgraph_msgs/msg/Clock",
    } and set(types) == set(topics.values())
    by = {t: [m for m in msgs if m.topic == t] for t in types}
    js = by["/franka/joint_states"]
    span = (js[-1].t_ns - js[0].t_ns) / 1e9
    assert len(js) == len(by["/clock"]) == pytest.approx(span * 100 + 1, abs=1)
    assert len(by["/camera/image_raw"]) == len(by["/wrist_camera/image_raw"]) == pytest.approx(span * 10 + 1, abs=1)
    assert len(by["/fr3_arm_controller/joint_trajectory"]) == len(by["/gripper_controller/commands"])
    assert list(js[0].msg.name) == [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1"]
    stamp = js[0].msg.header.stamp
    assert stamp.sec * 10**9 + stamp.nanosec == js[0].t_ns >= 10**9  # sim time: log time = stamp
    img = by["/wrist_camera/image_raw"][0].msg
    assert (img.encoding, img.width, img.height, img.header.frame_id) == ("rgb8", 32, 24, "wrist")
    traj = by["/fr3_arm_controller/joint_trajectory"][0].msg
    assert traj.header.stamp.sec == traj.header.stamp.nanosec == 0 and len(traj.points) == 1
    grip = [float(m.msg.data[0]) for m in by["/gripper_controller/commands"]]
    assert grip[0] == pytest.approx(0.04) and grip[-1] == 0.0  # Franka: one finger's travel, open -> closed
    assert js[-1].msg.position[-1] == pytest.approx(0.02, abs=0.003)  # holding the 4 cm cube


def test_cell_options_need_a_cell(tmp_path, capsys):
    from streaming_flow_ros.cli import main as sfp_main

    assert sfp_main(["dataset", "record-sim", "--episodes", "1", "--out", str(tmp_path / "b"),
                     "--turn-above", "1.0"]) != 0
    assert "apply to a MuJoCo cell" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@needs_cells
def test_recorded_topics_and_clock_are_the_cell_nodes():
    pytest.importorskip("rclpy")
    from streaming_flow_ros.cells import record
    from streaming_flow_ros.ros.cell_nodes import CLOCK_START_NS, CellNode

    assert record.CLOCK_START_NS == CLOCK_START_NS
    assert record.GRIPPER_TOPIC == "/" + CellNode.DEFAULTS["gripper_topic"]
    assert record.WRIST_TOPIC == "/" + CellNode.DEFAULTS["wrist_image_topic"]


@needs_cells
def test_build_merges_arm_and_gripper_commands(recorded, tmp_path):
    bag = recorded / "episode_00000"
    opts = options_from_argv([
        str(bag), "--out", str(tmp_path / "ds"), "--joint-topic", "/franka/joint_states",
        "--camera-topic", "scene=/camera/image_raw", "--camera-topic", "wrist=/wrist_camera/image_raw",
        "--image-size", "32x24", "--action-topic", "/fr3_arm_controller/joint_trajectory",
        "--action-topic", "/gripper_controller/commands=fr3_finger_joint1"])
    joints, (ep,), _ = bag_to_episodes(bag, opts)
    assert joints[-1] == "fr3_finger_joint1" and ep.action.shape == (len(ep), 8)
    assert ep.images["wrist"].shape == (len(ep), 24, 32, 3)
    msgs = read_messages(bag, ["/gripper_controller/commands", "/fr3_arm_controller/joint_trajectory",
                               "/franka/joint_states"])
    t0 = max(next(m.t_ns for m in msgs if m.topic == t) for t in {m.topic for m in msgs})
    grid = t0 + np.round(np.arange(len(ep)) * 1e8).astype(np.int64)
    for topic, col in (("/gripper_controller/commands", slice(7, 8)), ("/fr3_arm_controller/joint_trajectory", slice(0, 7))):
        cmd = [m for m in msgs if m.topic == topic]
        times = np.array([m.t_ns for m in cmd])
        values = np.array([m.msg.data if topic.endswith("commands") else m.msg.points[-1].positions for m in cmd])
        held = values[np.searchsorted(times, grid, side="right") - 1]
        np.testing.assert_allclose(ep.action[:, col], held, atol=1e-6)
    assert ep.action[0, 7] == pytest.approx(0.04) and ep.action[-1, 7] == 0.0


# -- two command topics on a synthetic bag (no MuJoCo) --------------------------------------------

ARM_TOPIC, GRIP_TOPIC = "/arm/joint_trajectory", "/gripper/commands"
GRIP_TIMES = [0.0, 0.33, 0.71, 1.5, 2.0]  # s: sparse and irregular, as a teleop's gripper button
GRIP_VALUES = [0.04, 0.03, 0.0, 0.02, 0.01]


def write_two_command_bag(path: Path) -> Path:
    """Joint states a1, a2, g at 100 Hz (shuffled order) over 0..2.1 s; arm JTC at 10 Hz from
    0.05 s naming [a2, a1] with positions [100 + k, k]; gripper Float64MultiArray at GRIP_TIMES."""
    rng = np.random.default_rng(1)
    names = np.array(["a1", "a2", "g"])
    with BagWriter(path) as w:
        for i in range(211):
            order = rng.permutation(3)
            w.joint_state("/joint_states", i * 10**7, names[order].tolist(), (np.arange(3.0) + i / 100)[order])
        for k in range(21):
            w.joint_trajectory(ARM_TOPIC, 5 * 10**7 + k * 10**8, ["a2", "a1"], [100.0 + k, float(k)], 0.1)
        for t, v in zip(GRIP_TIMES, GRIP_VALUES):
            w.float64_array(GRIP_TOPIC, round(t * 1e9), [v])
    return path


def test_two_command_topics_match_hand_computed_actions(tmp_path):
    bag = write_two_command_bag(tmp_path / "bag")
    opts = BuildOptions(cameras=(), max_gap_s=1.0, action_topics=((ARM_TOPIC, None), (GRIP_TOPIC, ("g",))))
    joints, (ep,), _ = bag_to_episodes(bag, opts)
    assert joints == ("a1", "a2", "g")  # the first JointState's order, whatever each topic's
    # grid: 0.05 s (the arm's first command) + k / 10 Hz, up to 2.0 s (the gripper's last)
    np.testing.assert_allclose(ep.time, np.arange(20) / 10)
    np.testing.assert_allclose(ep.action[:, 0], np.arange(20))  # a1: the k-th arm command
    np.testing.assert_allclose(ep.action[:, 1], 100 + np.arange(20))  # a2
    expected_g = [0.04] * 3 + [0.03] * 4 + [0.0] * 8 + [0.02] * 5  # held: 0.05-0.25, 0.35-0.65, 0.75-1.45, 1.55-1.95 s
    np.testing.assert_allclose(ep.action[:, 2], expected_g, atol=1e-7)
    np.testing.assert_allclose(ep.state[:, 2], 2.0 + 0.05 + np.arange(20) / 10, atol=1e-6)
    # --joints reorders by name; the per-topic binding is unchanged
    _, (ep2,), _ = bag_to_episodes(bag, BuildOptions(cameras=(), max_gap_s=1.0, joints=("g", "a2", "a1"),
                                                     action_topics=opts.action_topics))
    np.testing.assert_allclose(ep2.action, ep.action[:, ::-1])


def test_two_command_topics_refuse_ambiguity(tmp_path):
    bag = write_two_command_bag(tmp_path / "bag")

    def build(topics, **kw):
        return bag_to_episodes(bag, BuildOptions(cameras=(), max_gap_s=1.0, action_topics=topics, **kw))

    with pytest.raises(ValueError, match="unnamed positions.*=j1"):
        build(((ARM_TOPIC, None), (GRIP_TOPIC, None)))
    with pytest.raises(ValueError, match="no action topic commands joints \\['g'\\]"):
        build(((ARM_TOPIC, None),))
    with pytest.raises(ValueError, match="'a1' is commanded by both"):
        build(((ARM_TOPIC, None), (GRIP_TOPIC, ("a1",))))
    with pytest.raises(ValueError, match="not the ones given"):
        build(((ARM_TOPIC, ("a1", "a2", "a3")), (GRIP_TOPIC, ("g",))))
    with pytest.raises(ValueError, match="1 positions for joints"):
        build(((ARM_TOPIC, None), (GRIP_TOPIC, ("g", "h"))))
    with pytest.raises(ValueError, match="replaces action_topic"):
        BuildOptions(action_topic=ARM_TOPIC, action_topics=((GRIP_TOPIC, ("g",)),))
    # only the gripper column wanted: one named topic is enough
    _, (ep,), _ = build(((GRIP_TOPIC, ("g",)),), joints=("g",))
    assert ep.action[0, 0] == pytest.approx(0.04)


def test_action_topic_cli_forms():
    def opts(*args):
        return options_from_argv(["bag", "--out", "o", *args])

    one = opts("--action-topic", ARM_TOPIC, "--command-joints", "a1,a2")
    assert one.action_topic == ARM_TOPIC and one.command_joints == ("a1", "a2") and not one.action_topics
    two = opts("--action-topic", ARM_TOPIC, "--action-topic", f"{GRIP_TOPIC}=g")
    assert two.action_topics == ((ARM_TOPIC, None), (GRIP_TOPIC, ("g",))) and two.action_topic is None
    named = opts("--action-topic", f"{GRIP_TOPIC}=g,h")
    assert named.action_topics == ((GRIP_TOPIC, ("g", "h")),)
    with pytest.raises(ValueError, match="ambiguous"):
        opts("--action-topic", ARM_TOPIC, "--action-topic", f"{GRIP_TOPIC}=g", "--command-joints", "g")
    with pytest.raises(SystemExit):
        opts("--action-topic", "arm=j1")  # not a /topic
