"""The policy node's outputs: a tick's decision (policy/control.py TickOutput) as messages.

Topics (relative, remap them), all RELIABLE:

- ``~/action`` (trajectory_msgs/JointTrajectoryPoint): every command, dry run included, in the
  checkpoint's action order;
- ``joint_trajectory`` (command_mode jtc, trajectory_msgs/JointTrajectory, controller joints by
  name, ``header.stamp`` 0, ``time_from_start`` = lookahead_ticks / control_rate_hz) or
  ``commands`` (command_mode forward, std_msgs/Float64MultiArray in the controller's order);
- ``gripper_commands`` (with ``gripper_joints`` and a command_mode other than none:
  Float64MultiArray in that order; ``gripper_mode: binary`` sends the lower or upper limit,
  whichever side of the midpoint the command is, or with ``gripper_hysteresis`` of a band around
  it, started over from the measured gripper whenever the loop anchors there);
- or, with ``gripper_output: action``, ``control_msgs/action/GripperCommand`` goals to the
  server named by ``gripper_action`` (one gripper joint), as sparse as policy/gripper.py's
  GripperGoalGate makes them: a new goal when the command moved ``gripper_goal_deadband`` of the
  travel, at most ``gripper_goal_rate_hz`` per second (wall clock).

Only commands the ControlLoop marks ``to_controller`` (enabled, not a dry run) and its holds go
to the controller and gripper topics.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rclpy.action import ActionClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ..policy.control import TickOutput
from ..policy.gripper import GripperGoalGate
from ..policy.safety import BinaryGripper, SafetyLimits
from ..spec import IOSpec
from . import conversions as cv
from .params import OutputParams

COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def import_gripper_command() -> type:
    """control_msgs' GripperCommand action type; ImportError saying what to install."""
    try:
        from control_msgs.action import GripperCommand  # a real ROS install; not on PyPI
    except ImportError as e:
        raise ImportError(f"gripper_output action needs control_msgs (apt install ros-$ROS_DISTRO-control-msgs): {e}") from e
    return GripperCommand


class GripperGoals:
    """GripperCommand goals to ``params.gripper_action`` for one gripper joint with limits
    [``lower``, ``upper``]: ``offer`` the gripper command every tick; the gate decides which
    become goals. A goal that finds no server, or that the server rejects, is forgotten, so the
    next command is sent whatever its distance from it. ``counts``: goals sent, rejected, and
    skipped for want of a server."""

    def __init__(self, node: Any, params: OutputParams, lower: float, upper: float) -> None:
        self._type = import_gripper_command()
        self._name = params.gripper_action
        self._client = ActionClient(node, self._type, params.gripper_action)
        self._gate = GripperGoalGate(lower, upper, params.gripper_goal_deadband, params.gripper_goal_rate_hz)
        self._effort = float(params.gripper_max_effort)
        self._log = node.get_logger()
        self.counts = {"gripper_goals_sent": 0, "gripper_goals_rejected": 0, "gripper_goals_no_server": 0}

    def offer(self, value: float) -> None:
        target = self._gate.offer(time.monotonic(), value)
        if target is None:
            return
        if not self._client.server_is_ready():
            self._gate.forget()
            self.counts["gripper_goals_no_server"] += 1
            self._log.warning(f"no GripperCommand server on {self._name}: the gripper goal waits for one",
                              throttle_duration_sec=5.0)
            return
        goal = self._type.Goal()
        goal.command.position = float(target)
        goal.command.max_effort = self._effort
        self._client.send_goal_async(goal).add_done_callback(self._on_response)
        self.counts["gripper_goals_sent"] += 1

    def _on_response(self, future: Any) -> None:
        handle = future.result() if future.exception() is None else None
        if handle is None or not handle.accepted:
            self._gate.forget()
            self.counts["gripper_goals_rejected"] += 1
            self._log.warning(f"the GripperCommand server on {self._name} rejected a goal", throttle_duration_sec=5.0)

    def destroy(self) -> None:
        self._client.destroy()


