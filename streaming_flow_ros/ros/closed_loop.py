"""Closed-loop episodes on the simulator through the REAL policy node over DDS.

One process, three executors in threads: the sim nodes (arm, camera, task), the policy node
(lifecycle, activated, dry-run between episodes), and this harness polling the simulator's
ground truth. Topics are remapped exactly as a user would onto a real arm::

    policy_node  image_raw        := camera/image_raw
                 joint_states     (same name)
                 joint_trajectory := joint_trajectory_controller/joint_trajectory

Per episode: disable the node (it holds), reset the scene, let fresh joint states and frames
arrive, enable (the node re-anchors at the measured state), run until success (+ a short hold),
a collision, or the time limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from domain_coordinator import domain_id as private_domain

from ..presets import load_preset
from ..sim.arm import forward_kinematics
from .runner import make_executor, run_node_in_thread, set_enabled, spin
from .sim_nodes import SimWorld, create_sim_nodes

log = logging.getLogger(__name__)

REMAPS = [
    "--ros-args",
    "-r", "image_raw:=camera/image_raw",
    "-r", "joint_trajectory:=joint_trajectory_controller/joint_trajectory",
]


@dataclass
class EpisodeResult:
    episode: int
    seed: int
    success: bool
    collision: bool
    time_to_success: float
    duration: float
    jerk_rms: float
    min_clearance: float
    ee_path: np.ndarray  # (N, 2) end-effector positions, m
    target: np.ndarray
    obstacle: np.ndarray
    obstacle_radius: float

    @property
    def clean_success(self) -> bool:
        return self.success and not self.collision

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode, "seed": self.seed, "success": self.clean_success,
            "reached": self.success, "collision": self.collision,
            "time_to_success": self.time_to_success, "duration": round(self.duration, 3),
            "jerk_rms": self.jerk_rms, "min_clearance": self.min_clearance,
        }


@dataclass
class ClosedLoop:
    """Sim + policy node in one process. Use as a context manager."""

    checkpoint: str | None = None  # None: the package default policy
    control_rate_hz: float = 100.0
    seed: int = 1000
    node_parameters: dict[str, Any] = field(default_factory=dict)
    joint_state_rate_hz: float = 200.0
    camera_rate_hz: float = 30.0
    settle_s: float = 0.4
    hold_after_success_s: float = 0.3
    # None: a free private DDS domain (domain_coordinator), so a simulated run never reaches a
    # real robot's controllers on the network (its topics are the ros2_control ones); give one
    # (e.g. your ROS_DOMAIN_ID) to watch it with ros2 topic echo / rviz.
    domain_id: int | None = None
    time_limit_s: float | None = None  # None: the task's own limit
    sensor_latency_s: float = 0.0  # joint states and frames published this late (delay stress)
    obs_to_cmd_ms: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)

    def __enter__(self) -> ClosedLoop:
        self._domain = None
        if self.domain_id is None:
            self._domain = private_domain()
            self.domain_id = self._domain.__enter__()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.world = SimWorld(seed=self.seed)
        self.sim = create_sim_nodes(self.world, context=self.context,
                                    joint_state_rate_hz=self.joint_state_rate_hz,
                                    camera_rate_hz=self.camera_rate_hz,
                                    sensor_latency_s=self.sensor_latency_s)
        self._sim_exec = make_executor("events", self.context)
        for n in self.sim.all():
            self._sim_exec.add_node(n)
        self._stop = threading.Event()
        self._sim_thread = threading.Thread(target=spin, args=(self._sim_exec, self.context, self._stop),
                                            name="sfp-sim", daemon=True)
        self._sim_thread.start()
        params = {**load_preset("sim"), "control_rate_hz": float(self.control_rate_hz), "enabled": False,
                  **self.node_parameters}
        if self.checkpoint:
            params["checkpoint"] = str(self.checkpoint)
        self._wait_for(lambda: self.world.time > 0.2, 5.0, "the simulator to start")
        self.runner = run_node_in_thread(self.context, params, cli_args=REMAPS)
        self.node = self.runner.node
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.runner.stop()
        finally:
            self._stop.set()
            self._sim_thread.join(5.0)
            self._sim_exec.shutdown()
            self.sim.destroy()
            rclpy.shutdown(context=self.context)
            if self._domain is not None:
                self._domain.__exit__(None, None, None)

    @staticmethod
    def _wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.01)

    def _set_enabled(self, on: bool) -> None:
        set_enabled(self.node, on)

    def run_episode(self, index: int, on_progress: Callable[[float, float], None] | None = None) -> EpisodeResult:
        """One episode; ``on_progress(t, distance_to_target)`` is called ~10 times a second."""
        self._set_enabled(False)
        time.sleep(0.05)
        scene = self.world.reset()
        time.sleep(self.settle_s + self.sensor_latency_s)  # fresh joint states and frames of the new scene
        self._set_enabled(True)
        cfg = self.world.arm_config
        path, last_progress = [], 0.0
        limit = self.time_limit_s or self.world.task_config.time_limit
        while True:
            time.sleep(0.02)
            with self.world.lock:
                t = self.world.episode_time
                q = self.world.arm.q
                m = self.world.metrics()
            path.append(forward_kinematics(cfg, q)[-1])
            if on_progress and t - last_progress > 0.1:
                on_progress(t, float(m.final_distance))
                last_progress = t
            if m.collision or t > limit or (m.success and t - m.time_to_success >= self.hold_after_success_s):
                break
        self._set_enabled(False)
        return EpisodeResult(
            episode=index, seed=int(scene.seed), success=bool(m.success), collision=bool(m.collision),
            time_to_success=float(m.time_to_success), duration=float(t), jerk_rms=float(m.jerk_rms),
            min_clearance=float(m.min_clearance), ee_path=np.asarray(path),
            target=np.asarray(scene.target), obstacle=np.asarray(scene.obstacle),
            obstacle_radius=float(scene.obstacle_radius),
        )

    def node_summary(self) -> dict[str, float]:
        """The node's own telemetry (ticks, period error, step, observation-to-command)."""
        return self.node.telemetry.summary(self.node.now_s(), self.control_rate_hz)


def summarize(results: list[EpisodeResult], node: dict[str, float]) -> dict[str, Any]:
    n = len(results)
    ticks_ratio = node["ticks"] / node["ticks_expected"] if node.get("ticks_expected") else float("nan")
    return {
        "episodes": n,
        "success_rate": sum(r.clean_success for r in results) / n,
        "reached_rate": sum(r.success for r in results) / n,
        "collision_rate": sum(r.collision for r in results) / n,
        "ticks_ratio": min(1.0, ticks_ratio),
        "jerk_rms_mean": float(np.mean([r.jerk_rms for r in results])),
        "time_to_success_mean": float(np.nanmean([r.time_to_success for r in results])) if any(r.success for r in results) else None,
        "node": node,
        "per_episode": [r.to_dict() for r in results],
    }
