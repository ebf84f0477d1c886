"""Dataset directory -> trained baseline checkpoint, with the same windows, normalisers,
episode split, optimiser, EMA and trainer as SFP (train/pipeline.py; a little duplication on
purpose rather than a mode flag there). Also untrained baseline checkpoints for tests and benches.

    cfg = BaselineTrainConfig(steps=4000, model=DPConfig())        # or FMChunkConfig()
    path, result = train_baseline("data/sim", "runs/dp", cfg)

    python -m streaming_flow_ros.baselines.train --dataset DIR --out DIR --kind dp [--config Y]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..data.normalizer import MinMaxNormalizer
from ..kinds import model_kinds
from ..spec import IOSpec
from ..train.config import TrainConfig
from ..train.pipeline import train_model_on_dataset
from ..train.trainer import TrainResult
from .config import DPConfig, FMChunkConfig

BASELINE_KINDS = ("dp", "fm_chunk")  # the chunk kinds of kinds.model_kinds()

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "policy.safetensors"
BaselineConfig = DPConfig | FMChunkConfig


@dataclass
class BaselineTrainConfig(TrainConfig):
    """TrainConfig (same optimiser defaults as SFP) whose ``model`` is a baseline config; a dict
    ``model`` is parsed by its ``kind`` ("dp" when absent)."""

    model: BaselineConfig = field(default_factory=DPConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            kind = self.model.get("kind", "dp")
            if kind not in BASELINE_KINDS:
                raise ValueError(f"unknown baseline kind {kind!r} (known: {sorted(BASELINE_KINDS)})")
            self.model = model_kinds()[kind].config({**self.model, "kind": kind})
        if not isinstance(self.model, (DPConfig, FMChunkConfig)):
            raise TypeError(f"model must be a DPConfig or FMChunkConfig, got {type(self.model).__name__}")
        super().__post_init__()


def build_baseline(config: BaselineConfig, spec: IOSpec) -> torch.nn.Module:
    """The model of ``config.kind`` (the factory registered in kinds.py)."""
    return model_kinds()[config.kind].model(config, spec)


def train_baseline(dataset: str | Path, out_dir: str | Path, cfg: BaselineTrainConfig,
                   resume: bool = True) -> tuple[Path, TrainResult]:
    """Train the baseline ``cfg.model.kind`` on a dataset directory; returns (checkpoint, result).
    Mirrors train.pipeline.train_from_dataset (and runs under torchrun the same way)."""
    return train_model_on_dataset(dataset, out_dir, cfg, lambda spec: build_baseline(cfg.model, spec), resume)


def make_untrained_baseline_checkpoint(path: str | Path, spec: IOSpec, config: BaselineConfig,
                                       seed: int = 0, train_info: dict[str, Any] | None = None) -> Path:
    """A real, randomly initialised baseline checkpoint (tests, benches, dry runs), normalisers as
    checkpoint.make_untrained_checkpoint: the action bounds when given, else [-pi, pi]."""
    torch.manual_seed(seed)
    model = build_baseline(config, spec)
    state_norm, action_norm = untrained_normalizers(spec)
    info = {"untrained": True, "seed": seed, **(train_info or {})}
    return save_checkpoint(path, model, spec, state_norm, action_norm, info)


def untrained_normalizers(spec: IOSpec) -> tuple[MinMaxNormalizer, MinMaxNormalizer]:
    """(state, action) normalisers spanning the action bounds (else [-pi, pi]); the state one is
    the same when state and action names agree, else identity."""
    lo = list(spec.action_lower) or [-math.pi] * spec.action_dim
    hi = list(spec.action_upper) or [math.pi] * spec.action_dim
    action_norm = MinMaxNormalizer.fit(np.array([lo, hi]))
    same = spec.state_names == spec.action_names
    return (action_norm if same else MinMaxNormalizer.identity(spec.state_dim)), action_norm


def configure(p: argparse.ArgumentParser) -> None:
    """`sfp train-baseline`: train a chunk baseline (dp | fm_chunk) on a dataset directory."""
    p.add_argument("--dataset", required=True, help="dataset directory (dataset.json)")
    p.add_argument("--out", required=True, help="output directory (policy.safetensors, train_state.pt)")
    p.add_argument("--kind", choices=sorted(BASELINE_KINDS), default="dp")
    p.add_argument("--config", help="training config YAML (its model: block is a baseline config)")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.config:
        import yaml

        doc = yaml.safe_load(Path(args.config).read_text()) or {}
        doc["model"] = {**doc.get("model", {}), "kind": args.kind}
        cfg = BaselineTrainConfig.from_dict(doc)
    else:
        cfg = BaselineTrainConfig(model=model_kinds()[args.kind].config({"kind": args.kind}))
    if args.steps is not None:
        cfg.steps = args.steps
    if args.seed is not None:
        cfg.seed = args.seed
    cfg.progress = not args.no_progress
    cfg.__post_init__()
    from ..train.pipeline import init_distributed

    init_distributed()
    path, res = train_baseline(args.dataset, args.out, cfg, resume=not args.no_resume)
    print(f"trained {res.steps} steps in {res.seconds:.1f} s: loss {res.final_loss:.4f}\ncheckpoint: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry for `python -m` / `torchrun -m streaming_flow_ros.baselines.train`."""
    p = argparse.ArgumentParser(prog="sfp train-baseline")
    configure(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
