"""`sfp eval sim`: closed-loop evaluation on the simulator through the real policy node.

    sfp eval sim --episodes 50 [--checkpoint PATH] [--rate 100] [--json eval.json] [--plot eval.png]

Scenes use seeds disjoint from the default training data (training uses seed 1; eval 1000).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..bench.common import CpuSteal, command
from ..ros.closed_loop import ClosedLoop, summarize
from .report import outcome, plot, summary_lines


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--checkpoint", help="policy checkpoint (default: the shipped default policy)")
    p.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--domain-id", type=int, help="DDS domain (default: a free private one, so a simulated run never reaches a real robot; give your ROS_DOMAIN_ID to watch it)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra node parameter (YAML value), e.g. reanchor=ticks")
    p.add_argument("--json", help="write results here")
    p.add_argument("--plot", help="write a PNG of the first episodes here")


def run(args: argparse.Namespace) -> int:
    import yaml

    extra = {}
    for kv in args.param:
        if "=" not in kv:
            raise ValueError(f"--param needs NAME=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        extra[k] = yaml.safe_load(v)
    results = []
    steal = CpuSteal()
    with ClosedLoop(args.checkpoint, args.rate, seed=args.seed, node_parameters=extra, domain_id=args.domain_id) as loop:
        for i in range(args.episodes):
            r = loop.run_episode(i)
            results.append(r)
            print(f"episode {i + 1}/{args.episodes}: {outcome(r)} (seed {r.seed})", flush=True)
        node = loop.node_summary()
    s = summarize(results, node)
    s["checkpoint"] = args.checkpoint or "default"
    s["control_rate_hz"] = args.rate
    s["node_parameters"] = extra
    s["cpu_steal"] = steal.share()
    s["command"] = command("sfp eval sim", [("--episodes", args.episodes), ("--checkpoint", args.checkpoint),
                                            ("--rate", None if args.rate == 100.0 else args.rate),
                                            ("--seed", None if args.seed == 1000 else args.seed)]
                           + [("--param", kv) for kv in args.param] + [("--json", args.json)])
    for line in summary_lines(s):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=2, default=float))
    if args.plot:
        plot(results, {}, args.plot)
    return 0
