"""`sfp train`: train an SFP policy on a dataset directory (from `sfp dataset build`).

    sfp train --dataset DIR --out DIR [--config config/train/sim.yaml] [--steps N] [--seed S]
    torchrun --nproc_per_node 2 -m streaming_flow_ros.train.cli --dataset DIR --out DIR   # DDP
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch.distributed as dist

from .config import TrainConfig
from .pipeline import init_distributed, train_from_dataset


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset directory (dataset.json)")
    p.add_argument("--out", required=True, help="output directory (policy.safetensors, train_state.pt)")
    p.add_argument("--config", help="training config YAML (see config/train/)")
    p.add_argument("--steps", type=int, help="override optimiser steps")
    p.add_argument("--batch-size", type=int, help="override batch size")
    p.add_argument("--lr", type=float, help="override learning rate")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing train_state.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    for key in ("steps", "batch_size", "lr", "seed"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    if args.no_progress:
        cfg.progress = False
    cfg.__post_init__()
    distributed = init_distributed()
    rank = dist.get_rank() if distributed else 0
    try:
        path, res = train_from_dataset(args.dataset, args.out, cfg, resume=not args.no_resume)
    finally:
        if distributed:
            dist.destroy_process_group()
    if rank == 0:
        print(
            f"trained {res.steps} steps in {res.seconds:.1f} s: loss {res.final_loss:.4f}"
            + (f", val {res.val_loss:.4f}" if res.val_loss is not None else "")
            + f"\ncheckpoint: {path}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry for `torchrun -m streaming_flow_ros.train.cli`."""
    p = argparse.ArgumentParser(prog="sfp train")
    configure(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
