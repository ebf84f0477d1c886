"""`sfp bench node`: the real policy node's control loop under a live camera stream.

Setup: the node runs in this process (``run_node_in_thread``, enabled, command_mode jtc) with a
real checkpoint (``--checkpoint``; default: the package's default policy if present, else an
untrained model of the default size for a 6-joint arm with one 96x96 camera). A *separate
process* plays the sensors over DDS on a private domain: ``image_raw`` (rgb8, 320x240 by
default) at 30 Hz and ``joint_states`` at ``--joint-rate``, each stamped with the system clock at
publish time. For each control rate (100 Hz, 500 Hz) the node waits for inputs, warms up for
1 s, then its telemetry is reset and recorded for ``--seconds``. ``--executor both`` also runs
the MultiThreadedExecutor (the JSON keeps the first executor's numbers).

Note: with 640x480 rgb8 frames (~0.9 MB) Fast DDS's default transports drop most frames on the
node's BEST_EFFORT (sensor QoS) subscription (only ~8 of 30 per second arrive here); the node
then re-anchors less often but ticks are unaffected.

Reported (definitions in ros/telemetry.py):
- ticks delivered / expected (= measured seconds x rate);
- tick period error p50/p99/max, ms (node clock);
- step compute p50/p99, ms (one tick: optional re-anchor, policy.step(), safety, publish);
- observation-to-command latency p50/p99, ms: image header stamp (publish time in the feeder)
  -> publish of the first command computed after ``policy.start()`` with the plan prepared from
  that image (node clock = system clock). It includes DDS transport, decode, waiting for a
  paired joint state, the encoder (``prepare``) and the wait for the next tick.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

from ...bench.common import command, machine_info, print_rendered

log = logging.getLogger(__name__)
JOINTS = tuple(f"joint_{i}" for i in range(1, 7))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per rate")
    parser.add_argument("--quick", action="store_true", help="3 s per rate (CI)")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0], help="control rates, Hz")
    parser.add_argument("--executor", choices=("events", "multi", "both"), default="events")
    parser.add_argument("--tick-source", choices=("auto", "thread", "timer", "both"), default="auto",
                        help="the node's tick_source (both: thread, then timer; JSON keeps thread)")
    parser.add_argument("--tick-priority", type=int, default=0,
                        help="the node's tick_priority (SCHED_FIFO priority of the control thread)")
    parser.add_argument("--checkpoint", type=Path, help="policy checkpoint (default: see module doc)")
    parser.add_argument("--joint-rate", type=float, default=100.0, help="joint_states rate, Hz")
    parser.add_argument("--image-size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--render", type=Path, metavar="JSON", help="print the markdown of a results JSON and exit")
    parser.add_argument("--update-doc", type=Path, help="with --render: write it into this document's section")


def _feeder(domain: int, joint_rate: float, size: tuple[int, int], stop, names: tuple[str, ...] = JOINTS) -> None:
    """Sensor process: image_raw at 30 Hz and joint_states (``names``) at ``joint_rate`` until ``stop``."""
    import rclpy
    from sensor_msgs.msg import Image, JointState

    from ...data.image_codec import encode_rgb8

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("sfp_bench_feeder", context=ctx)
    js_pub = node.create_publisher(JointState, "joint_states", 10)
    img_pub = node.create_publisher(Image, "image_raw", 10)
    w, h = size
    frames = [np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8) for i in range(4)]
    images = [Image(**encode_rgb8(f)) for f in frames]
    t_js = t_img = time.monotonic()
    k = 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= t_js:
            t_js += 1.0 / joint_rate
            msg = JointState(name=list(names), position=(0.1 * np.sin(now + np.arange(len(names)))).tolist())
            msg.header.stamp = node.get_clock().now().to_msg()
            js_pub.publish(msg)
        if now >= t_img:
            t_img += 1.0 / 30.0
            img = images[k % len(images)]
            k += 1
            img.header.stamp = node.get_clock().now().to_msg()
            img_pub.publish(img)
        time.sleep(max(0.0, min(t_js, t_img) - time.monotonic()))
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def _checkpoint(arg: Path | None, tmp: Path) -> str:
    from ..node import DEFAULT_CHECKPOINT

    if arg is not None:
        return str(arg)
    if DEFAULT_CHECKPOINT.is_file():
        return str(DEFAULT_CHECKPOINT)
    from ...checkpoint import make_untrained_checkpoint
    from ...nets.model import ModelConfig
    from ...spec import CameraSpec, IOSpec

    spec = IOSpec(JOINTS, JOINTS, (CameraSpec("cam", 96, 96, 3),), 10.0, (-3.0,) * 6, (3.0,) * 6)
    return str(make_untrained_checkpoint(tmp / "bench.safetensors", spec, config=ModelConfig()))


def _state_names(checkpoint: str) -> tuple[str, ...]:
    """The joints the checkpoint reads (the feeder publishes exactly these)."""
    from ...checkpoint import read_checkpoint

    spec = read_checkpoint(checkpoint).spec
    return tuple(dict.fromkeys((*spec.state_names, *spec.action_names)))


WINDOW_S = 0.5  # steal-free analysis: window length, s


def _sample_windows(node, seconds: float) -> list[tuple[float, int, int, int | None]]:
    """Sleep ``seconds`` while recording, every WINDOW_S, (node time, ticks, period-error sample
    count, cumulative CPU steal jiffies)."""
    from ...bench.common import CpuSteal

    marks = []
    end = time.monotonic() + seconds
    while True:
        tel = node.telemetry
        marks.append((node.now_s(), tel.ticks, len(tel.period_err), CpuSteal.jiffies()))
        left = end - time.monotonic()
        if left <= 0:
            return marks
        time.sleep(min(WINDOW_S, left))


def _steal_free(marks, period_err: list[float], rate: float) -> dict[str, float]:
    """Tick ratio and period error over the windows in which the hypervisor stole no CPU time
    (steal jiffies unchanged): what the node does when it has the cores it was given. On a
    shared VM, steal comes in bursts of tens of ms that cost whole runs of ticks."""
    from ..telemetry import p50_p99_max

    ticks = expected = 0.0
    samples: list[float] = []
    seconds = 0.0
    for (t0, k0, n0, s0), (t1, k1, n1, s1) in itertools.pairwise(marks):
        if s0 is None or s1 is None or s1 != s0:
            continue
        ticks += k1 - k0
        expected += (t1 - t0) * rate
        samples.extend(period_err[n0:n1])
        seconds += t1 - t0
    pe = p50_p99_max(samples)
    return {
        "steal_free_seconds": seconds,
        "steal_free_ticks_ratio": ticks / expected if expected > 0 else float("nan"),
        "steal_free_period_err_p99_ms": pe[1],
    }


def measure(ctx, checkpoint: str, rate: float, seconds: float, executor: str,
            extra_params: dict | None = None, require_plan: bool = True) -> dict[str, float]:
    """Run the node at ``rate`` Hz for 1 s warm-up + ``seconds``; return the key numbers.
    ``extra_params`` are further node parameters (e.g. sampler, reanchor for chunk baselines)."""
    from ...bench.common import CpuSteal
    from ..runner import run_node_in_thread
    from ..telemetry import p50_p99_max

    # reanchor: observation: obs->command latency is measured at every re-anchor (the reaction path)
    params = {"checkpoint": checkpoint, "control_rate_hz": rate, "enabled": True, "reanchor": "observation",
              "max_velocity": [3.0], "log_period": 0.0, "max_obs_age": 1.0, **(extra_params or {})}
    with run_node_in_thread(ctx, params, executor=executor, telemetry_window=None) as runner:
        node = runner.node
        source = node.tick_source
        deadline = time.monotonic() + 30.0  # the feeder process may still be starting
        while (node.status_reason or node.telemetry.reanchors == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        if node.telemetry.reanchors == 0 and require_plan:
            raise RuntimeError(f"the node never received inputs: {node.status_reason}")
        time.sleep(1.0)
        node.reset_telemetry(window=None)
        steal = CpuSteal()
        marks = _sample_windows(node, seconds)
        steal_share = steal.share()
        tel = node.telemetry
        elapsed = node.now_s() - tel.started_at
        ticks = tel.ticks
    period_err = tel.snapshot("period_err")
    clean = _steal_free(marks, period_err, rate)
    pe = p50_p99_max(period_err)
    st = p50_p99_max(tel.snapshot("step"))
    ol = p50_p99_max(tel.snapshot("obs_to_cmd"))
    pr = p50_p99_max(tel.snapshot("prepare"))
    ps = p50_p99_max(tel.snapshot("policy_step"))
    return {
        "executor": executor,
        "tick_source": source,
        "ticks": ticks,
        "ticks_expected": round(elapsed * rate, 1),
        "ticks_ratio": ticks / max(1.0, elapsed * rate),
        "period_err_p50_ms": pe[0],
        "period_err_p99_ms": pe[1],
        "period_err_max_ms": pe[2],
        "step_p50_ms": st[0],
        "step_p99_ms": st[1],
        "policy_step_p50_ms": ps[0],
        "policy_step_p99_ms": ps[1],
        "obs_to_cmd_p50_ms": ol[0],
        "obs_to_cmd_p99_ms": ol[1],
        "prepare_p50_ms": pr[0],
        "reanchors": tel.reanchors,
        "ticks_stale": tel.ticks_stale,
        "cpu_steal": steal_share,
        **clean,
    }


@contextlib.contextmanager
def live_inputs(names: tuple[str, ...], joint_rate: float, image_size: tuple[int, int]):
    """A private DDS domain with a sensor feeder process (``names`` joint states + camera);
    yields an initialised rclpy context on that domain, cleans everything up on exit."""
    import rclpy
    from domain_coordinator import domain_id

    with domain_id() as did:
        stop = mp.get_context("spawn").Event()
        feeder = mp.get_context("spawn").Process(
            target=_feeder, args=(did, joint_rate, tuple(image_size), stop, tuple(names)), daemon=True)
        feeder.start()
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=did)
        try:
            yield ctx
        finally:
            rclpy.try_shutdown(context=ctx)
            stop.set()
            feeder.join(5.0)
            if feeder.is_alive():
                feeder.terminate()


def compare_methods(methods: dict[str, tuple[str, dict]], rate: float = 100.0, seconds: float = 10.0,
                    joint_rate: float = 100.0, image_size: tuple[int, int] = (320, 240)) -> dict[str, dict]:
    """The same live measurement for several policies, one after the other, with one sensor
    feeder: ``methods`` maps a name to (checkpoint, extra node parameters); the feeder publishes
    the first checkpoint's joints (all methods must share them)."""
    out: dict[str, dict] = {}
    names = _state_names(next(iter(methods.values()))[0])
    with live_inputs(names, joint_rate, image_size) as ctx:
        for name, (ckpt, extra) in methods.items():
            # a slow chunk sampler may finish no plan in the wait: record that, don't fail
            out[name] = measure(ctx, ckpt, rate, seconds, "events", extra, require_plan=False)
            log.info("%s: %s", name, _line(rate, out[name]))
    return out


