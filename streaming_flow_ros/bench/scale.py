"""`sfp bench scale`: network size against the control rate, from the CPU default's scale to
the paper's (ResNet-18 image encoder, a ~64 M-parameter velocity net).

Per network (a 7-joint arm, one 96x96 camera cropped to 84x84 as in Diffusion Policy, untrained
weights: compute does not depend on them), on ``--device``:
- **pass**: one flow step (one velocity pass, Euler) on the runtime's own path, p50 / p99 (ms);
- **prepare**: encoding an observation with one new frame (the plan worker's job), p50 (ms);
- **ticks at 100 Hz** through the ControlLoop on a real-time clock (the node's tick thread,
  ros/ticker.py, and its plan worker, ros/plan_worker.py: no DDS), fed a fresh observation every
  data period, re-anchoring at the action horizon (the node's default), for ``--seconds``:
  ticks delivered / grid points (a tick that starts a period late skips the points it missed:
  ros/ticker.py), tick compute p50 / p99 (ms), ticks that overran their period;
  with ``integration: tick`` (one flow step per tick) and ``integration: auto`` (the node's
  default: worker integration when a step takes more than half a tick), plus for the worker its
  ticks per flow step, stalls and flow steps computed per second;
- **time to first action** after an observation: prepare p50 + the first step (tick) or the
  worker's take-over delay of 2 s ticks (worker);
- **one step per tick**: tick integration delivered >= 99 % of the ticks and its tick p99 stays
  under the period.
CPU steal (the hypervisor's share, /proc/stat) is sampled over each real-time run.

    sfp bench scale --json runs/bench/scale.json            (~3 min on 2 cores)
    sfp bench scale --quick --json /tmp/scale.json           (two small nets, 1 s runs)
    sfp bench scale --device cuda --json runs/bench/scale_gpu.json
    sfp bench scale --render runs/bench/scale.json --update-doc docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import CpuSteal, machine_info, percentiles_ms, print_rendered

RATE = 100.0  # Hz, the node's default control rate
SIZES = ("1m", "4m", "16m", "64m")
ENCODERS = ("small", "resnet18")
JOINTS = tuple(f"joint{i}" for i in range(1, 8))
ONE_STEP_TICKS = 0.99  # share of ticks tick integration must deliver to count as one step per tick


def _spec():
    from ..spec import CameraSpec, IOSpec

    return IOSpec(JOINTS, JOINTS, (CameraSpec("cam", 96, 96, 3),), 10.0, (-3.0,) * 7, (3.0,) * 7)


def make_checkpoint(directory: Path, size: str, encoder: str) -> Path:
    """An untrained checkpoint: velocity net ``size`` (nets/model.py VELOCITY_SIZES), image
    trunk ``encoder``, 84x84 crops of a 96x96 camera."""
    from ..checkpoint import make_untrained_checkpoint
    from ..nets.model import ModelConfig

    cfg = ModelConfig.from_dict({"size": size, "image_encoder": encoder, "crop_frac": 0.875})
    return make_untrained_checkpoint(directory / f"{encoder}_{size}.safetensors", _spec(), config=cfg)


class Feed:
    """Observations as a camera and joint stream at the data rate give them: a new frame every
    data period (so the encoder sees one new frame per observation), stamped on ``clock``."""

    def __init__(self, spec, obs_horizon: int, clock=time.monotonic, seed: int = 0) -> None:
        self.spec, self.t_o, self.clock = spec, obs_horizon, clock
        self.rng = np.random.default_rng(seed)
        self.frames: dict[int, np.ndarray] = {}

    def _frame(self, k: int) -> np.ndarray:
        if k not in self.frames:
            cam = self.spec.cameras[0]
            self.frames[k] = self.rng.integers(0, 255, (cam.height, cam.width, cam.channels), dtype=np.uint8)
            for old in [j for j in self.frames if j < k - 8]:
                del self.frames[old]
        return self.frames[k]

    def at(self, k: int):
        """The observation of data step ``k`` (stamp k / data rate)."""
        from ..policy.protocol import Observation

        ks = range(k - self.t_o + 1, k + 1)
        state = 0.1 * np.sin(np.arange(self.t_o)[:, None] + np.arange(self.spec.state_dim)[None] + k)
        images = {c.name: np.stack([self._frame(j) for j in ks]) for c in self.spec.cameras}
        return Observation(state, images, k / self.spec.data_rate_hz)

    def build(self, after: float | None):
        """The newest observation stamped after ``after`` (the PlanWorker's ``build``), or None."""
        k = math.floor(self.clock() * self.spec.data_rate_hz)
        if after is not None and k / self.spec.data_rate_hz <= after:
            return None
        return self.at(k)


def compute(path: Path, device: str, passes: int) -> dict[str, Any]:
    """Pass and prepare times of the runtime with tick integration (and the parameter counts)."""
    from ..policy.integration import measure_step_s
    from ..policy.protocol import RuntimeConfig
    from ..policy.streaming import load_policy

    policy = load_policy(path, RuntimeConfig(control_rate_hz=RATE, device=device))
    step = measure_step_s(policy, n=passes, budget_s=4.0)
    feed = Feed(policy.spec, policy.obs_horizon)
    policy.prepare(feed.at(0))
    prep = []
    for k in range(1, 11):
        t0 = time.perf_counter()
        policy.prepare(feed.at(k))
        prep.append(time.perf_counter() - t0)
    def count(m) -> int:
        return sum(p.numel() for p in m.parameters())

    return {"velocity_params": count(policy.model.velocity), "encoder_params": count(policy.model.encoder),
            "pass_ms": percentiles_ms(step), "prepare_ms": percentiles_ms(prep)}


def realtime(path: Path, integration: str, seconds: float, device: str) -> dict[str, Any]:
    """The ControlLoop at RATE on the real-time tick thread, plans from the plan worker thread."""
    from ..policy.control import ControlLoop, LoopConfig, TickInputs
    from ..policy.integration import WorkerIntegration
    from ..policy.protocol import RuntimeConfig
    from ..policy.safety import SafetyLimits
    from ..policy.streaming import load_policy
    from ..ros.plan_worker import PlanWorker  # plain threading, no rclpy
    from ..ros.ticker import TickThread  # plain threading, no rclpy

    policy = load_policy(path, RuntimeConfig(control_rate_hz=RATE, integration=integration, device=device))
    spec, d = policy.spec, policy.spec.action_dim
    limits = SafetyLimits.from_velocity([-3.0] * d, [3.0] * d, [3.0] * d, RATE)
    feed = Feed(spec, policy.obs_horizon)
    prepare_s: list[float] = []
    errors: list[str] = []
    plans = PlanWorker(feed.build, policy.prepare, lambda stamp: abs(time.monotonic() - stamp) <= 0.5,
                       lambda p: prepare_s.append(p.prepare_s), lambda e: errors.append(repr(e)), 0.005)
    loop = ControlLoop(policy, limits, LoopConfig(control_rate_hz=RATE), plans)
    zeros = np.zeros(d)
    inputs = TickInputs(zeros, zeros, 0.0, None, True)
    tick_s: list[float] = []
    obs_to_start: list[float] = []
    moving = [0]
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            now = time.monotonic()
            t0 = time.perf_counter()
            out = loop.tick(now, inputs)
            tick_s.append(time.perf_counter() - t0)
            moving[0] += not out.policy_held
            if out.started is not None:
                obs_to_start.append(now - out.started)

    ticker = TickThread(1.0 / RATE, tick)
    plans.start()
    steal = CpuSteal()
    t_start = time.monotonic()
    ticker.start()
    time.sleep(seconds)
    ticker.stop()
    elapsed = time.monotonic() - t_start
    share = steal.share()
    plans.stop()
    with lock:
        ticks = np.asarray(tick_s)
    out: dict[str, Any] = {
        "integration": integration, "seconds": elapsed, "ticks": int(ticks.size),
        "ticks_ratio": float(ticks.size / max(1, ticks.size + ticker.missed)), "missed": ticker.missed,
        "tick_ms": percentiles_ms(ticks), "overran": int((ticks > 1.0 / RATE).sum()),
        "obs_to_start_ms": percentiles_ms(obs_to_start), "prepare_ms": percentiles_ms(prepare_s),
        "prepare_errors": len(errors), "cpu_steal": share, "mode": "tick", "ticks_per_step": 1, "delay_ticks": 0,
        "flow_steps_per_s": moving[0] / elapsed,
    }
    if isinstance(policy, WorkerIntegration):
        st = policy.stats
        out.update(mode="worker", ticks_per_step=st.stride, delay_ticks=st.delay_ticks, stalls=st.stalls,
                   flow_steps_per_s=st.steps / elapsed, worker_step_ms=percentiles_ms(st.step_samples),
                   measured_step_ms=1e3 * st.measured_step_s)
        policy.close()
    return out


def one_row(directory: Path, size: str, encoder: str, seconds: float, device: str, passes: int) -> dict[str, Any]:
    path = make_checkpoint(directory, size, encoder)
    row: dict[str, Any] = {"size": size, "encoder": encoder, **compute(path, device, passes)}
    row["tick"] = realtime(path, "tick", seconds, device)
    row["auto"] = realtime(path, "auto", seconds, device)
    tick = row["tick"]
    row["one_step_per_tick"] = bool(tick["ticks_ratio"] >= ONE_STEP_TICKS and tick["tick_ms"]["p99"] < 1e3 / RATE)
    prep = row["prepare_ms"]["p50"]
    row["ttfa_tick_ms"] = prep + row["pass_ms"]["p50"]
    row["ttfa_auto_ms"] = prep + (row["auto"]["delay_ticks"] * 1e3 / RATE if row["auto"]["delay_ticks"]
                                  else row["pass_ms"]["p50"])
    path.unlink()
    return row


def through_node(directory: Path, size: str, encoder: str, seconds: float, device: str) -> dict[str, Any]:
    """The real node (ros/bench/node.py's live measurement) with integration tick, then auto."""
    from ..ros.bench.node import compare_methods

    path = str(make_checkpoint(directory, size, encoder))
    extra = {"reanchor": "horizon", "device": device}
    runs = compare_methods({m: (path, {**extra, "integration": m}) for m in ("tick", "auto")}, RATE, seconds)
    for name, m in runs.items():
        print(f"node {name}: ticks {100 * m['ticks_ratio']:.2f} %, period err p99 {m['period_err_p99_ms']:.2f} ms, "
              f"step p99 {m['step_p99_ms']:.2f} ms, obs->cmd p50 {m['obs_to_cmd_p50_ms']:.0f} ms", flush=True)
    return {"size": size, "encoder": encoder, "seconds": seconds, "runs": runs}


def largest_one_step(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["one_step_per_tick"]]
    return max(ok, key=lambda r: (r["velocity_params"], r["encoder_params"])) if ok else None


def render(doc: dict[str, Any]) -> str:
    head = ("| encoder | velocity net | params enc + vel (M) | pass p50 / p99 | prepare p50 | tick: ticks, "
            "p99, overran | auto: mode, ticks, p99, stalls | flow steps/s tick / auto | TTFA tick / auto | "
            "one step per tick |")
    title = (f"{doc['device']} ({doc['machine'].get('cpu', '?')}, {doc['machine'].get('cpu_count', '?')} cores), "
             f"control {RATE:g} Hz, {doc['seconds_per_run']:g} s per real-time run; times in ms")
    out = [title, "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in doc["rows"]:
        t, a = r["tick"], r["auto"]
        out.append(
            f"| {r['encoder']} | {r['size']} | {r['encoder_params'] / 1e6:.2f} + {r['velocity_params'] / 1e6:.1f} | "
            f"{r['pass_ms']['p50']:.2f} / {r['pass_ms']['p99']:.2f} | {r['prepare_ms']['p50']:.1f} | "
            f"{100 * t['ticks_ratio']:.1f} %, {t['tick_ms']['p99']:.2f}, {t['overran']} | "
            f"{'tick' if a['mode'] == 'tick' else 'worker ' + str(a['ticks_per_step'])}, "
            f"{100 * a['ticks_ratio']:.1f} %, {a['tick_ms']['p99']:.2f}, {a.get('stalls', 0)} | "
            f"{t['flow_steps_per_s']:.0f} / {a['flow_steps_per_s']:.0f} | "
            f"{r['ttfa_tick_ms']:.1f} / {r['ttfa_auto_ms']:.1f} | {'yes' if r['one_step_per_tick'] else 'no'} |")
    best = doc.get("largest_one_step_per_tick")
    steal = [x for r in doc["rows"] for x in (r["tick"]["cpu_steal"], r["auto"]["cpu_steal"])]
    verdict = (f"**{best['encoder']} encoder + {best['size']} velocity net** "
               f"({(best['encoder_params'] + best['velocity_params']) / 1e6:.1f} M parameters)." if best else "none.")
    steal_line = (f"CPU steal per real-time run: {100 * min(steal):.1f}-{100 * max(steal):.1f} %; load average "
                  f"at the start {doc['machine'].get('load_avg_1_5_15', '?')}. Command: `{doc['command']}`.")
    out += ["", "Largest network taking one flow step per tick at 100 Hz: " + verdict, steal_line]
    if doc.get("node"):
        n = doc["node"]
        out += ["", (f"Through the real node ({n['encoder']} encoder + {n['size']} velocity net; a 320x240 camera at "
                f"30 Hz and joint states at 100 Hz from another process over DDS, re-anchoring at the horizon, "
                f"{n['seconds']:g} s):"), "",
                "| integration | ticks | period err p99 | step p99 | obs -> cmd p50 / p99 | prepare p50 | CPU steal |",
                "|---|---|---|---|---|---|---|"]
        for name, m in n["runs"].items():
            out.append(f"| {name} | {100 * m['ticks_ratio']:.2f} % | {m['period_err_p99_ms']:.2f} | "
                       f"{m['step_p99_ms']:.2f} | {m['obs_to_cmd_p50_ms']:.0f} / {m['obs_to_cmd_p99_ms']:.0f} | "
                       f"{m['prepare_p50_ms']:.1f} | {100 * m['cpu_steal']:.1f} % |")
    return "\n".join(out)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, help="write results here")
    p.add_argument("--quick", action="store_true", help="the small encoder with the 1m and 16m nets, 1 s runs")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per real-time run")
    p.add_argument("--sizes", default=",".join(SIZES), help="velocity-net presets")
    p.add_argument("--encoders", default=",".join(ENCODERS), help="image trunks")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--node", action="store_true",
                   help="also run the largest network through the real node over DDS (integration tick vs auto)")
    p.add_argument("--render", type=Path, help="print the table of this JSON instead of measuring")
    p.add_argument("--update-doc", type=Path, help="with --render: replace the scale section of this markdown file")


