"""`sfp`: the one command-line entry point.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
this file only maps names to modules (imported lazily, so `sfp info` does not load rclpy).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, help). Nested groups use "group sub".
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("streaming_flow_ros.apps.demo", "run the policy node on the simulated arm (main job)"),
    "toy": ("streaming_flow_ros.toy.run", "train and evaluate the toy multimodal tasks"),
    "train": ("streaming_flow_ros.train.cli", "train a policy from a dataset"),
    "train-baseline": ("streaming_flow_ros.baselines.train", "train a chunk baseline (DP, FM-chunk)"),
    "info": ("streaming_flow_ros.policy.info", "print a checkpoint's metadata"),
    "compact": ("streaming_flow_ros.policy.compact", "store a checkpoint's weights as float16 (half the size)"),
    "node": ("streaming_flow_ros.ros.node", "run the policy node (accepts --ros-args)"),
    "sim": ("streaming_flow_ros.ros.sim_cli", "run the simulated arm and camera nodes"),
    "play": ("streaming_flow_ros.ros.play", "play a rosbag2 into live topics"),
    "eval sim": ("streaming_flow_ros.apps.eval_sim", "closed-loop evaluation on the simulator"),
    "eval cell": ("streaming_flow_ros.apps.eval_cell", "manipulation episodes on a MuJoCo arm cell through the node"),
    "dataset build": ("streaming_flow_ros.data.build", "rosbag2 recordings (or a LeRobot v3.0 dataset) -> training dataset"),
    "dataset export-lerobot": ("streaming_flow_ros.data.lerobot_export", "training dataset -> LeRobotDataset v3.0"),
    "lerobot bind": ("streaming_flow_ros.baselines.lerobot_binding", "a LeRobot ACT/Diffusion pretrained_model -> a node checkpoint (binding JSON)"),
    "dataset record-sim": ("streaming_flow_ros.sim.record", "record expert demos on the sim as bags"),
    "bench step": ("streaming_flow_ros.bench.step", "per-step latency of the runtime"),
    "bench node": ("streaming_flow_ros.ros.bench.node", "the real node's tick timing and latency"),
    "bench contention": ("streaming_flow_ros.ros.bench.contention", "the node's ticks under CPU hogs, and remedies"),
    "bench reaction": ("streaming_flow_ros.bench.reaction", "reaction to a displaced block, per method and delay"),
    "bench defaults": ("streaming_flow_ros.bench.defaults", "the measurements behind reanchor / skip_elapsed defaults"),
    "bench cells": ("streaming_flow_ros.bench.cells", "manipulation success on the MuJoCo arm cells, per robot, task and method"),
    "bench encoder-probe": ("streaming_flow_ros.bench.encoder_probe", "whether a cell policy's image encoder locates the objects"),
    "bench latency": ("streaming_flow_ros.bench.latency", "SFP vs chunk baselines, side by side"),
    "bench scale": ("streaming_flow_ros.bench.scale", "network size (1 M -> paper size) against the 100 Hz control rate"),
    "bench sim": ("streaming_flow_ros.bench.sim_quality", "simulator task quality (T4) through the node: SFP vs baselines"),
    "bench pusht": ("streaming_flow_ros.bench.pusht.cli", "Push-T task quality (state or pixels): collect / train / eval / run / summarize"),
    "bench plot": ("streaming_flow_ros.bench.plots", "the PNG figures of docs/BENCHMARKS.md from the benchmark JSON"),
    "bench docs": ("streaming_flow_ros.bench.docs", "regenerate the generated sections of docs/*.md (and figures) from docs/results"),
    "bench compare": ("streaming_flow_ros.bench.compare", "what changed between two runs of a benchmark (JSON A vs B)"),
    "soak": ("streaming_flow_ros.ros.bench.soak", "long run of the node on the simulator"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfp", description="Streaming Flow Policy for ROS 2 arms")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module, help_) in COMMANDS.items():
        parts = name.split()
        if len(parts) == 1:
            p = sub.add_parser(parts[0], help=help_)
        else:
            if parts[0] not in groups:
                g = sub.add_parser(parts[0], help=f"{parts[0]} commands")
                groups[parts[0]] = g.add_subparsers(dest="subcommand", required=True)
            p = groups[parts[0]].add_parser(parts[1], help=help_)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `sfp node --ros-args ...` hands everything after "node" to the node untouched.
    if argv[:1] == ["node"]:
        from .ros.node import main as node_main

        return node_main(["policy_node", *argv[1:]])
    parser = build_parser()
    # Parse the command name first (without -h, so help can list the module's own options),
    # then let the module add its options and parse for real.
    args, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")] or argv)
    module = importlib.import_module(args._module)
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # find the leaf parser again
        leaf = action.choices[args.command]
        if getattr(args, "subcommand", None):
            leaf = leaf._subparsers._group_actions[0].choices[args.subcommand]
        module.configure(leaf)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ValueError as e:  # boundary errors carry a clear message; no traceback for users
        if args.verbose:
            raise
        print(f"sfp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
