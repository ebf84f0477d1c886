"""Dataset directory -> trained checkpoint: normalisers fitted on the training episodes,
episode-level validation split, the model built from the config, EMA weights saved."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..checkpoint import save_checkpoint
from ..data.episodes import load_dataset
from ..data.normalizer import MinMaxNormalizer
from ..data.windows import WindowDataset, split_episodes
from ..nets.model import SFPModel, count_parameters
from ..spec import IOSpec
from .config import TrainConfig
from .trainer import TrainResult, train

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "policy.safetensors"


def train_from_dataset(dataset: str | Path, out_dir: str | Path, cfg: TrainConfig, resume: bool = True) -> tuple[Path, TrainResult]:
    """Train an SFP policy on a dataset directory; returns (checkpoint path, result).

    Runs under torchrun too: initialise the process group from the environment first
    (``init_distributed``), every rank calls this, rank 0 writes the files.
    """
    return train_model_on_dataset(dataset, out_dir, cfg, lambda spec: SFPModel(cfg.model, spec), resume)


def train_model_on_dataset(
    dataset: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    build: Callable[[IOSpec], nn.Module],
    resume: bool = True,
) -> tuple[Path, TrainResult]:
    """The shared pipeline (SFP and the chunk baselines): episode-level split, normalisers fitted
    on the training episodes, windows, ``build(spec)`` -> model, the generic trainer, EMA weights
    saved with the spec and normalisers."""
    spec, episodes = load_dataset(dataset)
    train_ids, val_ids = split_episodes(len(episodes), cfg.val_fraction, cfg.seed)
    tr = [episodes[i] for i in train_ids]
    va = [episodes[i] for i in val_ids]
    state_norm = MinMaxNormalizer.fit(np.concatenate([e.state for e in tr])) if spec.state_dim else MinMaxNormalizer.identity(0)
    action_norm = MinMaxNormalizer.fit(np.concatenate([e.action for e in tr]))
    mc = cfg.model
    cams = [c.name for c in spec.cameras]
    source = WindowDataset(tr, cams, mc.obs_horizon, mc.pred_horizon, state_norm, action_norm)
    val = WindowDataset(va, cams, mc.obs_horizon, mc.pred_horizon, state_norm, action_norm) if va else None
    torch.manual_seed(cfg.seed)  # the initial weights come from the seed, so --seed reproduces a run
    model = build(spec)
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    log.info(
        "training %s on %d episodes (%d windows), validating on %d; %d parameters",
        mc.kind, len(tr), len(source), len(va), count_parameters(model),
    )

    def save(ema_model, info):
        if getattr(ema_model, "banked", False):  # a banked mode latent's prior: the training demos' codes
            ema_model.fill_mode_bank(source.episode_ends())
        info = {
            **info,
            "episodes_train": len(tr),
            "episodes_val": len(va),
            "dataset": str(dataset),
            "config": cfg.to_dict(),
        }
        save_checkpoint(ckpt_path, ema_model, spec, state_norm, action_norm, info)

    result = train(model, source, cfg, out, save, val, resume)
    return ckpt_path, result


def init_distributed() -> bool:
    """Join the process group when launched by torchrun (gloo backend on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
        return True
    return False
