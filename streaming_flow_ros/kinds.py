"""The one registry of model kinds: checkpoint ``kind`` -> how to read its config, build its
network and run it. checkpoint.py and policy/streaming.py look kinds up here and know none
themselves. Imports are local so that reading the registry costs nothing until a kind is used
(diffusers, for the DP baseline, is imported only when a DP model or runtime is built).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelKind:
    """config: checkpoint "model" dict -> config object; model: (config, IOSpec) -> nn.Module;
    runtime: (model, Checkpoint, RuntimeConfig) -> RuntimePolicy."""

    config: Callable[[dict], Any]
    model: Callable[..., Any]
    runtime: Callable[..., Any]


def model_kinds() -> dict[str, ModelKind]:
    """Every model kind a checkpoint may name."""
    from .baselines.config import DPConfig, FMChunkConfig
    from .baselines.models import DPModel, FMChunkModel
    from .baselines.runtime import DPRuntime, FMChunkRuntime
    from .nets.model import ModelConfig, SFPModel
    from .policy.streaming import StreamingFlowPolicy

    return {
        "sfp": ModelKind(ModelConfig.from_checkpoint_dict, SFPModel, StreamingFlowPolicy),
        "dp": ModelKind(DPConfig.from_dict, DPModel, DPRuntime),
        "fm_chunk": ModelKind(FMChunkConfig.from_dict, FMChunkModel, FMChunkRuntime),
    }
