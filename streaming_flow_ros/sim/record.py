"""`sfp dataset record-sim`: record scripted-expert demos on the simulator as rosbag2 bags.

One bag per episode (``OUT/episode_00000/`` with metadata.yaml and one .mcap or .db3 file), as
a real recording of the arm would look:

=============================================== ==================================== =======
topic                                           type                                 rate
=============================================== ==================================== =======
/joint_states                                   sensor_msgs/JointState (pos, vel)    100 Hz
/camera/image_raw                               sensor_msgs/Image rgb8 96x96         30 Hz
/joint_trajectory_controller/joint_trajectory   trajectory_msgs/JointTrajectory      10 Hz
/policy/action                                  trajectory_msgs/JointTrajectoryPoint 10 Hz
=============================================== ==================================== =======

The command topics carry the expert's command (one point, time_from_start = 0.1 s, header
stamp 0). Log times are ``EPOCH + episode * 1000 s + t``. ``OUT/episodes.json`` lists each
bag's scene, side and metrics. No ROS install is needed (``rosbags`` writes the bags).

With ``--cell ROBOT --task lift|pick_either|place_either`` the demos come from a MuJoCo cell instead (a
scripted expert that lifts a cube, the arm's preset topics, arm + gripper, two cameras, /clock): see
:mod:`streaming_flow_ros.cells.record`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from ..data.bags import BagWriter
from .arm import ArmConfig
from .camera import TopDownCamera
from .expert import PlanningError
from .rollout import Recording, episode_seed, expert_rollout
from .task import TaskConfig, scene_for_seed

log = logging.getLogger(__name__)

JOINT_STATES = "/joint_states"
IMAGE = "/camera/image_raw"
TRAJECTORY = "/joint_trajectory_controller/joint_trajectory"
ACTION = "/policy/action"
EPOCH_NS = 1_700_000_000 * 10**9
# The MuJoCo cells' task names (cells/tasks.py TASKS, spelled out here so that configuring this
# command does not load mujoco; a test keeps the two equal).
CELL_TASKS = ("lift", "pick_either", "place_either")


def write_bag(rec: Recording, path: str | Path, *, storage: str = "mcap", start_ns: int = EPOCH_NS,
              command_period: float = 0.1, compress: bool = False) -> Path:
    """Write one recording as a rosbag2 directory at ``path`` (must not exist)."""
    events = [(t, 0, i) for i, t in enumerate(rec.joint_time)]
    events += [(t, 1, i) for i, t in enumerate(rec.image_time)]
    events += [(t, 2, i) for i, t in enumerate(rec.command_time)]
    events.sort()  # by time, then sensors before the command computed from them
    names = list(rec.joint_names)
    with BagWriter(path, storage=storage, compress=compress) as w:
        for t, kind, i in events:
            t_ns = start_ns + round(t * 1e9)
            if kind == 0:
                w.joint_state(JOINT_STATES, t_ns, names, rec.joint_position[i], rec.joint_velocity[i])
            elif kind == 1:
                w.image(IMAGE, t_ns, rec.images[i], frame_id="camera")
            else:
                w.joint_trajectory(TRAJECTORY, t_ns, names, rec.command[i], command_period)
                w.trajectory_point(ACTION, t_ns, rec.command[i], command_period)
    return Path(path)


def record_expert_bags(episodes: int, out_dir: str | Path, *, seed: int = 0, storage: str = "mcap",
                       joint_state_rate_hz: float = 100.0, camera_rate_hz: float = 30.0, compress: bool = False,
                       arm_config: ArmConfig | None = None, task_config: TaskConfig | None = None) -> list[Path]:
    """Record ``episodes`` clean expert episodes as bags under ``out_dir``; returns the bag paths.

    Scenes use :func:`~streaming_flow_ros.sim.rollout.episode_seed` (seed, attempt) like the
    dataset generator, so the same seed gives the same demos in both formats."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    arm_config, task_config = arm_config or ArmConfig(), task_config or TaskConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    camera = TopDownCamera(arm_config)
    paths, index, attempts = [], [], 0
    while len(paths) < episodes:
        if attempts >= 2 * episodes + 10:
            raise ValueError(f"only {len(paths)} of {episodes} expert episodes succeeded in {attempts} attempts")
        s = episode_seed(seed, attempts)
        attempts += 1
        scene = scene_for_seed(s, arm_config, task_config)
        try:
            rec = expert_rollout(scene, np.random.default_rng([s, 1]), arm_config=arm_config,
                                 task_config=task_config, camera=camera,
                                 joint_state_rate_hz=joint_state_rate_hz, camera_rate_hz=camera_rate_hz)
        except PlanningError as e:
            log.warning("episode seed %d: expert cannot plan: %s", s, e)
            continue
        if not rec.metrics.clean_success:
            log.warning("episode seed %d: expert failed: %s", s, rec.metrics)
            continue
        k = len(paths)
        path = write_bag(rec, out / f"episode_{k:05d}", storage=storage, start_ns=EPOCH_NS + k * 1000 * 10**9,
                         compress=compress)
        paths.append(path)
        index.append({"bag": path.name, "seed": s, "scene": rec.scene.to_dict(), "side": rec.info["side"],
                      "metrics": rec.metrics.to_dict()})
        log.info("recorded %s (%s side, %.1f s)", path, rec.info["side"], rec.joint_time[-1])
    meta = {"generator": "sfp dataset record-sim", "seed": seed, "attempts": attempts, "storage": storage,
            "topics": {"joint_states": JOINT_STATES, "image": IMAGE, "trajectory": TRAJECTORY,
                       "action": ACTION}, "episodes": index}
    (out / "episodes.json").write_text(json.dumps(meta, indent=2, default=float))
    return paths


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, required=True, help="number of successful demos to record")
    parser.add_argument("--out", required=True, help="output directory (one bag per episode inside)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the scenes")
    parser.add_argument("--joint-state-rate", type=float, default=100.0, help="Hz of /joint_states")
    parser.add_argument("--camera-rate", type=float, default=None,
                        help="Hz of each camera (default: 30 on the planar arm, 10 on a cell)")
    parser.add_argument("--compress", action="store_true", help="zstd-compress MCAP chunks (~10x smaller)")
    cells = parser.add_argument_group("MuJoCo cells (needs mujoco and robosuite's model files)")
    cells.add_argument("--cell", choices=("panda", "ur5e", "gen3", "xarm7"), default=None,
                       help="record on this MuJoCo cell instead of the planar arm")
    cells.add_argument("--task", choices=CELL_TASKS, default=None,
                       help="the cell's task (default lift; pick_either: two cubes, the expert lifts one at random; "
                            "place_either: the expert puts the cube on one of two pads at random)")
    cells.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("W", "H"),
                       help="cell camera images, px (default 96 96)")
    cells.add_argument("--turn-above", type=float, default=None, metavar="S",
                       help="the expert turns the gripper to the cube's yaw above the cube, in S seconds, "
                            "instead of during the approach (default 0: during the approach)")


