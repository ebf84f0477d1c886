"""`sfp dataset record-sim --cell ROBOT --task lift|pick_either|place_either`: scripted-expert demos on a
MuJoCo cell, written as rosbag2 bags (``data/bags.py``) with the topics, types, names and stamps that the
cell node (``ros/cell_nodes.py``) publishes and subscribes, so a bag looks like
``ros2 bag record --use-sim-time`` of the cell driven by the expert. No ROS is needed: the
episode runs in-process, deterministically, without DDS.

One bag per successful episode (``OUT/episode_00000/``), for the Panda (franka_fr3 preset):

=================================== ====================================== ==================
topic                               type                                   rate (sim time)
=================================== ====================================== ==================
/franka/joint_states                sensor_msgs/JointState: 7 arm joints   joint_state_rate
                                    + fr3_finger_joint1 (the gripper, m)
/camera/image_raw                   sensor_msgs/Image rgb8 (scene)         camera_rate
/wrist_camera/image_raw             sensor_msgs/Image rgb8 (wrist)         camera_rate
/fr3_arm_controller/joint_trajectory trajectory_msgs/JointTrajectory       command_rate
/gripper_controller/commands        std_msgs/Float64MultiArray (1 value:   command_rate
                                    the gripper joint, driver units)
/clock                              rosgraph_msgs/Clock                    joint_state_rate
=================================== ====================================== ==================

(UR5e: the ur preset's topics, robotiq_85_left_knuckle_joint.) Header stamps and log times
are the cell's ROS time, ``CLOCK_START_NS + cell time`` (the cell clock runs on across
episodes, so bags of one run never overlap in time). Commands are the expert's, computed from
the state at their log time and applied to the cell at once; the JTC point has
``time_from_start`` = one command period and header stamp 0. ``OUT/episodes.json`` lists each
bag's seed, scene and metrics, the expert's mode (``object``: the cube it chose, always red in
Lift, red or green in PickEither; in PlaceEither the pad, left or right: ``cells/expert.py``
``make_expert``), the count of episodes per mode (``objects``), and the attempts that failed.
An episode counts as a success only when the task saw the expert's own mode: its cube lifted,
or placed on its pad.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from ..data.bags import BagWriter
from ..presets import find_preset
from ..sim.jtc import JointTrajectory, TrajectoryPoint
from .cell import Cell
from .expert import LiftExpertConfig, PlanningError, make_expert
from .tasks import make_task

log = logging.getLogger(__name__)

CLOCK_START_NS = 1_000_000_000  # ROS time of cell time 0: ros/cell_nodes.py's CLOCK_START_NS
GRIPPER_TOPIC = "/gripper_controller/commands"  # the cell node's gripper_topic default
WRIST_TOPIC = "/wrist_camera/image_raw"  # the cell node's wrist_image_topic default


def cell_topics(preset: str) -> dict[str, str]:
    """The topics a cell of ``preset`` uses, absolute: joint_states, scene_image, wrist_image,
    trajectory, gripper, clock."""
    doc = yaml.safe_load(find_preset(preset).read_text())
    t = doc["policy_launch_topics"]["ros__parameters"]
    return {"joint_states": t["joint_states"], "scene_image": t["image_raw"], "wrist_image": WRIST_TOPIC,
            "trajectory": t["joint_trajectory"], "gripper": GRIPPER_TOPIC, "clock": "/clock"}


def _due(t: float, period: float) -> bool:
    """True when ``t`` (s) is on the grid of ``period`` (within half a physics step)."""
    k = round(t / period)
    return abs(t - k * period) < 5e-4


def record_episode(cell: Cell, task, seed: int, path: Path, *, storage: str = "mcap",
                   joint_state_rate_hz: float = 100.0, camera_rate_hz: float = 10.0,
                   command_rate_hz: float = 10.0, tail_s: float = 0.5, compress: bool = False,
                   expert_config: LiftExpertConfig | None = None) -> dict:
    """Run one expert episode on ``cell`` and write it as a bag at ``path``. Returns the
    episode's info (scene, success, metrics). Raises PlanningError if the expert cannot plan
    (nothing written)."""
    topics = cell_topics(cell.robot.preset)
    grip = cell.robot.gripper
    names = [*cell.joint_names, grip.joint]
    scene = task.reset(cell, seed)
    expert = make_expert(cell, scene, expert_config or LiftExpertConfig(command_rate_hz=command_rate_hz))
    dt_js = 1.0 / joint_state_rate_hz
    t0 = cell.time
    steps = round((expert.done_time + tail_s) / dt_js)
    with BagWriter(path, storage=storage, compress=compress,
                   best_effort_topics=(topics["joint_states"], topics["scene_image"], topics["wrist_image"])) as w:
        for k in range(steps + 1):
            t = cell.time - t0
            stamp = CLOCK_START_NS + round(cell.time * 1e9)
            w.clock(topics["clock"], stamp)
            _, q, qd = cell.joint_state()
            w.joint_state(topics["joint_states"], stamp, names, [*q, grip.joint_from_width(cell.gripper_width())],
                          [*qd, 0.0])
            if _due(t, 1.0 / camera_rate_hz):
                for cam, topic in (("scene", topics["scene_image"]), ("wrist", topics["wrist_image"])):
                    t_img, img = cell.render(cam)
                    w.image(topic, CLOCK_START_NS + round(t_img * 1e9), img, frame_id=cam)
            if _due(t, expert.command_period):
                q_cmd, width = expert.command_at(t)
                r = cell.command_trajectory(JointTrajectory(cell.joint_names, (
                    TrajectoryPoint(q_cmd.tolist(), expert.command_period),)))
                if not r.accepted:
                    raise ValueError(f"the cell rejected the expert's command: {r.reason}")
                width = cell.command_gripper(width)
                w.joint_trajectory(topics["trajectory"], stamp, cell.joint_names, q_cmd, expert.command_period)
                w.float64_array(topics["gripper"], stamp, [grip.joint_from_width(width)])
            if k < steps:
                cell.step(dt_js)
                task.update(cell)
    m = cell.metrics()
    return {"seed": int(seed), "scene": scene.to_dict(), "object": expert.mode,
            "success": bool(task.success) and task.lifted_object == expert.mode,
            "lifted_object": task.lifted_object, "max_cube_height": task.max_height,
            "duration_s": round(cell.time - t0, 4), "table_contact": m.table_contact,
            "ik_max_error_m": expert.plan.max_ik_error}


def record_cell_bags(robot: str, task_name: str, episodes: int, out_dir: str | Path, *, seed: int = 0,
                     storage: str = "mcap", joint_state_rate_hz: float = 100.0, camera_rate_hz: float = 10.0,
                     command_rate_hz: float = 10.0, image_size: tuple[int, int] = (96, 96),
                     compress: bool = False, turn_above_s: float = 0.0) -> list[Path]:
    """Record ``episodes`` successful expert episodes (seeds ``seed, seed + 1, ...``; failed or
    unplannable ones are skipped and listed) as bags under ``out_dir``. ``turn_above_s``: the
    expert's (:class:`~streaming_flow_ros.cells.expert.LiftExpertConfig`)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    for label, rate in (("joint_state_rate", joint_state_rate_hz), ("camera_rate", camera_rate_hz),
                        ("command_rate", command_rate_hz)):
        ratio = joint_state_rate_hz / rate if rate > 0 else 0.0
        if not (0 < rate <= joint_state_rate_hz <= 1000 and abs(ratio - round(ratio)) < 1e-9):
            raise ValueError(f"{label} {rate} Hz must divide joint_state_rate {joint_state_rate_hz} Hz (<= 1000)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("episode_*")):
        raise ValueError(f"{out} already holds episode bags; choose a new --out")
    expert_config = LiftExpertConfig(command_rate_hz=command_rate_hz, turn_above_s=turn_above_s)
    cell = Cell(robot, image_size=image_size)
    task = make_task(task_name)
    paths, index, failed = [], [], []
    attempt = 0
    try:
        while len(paths) < episodes:
            if attempt >= 2 * episodes + 10:
                raise ValueError(f"only {len(paths)} of {episodes} expert episodes succeeded in {attempt} attempts")
            s = seed + attempt
            attempt += 1
            path = out / f"episode_{len(paths):05d}"
            tmp = out / f".recording_{path.name}"
            if tmp.exists():
                shutil.rmtree(tmp)
            wall = time.monotonic()
            try:
                info = record_episode(cell, task, s, tmp, storage=storage, joint_state_rate_hz=joint_state_rate_hz,
                                      camera_rate_hz=camera_rate_hz, command_rate_hz=command_rate_hz,
                                      compress=compress, expert_config=expert_config)
            except PlanningError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                log.warning("seed %d: the expert cannot plan: %s", s, e)
                failed.append({"seed": s, "reason": f"planning: {e}"})
                continue
            info["wall_s"] = round(time.monotonic() - wall, 3)
            if not info["success"]:
                shutil.rmtree(tmp)
                log.warning("seed %d: the expert failed (max cube height %.3f m, lifted %s, chose %s)", s,
                            info["max_cube_height"], info["lifted_object"], info["object"])
                failed.append({"seed": s, "reason": "task not met", **info})
                continue
            tmp.rename(path)
            info["bag"] = path.name
            paths.append(path)
            index.append(info)
            log.info("recorded %s (seed %d, expert chose %s, %.1f s sim, %.1f s wall)", path, s, info["object"],
                     info["duration_s"], info["wall_s"])
    finally:
        cell.close()
    meta = {"generator": "sfp dataset record-sim", "cell": robot, "task": task_name, "seed": seed,
            "attempts": attempt, "storage": storage, "image_size": list(image_size),
            "rates_hz": {"joint_states": joint_state_rate_hz, "cameras": camera_rate_hz, "commands": command_rate_hz},
            "expert": asdict(expert_config),
            "topics": cell_topics(cell.robot.preset), "joints": [*cell.joint_names, cell.robot.gripper.joint],
            "success_rate": len(paths) / attempt,
            "objects": {m: sum(e["object"] == m for e in index) for m in sorted({e["object"] for e in index})},
            "episodes": index, "failed": failed}
    (out / "episodes.json").write_text(json.dumps(meta, indent=2, default=float))
    return paths

