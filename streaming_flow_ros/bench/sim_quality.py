"""`sfp bench sim`: task quality on the simulator task (T4) through the real node, SFP against
the chunk baselines, over training seeds.

    sfp bench sim --dataset runs/default_policy/dataset --workdir runs/sim_quality \
        [--seeds 3] [--steps 8000] [--episodes 50] [--methods sfp,dp_ddpm,dp_ddim,fm_chunk] \
        [--latency-ms 0,100,200,400 [--stress-episodes 20] [--stress-methods ...]] \
        [--json PATH] [--quick]

Per seed: SFP is trained with config/train/sim.yaml, DP (one checkpoint for DP-DDPM and
DP-DDIM) with sim_dp.yaml and FM-chunk with sim_fm_chunk.yaml -- the same dataset, windows,
normaliser, episode split, optimiser, EMA, image encoder and step count, with the seed
overridden. Each method then runs ``--episodes`` closed-loop episodes through the real policy
node over DDS (ros/closed_loop.py; the sim robot preset, 100 Hz; the held-out scenes of
`sfp eval sim`): SFP streams with the preset's settings, a chunk method executes 8 waypoints and
then starts the newest chunk (bench/latency.py NODE_PARAMS).

JSON::

    {"<method>": {"success_mean", "success_std", "collision_mean", "ticks_ratio_mean",
                  "obs_to_cmd_p50_ms", "seeds": [{"seed", "success_rate", "collision_rate",
                  "ticks_ratio", "obs_to_cmd_p50_ms", "jerk_rms_mean", "train": {...}}]},
     "stress": {"latency": {"<method>": {"<ms>": {"success_rate", ...}}}, "episodes"},  # --latency-ms
     "settings": {...}, "machine": {...}, "versions": {...}}

Delay stress (``--latency-ms``): the seed-0 checkpoint of each stress method with the simulated
joint states and camera frames published that many ms after capture (stamped with the capture
time; the camera publishes on its 30 Hz ticks, so a frame waits up to one extra frame period).
This is a sensing delay the node sees only through the stamps; with the node's ``skip_elapsed``
(default) every method compensates it (SFP catches its new flow up with the plan's age over the
first data period, a chunk method skips the waypoints whose time passed since its observation).

Re-running with the same ``--workdir`` reuses finished trainings (``train_summary.json``) and
evaluations (``eval/<method>_seed<S>.json``, ``eval/stress/<method>_latency<ms>ms.json``). ``--quick``: 20 training steps of batch 8 on 1 thread, 1 seed, 2 episodes of at
most 3 s -- a smoke test whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .common import command, format_table, machine_info, versions
from .plots import LABELS

log = logging.getLogger(__name__)

METHODS = ("sfp", "dp_ddpm", "dp_ddim", "fm_chunk")
# method -> training slot (one DP checkpoint serves DDPM and DDIM sampling)
SLOT = {"sfp": "sfp", "dp_ddpm": "dp", "dp_ddim": "dp", "fm_chunk": "fm_chunk"}
CONFIGS = {"sfp": "sim.yaml", "dp": "sim_dp.yaml", "fm_chunk": "sim_fm_chunk.yaml"}


@dataclass(frozen=True)
class Settings:
    seeds: int = 3
    steps: int | None = None  # None: each config's own steps
    batch_size: int | None = None  # None: each config's own (--quick: 8)
    threads: int | None = None  # torch threads for training; None: each config's own (--quick: 1)
    episodes: int = 50
    methods: tuple[str, ...] = METHODS
    eval_seed: int = 1000
    control_rate_hz: float = 100.0
    time_limit_s: float | None = None  # None: the task's own limit
    latency_ms: tuple[int, ...] = ()  # delay stress: sensing latencies to evaluate (seed-0 checkpoints)
    stress_episodes: int = 20
    stress_methods: tuple[str, ...] | None = None  # None: ``methods``


def train_slot(slot: str, dataset: Path, out: Path, seed: int, steps: int | None,
               threads: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Train (or reuse) one slot; returns its train summary. ``threads``: torch threads (default:
    the config's), e.g. 1 to train two slots side by side."""
    summary_path = out / "train_summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if steps is None or summary.get("steps") == steps:
            log.info("reusing %s", out)
            return summary
    from ..baselines.train import BaselineTrainConfig, train_baseline
    from ..presets import find_config
    from ..train.config import TrainConfig
    from ..train.pipeline import train_from_dataset

    config_cls, train_fn = (TrainConfig, train_from_dataset) if slot == "sfp" else (BaselineTrainConfig, train_baseline)
    overrides = {k: v for k, v in (("steps", steps), ("threads", threads), ("batch_size", batch_size)) if v}
    cfg = replace(config_cls.from_yaml(find_config("train", CONFIGS[slot])), seed=seed, **overrides)
    path, result = train_fn(dataset, out, cfg, resume=False)
    summary = {"checkpoint": str(path), "steps": cfg.steps, "seed": seed, "seconds": result.seconds,
               "loss": result.final_loss, "val_loss": result.val_loss}
    summary_path.write_text(json.dumps(summary, indent=2, default=float))
    return summary