def _line(rate: float, r: dict) -> str:
    return (
        f"{rate:6.0f} Hz [{r['executor']}/{r['tick_source']}] ticks {r['ticks']}/{r['ticks_expected']:.0f} "
        f"({100 * r['ticks_ratio']:.2f} %)  period err p50/p99/max "
        f"{r['period_err_p50_ms']:.3f}/{r['period_err_p99_ms']:.3f}/{r['period_err_max_ms']:.2f} ms  "
        f"step p50/p99 {r['step_p50_ms']:.3f}/{r['step_p99_ms']:.3f} ms (policy.step p50 "
        f"{r['policy_step_p50_ms']:.3f})  obs->cmd p50/p99 "
        f"{r['obs_to_cmd_p50_ms']:.1f}/{r['obs_to_cmd_p99_ms']:.1f} ms  (prepare p50 "
        f"{r['prepare_p50_ms']:.1f} ms, {r['reanchors']} re-anchors, {r['ticks_stale']} stale ticks; "
        f"CPU steal {100 * r['cpu_steal']:.1f} %)\n"
        f"{'':17s}steal-free windows ({r['steal_free_seconds']:.1f} s): ticks "
        f"{100 * r['steal_free_ticks_ratio']:.2f} %, period err p99 {r['steal_free_period_err_p99_ms']:.3f} ms"
    )


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a measurement (the options that shape it; not --json)."""
    opts = [("--quick", args.quick), ("--seconds", None if args.quick else f"{args.seconds:g}"),
            ("--rates", " ".join(f"{r:g}" for r in args.rates)), ("--executor", args.executor),
            ("--tick-source", args.tick_source), ("--tick-priority", args.tick_priority or None),
            ("--checkpoint", args.checkpoint), ("--joint-rate", f"{args.joint_rate:g}"),
            ("--image-size", " ".join(map(str, args.image_size)))]
    return command("sfp bench node", opts)


def render(doc: dict) -> str:
    """Markdown for docs/BENCHMARKS.md: one row per (tick source, executor, rate) run, the
    steal-free columns beside the whole-run ones, then the run's setting, steal and command."""
    head = ("| tick source | executor | rate | ticks | period err p50 / p99 / max (ms) | steal-free: s, ticks, "
            "p99 (ms) | step p99 (ms) | obs → cmd p50 / p99 (ms) | CPU steal |")
    out = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        out.append(
            f"| {r['tick_source']} | {r['executor']} | {r['rate']:g} Hz | {100 * r['ticks_ratio']:.2f} % | "
            f"{r['period_err_p50_ms']:.2f} / {r['period_err_p99_ms']:.2f} / {r['period_err_max_ms']:.1f} | "
            f"{r['steal_free_seconds']:.1f}, {100 * r['steal_free_ticks_ratio']:.2f} %, "
            f"{r['steal_free_period_err_p99_ms']:.2f} | {r['step_p99_ms']:.2f} | "
            f"{r['obs_to_cmd_p50_ms']:.1f} / {r['obs_to_cmd_p99_ms']:.1f} | {100 * r['cpu_steal']:.1f} % |")
    m = doc["machine"]
    w, h = doc["image_size"]
    out += ["", (f"Checkpoint `{doc['checkpoint']}`; a {w}x{h} rgb8 camera at 30 Hz and joint states at "
                 f"{doc['joint_rate']:g} Hz from another process over DDS; {doc['seconds']:g} s measured per run "
                 f"after 1 s of warm-up. {m['cpu_count']} cores, load average at the start "
                 f"{m.get('load_avg_1_5_15', '?')}. Command: `{doc['command']}`.")]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.render:
        return print_rendered(args.render, render, "node", args.update_doc)
    seconds = 3.0 if args.quick else float(args.seconds)
    if not (seconds > 0):
        raise ValueError(f"--seconds must be > 0, got {seconds}")
    executors = ("events", "multi") if args.executor == "both" else (args.executor,)
    sources = ("thread", "timer") if args.tick_source == "both" else (args.tick_source,)
    runs = [(ex, src) for ex in executors for src in sources]
    doc: dict = {"machine": machine_info(), "seconds": seconds, "joint_rate": args.joint_rate,
                 "image_size": list(args.image_size), "command": command_line(args), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = _checkpoint(args.checkpoint, Path(tmp))
        doc["checkpoint"] = Path(checkpoint).name if args.checkpoint is None else str(args.checkpoint)
        with live_inputs(_state_names(checkpoint), args.joint_rate, tuple(args.image_size)) as ctx:
            print(f"checkpoint {checkpoint}; camera {args.image_size[0]}x{args.image_size[1]} @ 30 Hz, "
                  f"joint_states @ {args.joint_rate:g} Hz, {seconds:g} s per rate")
            for ex, src in runs:
                for rate in args.rates:
                    extra = {"tick_source": src, "tick_priority": args.tick_priority}
                    r = measure(ctx, checkpoint, float(rate), seconds, ex, extra)
                    print(_line(rate, r), flush=True)
                    doc["runs"].append({"rate": float(rate), **r})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"wrote {args.json}")
    return 0
