"""`sfp bench pusht summarize EVAL.json...`: per-seed ``eval --json`` files -> mean ± std tables.

When the seeds of a recipe were trained and evaluated one by one (``train`` + ``eval``, not one
``run``), this is the aggregation ``run`` would have done; a ``run`` workdir's ``eval/`` files
are the same kind of file. Files are grouped into cells by method, evaluation condition (delay,
latency compensation, control rate, re-anchoring, start noise, integrator) and episodes
(count, first evaluation seed, step limit); the files of one cell are that recipe's training
seeds. A cell that mixes training recipes (the ``train_summary.json`` beside each checkpoint
differs in anything but the seed) or holds the same checkpoint twice is refused. Checkpoint
paths in the files are read relative to the working directory, as ``eval`` wrote them.

JSON (``--json``)::

    {"<method>": {"score_mean", "score_std", "success_mean", "success_std",
                  "seeds": [{"seed", "score", "success", "max_coverage", "episodes", "checkpoint"}]},
                                                   # the plain condition: no delay, data rate
     "cells": [{"method", "condition": {...}, "label", "episodes", <the same aggregate>}],
     "delay_loss": {"<method>[ (latency comp.)]": {"<k>": [mean, std], "mean": [...], "per_seed": [...]}},
     "files": [...]}
"""

from __future__ import annotations

import json
from pathlib import Path

from ..common import format_table
from .evaluate import default_reanchor
from .run import STRESS_DELAYS, aggregate, stress_losses

CONDITION_KEYS = ("delay", "latency_comp", "control_mult", "reanchor_every", "start_sigma", "integrator")
RESULT_KEYS = ("score", "success", "max_coverage", "episodes", "method", "settings", "checkpoint")


