"""Model-defining configs of the chunk baselines (saved in checkpoints; run-time choices such as
the DP sampler live in runtime.ChunkRuntimeConfig).

Both baselines share the observation encoder settings of SFP's ``ModelConfig`` (same ObsEncoder,
same defaults) and the chunk U-Net sizes. Chunk: the H future waypoints a_1..a_H of a training
window (the window's a_0 is the anchor the runtime starts from; see runtime.py).

Default sizes match SFP's default ``ModelConfig`` (hidden 256, depth 4) in parameter count:
U-Net channels (24, 48, 96) -> net 0.68 M vs SFP velocity net 0.69 M (6 joints, state only) and
0.85 M vs 0.95 M (6 joints + one camera; same ObsEncoder). (32, 64, 128) gives 1.1-1.4 M;
Diffusion Policy's (64, 128, 256) 4.1-4.6 M (compare SFP hidden 640, depth 4: 3.7-4.3 M).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal


@dataclass(frozen=True)
class ChunkNetConfig:
    """Fields common to the chunk baselines (horizons as in SFP's ModelConfig)."""

    obs_horizon: int = 2
    pred_horizon: int = 16
    action_horizon: int = 8
    down_dims: tuple[int, ...] = (24, 48, 96)
    kernel_size: int = 5
    n_groups: int = 8
    time_emb_dim: int = 64
    image_channels: tuple[int, ...] = (32, 64, 64)
    num_keypoints: int = 32
    image_feat_dim: int = 64
    crop_frac: float = 0.9

    def __post_init__(self) -> None:
        if not (1 <= self.obs_horizon <= 16):
            raise ValueError(f"obs_horizon must be in 1..16, got {self.obs_horizon}")
        if not (2 <= self.pred_horizon <= 256):
            raise ValueError(f"pred_horizon must be in 2..256, got {self.pred_horizon}")
        if not (1 <= self.action_horizon <= self.pred_horizon):
            raise ValueError(f"action_horizon must be in 1..pred_horizon, got {self.action_horizon}")
        if not self.down_dims or any(int(c) < 1 for c in self.down_dims):
            raise ValueError(f"down_dims must be positive channel counts, got {self.down_dims}")
        multiple = 2 ** (len(self.down_dims) - 1)
        if self.pred_horizon % multiple:
            raise ValueError(
                f"pred_horizon {self.pred_horizon} must be a multiple of {multiple} "
                f"(2 ** (len(down_dims) - 1)) for the U-Net"
            )
        if any(c % self.n_groups for c in self.down_dims):
            raise ValueError(f"down_dims {self.down_dims} must be divisible by n_groups {self.n_groups}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.time_emb_dim < 4 or self.time_emb_dim % 2:
            raise ValueError(f"time_emb_dim must be even and >= 4, got {self.time_emb_dim}")
        if not (0.5 <= self.crop_frac <= 1.0):
            raise ValueError(f"crop_frac must be in [0.5, 1], got {self.crop_frac}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["down_dims"] = list(self.down_dims)
        d["image_channels"] = list(self.image_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a mapping, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        d = dict(d)
        for key in ("down_dims", "image_channels"):
            if key in d:
                d[key] = tuple(int(c) for c in d[key])
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"malformed {cls.__name__}: {e}") from e


@dataclass(frozen=True)
class DPConfig(ChunkNetConfig):
    """Diffusion Policy (epsilon prediction). The noise schedule is model-defining (the net is
    trained on it); DDPM-100 or DDIM-10 sampling over it is a run-time choice.

    num_train_timesteps: diffusion steps in training (DP: 100).
    beta_schedule: diffusers' name (DP: squaredcos_cap_v2).
    clip_sample: clip the predicted clean chunk to [-1, 1] at every step (DP: True).
    """

    kind: Literal["dp"] = "dp"
    num_train_timesteps: int = 100
    beta_schedule: Literal["squaredcos_cap_v2", "linear", "scaled_linear"] = "squaredcos_cap_v2"
    clip_sample: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind != "dp":
            raise ValueError(f"DPConfig.kind must be 'dp', got {self.kind!r}")
        if not (2 <= self.num_train_timesteps <= 10000):
            raise ValueError(f"num_train_timesteps must be in 2..10000, got {self.num_train_timesteps}")
        if self.beta_schedule not in ("squaredcos_cap_v2", "linear", "scaled_linear"):
            raise ValueError(f"unknown beta_schedule {self.beta_schedule!r}")
        if not isinstance(self.clip_sample, bool):
            raise ValueError(f"clip_sample must be a bool, got {self.clip_sample!r}")


@dataclass(frozen=True)
class FMChunkConfig(ChunkNetConfig):
    """Conventional flow matching over the whole chunk (rectified-flow path).

    Denoising time s in [0, 1] runs from noise (s = 0) to data (s = 1):
    x_s = (1 - s) x_noise + s x_data, target velocity x_data - x_noise. (This ``s`` is NOT the
    package's flow time t, which for every runtime is execution time within the chunk.)
    time_scale: s is multiplied by this before the sinusoidal embedding (pitfall 5).
    """

    kind: Literal["fm_chunk"] = "fm_chunk"
    time_scale: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind != "fm_chunk":
            raise ValueError(f"FMChunkConfig.kind must be 'fm_chunk', got {self.kind!r}")
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ValueError(f"time_scale must be a finite number > 0, got {self.time_scale}")
