"""The chunk baselines' models: observation encoder (SFP's ObsEncoder) + chunk U-Net, with the
training loss (``forward``) and the whole-chunk sampler. Normalised units throughout.

Chunk convention: the model generates the H future waypoints a_1..a_H of a training window,
x = chunk_n[:, 1:] (B, H, D_a); waypoint j is j data periods after the observation. The window's
a_0 is not generated: the runtime starts from the anchor (last commanded action) there, exactly
like SFP, so no method gets a jump at the chunk start that another does not.

- DPModel: Diffusion Policy. Train: x_k = sqrt(abar_k) x + sqrt(1 - abar_k) eps, k ~ U{0..K-1},
  loss |eps_theta(x_k, k | h) - eps|^2. Sample: x_K ~ N(0, I), then the diffusers scheduler's
  step (DDPM or DDIM) with the predicted eps down to x_0.
- FMChunkModel: flow matching over the chunk, denoising time s from noise (0) to data (1):
  x_s = (1 - s) x_noise + s x, loss |v_theta(x_s, s | h) - (x - x_noise)|^2; sample with
  Euler steps x <- x + ds v_theta(x, s | h) from s = 0 to 1.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from ..nets.encoders import ObsEncoder
from ..spec import IOSpec
from .config import ChunkNetConfig, DPConfig, FMChunkConfig
from .unet1d import ConditionalUnet1d

Sampler = Literal["ddpm", "ddim"]


class _ChunkModel(nn.Module):
    """Encoder + U-Net, shared by the two baselines (their losses and samplers differ)."""

    def __init__(self, config: ChunkNetConfig, spec: IOSpec, time_scale: float) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.encoder = ObsEncoder(
            spec, config.obs_horizon, config.image_channels, config.num_keypoints,
            config.image_feat_dim, config.crop_frac,
        )
        self.net = ConditionalUnet1d(
            spec.action_dim, self.encoder.cond_dim, config.down_dims, config.kernel_size,
            config.n_groups, config.time_emb_dim, time_scale,
        )

    def encode(self, state_n: torch.Tensor, images: dict[str, torch.Tensor], generator=None) -> torch.Tensor:
        """(B, T_o, D_s), {name: (B, T_o, Hh, Ww, C) uint8} -> cond (B, cond_dim)."""
        return self.encoder(state_n, images, generator)

    def forward(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss on state_n (B, T_o, D_s), images, chunk_n (B, H+1, D_a)."""
        chunk_n = batch["chunk_n"]
        H = self.config.pred_horizon
        if chunk_n.shape[1] != H + 1:
            raise ValueError(f"chunk_n has {chunk_n.shape[1]} waypoints, expected H + 1 = {H + 1}")
        cond = self.encode(batch["state_n"], batch["images"], generator)
        return self.loss(chunk_n[:, 1:], cond, generator)

    def loss(self, x: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError


def make_scheduler(config: DPConfig, sampler: Sampler, steps: int):
    """A diffusers scheduler over the model's training schedule with ``steps`` inference steps.

    DDPM: ancestral sampling, fixed_small variance (DP's sim setting with 100 steps).
    DDIM: deterministic (eta = 0), final alpha 1 (DP's real-robot setting with 10 steps).
    Both clip the predicted clean chunk to [-1, 1] when ``config.clip_sample`` (as DP does).
    """
    # Submodule imports: `import diffusers` alone costs ~5 s; these ~2.5 s.
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    if not (1 <= int(steps) <= config.num_train_timesteps):
        raise ValueError(f"inference steps must be in 1..{config.num_train_timesteps}, got {steps}")
    common = {
        "num_train_timesteps": config.num_train_timesteps,
        "beta_schedule": config.beta_schedule,
        "clip_sample": config.clip_sample,
        "prediction_type": "epsilon",
    }
    if sampler == "ddpm":
        sched = DDPMScheduler(**common, variance_type="fixed_small")
    elif sampler == "ddim":
        sched = DDIMScheduler(**common, set_alpha_to_one=True, steps_offset=0)
    else:
        raise ValueError(f"sampler must be ddpm|ddim, got {sampler!r}")
    sched.set_timesteps(int(steps))
    return sched


class DPModel(_ChunkModel):
    """Diffusion Policy: epsilon-predicting chunk U-Net (integer diffusion steps, time scale 1)."""

    def __init__(self, config: DPConfig, spec: IOSpec) -> None:
        if not isinstance(config, DPConfig):
            raise TypeError(f"DPModel needs a DPConfig, got {type(config).__name__}")
        super().__init__(config, spec, time_scale=1.0)
        self.train_scheduler = make_scheduler(config, "ddpm", config.num_train_timesteps)

    def loss(self, x: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x (B, H, D_a) clean normalised chunk; epsilon-prediction MSE."""
        B = x.shape[0]
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        k = torch.randint(0, self.config.num_train_timesteps, (B,), generator=generator)
        x_k = self.train_scheduler.add_noise(x, eps, k)
        return torch.mean((self.net(x_k, k, cond) - eps) ** 2)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, scheduler, generator: torch.Generator | None = None) -> torch.Tensor:
        """cond (B, cond_dim) -> chunk (B, H, D_a) in [-1, 1] (normalised), through every
        timestep of ``scheduler`` (from ``make_scheduler``; step() does not mutate it)."""
        B = cond.shape[0]
        x = torch.randn((B, self.config.pred_horizon, self.spec.action_dim), generator=generator, dtype=cond.dtype)
        for k in scheduler.timesteps:
            eps = self.net(x, k, cond)
            x = scheduler.step(eps, int(k), x, generator=generator).prev_sample
        return x


class FMChunkModel(_ChunkModel):
    """Flow matching over the whole chunk; denoising time s from noise (0) to data (1)."""

    def __init__(self, config: FMChunkConfig, spec: IOSpec) -> None:
        if not isinstance(config, FMChunkConfig):
            raise TypeError(f"FMChunkModel needs an FMChunkConfig, got {type(config).__name__}")
        super().__init__(config, spec, time_scale=config.time_scale)

    def loss(self, x: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x (B, H, D_a) clean normalised chunk; rectified-flow velocity MSE."""
        B = x.shape[0]
        x_noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        s = torch.rand(B, generator=generator, dtype=x.dtype)
        x_s = (1.0 - s)[:, None, None] * x_noise + s[:, None, None] * x
        return torch.mean((self.net(x_s, s, cond) - (x - x_noise)) ** 2)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """cond (B, cond_dim) -> chunk (B, H, D_a) normalised, ``steps`` Euler steps from noise."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        B = cond.shape[0]
        x = torch.randn((B, self.config.pred_horizon, self.spec.action_dim), generator=generator, dtype=cond.dtype)
        ds = 1.0 / steps
        s = torch.zeros(B, dtype=cond.dtype)
        for i in range(steps):
            x = x + ds * self.net(x, s.fill_(i * ds), cond)
        return x


def count_parameters(model: nn.Module, prefix: str = "") -> int:
    """Parameters of ``model`` whose name starts with ``prefix`` ('' = all)."""
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))