def _load(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from e
    if not isinstance(doc, dict) or any(k not in doc for k in RESULT_KEYS):
        raise ValueError(f"{path}: not an `sfp bench pusht eval --json` result (needs {', '.join(RESULT_KEYS)})")
    return doc


def _recipe(checkpoint: str) -> tuple[int | None, str | None]:
    """(training seed, the training recipe as canonical JSON) from the train_summary.json that
    methods.train_slot writes beside a checkpoint: everything it records but the seed and the
    result, with the dataset by directory name; (None, None) when it is not there."""
    p = Path(checkpoint).parent / "train_summary.json"
    try:
        summary = json.loads(p.read_text())
    except (OSError, ValueError):
        return None, None
    recipe = {k: v for k, v in summary.items() if k not in ("seed", "result")}
    recipe["dataset"] = Path(str(recipe.get("dataset", ""))).name
    return summary.get("seed"), json.dumps(recipe, sort_keys=True)


def condition_of(doc: dict) -> dict:
    s = doc["settings"]
    cond = {k: s.get(k) for k in CONDITION_KEYS}
    if cond["reanchor_every"] is None:
        cond["reanchor_every"] = default_reanchor(doc["method"])
    return cond


def label_of(method: str, cond: dict) -> str:
    """"sfp", "sfp delay 2 (latency comp.)", "fm_chunk 5x rate", ..."""
    parts = [method]
    if cond["delay"]:
        parts.append(f"delay {cond['delay']}")
    if cond["control_mult"] != 1:
        parts.append(f"{cond['control_mult']}x rate")
    if cond["reanchor_every"] != default_reanchor(method):
        parts.append(f"re-anchor every {cond['reanchor_every']}")
    if cond["start_sigma"]:
        parts.append(f"start sigma {cond['start_sigma']:g}")
    if cond["integrator"] != "euler":
        parts.append(cond["integrator"])
    if cond["latency_comp"]:
        parts.append("(latency comp.)")
    return " ".join(parts)


def summarize(paths: list[Path]) -> dict:
    if not paths:
        raise ValueError("no evaluation files given")
    cells: dict[str, dict] = {}
    for path in paths:
        doc = _load(path)
        cond = condition_of(doc)
        episodes = (doc["episodes"], doc["settings"].get("seed0"), doc["settings"].get("max_steps"))
        key = json.dumps([doc["method"], cond, episodes], sort_keys=True)
        seed, recipe = _recipe(str(doc["checkpoint"]))
        c = cells.setdefault(key, {"method": doc["method"], "condition": cond, "runs": [], "recipes": set(),
                                   "episodes": episodes})
        ckpt = str(Path(str(doc["checkpoint"])).resolve())
        if any(r["checkpoint"] == ckpt for r in c["runs"]):
            raise ValueError(f"{path}: {ckpt} is already in the cell {label_of(doc['method'], cond)!r}")
        c["recipes"].add(recipe)
        c["runs"].append({"seed": seed, "score": float(doc["score"]), "success": float(doc["success"]),
                          "max_coverage": float(doc["max_coverage"]), "episodes": int(doc["episodes"]),
                          "checkpoint": ckpt, "file": str(path)})
    out: dict = {"cells": [], "delay_loss": {}, "files": [str(p) for p in paths]}
    for c in cells.values():
        label = label_of(c["method"], c["condition"])
        if len(c["recipes"]) > 1:
            raise ValueError(f"{label}: the checkpoints come from different training recipes "
                             "(their train_summary.json differ beyond the seed); summarize one recipe per method")
        runs = sorted(c["runs"], key=lambda r: (r["seed"] is None, r["seed"] if r["seed"] is not None else 0,
                                                r["checkpoint"]))
        ep, eval_seed0, max_steps = c["episodes"]
        out["cells"].append({"method": c["method"], "condition": c["condition"], "label": label, "episodes": ep,
                             "eval_seed0": eval_seed0, "max_steps": max_steps, **aggregate(runs)})
    out["cells"].sort(key=lambda c: (c["method"], c["condition"]["latency_comp"], c["condition"]["control_mult"],
                                     c["condition"]["delay"], c["label"], -c["episodes"]))
    for c in out["cells"]:  # the plain condition per method: most seeds, then most episodes
        cond = c["condition"]
        if _default_rollout(c) and cond["delay"] == 0 and not cond["latency_comp"]:
            best = out.get(c["method"])
            if best is None or (len(c["seeds"]), c["episodes"]) > (len(best["seeds"]), best["episodes"]):
                out[c["method"]] = {k: v for k, v in c.items() if k not in ("method", "condition", "label")}
    out["delay_loss"] = _delay_losses(out["cells"])
    return out


def _default_rollout(cell: dict) -> bool:
    """Data rate, the method's default re-anchoring, no start noise, Euler (delay and latency
    compensation aside)."""
    cond = cell["condition"]
    return (cond["control_mult"] == 1 and cond["reanchor_every"] == default_reanchor(cell["method"])
            and not cond["start_sigma"] and cond["integrator"] == "euler")


def _eval_key(cell: dict) -> tuple:
    return cell["episodes"], cell["eval_seed0"], cell["max_steps"]


def _delay_losses(cells: list[dict]) -> dict:
    """Score lost against delay 0 for each method (and with latency compensation), over the
    checkpoints evaluated at every delay of STRESS_DELAYS on the same episodes; delay 0 is the
    plain cell (latency compensation changes nothing without delay). With several episode
    settings that qualify, the one with the most checkpoints (then episodes) is used."""
    index = {(c["method"], _eval_key(c), c["condition"]["delay"], c["condition"]["latency_comp"]): c
             for c in cells if _default_rollout(c)}
    out = {}
    for method in sorted({c["method"] for c in cells}):
        for comp, suffix in ((False, ""), (True, " (latency comp.)")):
            rows = []
            for ep in {_eval_key(c) for c in cells if c["method"] == method}:
                row = {k: index.get((method, ep, k, comp and k > 0)) for k in STRESS_DELAYS}
                if None in row.values():
                    continue
                common = set.intersection(*({r["checkpoint"] for r in v["seeds"]} for v in row.values()))
                if common:
                    rows.append((len(common), ep[0], row, common))
            if not rows:
                continue
            n, _, row, common = max(rows, key=lambda t: t[:2])
            by_k = {str(k): {"per_seed": sorted((r for r in v["seeds"] if r["checkpoint"] in common),
                                                key=lambda r: r["checkpoint"])}
                    for k, v in row.items()}
            out[method + suffix] = {**stress_losses(by_k), "checkpoints": n}
    return out


def summary_table(doc: dict) -> str:
    rows = [[c["label"], f"{c['score_mean']:.3f} ± {c['score_std']:.3f}",
             " / ".join(f"{r['score']:.3f}" for r in c["seeds"]),
             f"{c['success_mean']:.2f} ± {c['success_std']:.2f}",
             " / ".join("?" if r["seed"] is None else str(r["seed"]) for r in c["seeds"]), c["episodes"]]
            for c in doc["cells"]]
    out = [format_table(["cell", "score", "per seed", "strict success", "training seeds", "episodes"], rows)]
    if doc["delay_loss"]:
        lrows = [[name, *(f"{lost[str(k)][0]:.3f}±{lost[str(k)][1]:.3f}" for k in STRESS_DELAYS if k > 0),
                  f"{lost['mean'][0]:.3f}±{lost['mean'][1]:.3f}", ", ".join(f"{v:.3f}" for v in lost["per_seed"]),
                  lost["checkpoints"]]
                 for name, lost in doc["delay_loss"].items()]
        out.append(format_table(["score lost vs delay 0 (mean±std over seeds)",
                                 *(f"delay {k}" for k in STRESS_DELAYS if k > 0), "mean", "mean per seed",
                                 "seeds"], lrows))
    return "\n\n".join(out)


def render(doc: dict) -> str:
    """Markdown of a summarize JSON: one row per cell (method and evaluation condition; delays in
    data periods of 0.1 s), score and strict success as mean ± std over the training seeds (one
    seed: its value), then the score lost against delay 0 where every stress delay was measured."""
    def mean_std(c: dict, key: str, fmt: str) -> str:
        return f"{c[key + '_mean']:{fmt}}" + (f" ± {c[key + '_std']:{fmt}}" if len(c["seeds"]) > 1 else "")

    out = ["| cell | training seeds | episodes | score (per seed) | strict success |", "|---|---|---|---|---|"]
    for c in doc["cells"]:
        seeds = " / ".join("?" if r["seed"] is None else str(r["seed"]) for r in c["seeds"])
        score = mean_std(c, "score", ".3f")
        if len(c["seeds"]) > 1:
            score += " (" + " / ".join(f"{r['score']:.3f}" for r in c["seeds"]) + ")"
        out.append(f"| {c['label']} | {seeds} | {c['episodes']} | {score} | {mean_std(c, 'success', '.2f')} |")
    if doc.get("delay_loss"):
        ks = [k for k in STRESS_DELAYS if k > 0]
        out += ["", "| score lost vs delay 0, mean ± std over seeds | " + " | ".join(f"delay {k}" for k in ks)
                + " | mean | mean per seed |", "|---|" + "---|" * (len(ks) + 2)]
        for name, lost in doc["delay_loss"].items():
            out.append(f"| {name} | " + " | ".join(f"{lost[str(k)][0]:.3f} ± {lost[str(k)][1]:.3f}" for k in ks)
                       + f" | {lost['mean'][0]:.3f} ± {lost['mean'][1]:.3f} | "
                       + ", ".join(f"{v:.3f}" for v in lost["per_seed"]) + " |")
    return "\n".join(out)
