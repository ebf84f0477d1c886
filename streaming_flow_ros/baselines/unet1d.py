"""The chunk network of the baselines: a FiLM-conditioned 1-D convolutional U-Net over the action
chunk, after Diffusion Policy's ``ConditionalUnet1D`` (Chi et al. 2023), written here.

Input x (B, H, D_a) (a noisy chunk), a per-example scalar time (B,) and the observation
features cond (B, cond_dim); output (B, H, D_a) (epsilon for DP, a velocity for FM-chunk).

    emb   = MLP(sinusoidal(time_scale * time))                     (B, E)
    g     = [emb, cond]                                            (B, E + cond_dim)
    block = Conv-GN-Mish -> FiLM(g): h * scale + shift -> Conv-GN-Mish, + residual 1x1 conv
    down:  per level [block, block, stride-2 conv] (no downsample at the last level)
    mid:   block, block;   up: skip-concat, [block, block, transposed conv];   1x1 conv out.

H must be divisible by 2 ** (len(down_dims) - 1). Time is scaled before the embedding
(docs/METHOD.md, "Training"): DP feeds integer diffusion steps with scale 1, FM-chunk feeds its
denoising time s in [0, 1] with scale 100.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.embeddings import SinusoidalEmbedding


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish on (B, C, H); length preserved."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
            nn.GroupNorm(groups, c_out),
            nn.Mish(),
        )


class CondResBlock1d(nn.Module):
    """Two conv blocks with FiLM (per-channel scale and shift from the conditioning) between."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv1 = Conv1dBlock(c_in, c_out, kernel, groups)
        self.conv2 = Conv1dBlock(c_out, c_out, kernel, groups)
        self.film = nn.Linear(cond_dim, 2 * c_out)
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.c_out = c_out

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, L), g = Mish(conditioning) (B, cond_dim) -> (B, C_out, L)."""
        scale, shift = self.film(g).view(-1, 2, self.c_out, 1).unbind(1)  # (B, C_out, 1) each
        h = self.conv1(x) * scale + shift
        return self.conv2(h) + self.residual(x)


class ConditionalUnet1d(nn.Module):
    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        n_groups: int = 8,
        time_emb_dim: int = 128,
        time_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if action_dim < 1 or cond_dim < 0 or not down_dims:
            raise ValueError(f"bad U-Net sizes: action_dim={action_dim} cond_dim={cond_dim} down_dims={down_dims}")
        if any(c % n_groups for c in down_dims):
            raise ValueError(f"every down_dims entry must be divisible by n_groups={n_groups}: {down_dims}")
        self.action_dim, self.cond_dim, self.down_dims = action_dim, cond_dim, tuple(down_dims)
        self.time_emb = nn.Sequential(
            SinusoidalEmbedding(time_emb_dim, time_scale),
            nn.Linear(time_emb_dim, 4 * time_emb_dim),
            nn.Mish(),
            nn.Linear(4 * time_emb_dim, time_emb_dim),
        )
        g_dim = time_emb_dim + cond_dim
        dims = (action_dim, *down_dims)
        pairs = list(itertools.pairwise(dims))
        self.down = nn.ModuleList()
        for i, (ci, co) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(nn.ModuleList([
                CondResBlock1d(ci, co, g_dim, kernel_size, n_groups),
                CondResBlock1d(co, co, g_dim, kernel_size, n_groups),
                nn.Conv1d(co, co, 3, stride=2, padding=1) if not last else nn.Identity(),
            ]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([CondResBlock1d(mid, mid, g_dim, kernel_size, n_groups) for _ in range(2)])
        self.up = nn.ModuleList()
        for ci, co in reversed(pairs[1:]):
            self.up.append(nn.ModuleList([
                CondResBlock1d(2 * co, ci, g_dim, kernel_size, n_groups),
                CondResBlock1d(ci, ci, g_dim, kernel_size, n_groups),
                nn.ConvTranspose1d(ci, ci, 4, stride=2, padding=1),
            ]))
        self.final = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )

    @property
    def length_multiple(self) -> int:
        """The chunk length H must be a multiple of this."""
        return 2 ** (len(self.down_dims) - 1)

    def forward(self, x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, H, D_a), time (B,) (or a scalar, broadcast), cond (B, cond_dim) -> (B, H, D_a)."""
        B, H, _ = x.shape
        if H % self.length_multiple:
            raise ValueError(f"chunk length {H} is not a multiple of {self.length_multiple}")
        time = torch.as_tensor(time, dtype=x.dtype).reshape(-1).expand(B)
        g = F.mish(torch.cat([self.time_emb(time), cond], dim=-1))  # (B, g_dim)
        h = x.transpose(1, 2)  # (B, D_a, H)
        skips = []
        for res1, res2, downsample in self.down:
            h = res2(res1(h, g), g)
            skips.append(h)
            h = downsample(h)
        for res in self.mid:
            h = res(h, g)
        for res1, res2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(res2(res1(h, g), g))
        return self.final(h).transpose(1, 2)  # (B, H, D_a)
