"""A planar arm with revolute joints: kinematics, joint tracking physics and two command
interfaces with ros2_control semantics, in pure numpy.

Geometry (top-down, metres): the base sits at ``base_xy``; joint angles are relative, radians;
link i points along ``theta_i = pi/2 + q_0 + ... + q_i`` (q = 0 is the arm stretched straight
"forward", along +y). Links are capsules of radius ``link_radius`` around their segments.

Physics: every joint follows its *desired* state (q_d, qd_d) through a critically damped
second-order servo, ``qdd = w^2 (q_d - q) + 2 w (qd_d - qd)``, clipped to the acceleration and
velocity limits and to the joint limits (hard stops), stepped at ``physics_rate_hz``
(semi-implicit Euler). With w = 25 rad/s a position step settles in ~0.25 s and a moving
command is followed ~2/w = 80 ms late without velocity feed-forward.

Command interfaces (the last accepted command of either kind owns the desired state), implemented
once in :mod:`streaming_flow_ros.sim.jtc` (shared with the MuJoCo cells):

- :meth:`SimArm.command_trajectory` behaves like joint_trajectory_controller with
  ``interpolate_from_desired_state: true``: every accepted message *replaces* the running
  trajectory; the segment before its first point starts from the desired state at arrival;
  ``stamp == 0`` means "start now"; segments are linear, or cubic Hermite when both ends carry
  velocities; after the last point the arm holds it. Malformed messages are rejected (not
  raised) with a reason, and the previous command keeps running.
- :meth:`SimArm.command_forward` behaves like forward_command_controller: positions in joint
  order become the desired position at once (desired velocity 0).

Times are seconds on the arm's own clock (:attr:`SimArm.time`), which starts at 0 and only
moves forward in :meth:`SimArm.step`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .jtc import CommandResult, JointTrajectory, TrajectoryController, TrajectoryPoint

__all__ = ["ArmConfig", "CommandResult", "JointTrajectory", "SimArm", "TrajectoryPoint", "forward_kinematics",
           "point_segment_distance"]


@dataclass(frozen=True)
class ArmConfig:
    """Arm geometry, limits and servo model. Per-joint tuples have one value per joint.

    Units: m, rad, rad/s, rad/s^2, Hz. ``tracking_omega`` (rad/s) is the servo's natural frequency.
    """

    joint_names: tuple[str, ...] = ("joint1", "joint2", "joint3")
    link_lengths: tuple[float, ...] = (0.34, 0.36, 0.30)
    lower: tuple[float, ...] = (-2.6, -2.7, -2.7)
    upper: tuple[float, ...] = (2.6, 2.7, 2.7)
    max_velocity: tuple[float, ...] = (2.0, 2.5, 3.0)
    max_acceleration: tuple[float, ...] = (12.0, 15.0, 18.0)
    home: tuple[float, ...] = (1.9, -2.0, -1.3)
    tracking_omega: float = 25.0
    physics_rate_hz: float = 500.0
    link_radius: float = 0.02
    base_xy: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if n < 1 or len(set(self.joint_names)) != n or not all(self.joint_names):
            raise ValueError(f"joint_names must be unique non-empty strings, got {self.joint_names}")
        for label in ("link_lengths", "lower", "upper", "max_velocity", "max_acceleration", "home"):
            vals = getattr(self, label)
            if len(vals) != n:
                raise ValueError(f"{label} has {len(vals)} values for {n} joints")
            if not all(math.isfinite(v) for v in vals):
                raise ValueError(f"{label} must be finite, got {vals}")
        if any(v <= 0 for v in self.link_lengths + self.max_velocity + self.max_acceleration):
            raise ValueError("link_lengths, max_velocity and max_acceleration must be > 0")
        if any(lo >= hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError(f"lower {self.lower} must be < upper {self.upper}")
        if any(not lo <= h <= hi for lo, h, hi in zip(self.lower, self.home, self.upper)):
            raise ValueError(f"home {self.home} outside the joint limits")
        if not (0.0 < self.tracking_omega and 10.0 <= self.physics_rate_hz <= 20000.0):
            raise ValueError("tracking_omega must be > 0 and physics_rate_hz in [10, 20000]")
        if self.tracking_omega / self.physics_rate_hz > 0.2:
            raise ValueError("physics_rate_hz too low for tracking_omega (need w*dt <= 0.2)")

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    @property
    def reach(self) -> float:
        """Sum of link lengths, m."""
        return float(sum(self.link_lengths))


def forward_kinematics(config: ArmConfig, q: np.ndarray) -> np.ndarray:
    """Joint positions of the chain.

    Args:
        q: (..., N) joint angles, rad.
    Returns:
        (..., N + 1, 2) points in metres: the base, each joint after it, the end effector last.
    """
    q = np.asarray(q, np.float64)
    if q.shape[-1] != config.dof:
        raise ValueError(f"q has {q.shape[-1]} joints, arm has {config.dof}")
    theta = math.pi / 2 + np.cumsum(q, axis=-1)  # (..., N) absolute link angles
    lengths = np.asarray(config.link_lengths)
    steps = np.stack([np.cos(theta), np.sin(theta)], axis=-1) * lengths[:, None]  # (..., N, 2)
    base = np.broadcast_to(np.asarray(config.base_xy, np.float64), steps.shape[:-2] + (1, 2))
    return np.concatenate([base, base + np.cumsum(steps, axis=-2)], axis=-2)


def point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance from points ``p`` to segments ``a``-``b`` (all (..., 2), broadcast), m."""
    # Component-wise: reductions over a trailing axis of size 2 are slow in numpy.
    abx, aby = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    apx, apy = p[..., 0] - a[..., 0], p[..., 1] - a[..., 1]
    denom = np.maximum(abx * abx + aby * aby, 1e-18)
    s = np.clip((apx * abx + apy * aby) / denom, 0.0, 1.0)
    dx, dy = apx - s * abx, apy - s * aby
    return np.sqrt(dx * dx + dy * dy)


