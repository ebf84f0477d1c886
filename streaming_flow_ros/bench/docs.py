"""`sfp bench docs`: every generated section of docs/BENCHMARKS.md and docs/RELIABILITY.md, and
the figures in docs/img, from the results of record in docs/results/*.json.

    sfp bench docs              # rewrite the generated sections from docs/results
    sfp bench docs --check      # exit 1 when a document differs from what its JSON renders
    sfp bench docs --figures    # also redraw the figures (PNG bytes depend on the matplotlib version)

A generated section lies between ``<!-- name:begin -->`` and ``<!-- name:end -->``; each is drawn
by its benchmark's own ``render(doc)`` from one or more JSON files (``SECTIONS``). A section whose
JSON is not in the results directory reads "Not yet measured" with the command that measures it.
To publish a new measurement, write the benchmark's ``--json`` into docs/results/ (keep each file
small: per-episode records only where a table is drawn from them, as the cells' grasp column) and
run this command. ``--check`` covers the markdown only.
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ros.bench import contention, soak
from ..ros.bench import node as node_bench
from ..toy import report as toy_report
from . import (
    camera_transport,
    cells,
    defaults,
    encoder_probe,
    latency,
    plots,
    reaction,
    reliability,
    scale,
    sim_quality,
    step,
)
from .common import replace_in_text
from .pusht import run as pusht_run
from .pusht import summarize


@dataclass(frozen=True)
class Section:
    """One generated section: ``doc``'s ``<!-- name:begin/end -->`` drawn from ``files``."""

    doc: str  # markdown file name, in the docs directory
    name: str
    files: tuple[str, ...]  # JSON file names in the results directory, rendered in this order
    render: Callable[[Any], str]  # one JSON document, or the list of them when ``together``
    measure: str  # the command that writes the (first) JSON, for the "not yet measured" note
    together: bool = False  # render gets the list of the JSON documents present (one table), not each


@dataclass(frozen=True)
class Figure:
    file: str | tuple[str, ...]  # JSON file name(s) in the results directory (a tuple: draw gets the list)
    png: str  # file name in docs/img
    draw: Callable[[Any, Path], None]


