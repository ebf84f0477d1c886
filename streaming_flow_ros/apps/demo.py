"""`sfp demo`: the main job. The simulated arm and camera, the policy node streaming the
shipped default policy at 100 Hz, several episodes with a live progress line, then a summary and
a picture (streamed paths over the scenes + latency histograms).

    sfp demo [--episodes 6] [--checkpoint PATH] [--rate 100] [--out demo_out]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..ros.closed_loop import ClosedLoop, summarize
from .report import outcome, plot, summary_lines


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--episodes", type=int, default=6)
    p.add_argument("--checkpoint", help="policy checkpoint (default: the shipped default policy)")
    p.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    p.add_argument("--seed", type=int, default=2024, help="scene seed (episodes are different scenes)")
    p.add_argument("--domain-id", type=int, help="DDS domain (default: a free private one, so a simulated run never reaches a real robot; give your ROS_DOMAIN_ID to watch it)")
    p.add_argument("--out", default="demo_out", help="directory for demo.png and demo.json")


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tty = sys.stdout.isatty()
    print(f"streaming_flow_ros demo: simulated 3-joint arm + 96x96 camera + policy node at {args.rate:g} Hz "
          f"({args.checkpoint or 'default policy'}), {args.episodes} episodes")
    results, obs_to_cmd, step = [], [], []
    with ClosedLoop(args.checkpoint, args.rate, seed=args.seed, domain_id=args.domain_id) as loop:
        print(f"  DDS domain {loop.domain_id} (watch: ROS_DOMAIN_ID={loop.domain_id} ros2 topic echo /policy_node/action)")
        for i in range(args.episodes):
            def progress(t: float, dist: float, i=i) -> None:
                if tty:
                    print(f"\r  episode {i + 1}/{args.episodes}  t={t:4.1f} s  distance to target {dist:5.3f} m   ",
                          end="", flush=True)

            r = loop.run_episode(i, progress)
            results.append(r)
            print(("\r" if tty else "") + f"  episode {i + 1}/{args.episodes}: {outcome(r):24s} "
                  f"(seed {r.seed}, min clearance {r.min_clearance * 100:.1f} cm)" + " " * 10, flush=True)
        node = loop.node_summary()
        obs_to_cmd = [v * 1e3 for v in loop.node.telemetry.snapshot("obs_to_cmd")]
        step = [v * 1e3 for v in loop.node.telemetry.snapshot("step")]
    s = summarize(results, node)
    print("\nsummary")
    for line in summary_lines(s):
        print("  " + line)
    plot(results, {"observation -> command": obs_to_cmd, "step compute": step}, out / "demo.png")
    (out / "demo.json").write_text(json.dumps(s, indent=2, default=float))
    print(f"\npicture: {out / 'demo.png'}\nnumbers: {out / 'demo.json'}")
    return 0
