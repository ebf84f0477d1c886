"""The scripted expert: reaches the target, passing the obstacle on a randomly chosen side.
Pure numpy.

Planning, in joint space (all angles rad, lengths m):

1. The side is enforced with a virtual *wall*: a segment from the obstacle centre outwards on
   the side not taken (perpendicular to the line home end effector -> target, past the arm's
   reach). A chain that reaches the target without touching obstacle or wall has passed the
   obstacle on the chosen side.
2. The goals are exact IK solutions (sampled over the last link's orientation) that clear
   the obstacle by ``grid_margin``, each snapped to its cell of a joint grid (``grid_step``).
3. A wavefront (breadth-first, 26-neighbour) search from the goal cells back to the start
   cell over free cells (link capsules at least ``grid_margin`` from the obstacle, clear of
   the wall); the path ends at the exact goal of the goal cell reached. It is shortcut greedily
   (straight joint-space segments checked every ~0.02 rad with ``check_margin``), resampled
   by arc length and smoothed with a moving average (narrowed until the smoothed path passes
   the same check).
4. Timing: a minimum-jerk profile along the arc length, duration set by ``speed`` (peak
   joint-space speed, rad/s), then a hold at the goal.

At run time the expert is a command source: at data-rate instants t it returns the planned
position at t + 1/command_rate, the position a JTC point with time_from_start = 1/command_rate
should reach.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from .arm import ArmConfig, forward_kinematics, point_segment_distance
from .task import Scene

Side = Literal["left", "right"]
SIDES: tuple[Side, Side] = ("left", "right")


@dataclass(frozen=True)
class ExpertConfig:
    """Planner and timing parameters (rad, m, s, Hz)."""

    grid_step: float = 0.15
    # Clearance kept from the obstacle (m): 9 cm on the planning grid, 7 cm on the path check. A
    # policy imitating the demos deviates by a few cm; with 3 cm (check) demos ~10 % of its
    # episodes grazed the obstacle, with 5 cm demos 16 % still did (README).
    grid_margin: float = 0.09
    check_margin: float = 0.07
    wall_half_width: float = 0.02
    speed: float = 1.6
    min_duration: float = 2.0
    max_duration: float = 6.0
    hold: float = 0.6
    smooth_width: float = 0.5
    command_rate_hz: float = 10.0

    def __post_init__(self) -> None:
        if not (0.02 <= self.grid_step <= 0.3):
            raise ValueError(f"grid_step must be in [0.02, 0.3] rad, got {self.grid_step}")
        if not (0 < self.speed and 0 < self.min_duration <= self.max_duration and self.hold >= 0):
            raise ValueError("speed > 0, 0 < min_duration <= max_duration and hold >= 0 required")
        if not 0.5 <= self.command_rate_hz <= 1000.0:
            raise ValueError(f"command_rate_hz must be in [0.5, 1000], got {self.command_rate_hz}")


class _HasTime(Protocol):
    time: float


class PlanningError(ValueError):
    """No collision-free path for the requested side."""


def _seg_seg_distance(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Distance between segments p1-p2 and q1-q2 (arrays (..., 2), broadcast), m."""

    def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]

    d1, d2 = cross(p2 - p1, q1 - p1), cross(p2 - p1, q2 - p1)
    d3, d4 = cross(q2 - q1, p1 - q1), cross(q2 - q1, p2 - q1)
    crossing = (d1 * d2 < 0) & (d3 * d4 < 0)
    d = np.minimum(
        np.minimum(point_segment_distance(p1, q1, q2), point_segment_distance(p2, q1, q2)),
        np.minimum(point_segment_distance(q1, p1, p2), point_segment_distance(q2, p1, p2)),
    )
    return np.where(crossing, 0.0, d)