BENCH, RELIABILITY = "BENCHMARKS.md", "RELIABILITY.md"
# Push-T tables and figures merge several `sfp bench pusht run` JSONs (methods with their own step counts)
PUSHT_STATE = ("pusht_state_sfp.json", "pusht_state_unets.json")
PUSHT_PIXELS = ("pusht_pixels_sfp.json", "pusht_pixels_fm_chunk.json", "pusht_pixels_dp.json")
SECTIONS: tuple[Section, ...] = (
    Section(BENCH, "latency", ("latency.json",), latency.render,
            "sfp bench latency --node --node-seconds 10 --json docs/results/latency.json"),
    Section(BENCH, "step", ("step.json",), step.render,
            "sfp bench step --ticks 20000 --json docs/results/step.json"),
    Section(BENCH, "node", ("node.json",), node_bench.render,
            "sfp bench node --seconds 10 --tick-source both --json docs/results/node.json"),
    Section(BENCH, "scale", ("scale.json",), scale.render,
            "sfp bench scale --node --json docs/results/scale.json"),
    Section(BENCH, "toy", ("toy.json",), toy_report.render, "sfp toy --json docs/results/toy.json"),
    Section(BENCH, "eval_sim", ("eval_sim.json", "eval_sim_start_sigma.json"), sim_quality.render_eval,
            "sfp eval sim --episodes 50 --json docs/results/eval_sim.json", together=True),
    Section(BENCH, "sim_quality", ("sim_quality.json",), sim_quality.render,
            "sfp bench sim --dataset runs/default_policy/dataset --workdir runs/sim_quality --seeds 3 "
            "--methods sfp,dp_ddim,fm_chunk --latency-ms 0,100,200,400 --stress-episodes 20 "
            "--json docs/results/sim_quality.json"),
    Section(BENCH, "defaults", ("defaults.json",), defaults.render,
            "sfp bench defaults --pusht-checkpoint CKPT --json docs/results/defaults.json"),
    # SFP and the U-Nets train for about equal wall time (different step counts): two runs, one table
    Section(BENCH, "pusht_state", PUSHT_STATE, pusht_run.render_runs,
            "sfp bench pusht run --methods sfp ... --json docs/results/pusht_state_sfp.json (BENCHMARKS.md, "
            "Push-T (state))", together=True),
    Section(BENCH, "pusht_pixels", PUSHT_PIXELS,
            pusht_run.render_runs,
            "sfp bench pusht run --task pixels --methods sfp ... --json docs/results/pusht_pixels_sfp.json "
            "(BENCHMARKS.md, Push-T with images)", together=True),
    Section(BENCH, "executors", ("executors.json",), summarize.render,
            "sfp bench pusht summarize EVAL.json... --json docs/results/executors.json"),
    Section(BENCH, "reaction", ("reaction.json",), reaction.render,
            "sfp bench reaction --checkpoint sfp=CKPT --checkpoint fm_chunk=CKPT --json docs/results/reaction.json"),
    Section(BENCH, "reaction_sim", ("reaction_sim.json",), reaction.render,
            "sfp bench reaction --task sim --checkpoint sfp=CKPT --checkpoint fm_chunk=CKPT --checkpoint dp=CKPT "
            "--json docs/results/reaction_sim.json"),
    Section(BENCH, "reaction_cell", ("reaction_cell.json",), reaction.render,
            "sfp bench reaction --cell panda --checkpoint sfp=CKPT --checkpoint fm_chunk=CKPT "
            "--json docs/results/reaction_cell.json"),
    Section(BENCH, "cells", ("cells.json",), cells.render,
            "sfp bench cells --run ROBOT:TASK:METHOD=CKPT ... --json docs/results/cells.json"),
    Section(BENCH, "encoder_probe", ("encoder_probe.json",), encoder_probe.render,
            "sfp bench encoder-probe --case LABEL=CKPT,RUN_DIR --json docs/results/encoder_probe.json"),
    Section(BENCH, "cells_methods", ("cells_methods.json",), cells.render,
            "sfp bench cells --run panda:lift:METHOD=CKPT (3 seeds each, 6,000 steps) --episodes 20 "
            "--json docs/results/cells_methods.json"),
    Section(BENCH, "cells_methods_2k", ("cells_methods_2k.json",), cells.render,
            "sfp bench cells --run panda:lift:METHOD=CKPT (3 seeds each, 2,000 steps) --episodes 10 "
            "--json docs/results/cells_methods_2k.json"),
    Section(RELIABILITY, "bad_inputs", ("reliability.json",), reliability.render,
            "python -m streaming_flow_ros.bench.reliability --json docs/results/reliability.json"),
    Section(RELIABILITY, "soak", ("soak.json",), soak.render,
            "sfp soak --seconds 600 --json docs/results/soak.json"),
    Section(RELIABILITY, "cameras", ("camera_transport.json",), camera_transport.render,
            "python -m streaming_flow_ros.bench.camera_transport --json docs/results/camera_transport.json"),
    Section(RELIABILITY, "cameras_4k", ("camera_transport_4k.json", "camera_transport_4k_shm128.json"),
            camera_transport.render,
            "python -m streaming_flow_ros.bench.camera_transport --sizes 3840x2160 "
            "--json docs/results/camera_transport_4k.json"),
    Section(RELIABILITY, "contention", ("contention.json",), contention.render,
            "sfp bench contention --json docs/results/contention.json"),
)


def _in_dir(plot: Callable[[dict[str, Any], Path], Path]) -> Callable[[dict[str, Any], Path], None]:
    """``plots.plot_latency`` and ``plot_sim`` name their files themselves (latency.png,
    sim_quality.png): draw in ``png``'s directory."""
    def draw(doc: dict[str, Any], png: Path) -> None:
        plot(doc, png.parent)
    return draw


