"""Launch the streaming flow policy node for one arm (needs a real ROS 2 install).

    ros2 launch streaming_flow_ros policy.launch.py robot:=ur checkpoint:=/path/policy.safetensors
    ros2 launch streaming_flow_ros policy.launch.py robot:=sim autostart:=true enabled:=true

Parameters: config/policy.yaml (defaults, documented), then config/robots/<robot>.yaml (joints,
limits, command mode), then the arguments below. The node's relative topics are remapped onto
the arm's topics from the preset's ``policy_launch_topics`` block; any ``*_topic`` argument
overrides one (an empty preset entry means "no remap"). The node is a lifecycle node: with
``autostart:=false`` (the default) drive it with ``ros2 lifecycle set /policy_node configure``
then ``activate``; it starts in dry run (``enabled:=false``), toggled with
``ros2 service call /policy_node/enable std_srvs/srv/SetBool "{data: true}"``.
"""

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription

PACKAGE = "streaming_flow_ros"
ROBOTS = ("sim", "ur", "franka_fr3", "xarm7", "kinova_gen3", "so101")
TOPICS = ("joint_states", "image_raw", "joint_trajectory", "commands")
LAUNCH_KEY = "policy_launch_topics"


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _node(context, *args, **kwargs):
    share = get_package_share_directory(PACKAGE)
    robot = LaunchConfiguration("robot").perform(context)
    if robot not in ROBOTS:
        raise RuntimeError(f"robot must be one of {ROBOTS}, got {robot!r}")
    preset = os.path.join(share, "config", "robots", f"{robot}.yaml")
    with open(preset) as f:
        topics = (yaml.safe_load(f).get(LAUNCH_KEY) or {}).get("ros__parameters", {})
    remappings = []
    for name in TOPICS:
        target = LaunchConfiguration(f"{name}_topic").perform(context) or topics.get(name, "")
        if target:
            remappings.append((name, target))
    overrides = {
        "use_sim_time": _bool(LaunchConfiguration("use_sim_time").perform(context)),
        "autostart": _bool(LaunchConfiguration("autostart").perform(context)),
        "enabled": _bool(LaunchConfiguration("enabled").perform(context)),
    }
    checkpoint = LaunchConfiguration("checkpoint").perform(context)
    if checkpoint:
        overrides["checkpoint"] = checkpoint
    command_mode = LaunchConfiguration("command_mode").perform(context)
    if command_mode:
        overrides["command_mode"] = command_mode
    node = LifecycleNode(
        package=PACKAGE,
        executable="policy_node",
        name=LaunchConfiguration("node_name").perform(context),
        namespace=LaunchConfiguration("namespace").perform(context),
        output="screen",
        parameters=[os.path.join(share, "config", "policy.yaml"), preset, overrides],
        remappings=remappings,
    )
    return [node]


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument("robot", default_value="sim", choices=list(ROBOTS),
                              description="arm preset in config/robots/"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="policy checkpoint; empty = the package default"),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("node_name", default_value="policy_node"),
        DeclareLaunchArgument("autostart", default_value="false",
                              description="configure + activate without a lifecycle manager"),
        DeclareLaunchArgument("enabled", default_value="false",
                              description="send commands to the controller (false = dry run)"),
        DeclareLaunchArgument("command_mode", default_value="",
                              description="jtc | forward | none; empty = the preset's"),
    ]
    args += [DeclareLaunchArgument(f"{t}_topic", default_value="",
                                   description=f"remap the node's `{t}`; empty = the preset's")
             for t in TOPICS]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
