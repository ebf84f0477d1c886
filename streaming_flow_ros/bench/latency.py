"""`sfp bench latency`: SFP vs the chunk baselines, side by side, in one run on one machine.

    sfp bench latency [--quick] [--json PATH] [--sfp CKPT] [--sfp-k0 CKPT] [--dp CKPT] [--fm-chunk CKPT]

Methods: sfp, sfp_k0 (SFP with k = 0), dp_ddpm (100 DDPM steps), dp_ddim (10 DDIM steps, the
same "dp" checkpoint), fm_chunk (10 Euler steps). Every method runs through its runtime as the
node would (``load_policy(path, config)``: prepare -> start -> step), torch with 1 thread,
batch 1, control rate = data rate (one step() per action, the paper's setting).

Without checkpoints the models are untrained but real, at the default sizes (SFP's ModelConfig(),
DPConfig(), FMChunkConfig(): comparable parameter counts, printed) for two specs: "state"
(6 joints) and "image" (6 joints + one 96x96 RGB camera). Weights do not change the compute, so
untrained models time the same as trained ones. With checkpoints, their spec is used and methods
without one are built untrained for it.

Per method (one chunk = prepare, start, then action_horizon = 8 ticks):
- ttfa: time to first action after a new observation = prepare + start + first step();
- step: per-tick compute of step() (SFP: one velocity pass; chunks: an interpolation);
- ms_per_action: compute per chunk / action_horizon (amortised latency), the chunk's compute
  taken as median(prepare + start) + action_horizon x median(step) (robust to the scheduler
  stalls of a shared machine); ms_per_action_wall_p50: median whole-chunk wall time / action_horizon;
- ms_per_data_period_at_100hz: derived, median(prepare + start) / action_horizon +
  (100 Hz / data rate) x median step: the compute a 100 Hz controller spends per data period
  (SFP then takes 10 flow steps per data period; a chunk policy 10 interpolations).
Methods are interleaved round by round (rotating order) so background load on a noisy machine
hits them alike; the load average and niceness are recorded under "machine", the CPU steal of
the rounds under "cpu_steal". Report ratios, not lone times. ``render`` draws the table of
docs/BENCHMARKS.md from the JSON (`sfp bench docs`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common import CpuSteal, command, format_table, machine_info, percentiles_ms, torch_threads, versions

log = logging.getLogger(__name__)

METHODS = ("sfp", "sfp_k0", "dp_ddpm", "dp_ddim", "fm_chunk")
# method -> (checkpoint slot, chunk sampler or None for SFP)
METHOD_SOURCES = {
    "sfp": ("sfp", None),
    "sfp_k0": ("sfp_k0", None),
    "dp_ddpm": ("dp", "ddpm"),
    "dp_ddim": ("dp", "ddim"),
    "fm_chunk": ("fm_chunk", "euler"),
}
SLOT_KINDS = {"sfp": "sfp", "sfp_k0": "sfp", "dp": "dp", "fm_chunk": "fm_chunk"}
JOINTS = tuple(f"joint_{i}" for i in range(1, 7))
PRIMARY_SPEC = "image"


@dataclass(frozen=True)
class BenchSettings:
    """rounds: interleaved rounds; round_budget_s: each method repeats chunks within a round
    until this much wall time has passed (at least one chunk); warmup: chunks per method first."""

    rounds: int = 30
    round_budget_s: float = 0.1
    warmup: int = 3
    seed: int = 0

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(rounds=4, round_budget_s=0.02, warmup=1)


def bench_specs() -> dict:
    """The two default specs: state-only and one 96x96 RGB camera, 6 joints, 10 Hz data."""
    from ..spec import CameraSpec, IOSpec

    lo, hi = (-3.0,) * len(JOINTS), (3.0,) * len(JOINTS)
    return {
        "state": IOSpec(JOINTS, JOINTS, (), 10.0, lo, hi),
        "image": IOSpec(JOINTS, JOINTS, (CameraSpec("camera", 96, 96, 3),), 10.0, lo, hi),
    }


def default_model_configs() -> dict[str, Any]:
    from ..baselines.config import DPConfig, FMChunkConfig
    from ..nets.model import ModelConfig

    return {"sfp": ModelConfig(), "sfp_k0": ModelConfig(k=0.0), "dp": DPConfig(), "fm_chunk": FMChunkConfig()}


def make_untrained_checkpoints(spec, out_dir: Path, slots: list[str], seed: int = 0) -> dict[str, Path]:
    """Untrained checkpoints at the default sizes for the given slots (sfp, sfp_k0, dp, fm_chunk)."""
    import torch

    from ..baselines.train import (
        make_untrained_baseline_checkpoint,
        untrained_normalizers,
    )
    from ..checkpoint import save_checkpoint
    from ..nets.model import SFPModel

    configs = default_model_configs()
    out: dict[str, Path] = {}
    for slot in slots:
        path = out_dir / f"{slot}.safetensors"
        cfg = configs[slot]
        if SLOT_KINDS[slot] == "sfp":
            torch.manual_seed(seed)
            state_norm, action_norm = untrained_normalizers(spec)
            info = {"untrained": True, "seed": seed}
            out[slot] = save_checkpoint(path, SFPModel(cfg, spec), spec, state_norm, action_norm, info)
        else:
            out[slot] = make_untrained_baseline_checkpoint(path, spec, cfg, seed)
    return out


def load_methods(ckpts: dict[str, Path], methods=METHODS, seed: int = 0) -> dict[str, Any]:
    """method -> runtime policy, loaded through load_policy like the node does (control rate =
    data rate). Raises ValueError when a checkpoint has the wrong kind or the specs differ."""
    from ..baselines.runtime import ChunkRuntimeConfig
    from ..checkpoint import read_checkpoint
    from ..policy.protocol import RuntimeConfig
    from ..policy.streaming import load_policy

    spec = None
    policies = {}
    for m in methods:
        slot, sampler = METHOD_SOURCES[m]
        path = ckpts[slot]
        ck = read_checkpoint(path)
        if ck.kind != SLOT_KINDS[slot]:
            raise ValueError(f"{m}: checkpoint {path} is of kind {ck.kind!r}, expected {SLOT_KINDS[slot]!r}")
        if spec is None:
            spec = ck.spec
        elif ck.spec != spec:
            raise ValueError(f"{m}: checkpoint {path} has a different IO spec from the others")
        if slot == "sfp_k0" and ck.model_config.k != 0.0:
            log.warning("sfp_k0 checkpoint %s has k = %s, not 0", path, ck.model_config.k)
        base = RuntimeConfig(control_rate_hz=spec.data_rate_hz, seed=seed)
        cfg = base if sampler is None else ChunkRuntimeConfig.extend(base, sampler=sampler)
        policies[m] = load_policy(path, cfg)
    return policies


def parameter_counts(policy) -> dict[str, int]:
    """total / encoder / net (SFP velocity net or chunk U-Net) parameters."""
    model = policy.model
    total = sum(p.numel() for p in model.parameters())
    enc = sum(p.numel() for n, p in model.named_parameters() if n.startswith("encoder."))
    return {"total": int(total), "encoder": int(enc), "net": int(total - enc)}


def random_observations(spec, obs_horizon: int, n: int, seed: int) -> list:
    from ..policy.protocol import Observation

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        state = rng.uniform(-0.5, 0.5, (obs_horizon, spec.state_dim))  # rad
        images = {c.name: rng.integers(0, 256, (obs_horizon, c.height, c.width, c.channels), np.uint8) for c in spec.cameras}
        out.append(Observation(state=state, images=images, stamp=float(i)))
    return out


@dataclass
class MethodTimes:
    """Seconds. One entry per chunk for prepare/start/ttfa/chunk; one per tick for step."""

    prepare: list[float] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    ttfa: list[float] = field(default_factory=list)
    chunk: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)


def run_chunk(policy, obs, ticks: int, times: MethodTimes | None) -> None:
    """prepare -> start -> ``ticks`` step() calls, timed into ``times`` (None: warm-up)."""
    clock = time.perf_counter
    t0 = clock()
    plan = policy.prepare(obs)
    t1 = clock()
    policy.start(plan)
    t2 = clock()
    steps = []
    for _ in range(ticks):
        a = clock()
        r = policy.step()
        steps.append(clock() - a)
        if r.hold:
            raise RuntimeError(f"{type(policy).__name__} held inside its action horizon")
    if times is not None:
        times.prepare.append(t1 - t0)
        times.start.append(t2 - t1)
        times.ttfa.append(t2 - t0 + steps[0])
        times.chunk.append(t2 - t0 + sum(steps))
        times.step.extend(steps)


def measure(policies: dict[str, Any], observations: list, settings: BenchSettings) -> dict[str, MethodTimes]:
    """Interleaved rounds over the methods (rotating order); returns the raw timings."""
    names = list(policies)
    times = {m: MethodTimes() for m in names}
    ticks = {m: int(p.model.config.action_horizon) for m, p in policies.items()}
    k = 0
    for m, p in policies.items():
        p.reset(np.zeros(p.spec.action_dim))
        for _ in range(settings.warmup):
            run_chunk(p, observations[k % len(observations)], ticks[m], None)
            k += 1
    for r in range(settings.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for m in order:
            t_round = time.perf_counter()
            while True:
                run_chunk(policies[m], observations[k % len(observations)], ticks[m], times[m])
                k += 1
                if time.perf_counter() - t_round >= settings.round_budget_s:
                    break
    return times


def summarise(times: MethodTimes, action_horizon: int, data_rate_hz: float, params: dict[str, int]) -> dict[str, Any]:
    ttfa = percentiles_ms(times.ttfa)
    step = percentiles_ms(times.step)
    chunk = percentiles_ms(times.chunk)
    prep = percentiles_ms(times.prepare)
    setup = percentiles_ms(np.add(times.prepare, times.start))
    return {
        "ttfa_ms_p50": ttfa["p50"],
        "ttfa_ms_p99": ttfa["p99"],
        "step_ms_p50": step["p50"],
        "step_ms_p99": step["p99"],
        "step_ms_max": step["max"],
        "prepare_ms_p50": prep["p50"],
        "ms_per_action": (setup["p50"] + action_horizon * step["p50"]) / action_horizon,
        "ms_per_action_wall_p50": chunk["p50"] / action_horizon,
        "ms_per_data_period_at_100hz": setup["p50"] / action_horizon + (100.0 / data_rate_hz) * step["p50"],
        "action_horizon": action_horizon,
        "chunks": chunk["n"],
        "steps": step["n"],
        "params": params,
    }


def add_ratios(methods: dict[str, dict]) -> None:
    """x_sfp: each method's value / SFP's (> 1 = slower than SFP)."""
    ref = methods.get("sfp")
    if ref is None:
        return
    for row in methods.values():
        row["x_sfp"] = {k: row[k] / ref[k] for k in ("ttfa_ms_p50", "ttfa_ms_p99", "ms_per_action", "ms_per_data_period_at_100hz")}


def bench_spec(ckpts: dict[str, Path], settings: BenchSettings, methods=METHODS) -> dict[str, Any]:
    policies = load_methods(ckpts, methods, settings.seed)
    spec = next(iter(policies.values())).spec
    obs_h = next(iter(policies.values())).obs_horizon
    observations = random_observations(spec, obs_h, 4, settings.seed)
    raw = measure(policies, observations, settings)
    out = {
        m: summarise(raw[m], int(policies[m].model.config.action_horizon), spec.data_rate_hz, parameter_counts(policies[m]))
        for m in methods
    }
    add_ratios(out)
    return {
        "methods": out,
        "spec": {"joints": spec.action_dim, "cameras": [f"{c.name} {c.width}x{c.height}x{c.channels}" for c in spec.cameras],
                 "data_rate_hz": spec.data_rate_hz},
    }


def run_latency(settings: BenchSettings | None = None, checkpoints: dict[str, Path] | None = None,
                work_dir: Path | None = None) -> dict[str, Any]:
    """The whole benchmark; returns the JSON document (see module doc)."""
    settings = settings or BenchSettings()
    checkpoints = {k: Path(v) for k, v in (checkpoints or {}).items() if v is not None}
    t0 = time.perf_counter()
    load_at_start = machine_info().get("load_avg_1_5_15")
    steal = CpuSteal()
    with torch_threads(1), tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        specs_out: dict[str, Any] = {}
        if checkpoints:
            from ..checkpoint import read_checkpoint

            spec = read_checkpoint(next(iter(checkpoints.values()))).spec
            missing = [s for s in SLOT_KINDS if s not in checkpoints]
            ckpts = {**make_untrained_checkpoints(spec, Path(tmp), missing, settings.seed), **checkpoints}
            specs_out["checkpoint"] = bench_spec(ckpts, settings)
            specs_out["checkpoint"]["given"] = sorted(checkpoints)
            primary = "checkpoint"
        else:
            for name, spec in bench_specs().items():
                d = Path(tmp) / name
                d.mkdir()
                ckpts = make_untrained_checkpoints(spec, d, list(SLOT_KINDS), settings.seed)
                specs_out[name] = bench_spec(ckpts, settings)
                specs_out[name]["given"] = []
            primary = PRIMARY_SPEC
        machine = {**machine_info(), "load_avg_at_start": load_at_start, "nice": os.nice(0)}
    return {
        "methods": specs_out[primary]["methods"],
        "primary_spec": primary,
        "specs": specs_out,
        "cpu_steal": steal.share(),
        "machine": machine,
        "versions": versions(),
        "settings": {**settings.__dict__, "torch_threads": 1, "batch": 1, "control_rate": "data rate",
                     "seconds": round(time.perf_counter() - t0, 1)},
        "notes": [
            "untrained weights except the checkpoints listed under specs.*.given: weights do not change compute",
            (
                "ttfa = prepare + start + first step(); ms_per_action = (median(prepare + start) + "
                "action_horizon * median(step)) / action_horizon"
            ),
            "x_sfp = method / sfp (> 1: slower than SFP)",
        ],
    }


def format_report(doc: dict[str, Any]) -> str:
    lines = []
    for name, res in doc["specs"].items():
        s = res["spec"]
        cams = ", ".join(s["cameras"]) or "no camera"
        lines.append(f"\n== spec {name}: {s['joints']} joints, {cams}, data {s['data_rate_hz']:g} Hz"
                     + (f" (given checkpoints: {', '.join(res['given'])}; others untrained)" if res["given"] else " (untrained weights)"))
        rows = []
        for m, r in res["methods"].items():
            x = r.get("x_sfp", {})
            rows.append([
                m, r["params"]["total"] / 1e6, r["params"]["net"] / 1e6, r["ttfa_ms_p50"], r["ttfa_ms_p99"],
                r["step_ms_p50"], r["step_ms_p99"], r["ms_per_action"], r["ms_per_data_period_at_100hz"],
                x.get("ttfa_ms_p50", float("nan")), x.get("ms_per_action", float("nan")), r["chunks"],
            ])
        lines.append(format_table(
            ["method", "params M", "net M", "TTFA p50", "TTFA p99", "step p50", "step p99", "ms/action",
             "ms/period@100Hz", "TTFA xSFP", "ms/act xSFP", "chunks"],
            rows,
        ))
    m = doc["machine"]
    lines.append(f"\nms unless noted; torch 1 thread, batch 1; {m['cpu']} x{m['cpu_count']}, "
                 f"load avg start {m.get('load_avg_at_start')} end {m.get('load_avg_1_5_15')}; {doc['settings']['seconds']} s")
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a measurement (the options that shape it; not --json)."""
    opts = [("--quick", args.quick), ("--rounds", args.rounds), ("--seed", args.seed or None),
            ("--sfp", args.sfp), ("--sfp-k0", args.sfp_k0), ("--dp", args.dp), ("--fm-chunk", args.fm_chunk),
            ("--node", args.node), ("--node-seconds", f"{args.node_seconds:g}" if args.node else None)]
    return command("sfp bench latency", opts)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="few rounds (CI; < 60 s)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--sfp", type=Path, help="trained SFP checkpoint")
    parser.add_argument("--sfp-k0", type=Path, help="trained SFP k=0 checkpoint")
    parser.add_argument("--dp", type=Path, help="trained DP checkpoint (used for DDPM and DDIM)")
    parser.add_argument("--fm-chunk", type=Path, help="trained FM-chunk checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--node", action="store_true",
                        help="also run each method in the real node at 100 Hz with a live camera")
    parser.add_argument("--node-seconds", type=float, default=10.0, help="measured seconds per method (--node)")


