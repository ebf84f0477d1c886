"""Offline episodes on the simulated arm (numpy, no ROS) and the expert training dataset.

:func:`rollout` runs one episode: physics at the arm's rate (500 Hz by default), joint states
and camera frames sampled at their own rates, and a *command source* called at the command
rate. The source is any callable ``source(obs: SimObservation)`` returning

- joint positions (N,) rad: sent as a one-point JointTrajectory (stamp 0,
  time_from_start = one command period) in ``command_mode="trajectory"`` (default), or as a
  forward_command_controller array in ``command_mode="forward"``;
- a :class:`~streaming_flow_ros.sim.arm.JointTrajectory`: sent as is;
- None: no new command (the running one continues; the arm holds after its end).

Within one physics instant the order is: sample sensors, call the source, step physics, so a
command computed from the observation at t starts acting at t.

:func:`expert_episodes_to_dataset` records scripted-expert demos straight into the training
dataset format (:mod:`streaming_flow_ros.data.episodes`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..data.episodes import Episode, save_dataset
from ..spec import CameraSpec, IOSpec
from .arm import ArmConfig, JointTrajectory, SimArm, TrajectoryPoint
from .camera import CameraConfig, TopDownCamera
from .expert import ExpertConfig, PlanningError, ScriptedExpert
from .task import EpisodeMonitor, Scene, TaskConfig, TaskMetrics, scene_for_seed

log = logging.getLogger(__name__)

CAMERA_NAME = "camera"


@dataclass(frozen=True)
class SimObservation:
    """What a command source sees at ``time`` (s from episode start): the latest joint state
    (rad, rad/s) and the latest camera frame ((H, W, 3) uint8, None if no camera) with its time."""

    time: float
    position: np.ndarray
    velocity: np.ndarray
    image: np.ndarray | None
    image_time: float


CommandSource = Callable[[SimObservation], "np.ndarray | JointTrajectory | None"]


@dataclass
class Recording:
    """One episode. Times are seconds from the episode start; positions rad.

    joint_*: the joint-state stream; images/image_time: the camera stream (empty if not
    recorded); command_*: every call of the source that returned a command, with the
    observation it saw (command_state, command_image_index into ``images`` or -1).
    """

    joint_names: tuple[str, ...]
    scene: Scene
    joint_time: np.ndarray  # (Nj,)
    joint_position: np.ndarray  # (Nj, N)
    joint_velocity: np.ndarray  # (Nj, N)
    image_time: np.ndarray  # (Ni,)
    images: np.ndarray  # (Ni, H, W, 3) uint8
    command_time: np.ndarray  # (Nc,)
    command: np.ndarray  # (Nc, N) commanded positions (a trajectory's last point)
    command_state: np.ndarray  # (Nc, N)
    command_image_index: np.ndarray  # (Nc,) int
    metrics: TaskMetrics
    rejections: list[tuple[float, str]] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _due_steps(rate_hz: float, physics_hz: float, n_steps: int) -> set[int]:
    if not 0 < rate_hz <= physics_hz:
        raise ValueError(f"rate {rate_hz} Hz must be in (0, physics rate {physics_hz} Hz]")
    k = np.arange(math.floor(n_steps * rate_hz / physics_hz) + 1)
    return set(np.rint(k * physics_hz / rate_hz).astype(int).tolist())


def rollout(
    scene: Scene,
    source: CommandSource,
    *,
    arm_config: ArmConfig | None = None,
    task_config: TaskConfig | None = None,
    camera: TopDownCamera | None = None,
    duration: float | None = None,
    joint_state_rate_hz: float = 100.0,
    camera_rate_hz: float = 30.0,
    command_rate_hz: float = 10.0,
    command_mode: Literal["trajectory", "forward"] = "trajectory",
    stop_after_success: float | None = None,
    render: bool = True,
    scene_change: tuple[float, Scene] | None = None,
) -> Recording:
    """Run one episode from ``scene.start``; see the module docstring.

    Args:
        duration: s to simulate (default: the task's time limit).
        stop_after_success: end this many s after the first success (None: run the duration;
            not before a pending ``scene_change``).
        render: render camera frames (False: faster, ``obs.image`` is None).
        scene_change: (t, scene): from t s on the world is ``scene`` (a perturbation: the target
            jumps); the camera shows it and success counts only on it, from then on
            (``EpisodeMonitor.change_scene``). ``recording.scene`` stays the first scene.
    """
    arm_config = arm_config or ArmConfig()
    task_config = task_config or TaskConfig()
    if command_mode not in ("trajectory", "forward"):
        raise ValueError(f"command_mode must be 'trajectory' or 'forward', got {command_mode!r}")
    duration = task_config.time_limit if duration is None else float(duration)
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be > 0 s, got {duration}")
    if render and camera is None:
        camera = TopDownCamera(arm_config)
    arm = SimArm(arm_config, scene.start)
    t0 = arm.time
    monitor = EpisodeMonitor(arm_config, scene, task_config, t0=t0)
    n_steps = round(duration * arm_config.physics_rate_hz)
    phys = arm_config.physics_rate_hz
    js_due = _due_steps(joint_state_rate_hz, phys, n_steps)
    cam_due = _due_steps(camera_rate_hz, phys, n_steps) if render else set()
    cmd_due = _due_steps(command_rate_hz, phys, n_steps)
    period = 1.0 / command_rate_hz
    names = arm_config.joint_names
    js_t, js_q, js_v, im_t, ims = [], [], [], [], []
    c_t, c_q, c_s, c_i, rejections = [], [], [], [], []
    image, image_time = None, math.nan
    world = scene  # what the camera and the monitor see now
    for i in range(n_steps + 1):
        t = arm.time - t0
        if scene_change is not None and t >= scene_change[0] - 1e-9:
            world, scene_change = scene_change[1], None
            monitor.change_scene(world)
        q, qd = arm.q, arm.qd
        monitor.update(arm.time, q)
        if i in js_due:
            js_t.append(t)
            js_q.append(q)
            js_v.append(qd)
        if i in cam_due:
            image, image_time = camera.render(q, world), t
            im_t.append(t)
            ims.append(image)
        if i in cmd_due and i < n_steps:
            cmd = source(SimObservation(t, q, qd, image, image_time))
            if cmd is not None:
                if isinstance(cmd, JointTrajectory):
                    result = arm.command_trajectory(cmd)
                    if result.accepted:  # record the last point in controller joint order
                        last = cmd.points[-1].positions
                        positions = [last[list(cmd.joint_names).index(n)] for n in names]
                else:
                    positions = np.asarray(cmd, np.float64)
                    if command_mode == "forward":
                        result = arm.command_forward(positions)
                    else:
                        pt = TrajectoryPoint(positions=positions, time_from_start=period)
                        result = arm.command_trajectory(JointTrajectory(names, (pt,)))
                if result.accepted:
                    c_t.append(t)
                    c_q.append(np.asarray(positions, np.float64))
                    c_s.append(q)
                    c_i.append(len(ims) - 1)
                else:
                    rejections.append((t, result.reason))
        if stop_after_success is not None and scene_change is None and t - monitor.time_to_success >= stop_after_success:
            break  # (NaN before success compares False; a pending scene change is awaited)
        if i < n_steps:
            arm.step()
    dof = arm_config.dof
    h, w = (camera.config.height, camera.config.width) if camera is not None else (0, 0)
    images = np.asarray(ims, np.uint8) if ims else np.zeros((0, h, w, 3), np.uint8)
    return Recording(
        joint_names=names,
        scene=scene,
        joint_time=np.asarray(js_t),
        joint_position=np.asarray(js_q).reshape(-1, dof),
        joint_velocity=np.asarray(js_v).reshape(-1, dof),
        image_time=np.asarray(im_t),
        images=images,
        command_time=np.asarray(c_t),
        command=np.asarray(c_q).reshape(-1, dof),
        command_state=np.asarray(c_s).reshape(-1, dof),
        command_image_index=np.asarray(c_i, np.int64),
        metrics=monitor.metrics(),
        rejections=rejections,
    )


def episode_seed(seed: int, index: int) -> int:
    """The scene seed of episode ``index`` of a run seeded ``seed`` (a 32-bit int)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def expert_rollout(
    scene: Scene, rng: np.random.Generator, *, arm_config: ArmConfig | None = None,
    task_config: TaskConfig | None = None, expert_config: ExpertConfig | None = None,
    camera: TopDownCamera | None = None, render: bool = True, **kwargs,
) -> Recording:
    """One scripted-expert episode, run until the expert's motion and hold are over (within the
    time limit). ``recording.info`` holds ``side`` and ``intended_side``."""
    arm_config, task_config = arm_config or ArmConfig(), task_config or TaskConfig()
    expert = ScriptedExpert(scene, rng, arm_config, expert_config)
    period = expert.command_period
    duration = min(task_config.time_limit, math.ceil(expert.done_time / period - 1e-9) * period)
    rec = rollout(scene, expert, arm_config=arm_config, task_config=task_config, camera=camera,
                  duration=duration, command_rate_hz=1.0 / period, render=render, **kwargs)
    rec.info.update(side=expert.side, intended_side=expert.intended_side, plan_duration=expert.plan.duration)
    return rec


def evaluate_expert(n: int, seed: int, **kwargs) -> dict:
    """The scripted expert's own quality over ``n`` episodes (scenes as in the datasets):
    {"success_rate", "clean_success_rate", "collision_rate", "sides", "planning_failures",
    "mean_time_to_success"}. ``kwargs`` go to :func:`expert_rollout` (render is off)."""
    ok = clean = collided = failures = 0
    sides = {"left": 0, "right": 0}
    times = []
    for i in range(n):
        s = episode_seed(seed, i)
        try:
            rec = expert_rollout(scene_for_seed(s), np.random.default_rng([s, 1]), render=False, **kwargs)
        except PlanningError:
            failures += 1
            continue
        m = rec.metrics
        ok, clean, collided = ok + m.success, clean + m.clean_success, collided + m.collision
        sides[rec.info["side"]] += 1
        if m.success:
            times.append(m.time_to_success)
    return {"episodes": n, "success_rate": ok / n, "clean_success_rate": clean / n,
            "collision_rate": collided / n, "sides": sides, "planning_failures": failures,
            "mean_time_to_success": float(np.mean(times)) if times else math.nan}


def sim_io_spec(arm_config: ArmConfig | None = None, camera_config: CameraConfig | None = None,
                data_rate_hz: float = 10.0) -> IOSpec:
    """The IOSpec of policies trained on the simulator: joint positions in, joint positions out,
    one RGB camera named "camera", bounds = joint limits."""
    arm_config, cc = arm_config or ArmConfig(), camera_config or CameraConfig()
    names = arm_config.joint_names
    return IOSpec(
        state_names=names,
        action_names=names,
        cameras=(CameraSpec(CAMERA_NAME, cc.height, cc.width, 3),),
        data_rate_hz=data_rate_hz,
        action_lower=tuple(arm_config.lower),
        action_upper=tuple(arm_config.upper),
        extra={"source": "streaming_flow_ros.sim"},
    )


def recording_to_episode(rec: Recording) -> Episode:
    """Data-rate samples of a recording: state = measured positions when each command was
    issued, action = that command, image = the latest frame at that instant."""
    if len(rec.command_time) < 2:
        raise ValueError(f"recording has {len(rec.command_time)} commands; need at least 2")
    if (rec.command_image_index < 0).any():
        raise ValueError("recording has commands issued before the first camera frame")
    return Episode(
        state=rec.command_state.astype(np.float32),
        action=rec.command.astype(np.float32),
        images={CAMERA_NAME: rec.images[rec.command_image_index]},
        time=rec.command_time.astype(np.float64),
    )


@dataclass(frozen=True)
class DatasetReport:
    """What :func:`expert_episodes_to_dataset` produced."""

    path: Path
    episodes: int
    attempts: int
    expert_success_rate: float
    sides: dict[str, int]


def expert_episodes_to_dataset(
    n: int, seed: int, out_dir: str | Path, *, arm_config: ArmConfig | None = None,
    task_config: TaskConfig | None = None, expert_config: ExpertConfig | None = None,
    max_attempts: int | None = None,
) -> DatasetReport:
    """Record ``n`` clean (successful, collision-free) expert episodes at 10 Hz into a dataset
    directory ``out_dir``. Episode i uses :func:`episode_seed` (seed, attempt) for the scene and
    ``default_rng([that seed, 1])`` for the side; failed attempts are skipped (counted)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    arm_config, task_config = arm_config or ArmConfig(), task_config or TaskConfig()
    expert_config = expert_config or ExpertConfig()
    camera = TopDownCamera(arm_config)
    max_attempts = max_attempts or 2 * n + 10
    episodes, sides, attempts, seeds = [], {"left": 0, "right": 0}, 0, []
    while len(episodes) < n:
        if attempts >= max_attempts:
            raise ValueError(f"only {len(episodes)} of {n} expert episodes succeeded in {attempts} attempts")
        s = episode_seed(seed, attempts)
        attempts += 1
        scene = scene_for_seed(s, arm_config, task_config)
        try:
            rec = expert_rollout(scene, np.random.default_rng([s, 1]), arm_config=arm_config,
                                 task_config=task_config, expert_config=expert_config, camera=camera)
        except PlanningError as e:
            log.warning("episode seed %d: expert cannot plan: %s", s, e)
            continue
        if not rec.metrics.clean_success:
            log.warning("episode seed %d: expert failed: %s", s, rec.metrics)
            continue
        episodes.append(recording_to_episode(rec))
        sides[rec.info["side"]] += 1
        seeds.append(s)
    rate = len(episodes) / attempts
    spec = sim_io_spec(arm_config, camera.config, expert_config.command_rate_hz)
    source = {
        "generator": "streaming_flow_ros.sim.rollout.expert_episodes_to_dataset",
        "seed": int(seed), "episode_seeds": seeds, "attempts": attempts,
        "expert_success_rate": rate, "sides": sides,
    }
    path = save_dataset(out_dir, spec, episodes, source)
    return DatasetReport(path, len(episodes), attempts, rate, sides)
