"""`sfp demo`: the main job. The policy node streams a shipped policy at 100 Hz to a simulated
arm, several episodes with a live progress line, then a summary, a picture and JSON.

    sfp demo [--robot panda|ur5e|sim] [--episodes N] [--checkpoint PATH] [--out demo_out]

``--robot panda`` (the default): the MuJoCo Panda cell behind the Franka FR3 preset's
ros2_control topics, scene + wrist cameras, under /clock; the shipped Lift policy picks up the
cube; the picture is a contact sheet of scene-camera frames, one row per episode.
``--robot sim``: the 3-joint planar arm reaching past an obstacle; the picture shows the
streamed paths over the scenes and latency histograms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..ros.closed_loop import ClosedLoop, summarize
from .report import outcome, plot, summary_lines

CELL_ROBOTS = ("panda", "ur5e")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", choices=(*CELL_ROBOTS, "sim"), default="panda",
                   help="a MuJoCo arm cell picking up a cube, or the 3-joint planar sim")
    p.add_argument("--task", choices=("lift", "pick_either", "place_either"), default="lift",
                   help="cells: lift the cube, lift either of two cubes, or put it on either pad (shipped: Panda "
                        "lift and place_either, UR5e lift; others need --checkpoint)")
    p.add_argument("--episodes", type=int, default=None, help="default: 3 (cells), 6 (sim)")
    p.add_argument("--checkpoint", help="policy checkpoint (default: the shipped default policy)")
    p.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    p.add_argument("--seed", type=int, default=None,
                   help="first scene seed (episodes are different scenes; default: 2024 sim, 200000 cells)")
    p.add_argument("--domain-id", type=int, help="DDS domain (default: a free private one, so a simulated run never reaches a real robot; give your ROS_DOMAIN_ID to watch it)")
    p.add_argument("--out", default="demo_out", help="directory for demo.png and demo.json")


def run(args: argparse.Namespace) -> int:
    if args.episodes is None:
        args.episodes = 6 if args.robot == "sim" else 3
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.robot != "sim":
        args.seed = 200_000 if args.seed is None else args.seed  # not among `sfp eval cell`'s scenes
        return run_cell(args, out)
    args.seed = 2024 if args.seed is None else args.seed
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


def run_cell(args: argparse.Namespace, out: Path) -> int:
    from ..ros.cell_loop import CellLoop
    from ..ros.cell_loop import summarize as summarize_cell
    from .eval_cell import shipped_checkpoint, verdict

    checkpoint = args.checkpoint or shipped_checkpoint(args.robot, args.task)
    tty = sys.stdout.isatty()
    print(f"streaming_flow_ros demo: MuJoCo {args.robot} cell (scene + wrist camera, gripper) + policy node at "
          f"{args.rate:g} Hz under /clock, {args.task} ({checkpoint}), {args.episodes} episodes")
    results = []
    with CellLoop(args.robot, args.task, checkpoint, args.rate, seed=args.seed, domain_id=args.domain_id,
                  snapshot_every_s=1.0) as loop:
        print(f"  DDS domain {loop.domain_id} (watch: ROS_DOMAIN_ID={loop.domain_id} ros2 topic echo "
              f"/policy_node/action)")
        for i in range(args.episodes):
            def progress(t: float, height: float, i=i) -> None:
                if tty:
                    print(f"\r  episode {i + 1}/{args.episodes}  t={t:4.1f} s (simulated)  cube at "
                          f"{height * 100:4.1f} cm   ", end="", flush=True)

            r = loop.run_episode(i, progress)
            results.append(r)
            what = verdict(args.task, r)
            print(("\r" if tty else "") + f"  episode {i + 1}/{args.episodes}: {what}"
                  f"{', touched the table' if r.collision else ''} (seed {r.seed})" + " " * 10, flush=True)
        node = loop.node_summary()
    s = summarize_cell(results, node)
    s.update(robot=args.robot, task=args.task, checkpoint=checkpoint, control_rate_hz=args.rate)
    done = "placed" if args.task == "place_either" else "lifted"
    print(f"\nsummary: {done} {sum(r.success for r in results)}/{len(results)}, table contact "
          f"{s['collision_rate']:.2f}, ticks {s['ticks_ratio']:.3f} of expected, observation->command p50 "
          f"{s['obs_to_cmd_p50_ms']:.0f} ms (simulated)")
    contact_sheet(results, out / "demo.png", f"{args.robot}: {args.task} through the policy node", done)
    (out / "demo.json").write_text(json.dumps(s, indent=2, default=float))
    print(f"\npicture: {out / 'demo.png'}\nnumbers: {out / 'demo.json'}")
    return 0


SHEET_COLUMNS = 7


def contact_sheet(results, path: Path, title: str, done: str = "lifted") -> None:
    """One row per episode: up to SHEET_COLUMNS scene-camera frames (snapshots once a
    simulated second), the last one at the episode's end; ``done``: the word for success."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pick(frames: list, n: int = SHEET_COLUMNS) -> list[tuple[int, object]]:
        """(index, frame): at most n, evenly spread, always the first and the last."""
        idx = sorted({round(k * (len(frames) - 1) / (n - 1)) for k in range(n)}) if len(frames) > n else range(len(frames))
        return [(i, frames[i]) for i in idx]

    sheets = [pick(r.frames) for r in results]
    cols = max(len(s) for s in sheets)
    fig, axes = plt.subplots(len(results), cols, figsize=(1.6 * cols, 1.3 * len(results) + 0.4), squeeze=False)
    for row, r, sheet in zip(axes, results, sheets):
        for k, ax in enumerate(row):
            ax.axis("off")
            if k < len(sheet):
                i, frame = sheet[k]
                ax.imshow(frame)
                ax.set_title(f"end ({r.duration:.1f} s)" if i == len(r.frames) - 1 else f"{i:d} s", fontsize=7)
        verdict = f"{done} {r.time_to_success:.1f} s" if r.success else f"not {done}"
        row[0].text(-0.08, 0.5, f"seed {r.seed}\n{verdict}", transform=row[0].transAxes, ha="right",
                    va="center", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
