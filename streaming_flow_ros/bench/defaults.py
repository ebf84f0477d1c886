"""`sfp bench defaults`: the measurements behind the node's defaults ``reanchor`` and
``skip_elapsed``, through the one control loop the node runs (policy/control.py).

- Push-T state (T2), a trained SFP checkpoint, through ``bench.pusht.evaluate`` (the ControlLoop
  on a simulated clock): re-anchor at every observation (``observation``) or every action horizon
  (``horizon``, 8 data periods), under 0 / 1 / 2 / 4 data periods of observation delay, with and
  without latency compensation (``skip_elapsed``).
- The arm simulator task through the real node over DDS (``sfp eval sim``'s ClosedLoop, the sim
  preset with ``reanchor`` and ``skip_elapsed`` overridden): success, collisions, time to success.

    sfp bench defaults --pusht-checkpoint runs/pusht/sfp/policy.safetensors --json runs/bench/defaults.json
    sfp bench defaults --render runs/bench/defaults.json --update-doc docs/BENCHMARKS.md

``--render`` prints the markdown table of a JSON file; ``--update-doc`` writes it between the
``<!-- defaults:begin -->`` / ``<!-- defaults:end -->`` markers of a document.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .common import CpuSteal, machine_info, print_rendered

MODES = {"observation": 1, "horizon": 8}  # reanchor mode -> Push-T reanchor_every (observations)


def pusht_grid(checkpoint: str, episodes: int, delays: list[int]) -> list[dict[str, Any]]:
    """Score / strict success of the SFP checkpoint per (reanchor, delay, latency_comp)."""
    from .pusht.evaluate import EvalSettings, evaluate_checkpoint

    rows = []
    for mode, every in MODES.items():
        for delay in delays:
            for comp in ((False,) if delay == 0 else (False, True)):
                s = EvalSettings(episodes=episodes, delay=delay, reanchor_every=every, latency_comp=comp)
                r = evaluate_checkpoint(checkpoint, "sfp", s)
                rows.append({"reanchor": mode, "delay_steps": delay, "delay_s": delay / 10.0,
                             "skip_elapsed": comp, "score": r["score"], "success": r["success"],
                             "episodes": episodes, "seconds": r["seconds"]})
                print(f"pusht {mode:11s} delay {delay} skip_elapsed {comp!s:5s}: score {r['score']:.3f} "
                      f"success {r['success']:.2f}", flush=True)
    return rows


def sim_grid(checkpoint: str | None, episodes: int) -> list[dict[str, Any]]:
    """The arm simulator task through the node, per (reanchor, skip_elapsed)."""
    from ..ros.closed_loop import ClosedLoop, summarize

    rows = []
    for mode in MODES:
        for skip in (True, False):
            t0 = time.perf_counter()
            with ClosedLoop(checkpoint, 100.0, seed=1000,
                            node_parameters={"reanchor": mode, "skip_elapsed": skip}) as loop:
                results = [loop.run_episode(i) for i in range(episodes)]
                s = summarize(results, loop.node_summary())
            rows.append({"reanchor": mode, "skip_elapsed": skip, "episodes": episodes,
                         "success_rate": s["success_rate"], "collision_rate": s["collision_rate"],
                         "time_to_success_mean": s["time_to_success_mean"], "jerk_rms_mean": s["jerk_rms_mean"],
                         "ticks_ratio": s["ticks_ratio"], "seconds": time.perf_counter() - t0})
            print(f"sim   {mode:11s} skip_elapsed {skip!s:5s}: success {s['success_rate']:.2f} "
                  f"collisions {s['collision_rate']:.2f} time {s['time_to_success_mean']}", flush=True)
    return rows


def render(doc: dict[str, Any]) -> str:
    """The markdown tables of a defaults JSON."""
    out = []
    if doc.get("pusht"):
        rows = doc["pusht"]
        delays = sorted({r["delay_steps"] for r in rows})
        out += [(f"Push-T state, SFP `{doc.get('pusht_checkpoint', '?')}`, {rows[0]['episodes']} episodes per "
                 "cell: score (strict success)"), "",
                "| reanchor | skip_elapsed | " + " | ".join(f"delay {d / 10:.1f} s" for d in delays) + " |",
                "|---|---|" + "---|" * len(delays)]
        for mode in MODES:
            for comp in (True, False):
                cells = []
                for d in delays:
                    hit = [r for r in rows if r["reanchor"] == mode and r["delay_steps"] == d
                           and (r["skip_elapsed"] == comp or d == 0)]
                    cells.append(f"{hit[0]['score']:.3f} ({hit[0]['success']:.2f})" if hit else "-")
                out.append(f"| {mode} | {str(comp).lower()} | " + " | ".join(cells) + " |")
        out.append("")
    if doc.get("sim"):
        rows = doc["sim"]
        out += [f"Arm simulator task through the node, default policy, {rows[0]['episodes']} episodes per cell", "",
                "| reanchor | skip_elapsed | success | collisions | time to success, s | jerk RMS, rad/s^3 | ticks |",
                "|---|---|---|---|---|---|---|"]
        for r in rows:
            tts = "-" if r["time_to_success_mean"] is None else f"{r['time_to_success_mean']:.2f}"
            out.append(f"| {r['reanchor']} | {str(r['skip_elapsed']).lower()} | {r['success_rate']:.2f} | "
                       f"{r['collision_rate']:.2f} | {tts} | {r['jerk_rms_mean']:.0f} | {r['ticks_ratio']:.3f} |")
        out.append("")
    steal = doc.get("cpu_steal")
    if steal is not None:
        out.append(f"CPU steal during the run: {steal:.1%}. Command: `{doc.get('command', 'sfp bench defaults')}`.")
    return "\n".join(out)


OPTIONS = ("pusht_checkpoint", "pusht_episodes", "delays", "sim_episodes", "sim_checkpoint", "json")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a measurement (the options that shape it)."""
    given = [(k, getattr(args, k, None)) for k in OPTIONS]
    return "sfp bench defaults " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in given if v is not None)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pusht-checkpoint", help="a trained Push-T state SFP checkpoint (skip Push-T if absent)")
    p.add_argument("--pusht-episodes", type=int, default=50)
    p.add_argument("--delays", default="0,1,2,4", help="observation delays, data periods (0.1 s)")
    p.add_argument("--sim-episodes", type=int, default=30, help="0 skips the simulator task")
    p.add_argument("--sim-checkpoint", help="default: the shipped default policy")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--render", help="print the tables of this JSON instead of measuring")
    p.add_argument("--update-doc", help="with --render: replace the defaults section of this markdown file")


def run(args: argparse.Namespace) -> int:
    if args.render:
        return print_rendered(args.render, render, "defaults", args.update_doc)
    steal = CpuSteal()
    doc: dict[str, Any] = {"machine": machine_info(), "pusht_checkpoint": args.pusht_checkpoint,
                           "command": command_line(args)}
    if args.pusht_checkpoint:
        doc["pusht"] = pusht_grid(args.pusht_checkpoint, args.pusht_episodes,
                                  [int(d) for d in args.delays.split(",")])
    if args.sim_episodes > 0:
        doc["sim"] = sim_grid(args.sim_checkpoint, args.sim_episodes)
    doc["cpu_steal"] = steal.share()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2, default=float))
    print(render(doc))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sfp bench defaults", description=__doc__.split("\n\n")[0])
    configure(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