def run(args: argparse.Namespace) -> int:
    if args.render:
        return print_rendered(args.render, render, "scale", args.update_doc)
    sizes = ["1m", "16m"] if args.quick else args.sizes.split(",")
    encoders = ["small"] if args.quick else args.encoders.split(",")
    seconds = 1.0 if args.quick else float(args.seconds)
    if not (seconds > 0):
        raise ValueError(f"--seconds must be > 0, got {seconds}")
    from ..nets.model import VELOCITY_SIZES

    bad = [s for s in sizes if s not in VELOCITY_SIZES] + [e for e in encoders if e not in ENCODERS]
    if bad:
        raise ValueError(f"unknown sizes / encoders {bad} (sizes {sorted(VELOCITY_SIZES)}, encoders {ENCODERS})")
    machine, steal, t0 = machine_info(), CpuSteal(), time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for encoder in encoders:
            for size in sizes:
                r = one_row(Path(d), size, encoder, seconds, args.device, 10 if args.quick else 60)
                rows.append(r)
                t, a = r["tick"], r["auto"]
                print(f"{encoder:8s} {size:4s}: pass p50 {r['pass_ms']['p50']:.2f} ms p99 {r['pass_ms']['p99']:.2f} ms, "
                      f"prepare {r['prepare_ms']['p50']:.1f} ms | tick: {100 * t['ticks_ratio']:.1f} % ticks, "
                      f"p99 {t['tick_ms']['p99']:.2f} ms | auto: {a['ticks_per_step']} ticks/step, "
                      f"{100 * a['ticks_ratio']:.1f} % ticks, p99 {a['tick_ms']['p99']:.2f} ms, "
                      f"{a.get('stalls', 0)} stalls, {a['flow_steps_per_s']:.0f} steps/s | steal "
                      f"{100 * t['cpu_steal']:.1f} / {100 * a['cpu_steal']:.1f} %", flush=True)
        node = through_node(Path(d), sizes[-1], encoders[-1], seconds, args.device) if args.node else None
    doc = {"machine": machine, "device": args.device, "rate_hz": RATE, "seconds_per_run": seconds, "rows": rows,
           "node": node,
           "largest_one_step_per_tick": largest_one_step(rows), "cpu_steal": steal.share(),
           "seconds": time.perf_counter() - t0,
           "command": "sfp bench scale" + (" --quick" if args.quick else
                                           f" --seconds {seconds:g} --sizes {','.join(sizes)} --encoders "
                                           f"{','.join(encoders)}") + (" --device cuda" if args.device == "cuda" else "")
           + (" --node" if args.node else "")}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
    print(render(doc))
    return 0
