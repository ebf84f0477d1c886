"""Console and PNG output shared by `sfp demo` and `sfp eval sim`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..ros.closed_loop import EpisodeResult


def outcome(r: EpisodeResult) -> str:
    if r.collision:
        return "COLLISION"
    if r.success:
        return f"success in {r.time_to_success:.1f} s"
    return "timeout"


def summary_lines(s: dict[str, Any]) -> list[str]:
    node = s["node"]
    return [
        (f"success        {s['success_rate'] * 100:5.1f} %  ({round(s['success_rate'] * s['episodes'])}/{s['episodes']} "
         f"reached the target without touching the obstacle; collisions {s['collision_rate'] * 100:.1f} %)"),
        (f"ticks          {s['ticks_ratio'] * 100:6.2f} % delivered ({node['ticks']} of {node['ticks_expected']:.0f}), "
         f"period error p50 {node['period_err_p50_ms']:.2f} ms  p99 {node['period_err_p99_ms']:.2f} ms"),
        (f"step compute   p50 {node['step_p50_ms']:.3f} ms  p99 {node['step_p99_ms']:.3f} ms   "
         f"(encode p50 {node['prepare_p50_ms']:.2f} ms)"),
        f"obs -> command p50 {node['obs_to_cmd_p50_ms']:.2f} ms  p99 {node['obs_to_cmd_p99_ms']:.2f} ms",
        f"jerk (rms)     {s['jerk_rms_mean']:.1f} rad/s^3",
    ]


def plot(results: list[EpisodeResult], latencies: dict[str, list[float]], path: str | Path, max_panels: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = results[:max_panels]
    cols = len(shown) + 1
    fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, 3.4))
    for ax, r in zip(axes, shown):
        ax.add_patch(plt.Circle(r.obstacle, r.obstacle_radius, color="tab:red", alpha=0.5))
        ax.add_patch(plt.Circle(r.target, 0.06, color="tab:green", alpha=0.3))
        if len(r.ee_path):
            ax.plot(r.ee_path[:, 0], r.ee_path[:, 1], color="tab:blue" if r.clean_success else "black", lw=1.5)
            ax.plot(*r.ee_path[0], "ko", ms=3)
        ax.plot(0, 0, "ks", ms=5)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-0.3, 1.1)
        ax.set_aspect("equal")
        ax.set_title(f"ep {r.episode}: {outcome(r)}", fontsize=8)
        ax.tick_params(labelsize=6)
    ax = axes[-1]
    for name, vals in latencies.items():
        if len(vals):
            ax.hist(vals, bins=40, alpha=0.6, label=f"{name} (p50 {np.percentile(vals, 50):.2f} ms)")
    ax.set_xlabel("ms", fontsize=8)
    ax.set_title("latency", fontsize=8)
    ax.legend(fontsize=6)
    ax.tick_params(labelsize=6)
    fig.suptitle("streamed end-effector paths (blue: success) over the scenes; node latency", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
