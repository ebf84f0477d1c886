"""`sfp bench step`: per-tick latency of the SFP runtime at the default model sizes.

Measures ``policy.step()`` (one Euler step = one velocity-net pass, features cached) for a
state-only and an image (one 96x96 camera) model, plus ``prepare()`` (the encoder, i.e. the
time to first action after a new observation), with torch on 1 thread, batch 1. The models are
real but untrained: weights do not change the cost. Optionally also times toy training.
``render`` draws the table of docs/BENCHMARKS.md from the JSON (`sfp bench docs`).

    sfp bench step [--ticks 5000] [--json PATH] [--torchscript] [--toy]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import make_untrained_checkpoint
from ..nets.model import ModelConfig
from ..policy.protocol import Observation, RuntimeConfig
from ..policy.streaming import load_policy
from ..spec import CameraSpec, IOSpec
from .common import CpuSteal, machine_info, percentiles_ms, versions

JOINTS = tuple(f"joint{i}" for i in range(1, 8))  # a 7-DoF arm


def _specs() -> dict[str, IOSpec]:
    return {
        "state": IOSpec(JOINTS, JOINTS, (), 10.0),
        "image": IOSpec(JOINTS, JOINTS, (CameraSpec("camera", 96, 96, 3),), 10.0),
    }


def step_ms(samples_s: list[float]) -> dict[str, float]:
    """{"p50_ms", "p99_ms", "max_ms"} of samples in seconds (bench.common.percentiles_ms)."""
    d = percentiles_ms(samples_s)
    return {"p50_ms": d["p50"], "p99_ms": d["p99"], "max_ms": d["max"]}


def bench_model(spec: IOSpec, ticks: int, torchscript: bool, integrator: str = "euler") -> dict:
    cfg = ModelConfig()  # the default sizes a user trains with
    with tempfile.TemporaryDirectory() as d:
        path = make_untrained_checkpoint(Path(d) / "m.safetensors", spec, config=cfg)
        # control rate 100 Hz, data rate 10 Hz, H 16: 160 ticks per chunk
        policy = load_policy(path, RuntimeConfig(control_rate_hz=100.0, torchscript=torchscript, integrator=integrator))
    rng = np.random.default_rng(0)
    T = policy.obs_horizon
    obs = Observation(
        state=rng.uniform(-1, 1, (T, spec.state_dim)),
        images={c.name: rng.integers(0, 255, (T, c.height, c.width, c.channels), dtype=np.uint8) for c in spec.cameras},
    )
    policy.reset(np.zeros(spec.action_dim))
    for _ in range(20):  # warm-up
        policy.start(policy.prepare(obs))
        policy.step()
    step_s, prep_s = [], []
    while len(step_s) < ticks:
        t0 = time.perf_counter()
        plan = policy.prepare(obs)
        policy.start(plan)
        prep_s.append(time.perf_counter() - t0)
        for _ in range(80):  # re-anchor every 8 data periods, as in the paper
            t0 = time.perf_counter()
            r = policy.step()
            step_s.append(time.perf_counter() - t0)
            assert not r.hold
    return {
        **step_ms(step_s),
        "prepare": step_ms(prep_s),
        "params": sum(p.numel() for p in policy.model.parameters()),
        "ticks": len(step_s),
    }


def run_bench(ticks: int = 5000, torchscript: bool = False, toy: bool = False) -> dict:
    """The whole benchmark as its JSON document; ``cpu_steal`` is the hypervisor's share over the
    run, ``machine`` the load average at the start and this process's niceness (on a shared VM they
    say how far the times can be trusted)."""
    torch.set_num_threads(1)
    machine = {**machine_info(), "nice": os.nice(0)}
    steal = CpuSteal()
    out: dict = {name: bench_model(spec, ticks, torchscript) for name, spec in _specs().items()}
    out["image_midpoint"] = bench_model(_specs()["image"], ticks // 2, torchscript, "midpoint")
    if toy:
        from ..toy.run import run_toys

        t0 = time.perf_counter()
        res, _ = run_toys(steps=2000, n=200)
        out["toy_train_seconds"] = {k: v.get("train_seconds") for k, v in res.items() if isinstance(v, dict) and "train_seconds" in v}
        out["toy_total_seconds"] = round(time.perf_counter() - t0, 1)
    out["cpu_steal"] = steal.share()
    out["machine"] = machine
    out["versions"] = versions(("torch", "numpy"))
    out["torchscript"] = torchscript
    return out


# JSON key -> the row's label in the docs table, in table order
ROWS = {"state": "state (7 joints)", "image": "image (7 joints, one 96x96 camera)",
        "image_midpoint": "image, midpoint integrator"}


def render(doc: dict) -> str:
    """Markdown for docs/BENCHMARKS.md: one row per model, then the run's CPU steal, load average
    and command (on a shared VM they say how far the times can be trusted)."""
    head = "| model | parameters (M) | step p50 / p99 / max | encode (prepare) p50 / p99 | timed steps |"
    out = [head, "|---|---|---|---|---|"]
    for key, label in ROWS.items():
        m = doc[key]
        out.append(f"| {label} | {m['params'] / 1e6:.2f} | {m['p50_ms']:.3f} / {m['p99_ms']:.3f} / {m['max_ms']:.1f} | "
                   f"{m['prepare']['p50_ms']:.2f} / {m['prepare']['p99_ms']:.2f} | {m['ticks']:,} |")
    machine = doc["machine"]
    command = f"sfp bench step --ticks {doc['state']['ticks']}" + (" --torchscript" if doc["torchscript"] else "")
    out += ["", (f"Times in ms; torch {machine['torch_threads']} thread, batch 1, {machine['cpu_count']} cores; "
                 f"CPU steal during the run {100 * doc['cpu_steal']:.1f} %, load average at the start "
                 f"{machine.get('load_avg_1_5_15', '?')}, niceness {machine.get('nice', '?')}. Command: `{command}`.")]
    return "\n".join(out)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ticks", type=int, default=5000, help="timed steps per model")
    p.add_argument("--torchscript", action="store_true", help="trace the velocity net")
    p.add_argument("--toy", action="store_true", help="also time toy training")
    p.add_argument("--json", help="write results here")


def run(args: argparse.Namespace) -> int:
    out = run_bench(args.ticks, args.torchscript, args.toy)
    print(f"{'model':16s} {'params':>9s} {'step p50':>9s} {'step p99':>9s} {'step max':>9s} {'encode p50':>11s} {'encode p99':>11s}")
    for name in ("state", "image", "image_midpoint"):
        m = out[name]
        print(f"{name:16s} {m['params']:9d} {m['p50_ms']:8.3f}ms {m['p99_ms']:8.3f}ms {m['max_ms']:8.2f}ms "
              f"{m['prepare']['p50_ms']:9.3f}ms {m['prepare']['p99_ms']:9.3f}ms")
    print(f"CPU steal {100 * out['cpu_steal']:.1f} %; load average at the start {out['machine'].get('load_avg_1_5_15')}")
    if "toy_train_seconds" in out:
        print(f"toy training seconds: {out['toy_train_seconds']} (total {out['toy_total_seconds']} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"json: {args.json}")
    return 0
