"""The compared methods and how each is trained on a Push-T dataset (same windows, normaliser,
episode split, optimiser, EMA and trainer for all: train/pipeline.py, baselines/train.py).

Training "slots": dp_ddim and dp_ddpm are one DP checkpoint sampled two ways (as in Diffusion
Policy), so four networks are trained per seed: sfp, sfp_k0, dp, fm_chunk.

CPU sizes (docs/BENCHMARKS.md: paper-size nets cost seconds per chunk here): SFP velocity net
hidden 256 x depth 4 with input conditioning (ModelConfig.input_cond), DP / FM-chunk U-Net channels (24, 48, 96): both ~0.7 M parameters
(printed in the results). Horizons: T_o 2, H 16, action horizon 8. SFP: sigma0 0.4, k 15
(the authors' Push-T state setting); sfp_k0 changes only k.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ...baselines.config import DPConfig, FMChunkConfig
from ...baselines.train import BaselineTrainConfig, train_baseline
from ...nets.model import ModelConfig
from ...train.config import TrainConfig
from ...train.pipeline import train_from_dataset

log = logging.getLogger(__name__)

METHODS = ("sfp", "sfp_k0", "dp_ddim", "dp_ddpm", "fm_chunk")
SLOTS = ("sfp", "sfp_k0", "dp", "fm_chunk")
METHOD_SLOT = {"sfp": "sfp", "sfp_k0": "sfp_k0", "dp_ddim": "dp", "dp_ddpm": "dp", "fm_chunk": "fm_chunk",
               # real-time executors of the FM-chunk network (baselines/executors.py): not in METHODS
               "fm_rtc": "fm_chunk", "fm_ensemble": "fm_chunk", "fm_async": "fm_chunk"}
HORIZONS = {"obs_horizon": 2, "pred_horizon": 16, "action_horizon": 8}
SFP_SIGMA0, SFP_K = 0.4, 15.0
LR = 1e-3  # AdamW peak lr for every slot (see train_config)


def model_config(slot: str, flow_samples: int = 1, k: float = SFP_K, sigma0: float = SFP_SIGMA0):
    """The model-defining config of a training slot. SFP slots only: ``flow_samples``
    (ModelConfig.flow_samples), the path's gain ``k`` (sfp; sfp_k0 keeps k = 0) and width ``sigma0``."""
    sfp = {"hidden": 256, "depth": 4, "flow_samples": flow_samples, "sigma0": sigma0}
    if slot == "sfp":
        return ModelConfig(**HORIZONS, k=k, **sfp)
    if slot == "sfp_k0":
        return ModelConfig(**HORIZONS, k=0.0, **sfp)
    if slot == "dp":
        return DPConfig(**HORIZONS, down_dims=(24, 48, 96))
    if slot == "fm_chunk":
        return FMChunkConfig(**HORIZONS, down_dims=(24, 48, 96))
    raise ValueError(f"unknown training slot {slot!r} (known: {SLOTS})")


def train_config(slot: str, steps: int, batch_size: int = 256, seed: int = 0, threads: int = 0,
                 progress: bool = False, lr: float = LR, flow_samples: int = 1, k: float = SFP_K,
                 sigma0: float = SFP_SIGMA0) -> TrainConfig:
    """AdamW, wd 1e-6, cosine, EMA 0.75 (docs/METHOD.md) for every slot; warm-up min(500, steps / 10)
    so short CPU budgets still decay. The peak lr defaults to 1e-3, not the authors' 1e-4: their
    1e-4 is for hundreds of epochs, and at the 30-180 epochs this CPU affords it leaves every
    method near the random floor (DP-DDIM after 3,000 steps: 0.18 at 1e-4, 0.45 at 1e-3)."""
    common = {
        "steps": steps, "batch_size": batch_size, "seed": seed, "warmup_steps": min(500, max(1, steps // 10)),
        "lr": lr,
        # validation (4 x 256 windows) at most every 50 steps: in a 15-step smoke run it cost more than the training
        "eval_every": max(50, steps // 4), "save_every": max(1, steps // 4), "threads": threads, "progress": progress,
    }
    model = model_config(slot, flow_samples, k, sigma0)
    if slot in ("sfp", "sfp_k0"):
        return TrainConfig(**common, model=model)
    return BaselineTrainConfig(**common, model=model)


def _recorded_model(slot: str, recorded: dict | None, want: dict) -> dict:
    """The model config a finished run's summary stands for, in today's keys. Summaries written
    before they recorded the model: the SFP nets then had no input conditioning
    (ModelConfig.input_cond), the U-Nets were as they are (``want``). SFP keys added since
    take the value they had before: one flow draw per window (ModelConfig.flow_samples); any
    other key added since, its default (e.g. ``image_encoder``), as the checkpoint loader reads it."""
    if slot not in ("sfp", "sfp_k0"):
        return want if recorded is None else recorded
    if recorded is None:
        return {**want, "input_cond": False, "flow_samples": 1}
    recorded = {"flow_samples": 1, **recorded}
    try:
        return ModelConfig.from_dict(recorded).to_dict()
    except ValueError:  # not a config this version reads: it matches nothing
        return recorded


def train_slot(dataset: str | Path, slot: str, out: str | Path, steps: int, seed: int = 0, batch_size: int = 256,
               threads: int = 0, progress: bool = False, lr: float = LR, flow_samples: int = 1,
               k: float = SFP_K, sigma0: float = SFP_SIGMA0) -> tuple[Path, dict]:
    """Train one slot; returns (checkpoint path, {"steps", "loss", "val_loss", "seconds"}).
    A finished run with the same settings (``out/train_summary.json``) is not repeated, one with
    other settings is replaced; an interrupted one resumes from ``out/train_state.pt`` (the
    trainer refuses a state written under another config)."""
    cfg = train_config(slot, steps, batch_size, seed, threads, progress, lr, flow_samples, k, sigma0)
    out = Path(out)
    summary = out / "train_summary.json"
    want = {"slot": slot, "steps": steps, "batch_size": batch_size, "seed": seed, "lr": lr, "dataset": str(dataset),
            "model": cfg.model.to_dict()}
    if summary.is_file():
        done = json.loads(summary.read_text())
        done["model"] = _recorded_model(slot, done.get("model"), want["model"])
        if all(done.get(k) == v for k, v in want.items()) and (out / "policy.safetensors").is_file():
            return out / "policy.safetensors", done["result"]
        # a finished run with other settings (or without its checkpoint): start over, not resume
        log.info("%s holds a finished run with other settings or no checkpoint: training again", out)
        (out / "train_state.pt").unlink(missing_ok=True)
        summary.unlink()
    t0 = time.perf_counter()
    if isinstance(cfg, BaselineTrainConfig):
        path, res = train_baseline(dataset, out, cfg)
    else:
        path, res = train_from_dataset(dataset, out, cfg)
    info = {"steps": res.steps, "loss": res.final_loss, "val_loss": res.val_loss, "seconds": time.perf_counter() - t0}
    summary.write_text(json.dumps({**want, "result": info}, indent=2))
    log.info("trained %s seed %d: %s", slot, seed, info)
    return path, info
