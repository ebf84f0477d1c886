"""Sinusoidal time embedding (docs/METHOD.md, "Training": feed a *scaled* t).

    emb(t) = [sin(s t w_i), cos(s t w_i)],  w_i = exp(-ln(10000) i / (dim/2 - 1)),  s = scale

With t in [0, 1] and scale ~100 the embedding varies over the whole range; raw t would give a
nearly constant embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int, scale: float = 100.0) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"embedding dim must be even and >= 4, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))
        self.register_buffer("freqs", freqs * scale, persistent=False)
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) -> (B, dim)."""
        arg = t.unsqueeze(-1) * self.freqs
        return torch.cat([arg.sin(), arg.cos()], dim=-1)
