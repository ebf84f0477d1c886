"""`sfp soak`: a long run of the real policy node on the simulated arm, watched by the invariant
checker, reporting what drifts over time.

Setup (one process plus the checker's, private namespace ``/sfp_soak`` so nothing reaches a real
arm's topics):
the simulator nodes (arm with joint_trajectory_controller semantics at ``--joint-rate``, camera
96x96 at ``--camera-rate``, task with episodes that auto-reset at the time limit) and the policy
node at ``--rate`` Hz, enabled, command_mode jtc, remapped onto the sim like the demo. The
checkpoint is ``--checkpoint``, else the package default policy if installed, else a real
untrained SFP checkpoint for the sim spec (``sim.rollout.sim_io_spec()``). An
:class:`~streaming_flow_ros.ros.bench.invariants.InvariantChecker` in a spawned child process
(``CheckerProcess``: it takes no GIL or executor time from the node; the RSS reported is this
process's, without the checker) subscribes to the node's outputs (action points and JTC
commands) with the stale-input rule on.

Reported per ``--window`` seconds (default 10) and overall:

- ticks delivered / expected (node clock x rate), over the measured span;
- tick period error p50/p99/max, ms (ros/telemetry.py definition), per window and overall;
- RSS (VmRSS of this process, MB) at the end of each window; growth = last window - first;
- invariant violations (must be 0), commands checked, holds, episodes, node error counters;
- CPU steal (share of CPU time the hypervisor gave elsewhere), per window and overall: on a
  shared VM, windows with more than a few percent of steal measure the host, not the node.

JSON (``--json``): {"seconds", "ticks_ratio", "period_err_p99_ms", "rss_growth_mb",
"violations"} plus "windows", "checker", "node", "machine" and the settings. Exit status 1 when
any invariant was violated, or when the checker saw fewer controller commands than half the ticks
(a soak that checked nothing proves nothing).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...bench.common import CpuSteal

log = logging.getLogger(__name__)
NAMESPACE = "/sfp_soak"
HIST_BIN_MS = 0.01  # period-error histogram resolution
HIST_MAX_MS = 200.0  # larger errors land in the last bin


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="measured duration, s")
    parser.add_argument("--rate", type=float, default=200.0, help="control rate, Hz")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--checkpoint", type=Path, help="policy checkpoint (default: see module doc)")
    parser.add_argument("--window", type=float, default=10.0, help="report window, s")
    parser.add_argument("--joint-rate", type=float, default=200.0, help="sim joint_states rate, Hz")
    parser.add_argument("--camera-rate", type=float, default=30.0, help="sim camera rate, Hz")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed")


def rss_mb() -> float:
    """Resident set size of this process (VmRSS), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _checkpoint(arg: Path | None, tmp: Path) -> str:
    from ..node import DEFAULT_CHECKPOINT

    if arg is not None:
        return str(arg)
    if DEFAULT_CHECKPOINT.is_file():
        return str(DEFAULT_CHECKPOINT)
    from ...checkpoint import make_untrained_checkpoint
    from ...sim.rollout import sim_io_spec

    return str(make_untrained_checkpoint(tmp / "untrained_sim.safetensors", sim_io_spec()))


class _Histogram:
    """Fixed-size histogram of millisecond samples (constant memory over any run length)."""

    def __init__(self) -> None:
        self.counts = np.zeros(int(HIST_MAX_MS / HIST_BIN_MS) + 1, np.int64)
        self.max_ms = 0.0

    def add(self, samples_ms: np.ndarray) -> None:
        if samples_ms.size:
            idx = np.minimum((samples_ms / HIST_BIN_MS).astype(np.int64), self.counts.size - 1)
            np.add.at(self.counts, idx, 1)
            self.max_ms = max(self.max_ms, float(samples_ms.max()))

    def percentile(self, q: float) -> float:
        n = int(self.counts.sum())
        if n == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(self.counts), q / 100.0 * n))
        return (k + 1) * HIST_BIN_MS  # upper edge of the bin


