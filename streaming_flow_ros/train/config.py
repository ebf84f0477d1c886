"""Training configuration: one dataclass, loaded from YAML (data only, never evaluated)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..nets.model import ModelConfig


@dataclass
class TrainConfig:
    """Optimiser defaults follow the SFP authors (docs/METHOD.md): AdamW lr 1e-4, wd 1e-6, cosine
    with 500 warm-up steps, EMA power 0.75. ``steps`` counts optimiser steps (per process)."""

    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    eval_every: int = 500
    save_every: int = 1000
    seed: int = 0
    threads: int = 0  # 0: torch's default
    progress: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if not (0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not (0 <= self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        try:
            d = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"cannot read training config {path}: {e}") from e
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a training config must be a mapping")
        return cls.from_dict(d)
