"""`sfp sim cell --robot panda|ur5e|gen3|xarm7`: a MuJoCo cell behind the real arm's topics
(:mod:`streaming_flow_ros.ros.cell_nodes`). The cell publishes /clock: run the policy node with
``use_sim_time:=true`` and the arm's preset (panda: franka_fr3, ur5e: ur, gen3: kinova_gen3,
xarm7: xarm7)."""

from __future__ import annotations

import argparse
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from ..cells.robots import ROBOTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", choices=sorted(ROBOTS), default="panda", help="arm model")
    parser.add_argument("--namespace", default="", help="ROS namespace of the cell node")
    parser.add_argument("--joint-state-rate", type=float, default=100.0, help="Hz (simulated time) of joint_states")
    parser.add_argument("--camera-rate", type=float, default=10.0, help="Hz (simulated time) of each camera; 0: none")
    parser.add_argument("--image-size", type=int, nargs=2, default=(96, 96), metavar=("W", "H"), help="px")
    parser.add_argument("--no-wrist-camera", action="store_true", help="only the scene camera")
    parser.add_argument("--real-time-factor", type=float, default=1.0, help="upper bound; rendering slows it")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many wall s (0: until Ctrl-C)")


def run(args: argparse.Namespace) -> int:
    from ..cells.cell import Cell  # loads mujoco; builds the model (about 1-2 s)
    from .cell_nodes import create_cell_node

    if args.duration < 0:
        raise ValueError(f"--duration must be >= 0, got {args.duration}")
    cell = Cell(args.robot, image_size=tuple(args.image_size))
    rclpy.init()
    node = None
    try:
        node = create_cell_node(
            cell, namespace=args.namespace, joint_state_rate_hz=args.joint_state_rate,
            camera_rate_hz=args.camera_rate, image_width=args.image_size[0], image_height=args.image_size[1],
            wrist_camera=not args.no_wrist_camera, real_time_factor=args.real_time_factor)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        print(f"cell {args.robot} running (preset {cell.robot.preset}): joints {list(cell.joint_names)}, "
              f"gripper {cell.robot.gripper.joint}; publishes /clock (Ctrl-C to stop)")
        end = time.monotonic() + args.duration if args.duration > 0 else None
        while rclpy.ok() and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
        print(f"cell time {cell.time:.2f} s; metrics {cell.metrics().to_dict()}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        cell.close()
        rclpy.try_shutdown()
    return 0
