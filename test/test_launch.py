"""launch/policy.launch.py: static checks everywhere; the real launch description where
launch_ros is installed (a ROS 2 install), skipped cleanly otherwise."""

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "policy.launch.py"


def _constant(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {LAUNCH.name}")


def test_launch_file_parses_and_references_existing_presets():
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    from streaming_flow_ros.presets import LAUNCH_KEY as key
    from streaming_flow_ros.presets import LAUNCH_TOPICS, REQUIRED_TOPICS
    from streaming_flow_ros.presets import ROBOTS as robots

    assert _constant(tree, "PACKAGE") == "streaming_flow_ros"
    assert (ROOT / "config" / "policy.yaml").is_file()
    for robot in robots:
        preset = ROOT / "config" / "robots" / f"{robot}.yaml"
        assert preset.is_file(), preset
        remaps = yaml.safe_load(preset.read_text())[key]["ros__parameters"]
        assert set(REQUIRED_TOPICS) <= set(remaps) <= set(LAUNCH_TOPICS), robot
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "policy_node" in strings  # the executable
    assert "policy_node = streaming_flow_ros.ros.node:main" in (ROOT / "setup.py").read_text()


def test_controller_configs_enable_streaming():
    for robot in ("ur", "franka_fr3", "xarm7", "kinova_gen3", "so101"):
        doc = yaml.safe_load((ROOT / "config" / "controllers" / f"{robot}.yaml").read_text())
        jtcs = [v["ros__parameters"] for v in doc.values() if "cmd_timeout" in v["ros__parameters"]]
        assert jtcs, robot
        for p in jtcs:
            assert p["interpolate_from_desired_state"] is True and p["open_loop_control"] is True
            assert p["cmd_timeout"] > 0 and p["allow_nonzero_velocity_at_trajectory_end"] is True
        preset = yaml.safe_load((ROOT / "config" / "robots" / f"{robot}.yaml").read_text())
        joints = preset["/**"]["ros__parameters"]["controller_joints"]
        assert all(sorted(p["joints"]) == sorted(joints) for p in jtcs), robot


def test_generate_launch_description_with_launch_ros():
    pytest.importorskip("launch_ros")
    from launch.actions import DeclareLaunchArgument

    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location("policy_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    assert isinstance(ld, LaunchDescription)
    names = {a.name for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
    assert {"robot", "checkpoint", "use_sim_time", "namespace", "autostart", "joint_states_topic"} <= names


@pytest.mark.parametrize("robot", ["sim", "ur", "franka_fr3", "xarm7", "kinova_gen3", "so101"])
def test_launch_plan_for_every_preset(robot):
    """What policy.launch.py's OpaqueFunction does, without launch_ros: the preset's remaps,
    argument overrides, and parameters that validate as the node would load them."""
    from streaming_flow_ros.presets import LAUNCH_KEY, REQUIRED_TOPICS, launch_plan
    from streaming_flow_ros.ros.params import NodeParams

    plan = launch_plan(robot, {})
    preset = yaml.safe_load(plan.parameter_files[1].read_text())
    topics = preset[LAUNCH_KEY]["ros__parameters"]
    remaps = dict(plan.remappings)
    cameras = {f"{k}/image_raw": v for k, v in (preset.get("policy_camera_topics") or {}).get("ros__parameters", {}).items()}
    assert remaps == {**{k: v for k, v in topics.items() if v}, **cameras}
    assert set(REQUIRED_TOPICS) <= set(topics)
    assert plan.overrides == {"use_sim_time": False, "autostart": False, "enabled": False}
    merged = {}
    for f in plan.parameter_files:
        merged.update(yaml.safe_load(f.read_text())["/**"]["ros__parameters"])
    params = NodeParams.from_mapping({**merged, **plan.overrides}, strict=False)  # use_sim_time: rclpy's
    assert params.output.controller_joints and params.enabled is False
    custom = launch_plan(robot, {"image_raw_topic": "/wrist/image_raw", "enabled": "true",
                                 "checkpoint": "/p.safetensors", "command_mode": "forward"})
    assert dict(custom.remappings)["image_raw"] == "/wrist/image_raw"
    assert custom.overrides["enabled"] is True and custom.overrides["checkpoint"] == "/p.safetensors"
    assert custom.overrides["command_mode"] == "forward"
    with pytest.raises(ValueError, match="robot must be one of"):
        launch_plan("ur10", {})


@pytest.mark.parametrize("robot", ["ur", "franka_fr3", "xarm7", "kinova_gen3"])
def test_launch_plan_with_the_presets_gripper(robot):
    """gripper:=true adds the stock gripper as one more named joint, with its limits bound by
    name, and remaps gripper_commands to the gripper's topic; camera_topics overrides one
    camera's remap."""
    from streaming_flow_ros.presets import gripper_topic, launch_plan, load_preset
    from streaming_flow_ros.ros.params import NodeParams

    plan = launch_plan(robot, {"gripper": "true", "camera_topics": "wrist=/hand/image_raw"})
    merged = {}
    for f in plan.parameter_files:
        merged.update(yaml.safe_load(f.read_text())["/**"]["ros__parameters"])
    params = NodeParams.from_mapping({**merged, **plan.overrides}, strict=False)
    block = yaml.safe_load(plan.parameter_files[1].read_text())["policy_gripper"]["ros__parameters"]
    (joint,) = block["gripper_joints"]
    assert params.output.gripper_joints == (joint,)
    assert params.per_joint("position_lower")[joint] == block["position_lower"][0]
    assert params.per_joint("position_upper")[joint] == block["position_upper"][0]
    assert params.per_joint("max_velocity")[joint] == block["max_velocity"][0]
    arm = load_preset(robot)
    for k, name in enumerate(arm["controller_joints"]):  # the arm's limits are unchanged, by name
        assert params.per_joint("position_upper")[name] == arm["position_upper"][k]
    remaps = dict(plan.remappings)
    assert remaps["gripper_commands"] == gripper_topic(robot) != ""
    assert remaps["wrist/image_raw"] == "/hand/image_raw" and remaps["scene/image_raw"] == "/camera/image_raw"
    with pytest.raises(ValueError, match="NAME=TOPIC"):
        launch_plan(robot, {"camera_topics": "wrist"})


def test_a_preset_without_a_gripper_block_says_so():
    from streaming_flow_ros.presets import load_preset

    with pytest.raises(ValueError, match="no policy_gripper block"):
        load_preset("sim", gripper=True)
