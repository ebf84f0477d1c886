"""joint_trajectory_controller and forward_command_controller semantics in plain numpy: the
command side of a ros2_control arm, shared by every simulated arm (``sim/arm.py``'s planar arm
and the MuJoCo cells in ``cells/``). It owns the *desired* state (q_d, qd_d) of N joints; the
arm's physics follows it.

- :meth:`TrajectoryController.command_trajectory` behaves like joint_trajectory_controller with
  ``interpolate_from_desired_state: true``: every accepted message *replaces* the running
  trajectory; the segment before its first point starts from the desired state at arrival;
  ``stamp == 0`` means "start now"; segments are linear, or cubic Hermite when both ends carry
  velocities; after the last point the desired state holds it. Malformed messages are rejected
  (not raised) with a reason, and the previous command keeps running.
- :meth:`TrajectoryController.command_forward` behaves like forward_command_controller:
  positions in joint order become the desired position at once (desired velocity 0).
- :meth:`TrajectoryController.sample` moves the desired state to time ``t``: call it once per
  controller update (the arm's physics step), with the arm clock.

Joints are mapped by name; positions in rad (m for prismatic joints), times in seconds on the
arm's clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


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


class TrajectoryController:
    """Desired state and command interfaces of N named joints (see the module docstring).

    Not thread-safe: callers that share it between threads hold their own lock.
    """

    def __init__(self, joint_names: Sequence[str], q0: Sequence[float],
                 *, allow_nonzero_velocity_at_trajectory_end: bool = False) -> None:
        self.joint_names = tuple(joint_names)
        self.dof = len(self.joint_names)
        self.allow_nonzero_velocity_at_trajectory_end = allow_nonzero_velocity_at_trajectory_end
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self.last_rejection = ""
        self.reset(q0)

    @property
    def desired_q(self) -> np.ndarray:
        """(N,) desired positions, rad (a copy)."""
        return self._qdes.copy()

    @property
    def desired_qd(self) -> np.ndarray:
        """(N,) desired velocities, rad/s (a copy)."""
        return self._qddes.copy()

    @property
    def mode(self) -> str:
        """'hold' (no command since reset), 'trajectory' or 'forward'."""
        return self._mode

    def reset(self, q: Sequence[float]) -> None:
        """Hold ``q`` (N,) at rest; drops any command."""
        self._qdes = np.asarray(q, np.float64).reshape(-1).copy()
        self._qddes = np.zeros_like(self._qdes)
        self._traj: _Segments | None = None
        self._mode = "hold"

    def _reject(self, reason: str) -> CommandResult:
        self.last_rejection = reason
        return CommandResult(False, reason)

    def command_trajectory(self, traj: JointTrajectory, now: float) -> CommandResult:
        """Accept (replace the running command) or reject a trajectory arriving at arm time
        ``now`` s, like JTC does."""
        names, dof = tuple(traj.joint_names), self.dof
        if len(set(names)) != len(names):
            return self._reject(f"duplicate joint names {list(names)}")
        unknown = [n for n in names if n not in self._index]
        if unknown:
            return self._reject(f"unknown joints {unknown}; controller joints are {list(self.joint_names)}")
        if len(names) != dof:
            missing = [n for n in self.joint_names if n not in names]
            return self._reject(f"partial goal: missing joints {missing} (allow_partial_joints_goal is false)")
        if not traj.points:
            return self._reject("empty trajectory (no points)")
        if not math.isfinite(traj.stamp) or traj.stamp < 0:
            return self._reject(f"invalid header stamp {traj.stamp}")
        order = np.array([names.index(n) for n in self.joint_names])  # controller joint i <- msg column
        times, pos, vel = [], [], []
        prev = -math.inf
        for k, pt in enumerate(traj.points):
            p = np.asarray(pt.positions, np.float64).reshape(-1)
            if p.size != dof:
                return self._reject(f"point {k}: {p.size} positions for {dof} joint names")
            v = None
            if pt.velocities is not None and len(pt.velocities) > 0:
                v = np.asarray(pt.velocities, np.float64).reshape(-1)
                if v.size != dof:
                    return self._reject(f"point {k}: {v.size} velocities for {dof} joint names")
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
        if v.size != self.dof:
            return self._reject(f"forward command has {v.size} values for {self.dof} joints")
        if not np.isfinite(v).all():
            return self._reject(f"forward command has non-finite values {v.tolist()}")
        self._traj = None
        self._qdes, self._qddes = v.copy(), np.zeros_like(v)
        self._mode = "forward"
        return CommandResult(True)

    def sample(self, t: float) -> None:
        """Move the desired state to arm time ``t`` s along the running trajectory (if any)."""
        tr = self._traj
        if tr is None or t < tr.start:
            return  # no trajectory, or it has not started: hold the desired state
        times = tr.times
        if t >= times[-1]:
            self._qdes, self._qddes = tr.pos[-1].copy(), np.zeros(self.dof)
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