def soak(seconds: float, rate: float = 200.0, checkpoint: Path | None = None, window_s: float = 10.0,
         joint_rate: float = 200.0, camera_rate: float = 30.0, seed: int = 0,
         domain_id: int | None = None, on_window=None) -> dict[str, Any]:
    """Run the soak and return the results dict (see the module docstring). ``on_window(row)``
    is called after each window (printing); ``domain_id`` None = ROS_DOMAIN_ID / default."""
    import rclpy

    from ...bench.common import machine_info
    from ...presets import load_preset
    from ..closed_loop import REMAPS
    from ..runner import make_executor, run_node_in_thread, spin
    from ..sim_nodes import SimWorld, create_sim_nodes
    from .invariants import CheckerProcess, Contract

    if not (seconds > 0 and window_s > 0):
        raise ValueError(f"seconds and window must be > 0, got {seconds}, {window_s}")
    machine_start = machine_info()
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id) if domain_id is not None else rclpy.init(context=ctx)
    threads: list[threading.Thread] = []
    stop = threading.Event()
    executors = []
    sim = checker = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = _checkpoint(checkpoint, Path(tmp))
            world = SimWorld(seed=seed)
            sim = create_sim_nodes(world, context=ctx, namespace=NAMESPACE, joint_state_rate_hz=joint_rate,
                                   camera_rate_hz=camera_rate, auto_reset=True)
            sim_exec = make_executor("events", ctx)
            for n in sim.all():
                sim_exec.add_node(n)
            executors.append(sim_exec)
            threads.append(threading.Thread(target=spin, args=(sim_exec, ctx, stop), name="sfp-soak-sim", daemon=True))
            threads[-1].start()
            deadline = time.monotonic() + 10.0
            while world.time < 0.2:
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start within 10 s")
                time.sleep(0.01)
            preset = load_preset("sim")
            params = {**preset, "checkpoint": ckpt, "control_rate_hz": float(rate), "enabled": True,
                      "log_period": 0.0, "diagnostics_period": 1.0}
            runner = run_node_in_thread(ctx, params, namespace=NAMESPACE, cli_args=REMAPS,
                                        telemetry_window=max(4096, int(2 * rate * window_s)))
            node = runner.node
            checker = CheckerProcess(  # its own process: no GIL or executor time taken from the node
                Contract.from_node(node), domain_id=domain_id, namespace=NAMESPACE, node_name="sfp_soak_invariants",
                policy_node=node.get_fully_qualified_name(),
                joint_trajectory_topic="joint_trajectory_controller/joint_trajectory",
                joint_states_topic="joint_states", image_topics=["camera/image_raw"],
                enabled=True, active=True, max_obs_age=float(preset.get("max_obs_age", 0.5)))
            result = _measure(node, world, checker, seconds, rate, window_s, on_window)
            runner.stop()  # deactivate: the single hold, then the node is destroyed
            checker.finish()  # waits until the last messages arrived
            result["checker"] = checker.summary()
            result["violations"] = result["checker"]["violations"]
            result["checkpoint"] = Path(ckpt).name if checkpoint is None else str(checkpoint)
            result["tick_source"] = node.tick_source
    finally:
        if checker is not None:
            checker.close()
        stop.set()
        for t in threads:
            t.join(5.0)
        for ex in executors:
            ex.shutdown()
        if sim is not None:
            sim.destroy()
        rclpy.try_shutdown(context=ctx)
    result["machine"] = {"start": machine_start, "end": machine_info()}
    return result


