"""`sfp sim`: run the simulated arm, camera and task nodes standalone. `sfp sim cell --robot
ROBOT` runs a MuJoCo cell instead (:mod:`streaming_flow_ros.ros.cell_cli`).

Topics (relative to ``--namespace``): joint_states, camera/image_raw,
joint_trajectory_controller/joint_trajectory, forward_position_controller/commands,
/diagnostics; service sim_task/reset (std_srvs/Trigger). See
:mod:`streaming_flow_ros.ros.sim_nodes`.
"""

from __future__ import annotations

import argparse
import logging
import time

import rclpy
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)

from ..sim.arm import ArmConfig
from . import cell_cli
from .sim_nodes import SimWorld, create_sim_nodes

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="base seed of the episodes' scenes")
    parser.add_argument("--namespace", default="", help="ROS namespace of the sim nodes")
    parser.add_argument("--joint-state-rate", type=float, default=100.0, help="Hz of joint_states (100-500)")
    parser.add_argument("--camera-rate", type=float, default=30.0, help="Hz of camera/image_raw")
    parser.add_argument("--physics-rate", type=float, default=500.0, help="Hz of the arm physics")
    parser.add_argument("--publish-clock", action="store_true",
                        help="own simulation time: publish /clock (run other nodes with use_sim_time)")
    parser.add_argument("--real-time-factor", type=float, default=1.0, help="with --publish-clock")
    parser.add_argument("--auto-reset", action="store_true", help="start a new episode after each time limit")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many s (0: run until Ctrl-C)")
    parser.add_argument("--executor", choices=("single", "multi"), default="single", help="rclpy executor")
    targets = parser.add_subparsers(dest="sim_target", required=False, metavar="{cell}")
    cell_cli.configure(targets.add_parser("cell", help="a MuJoCo cell (real arm model) behind its ros2_control topics"))


def run(args: argparse.Namespace) -> int:
    if getattr(args, "sim_target", None) == "cell":
        return cell_cli.run(args)
    if args.duration < 0:
        raise ValueError(f"--duration must be >= 0, got {args.duration}")
    world = SimWorld(ArmConfig(physics_rate_hz=args.physics_rate), seed=args.seed)
    rclpy.init()
    nodes = None
    try:
        nodes = create_sim_nodes(
            world, namespace=args.namespace, joint_state_rate_hz=args.joint_state_rate,
            camera_rate_hz=args.camera_rate, publish_clock=args.publish_clock,
            real_time_factor=args.real_time_factor, auto_reset=args.auto_reset,
        )
        executor = MultiThreadedExecutor(num_threads=2) if args.executor == "multi" else SingleThreadedExecutor()
        for node in nodes.all():
            executor.add_node(node)
        print(f"sim running: joints {list(world.joint_names)}, episode seed {world.scene.seed} (Ctrl-C to stop)")
        end = time.monotonic() + args.duration if args.duration > 0 else None
        while rclpy.ok() and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
        print(f"final episode metrics: {world.metrics().to_dict()}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if nodes is not None:
            nodes.destroy()
        rclpy.try_shutdown()
    return 0
