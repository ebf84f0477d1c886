"""The package's shipped config files without ROS: robot presets (config/robots/<name>.yaml) as
plain parameter dicts, the path of any file under config/ (training configs), and what
``ros2 launch streaming_flow_ros policy.launch.py`` makes of a preset and its arguments
(``launch_plan``: the launch file is a thin wrapper around it, so it is tested without
launch_ros). The node, the closed-loop harness, the offline evaluator and the benchmarks read
the same files."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def find_config(*parts: str) -> Path:
    """config/<parts...> in the source tree, or in the installed share/ directory."""
    here = Path(__file__).resolve()
    roots = [here.parents[1] / "config", here.parent / "config",
             Path(sys.prefix) / "share" / "streaming_flow_ros" / "config"]
    try:  # a colcon install: the package's share/ directory from the ament index
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            roots.insert(0, Path(get_package_share_directory("streaming_flow_ros")) / "config")
        except (PackageNotFoundError, OSError):  # not installed / no AMENT_PREFIX_PATH
            pass
    except ImportError:  # a pip-only install: no ament index
        pass
    for root in roots:
        p = root.joinpath(*parts)
        if p.is_file():
            return p
    raise ValueError(f"config/{'/'.join(parts)} not found (looked in the source tree and share/)")


def find_preset(name: str) -> Path:
    """config/robots/<name>.yaml."""
    return find_config("robots", f"{name}.yaml")


GRIPPER_KEY = "policy_gripper"
CAMERAS_KEY = "policy_camera_topics"
PER_JOINT = ("position_lower", "position_upper", "max_velocity")


def _doc(name: str) -> dict[str, Any]:
    return yaml.safe_load(find_preset(name).read_text())


def _block(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    return dict((doc.get(key) or {}).get("ros__parameters") or {})


def load_preset(name: str = "sim", gripper: bool = False) -> dict[str, Any]:
    """The preset's node parameters (its ``/**: ros__parameters`` block); with ``gripper``, its
    stock gripper (``policy_gripper`` block) added as one more named joint: ``gripper_joints``
    set and the gripper's limits appended to the per-joint lists (a single ``max_velocity`` is
    first expanded to every controller joint). Raises ValueError for a preset without a
    gripper block."""
    doc = _doc(name)
    params = dict(doc["/**"]["ros__parameters"])
    if gripper:
        params = with_gripper(params, _block(doc, GRIPPER_KEY), name)
    return params


def with_gripper(params: Mapping[str, Any], block: Mapping[str, Any], name: str = "preset") -> dict[str, Any]:
    """``params`` with the gripper of ``block`` (a ``policy_gripper`` block's parameters:
    gripper_joints and one value each of position_lower / position_upper / max_velocity)."""
    joints = list(block.get("gripper_joints") or [])
    if not joints:
        raise ValueError(f"{name} has no {GRIPPER_KEY} block with gripper_joints")
    out = dict(params)
    if out.get("gripper_joints"):
        raise ValueError(f"{name} already sets gripper_joints {out['gripper_joints']}")
    arm = list(out.get("controller_joints") or [])
    for key in PER_JOINT:
        values, extra = list(out.get(key) or []), list(block.get(key) or [])
        if len(extra) != len(joints):
            raise ValueError(f"{name}: {GRIPPER_KEY} {key} needs {len(joints)} value(s), got {extra}")
        if key == "max_velocity" and len(values) == 1:
            values = values * len(arm)
        if len(values) != len(arm):
            raise ValueError(f"{name}: {key} must give one value per controller joint to add a gripper, got {values}")
        out[key] = [float(v) for v in (*values, *extra)]
    out["gripper_joints"] = joints
    return out


def gripper_topic(name: str) -> str:
    """The topic the preset's stock gripper takes commands on ('' without a gripper block)."""
    return str(_block(_doc(name), GRIPPER_KEY).get("topic", ""))


def camera_topics(name: str, override: str = "") -> dict[str, str]:
    """{camera name: topic} for multi-camera checkpoints: the preset's ``policy_camera_topics``,
    updated by ``override`` ("scene=/a/image_raw,wrist=/b/image_raw"). The node subscribes
    ``<camera>/image_raw`` for each camera of a checkpoint with several."""
    topics = {str(k): str(v) for k, v in _block(_doc(name), CAMERAS_KEY).items()}
    for item in filter(None, (s.strip() for s in override.split(","))):
        cam, sep, topic = item.partition("=")
        if not sep or not cam.strip() or not topic.strip():
            raise ValueError(f"camera_topics entries are NAME=TOPIC, got {item!r}")
        topics[cam.strip()] = topic.strip()
    return topics