class SimArm:
    """The simulated arm: state, desired state, command interfaces and physics stepping.

    Not thread-safe: callers that share it between threads hold their own lock.
    """

    def __init__(self, config: ArmConfig | None = None, q0: Sequence[float] | None = None,
                 *, allow_nonzero_velocity_at_trajectory_end: bool = False) -> None:
        self.config = config or ArmConfig()
        c = self.config
        self.dt = 1.0 / c.physics_rate_hz
        self._lower, self._upper = np.asarray(c.lower), np.asarray(c.upper)
        self._vmax, self._amax = np.asarray(c.max_velocity), np.asarray(c.max_acceleration)
        self._steps = 0
        self.controller = TrajectoryController(
            c.joint_names, c.home, allow_nonzero_velocity_at_trajectory_end=allow_nonzero_velocity_at_trajectory_end)
        self.reset(q0)

    # -- state -----------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Arm clock, s (physics steps taken / physics rate)."""
        return self._steps * self.dt

    @property
    def q(self) -> np.ndarray:
        """Measured joint positions (N,), rad (a copy)."""
        return self._q.copy()

    @property
    def qd(self) -> np.ndarray:
        """Measured joint velocities (N,), rad/s (a copy)."""
        return self._qd.copy()

    @property
    def desired_q(self) -> np.ndarray:
        return self.controller.desired_q

    @property
    def desired_qd(self) -> np.ndarray:
        return self.controller.desired_qd

    @property
    def mode(self) -> str:
        """'hold' (no command since reset), 'trajectory' or 'forward'."""
        return self.controller.mode

    @property
    def last_rejection(self) -> str:
        return self.controller.last_rejection

    @property
    def allow_nonzero_velocity_at_trajectory_end(self) -> bool:
        return self.controller.allow_nonzero_velocity_at_trajectory_end

    @allow_nonzero_velocity_at_trajectory_end.setter
    def allow_nonzero_velocity_at_trajectory_end(self, value: bool) -> None:
        self.controller.allow_nonzero_velocity_at_trajectory_end = bool(value)

    def reset(self, q: Sequence[float] | None = None) -> None:
        """Put the arm at rest at ``q`` (default: home) holding it; drops any command.
        The clock keeps running (it never goes back)."""
        q = np.asarray(self.config.home if q is None else q, np.float64)
        if q.shape != (self.config.dof,) or not np.isfinite(q).all():
            raise ValueError(f"reset q must be {self.config.dof} finite values, got {q.tolist()}")
        self._q = np.clip(q, self._lower, self._upper)
        self._qd = np.zeros_like(self._q)
        self.controller.reset(self._q)

    def link_points(self, q: np.ndarray | None = None) -> np.ndarray:
        """(N + 1, 2) chain points in m for ``q`` (default: the measured state)."""
        return forward_kinematics(self.config, self._q if q is None else q)

    def end_effector(self, q: np.ndarray | None = None) -> np.ndarray:
        """(2,) end-effector position in m."""
        return self.link_points(q)[-1]

    # -- commands (sim/jtc.py) ------------------------------------------------------------------
    def command_trajectory(self, traj: JointTrajectory) -> CommandResult:
        """Accept (replace the running command) or reject a trajectory, like JTC does."""
        return self.controller.command_trajectory(traj, self.time)

    def command_forward(self, values: Sequence[float]) -> CommandResult:
        """forward_command_controller: ``values`` (N,) rad in controller joint order."""
        return self.controller.command_forward(values)

    # -- physics -----------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` steps of 1 / physics_rate_hz seconds."""
        w, dt = self.config.tracking_omega, self.dt
        for _ in range(int(n)):
            self._steps += 1
            ctrl = self.controller
            ctrl.sample(self.time)
            qdes = np.clip(ctrl.desired_q, self._lower, self._upper)
            acc = w * w * (qdes - self._q) + 2.0 * w * (ctrl.desired_qd - self._qd)
            acc = np.clip(acc, -self._amax, self._amax)
            self._qd = np.clip(self._qd + acc * dt, -self._vmax, self._vmax)
            q = self._q + self._qd * dt
            hit = (q < self._lower) | (q > self._upper)  # hard stops
            self._q = np.clip(q, self._lower, self._upper)
            self._qd[hit] = 0.0

    def advance_to(self, t: float) -> int:
        """Step until :attr:`time` >= ``t`` - dt/2; returns the number of steps taken."""
        n = max(0, math.floor((t - self.time) / self.dt + 0.5))
        self.step(n)
        return n
