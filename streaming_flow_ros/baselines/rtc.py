"""Real-Time Chunking (Black, Galliker, Levine 2025, arXiv 2506.07339): the soft mask over the
overlap with the previous chunk and the guided (inpainting) Euler sampler of a flow-matching
chunk model. Pure math: numpy for the mask, torch for the sampler; no runtime state.

Time: the FM-chunk model's denoising time s runs from noise (s = 0) to data (s = 1), as the
paper's tau (baselines/models.py). LeRobot's RTC runs its time the other way (t = 1 - s), hence
its ``x_t + t v`` where we write ``x + (1 - s) v``. Index: i = 0..H-1 over the new chunk's
waypoints a_1..a_H.

Soft mask (the paper's eq. 5), with d the inference delay in data periods and e the end of the
overlap with the previous chunk (the paper's H - s, s the execution horizon)::

    W_i = 1                                i < d        frozen: executed while sampling
    W_i = c_i (e^{c_i} - 1) / (e - 1)      d <= i < e   c_i = (e - i) / (e - d + 1)
    W_i = 0                                i >= e       free: no previous action there

Guided velocity (Pi-GDM guidance, the paper's eq. 2, guidance weight clipped at beta)::

    A1 = x + (1 - s) v(x, s)                       one-step estimate of the clean chunk
    v_guided = v + min(beta, (1 - s) / (s r_s^2)) * [(Y - A1)^T diag(W) dA1/dx]
    r_s^2 = (1 - s)^2 / (s^2 + (1 - s)^2)

Y (H, D_a): the previous chunk's actions at the new chunk's waypoint times (normalised units;
rows with W_i = 0 are ignored). The bracket is a vector-Jacobian product: one backward pass
through the velocity net per Euler step. (1 - s) / (s r_s^2) = (s^2 + (1 - s)^2) / (s (1 - s))
is infinite at s = 0 (clipped to beta) and at least 2 (at s = 1/2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def soft_mask(horizon: int, delay: int, overlap_end: int) -> np.ndarray:
    """W (H,) float64 of the paper's eq. 5 for H = ``horizon`` waypoints, ``delay`` d frozen and
    the overlap ending at ``overlap_end`` e (both clipped to [0, H]; d to at most e: no
    previous action lies beyond the overlap)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    e = int(np.clip(overlap_end, 0, horizon))
    d = int(np.clip(delay, 0, e))
    i = np.arange(horizon, dtype=np.float64)
    c = (e - i) / (e - d + 1)
    w = c * np.expm1(c) / (math.e - 1.0)
    w[:d] = 1.0
    w[e:] = 0.0
    return w


def guidance_weight(s: float, beta: float) -> float:
    """min(beta, (1 - s) / (s r_s^2)) at denoising time s in [0, 1] (noise 0 -> data 1)."""
    if s <= 0.0 or s >= 1.0:
        return float(beta)
    r2 = (1.0 - s) ** 2 / (s**2 + (1.0 - s) ** 2)
    return float(min(beta, (1.0 - s) / (s * r2)))


def guided_euler(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    steps: int,
    beta: float,
) -> torch.Tensor:
    """Integrate the guided velocity from noise ``x`` (B, H, D_a) at s = 0 to s = 1 in ``steps``
    Euler steps (s_k = k / steps, as FMChunkModel.sample).

    velocity: (x (B, H, D_a), s (B,)) -> v (B, H, D_a), differentiable in x.
    target: Y (B or 1, H, D_a); weights: W (H,). Returns the chunk (B, H, D_a), detached."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    B = x.shape[0]
    w = weights.to(x.dtype)[None, :, None]  # (1, H, 1)
    ds = 1.0 / steps
    x = x.detach()
    for k in range(steps):
        s = k * ds
        with torch.enable_grad():
            x_in = x.clone().requires_grad_(True)
            v = velocity(x_in, torch.full((B,), s, dtype=x.dtype))
            a1 = x_in + (1.0 - s) * v  # (B, H, D_a) estimate of the clean chunk
            (correction,) = torch.autograd.grad(a1, x_in, grad_outputs=(target - a1).detach() * w)
        x = x + ds * (v.detach() + guidance_weight(s, beta) * correction)
    return x