ROBOTS = ("sim", "ur", "franka_fr3", "xarm7", "kinova_gen3", "so101")
# The node's relative topics a preset may remap (its ``policy_launch_topics`` block); the first
# four are required in every preset, gripper_commands only where the arm has a gripper topic.
LAUNCH_TOPICS = ("joint_states", "image_raw", "joint_trajectory", "commands", "gripper_commands")
REQUIRED_TOPICS = LAUNCH_TOPICS[:4]
LAUNCH_KEY = "policy_launch_topics"


@dataclass(frozen=True)
class LaunchPlan:
    """parameter_files: policy.yaml then the preset (later files win); overrides: from the
    launch arguments (win over both); remappings: (node topic, arm topic)."""

    parameter_files: tuple[Path, ...]
    overrides: dict[str, Any]
    remappings: tuple[tuple[str, str], ...]


def _bool(value: str) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def launch_plan(robot: str, arguments: Mapping[str, str]) -> LaunchPlan:
    """The node's parameters and remaps for ``robot`` (a preset name) and the launch
    ``arguments`` (strings, as ``ros2 launch`` passes them; missing = default): any
    ``<topic>_topic`` argument overrides the preset's remap of ``<topic>`` (an empty preset entry
    means no remap); use_sim_time / autostart / enabled / gripper are booleans (``gripper``: the
    preset's stock gripper joins the action, see :func:`load_preset`, and ``gripper_commands`` is
    remapped to its topic); ``camera_topics`` ("scene=/a,wrist=/b") updates the preset's
    ``<camera>/image_raw`` remaps; ``gripper_output`` ``action`` (with ``gripper``) sends
    GripperCommand goals to ``gripper_action`` or the preset's ``action`` with its
    ``max_effort`` instead; checkpoint and command_mode override the preset only when given.
    Raises ValueError on an unknown robot, a preset without the required topics, or an action
    output without an action name."""
    if robot not in ROBOTS:
        raise ValueError(f"robot must be one of {ROBOTS}, got {robot!r}")
    preset = find_preset(robot)
    doc = yaml.safe_load(preset.read_text())
    topics = (doc.get(LAUNCH_KEY) or {}).get("ros__parameters", {})
    missing = [t for t in REQUIRED_TOPICS if t not in topics]
    unknown = sorted(set(topics) - set(LAUNCH_TOPICS))
    if missing or unknown:
        raise ValueError(f"{preset}: {LAUNCH_KEY} lacks {missing} / has unknown {unknown}")
    remappings = []
    for name in LAUNCH_TOPICS:
        target = arguments.get(f"{name}_topic", "") or topics.get(name, "")
        if target:
            remappings.append((name, target))
    for cam, target in camera_topics(robot, arguments.get("camera_topics", "")).items():
        remappings.append((f"{cam}/image_raw", target))
    overrides: dict[str, Any] = {k: _bool(arguments.get(k, "false")) for k in ("use_sim_time", "autostart", "enabled")}
    output = arguments.get("gripper_output", "") or "topic"
    if output not in ("topic", "action"):
        raise ValueError(f"gripper_output must be topic or action, got {output!r}")
    if _bool(arguments.get("gripper", "false")):
        params = load_preset(robot, gripper=True)
        overrides.update({k: params[k] for k in ("gripper_joints", *PER_JOINT)})
        if output == "action":  # GripperCommand goals; an action name is a parameter, not a remap
            block = _block(doc, GRIPPER_KEY)
            action = arguments.get("gripper_action", "") or str(block.get("action", ""))
            if not action:
                raise ValueError(f"{preset}: {GRIPPER_KEY} has no `action`; give gripper_action:=/your/gripper_cmd")
            overrides.update({"gripper_output": "action", "gripper_action": action,
                              "gripper_max_effort": float(block.get("max_effort", 0.0))})
        elif not arguments.get("gripper_commands_topic") and gripper_topic(robot):
            remappings = [r for r in remappings if r[0] != "gripper_commands"]
            remappings.append(("gripper_commands", gripper_topic(robot)))
    elif output == "action":
        raise ValueError("gripper_output:=action needs gripper:=true")
    for key in ("checkpoint", "command_mode"):
        if arguments.get(key):
            overrides[key] = arguments[key]
    return LaunchPlan((find_config("policy.yaml"), preset), overrides, tuple(remappings))