def side_wall(arm: ArmConfig, scene: Scene, side: Side, length: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """The virtual wall blocking the side *not* taken: segment endpoints (2,), (2,) in m.

    It starts at the obstacle centre and runs perpendicular to the line from the home end
    effector to the target; "left" is the side to the left of that line."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    c = np.asarray(scene.obstacle, np.float64)
    u = np.asarray(scene.target) - forward_kinematics(arm, np.asarray(arm.home))[-1]
    u /= np.linalg.norm(u)
    right = np.array([u[1], -u[0]])
    blocked = right if side == "left" else -right
    return c, c + length * blocked


class _Checker:
    """Vectorised validity of configurations: obstacle clearance >= margin, wall not touched."""

    def __init__(self, arm: ArmConfig, scene: Scene, side: Side, wall_half_width: float) -> None:
        self.arm = arm
        self.c = np.asarray(scene.obstacle, np.float64)
        self.r = scene.obstacle_radius + arm.link_radius
        self.w0, self.w1 = side_wall(arm, scene, side)
        self.wall_r = wall_half_width + arm.link_radius

    def link_valid(self, a: np.ndarray, b: np.ndarray, margin: float) -> np.ndarray:
        """Per segment a-b (..., 2): clear of the obstacle by ``margin`` and of the wall."""
        obst = point_segment_distance(self.c, a, b) - self.r
        wall = _seg_seg_distance(a, b, self.w0, self.w1) - self.wall_r
        return (obst >= margin) & (wall >= 0.0)

    def valid(self, q: np.ndarray, margin: float) -> np.ndarray:
        pts = forward_kinematics(self.arm, q)
        return self.link_valid(pts[..., :-1, :], pts[..., 1:, :], margin).all(axis=-1)

    def grid_valid(self, axes: list[np.ndarray], margin: float) -> np.ndarray:
        """Validity on the full joint grid; link i only depends on joints 0..i, so each link is
        checked on its own (smaller) sub-grid and broadcast."""
        n = len(axes)
        free = np.ones(tuple(len(a) for a in axes), bool)
        for i in range(n):
            sub = np.stack(np.meshgrid(*axes[: i + 1], indexing="ij"), axis=-1)  # (n0..ni, i+1)
            q = np.concatenate([sub, np.zeros(sub.shape[:-1] + (n - i - 1,))], axis=-1)
            pts = forward_kinematics(self.arm, q)
            ok = self.link_valid(pts[..., i, :], pts[..., i + 1, :], margin)
            free &= ok.reshape(ok.shape + (1,) * (n - i - 1))
        return free


def ik_solutions(arm: ArmConfig, target: np.ndarray, n_orientations: int = 720) -> np.ndarray:
    """All-orientation inverse kinematics of a 3-joint arm, sampled.

    For each of ``n_orientations`` absolute angles of the last link and both elbow signs, the
    two-link solution for the wrist. Returns (M, 3) joint angles (rad) within the joint limits
    whose end effector is at ``target`` (m).
    """
    if arm.dof != 3:
        raise ValueError(f"the scripted expert needs a 3-joint arm, got {arm.dof} joints")
    l1, l2, l3 = arm.link_lengths
    phi = np.linspace(-math.pi, math.pi, n_orientations, endpoint=False)
    wx = target[0] - arm.base_xy[0] - l3 * np.cos(phi)
    wy = target[1] - arm.base_xy[1] - l3 * np.sin(phi)
    cos_q2 = (wx * wx + wy * wy - l1 * l1 - l2 * l2) / (2 * l1 * l2)
    ok = np.abs(cos_q2) <= 1.0
    wx, wy, phi, cos_q2 = wx[ok], wy[ok], phi[ok], cos_q2[ok]
    sols = []
    for sign in (1.0, -1.0):
        q2 = sign * np.arccos(cos_q2)
        a1 = np.arctan2(wy, wx) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))  # link 1 angle
        q = np.stack([a1 - math.pi / 2, q2, phi - a1 - q2], axis=-1)
        sols.append((q + math.pi) % (2 * math.pi) - math.pi)
    q = np.concatenate(sols, axis=0)
    inside = np.all((q >= np.asarray(arm.lower)) & (q <= np.asarray(arm.upper)), axis=-1)
    return q[inside]


def _grid_path(arm: ArmConfig, scene: Scene, checker: _Checker, q_start: np.ndarray,
               cfg: ExpertConfig) -> np.ndarray:
    """Wavefront search from the goal cells to the start cell; returns (K + 1, N): the grid
    configurations from the start cell to a goal cell, then that cell's exact IK goal."""
    axes = [np.arange(lo, hi + 1e-9, cfg.grid_step) for lo, hi in zip(arm.lower, arm.upper)]
    free = checker.grid_valid(axes, cfg.grid_margin)
    # Goals: exact IK solutions with grid_margin clearance, each snapped to its grid cell.
    goals = ik_solutions(arm, np.asarray(scene.target))
    goals = goals[checker.valid(goals, cfg.grid_margin)]
    if goals.size == 0:
        raise PlanningError("no collision-free configuration reaches the target on this side")
    step = cfg.grid_step
    gidx = np.stack([np.clip(np.rint((goals[:, j] - axes[j][0]) / step).astype(int), 0, len(axes[j]) - 1)
                     for j in range(len(axes))], axis=-1)  # (G, N)
    goals, gidx = goals[free[tuple(gidx.T)]], gidx[free[tuple(gidx.T)]]
    if goals.size == 0:
        raise PlanningError("the goal configurations fall in blocked grid cells")
    start = tuple(int(np.argmin(np.abs(a - v))) for a, v in zip(axes, q_start))
    free[start] = True
    # Pad by one occupied cell so flat-index neighbour offsets never wrap.
    pad_free = np.pad(free, 1, constant_values=False)
    pshape = pad_free.shape
    strides = np.array([int(np.prod(pshape[i + 1:])) for i in range(len(pshape))])
    offsets = np.array([np.dot(o, strides) for o in itertools.product((-1, 0, 1), repeat=len(pshape))
                        if any(o)])
    flat_free = pad_free.reshape(-1)
    dist = np.full(flat_free.size, -1, np.int32)
    goal_flat = (gidx + 1) @ strides
    frontier = np.unique(goal_flat)
    start_flat = int(np.dot(np.array(start) + 1, strides))
    dist[frontier] = 0
    level = 0
    mark = np.zeros(flat_free.size, bool)
    while dist[start_flat] < 0:
        mark[:] = False
        mark[(frontier[:, None] + offsets[None, :]).reshape(-1)] = True
        nb = np.flatnonzero(mark & flat_free & (dist < 0))
        if nb.size == 0:
            raise PlanningError("the target is not reachable from the start on this side")
        level += 1
        dist[nb] = level
        frontier = nb
    cells = [start_flat]
    while dist[cells[-1]] > 0:
        nb = cells[-1] + offsets
        ok = nb[(dist[nb] == dist[cells[-1]] - 1)]
        cells.append(int(ok[0]))
    idx = np.array(np.unravel_index(np.array(cells), pshape)).T - 1  # (K, N)
    path = np.stack([axes[j][idx[:, j]] for j in range(len(axes))], axis=-1)
    # The exact goal in the reached cell: the one nearest the cell centre.
    mine = np.flatnonzero(goal_flat == cells[-1])
    goal = goals[mine[np.argmin(np.abs(goals[mine] - path[-1]).sum(axis=-1))]]
    return np.vstack([path, goal[None]])


def _shortcut(checker: _Checker, pts: np.ndarray, margin: float) -> np.ndarray:
    """Greedy: from each kept point jump to the furthest later point joined by a valid straight
    segment (all candidate segments of one point are checked in one vectorised call)."""
    out, i = [pts[0]], 0
    while i < len(pts) - 1:
        cand = pts[i + 1:]  # (M, N)
        span = np.abs(cand - pts[i]).max()
        s = np.linspace(0.0, 1.0, max(2, math.ceil(span / 0.02) + 1))[None, :, None]
        samples = pts[i] + s * (cand - pts[i])[:, None, :]  # (M, S, N)
        ok = np.flatnonzero(checker.valid(samples, margin).all(axis=1))
        j = i + 1 + (int(ok[-1]) if ok.size else 0)  # adjacent grid cells are kept regardless
        out.append(pts[j])
        i = j
    return np.asarray(out)


def _resample(poly: np.ndarray, ds: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=-1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, math.ceil(s[-1] / ds) + 1)
    u = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(u, s, poly[:, j]) for j in range(poly.shape[1])], axis=-1)


