"""The reaching task on the simulated arm: scenes (target + obstacle), collision geometry and
episode metrics. Pure numpy.

A scene has a target disc (reach it) and an obstacle disc lying between the arm's home
end-effector position and the target, so the arm has to pass it on the left or on the right.
The target's position is *not* part of the joint state: a policy sees it only in the camera
image. Units: metres, radians, seconds.

Success: the end effector comes within ``success_radius`` of the target centre before
``time_limit``. Collision: any link capsule (segment inflated by the arm's ``link_radius``)
overlaps the obstacle disc at any monitored instant.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .arm import ArmConfig, forward_kinematics, point_segment_distance


@dataclass(frozen=True)
class TaskConfig:
    """Scene randomisation and success criteria (m, rad, s).

    target_distance: range of the target's distance from the arm base.
    target_bearing: range of the target's bearing from "forward" (+y), rad (+ is to the left).
    obstacle_fraction: where the obstacle centre sits on the segment home end effector -> target.
    obstacle_lateral: range of a sideways offset of the obstacle from that segment, m.
    start_noise: each joint starts at home + U(-start_noise, start_noise), rad.
    """

    target_distance: tuple[float, float] = (0.74, 0.86)
    target_bearing: tuple[float, float] = (-0.40, 0.40)
    target_radius: float = 0.04
    obstacle_radius: tuple[float, float] = (0.06, 0.08)
    obstacle_fraction: tuple[float, float] = (0.40, 0.55)
    obstacle_lateral: tuple[float, float] = (-0.02, 0.02)
    start_noise: float = 0.05
    success_radius: float = 0.06
    time_limit: float = 8.0
    monitor_rate_hz: float = 100.0

    def __post_init__(self) -> None:
        for label in ("target_distance", "target_bearing", "obstacle_radius", "obstacle_fraction",
                      "obstacle_lateral"):
            lo, hi = getattr(self, label)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"{label} must be a finite (low, high) range, got {(lo, hi)}")
        if not (0 < self.target_radius and 0 < self.success_radius and 0 < self.time_limit):
            raise ValueError("target_radius, success_radius and time_limit must be > 0")
        if not 0.0 <= self.start_noise <= 0.3:
            raise ValueError(f"start_noise must be in [0, 0.3] rad, got {self.start_noise}")
        if self.obstacle_radius[0] <= 0:
            raise ValueError(f"obstacle_radius must be > 0, got {self.obstacle_radius}")
        if not 1.0 <= self.monitor_rate_hz <= 1000.0:
            raise ValueError(f"monitor_rate_hz must be in [1, 1000], got {self.monitor_rate_hz}")


@dataclass(frozen=True)
class Scene:
    """One episode's world: positions in metres, in the arm's planar frame; ``start`` is the
    arm's initial joint configuration, rad."""

    target: tuple[float, float]
    target_radius: float
    obstacle: tuple[float, float]
    obstacle_radius: float
    start: tuple[float, ...]
    seed: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def sample_scene(rng: np.random.Generator, arm: ArmConfig | None = None,
                 config: TaskConfig | None = None, seed: int | None = None) -> Scene:
    """Draw a scene: target by distance/bearing from the base, obstacle between the home
    end effector and the target, start near home. ``seed`` is only recorded in the scene."""
    arm, config = arm or ArmConfig(), config or TaskConfig()
    base = np.asarray(arm.base_xy)
    home_ee = forward_kinematics(arm, np.asarray(arm.home))[-1]
    d = rng.uniform(*config.target_distance)
    bearing = rng.uniform(*config.target_bearing)
    target = base + d * np.array([-math.sin(bearing), math.cos(bearing)])
    f = rng.uniform(*config.obstacle_fraction)
    along = target - home_ee
    normal = np.array([-along[1], along[0]]) / np.linalg.norm(along)
    obstacle = home_ee + f * along + rng.uniform(*config.obstacle_lateral) * normal
    start = np.clip(np.asarray(arm.home) + rng.uniform(-config.start_noise, config.start_noise, arm.dof),
                    arm.lower, arm.upper)
    return Scene(
        target=(float(target[0]), float(target[1])),
        target_radius=config.target_radius,
        obstacle=(float(obstacle[0]), float(obstacle[1])),
        obstacle_radius=float(rng.uniform(*config.obstacle_radius)),
        start=tuple(float(v) for v in start),
        seed=seed,
    )


def scene_for_seed(seed: int, arm: ArmConfig | None = None, config: TaskConfig | None = None) -> Scene:
    """The scene of episode ``seed`` (same seed, same scene)."""
    return sample_scene(np.random.default_rng(seed), arm, config, seed=seed)


def obstacle_clearance(arm: ArmConfig, scene: Scene, q: np.ndarray) -> np.ndarray:
    """Signed gap between the link capsules and the obstacle disc, m (< 0: collision).

    Args:
        q: (..., N) joint angles, rad.
    Returns:
        (...,) minimum over links.
    """
    pts = forward_kinematics(arm, q)  # (..., N + 1, 2)
    c = np.asarray(scene.obstacle, np.float64)
    d = point_segment_distance(c, pts[..., :-1, :], pts[..., 1:, :])  # (..., N)
    return d.min(axis=-1) - arm.link_radius - scene.obstacle_radius


