"""`sfp eval cell`: manipulation episodes on a MuJoCo cell through the real policy node
(``ros/cell_loop.py``), under simulated time.

    sfp eval cell --robot panda --task lift --episodes 20 [--checkpoint PATH] [--json F]

Scenes use seeds from 100000 (the recorded demos use 0 upwards). Without ``--checkpoint``, the
shipped policy of the robot and task (``streaming_flow_ros/assets/``) if there is one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cells.robots import ROBOTS
from ..cells.tasks import TASKS


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", choices=sorted(ROBOTS), default="panda")
    p.add_argument("--task", choices=sorted(TASKS), default="lift")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--checkpoint", help="policy checkpoint (default: the shipped one for robot and task)")
    p.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    p.add_argument("--seed", type=int, default=None, help="first scene seed (default 100000)")
    p.add_argument("--real-time-factor", type=float, default=1.0, help="upper bound on the cell's speed")
    p.add_argument("--domain-id", type=int, help="DDS domain (default: a free private one, so a simulated run "
                   "never reaches a real robot; give your ROS_DOMAIN_ID to watch it)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra node parameter (YAML value), e.g. reanchor=observation")
    p.add_argument("--json", help="write results here")


def parse_params(items: list[str]) -> dict:
    import yaml

    out = {}
    for kv in items:
        if "=" not in kv:
            raise ValueError(f"--param needs NAME=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


ASSETS = Path(__file__).resolve().parents[1] / "assets"


def shipped_checkpoint(robot: str, task: str) -> str:
    """assets/<robot>_<task>.safetensors (ValueError when none is shipped)."""
    path = ASSETS / f"{robot}_{task}.safetensors"
    if not path.is_file():
        shipped = sorted(p.stem for p in ASSETS.glob("*_*.safetensors") if p.stem != "default_policy")
        raise ValueError(f"no shipped policy for {robot} {task} (shipped: {shipped}); pass --checkpoint")
    return str(path)


def verdict(task: str, r) -> str:
    """One episode's result in words (``sfp eval cell``, ``sfp demo``): what was lifted or
    placed where and how long it took, or why it failed (place either: the task's ``miss``)."""
    mode = r.outcome.get("object")
    if r.success:
        if task == "place_either":
            return f"placed the cube on the {mode} pad in {r.time_to_success:.1f} s"
        return f"lifted {f'the {mode} cube' if mode else 'the cube'} in {r.time_to_success:.1f} s"
    why, gap = r.outcome.get("miss"), r.outcome.get("pad_gap_mm")
    why = f"{why}, {gap:.0f} mm from a pad" if why in ("off pad", "held") and gap else why
    peak = f"peak {r.max_cube_height * 100:.1f} cm"
    return f"did not {'place' if task == 'place_either' else 'lift'} it ({f'{why}, ' if why else ''}{peak})"


def run(args: argparse.Namespace) -> int:
    from ..ros.cell_loop import EVAL_SEED, CellLoop, summarize

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    checkpoint = args.checkpoint or shipped_checkpoint(args.robot, args.task)
    results = []
    loop = CellLoop(args.robot, args.task, checkpoint, args.rate, seed=EVAL_SEED if args.seed is None else args.seed,
                    node_parameters=parse_params(args.param), real_time_factor=args.real_time_factor,
                    domain_id=args.domain_id)
    with loop:
        for i in range(args.episodes):
            r = loop.run_episode(i)
            results.append(r)
            print(f"episode {i + 1}/{args.episodes}: {verdict(args.task, r)}{', table contact' if r.collision else ''} "
                  f"(seed {r.seed}, {r.duration:.1f} s simulated)", flush=True)
        node = loop.node_summary()
    s = summarize(results, node)
    s.update(robot=args.robot, task=args.task, checkpoint=checkpoint, control_rate_hz=args.rate)
    print(f"success {s['success_rate']:.2f} over {s['episodes']} episodes, collisions {s['collision_rate']:.2f}, "
          f"ticks {s['ticks_ratio']:.3f} of expected, observation->command p50 {s['obs_to_cmd_p50_ms']:.1f} ms "
          f"(simulated time), jerk {s['jerk_rms']:.1f} rad/s^3" + (f", modes {s['modes']}" if len(s["modes"]) > 1 else "")
          + (f", misses {s['misses']}" if s["misses"] else ""))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(s, indent=2, default=float))
    return 0
