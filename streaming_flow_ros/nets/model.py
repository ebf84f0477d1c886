"""The SFP model: observation encoder + velocity field + the conditional path it is trained on.

``ModelConfig`` is model-defining (saved in the checkpoint); run-time settings live in
policy.protocol.RuntimeConfig. Everything here works in normalised units.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import nn

from ..flow.losses import draw_targets, flow_matching_loss
from ..flow.paths import LatentPath, StabilizingPath
from ..spec import IOSpec
from .encoders import IMAGE_ENCODERS, ObsEncoder
from .velocity import VelocityNet

# Velocity-net size presets (``model: {size: ...}`` in a config, expanded into hidden/depth):
# named by their residual blocks' parameters (depth x 2 hidden^2: what one pass multiplies),
# from the CPU default's scale to Diffusion Policy's (~64 M, docs/METHOD.md "Networks").
VELOCITY_SIZES: dict[str, tuple[int, int]] = {"1m": (256, 8), "4m": (512, 8), "16m": (1024, 8), "64m": (2048, 8)}


@dataclass(frozen=True)
class ModelConfig:
    """Model-defining hyper-parameters (normalised action units for sigma0/sigma1).

    obs_horizon T_o, pred_horizon H (chunk = H + 1 waypoints), action_horizon (waypoints a chunk
    is executed for by chunk baselines / the default re-anchor budget).
    path: "stabilizing" (sigma0, k) or "latent" (sigma0, sigma1, k).
    flow_samples: training only: (flow time, path noise) draws per observation window per step.
        The window is encoded once and its features serve every draw, so a pixel model gets
        flow_samples x the velocity supervision for little more than one encoder pass (a chunk
        model's loss already covers H actions per window; one SFP draw covers one).
    image_encoder: the per-camera trunk, "small" (``image_channels``) or "resnet18" (Diffusion
        Policy's ResNet-18 with GroupNorm; the paper's image encoder).
    mode_dim / mode_beta / mode_prior: a per-episode mode latent (ACT's CVAE, not in the SFP
        paper; mode_dim 0 = off). In training a small encoder reads the demo chunk's motion and
        the observation and gives q(z | chunk, h); z conditions the velocity net next to h, and
        the loss adds mode_beta x KL(q || prior). The prior is N(0, I) ("standard") or a
        Gaussian predicted from h ("learned", the CVAE's conditional prior: what h already
        tells costs z nothing, so z is left to carry what h cannot, such as which of two cubes);
        or z is one of mode_dim classes (one-hot), q and the prior p(c | h) categorical and the
        flow loss summed over the classes weighted by q ("categorical": a choice between a few
        options, which a unimodal Gaussian prior covers with mass between them); or ("flow") q
        is held near N(0, I) by the KL and p(z | h) is a conditional flow (rectified flow from
        N(0, I), ``mode_prior_steps`` Euler steps at run time) fitted to q's draws of z, so the
        prior can be as multimodal as the choices the demos make from h.
        Or ("bank") q reads the episode, not the chunk (``mode_source: episode``: the demo's
        last action, where it ended up, so every window of a demo shares one code and a fixed z
        is what training saw for a whole episode), is held near N(0, I) by the KL, and the prior
        is the demos themselves: ``mode_bank_size`` of the training episodes' codes (q's means)
        are kept in the checkpoint, and an episode draws one of them uniformly. A draw is
        always some demo's choice, never a point between two.
        At run time one draw per enable is kept across re-anchors and read through each plan's
        prior (z = mean(h) + std(h) x a standard normal draw, the class where a uniform draw
        falls in p(c | h), or the bank's entry a uniform draw picks), so every plan of an
        episode follows the mode the draw stands for.
        SFP's own way to choose a mode, its start noise, decays with the stabilising tube
        within one plan (docs/METHOD.md), so it cannot keep a choice.
    hidden / depth: the velocity net's width and residual blocks; ``from_dict`` also accepts
        ``size`` (a VELOCITY_SIZES preset, "1m" .. "64m") in their place.
    """

    kind: Literal["sfp"] = "sfp"
    obs_horizon: int = 2
    pred_horizon: int = 16
    action_horizon: int = 8
    path: Literal["stabilizing", "latent"] = "stabilizing"
    sigma0: float = 0.1
    k: float = 5.0
    sigma1: float = 0.1
    hidden: int = 256
    depth: int = 4
    time_emb_dim: int = 64
    time_scale: float = 100.0
    input_cond: bool = True  # observation and time also enter the velocity net's input layer
    image_channels: tuple[int, ...] = (32, 64, 64)
    num_keypoints: int = 32
    image_feat_dim: int = 64
    crop_frac: float = 0.9
    flow_samples: int = 1
    image_encoder: Literal["small", "resnet18"] = "small"
    mode_dim: int = 0
    mode_beta: float = 1.0e-3
    mode_prior: Literal["standard", "learned", "categorical", "flow", "bank"] = "learned"
    mode_prior_steps: int = 10
    mode_source: Literal["chunk", "episode"] = "chunk"
    mode_bank_size: int = 64

    def __post_init__(self) -> None:
        if self.kind != "sfp":
            raise ValueError(f"ModelConfig.kind must be 'sfp', got {self.kind!r}")
        if not (1 <= self.obs_horizon <= 16):
            raise ValueError(f"obs_horizon must be in 1..16, got {self.obs_horizon}")
        if not (2 <= self.pred_horizon <= 256):
            raise ValueError(f"pred_horizon must be in 2..256, got {self.pred_horizon}")
        if not (1 <= self.action_horizon <= self.pred_horizon):
            raise ValueError(f"action_horizon must be in 1..pred_horizon, got {self.action_horizon}")
        if self.path not in ("stabilizing", "latent"):
            raise ValueError(f"path must be stabilizing|latent, got {self.path!r}")
        for name in ("sigma0", "k", "sigma1", "time_scale", "crop_frac"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if isinstance(self.flow_samples, bool) or not isinstance(self.flow_samples, int) or not (
                1 <= self.flow_samples <= 256):
            raise ValueError(f"flow_samples must be an integer in 1..256, got {self.flow_samples!r}")
        if isinstance(self.mode_dim, bool) or not isinstance(self.mode_dim, int) or not (0 <= self.mode_dim <= 64):
            raise ValueError(f"mode_dim must be an integer in 0..64, got {self.mode_dim!r}")
        if not (isinstance(self.mode_beta, (int, float)) and math.isfinite(self.mode_beta) and self.mode_beta >= 0):
            raise ValueError(f"mode_beta must be a finite number >= 0, got {self.mode_beta!r}")
        if self.mode_prior not in ("standard", "learned", "categorical", "flow", "bank"):
            raise ValueError(f"mode_prior must be standard|learned|categorical|flow|bank, got {self.mode_prior!r}")
        if self.mode_source not in ("chunk", "episode"):
            raise ValueError(f"mode_source must be chunk|episode, got {self.mode_source!r}")
        if (self.mode_prior == "bank") != (self.mode_source == "episode") and self.mode_dim:
            raise ValueError("mode_prior 'bank' goes with mode_source 'episode' (a bank of the demos' codes), "
                             "and mode_source 'episode' with mode_prior 'bank'")
        if isinstance(self.mode_bank_size, bool) or not isinstance(self.mode_bank_size, int) or not (
                1 <= self.mode_bank_size <= 4096):
            raise ValueError(f"mode_bank_size must be an integer in 1..4096, got {self.mode_bank_size!r}")
        if isinstance(self.mode_prior_steps, bool) or not isinstance(self.mode_prior_steps, int) or not (
                1 <= self.mode_prior_steps <= 100):
            raise ValueError(f"mode_prior_steps must be an integer in 1..100, got {self.mode_prior_steps!r}")
        if self.mode_prior == "categorical" and self.mode_dim == 1:
            raise ValueError("a categorical mode latent needs mode_dim >= 2 classes")
        if self.mode_dim and self.path != "stabilizing":
            raise ValueError("mode_dim needs path 'stabilizing' (the latent path has its own z0)")
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder must be one of {IMAGE_ENCODERS}, got {self.image_encoder!r}")
        self.flow_path()  # validates the path parameters

    def flow_path(self) -> StabilizingPath | LatentPath:
        if self.path == "latent":
            return LatentPath(sigma0=self.sigma0, sigma1=self.sigma1, k=self.k)
        return StabilizingPath(sigma0=self.sigma0, k=self.k)

    @classmethod
    def from_checkpoint_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """``from_dict`` for a checkpoint's stored config: one written before ``input_cond``
        existed has no such key, and its velocity net has no input conditioning."""
        if isinstance(d, dict) and "input_cond" not in d:
            d = {**d, "input_cond": False}
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data; without a mode latent its keys are left out, so a
        model without one is written as it was before the option existed."""
        d = asdict(self)
        d["image_channels"] = list(self.image_channels)
        if not self.mode_dim:
            del d["mode_dim"], d["mode_beta"], d["mode_prior"]
        if d.get("mode_prior") != "flow":
            del d["mode_prior_steps"]
        if d.get("mode_prior") != "bank":
            del d["mode_source"], d["mode_bank_size"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - {"size"}
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        d = dict(d)
        if "size" in d:
            d.update(_size_preset(d.pop("size"), d))
        if not isinstance(d.get("input_cond", True), bool):
            raise ValueError(f"input_cond must be true or false, got {d['input_cond']!r}")
        if "image_channels" in d:
            d["image_channels"] = tuple(int(c) for c in d["image_channels"])
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"malformed model config: {e}") from e


def _size_preset(size: Any, given: dict[str, Any]) -> dict[str, int]:
    """hidden/depth of the VELOCITY_SIZES preset ``size``; ValueError if unknown or if ``given``
    sets hidden/depth to something else."""
    if size not in VELOCITY_SIZES:
        raise ValueError(f"size must be one of {sorted(VELOCITY_SIZES)}, got {size!r}")
    hidden, depth = VELOCITY_SIZES[size]
    for name, value in (("hidden", hidden), ("depth", depth)):
        if name in given and given[name] != value:
            raise ValueError(f"size {size!r} means {name} {value}, but {name} {given[name]!r} is also given")
    return {"hidden": hidden, "depth": depth}


class SFPModel(nn.Module):
    """Encoder + velocity net. State and actions are normalised; images are uint8."""

    def __init__(self, config: ModelConfig, spec: IOSpec) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.path = config.flow_path()
        self.encoder = ObsEncoder(
            spec,
            config.obs_horizon,
            config.image_channels,
            config.num_keypoints,
            config.image_feat_dim,
            config.crop_frac,
            config.image_encoder,
        )
        self.x_dim = spec.action_dim * self.path.state_dim_factor
        self.mode_dim = config.mode_dim
        self.categorical = False
        self.banked = bool(self.mode_dim) and config.mode_prior == "bank"
        if self.mode_dim:  # q(z | chunk motion, h): ACT's CVAE encoder, an MLP here; banked: q(z | episode end)
            chunk_dim = (config.pred_horizon + 1) * spec.action_dim
            in_dim = spec.action_dim if self.banked else chunk_dim + self.encoder.cond_dim
            self.categorical = config.mode_prior == "categorical"
            n_out = self.mode_dim if self.categorical else 2 * self.mode_dim  # logits | mean, log-variance
            self.mode_encoder = nn.Sequential(
                nn.Linear(in_dim, config.hidden), nn.SiLU(),
                nn.Linear(config.hidden, config.hidden), nn.SiLU(),
                nn.Linear(config.hidden, n_out))
            if config.mode_prior == "flow":  # p(z | h): velocity of z_t (t, h), rectified flow from N(0, I)
                self.mode_prior_net = nn.Sequential(
                    nn.Linear(self.mode_dim + 1 + self.encoder.cond_dim, config.hidden), nn.SiLU(),
                    nn.Linear(config.hidden, config.hidden), nn.SiLU(),
                    nn.Linear(config.hidden, self.mode_dim))
            elif self.banked:  # the prior: training episodes' codes, filled by fill_mode_bank() when saved
                self.register_buffer("mode_bank", torch.zeros(config.mode_bank_size, self.mode_dim))
            elif config.mode_prior != "standard":  # p(z | h); a constant input makes it learnable without h
                self.mode_prior_net = nn.Sequential(
                    nn.Linear(self.encoder.cond_dim + 1, config.hidden), nn.SiLU(),
                    nn.Linear(config.hidden, n_out))
        self.velocity = VelocityNet(
            self.x_dim,
            self.encoder.cond_dim + self.mode_dim,
            config.hidden,
            config.depth,
            config.time_emb_dim,
            config.time_scale,
            config.input_cond,
        )
        self.loss_terms: dict[str, float] = {}  # named parts of the last training loss (the trainer logs them)

    def encode(self, state_n: torch.Tensor, images: dict[str, torch.Tensor], generator=None) -> torch.Tensor:
        """(B, T_o, D_s), {name: (B, T_o, Hh, Ww, C) uint8} -> cond (B, cond_dim)."""
        return self.encoder(state_n, images, generator)

    def with_mode(self, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """cond (B, cond_dim) -> the velocity net's conditioning: cond, then the mode latent z
        (B, mode_dim; zeros when None: the per-observation part, z's own added by ``mode_cache``)."""
        if not self.mode_dim:
            return cond
        if z is None:
            z = cond.new_zeros(cond.shape[0], self.mode_dim)
        return torch.cat([cond, z], dim=-1)

    def mode_cache(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, mode_dim) -> its part of ``velocity.precompute`` (linear in the conditioning,
        no bias): precompute(with_mode(cond, z)) = precompute(with_mode(cond)) + mode_cache(z)."""
        zeros = z.new_zeros(z.shape[0], self.encoder.cond_dim)
        return self.velocity.precompute(torch.cat([zeros, z], dim=-1))

    def _posterior_out(self, chunk: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The mode encoder's output for chunk_n (B, H+1, D_a) and cond: the chunk enters as its
        motion from its first waypoint."""
        return self.mode_encoder(torch.cat([(chunk - chunk[:, :1]).flatten(1), cond], dim=-1))

    def _prior_out(self, cond: torch.Tensor) -> torch.Tensor:
        """The prior net's output for cond (B, cond_dim), a constant feature appended."""
        return self.mode_prior_net(torch.cat([cond, cond.new_ones(cond.shape[0], 1)], dim=-1))

    def mode_posterior(self, chunk: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """chunk_n (B, H+1, D_a), cond (B, cond_dim) -> (mean, log-variance) of q(z | ...),
        each (B, mode_dim)."""
        if self.categorical:
            raise ValueError("a categorical mode latent has class probabilities, not a Gaussian posterior")
        if self.banked:
            raise ValueError("a banked mode latent reads the episode's end: episode_posterior()")
        mean, logvar = self._posterior_out(chunk, cond).chunk(2, dim=-1)
        return mean, logvar.clamp(-10.0, 5.0)

    def episode_posterior(self, end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Banked mode latent: end_n (B, D_a), the episode's last action (normalised) -> (mean,
        log-variance) of q(z | episode), each (B, mode_dim)."""
        if not self.banked:
            raise ValueError("episode_posterior() needs mode_prior 'bank'")
        mean, logvar = self.mode_encoder(end).chunk(2, dim=-1)
        return mean, logvar.clamp(-10.0, 5.0)

    @torch.no_grad()
    def fill_mode_bank(self, ends: torch.Tensor) -> None:
        """Banked mode latent: the bank from the training episodes' last actions, end_n (N, D_a):
        q's means, ``mode_bank_size`` of them spread evenly over the N episodes (repeating
        when N is smaller)."""
        if not self.banked:
            raise ValueError("fill_mode_bank() needs mode_prior 'bank'")
        if ends.ndim != 2 or ends.shape[0] < 1:
            raise ValueError(f"fill_mode_bank() needs (N >= 1, D_a) episode ends, got {tuple(ends.shape)}")
        k = self.mode_bank.shape[0]
        idx = (torch.arange(k) * ends.shape[0]) // k
        mean, _ = self.episode_posterior(ends[idx].to(self.mode_bank))
        if not torch.isfinite(mean).all():
            raise ValueError("the mode bank came out non-finite")
        self.mode_bank.copy_(mean)

    def mode_bank_pick(self, u: float) -> torch.Tensor:
        """Banked mode latent: the entry a uniform draw u in [0, 1) picks, (mode_dim,)."""
        k = self.mode_bank.shape[0]
        return self.mode_bank[min(int(u * k), k - 1)]

    def mode_prior_logits(self, cond: torch.Tensor) -> torch.Tensor:
        """Categorical mode latent: cond (B, cond_dim) -> log p(c | h), (B, mode_dim)."""
        return torch.log_softmax(self._prior_out(cond), dim=-1)

    @property
    def flow_prior(self) -> bool:
        """The mode latent's prior p(z | h) is a conditional flow (``mode_prior: flow``)."""
        return bool(self.mode_dim) and self.config.mode_prior == "flow"

    def mode_prior_velocity(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Flow prior: z_t (B, mode_dim), t (B,) in [0, 1], cond (B, cond_dim) -> dz/dt."""
        return self.mode_prior_net(torch.cat([z_t, t[:, None].to(z_t.dtype), cond], dim=-1))

    def mode_prior_sample(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Flow prior: z for cond (B, cond_dim) from the standard normal ``noise`` (B, mode_dim),
        ``mode_prior_steps`` Euler steps of the prior's flow; the same noise, the same z for the
        same h (the runtime keeps one noise draw per enable)."""
        if not self.flow_prior:
            raise ValueError("mode_prior_sample() needs mode_prior 'flow'")
        n = self.config.mode_prior_steps
        z = noise.to(cond.dtype)
        for i in range(n):
            t = torch.full((cond.shape[0],), i / n, dtype=cond.dtype, device=cond.device)
            z = z + self.mode_prior_velocity(z, t, cond) / n
        return z

    def mode_prior_draw(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """z from the prior p(z | h) for cond (B, cond_dim), given standard normal ``noise``
        (B, mode_dim): mean + std x noise, or the noise carried through a flow prior."""
        if self.flow_prior:
            return self.mode_prior_sample(cond, noise)
        if self.banked:  # noise's first coordinate read as a uniform draw (its normal CDF)
            u = 0.5 * (1.0 + torch.erf(noise[:, 0].double() / math.sqrt(2.0)))
            return torch.stack([self.mode_bank_pick(float(v)) for v in u]).to(cond)
        mean, logvar = self.mode_prior(cond)
        return mean + torch.exp(0.5 * logvar) * noise

    def mode_prior(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cond (B, cond_dim) -> (mean, log-variance) of the prior p(z | h), each (B, mode_dim)."""
        if self.categorical:
            raise ValueError("a categorical mode latent has class probabilities: mode_prior_logits()")
        if self.flow_prior:
            raise ValueError("a flow prior has no mean and variance: mode_prior_sample()")
        if self.config.mode_prior in ("standard", "bank"):  # bank: trained against N(0, I)
            zeros = cond.new_zeros(cond.shape[0], self.mode_dim)
            return zeros, zeros
        mean, logvar = self._prior_out(cond).chunk(2, dim=-1)
        return mean, logvar.clamp(-10.0, 5.0)

    def forward(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss (so DistributedDataParallel can wrap the model)."""
        return self.loss(batch, generator)

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss on a batch: state_n (B, T_o, D_s), images, chunk_n (B, H+1, D_a);
        ``config.flow_samples`` independent (t, noise) draws per window share its encoding."""
        cond = self.encode(batch["state_n"], batch["images"], generator)
        chunk = batch["chunk_n"]
        if self.categorical:
            return self._categorical_loss(cond, chunk, generator)
        kl = None
        if self.mode_dim:  # one z per window, shared by its flow draws
            if self.banked:
                if "end_n" not in batch:
                    raise ValueError("a banked mode latent trains on batches with end_n (the episode's last action)")
                mean, logvar = self.episode_posterior(batch["end_n"])
            else:
                mean, logvar = self.mode_posterior(chunk, cond)
            noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
            z = mean + torch.exp(0.5 * logvar) * noise
            prior_loss = None
            if self.flow_prior:  # q against N(0, I); the flow prior learns q's z from h (no gradient into q)
                kl = 0.5 * (logvar.exp() + mean.square() - 1.0 - logvar)
                prior_loss = self._flow_prior_loss(z.detach(), cond.detach(), generator)
            else:
                p_mean, p_logvar = self.mode_prior(cond)
                kl = 0.5 * (p_logvar - logvar + (logvar.exp() + (mean - p_mean).square()) / p_logvar.exp() - 1.0)
            kl = kl.sum(-1).mean()
            cond = self.with_mode(cond, z)
        if self.config.flow_samples > 1:
            cond = cond.repeat_interleave(self.config.flow_samples, 0)
            chunk = chunk.repeat_interleave(self.config.flow_samples, 0)
        tgt = draw_targets(self.path, chunk, generator)
        v = self.velocity(tgt.sample.x_t, tgt.t, cond)
        loss = flow_matching_loss(v, tgt.sample.dx_t)
        if kl is None:
            return loss
        if self.training:  # logged by the trainer: the KL in nats per window, before its weight
            self.loss_terms = {"kl": float(kl.detach())}
        loss = loss + self.config.mode_beta * kl
        if prior_loss is not None:
            if self.training:
                self.loss_terms["prior"] = float(prior_loss.detach())
            loss = loss + prior_loss
        return loss

    def _flow_prior_loss(self, z: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Rectified-flow loss of the prior p(z | h) on draws z (B, mode_dim) of q: z_t = (1 - t)
        noise + t z, target velocity z - noise; the observation features enter detached, so the
        prior shapes neither the encoder nor q."""
        noise = torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=generator)
        t = torch.rand(z.shape[0], device=z.device, dtype=z.dtype, generator=generator)
        z_t = (1.0 - t[:, None]) * noise + t[:, None] * z
        return (self.mode_prior_velocity(z_t, t, cond) - (z - noise)).square().mean()

    def _categorical_loss(self, cond: torch.Tensor, chunk: torch.Tensor,
                          generator: torch.Generator | None) -> torch.Tensor:
        """Categorical mode latent: every window's flow loss under each class c (one-hot z),
        summed with the weights q(c | chunk, h), plus mode_beta x KL(q || p(c | h)); the same
        flow draws serve every class."""
        B, K, S = cond.shape[0], self.mode_dim, self.config.flow_samples
        log_q = torch.log_softmax(self._posterior_out(chunk, cond), dim=-1)
        log_p = self.mode_prior_logits(cond)
        kl = (log_q.exp() * (log_q - log_p)).sum(-1).mean()
        chunk_s = chunk.repeat_interleave(S, 0)
        tgt = draw_targets(self.path, chunk_s, generator)  # (B S) draws
        onehot = torch.eye(K, dtype=cond.dtype, device=cond.device)
        cond_k = torch.cat([self.with_mode(cond, onehot[k].expand(B, K)) for k in range(K)])  # (K B, .)
        v = self.velocity(tgt.sample.x_t.repeat(K, 1), tgt.t.repeat(K), cond_k.repeat_interleave(S, 0))
        err = (v - tgt.sample.dx_t.repeat(K, 1)).square().mean(-1).view(K, B, S).mean(-1)  # (K, B)
        loss = (log_q.exp().T * err).sum(0).mean()
        if self.training:
            self.loss_terms = {"kl": float(kl.detach())}
        return loss + self.config.mode_beta * kl


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