def evaluate(method: str, checkpoint: str, settings: Settings, episodes: int | None = None,
             latency_s: float = 0.0) -> dict[str, Any]:
    """``episodes`` (default ``settings.episodes``) episodes of ``method`` through the real node on
    the sim, with joint states and frames published ``latency_s`` late."""
    from ..ros.closed_loop import ClosedLoop, summarize
    from .common import CpuSteal
    from .latency import NODE_PARAMS

    params = {} if method == "sfp" else dict(NODE_PARAMS[method])  # SFP: the sim preset's own
    results = []
    steal = CpuSteal()
    with ClosedLoop(checkpoint, settings.control_rate_hz, seed=settings.eval_seed, node_parameters=params,
                    time_limit_s=settings.time_limit_s, sensor_latency_s=latency_s) as loop:
        for i in range(episodes or settings.episodes):
            results.append(loop.run_episode(i))
        node = loop.node_summary()
    s = summarize(results, node)
    return {"success_rate": s["success_rate"], "collision_rate": s["collision_rate"],
            "reached_rate": s["reached_rate"], "ticks_ratio": s["ticks_ratio"],
            "obs_to_cmd_p50_ms": node["obs_to_cmd_p50_ms"], "jerk_rms_mean": s["jerk_rms_mean"],
            "episodes": s["episodes"], "node_params": params, "cpu_steal": steal.share(),
            "period_err_p99_ms": node["period_err_p99_ms"], "latency_s": latency_s}


def _cached_eval(path: Path, method: str, checkpoint: str, settings: Settings, episodes: int,
                 latency_s: float = 0.0) -> dict[str, Any]:
    """The evaluation stored at ``path`` if it was made of ``checkpoint`` over ``episodes``
    episodes; else :func:`evaluate` it now and store it there with the checkpoint."""
    r = json.loads(path.read_text()) if path.is_file() else {}
    if (r.get("episodes"), r.get("checkpoint")) != (episodes, checkpoint):
        r = {**evaluate(method, checkpoint, settings, episodes, latency_s), "checkpoint": checkpoint}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=2, default=float))
    return r


def run_stress(workdir: Path, settings: Settings, seed0: dict[str, dict]) -> dict[str, Any]:
    """The delay stress test: each stress method's seed-0 checkpoint with joint states and frames
    published ``latency_ms`` late; {method: {str(ms): result}}. Cached in ``eval/stress/``."""
    out: dict[str, Any] = {}
    for m in settings.stress_methods or settings.methods:
        ckpt = seed0[SLOT[m]]["checkpoint"]
        out[m] = {}
        for ms in settings.latency_ms:
            r = _cached_eval(workdir / "eval" / "stress" / f"{m}_latency{ms}ms.json", m, ckpt, settings,
                             settings.stress_episodes, ms / 1000.0)
            out[m][str(ms)] = r
            log.info("stress %s latency %d ms: success %.2f, collisions %.2f", m, ms, r["success_rate"],
                     r["collision_rate"])
    return out


def run_all(dataset: Path, workdir: Path, settings: Settings) -> dict[str, Any]:
    t0 = time.monotonic()
    doc: dict[str, Any] = {}
    per: dict[str, list[dict]] = {m: [] for m in settings.methods}
    seed0: dict[str, dict] = {}
    for seed in range(settings.seeds):
        trained = {}
        for slot in dict.fromkeys(SLOT[m] for m in settings.methods):
            trained[slot] = train_slot(slot, dataset, workdir / f"seed{seed}" / slot, seed, settings.steps,
                                       settings.threads, settings.batch_size)
        if seed == 0:
            seed0 = dict(trained)
        for m in settings.methods:
            summary = trained[SLOT[m]]
            r = _cached_eval(workdir / "eval" / f"{m}_seed{seed}.json", m, summary["checkpoint"], settings,
                             settings.episodes)
            r = {**r, "seed": seed, "train": summary}
            per[m].append(r)
            log.info("%s seed %d: success %.2f, collisions %.2f, ticks %.4f, CPU steal %.1f %%", m, seed,
                     r["success_rate"], r["collision_rate"], r["ticks_ratio"], 100 * r.get("cpu_steal", float("nan")))
    for m, rows in per.items():
        succ = np.array([r["success_rate"] for r in rows])
        doc[m] = {
            "success_mean": float(succ.mean()), "success_std": float(succ.std()),
            "collision_mean": float(np.mean([r["collision_rate"] for r in rows])),
            "ticks_ratio_mean": float(np.mean([r["ticks_ratio"] for r in rows])),
            "obs_to_cmd_p50_ms": float(np.median([r["obs_to_cmd_p50_ms"] for r in rows])),
            "seeds": rows,
        }
    if settings.latency_ms:
        missing = {SLOT[m] for m in settings.stress_methods or ()} - set(seed0)
        for slot in sorted(missing):  # a stress method outside --methods: its seed-0 checkpoint
            seed0[slot] = train_slot(slot, dataset, workdir / "seed0" / slot, 0, settings.steps,
                                     settings.threads, settings.batch_size)
        doc["stress"] = {"latency": run_stress(workdir, settings, seed0), "episodes": settings.stress_episodes}
    doc["settings"] = {**asdict(settings), "dataset": str(dataset), "workdir": str(workdir)}
    doc["machine"] = machine_info()
    doc["versions"] = versions()
    doc["seconds"] = time.monotonic() - t0
    return doc


