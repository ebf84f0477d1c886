"""The policy node's outputs: a tick's decision (policy/control.py TickOutput) as messages.

Topics (relative, remap them), all RELIABLE:

- ``~/action`` (trajectory_msgs/JointTrajectoryPoint): every command, dry run included, in the
  checkpoint's action order;
- ``joint_trajectory`` (command_mode jtc, trajectory_msgs/JointTrajectory, controller joints by
  name, ``header.stamp`` 0, ``time_from_start`` = lookahead_ticks / control_rate_hz) or
  ``commands`` (command_mode forward, std_msgs/Float64MultiArray in the controller's order);
- ``gripper_commands`` (with ``gripper_joints`` and a command_mode other than none:
  Float64MultiArray in that order; ``gripper_mode: binary`` sends the lower or upper limit,
  whichever side of the midpoint the command is).

Only commands the ControlLoop marks ``to_controller`` (enabled, not a dry run) and its holds go
to the controller and gripper topics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ..policy.control import TickOutput
from ..policy.safety import SafetyLimits, binary_gripper
from ..spec import IOSpec
from . import conversions as cv
from .params import OutputParams

COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


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
        self._binary = params.gripper_mode == "binary"
        self._tfs = cv.lookahead_time(params.lookahead_ticks, control_rate_hz)
        self._action = node.create_publisher(JointTrajectoryPoint, "~/action", COMMAND_QOS)
        self._jtc = self._fwd = self._grip = None
        if params.command_mode == "jtc":
            self._jtc = node.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
        elif params.command_mode == "forward":
            self._fwd = node.create_publisher(Float64MultiArray, "commands", COMMAND_QOS)
        if params.gripper_joints and params.command_mode != "none":
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
        if self._grip is not None:
            grip = action[self._grip_index]
            if self._binary:  # open/close at the midpoint of its limits
                grip = binary_gripper(grip, self._grip_lower, self._grip_upper)
            self._grip.publish(cv.make_forward_command(grip))

    def destroy(self, node: Any) -> None:
        for pub in (self._action, self._jtc, self._fwd, self._grip):
            if pub is not None:
                node.destroy_publisher(pub)
