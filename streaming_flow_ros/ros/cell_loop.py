"""Closed-loop manipulation episodes on a MuJoCo cell through the REAL policy node over DDS,
under simulated time.

One process, two executors in threads: the cell node (``ros/cell_nodes.py``: physics, JTC,
gripper, two cameras, ``/clock``) and the policy node, configured exactly as
``ros2 launch streaming_flow_ros policy.launch.py robot:=<preset> gripper:=true
use_sim_time:=true`` would: the preset's parameters with its stock gripper, the preset's topic
remaps (``presets.launch_plan``). The cell owns time; the node ticks on ``/clock``, so a cell
slower than real time (rendering) slows the whole world down consistently.

Per episode: disable the node (it holds; the hold is let through first), reset the task (arm home, gripper open, cube placed
from the episode's seed), let ``settle_s`` of simulated time pass (fresh joint states and
frames of the new scene), enable (the node anchors at the measured state), run until the task
succeeds or its time limit. Measured by the simulator: success, time to success, table contact
by any robot body (``collision``), the cube's peak height, and the RMS jerk of the measured arm
joints (third difference at the cell's tick, rad/s^3).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import rclpy
from domain_coordinator import domain_id as private_domain

from ..cells.cell import Cell
from ..cells.robots import robot_spec
from ..cells.tasks import make_task
from ..presets import launch_plan, load_preset
from .cell_nodes import create_cell_node
from .runner import make_executor, run_node_in_thread, set_enabled, spin

# Seeds of evaluation scenes: disjoint from `sfp dataset record-sim` (seed 0 upwards).
EVAL_SEED = 100_000
HOLD_DELIVERY_S = 0.2  # simulated s between disabling the node and resetting the scene


@dataclass
class CellEpisode:
    episode: int
    seed: int
    success: bool
    collision: bool
    time_to_success: float | None  # s of simulated time, None without success
    duration: float  # s of simulated time
    max_cube_height: float  # m above the table
    jerk_rms: float  # rad/s^3, measured arm joints
    gripper_between: float  # share of ticks with the gripper command between 10 and 90 % of its travel
    gripper_switches: int  # open <-> closed switches of the gripper command
    outcome: dict[str, Any] = field(default_factory=dict)  # the task's (e.g. {"object": "green"})
    scene: dict[str, Any] = field(default_factory=dict)  # the task's scene (cube places, yaw)
    # Cell.grasp_error() when the gripper command first closed past half its travel; None
    # when it never closed (why a failed episode failed: off-centre, too high, turned)
    grasp: dict[str, Any] | None = None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)  # scene snapshots (demo)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("frames")
        return d


class _Recorder:
    """Tick hook on the cell's thread: task success and the measured arm motion."""

    def __init__(self, task) -> None:
        self.task = task
        self.lock = threading.Lock()
        self.q: list[np.ndarray] = []
        self.grip: list[float] = []
        self.success_time: float | None = None
        self.grasp: dict | None = None
        self.armed = False

    def start(self) -> None:
        with self.lock:
            self.q, self.grip, self.success_time, self.grasp, self.armed = [], [], None, None, True

    def stop(self) -> None:
        with self.lock:
            self.armed = False

    def __call__(self, cell: Cell) -> None:
        with self.lock:
            if not self.armed:
                return
            self.task.update(cell)
            self.q.append(cell.joint_state()[1])
            self.grip.append(cell.gripper_target() / cell.robot.gripper.max_width)  # 0 closed .. 1 open
            if self.grasp is None and self.grip[-1] < 0.5:
                self.grasp = cell.grasp_error()
            if self.task.success and self.success_time is None:
                self.success_time = cell.metrics().time

    def gripper_stats(self) -> tuple[float, int]:
        """(share of ticks whose gripper command lies strictly between 10 % and 90 % of its
        travel, number of open <-> closed switches): how discrete the streamed gripper is."""
        with self.lock:
            g = np.asarray(self.grip)
        if g.size == 0:
            return 0.0, 0
        between = float(np.mean((g > 0.1) & (g < 0.9)))
        side = g[(g <= 0.1) | (g >= 0.9)] >= 0.9
        return between, int(np.count_nonzero(np.diff(side.astype(int))))

    def jerk_rms(self, dt: float) -> float:
        with self.lock:
            if len(self.q) < 4:
                return 0.0
            j = np.diff(np.asarray(self.q), n=3, axis=0) / dt**3
            return float(np.sqrt(np.mean(j * j)))