def format_report(doc: dict[str, Any]) -> str:
    rows = []
    for m in doc["settings"]["methods"]:
        r = doc[m]
        per_seed = " / ".join(f"{s['success_rate']:.2f}" for s in r["seeds"])
        steal = max(s.get("cpu_steal", float("nan")) for s in r["seeds"])
        rows.append([m, f"{r['success_mean']:.3f} ± {r['success_std']:.3f}", per_seed,
                     f"{r['collision_mean']:.3f}", f"{100 * r['ticks_ratio_mean']:.2f} %",
                     f"{r['obs_to_cmd_p50_ms']:.1f}", f"{100 * steal:.1f} %"])
    text = format_table(["method", "success (mean ± std)", "per seed", "collisions", "ticks",
                         "obs->cmd p50 ms", "CPU steal (max)"], rows)
    stress = doc.get("stress", {}).get("latency")
    if stress:
        lat = doc["settings"]["latency_ms"]
        srows = [[m] + [f"{r[str(ms)]['success_rate']:.2f}" for ms in lat] for m, r in stress.items()]
        text += (f"\n\ndelay stress (seed-0 checkpoints, {doc['stress']['episodes']} episodes; clean success by "
                 "sensing latency):\n" + format_table(["method"] + [f"{ms} ms" for ms in lat], srows))
    return text


def command_line(doc: dict[str, Any]) -> str:
    """The `sfp bench sim` command that reproduces a run, from its JSON."""
    settings, quick = doc["settings"], bool(doc.get("quick"))
    lat = settings.get("latency_ms") or ()
    stress = settings.get("stress_methods")
    return command("sfp bench sim", [
        ("--quick", quick), ("--dataset", settings.get("dataset")), ("--workdir", settings.get("workdir")),
        ("--seeds", None if quick else settings["seeds"]), ("--steps", None if quick else settings.get("steps")),
        ("--episodes", None if quick else settings["episodes"]), ("--methods", ",".join(settings["methods"])),
        ("--latency-ms", ",".join(map(str, lat)) or None),
        ("--stress-episodes", settings.get("stress_episodes") if lat and not quick else None),
        ("--stress-methods", ",".join(stress) if stress and lat else None)])


