"""Launch the streaming flow policy node for one arm (needs a real ROS 2 install).

    ros2 launch streaming_flow_ros policy.launch.py robot:=ur checkpoint:=/path/policy.safetensors
    ros2 launch streaming_flow_ros policy.launch.py robot:=sim autostart:=true enabled:=true
    ros2 launch streaming_flow_ros policy.launch.py robot:=franka_fr3 gripper:=true use_sim_time:=true \
        checkpoint:=/path/lift.safetensors   # arm + Franka Hand, scene + wrist cameras
    ros2 launch streaming_flow_ros policy.launch.py robot:=ur gripper:=true gripper_output:=action \
        checkpoint:=/path/lift.safetensors   # Robotiq 2F-85 through its GripperActionController

Parameters: config/policy.yaml (defaults, documented), then config/robots/<robot>.yaml (joints,
limits, command mode), then the arguments below. The node's relative topics are remapped onto
the arm's topics from the preset's ``policy_launch_topics`` block; any ``*_topic`` argument
overrides one (an empty preset entry means "no remap"). The node is a lifecycle node: with
``autostart:=false`` (the default) drive it with ``ros2 lifecycle set /policy_node configure``
then ``activate``; it starts in dry run (``enabled:=false``), toggled with
``ros2 service call /policy_node/enable std_srvs/srv/SetBool "{data: true}"``.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription
from streaming_flow_ros.presets import LAUNCH_TOPICS, ROBOTS, launch_plan

PACKAGE = "streaming_flow_ros"
ARGUMENTS = ("use_sim_time", "autostart", "enabled", "checkpoint", "command_mode", "gripper", "gripper_output",
             "gripper_action", "camera_topics",
             *(f"{t}_topic" for t in LAUNCH_TOPICS))


def _node(context, *args, **kwargs):
    """All the logic is streaming_flow_ros.presets.launch_plan (tested for every preset)."""
    robot = LaunchConfiguration("robot").perform(context)
    plan = launch_plan(robot, {a: LaunchConfiguration(a).perform(context) for a in ARGUMENTS})
    node = LifecycleNode(
        package=PACKAGE,
        executable="policy_node",
        name=LaunchConfiguration("node_name").perform(context),
        namespace=LaunchConfiguration("namespace").perform(context),
        output="screen",
        parameters=[*(str(f) for f in plan.parameter_files), plan.overrides],
        remappings=list(plan.remappings),
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
        DeclareLaunchArgument("gripper", default_value="false",
                              description="the preset's stock gripper joins the action (policy_gripper block)"),
        DeclareLaunchArgument("gripper_output", default_value="topic", choices=["topic", "action"],
                              description="gripper commands as a topic, or GripperCommand action goals"),
        DeclareLaunchArgument("gripper_action", default_value="",
                              description="GripperCommand server (gripper_output:=action); empty = the preset's"),
        DeclareLaunchArgument("camera_topics", default_value="",
                              description="NAME=TOPIC,... for a multi-camera checkpoint; empty = the preset's"),
    ]
    args += [DeclareLaunchArgument(f"{t}_topic", default_value="",
                                   description=f"remap the node's `{t}`; empty = the preset's")
             for t in LAUNCH_TOPICS]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
