"""When a streamed gripper position becomes a goal for a gripper action server.

Many real grippers take commands only as a ``control_msgs/action/GripperCommand`` goal: the
GripperActionController of ros2_controllers (Robotiq 2F-85 with ros2_robotiq_gripper or
ros2_kortex) and franka_gripper's ``gripper_action``. A goal is a whole motion (a move or a
grasp), not a per-tick set-point: sending one per 100 Hz tick would have the server preempt
itself a hundred times a second (GripperActionController) or queue blocking moves (Franka).
:class:`GripperGoalGate` turns the node's per-tick gripper command into sparse goals: a new goal
when the command moved at least ``deadband`` of the gripper's travel from the last goal sent, and
no more often than ``max_rate_hz``. With ``gripper_mode: binary`` the command only ever takes the
two limits, so every open/close switch is one goal.

No ROS here: ros/outputs.py sends the goals the gate lets through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class GripperGoalGate:
    """``offer(now, value)`` once per tick; it returns the value to send as a new goal, or None.

    ``lower``/``upper``: the gripper joint's position limits (finite, lower < upper), in the
    server's units; ``deadband``: the smallest change from the last goal sent that makes a new
    goal, as a fraction of ``upper - lower`` in [0, 1) (0: any change); ``max_rate_hz``: at most
    this many goals per second (> 0). ``now`` is any monotonic clock in seconds."""

    lower: float
    upper: float
    deadband: float = 0.02
    max_rate_hz: float = 10.0
    _last: float | None = field(default=None, init=False)
    _last_t: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper) and self.lower < self.upper):
            raise ValueError(f"gripper goals need finite position limits with lower < upper, got "
                             f"[{self.lower}, {self.upper}]")
        if not (0.0 <= self.deadband < 1.0):
            raise ValueError(f"gripper_goal_deadband must be in [0, 1), got {self.deadband}")
        if not (math.isfinite(self.max_rate_hz) and self.max_rate_hz > 0):
            raise ValueError(f"gripper_goal_rate_hz must be > 0, got {self.max_rate_hz}")

    @property
    def last(self) -> float | None:
        """The last goal let through (None before the first)."""
        return self._last

    def offer(self, now: float, value: float) -> float | None:
        """The gripper command of this tick; the goal to send now (clamped into the limits), or
        None: nothing new, too soon after the last goal, or a non-finite value (never sent)."""
        if not (math.isfinite(value) and math.isfinite(now)):
            return None
        value = min(max(float(value), self.lower), self.upper)
        if self._last is not None and (abs(value - self._last) <= self.deadband * (self.upper - self.lower)
                                       or now - self._last_t < 1.0 / self.max_rate_hz - 1e-9):
            return None
        self._last, self._last_t = value, now
        return value

    def forget(self) -> None:
        """The last goal did not reach the server (none listening, rejected): the next offer
        is sent whatever its distance from it."""
        self._last, self._last_t = None, -math.inf
