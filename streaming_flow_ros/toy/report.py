"""The T1 toy table of docs/BENCHMARKS.md, drawn from the JSON of `sfp toy --json` (``run.run``).

Kept apart from ``run`` (training and sampling) so the table depends only on the JSON's shape. One
row per variant; each task reports its own metrics (``tasks.*_metrics``), the others' cells stay empty.
"""

from __future__ import annotations

from typing import Any

# (metric key in the JSON, column header, format): the columns after task, path and W1
METRICS: tuple[tuple[str, str, str], ...] = (
    ("mode_balance_error", "mode balance error", "{:.3f}"),
    ("averaged_fraction", "averaged samples", "{:.1%}"),
    ("splice_rate", "spliced samples", "{:.1%}"),
    ("success_rate", "success", "{:.1%}"),
    ("collision_rate", "collisions", "{:.1%}"),
    ("left_fraction", "passed left", "{:.1%}"),
)


def row_key(variant: dict[str, Any]) -> str:
    """The JSON key of a variant's metrics: the task for the stabilising path, task_path for
    another (``bifurcation_latent``), task_mode with a mode latent (``crossing_mode``)."""
    if variant.get("mode_dim"):
        return f"{variant['task']}_mode"
    return variant["task"] if variant["path"] == "stabilizing" else f"{variant['task']}_{variant['path']}"


def _path(variant: dict[str, Any]) -> str:
    """The path and its widths: the latent path's tube grows to sigma1, the stabilising one has none."""
    widths = f"σ0 {variant['sigma0']:g}, k {variant['k']:g}"
    if variant["path"] == "latent":
        return f"latent from a0 exactly ({widths}, σ1 {variant['sigma1']:g})"
    if variant.get("mode_dim"):
        prior = {"learned": "learned prior", "standard": "N(0, I) prior"}.get(variant.get("mode_prior", "learned"),
                                                                               variant.get("mode_prior"))
        return (f"stabilising + mode latent (dim {variant['mode_dim']}, β {variant['mode_beta']:g}, {prior}) "
                f"from a0 exactly ({widths})")
    return f"stabilising from N(a0, σ0²) ({widths})"


def _row(variant: dict[str, Any], m: dict[str, Any]) -> str:
    cells = [fmt.format(m[key]) if key in m else "" for key, _, fmt in METRICS]
    return f"| {variant['task']} | {_path(variant)} | {m['marginal_distance']:.3f} | " + " | ".join(cells) + " |"


def render(doc: dict[str, Any]) -> str:
    """Markdown: one row per trained variant, then the settings and the command that measured it."""
    s = doc["settings"]
    head = ["task", "path", "marginal W1"] + [h for _, h, _ in METRICS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += [_row(v, doc[row_key(v)]) for v in s["variants"]]
    total = f" in {doc['total_seconds']:g} s" if "total_seconds" in doc else ""
    out += ["", (f"Training seed {s['seed']}, {s['steps']:,} training steps and {s['samples']:,} sampled "
                 f"trajectories per toy{total} (CPU, 1 thread). Marginal W1: mean over waypoint times of the 1-D "
                 "Wasserstein distance between the samples and the demonstrations' tube. Command: "
                 f"`sfp toy --steps {s['steps']} --samples {s['samples']} --seed {s['seed']}`.")]
    return "\n".join(out)