def _measure(node, world, checker, seconds: float, rate: float, window_s: float, on_window) -> dict[str, Any]:
    tel = node.telemetry
    deadline = time.monotonic() + 10.0
    while tel.reanchors == 0:  # streaming: inputs arrived and the first plan started
        if time.monotonic() > deadline:
            raise RuntimeError(f"the policy node did not start streaming: {node.status_reason}")
        time.sleep(0.05)
    seen_by = time.monotonic() + 30.0
    while checker.counts()[1] == 0:  # the checker process has discovered the node and sees commands
        if time.monotonic() > seen_by:
            raise RuntimeError("the invariant checker saw no controller command within 30 s of streaming")
        time.sleep(0.05)
    hist = _Histogram()
    windows: list[dict[str, Any]] = []
    t_start, ticks_start, node_start = time.monotonic(), tel.ticks, node.now_s()
    steal_all = window_steal = CpuSteal()  # hypervisor steal: how far the timing numbers hold
    ticks_prev, node_prev = ticks_start, node_start
    checked_prev = sum(checker.counts())
    n_windows = max(1, round(seconds / window_s))
    for k in range(n_windows):
        end = t_start + min(seconds, (k + 1) * window_s)
        while time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))
        ticks, now = tel.ticks, node.now_s()
        new = ticks - ticks_prev
        samples = np.asarray(tel.snapshot("period_err")[-new:] if new > 0 else [], np.float64) * 1e3
        hist.add(samples)
        checked = sum(checker.counts())
        s = checker.summary()
        row = {
            "t_s": round(time.monotonic() - t_start, 1),
            "ticks": new,
            "ticks_ratio": round(new / max(1e-9, (now - node_prev) * rate), 4),
            "period_err_p50_ms": float(np.percentile(samples, 50)) if samples.size else float("nan"),
            "period_err_p99_ms": float(np.percentile(samples, 99)) if samples.size else float("nan"),
            "period_err_max_ms": float(samples.max()) if samples.size else float("nan"),
            "rss_mb": round(rss_mb(), 2),
            "checked": checked - checked_prev,
            "violations": s["violations"],
            "episode": world.episode,
            "cpu_steal": round(window_steal.share(), 4),
        }
        window_steal = CpuSteal()
        windows.append(row)
        if on_window is not None:
            on_window(row)
        ticks_prev, node_prev, checked_prev = ticks, now, checked
    elapsed_node = node_prev - node_start
    summary = tel.summary(node.now_s(), rate)
    return {
        "seconds": round(time.monotonic() - t_start, 2),
        "rate_hz": rate,
        "ticks": ticks_prev - ticks_start,
        "ticks_expected": round(elapsed_node * rate, 1),
        "ticks_ratio": round((ticks_prev - ticks_start) / max(1e-9, elapsed_node * rate), 4),
        "period_err_p50_ms": round(hist.percentile(50), 3),
        "period_err_p99_ms": round(hist.percentile(99), 3),
        "period_err_max_ms": round(hist.max_ms, 3),
        "rss_first_mb": windows[0]["rss_mb"],
        "rss_last_mb": windows[-1]["rss_mb"],
        "rss_growth_mb": round(windows[-1]["rss_mb"] - windows[0]["rss_mb"], 2),
        "episodes": world.episode + 1,
        "cpu_steal": round(steal_all.share(), 4),
        "windows": windows,
        "node": {k: summary[k] for k in ("reanchors", "ticks_stale", "ticks_held", "clamped", "rate_limited",
                                          "rejected", "tick_errors", "prepare_errors", "plans_dropped",
                                          "input_errors", "step_p99_ms", "obs_to_cmd_p50_ms")},
    }


def _print_row(row: dict[str, Any]) -> None:
    print(f"t={row['t_s']:7.1f}s ticks={row['ticks']:6d} ratio={row['ticks_ratio']:.3f} "
          f"period_err p50={row['period_err_p50_ms']:.3f} p99={row['period_err_p99_ms']:.3f} "
          f"max={row['period_err_max_ms']:.2f} ms rss={row['rss_mb']:.1f} MB "
          f"checked={row['checked']} violations={row['violations']} episode={row['episode']} "
          f"steal={100 * row['cpu_steal']:.1f}%", flush=True)