def run(args: argparse.Namespace) -> int:
    settings = BenchSettings.quick() if args.quick else BenchSettings()
    overrides = {"seed": args.seed}
    if args.rounds is not None:
        if args.rounds < 1:
            raise ValueError(f"--rounds must be >= 1, got {args.rounds}")
        overrides["rounds"] = args.rounds
    settings = BenchSettings(**{**settings.__dict__, **overrides})
    ckpts = {"sfp": args.sfp, "sfp_k0": args.sfp_k0, "dp": args.dp, "fm_chunk": args.fm_chunk}
    doc = run_latency(settings, ckpts)
    doc["command"] = command_line(args)
    print(format_report(doc))
    if args.node:
        doc["node"] = run_node_comparison(3.0 if args.quick else args.node_seconds, settings.seed)
        print(format_node_report(doc["node"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"json: {args.json}")
    return 0


# Node parameters per method: SFP re-anchors on every new observation; a chunk policy executes
# action_horizon (8) waypoints of a chunk, then starts the newest one (80 ticks at 100 Hz).
NODE_PARAMS: dict[str, dict] = {
    "sfp": {"reanchor": "observation"},
    "sfp_k0": {"reanchor": "observation"},
    "dp_ddpm": {"reanchor": "ticks", "reanchor_ticks": 80, "sampler": "ddpm"},
    "dp_ddim": {"reanchor": "ticks", "reanchor_ticks": 80, "sampler": "ddim"},
    "fm_chunk": {"reanchor": "ticks", "reanchor_ticks": 80, "sampler": "euler"},
}


NODE_IMAGE_SIZE = (320, 240)  # the live camera's frames, published at 30 Hz (ros/bench/node.py's feeder)
NODE_JOINT_RATE_HZ = 100.0


def run_node_comparison(seconds: float, seed: int = 0, rate: float = 100.0,
                        methods: list[str] | None = None) -> dict[str, Any]:
    """Each method's (untrained, default-size, one 96x96 camera) checkpoint in the real node at
    ``rate`` Hz with a 30 Hz camera stream: ticks, period error, observation-to-command."""
    from ..ros.bench.node import compare_methods

    spec = bench_specs()["image"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = make_untrained_checkpoints(spec, Path(tmp), list(SLOT_KINDS), seed)
        slot = {"sfp": "sfp", "sfp_k0": "sfp_k0", "dp_ddpm": "dp", "dp_ddim": "dp", "fm_chunk": "fm_chunk"}
        chosen = {m: (str(ckpts[slot[m]]), NODE_PARAMS[m]) for m in (methods or NODE_PARAMS)}
        res = compare_methods(chosen, rate=rate, seconds=seconds, joint_rate=NODE_JOINT_RATE_HZ,
                              image_size=NODE_IMAGE_SIZE)
    base = res["sfp"]["obs_to_cmd_p50_ms"]
    for r in res.values():
        r["obs_to_cmd_p50_x_sfp"] = r["obs_to_cmd_p50_ms"] / base if base > 0 else float("nan")
    return {"rate_hz": rate, "seconds": seconds, "methods": res, "params": NODE_PARAMS,
            "camera": {"width": NODE_IMAGE_SIZE[0], "height": NODE_IMAGE_SIZE[1], "rate_hz": 30.0},
            "joint_rate_hz": NODE_JOINT_RATE_HZ}


def format_node_report(node: dict[str, Any]) -> str:
    lines = [f"through the node at {node['rate_hz']:g} Hz, camera 30 Hz ({node['seconds']:g} s each):",
             f"{'method':10s} {'ticks':>8s} {'period p99':>11s} {'obs->cmd p50':>13s} {'p99':>8s} {'x sfp':>6s}"]
    for m, r in node["methods"].items():
        lines.append(f"{m:10s} {100 * r['ticks_ratio']:7.2f}% {r['period_err_p99_ms']:9.2f}ms "
                     f"{r['obs_to_cmd_p50_ms']:11.1f}ms {r['obs_to_cmd_p99_ms']:6.1f}ms {r['obs_to_cmd_p50_x_sfp']:6.1f}")
    return "\n".join(lines)


def _ms(x: float) -> str:
    """A time in ms with three significant digits or so (0.92, 31.5, 346)."""
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def _node_cell(r: dict[str, Any]) -> str:
    return (f"{100 * r['ticks_ratio']:.2f} %, {r['period_err_p99_ms']:.2f}, {_ms(r['obs_to_cmd_p50_ms'])} / "
            f"{_ms(r['obs_to_cmd_p99_ms'])}, {100 * r['cpu_steal']:.1f} % |")


def _rows(doc: dict[str, Any]) -> list[str]:
    """The header and one row per method of the primary spec, with its node run when measured."""
    node = doc.get("node", {}).get("methods", {})
    head = ("| method | params (M) | TTFA p50 | TTFA p99 | step p99 | ms / action | TTFA ÷ SFP |"
            + (" node: ticks, period err p99, obs → cmd p50 / p99, CPU steal |" if node else ""))
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for m, r in doc["methods"].items():
        out.append(f"| {m} | {r['params']['total'] / 1e6:.2f} | {_ms(r['ttfa_ms_p50'])} | {_ms(r['ttfa_ms_p99'])} | "
                   f"{r['step_ms_p99']:.2f} | {_ms(r['ms_per_action'])} | {_ratio(r['x_sfp']['ttfa_ms_p50'])} |"
                   + (f" {_node_cell(node[m])}" if m in node else ""))
    return out


def _spec_line(res: dict[str, Any]) -> str:
    s = res["spec"]
    return (f"{s['joints']} joints, {', '.join(s['cameras']) or 'no camera'}, data {s['data_rate_hz']:g} Hz, "
            + (f"checkpoints given: {', '.join(res['given'])}, others untrained" if res["given"] else "untrained weights"))


def render(doc: dict[str, Any]) -> str:
    """Markdown for docs/BENCHMARKS.md: the primary spec's table (with the node column when
    measured), the TTFA ratios of the other specs, then the run's load, steal and command."""
    primary = doc["primary_spec"]
    out = [f"Spec {primary}: {_spec_line(doc['specs'][primary])}; times in ms.", "", *_rows(doc)]
    for name, res in doc["specs"].items():
        if name != primary:
            ratios = ", ".join(f"{m} {_ratio(r['x_sfp']['ttfa_ms_p50'])}" for m, r in res["methods"].items() if m != "sfp")
            out += ["", f"Spec {name} ({_spec_line(res)}): TTFA ÷ SFP {ratios}."]
    if "node" in doc:
        n = doc["node"]
        cam = n["camera"]
        out += ["", (f"Node: each method in the real node at {n['rate_hz']:g} Hz for {n['seconds']:g} s, a "
                     f"{cam['width']}x{cam['height']} camera at {cam['rate_hz']:g} Hz and joint states at "
                     f"{n['joint_rate_hz']:g} Hz from another process over DDS; period error and obs → cmd in ms.")]
    m, st = doc["machine"], doc["settings"]
    out += ["", (f"Torch {st['torch_threads']} thread, batch {st['batch']}; {st['rounds']} interleaved rounds per "
                 f"spec (each method at least {st['round_budget_s']:g} s a round), {st['seconds']:g} s, on "
                 f"{m['cpu_count']} cores; CPU steal over the rounds {100 * doc['cpu_steal']:.1f} %, load average at the start "
                 f"{m.get('load_avg_at_start', '?')} and the end {m.get('load_avg_1_5_15', '?')}, niceness "
                 f"{m.get('nice', '?')}. Command: `{doc['command']}`.")]
    return "\n".join(out)
