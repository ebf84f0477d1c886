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

Command interfaces (the last accepted command of either kind owns the desired state):

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
from dataclasses import dataclass, field

import numpy as np


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


@dataclass(frozen=True)
class TrajectoryPoint:
    """One point of a JointTrajectory, in the message's joint order.

    positions: (N,) rad; velocities: (N,) rad/s or None; time_from_start: s after the start.
    """

    positions: Sequence[float]
    time_from_start: float
    velocities: Sequence[float] | None = None


@dataclass(frozen=True)
class JointTrajectory:
    """A trajectory_msgs/JointTrajectory in plain data. ``stamp`` is the start time on the
    arm clock in seconds; 0 means "start at the controller's next sample"."""

    joint_names: tuple[str, ...]
    points: tuple[TrajectoryPoint, ...]
    stamp: float = 0.0


@dataclass(frozen=True)
class CommandResult:
    """Whether a command was accepted, and why not."""

    accepted: bool
    reason: str = ""


@dataclass
class _Segments:
    """An accepted trajectory in controller joint order, absolute arm-clock times."""

    start: float  # s, trajectory start (stamp, or arrival for stamp 0)
    times: np.ndarray  # (P + 1,) s: anchor time (arrival), then each point
    pos: np.ndarray  # (P + 1, N) rad: anchor = desired state at arrival
    vel: list[np.ndarray | None] = field(default_factory=list)  # P + 1 entries, rad/s or None