def render(doc: dict[str, Any]) -> str:
    """Markdown for docs/RELIABILITY.md: one soak's totals and its worst window, what the node
    and the checker counted, the machine's steal and load, and the command."""
    w = doc["windows"]
    worst = min(w, key=lambda r: r["ticks_ratio"])
    n, c = doc["node"], doc["checker"]
    errors = sum(n[k] for k in ("tick_errors", "prepare_errors", "input_errors"))
    steal = [r["cpu_steal"] for r in w]
    window = w[1]["t_s"] - w[0]["t_s"] if len(w) > 1 else doc["seconds"]
    ticks = (f"{doc['ticks']:,} / {doc['ticks_expected']:,.0f} ({doc['ticks_ratio']:.3f}); worst {window:g} s "
             f"window {worst['ticks_ratio']:.3f} (steal {100 * worst['cpu_steal']:.1f} % in it)")
    node = (f"{n['reanchors']:,} re-anchors, {errors} tick / prepare / input errors, {n['plans_dropped']} plans "
            f"dropped, {n['ticks_stale']} stale ticks, step p99 {n['step_p99_ms']:.1f} ms, obs → cmd p50 "
            f"{n['obs_to_cmd_p50_ms']:.0f} ms")
    rows = [
        ("ticks", ticks),
        ("period error", (f"p50 {doc['period_err_p50_ms']:.2f} ms, p99 {doc['period_err_p99_ms']:.2f} ms, "
                          f"max {doc['period_err_max_ms']:.0f} ms")),
        ("RSS", f"{doc['rss_first_mb']:.1f} → {doc['rss_last_mb']:.1f} MB ({doc['rss_growth_mb']:+.1f} MB)"),
        ("node", node),
        ("checker", (f"{c['action_msgs']:,} action points + {c['controller_msgs']:,} JTC commands, "
                     f"**{doc['violations']} violations**")),
        ("episodes", f"{doc['episodes']} (reset at the time limit)"),
        ("CPU steal", f"{100 * doc['cpu_steal']:.1f} % overall, windows {100 * min(steal):.1f}-{100 * max(steal):.1f} %"),
    ]
    m = doc["machine"]["start"]
    out = [f"| {doc['seconds']:.0f} s at {doc['rate_hz']:g} Hz, tick source `{doc.get('tick_source', '?')}` | |",
           "|---|---|", *(f"| {k} | {v} |" for k, v in rows),
           "", (f"Checkpoint `{doc['checkpoint']}`; {m['cpu_count']} cores, load average at the start "
                f"{m.get('load_avg_1_5_15', '?')}. Command: `sfp soak --seconds {doc['seconds']:.0f} "
                f"--rate {doc['rate_hz']:g}`.")]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("streaming_flow_ros").setLevel(logging.WARNING)
    print(f"soak: {args.seconds:g} s at {args.rate:g} Hz on the simulator (namespace {NAMESPACE})", flush=True)
    res = soak(args.seconds, args.rate, args.checkpoint, args.window, args.joint_rate, args.camera_rate,
               args.seed, on_window=_print_row)
    print(f"ticks {res['ticks']}/{res['ticks_expected']:.0f} (ratio {res['ticks_ratio']:.4f}); period error "
          f"p50 {res['period_err_p50_ms']:.3f} p99 {res['period_err_p99_ms']:.3f} max {res['period_err_max_ms']:.2f} ms; "
          f"RSS {res['rss_first_mb']:.1f} -> {res['rss_last_mb']:.1f} MB ({res['rss_growth_mb']:+.2f}); "
          f"episodes {res['episodes']}; commands checked {res['checker']['action_msgs']} action + "
          f"{res['checker']['controller_msgs']} controller; violations {res['violations']}; "
          f"CPU steal {100 * res['cpu_steal']:.1f} %")
    if res["violations"]:
        print(f"violations: {res['checker']['rules']} first: {res['checker']['first']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2, default=float))
        print(f"wrote {args.json}")
    unchecked = res["checker"]["controller_msgs"] < 0.5 * res["ticks"]
    if unchecked:
        print(f"the checker saw {res['checker']['controller_msgs']} controller commands for {res['ticks']} ticks: "
              "the stream was not checked", flush=True)
    return 1 if res["violations"] or unchecked else 0