def _smooth(path: np.ndarray, width: int) -> np.ndarray:
    if width < 3 or len(path) < 3:
        return path
    k = np.ones(width) / width
    out = path
    for _ in range(2):
        padded = np.pad(out, ((width // 2, width // 2), (0, 0)), mode="edge")
        out = np.stack([np.convolve(padded[:, j], k, mode="valid")[: len(path)] for j in range(path.shape[1])], -1)
    ramp = np.linspace(0.0, 1.0, len(path))[:, None]
    return out + (1 - ramp) * (path[0] - out[0]) + ramp * (path[-1] - out[-1])  # pin the ends


@dataclass(frozen=True)
class ExpertPlan:
    """A timed joint-space path: ``path[i]`` (rad) at ``times[i]`` (s from the plan start)."""

    side: Side
    times: np.ndarray  # (K,)
    path: np.ndarray  # (K, N)
    duration: float  # s of motion; the plan holds path[-1] afterwards

    def position(self, t: float) -> np.ndarray:
        """Planned joint positions (N,) at ``t`` s (clamped to [0, duration])."""
        t = min(max(float(t), 0.0), float(self.times[-1]))
        return np.array([np.interp(t, self.times, self.path[:, j]) for j in range(self.path.shape[1])])


def plan(scene: Scene, side: Side, arm: ArmConfig | None = None, q_start: np.ndarray | None = None,
         config: ExpertConfig | None = None) -> ExpertPlan:
    """Plan a smooth, collision-free reach passing the obstacle on ``side``.

    Raises PlanningError (a ValueError) when that side has no path.
    """
    arm, cfg = arm or ArmConfig(), config or ExpertConfig()
    q0 = np.asarray(scene.start if q_start is None else q_start, np.float64)
    checker = _Checker(arm, scene, side, cfg.wall_half_width)
    pts = _grid_path(arm, scene, checker, q0, cfg)  # grid cells, then the exact goal
    pts = np.vstack([q0, pts[1:]])  # the exact start instead of its cell
    poly = _shortcut(checker, pts, cfg.check_margin)
    ds = 0.01
    dense = _resample(poly, ds)
    width = int(cfg.smooth_width / ds)
    while width >= 3:
        smooth = _smooth(dense, width)
        if checker.valid(smooth, cfg.check_margin).all():
            dense = smooth
            break
        width //= 2
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=-1))])
    length = float(s[-1])
    duration = float(np.clip(1.875 * length / cfg.speed, cfg.min_duration, cfg.max_duration))
    n = math.ceil(duration * 100.0) + 1  # timed samples at 100 Hz
    tau = np.linspace(0.0, 1.0, n)
    u = length * (10 * tau**3 - 15 * tau**4 + 6 * tau**5)  # minimum-jerk arc length
    timed = np.stack([np.interp(u, s, dense[:, j]) for j in range(dense.shape[1])], axis=-1)
    times = tau * duration
    hold_t = np.array([duration + cfg.hold])
    return ExpertPlan(side, np.concatenate([times, hold_t]), np.vstack([timed, timed[-1:]]), duration)


