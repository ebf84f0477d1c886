"""The training loop: AdamW, cosine schedule with warm-up, EMA weights (used for evaluation and
saved in checkpoints), gradient clipping, periodic validation, resumable, and DistributedDataParallel
(gloo on CPU) when launched under ``torchrun``.

The loop is generic over a ``BatchSource`` (windows of episodes, or the toy chunk sources), and
the model's ``forward(batch, generator)`` returns its training loss.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .config import TrainConfig

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    def __len__(self) -> int: ...

    def batch(self, idx: np.ndarray) -> Any: ...


class EMA:
    """Exponential moving average of weights with Diffusion Policy's warm-up:
    decay = min(max_decay, 1 - (1 + step) ** -power)."""

    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power, self.max_decay, self.step = power, max_decay, 0

    def decay(self) -> float:
        return 0.0 if self.step == 0 else min(self.max_decay, 1.0 - (1.0 + self.step) ** -self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        for s, p in zip(self.model.parameters(), model.parameters()):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for s, b in zip(self.model.buffers(), model.buffers()):
            s.copy_(b)
        self.step += 1


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup`` steps, then cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    val_loss: float | None
    seconds: float
    ema: nn.Module


def _to_model_batch(b: Any) -> Any:
    return b.as_dict() if hasattr(b, "as_dict") else b


def train(
    model: nn.Module,
    source: BatchSource,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    save: Callable[[nn.Module, dict[str, Any]], None] | None = None,
    val_source: BatchSource | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train ``model`` in place; returns the EMA copy. ``save(ema_model, info)`` is called on rank 0
    every ``cfg.save_every`` steps and at the end. With ``out_dir``, a resumable state is kept in
    ``out_dir/train_state.pt`` (tensors only, loaded with weights_only=True)."""
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model.train()
    ema = EMA(model, cfg.ema_power, cfg.ema_max_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, cfg.warmup_steps, cfg.steps))
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)  # noise, crops
    rng = np.random.default_rng(cfg.seed * 1000 + rank)  # batch indices: different per rank
    start = 0
    out = Path(out_dir) if out_dir else None
    state_path = out / "train_state.pt" if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if resume and state_path and state_path.is_file():
        st = torch.load(state_path, weights_only=True)
        _check_resume(st, cfg, state_path)
        model.load_state_dict(st["model"])
        ema.model.load_state_dict(st["ema"])
        opt.load_state_dict(st["optim"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        rng = np.random.default_rng(int(st["step"]) * 7919 + cfg.seed * 1000 + rank)
        ema.step = start = int(st["step"])
        if rank == 0:
            log.info("resumed from %s at step %d", state_path, start)
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    bs = max(1, cfg.batch_size // world)
    n = len(source)
    t0 = time.perf_counter()
    losses: list[float] = []
    terms: dict[str, list[float]] = {}  # named parts of the loss a model reports (loss_terms), logged
    val_loss = None
    bar = None
    if rank == 0 and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
    log_file = open(out / "train_log.jsonl", "a") if (out and rank == 0) else None  # noqa: SIM115 (closed in finally)
    try:
        for step in range(start, cfg.steps):
            idx = rng.integers(0, n, size=bs)
            loss = net(_to_model_batch(source.batch(idx)), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            ema.update(model)
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise FloatingPointError(f"training loss became {lv} at step {step}")
            losses.append(lv)
            for name, value in getattr(model, "loss_terms", {}).items():
                terms.setdefault(name, []).append(value)
            done = step + 1
            if bar:
                bar.update(1)
                if done % 20 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if val_source is not None and (done % cfg.eval_every == 0 or done == cfg.steps):
                # 4 batches of 256 windows, fewer for small training batches (smoke runs): every config
                # of record trains with batch >= 64
                val_loss = evaluate_loss(ema.model, val_source, cfg.seed, bs=min(256, 4 * cfg.batch_size))
            if log_file and (done % 50 == 0 or done == cfg.steps):
                rec = {"step": done, "loss": float(np.mean(losses[-50:])), "lr": sched.get_last_lr()[0]}
                if val_loss is not None:
                    rec["val_loss"] = val_loss
                rec.update({name: float(np.mean(v[-50:])) for name, v in terms.items()})
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
            if done % cfg.save_every == 0 or done == cfg.steps:
                if rank == 0 and state_path:
                    tmp = state_path.with_suffix(".tmp")
                    torch.save(
                        {
                            "model": model.state_dict(),
                            "ema": ema.model.state_dict(),
                            "optim": opt.state_dict(),
                            "sched": sched.state_dict(),
                            "gen": gen.get_state(),
                            "step": torch.tensor(done),
                            "config": resume_fingerprint(cfg),
                        },
                        tmp,
                    )
                    os.replace(tmp, state_path)
                if rank == 0 and save:
                    info = {"step": done, "loss": float(np.mean(losses[-50:])), "val_loss": val_loss}
                    save(ema.model, info)
    finally:
        if bar:
            bar.close()
        if log_file:
            log_file.close()
    final = float(np.mean(losses[-50:])) if losses else float("nan")
    return TrainResult(cfg.steps, final, val_loss, time.perf_counter() - t0, ema.model)


@torch.no_grad()
def evaluate_loss(model: nn.Module, source: BatchSource, seed: int, batches: int = 4, bs: int = 256) -> float:
    """Mean flow-matching loss of ``model`` (eval mode) on fixed random batches of ``source``."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed + 12345)
    rng = np.random.default_rng(seed + 12345)
    vals = [float(model(_to_model_batch(source.batch(rng.integers(0, len(source), size=bs))), gen)) for _ in range(batches)]
    model.train(was_training)
    return float(np.mean(vals))


# settings that may change between a run and its resumption: bookkeeping, and ``steps`` (a
# finished run may be extended; the cosine schedule then follows the new length)
_RESUME_FREE = ("steps", "progress", "threads", "eval_every", "save_every")


def resume_fingerprint(cfg: TrainConfig) -> str:
    """The training config as JSON, without the settings a resumed run may change."""
    d = cfg.to_dict()
    for k in _RESUME_FREE:
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str)


def _check_resume(state: dict, cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a ``train_state.pt`` written under another config (lr, batch, model...;
    not ``steps``, see _RESUME_FREE):
    its optimiser, schedule and weights would silently carry over into the new run."""
    have = state.get("config")
    if have is None:  # written before the fingerprint existed
        log.warning("%s has no config record: resuming without checking it matches", path)
        return
    want = resume_fingerprint(cfg)
    if have != want:
        a, b = json.loads(have), json.loads(want)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"{path} was written by a different training config (differs in {diff}): "
                         "use another output directory, or --no-resume to start over")
