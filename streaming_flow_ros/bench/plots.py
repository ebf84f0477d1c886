"""`sfp bench plot`: the PNG figures of docs/BENCHMARKS.md, drawn from the benchmark JSON files.

    sfp bench plot [--latency runs/bench/latency_lc.json] [--sim runs/bench/sim_quality.json] \
        [--pusht runs/pusht/pusht_4k_ic_3seeds_ddpm50.json] [--pusht-equal-time JSON] [--pusht-stress JSON] \
        [--pusht-pixels JSON] \
        [--pusht-pixels-sfp JSON] [--pusht-pixels-stress SUMMARY.json] [--out docs/img]

Each figure is drawn only from the numbers in its JSON (written by `sfp bench latency`,
`sfp bench sim`, `sfp bench pusht run`, `sfp bench pusht summarize`), so a figure and its table always agree. A missing input
skips its figure (with a message); an input without the expected keys is a clear error.

- ``latency.png``: time to first action (p50, p99 whisker; log scale) and ms per action of every
  method, with each one's ratio to SFP; plus observation-to-command through the node, if measured.
- ``sim_quality.png``: T4 clean success per method (mean over seeds, one dot per seed),
  observation-to-command p50, and the delay stress curves (success against sensing latency).
- ``pusht.png``: Push-T score per method (one dot per seed) against the random floor and the
  expert, and the delay stress scores.
- ``pusht_pixels.png``: the same for the image task (T3), from ``--pusht-pixels`` (plus the SFP
  of ``--pusht-pixels-sfp`` as sfp_flow16).
- ``pusht_pixels_stress.png``: from a ``summarize`` JSON (``--pusht-pixels-stress``; per-seed
  ``eval`` files of several methods): the delay-0 score and the 5x-rate score per method (one dot
  per training seed), and score against observation delay without and with latency compensation.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LABELS = {"sfp": "SFP", "sfp_k0": "SFP k=0", "dp_ddpm": "DP-DDPM", "dp_ddim": "DP-DDIM", "fm_chunk": "FM-chunk",
          "sfp_reanchor8": "SFP re-anchor/8", "sfp_reanchor1": "SFP re-anchor/1",
          "sfp_equal_time": "SFP equal time", "sfp_flow16": "SFP 16 draws"}
COLORS = {"sfp": "tab:blue", "sfp_k0": "tab:cyan", "dp_ddpm": "tab:red", "dp_ddim": "tab:orange",
          "fm_chunk": "tab:green", "sfp_reanchor8": "tab:purple", "sfp_reanchor1": "tab:purple",
          "sfp_equal_time": "navy", "sfp_flow16": "navy"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _load(path: Path, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: cannot read {path}: {e}") from e
    missing = [k for k in keys if k not in doc]
    if missing:
        raise ValueError(f"{what}: {path} lacks {missing}; is it the JSON of the right command?")
    return doc


def _label(m: str) -> str:
    return LABELS.get(m, m)


def _xticks(ax, names: list[str]) -> None:
    ax.set_xticks(range(len(names)), [_label(m) for m in names], rotation=30, ha="right", fontsize=7)


def _curves(ax, by_method: dict[str, dict[str, dict]], key: str, xlabel: str, title: str, ylim: tuple) -> None:
    """One line per method: ``by_method[m][str(x)][key]`` against x (a stress sweep); a cell
    averaged over training seeds (``<key>_std``) gets a whisker of ± one standard deviation."""
    for m, by_x in by_method.items():
        xs = sorted(by_x, key=int)
        ys = [by_x[x][key] for x in xs]
        ax.plot([int(x) for x in xs], ys, "o-", color=COLORS.get(m, "gray"), label=_label(m))
        if all(f"{key}_std" in by_x[x] for x in xs):
            ax.errorbar([int(x) for x in xs], ys, yerr=[by_x[x][f"{key}_std"] for x in xs], fmt="none",
                        ecolor=COLORS.get(m, "gray"), capsize=2, lw=0.8)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def _save(plt, fig, out: Path, name: str, title: str) -> Path:
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_latency(doc: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    methods = list(doc["methods"])
    node = doc.get("node", {}).get("methods", {})
    cols = 3 if node else 2
    fig, axes = plt.subplots(1, cols, figsize=(4.2 * cols, 3.6))
    base = doc["methods"].get("sfp")
    for ax, key, title in ((axes[0], "ttfa_ms", "time to first action (ms)"),
                           (axes[1], "ms_per_action", "ms per action (amortised)")):
        for i, m in enumerate(methods):
            r = doc["methods"][m]
            v = r[f"{key}_p50"] if key == "ttfa_ms" else r[key]
            err = [[0], [max(0.0, r["ttfa_ms_p99"] - v)]] if key == "ttfa_ms" else None
            ax.bar(i, v, color=COLORS.get(m, "gray"), yerr=err, capsize=3)
            ref = (base["ttfa_ms_p50"] if key == "ttfa_ms" else base["ms_per_action"]) if base else None
            if ref:
                top = r["ttfa_ms_p99"] if key == "ttfa_ms" else v
                ax.text(i, max(v, top) * 1.2, f"{v / ref:.0f}x" if v / ref >= 1.5 else "1x", ha="center", fontsize=7)
        ax.set_yscale("log")
        ax.margins(y=0.25)
        _xticks(ax, methods)
        ax.set_title(title + (" (p50, p99 bar)" if key == "ttfa_ms" else ""), fontsize=9)
    if node:
        ax = axes[2]
        nm = list(node)
        for i, m in enumerate(nm):
            r = node[m]
            ax.bar(i, r["obs_to_cmd_p50_ms"], color=COLORS.get(m, "gray"),
                   yerr=[[0], [max(0.0, r["obs_to_cmd_p99_ms"] - r["obs_to_cmd_p50_ms"])]], capsize=3)
            ax.text(i, max(r["obs_to_cmd_p50_ms"], r["obs_to_cmd_p99_ms"]) * 1.2, f"{100 * r['ticks_ratio']:.2f}%",
                    ha="center", fontsize=6)
        ax.set_yscale("log")
        ax.margins(y=0.3)
        _xticks(ax, nm)
        ax.set_title(f"through the node at {doc['node']['rate_hz']:g} Hz:\nobs -> command ms (p50, p99 bar; "
                     "label: ticks)", fontsize=8)
    return _save(plt, fig, out, "latency.png", "sfp bench latency (one run; CPU, 1 thread)")


def plot_sim(doc: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    methods = list(doc["settings"]["methods"])
    stress = doc.get("stress", {}).get("latency", {})
    cols = 3 if stress else 2
    fig, axes = plt.subplots(1, cols, figsize=(4.2 * cols, 3.6))
    for i, m in enumerate(methods):
        r = doc[m]
        per = [s["success_rate"] for s in r["seeds"]]
        axes[0].bar(i, r["success_mean"], color=COLORS.get(m, "gray"), alpha=0.8)
        axes[0].plot([i] * len(per), per, "k.", ms=5)
        axes[1].bar(i, r["obs_to_cmd_p50_ms"], color=COLORS.get(m, "gray"))
        axes[1].text(i, r["obs_to_cmd_p50_ms"], f"{r['obs_to_cmd_p50_ms']:.0f}", ha="center", va="bottom", fontsize=7)
    seeds = len(doc[methods[0]]["seeds"]) if methods else 0
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title(f"T4 clean success ({seeds} seed(s), dots: per seed)", fontsize=9)
    axes[1].margins(y=0.15)
    axes[1].set_title("observation -> command p50 (ms)", fontsize=9)
    for ax in axes[:2]:
        _xticks(ax, methods)
    if stress:
        _curves(axes[2], stress, "success_rate", "sensing latency (ms)",
                f"delay stress (seed 0, {doc['stress'].get('episodes', '?')} episodes)", (-0.03, 1.05))
    return _save(plt, fig, out, "sim_quality.png", "sfp bench sim: the simulator task through the real node")


def plot_pusht(doc: dict[str, Any], out: Path, equal_time: dict[str, Any] | None = None,
               extra_label: str = "sfp_equal_time", stress_doc: dict[str, Any] | None = None) -> Path:
    """Scores per method (bars: mean, dots: seeds) and the delay stress. ``equal_time``: a second
    run of SFP alone (trained for as long as a U-Net takes, or another SFP recipe) whose ``sfp``
    is drawn as ``extra_label``. ``stress_doc``: another run of the same workdir (say with
    ``--stress-seeds 3`` on some methods) whose delay stress replaces ``doc``'s in the panels."""
    plt = _plt()
    methods = [m for m in doc if isinstance(doc[m], dict) and "score_mean" in doc[m]]
    variants = dict(doc.get("variants", {}))
    if equal_time and "score_mean" in equal_time.get("sfp", {}):
        variants[extra_label] = equal_time["sfp"]
    stress_src = (stress_doc or doc).get("stress", {})
    stress = dict(stress_src.get("delay", {}))
    if equal_time and "sfp" in equal_time.get("stress", {}).get("delay", {}):
        stress[extra_label] = equal_time["stress"]["delay"]["sfp"]
    comp = dict(stress_src.get("delay_comp", {}))  # absent in older files
    if equal_time and "sfp" in equal_time.get("stress", {}).get("delay_comp", {}):
        comp[extra_label] = equal_time["stress"]["delay_comp"]["sfp"]
    cols = 1 + bool(stress) + bool(comp)
    fig, axes = plt.subplots(1, cols, figsize=(4.6 * cols, 3.6), squeeze=False)
    ax = axes[0][0]
    names = methods + [v for v in variants if "score_mean" in variants[v]]
    for i, m in enumerate(names):
        r = doc[m] if m in doc else variants[m]
        per = [s["score"] for s in r.get("seeds", [])]
        ax.bar(i, r["score_mean"], color=COLORS.get(m, "gray"), alpha=0.8)
        ax.plot([i] * len(per), per, "k.", ms=5)
    if isinstance(doc.get("random"), dict):
        ax.axhline(doc["random"]["score"], color="k", ls=":", lw=1, label=f"random {doc['random']['score']:.2f}")
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="expert / max")
    ax.set_ylim(0, 1.05)
    _xticks(ax, names)
    task = doc.get("settings", {}).get("task", "state")
    ax.set_title(f"Push-T ({task}) score", fontsize=9)
    ax.legend(fontsize=7)
    seeds = stress_src.get("seeds", [stress_src.get("seed", 0)])
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean ± std of {len(seeds)} seeds"
    if stress:
        _curves(axes[0][1], stress, "score", "observation delay (control steps)", f"delay stress: score ({which})",
                (0, 1.05))
    if comp:
        _curves(axes[0][cols - 1], comp, "score", "observation delay (control steps)",
                f"delay stress, latency compensation ({which})", (0, 1.05))
    name = "pusht.png" if task == "state" else f"pusht_{task}.png"
    return _save(plt, fig, out, name, f"sfp bench pusht run --task {task}")