class Outputs:
    """One configuration's publishers on ``node`` (built at configure, ``destroy``ed at
    cleanup). ``limits``: the safety limits in the checkpoint's action order (binary gripper
    thresholds); ``controller_joints``: the arm controller's joint order; ``control_rate_hz``:
    for the JointTrajectory lookahead."""

    def __init__(self, node: Any, params: OutputParams, spec: IOSpec, limits: SafetyLimits,
                 controller_joints: tuple[str, ...], control_rate_hz: float) -> None:
        self._log = node.get_logger()
        names = list(spec.action_names)
        self._ctrl_joints = controller_joints
        self._ctrl_index = np.array([names.index(n) for n in controller_joints], np.intp)
        self._grip_index = np.array([names.index(n) for n in params.gripper_joints], np.intp)
        self._grip_lower, self._grip_upper = limits.lower[self._grip_index], limits.upper[self._grip_index]
        self._binary = (BinaryGripper(self._grip_lower, self._grip_upper, params.gripper_hysteresis)
                        if params.gripper_mode == "binary" else None)
        self._tfs = cv.lookahead_time(params.lookahead_ticks, control_rate_hz)
        self._action = node.create_publisher(JointTrajectoryPoint, "~/action", COMMAND_QOS)
        self._jtc = self._fwd = self._grip = self._goals = None
        if params.command_mode == "jtc":
            self._jtc = node.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
        elif params.command_mode == "forward":
            self._fwd = node.create_publisher(Float64MultiArray, "commands", COMMAND_QOS)
        if params.gripper_joints and params.command_mode != "none":
            if params.gripper_output == "action":
                self._goals = GripperGoals(node, params, float(self._grip_lower[0]), float(self._grip_upper[0]))
            else:
                self._grip = node.create_publisher(Float64MultiArray, "gripper_commands", COMMAND_QOS)

    def publish(self, out: TickOutput, publish_velocities: bool) -> None:
        """Log the tick's notices and publish its command (and hold) messages."""
        for level, text in out.notices:  # one call site per severity: rclpy refuses a site whose severity changes
            if level == "error":
                self._log.error(text)
            elif level == "warning":
                self._log.warning(text)
            else:
                self._log.info(text)
        if out.controller_hold is not None:
            self.to_controller(out.controller_hold, None)
        if out.anchored and self._binary is not None:  # started from the measured gripper: its side
            self._binary.reset()
        if out.command is not None:
            vel = out.velocity if publish_velocities else None
            self._action.publish(cv.make_trajectory_point(out.command, self._tfs, vel))
            if out.to_controller:
                self.to_controller(out.command, vel)

    def to_controller(self, action: np.ndarray, vel: np.ndarray | None) -> None:
        """``action`` (D_a,) rad in the checkpoint's order (``vel`` rad/s or None) to the arm
        controller's topic and the gripper topic, whichever exist."""
        if self._jtc is not None:
            idx = self._ctrl_index
            msg = cv.make_joint_trajectory(self._ctrl_joints, action[idx], self._tfs,
                                           None if vel is None else vel[idx])
            self._jtc.publish(msg)
        elif self._fwd is not None:
            self._fwd.publish(cv.make_forward_command(action[self._ctrl_index]))
        if self._grip is not None or self._goals is not None:
            grip = action[self._grip_index]
            if self._binary is not None:  # open/close at the midpoint of its limits, +- the hysteresis band
                grip = self._binary(grip)
            if self._goals is not None:
                self._goals.offer(float(grip[0]))
            else:
                self._grip.publish(cv.make_forward_command(grip))

    @property
    def gripper_goal_counts(self) -> dict[str, int]:
        """GripperCommand goals sent / rejected / without a server ({} without gripper_output action)."""
        return dict(self._goals.counts) if self._goals is not None else {}

    def destroy(self, node: Any) -> None:
        for pub in (self._action, self._jtc, self._fwd, self._grip):
            if pub is not None:
                node.destroy_publisher(pub)
        if self._goals is not None:
            self._goals.destroy()