class ScriptedExpert:
    """A command source: ``expert(obs)`` -> joint positions (N,) rad to reach one command period
    after ``obs.time``.

    Args:
        scene: the episode's scene.
        rng: draws the side when ``side`` is None (left/right with equal probability); if the
            drawn side has no path the other side is used (:attr:`side` tells which).
        q_start: the arm's configuration at t = 0 (default ``scene.start``).
    """

    def __init__(self, scene: Scene, rng: np.random.Generator, arm: ArmConfig | None = None,
                 config: ExpertConfig | None = None, side: Side | None = None,
                 q_start: np.ndarray | None = None) -> None:
        self.arm, self.config = arm or ArmConfig(), config or ExpertConfig()
        first = side if side is not None else SIDES[int(rng.integers(2))]
        order = [first] if side is not None else [first, SIDES[1 - SIDES.index(first)]]
        err: PlanningError | None = None
        for s in order:
            try:
                self.plan = plan(scene, s, self.arm, q_start, self.config)
                break
            except PlanningError as e:
                err = e
        else:
            raise PlanningError(f"no side is feasible: {err}")
        self.side: Side = self.plan.side
        self.intended_side: Side = first

    @property
    def command_period(self) -> float:
        """s between commands (1 / command_rate_hz)."""
        return 1.0 / self.config.command_rate_hz

    @property
    def done_time(self) -> float:
        """s after which the expert only holds the goal (motion + hold)."""
        return float(self.plan.times[-1])

    def command_at(self, t: float) -> np.ndarray:
        """Joint positions (N,) rad the arm should reach at t + command_period (t: s from start)."""
        return self.plan.position(t + self.command_period)

    def __call__(self, obs: _HasTime) -> np.ndarray:
        """Command source for :func:`streaming_flow_ros.sim.rollout.rollout`: ignores everything
        in the observation but its time (the expert is open loop)."""
        return self.command_at(obs.time)
