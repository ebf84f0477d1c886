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


def load_preset(name: str = "sim") -> dict[str, Any]:
    """The preset's node parameters (its ``/**: ros__parameters`` block)."""
    doc = yaml.safe_load(find_preset(name).read_text())
    return dict(doc["/**"]["ros__parameters"])


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
    means no remap); use_sim_time / autostart / enabled are booleans; checkpoint and
    command_mode override the preset only when given. Raises ValueError on an unknown robot or
    a preset without the required topics."""
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
    overrides: dict[str, Any] = {k: _bool(arguments.get(k, "false")) for k in ("use_sim_time", "autostart", "enabled")}
    for key in ("checkpoint", "command_mode"):
        if arguments.get(key):
            overrides[key] = arguments[key]
    return LaunchPlan((find_config("policy.yaml"), preset), overrides, tuple(remappings))

