"""`sfp bench cells`: manipulation success on the MuJoCo arm cells, per robot, task and method,
through the real policy node over DDS under /clock (``ros/cell_loop.py``, the same episodes as
``sfp eval cell``), side by side in one run. Several checkpoints of one method (training seeds)
give mean +- std over seeds.

    sfp bench cells --run panda:lift:sfp=runs/cells/panda_lift/sfp/policy.safetensors \\
        --run panda:lift:fm_chunk=runs/cells/panda_lift/fm/policy.safetensors \\
        --episodes 20 --json runs/bench/cells.json
    sfp bench cells --render runs/bench/cells.json --update-doc docs/BENCHMARKS.md

A method may carry node parameters after a ``|``: ``panda:lift:sfp_binary=PATH|gripper_mode=binary``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .common import CpuSteal, machine_info, print_rendered


def parse_run(text: str) -> dict[str, Any]:
    """``robot:task:method=PATH[|name=value,...]`` -> {robot, task, method, checkpoint, params}."""
    import yaml

    head, sep, rest = text.partition("=")
    parts = head.split(":")
    if not sep or len(parts) != 3 or not all(parts) or not rest:
        raise ValueError(f"--run needs ROBOT:TASK:METHOD=CHECKPOINT[|name=value,...], got {text!r}")
    path, _, extra = rest.partition("|")
    params = {}
    for kv in filter(None, extra.split(",")):
        k, eq, v = kv.partition("=")
        if not eq:
            raise ValueError(f"node parameters after '|' are name=value, got {kv!r}")
        params[k.strip()] = yaml.safe_load(v)
    return {"robot": parts[0], "task": parts[1], "method": parts[2], "checkpoint": path, "params": params}


def evaluate(run: dict[str, Any], episodes: int, rate_hz: float) -> dict[str, Any]:
    """One checkpoint's episodes through the node (``sfp eval cell``'s summary)."""
    from ..ros.cell_loop import CellLoop, summarize

    t0 = time.monotonic()
    with CellLoop(run["robot"], run["task"], run["checkpoint"], rate_hz, node_parameters=run["params"]) as loop:
        results = [loop.run_episode(i) for i in range(episodes)]
        node = loop.node_summary()
    s = summarize(results, node)
    s.update(run, wall_s=round(time.monotonic() - t0, 1))
    return s


def _mean_std(values: list[float]) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "-"
    return f"{np.mean(v):.2f}" + (f" ± {np.std(v):.2f}" if len(v) > 1 else "")


def _grasp(rs: list[dict[str, Any]]) -> str:
    """Median distance of the grip site from the cube's centre and median turn against its faces
    when the gripper closed (``Cell.grasp_error``), over the episodes of ``rs`` that recorded it."""
    g = [e["grasp"] for r in rs for e in r.get("per_episode", []) if e.get("grasp")]
    if not g:
        return "-"
    return (f"{np.median([x['lateral_mm'] for x in g]):.0f} mm / "
            f"{np.median([abs(x['yaw_deg']) for x in g]):.0f}°")


def render(doc: dict[str, Any]) -> str:
    """Markdown: one row per (robot, task, method), mean ± std over its checkpoints (seeds)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in doc["runs"]:
        groups.setdefault((r["robot"], r["task"], r["method"]), []).append(r)
    lines = [
        ("| robot | task | method | seeds | episodes | success | table contact | time to success (s) | "
        "jerk (rad/s³) | ticks delivered | modes (cube lifted, pad placed on); misses | grasp: off centre / turned |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (robot, task, method), rs in groups.items():
        modes = sum((Counter(r.get("modes") or {}) for r in rs), Counter())
        mode_text = ", ".join(f"{k} {v}" for k, v in sorted(modes.items())) if len(modes) > 1 or task != "lift" else ""
        misses = sum((Counter(r.get("misses") or {}) for r in rs), Counter())
        if misses:  # why the others failed, where the task says (place either)
            miss_text = "misses: " + ", ".join(f"{k} {v}" for k, v in sorted(misses.items(), key=lambda kv: (-kv[1], kv[0])))
            mode_text = f"{mode_text}; {miss_text}" if mode_text else miss_text
        lines.append(
            f"| {robot} | {task} | {method} | {len(rs)} | {sum(r['episodes'] for r in rs)} | "
            f"{_mean_std([r['success_rate'] for r in rs])} | {_mean_std([r['collision_rate'] for r in rs])} | "
            f"{_mean_std([r['time_to_success_mean_s'] for r in rs])} | {_mean_std([r['jerk_rms'] for r in rs])} | "
            f"{_mean_std([r['ticks_ratio'] for r in rs])} | {mode_text} | {_grasp(rs)} |")
    m = doc.get("machine", {})
    steals = [r["steal"] for r in doc["runs"] if np.isfinite(r.get("steal", float("nan")))]
    steal = f"{max(steals):.1%}" if steals else "n/a"
    lines += ["", (f"{doc.get('episodes', '?')} episodes per checkpoint (scene seeds from 100000; demos used 0-99), "
              f"control at {doc.get('control_rate_hz', 100):g} Hz under /clock; CPU steal during the run "
              f"at most {steal}; {m.get('cpu_count', '?')} CPUs. Grasp: medians, when the gripper command first "
              "closed past half its travel, of the grip site's distance from the cube's centre and of its turn "
              "against the cube's faces (45° closes on two edges); - where the run predates it. Misses (place "
              "either, runs that record them): where the failed episodes ended, \"held\" the cube still up, \"off "
              "pad\" set down beside the pads, \"not lifted\", \"not released\" (on a pad, gripper closed), \"not "
              "settled\" (released on a pad under 0.5 s before the time limit). Generated by "
              "`sfp bench cells --render`.")]
    return "\n".join(lines)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", action="append", default=[], metavar="ROBOT:TASK:METHOD=CHECKPOINT",
                   help="a checkpoint to evaluate (repeatable; several per method = seeds)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    p.add_argument("--json", type=Path, help="write results here")
    p.add_argument("--append", action="store_true", help="add these runs to the runs already in --json")
    p.add_argument("--render", type=Path, help="print the table of this JSON instead of measuring")
    p.add_argument("--update-doc", type=Path, help="with --render: replace the cells section of this markdown file")


def run(args: argparse.Namespace) -> int:
    if args.render:
        return print_rendered(args.render, render, "cells", args.update_doc)
    if not args.run:
        raise ValueError("give at least one --run ROBOT:TASK:METHOD=CHECKPOINT (or --render JSON)")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    runs = [parse_run(r) for r in args.run]
    out = []
    if args.append and args.json and args.json.is_file():
        old = json.loads(args.json.read_text())
        if old.get("episodes") != args.episodes or old.get("control_rate_hz") != args.rate:
            raise ValueError(f"{args.json} holds runs of {old.get('episodes')} episodes at {old.get('control_rate_hz')} Hz")
        out = old["runs"]
    for r in runs:
        steal = CpuSteal()
        s = evaluate(r, args.episodes, args.rate)
        s["steal"] = steal.share()
        out.append(s)
        print(f"{r['robot']} {r['task']} {r['method']}: success {s['success_rate']:.2f}, table contact "
              f"{s['collision_rate']:.2f}, modes {s['modes']} ({s['wall_s']:.0f} s wall)", flush=True)
    doc = {"episodes": args.episodes, "control_rate_hz": args.rate, "machine": machine_info(), "runs": out}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=float))
    print(render(doc))
    return 0