def _summary_cells(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """method -> {"plain", "rate5x", "delay": {k: cell}, "delay_comp": {k: cell}} from the cells of a
    ``summarize`` JSON, all at one episode count per method (the count most of its cells have:
    a ``run`` evaluates the stress cells on fewer episodes than its main one); delay 0 is the plain
    cell in both sweeps."""
    by_eps: dict[tuple[str, int], dict[str, Any]] = {}
    for c in doc["cells"]:
        m = c["method"]
        slot = by_eps.setdefault((m, c["episodes"]), {"delay": {}, "delay_comp": {}, "n": 0})
        slot["n"] += 1
        # summarize's labels name every condition that differs from the plain evaluation
        hit = re.fullmatch(rf"{re.escape(m)}(?: delay (\d+))?( 5x rate)?( \(latency comp\.\))?", c["label"])
        if hit is None:
            continue
        delay, rate5, comp = hit.groups()
        if delay is None and rate5 is None and comp is None:
            slot["plain"] = c
        elif delay is None and rate5 and comp is None:
            slot["rate5x"] = c
        elif delay is not None and rate5 is None:
            slot["delay_comp" if comp else "delay"][delay] = c
    out: dict[str, dict[str, Any]] = {}
    for (m, _eps), slot in sorted(by_eps.items(), key=lambda kv: (kv[0][0], kv[1]["n"], kv[0][1])):
        if "plain" in slot:
            out[m] = slot  # sorted so the episode count with the most cells wins (then the larger)
    for slot in out.values():
        del slot["n"]
        for kind in ("delay", "delay_comp"):
            if slot[kind]:
                slot[kind]["0"] = slot["plain"]
    if not out:
        raise ValueError("pusht summary: no method has a plain (delay 0, data-rate) cell")
    return out


def plot_summary(doc: dict[str, Any], out: Path, name: str = "pusht_pixels_stress.png") -> Path:
    """The figure of a ``summarize`` JSON: per method the plain and 5x-rate scores (bars: mean over
    training seeds, dots: seeds), and the delay sweeps (mean ± std over the seeds)."""
    plt = _plt()
    by = _summary_cells(doc)
    methods = list(by)
    fig, axes = plt.subplots(1, 3, figsize=(13.8, 3.6))
    ax = axes[0]
    for i, m in enumerate(methods):
        for off, key, hatch in ((-0.18, "plain", None), (0.18, "rate5x", "//")):
            c = by[m].get(key)
            if c is None:
                continue
            ax.bar(i + off, c["score_mean"], width=0.34, color=COLORS.get(m, "gray"), alpha=0.8, hatch=hatch,
                   edgecolor="k" if hatch else None, lw=0.5)
            per = [s["score"] for s in c["seeds"]]
            ax.plot([i + off] * len(per), per, "k.", ms=5)
    ax.set_ylim(0, 1.05)
    _xticks(ax, methods)
    seeds = sorted({s["seed"] for m in methods for s in by[m]["plain"]["seeds"]})
    eps = sorted({by[m]["plain"]["episodes"] for m in methods})
    ax.set_title(f"score: data rate (plain) | 5x rate (hatched); training seeds {seeds}, "
                 f"{'/'.join(map(str, eps))} episodes", fontsize=8)

    def sweep(kind: str) -> dict[str, dict[str, dict]]:
        return {m: {k: {"score": c["score_mean"], "score_std": c["score_std"]} for k, c in by[m][kind].items()}
                for m in methods if by[m][kind]}

    _curves(axes[1], sweep("delay"), "score", "observation delay (control steps)", "delay: score, mean ± std",
            (0, 1.05))
    _curves(axes[2], sweep("delay_comp"), "score", "observation delay (control steps)",
            "delay with latency compensation", (0, 1.05))
    return _save(plt, fig, out, name, "sfp bench pusht summarize: per-seed evaluations, mean over training seeds")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency", type=Path, default=Path("runs/bench/latency_lc.json"), help="sfp bench latency JSON")
    p.add_argument("--sim", type=Path, default=Path("runs/bench/sim_quality.json"), help="sfp bench sim JSON")
    p.add_argument("--pusht", type=Path, default=Path("runs/pusht/pusht_4k_ic_3seeds_ddpm50.json"),
                   help="sfp bench pusht run JSON")
    p.add_argument("--pusht-stress", type=Path, default=Path("runs/pusht/pusht_4k_ic_chunks_3stressseeds.json"),
                   help="optional: a pusht run (same workdir, e.g. --stress-seeds 3) whose delay stress is drawn instead")
    p.add_argument("--pusht-equal-time", type=Path,
                   default=Path("runs/pusht/pusht_sfp12k_fs4_3seeds_stress50_3stressseeds.json"),
                   help="optional: a pusht run of SFP alone trained for the baselines' training time")
    p.add_argument("--pusht-pixels", type=Path, default=Path("runs/pusht/pusht_pixels_dp_ddpm50_3seeds.json"),
                   help="sfp bench pusht run --task pixels JSON (T3)")
    p.add_argument("--pusht-pixels-sfp", type=Path, default=Path("runs/pusht/pusht_pixels_sfp_fs16_3seeds.json"),
                   help="optional: a T3 run of SFP alone with --flow-samples 16, drawn as sfp_flow16")
    p.add_argument("--pusht-pixels-stress", type=Path, default=Path("runs/pusht/pusht_pixels_t3_stress_seeds12.json"),
                   help="sfp bench pusht summarize JSON of T3 evaluations (plain, delay, 5x rate)")
    p.add_argument("--out", type=Path, default=Path("docs/img"), help="directory for the PNG files")


def _optional_run(path: Path | None) -> dict[str, Any] | None:
    """Another Push-T run drawn with the main one (an SFP-alone run, or a stress run), if its file exists."""
    return _load(path, "pusht run", ("settings",)) if path and path.is_file() else None


def run(args: argparse.Namespace) -> int:
    jobs = ((args.latency, "latency", ("methods",), plot_latency),
            (args.sim, "sim", ("settings",), plot_sim),
            (args.pusht, "pusht", ("settings",),
             lambda doc, out: plot_pusht(doc, out, _optional_run(args.pusht_equal_time),
                                         stress_doc=_optional_run(args.pusht_stress))),
            (args.pusht_pixels, "pusht pixels", ("settings",),
             lambda doc, out: plot_pusht(doc, out, _optional_run(args.pusht_pixels_sfp), "sfp_flow16")),
            (args.pusht_pixels_stress, "pusht pixels summary", ("cells", "delay_loss"), plot_summary))
    args.out.mkdir(parents=True, exist_ok=True)
    made = 0
    for path, what, keys, fn in jobs:
        if not path.is_file():
            print(f"skip {what}: no {path}")
            continue
        print(f"{what}: {fn(_load(path, what, keys), args.out)}")
        made += 1
    if not made:
        raise ValueError("no input JSON found: run the benchmarks first (see docs/BENCHMARKS.md)")
    return 0