FIGURES: tuple[Figure, ...] = (
    Figure("reaction.json", "reaction.png", reaction.plot),
    Figure(PUSHT_STATE, "pusht.png",
           lambda docs, png: plots.plot_pusht(pusht_run.merge_runs(docs), png.parent)),
    Figure(PUSHT_PIXELS, "pusht_pixels.png",
           lambda docs, png: plots.plot_pusht(pusht_run.merge_runs(docs), png.parent)),
    Figure("latency.json", "latency.png", _in_dir(plots.plot_latency)),
    Figure("reaction_cell.json", "reaction_cell.png", reaction.plot),
    Figure("reaction_sim.json", "reaction_sim.png", reaction.plot),
    Figure("sim_quality.json", "sim_quality.png", _in_dir(plots.plot_sim)),
)


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from e


def render_section(section: Section, results: Path) -> str:
    """The markdown between the section's markers: the render of each JSON present, or a
    "Not yet measured" line when none is."""
    present = [results / f for f in section.files if (results / f).is_file()]
    if not present:
        return f"Not yet measured: no docs/results/{section.files[0]}. Measure with `{section.measure}`."
    if section.together:
        try:
            return section.render([_load(p) for p in present]).rstrip("\n")
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{', '.join(map(str, present))}: cannot render the {section.name!r} section "
                             f"({type(e).__name__}: {e})") from e
    parts = []
    for path in present:
        try:
            parts.append(section.render(_load(path)))
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{path}: cannot render the {section.name!r} section ({type(e).__name__}: {e}); "
                             "is it the JSON of the right benchmark?") from e
    return "\n\n".join(p.rstrip("\n") for p in parts)


def regenerate(docs: Path, results: Path) -> dict[Path, tuple[str, str]]:
    """{markdown path: (current text, regenerated text)} for every document with a section."""
    out: dict[Path, tuple[str, str]] = {}
    for section in SECTIONS:
        path = docs / section.doc
        if path not in out:
            text = path.read_text()
            out[path] = (text, text)
        before, after = out[path]
        out[path] = (before, replace_in_text(after, section.name, render_section(section, results), str(path)))
    return out


def draw_figures(results: Path, img: Path) -> list[Path]:
    """Redraw every figure whose JSON is in ``results``; returns the PNG paths written."""
    img.mkdir(parents=True, exist_ok=True)
    made = []
    for fig in FIGURES:
        srcs = [results / f for f in ((fig.file,) if isinstance(fig.file, str) else fig.file)]
        if all(src.is_file() for src in srcs):
            docs = [_load(src) for src in srcs]
            fig.draw(docs[0] if isinstance(fig.file, str) else docs, img / fig.png)
            made.append(img / fig.png)
    return made


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=Path("docs/results"), help="the results JSON directory")
    p.add_argument("--docs", type=Path, default=Path("docs"), help="the directory of BENCHMARKS.md and RELIABILITY.md")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when a document differs from what the JSON renders")
    p.add_argument("--figures", action="store_true", help="also redraw the figures in DOCS/img")


def run(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        raise ValueError(f"--results {args.results} is not a directory")
    stale = []
    for path, (before, after) in regenerate(args.docs, args.results).items():
        if before == after:
            print(f"{path}: up to date")
        elif args.check:
            stale.append(path)
            diff = difflib.unified_diff(before.splitlines(), after.splitlines(), f"{path} (committed)",
                                        f"{path} (rendered from {args.results})", lineterm="", n=1)
            print("\n".join(list(diff)[:60]))
        else:
            path.write_text(after)
            print(f"{path}: regenerated")
    if args.figures and not args.check:
        for png in draw_figures(args.results, args.docs / "img"):
            print(f"{png}: drawn")
    if stale:
        print(f"{len(stale)} document(s) differ from their JSON: run `sfp bench docs`")
        return 1
    return 0
