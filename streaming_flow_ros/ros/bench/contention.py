"""`sfp bench contention`: the node's control loop while other work fights it for the CPU, and
what a user can do about it.

Setup as `sfp bench node` (the node in this process at 100 Hz, enabled, the sensors in another
process over DDS). Each variant adds ``hogs`` busy-loop processes (pure Python spinning, one
per core of this 2-core machine) and one of the remedies:

- ``tick_priority 50``: the control thread at SCHED_FIFO 50 (needs CAP_SYS_NICE or an rtprio
  limit; the JSON says when the kernel refused);
- ``hogs nice 19``: the other work niced (what `nice -n 19 make` does);
- ``pinned``: the node's process on CPU 1, the hogs on CPU 0 (``taskset``/cpusets);
- ``executor multi``: the MultiThreadedExecutor instead of the EventsExecutor.

Reported per variant: ticks delivered / expected, tick period error p99 and max (the longest
gap beyond one period), step p99, CPU steal.

    sfp bench contention --seconds 10 --json runs/bench/contention.json
    sfp bench contention --render runs/bench/contention.json --update-doc docs/RELIABILITY.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
from pathlib import Path
from typing import Any

from ...bench.common import machine_info, print_rendered
from .node import _checkpoint, _state_names, live_inputs, measure

SECTION = "contention"
VARIANTS: list[dict[str, Any]] = [
    {"label": "idle", "hogs": 0},
    {"label": "2 hogs", "hogs": 2},
    {"label": "2 hogs, tick_priority 50", "hogs": 2, "tick_priority": 50},
    {"label": "2 hogs at nice 19", "hogs": 2, "hog_nice": 19},
    {"label": "2 hogs on CPU 0, node on CPU 1", "hogs": 2, "pin": True},
    {"label": "2 hogs, executor multi", "hogs": 2, "executor": "multi"},
]


def _hog(stop, nice: int, cpu: int | None) -> None:
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # never a real-time hog
    os.nice(nice)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def run_variant(ctx, checkpoint: str, v: dict[str, Any], seconds: float) -> dict[str, Any]:
    mpc = mp.get_context("spawn")
    stop = mpc.Event()
    pin = bool(v.get("pin")) and len(os.sched_getaffinity(0)) >= 2
    hogs = [mpc.Process(target=_hog, args=(stop, int(v.get("hog_nice", 0)), 0 if pin else None), daemon=True)
            for _ in range(int(v.get("hogs", 0)))]
    before = os.sched_getaffinity(0)
    for h in hogs:
        h.start()
    try:
        if pin:
            os.sched_setaffinity(0, {1})
        extra = {"tick_priority": int(v.get("tick_priority", 0))}
        r = measure(ctx, checkpoint, 100.0, seconds, v.get("executor", "events"), extra)
    finally:
        os.sched_setaffinity(0, before)
        stop.set()
        for h in hogs:
            h.join(5.0)
    return {**v, "pinned": pin, **r}


def render(doc: dict[str, Any]) -> str:
    rows = doc["variants"]
    where = f"{doc['machine'].get('cpu', '?')} ({doc['machine'].get('cpu_count', '?')} cores)"
    out = [f"The node at 100 Hz, {doc['seconds']:g} s per variant, on {where}:", "",
           "| variant | ticks delivered | period error p99, ms | longest gap, ms | step p99, ms | steal |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['label']} | {r['ticks_ratio']:.3f} | {r['period_err_p99_ms']:.2f} | "
                   f"{r['period_err_max_ms'] + 10.0:.0f} | {r['step_p99_ms']:.2f} | {r['cpu_steal']:.1%} |")
    out += ["", f"Command: `{doc['command']}`."]
    return "\n".join(out)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per variant")
    p.add_argument("--checkpoint", type=Path, help="policy checkpoint (default: as sfp bench node)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--render", type=Path, help="print the table of this JSON instead of measuring")
    p.add_argument("--update-doc", type=Path, help="with --render: replace the contention section of this file")


def run(args: argparse.Namespace) -> int:
    if args.render:
        return print_rendered(args.render, render, SECTION, args.update_doc)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = _checkpoint(args.checkpoint, Path(tmp))
        with live_inputs(_state_names(checkpoint), 100.0, (320, 240)) as ctx:
            for v in VARIANTS:
                r = run_variant(ctx, checkpoint, v, args.seconds)
                rows.append(r)
                print(f"{v['label']:32s} ticks {r['ticks_ratio']:.3f}  period err p99 {r['period_err_p99_ms']:.2f} ms "
                      f"max {r['period_err_max_ms']:.1f} ms  steal {r['cpu_steal']:.1%}", flush=True)
    doc = {"machine": machine_info(), "seconds": args.seconds, "variants": rows,
           "command": f"sfp bench contention --seconds {args.seconds:g}"}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=float))
    print(render(doc))
    return 0
