"""Conditional flow-matching training targets and loss (docs/METHOD.md, "Training").

Per example: t ~ U[0, 1]; (x_t, u) from the conditional path around the demo chunk;
loss = || v_theta(x_t, t | h) - u ||^2 averaged over batch and dimensions. No weighting over t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .paths import LatentPath, PathSample, StabilizingPath


@dataclass(frozen=True)
class TrainingTargets:
    """t: (B,) flow times; sample: network input x_t (B, D_x) and target dx_t (B, D_x)."""

    t: torch.Tensor
    sample: PathSample


def draw_targets(
    path: StabilizingPath | LatentPath, chunk_n: torch.Tensor, generator: torch.Generator | None = None
) -> TrainingTargets:
    """Draw t, noise and the conditional sample for a batch of normalised chunks (B, H+1, D_a)."""
    B, _, D = chunk_n.shape
    kw = {"device": chunk_n.device, "dtype": chunk_n.dtype, "generator": generator}
    t = torch.rand(B, **kw)
    eps = torch.randn(B, D, **kw)
    if isinstance(path, LatentPath):
        z0 = torch.randn(B, D, **kw)
        return TrainingTargets(t=t, sample=path.sample(chunk_n, t, eps, z0))
    return TrainingTargets(t=t, sample=path.sample(chunk_n, t, eps))


def flow_matching_loss(v_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and target velocities."""
    return torch.mean((v_pred - target) ** 2)