@dataclass
class CellLoop:
    """A cell + the policy node in one process. Use as a context manager."""

    robot: str = "panda"
    task: str = "lift"
    checkpoint: str | None = None
    control_rate_hz: float = 100.0
    seed: int = EVAL_SEED
    node_parameters: dict[str, Any] = field(default_factory=dict)
    image_size: tuple[int, int] = (96, 96)
    camera_rate_hz: float = 10.0  # the checkpoint's data rate
    joint_state_rate_hz: float = 100.0
    real_time_factor: float = 1.0  # upper bound: rendering slows the cell down
    settle_s: float = 0.5  # simulated s between reset and enable
    time_limit_s: float | None = None  # simulated s; None: the task's
    snapshot_every_s: float = 0.0  # > 0: keep a 320x240 scene frame this often (simulated s)
    # None: a free private DDS domain, so a simulated run never reaches a real robot's
    # controllers (its topics are the ros2_control ones); give one to watch it with ros2 tools.
    domain_id: int | None = None

    def __enter__(self) -> CellLoop:
        spec = robot_spec(self.robot)
        self._domain = None
        if self.domain_id is None:
            self._domain = private_domain()
            self.domain_id = self._domain.__enter__()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.cell = Cell(spec, image_size=self.image_size)
        self.task_obj = make_task(self.task)
        self.recorder = _Recorder(self.task_obj)
        self.cell_node = create_cell_node(
            self.cell, context=self.context, joint_state_rate_hz=self.joint_state_rate_hz,
            camera_rate_hz=self.camera_rate_hz, image_width=self.image_size[0],
            image_height=self.image_size[1], real_time_factor=self.real_time_factor)
        self.cell_node.tick_hooks.append(self.recorder)
        self._cell_exec = make_executor("events", self.context)
        self._cell_exec.add_node(self.cell_node)
        self._stop = threading.Event()
        self._cell_thread = threading.Thread(target=spin, args=(self._cell_exec, self.context, self._stop),
                                             name="sfp-cell", daemon=True)
        self._cell_thread.start()
        plan = launch_plan(spec.preset, {"gripper": "true", "use_sim_time": "true"})
        params = {**load_preset(spec.preset, gripper=True), **plan.overrides,
                  "control_rate_hz": float(self.control_rate_hz), "enabled": False,
                  **self.node_parameters}
        params.pop("autostart", None)  # run_node_in_thread configures and activates
        if self.checkpoint:
            params["checkpoint"] = str(self.checkpoint)
        remaps = ["--ros-args", *(a for src, dst in plan.remappings for a in ("-r", f"{src}:={dst}"))]
        self._wait_sim(0.2, 30.0, "the cell to start")
        self.runner = run_node_in_thread(self.context, params, cli_args=remaps)
        self.node = self.runner.node
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.runner.stop()
        finally:
            self._stop.set()
            self._cell_thread.join(5.0)
            self._cell_exec.shutdown()
            self.cell_node.destroy_node()
            self.cell.close()
            rclpy.shutdown(context=self.context)
            if self._domain is not None:
                self._domain.__exit__(None, None, None)

    def _wait_sim(self, duration: float, timeout: float, what: str) -> None:
        """Wait until ``duration`` s of simulated time have passed (``timeout`` wall s)."""
        start, end = self.cell.time, time.monotonic() + timeout
        while self.cell.time - start < duration:
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what} "
                                   f"({self.cell.time - start:.2f} of {duration} simulated s)")
            time.sleep(0.005)

    def _set_enabled(self, on: bool) -> None:
        set_enabled(self.node, on)

    def run_episode(self, index: int, on_progress: Callable[[float, float], None] | None = None) -> CellEpisode:
        """One episode (seed ``seed + index``); ``on_progress(sim t, cube height m)`` about 10
        times a second of wall time."""
        self._set_enabled(False)
        # Disabling sends one hold of the last command (arm and gripper) over DDS: let it land
        # before the reset, or it drives the freshly reset arm back to where the last episode ended.
        self._wait_sim(HOLD_DELIVERY_S, 60.0, "the disable hold to arrive")
        with self.cell.lock:
            scene = self.task_obj.reset(self.cell, self.seed + index)
            self.recorder.stop()
        self._wait_sim(self.settle_s, 60.0, "the scene to settle")
        with self.cell.lock:
            self.recorder.start()
            t0 = self.cell.time
        self._set_enabled(True)
        limit = self.time_limit_s or self.task_obj.config.time_limit
        frames, next_frame, last_progress = [], 0.0, 0.0
        while True:
            time.sleep(0.01)
            t = self.cell.time - t0
            if self.snapshot_every_s > 0 and t >= next_frame:
                frames.append(self.cell.render("scene", size=(320, 240))[1])
                next_frame += self.snapshot_every_s
            if on_progress and time.monotonic() - last_progress > 0.1:
                on_progress(t, self.cell.metrics().cube_height)
                last_progress = time.monotonic()
            if self.recorder.success_time is not None or t > limit:
                break
        self._set_enabled(False)
        self.recorder.stop()
        if self.snapshot_every_s > 0:
            frames.append(self.cell.render("scene", size=(320, 240))[1])
        m = self.cell.metrics()
        success_time = self.recorder.success_time
        between, switches = self.recorder.gripper_stats()
        return CellEpisode(
            episode=index, seed=int(scene.seed), success=success_time is not None,
            collision=bool(m.table_contact),
            time_to_success=None if success_time is None else round(success_time - self.settle_s, 3),
            duration=round(self.cell.time - t0, 3), max_cube_height=round(float(self.task_obj.max_height), 4),
            jerk_rms=self.recorder.jerk_rms(self.cell_node.period), gripper_between=round(between, 4),
            gripper_switches=switches, outcome=dict(self.task_obj.outcome()),
            scene=scene.to_dict(), grasp=self.recorder.grasp, frames=frames)

    def node_summary(self) -> dict[str, float]:
        """The node's own telemetry (ticks, period error, step, observation-to-command), in
        simulated time."""
        return self.node.telemetry.summary(self.node.now_s(), self.control_rate_hz)