def render(doc: dict[str, Any]) -> str:
    """The markdown of an `sfp bench sim` JSON: success per method over seeds, then the delay
    stress when measured."""
    settings = doc["settings"]
    methods = list(settings["methods"])
    out = [(f"{len(doc[methods[0]]['seeds'])} training seeds, {settings['episodes']} held-out scenes per seed "
           "through the node at 100 Hz over DDS."), "",
           ("| method | success | per seed | collisions | ticks | obs → cmd p50 | jerk RMS, rad/s³ | training, s | "
           "CPU steal (max) |"), "|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        r = doc[m]
        seeds = r["seeds"]
        per = " / ".join(f"{s['success_rate']:.2f}" for s in seeds)
        jerk = np.mean([s["jerk_rms_mean"] for s in seeds])
        train = np.mean([s["train"]["seconds"] for s in seeds])
        steal = max(s.get("cpu_steal", float("nan")) for s in seeds)
        out.append(f"| {LABELS.get(m, m)} | {r['success_mean']:.2f} ± {r['success_std']:.2f} | {per} | "
                   f"{r['collision_mean']:.3f} | {100 * r['ticks_ratio_mean']:.1f} % | {r['obs_to_cmd_p50_ms']:.0f} ms | "
                   f"{jerk:.0f} | {train:,.0f} | {100 * steal:.1f} % |")
    stress = doc.get("stress", {}).get("latency")
    if stress:
        lat = list(settings["latency_ms"])
        out += ["", (f"Delay stress: seed-0 checkpoints, the first {doc['stress']['episodes']} scenes, joint states and "
                "frames published late (the node's default `skip_elapsed` compensates); success by sensing latency:"),
                "", "| method | " + " | ".join(f"{ms} ms" for ms in lat) + " |", "|---|" + "---|" * len(lat)]
        for m, cells in stress.items():
            out.append(f"| {LABELS.get(m, m)} | " + " | ".join(f"{cells[str(ms)]['success_rate']:.2f}" for ms in lat)
                       + " |")
    out += ["", (f"Command: `{command_line(doc)}`; it reuses the trainings and evaluations "
            "already in its workdir.")]
    return "\n".join(out)


def render_eval(docs: list[dict[str, Any]]) -> str:
    """Markdown: one row per `sfp eval sim --json` result (the node parameters it added, success,
    collisions, time to success, jerk, ticks, observation-to-command), then the commands."""
    out = [("| checkpoint | node parameters | episodes | success | collisions | time to success, s (median) | "
           "jerk RMS, rad/s³ | ticks | obs → cmd p50 | CPU steal |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for d in docs:
        params = ", ".join(f"`{k}={v}`" for k, v in d.get("node_parameters", {}).items()) or "the preset's"
        tts = [t for e in d.get("per_episode", []) if (t := e.get("time_to_success")) is not None and math.isfinite(t)]
        n = d["episodes"]
        name = "shipped" if d["checkpoint"] == "default" else f"`{d['checkpoint']}`"
        out.append(f"| {name} | {params} | {n} | {round(d['success_rate'] * n)}/{n} | "
                   f"{round(d['collision_rate'] * n)} | {np.median(tts) if tts else float('nan'):.2f} | "
                   f"{d['jerk_rms_mean']:.0f} | {100 * d['ticks_ratio']:.2f} % | {d['node']['obs_to_cmd_p50_ms']:.0f} ms | "
                   f"{100 * d.get('cpu_steal', float('nan')):.1f} % |")
    commands = [f"`{d['command']}`" for d in docs if d.get("command")]
    if commands:
        out += ["", f"Command{'s' if len(commands) > 1 else ''}: {'; '.join(commands)}."]
    return "\n".join(out)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", type=Path, required=True, help="dataset directory (sfp dataset build)")
    p.add_argument("--workdir", type=Path, required=True, help="checkpoints and evaluations land here")
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1")
    p.add_argument("--steps", type=int, help="optimiser steps for every method (default: each config's)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--latency-ms", default="",
                   help="delay stress: comma-separated sensing latencies in ms (e.g. 0,100,200,400), "
                        "joint states and frames published that late; seed-0 checkpoints")
    p.add_argument("--stress-episodes", type=int, default=20)
    p.add_argument("--stress-methods", default="", help="methods for the stress test (default: --methods)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 20 steps, 2 episodes of <= 3 s")


def run(args: argparse.Namespace) -> int:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise ValueError(f"unknown methods {unknown} (known: {list(METHODS)})")
    stress_methods = tuple(m.strip() for m in args.stress_methods.split(",") if m.strip()) or None
    if stress_methods and set(stress_methods) - set(METHODS):
        raise ValueError(f"unknown stress methods {sorted(set(stress_methods) - set(METHODS))} (known: {list(METHODS)})")
    try:
        latency = tuple(int(x) for x in args.latency_ms.split(",") if x.strip())
    except ValueError as e:
        raise ValueError(f"--latency-ms wants comma-separated integers (ms), got {args.latency_ms!r}") from e
    if any(not 0 <= ms <= 2000 for ms in latency):
        raise ValueError(f"--latency-ms values must be in [0, 2000], got {list(latency)}")
    stress = {"latency_ms": latency, "stress_methods": stress_methods}
    if args.quick:
        settings = Settings(seeds=1, steps=20, batch_size=8, threads=1, episodes=2, methods=methods, time_limit_s=3.0,
                            stress_episodes=1, **stress)
    else:
        if args.seeds < 1 or args.episodes < 1 or args.stress_episodes < 1:
            raise ValueError("--seeds, --episodes and --stress-episodes must be >= 1")
        settings = Settings(seeds=args.seeds, steps=args.steps, episodes=args.episodes, methods=methods,
                            stress_episodes=args.stress_episodes, **stress)
    if not (args.dataset / "dataset.json").is_file():
        raise ValueError(f"{args.dataset} is not a dataset directory (no dataset.json; see sfp dataset build)")
    doc = run_all(args.dataset, args.workdir, settings)
    doc["quick"] = bool(args.quick)
    print(format_report(doc))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=float))
        print(f"json: {args.json}")
    return 0