def in_collision(arm: ArmConfig, scene: Scene, q: np.ndarray) -> np.ndarray | bool:
    """True where a link capsule overlaps the obstacle; q (..., N)."""
    return obstacle_clearance(arm, scene, q) < 0.0


def target_distance(arm: ArmConfig, scene: Scene, q: np.ndarray) -> np.ndarray:
    """End effector to target centre distance, m; q (..., N) -> (...,)."""
    ee = forward_kinematics(arm, q)[..., -1, :]
    return np.linalg.norm(ee - np.asarray(scene.target), axis=-1)


@dataclass(frozen=True)
class TaskMetrics:
    """What an episode achieved.

    success: end effector within the success radius before the time limit.
    collision: a link touched the obstacle (at any monitored instant up to the end).
    time_to_success: s from episode start, NaN if not reached.
    path_length: end-effector path length, m. joint_path_length: sum over joints of |dq|, rad.
    jerk_rms: RMS over time and joints of the third derivative of the measured joint
        positions (finite differences at the monitor rate), rad/s^3.
    min_clearance: smallest link/obstacle gap seen, m (< 0 when colliding).
    final_distance: end effector to target at the last sample, m. duration: s monitored.
    """

    success: bool
    collision: bool
    time_to_success: float
    path_length: float
    joint_path_length: float
    jerk_rms: float
    min_clearance: float
    final_distance: float
    duration: float

    @property
    def clean_success(self) -> bool:
        """Success without touching the obstacle."""
        return self.success and not self.collision

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clean_success"] = self.clean_success
        return d


class EpisodeMonitor:
    """Accumulates an episode's metrics from joint-state samples (feed every physics step or
    every joint state; samples are decimated to ``monitor_rate_hz`` for path and jerk).

    Usage: ``m = EpisodeMonitor(arm, scene, config, t0)``; ``m.update(t, q)``; ``m.metrics()``.
    Samples after ``t0 + time_limit`` are ignored (:attr:`done` becomes True).
    """

    def __init__(self, arm: ArmConfig, scene: Scene, config: TaskConfig | None = None,
                 t0: float = 0.0) -> None:
        self.arm, self.scene, self.config = arm, scene, config or TaskConfig()
        self.t0 = float(t0)
        self._period = 1.0 / self.config.monitor_rate_hz
        self._times: list[float] = []
        self._qs: list[np.ndarray] = []
        self._time_to_success = math.nan
        self._collision = False
        self._min_clearance = math.inf
        self.done = False

    def update(self, t: float, q: np.ndarray) -> None:
        """One sample: t seconds on the same clock as t0, q (N,) rad."""
        rel = t - self.t0
        if rel < -1e-9 or self.done:
            return
        if rel > self.config.time_limit + 1e-9:
            self.done = True
            return
        if self._times and rel < self._times[-1] + self._period - 1e-9:
            return  # decimate
        q = np.asarray(q, np.float64)
        clear = float(obstacle_clearance(self.arm, self.scene, q))
        self._min_clearance = min(self._min_clearance, clear)
        self._collision |= clear < 0.0
        if math.isnan(self._time_to_success) and (
            float(target_distance(self.arm, self.scene, q)) <= self.config.success_radius
        ):
            self._time_to_success = rel
        self._times.append(rel)
        self._qs.append(q.copy())

    def change_scene(self, scene: Scene) -> None:
        """The world changed mid-episode (e.g. the target jumped): success is judged on ``scene``
        from now on, and one reached before does not count; collisions, path and jerk go on."""
        self.scene = scene
        self._time_to_success = math.nan

    @property
    def succeeded(self) -> bool:
        return not math.isnan(self._time_to_success)

    @property
    def time_to_success(self) -> float:
        """s from t0 to the first success, NaN before."""
        return self._time_to_success

    def metrics(self) -> TaskMetrics:
        """Metrics of the samples so far."""
        if not self._qs:
            return TaskMetrics(False, False, math.nan, 0.0, 0.0, 0.0, math.inf, math.nan, 0.0)
        q = np.asarray(self._qs)  # (T, N)
        ee = forward_kinematics(self.arm, q)[:, -1, :]
        jerk = 0.0
        if len(q) >= 4:
            j = np.diff(q, n=3, axis=0) / self._period**3
            jerk = float(np.sqrt(np.mean(j * j)))
        return TaskMetrics(
            success=self.succeeded,
            collision=self._collision,
            time_to_success=self._time_to_success,
            path_length=float(np.linalg.norm(np.diff(ee, axis=0), axis=-1).sum()),
            joint_path_length=float(np.abs(np.diff(q, axis=0)).sum()),
            jerk_rms=jerk,
            min_clearance=self._min_clearance,
            final_distance=float(np.linalg.norm(ee[-1] - np.asarray(self.scene.target))),
            duration=self._times[-1],
        )
