"""`sfp bench compare A.json B.json`: what changed between two runs of the same benchmark.

Every benchmark writes JSON (`sfp bench latency | node | step | sim | pusht run`); this command
lines two of them up (say the same command at two commits) and prints, per metric, A, B, the
difference and the ratio B / A, after a list of the settings that differ (a changed setting
usually explains a changed number). It works on the documents' structure, not on one schema:

- by default only the headline metrics (``KEY_METRICS``: TTFA, step and period percentiles,
  ticks delivered, observation-to-command latency, scores and success rates, ...), at any depth;
  ``--all`` shows every numeric value, per-seed lists included;
- ``--match GLOB`` (repeatable) keeps the dotted paths matching any of the patterns, e.g.
  ``--match 'methods.*.ttfa*'``;
- ``--min-change R`` hides the rows whose relative change is below R (0.1 = 10 %).

``settings`` are listed when they differ, and their numbers compared only with ``--all``;
``machine``, ``versions`` and ``notes`` are not compared (the machine is printed when it differs).
Runs of different benchmarks share no metric paths, which is reported as an error.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
from pathlib import Path
from typing import Any

from .common import format_table

KEY_METRICS = frozenset({
    # bench latency / step
    "ttfa_ms_p50", "ttfa_ms_p99", "step_ms_p50", "step_ms_p99", "ms_per_action", "prepare_ms_p50",
    # bench node / the node part of latency
    "ticks_ratio", "period_err_p99_ms", "obs_to_cmd_p50_ms", "obs_to_cmd_p99_ms", "cpu_steal",
    "steal_free_ticks_ratio", "steal_free_period_err_p99_ms", "step_p99_ms", "policy_step_p50_ms",
    # bench sim
    "success_mean", "success_std", "collision_mean", "ticks_ratio_mean", "success_rate", "jerk_rms_mean",
    # bench pusht run
    "score_mean", "score_std", "score", "success",
})
SKIPPED = ("machine", "versions", "notes")


def flatten(doc: Any, prefix: str = "", lists: bool = False) -> dict[str, Any]:
    """{dotted path: leaf} of a JSON document; list items as ``path[i]`` when ``lists``."""
    out: dict[str, Any] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k), lists))
    elif isinstance(doc, list):
        if lists:
            for i, v in enumerate(doc):
                out.update(flatten(v, f"{prefix}[{i}]", lists))
        else:
            out[prefix] = doc
    else:
        out[prefix] = doc
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _keep(path: str, everything: bool, patterns: list[str]) -> bool:
    head = path.split(".", 1)[0].split("[", 1)[0]
    if head in SKIPPED or (head == "settings" and not everything):
        return False
    if patterns:
        return any(fnmatch.fnmatchcase(path, p) for p in patterns)
    return everything or path.rsplit(".", 1)[-1] in KEY_METRICS


def compare(a: dict, b: dict, everything: bool = False, patterns: list[str] | None = None,
            min_change: float = 0.0) -> dict[str, Any]:
    """{"settings": [(path, a, b)], "rows": [(path, a, b, b - a, b / a)], "only_a": [...],
    "only_b": [...], "machine": (a, b) or None}: the numeric metrics of two benchmark documents."""
    patterns = list(patterns or [])
    fa, fb = flatten(a, lists=everything), flatten(b, lists=everything)
    settings = [(p, fa.get(p), fb.get(p)) for p in sorted(set(fa) | set(fb))
                if p.startswith("settings.") and fa.get(p) != fb.get(p)]
    na = {p: v for p, v in fa.items() if _number(v) and _keep(p, everything, patterns)}
    nb = {p: v for p, v in fb.items() if _number(v) and _keep(p, everything, patterns)}
    rows = []
    for p in [p for p in fa if p in na and p in nb]:  # document order of A
        va, vb = float(na[p]), float(nb[p])
        ratio = vb / va if va != 0 else (1.0 if vb == 0 else math.copysign(math.inf, vb))
        change = abs(ratio - 1.0) if math.isfinite(ratio) else math.inf
        if change >= min_change or not (math.isfinite(va) and math.isfinite(vb)):
            rows.append((p, va, vb, vb - va, ratio))
    if na and nb and not set(na) & set(nb):
        raise ValueError("the two documents share no metric: are they runs of the same benchmark?")
    machine = None  # the load average changes every run: only the rest of the machine is compared
    ma, mb = (_stable(d.get("machine")) for d in (a, b))
    if ma != mb:
        machine = (ma, mb)
    return {"settings": settings, "rows": rows, "only_a": sorted(set(na) - set(nb)),
            "only_b": sorted(set(nb) - set(na)), "machine": machine}


def _stable(machine: Any) -> Any:
    return {k: v for k, v in machine.items() if not k.startswith("load_avg")} if isinstance(machine, dict) else machine


def report(diff: dict[str, Any], name_a: str, name_b: str) -> str:
    out = [f"A: {name_a}", f"B: {name_b}"]
    if diff["machine"]:
        out.append(f"machine differs: A {json.dumps(diff['machine'][0])}\n                 B {json.dumps(diff['machine'][1])}")
    if diff["settings"]:
        out.append("settings that differ:\n" + "\n".join(f"  {p}: {va!r} -> {vb!r}" for p, va, vb in diff["settings"]))
    if diff["rows"]:
        out.append(format_table(["metric", "A", "B", "B - A", "B / A"],
                                [[p, va, vb, f"{d:+.3g}", f"{r:.3g}"] for p, va, vb, d, r in diff["rows"]]))
    else:
        out.append("no metric in both documents passed the filters")
    for side, key in (("A", "only_a"), ("B", "only_b")):
        if diff[key]:
            out.append(f"only in {side} ({len(diff[key])}): " + ", ".join(diff[key][:20])
                       + (" ..." if len(diff[key]) > 20 else ""))
    return "\n\n".join(out)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", type=Path, help="the reference run's JSON (say, the previous commit's)")
    p.add_argument("b", type=Path, help="the run to compare with it")
    p.add_argument("--all", action="store_true", help="every numeric value (per-seed lists and settings too)")
    p.add_argument("--match", action="append", default=[], metavar="GLOB",
                   help="only the dotted metric paths matching this glob (repeatable)")
    p.add_argument("--min-change", type=float, default=0.0, metavar="R",
                   help="hide rows whose relative change |B/A - 1| is below R (default 0: show all)")
    p.add_argument("--json", type=Path, help="also write the comparison as JSON")


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read benchmark JSON {path}: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a benchmark JSON is an object, got {type(doc).__name__}")
    return doc


def run(args: argparse.Namespace) -> int:
    if args.min_change < 0 or not math.isfinite(args.min_change):
        raise ValueError(f"--min-change must be a finite value >= 0, got {args.min_change}")
    diff = compare(_load(args.a), _load(args.b), args.all, args.match, args.min_change)
    print(report(diff, str(args.a), str(args.b)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"metric": p, **{k: v if math.isfinite(v) else None for k, v in zip(("a", "b", "diff", "ratio"), vals)}}
                for p, *vals in diff["rows"]]  # JSON has no NaN / inf: null
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), "rows": rows,
                                         "settings": [{"path": p, "a": va, "b": vb} for p, va, vb in diff["settings"]],
                                         "only_a": diff["only_a"], "only_b": diff["only_b"]}, indent=2))
    return 0
