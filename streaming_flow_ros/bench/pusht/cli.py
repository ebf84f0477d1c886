"""`sfp bench pusht {collect,train,eval,run,summarize}`: the Push-T task-quality benchmark, with state
observations (T2, ``--task state``, the default) or 96x96 images + agent position (T3,
``--task pixels``; the task of ``train`` / ``eval`` follows the dataset / checkpoint).

    sfp bench pusht collect --episodes 200 --out DIR [--task pixels]
    sfp bench pusht train --dataset DIR --method sfp|sfp_k0|dp|dp_ddim|dp_ddpm|fm_chunk --seed S --out DIR
    sfp bench pusht eval --checkpoint CKPT --method sfp --episodes 50 [--delay K] [--control-mult M]
                         [--reanchor-every N] --json PATH
    sfp bench pusht run [--quick] [--task pixels] [--seeds N] [--jobs J] --json PATH [--workdir DIR]
    sfp bench pusht summarize EVAL.json... [--json PATH]    # per-seed eval files -> mean ± std

Register in cli.COMMANDS as ``"bench pusht": ("streaming_flow_ros.bench.pusht.cli", ...)``: this
module adds the five sub-subcommands to the leaf parser itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from ...baselines.registry import POLICY_TYPES
from ...flow.stepper import PASSES_PER_STEP
from .env import TASKS, import_gym_pusht

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pusht_command", required=True)
    c = sub.add_parser("collect", help="scripted-expert demos -> dataset directory")
    c.add_argument("--episodes", type=int, default=200, help="successful demos to keep")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--seed0", type=int, help="first demo seed (default 1000000)")
    c.add_argument("--task", choices=TASKS, default="state", help="state (T2) or pixels (T3: 96x96 frames)")

    t = sub.add_parser("train", help="train one method on a Push-T dataset")
    t.add_argument("--dataset", type=Path, required=True)
    t.add_argument("--method", required=True, choices=sorted({*POLICY_TYPES, "dp"}),
                   help="dp_ddim / dp_ddpm / dp train the same DP network")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    t.add_argument("--lr", type=float, help="AdamW peak learning rate (default: methods.LR, 1e-3)")
    t.add_argument("--flow-samples", type=int, default=1,
                   help="SFP: (flow time, noise) draws per window per step, sharing its encoding")
    t.add_argument("--sfp-k", type=float, help="SFP: the stabilising path's gain k (default methods.SFP_K, 15)")
    t.add_argument("--sfp-sigma0", type=float, help="SFP: the path's initial width sigma0 (default methods.SFP_SIGMA0, 0.4)")
    t.add_argument("--out", type=Path, required=True)

    e = sub.add_parser("eval", help="closed-loop evaluation of a checkpoint")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--method", choices=sorted(POLICY_TYPES),
                   help="how to run it (default: sfp for SFP checkpoints, dp_ddim for DP ones, fm_chunk)")
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--seed0", type=int, default=0, help="first evaluation seed")
    e.add_argument("--max-steps", type=int, default=300)
    e.add_argument("--delay", type=int, default=0, help="observation delay, control steps")
    e.add_argument("--control-mult", type=int, default=1, help="control rate / data rate")
    e.add_argument("--reanchor-every", type=int, help="observations per re-anchor (default 8, the action horizon)")
    e.add_argument("--integrator", choices=sorted(PASSES_PER_STEP), default="euler",
                   help="SFP: velocity passes per tick (default euler, one)")
    e.add_argument("--start-sigma", type=float, default=0.0,
                   help="SFP: start noise at every re-anchor, normalised units (default 0: deterministic)")
    e.add_argument("--latency-comp", action="store_true",
                   help="pass the current time to start(): SFP catches its flow up with the observation's age, "
                        "chunk baselines skip elapsed waypoints (as the node does)")
    e.add_argument("--json", type=Path)

    r = sub.add_parser("run", help="collect -> train all methods -> evaluate -> table")
    r.add_argument("--quick", action="store_true", help="smoke test (< 2 min; numbers meaningless)")
    r.add_argument("--task", choices=TASKS, default="state", help="state (T2) or pixels (T3: 96x96 frames)")
    r.add_argument("--batch-size", type=int, help="training batch (default 256)")
    r.add_argument("--seeds", type=int, help="training seeds (default 3)")
    r.add_argument("--demos", type=int)
    r.add_argument("--steps", type=int, help="optimiser steps per method")
    r.add_argument("--lr", type=float, help="AdamW peak learning rate, every method (default: methods.LR, 1e-3)")
    r.add_argument("--episodes", type=int, help="evaluation episodes per method and seed")
    r.add_argument("--ddpm-episodes", type=int, help="episodes for dp_ddpm (default: --episodes)")
    r.add_argument("--stress-episodes", type=int)
    r.add_argument("--stress-methods",
                   help="comma-separated methods that get the stress tests (default sfp,dp_ddim,fm_chunk: "
                        "dp_ddpm only on request, it costs 10x DDIM)")
    r.add_argument("--stress-seeds", type=int,
                   help="stress tests (delay, 5x rate) on training seeds 0..N-1, reported as their mean "
                        "(default 1: seed 0)")
    r.add_argument("--threads", type=int, help="torch threads for training (with --jobs 1)")
    r.add_argument("--jobs", type=int, help="parallel processes for training / evaluation (1 thread each)")
    r.add_argument("--flow-samples", type=int,
                   help="SFP: (flow time, noise) draws per window per step, sharing its encoding (default 1)")
    r.add_argument("--sfp-k", type=float, help="sfp: the stabilising path's gain k (default 15; sfp_k0 keeps 0)")
    r.add_argument("--sfp-sigma0", type=float, help="SFP: the path's initial width sigma0 (default 0.4)")
    r.add_argument("--methods", help="comma-separated subset of sfp,sfp_k0,dp_ddim,dp_ddpm,fm_chunk")
    r.add_argument("--dataset", type=Path, help="reuse this dataset instead of collecting")
    r.add_argument("--workdir", type=Path, help="datasets and checkpoints (default: a temp dir)")
    r.add_argument("--json", type=Path)

    m = sub.add_parser("summarize", help="per-seed `eval --json` files -> mean ± std over seeds per method and condition")
    m.add_argument("files", type=Path, nargs="+", help="eval JSON files: one per training seed and condition")
    m.add_argument("--json", type=Path)


def run(args: argparse.Namespace) -> int:
    cmd = args.pusht_command
    if cmd == "summarize":  # reads JSON files only
        return _summarize(args)
    import_gym_pusht()  # fail early with the package name
    if cmd == "collect":
        from .collect import DEMO_SEED0, collect

        stats = collect(args.out, args.episodes, args.seed0 if args.seed0 is not None else DEMO_SEED0,
                        task=args.task)
        print(json.dumps(stats, indent=2))
        return 0
    if cmd == "train":
        from .methods import METHOD_SLOT, train_slot

        slot = "dp" if args.method == "dp" else METHOD_SLOT[args.method]
        path, info = train_slot(args.dataset, slot, args.out, args.steps, args.seed, args.batch_size, args.threads,
                                progress=True, flow_samples=args.flow_samples,
                                **{k: v for k, v in (("lr", args.lr), ("k", args.sfp_k), ("sigma0", args.sfp_sigma0))
                                   if v is not None})
        print(json.dumps({"checkpoint": str(path), **info}, indent=2))
        return 0
    if cmd == "eval":
        return _eval(args)
    return _run(args)


def _eval(args: argparse.Namespace) -> int:
    from ...checkpoint import read_checkpoint
    from .evaluate import EvalSettings, default_reanchor, evaluate_checkpoint

    method = args.method or {"sfp": "sfp", "dp": "dp_ddim", "fm_chunk": "fm_chunk"}[read_checkpoint(args.checkpoint).kind]
    s = EvalSettings(episodes=args.episodes, seed0=args.seed0, max_steps=args.max_steps, delay=args.delay,
                     control_mult=args.control_mult,
                     reanchor_every=args.reanchor_every or default_reanchor(method),
                     start_sigma=args.start_sigma, integrator=args.integrator, latency_comp=args.latency_comp)
    res = evaluate_checkpoint(str(args.checkpoint), method, s)
    print(f"{method}: score {res['score']:.3f}  success {res['success']:.2f}  ({s.episodes} episodes, "
          f"{res['seconds']:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from .summarize import summarize, summary_table

    doc = summarize(args.files)
    print(summary_table(doc))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


def _run(args: argparse.Namespace) -> int:
    from .run import RunSettings, results_table, run_benchmark

    s = RunSettings.quick() if args.quick else RunSettings()
    overrides = {"seeds": args.seeds, "demos": args.demos, "train_steps": args.steps, "episodes": args.episodes,
                 "ddpm_episodes": args.ddpm_episodes, "stress_episodes": args.stress_episodes,
                 "stress_seeds": args.stress_seeds,
                 "stress_methods": tuple(args.stress_methods.split(",")) if args.stress_methods else None,
                 "threads": args.threads, "jobs": args.jobs, "task": args.task, "batch_size": args.batch_size, "lr": args.lr,
                 "flow_samples": args.flow_samples, "sfp_k": args.sfp_k, "sfp_sigma0": args.sfp_sigma0,
                 "methods": tuple(args.methods.split(",")) if args.methods else None}
    s = replace(s, **{k: v for k, v in overrides.items() if v is not None})
    with tempfile.TemporaryDirectory(prefix="sfp-pusht-") as tmp:
        doc = run_benchmark(args.workdir or tmp, s, args.dataset)
    doc["quick"] = bool(args.quick)
    if args.quick:
        print("--quick: a smoke test; the numbers below are meaningless")
    print(results_table(doc))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m streaming_flow_ros.bench.pusht.cli ...`` (the same as ``sfp bench pusht ...``)."""
    parser = argparse.ArgumentParser(prog="sfp bench pusht")
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except ValueError as e:
        parser.exit(2, f"sfp bench pusht: error: {e}\n")


if __name__ == "__main__":
    raise SystemExit(main())