def run(args: argparse.Namespace) -> int:
    if args.cell is None:
        if args.task is not None or args.image_size is not None or args.turn_above is not None:
            raise ValueError("--task, --image-size and --turn-above apply to a MuJoCo cell: add --cell ROBOT")
    else:
        from ..cells.record import record_cell_bags  # loads mujoco

        paths = record_cell_bags(args.cell, args.task or "lift", args.episodes, args.out, seed=args.seed,
                                 storage=args.storage, joint_state_rate_hz=args.joint_state_rate,
                                 camera_rate_hz=10.0 if args.camera_rate is None else args.camera_rate,
                                 image_size=tuple(args.image_size or (96, 96)), compress=args.compress,
                                 turn_above_s=args.turn_above or 0.0)
        print(f"recorded {len(paths)} bags in {args.out} (index: {Path(args.out) / 'episodes.json'})")
        return 0
    paths = record_expert_bags(args.episodes, args.out, seed=args.seed, storage=args.storage,
                               joint_state_rate_hz=args.joint_state_rate,
                               camera_rate_hz=30.0 if args.camera_rate is None else args.camera_rate,
                               compress=args.compress)
    print(f"recorded {len(paths)} bags in {args.out} (index: {Path(args.out) / 'episodes.json'})")
    return 0