class SimArm:
    """The simulated arm: state, desired state, command interfaces and physics stepping.

    Not thread-safe: callers that share it between threads hold their own lock.
    """

    def __init__(self, config: ArmConfig | None = None, q0: Sequence[float] | None = None,
                 *, allow_nonzero_velocity_at_trajectory_end: bool = False) -> None:
        self.config = config or ArmConfig()
        c = self.config
        self.dt = 1.0 / c.physics_rate_hz
        self.allow_nonzero_velocity_at_trajectory_end = allow_nonzero_velocity_at_trajectory_end
        self._lower, self._upper = np.asarray(c.lower), np.asarray(c.upper)
        self._vmax, self._amax = np.asarray(c.max_velocity), np.asarray(c.max_acceleration)
        self._index = {name: i for i, name in enumerate(c.joint_names)}
        self._steps = 0
        self.last_rejection = ""
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
        return self._qdes.copy()

    @property
    def desired_qd(self) -> np.ndarray:
        return self._qddes.copy()

    @property
    def mode(self) -> str:
        """'hold' (no command since reset), 'trajectory' or 'forward'."""
        return self._mode

    def reset(self, q: Sequence[float] | None = None) -> None:
        """Put the arm at rest at ``q`` (default: home) holding it; drops any command.
        The clock keeps running (it never goes back)."""
        q = np.asarray(self.config.home if q is None else q, np.float64)
        if q.shape != (self.config.dof,) or not np.isfinite(q).all():
            raise ValueError(f"reset q must be {self.config.dof} finite values, got {q.tolist()}")
        self._q = np.clip(q, self._lower, self._upper)
        self._qd = np.zeros_like(self._q)
        self._qdes, self._qddes = self._q.copy(), self._qd.copy()
        self._traj: _Segments | None = None
        self._mode = "hold"

    def link_points(self, q: np.ndarray | None = None) -> np.ndarray:
        """(N + 1, 2) chain points in m for ``q`` (default: the measured state)."""
        return forward_kinematics(self.config, self._q if q is None else q)

    def end_effector(self, q: np.ndarray | None = None) -> np.ndarray:
        """(2,) end-effector position in m."""
        return self.link_points(q)[-1]

    # -- commands ----------------------------------------------------------------------------
    def _reject(self, reason: str) -> CommandResult:
        self.last_rejection = reason
        return CommandResult(False, reason)

    def command_trajectory(self, traj: JointTrajectory) -> CommandResult:
        """Accept (replace the running command) or reject a trajectory, like JTC does."""
        c, now = self.config, self.time
        names = tuple(traj.joint_names)
        if len(set(names)) != len(names):
            return self._reject(f"duplicate joint names {list(names)}")
        unknown = [n for n in names if n not in self._index]
        if unknown:
            return self._reject(f"unknown joints {unknown}; controller joints are {list(c.joint_names)}")
        if len(names) != c.dof:
            missing = [n for n in c.joint_names if n not in names]
            return self._reject(f"partial goal: missing joints {missing} (allow_partial_joints_goal is false)")
        if not traj.points:
            return self._reject("empty trajectory (no points)")
        if not math.isfinite(traj.stamp) or traj.stamp < 0:
            return self._reject(f"invalid header stamp {traj.stamp}")
        order = np.array([names.index(n) for n in c.joint_names])  # controller joint i <- msg column
        times, pos, vel = [], [], []
        prev = -math.inf
        for k, pt in enumerate(traj.points):
            p = np.asarray(pt.positions, np.float64).reshape(-1)
            if p.size != c.dof:
                return self._reject(f"point {k}: {p.size} positions for {c.dof} joint names")
            v = None
            if pt.velocities is not None and len(pt.velocities) > 0:
                v = np.asarray(pt.velocities, np.float64).reshape(-1)
                if v.size != c.dof:
                    return self._reject(f"point {k}: {v.size} velocities for {c.dof} joint names")
            tfs = float(pt.time_from_start)
            if not (np.isfinite(p).all() and (v is None or np.isfinite(v).all()) and math.isfinite(tfs)):
                return self._reject(f"point {k}: non-finite positions, velocities or time_from_start")
            if tfs < 0:
                return self._reject(f"point {k}: negative time_from_start {tfs}")
            if tfs <= prev:
                return self._reject(f"point {k}: time_from_start {tfs} not strictly increasing")
            prev = tfs
            times.append(tfs)
            pos.append(p[order])
            vel.append(None if v is None else v[order])
        if traj.stamp == 0.0 and times[0] <= 0.0:
            return self._reject(
                "stamp 0 with time_from_start 0: the first point would be reached instantly "
                "(use time_from_start = k*dt with k >= 1)"
            )
        start = now if traj.stamp == 0.0 else float(traj.stamp)
        if traj.stamp != 0.0 and start + times[-1] < now:
            return self._reject(f"non-zero start time {start:.3f} s ends in the past (now {now:.3f} s)")
        last_v = vel[-1]
        if not self.allow_nonzero_velocity_at_trajectory_end and last_v is not None and np.any(last_v != 0):
            return self._reject(f"velocity of the last point is not zero: {last_v.tolist()}")
        self._traj = _Segments(
            start=start,
            times=np.array([now] + [start + t for t in times]),
            pos=np.vstack([self._qdes[None], np.asarray(pos)]),
            vel=[self._qddes.copy(), *vel],
        )
        self._mode = "trajectory"
        return CommandResult(True)

    def command_forward(self, values: Sequence[float]) -> CommandResult:
        """forward_command_controller: ``values`` (N,) rad in controller joint order."""
        v = np.asarray(values, np.float64).reshape(-1)
        if v.size != self.config.dof:
            return self._reject(f"forward command has {v.size} values for {self.config.dof} joints")
        if not np.isfinite(v).all():
            return self._reject(f"forward command has non-finite values {v.tolist()}")
        self._traj = None
        self._qdes, self._qddes = v.copy(), np.zeros_like(v)
        self._mode = "forward"
        return CommandResult(True)

    # -- physics -----------------------------------------------------------------------------
    def _sample_trajectory(self, t: float) -> None:
        tr = self._traj
        if tr is None or t < tr.start:
            return  # no trajectory, or it has not started: hold the desired state
        times = tr.times
        if t >= times[-1]:
            self._qdes, self._qddes = tr.pos[-1].copy(), np.zeros(self.config.dof)
            return
        k = max(int(np.searchsorted(times, t, side="right")) - 1, 0)  # segment times[k]..times[k+1]
        t0, t1 = times[k], times[k + 1]
        h = t1 - t0
        s = (t - t0) / h
        p0, p1, v0, v1 = tr.pos[k], tr.pos[k + 1], tr.vel[k], tr.vel[k + 1]
        if v0 is None or v1 is None:
            self._qdes = p0 + s * (p1 - p0)
            self._qddes = (p1 - p0) / h
        else:  # cubic Hermite
            h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
            d00, d10, d01, d11 = 6 * s**2 - 6 * s, 3 * s**2 - 4 * s + 1, -6 * s**2 + 6 * s, 3 * s**2 - 2 * s
            self._qdes = h00 * p0 + h10 * h * v0 + h01 * p1 + h11 * h * v1
            self._qddes = (d00 * p0 + d01 * p1) / h + d10 * v0 + d11 * v1

    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` steps of 1 / physics_rate_hz seconds."""
        w, dt = self.config.tracking_omega, self.dt
        for _ in range(int(n)):
            self._steps += 1
            self._sample_trajectory(self.time)
            qdes = np.clip(self._qdes, self._lower, self._upper)
            acc = w * w * (qdes - self._q) + 2.0 * w * (self._qddes - self._qd)
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
