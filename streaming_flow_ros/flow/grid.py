"""The H+1-waypoint time grid and its piecewise-linear interpolant.

A chunk ``a`` of shape (B, H+1, D) places waypoint j at flow time t = j / H. For t in [0, 1]:

    j = min(floor(t * H), H - 1),  alpha = t * H - j
    xi(t)     = a_j + alpha * (a_{j+1} - a_j)
    xi_dot(t) = H * (a_{j+1} - a_j)

This one convention is used in training, stepping and read-out (docs/METHOD.md, "Conventions").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GridPoint:
    """Interpolant of a chunk at times t. ``xi`` and ``xi_dot`` have shape (B, D)."""

    xi: torch.Tensor
    xi_dot: torch.Tensor


def interpolate(chunk: torch.Tensor, t: torch.Tensor) -> GridPoint:
    """Evaluate xi(t) and its derivative for each batch element.

    Args:
        chunk: (B, H+1, D) waypoints.
        t: (B,) flow times in [0, 1] (values outside are clamped).
    Returns:
        GridPoint with xi, xi_dot of shape (B, D).
    """
    B, Hp1, D = chunk.shape
    H = Hp1 - 1
    if H < 1:
        raise ValueError(f"a chunk needs at least 2 waypoints, got {Hp1}")
    s = t.clamp(0.0, 1.0).to(chunk.dtype) * H  # (B,)
    j = torch.clamp(torch.floor(s).long(), max=H - 1)  # (B,)
    alpha = (s - j.to(chunk.dtype)).unsqueeze(-1)  # (B, 1)
    idx = j.view(B, 1, 1).expand(B, 1, D)
    a_j = chunk.gather(1, idx).squeeze(1)  # (B, D)
    a_j1 = chunk.gather(1, idx + 1).squeeze(1)  # (B, D)
    delta = a_j1 - a_j
    return GridPoint(xi=a_j + alpha * delta, xi_dot=H * delta)


def waypoint_times(H: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H+1,) flow times j / H of the waypoints."""
    return torch.arange(H + 1, dtype=dtype) / H