def summarize(results: list[CellEpisode], node: dict[str, float]) -> dict[str, Any]:
    """The headline numbers; ``modes`` counts successful episodes per object lifted (the
    multimodal task's split), ``misses`` failed ones per reason where the task gives one
    (place either: the task's ``outcome()["miss"]``)."""
    n = len(results)
    ok = [r.time_to_success for r in results if r.success]
    expected = node.get("ticks_expected") or 0
    modes = dict(Counter(r.outcome["object"] for r in results if r.success and r.outcome.get("object")))
    misses = dict(Counter(r.outcome["miss"] for r in results if not r.success and r.outcome.get("miss")))
    return {
        "episodes": n,
        "success_rate": sum(r.success for r in results) / n,
        "modes": modes,
        "misses": misses,
        "collision_rate": sum(r.collision for r in results) / n,
        "ticks_ratio": min(1.0, node["ticks"] / expected) if expected else float("nan"),
        "time_to_success_mean_s": float(np.mean(ok)) if ok else None,
        "jerk_rms": float(np.mean([r.jerk_rms for r in results])),
        "gripper_between": float(np.mean([r.gripper_between for r in results])),
        "gripper_switches_mean": float(np.mean([r.gripper_switches for r in results])),
        "obs_to_cmd_p50_ms": node.get("obs_to_cmd_p50_ms"),
        "obs_to_cmd_p99_ms": node.get("obs_to_cmd_p99_ms"),
        "node": node,
        "per_episode": [r.to_dict() for r in results],
    }
