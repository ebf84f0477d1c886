"""`sfp info CHECKPOINT`: print a checkpoint's metadata (validated) as JSON."""

from __future__ import annotations

import argparse
import json

from ..checkpoint import build_model, read_checkpoint


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="path to a .safetensors checkpoint")


def run(args: argparse.Namespace) -> int:
    ckpt = read_checkpoint(args.checkpoint)
    model = build_model(ckpt)  # validates weights against the metadata
    doc = ckpt.metadata()
    doc["parameters"] = sum(p.numel() for p in model.parameters())
    print(json.dumps(doc, indent=2))
    return 0
