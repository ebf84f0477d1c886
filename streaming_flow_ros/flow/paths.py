"""Conditional flows around one demonstrated chunk (training targets), as in docs/METHOD.md ("Training").

Stabilising flow (sigma0, k) around the interpolant xi of a demo chunk:

    a(0) ~ N(xi(0), sigma0^2 I)
    v_xi(a, t) = xi_dot(t) - k (a - xi(t))
    a(t) = xi(t) + (a(0) - xi(0)) e^{-k t}   =>   p(a | t) = N(xi(t), sigma0^2 e^{-2 k t} I)

Latent ("decoupled stochasticity") variant over (a, z), z in R^{D_a}, z(0) ~ N(0, I),
with sigma_r = sqrt(sigma1^2 - sigma0^2 e^{-2k}):

    a(t) = xi(t) + (a0 - xi(0)) e^{-k t} + sigma_r t z0
    z(t) = (1 - (1 - sigma1) t) z0 + t xi(t)
    v_a  = xi_dot - k (a - xi) + sigma_r (1 + k t) z0
    v_z  = xi + t xi_dot - (1 - sigma1) z0

Note v_a is the time derivative of a(t) along the path: d/dt[(a0 - xi0) e^{-kt}] is
-k (a - xi - sigma_r t z0), so v_a = xi_dot - k (a - xi) + sigma_r (1 + k t) z0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .grid import interpolate


@dataclass(frozen=True)
class PathSample:
    """A point on a conditional path and its target velocity.

    x_t: (B, D_x) network input (D_x = D_a, or 2 D_a for the latent variant).
    dx_t: (B, D_x) target velocity u.
    """

    x_t: torch.Tensor
    dx_t: torch.Tensor


@dataclass(frozen=True)
class StabilizingPath:
    """Gaussian tube N(xi(t), sigma0^2 e^{-2kt}) that pulls deviations back to the demo."""

    sigma0: float
    k: float

    def __post_init__(self) -> None:
        if not (self.sigma0 >= 0.0 and math.isfinite(self.sigma0)):
            raise ValueError(f"sigma0 must be finite and >= 0, got {self.sigma0}")
        if not (self.k >= 0.0 and math.isfinite(self.k)):
            raise ValueError(f"k must be finite and >= 0, got {self.k}")

    @property
    def state_dim_factor(self) -> int:
        """The flowed state is a alone."""
        return 1

    def std(self, t: torch.Tensor) -> torch.Tensor:
        """Tube standard deviation sigma0 e^{-k t}, same shape as t."""
        return self.sigma0 * torch.exp(-self.k * t)

    def sample(self, chunk: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> PathSample:
        """Closed-form sample and target.

        Args:
            chunk: (B, H+1, D_a) normalised demo chunk.
            t: (B,) flow times.
            eps: (B, D_a) standard normal noise.
        """
        g = interpolate(chunk, t)
        delta = self.std(t).unsqueeze(-1) * eps  # (B, D_a)
        return PathSample(x_t=g.xi + delta, dx_t=g.xi_dot - self.k * delta)

    def velocity(self, chunk: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Conditional velocity field v_xi(a, t) at arbitrary points a = x of shape (B, D_a)."""
        g = interpolate(chunk, t)
        return g.xi_dot - self.k * (x - g.xi)


@dataclass(frozen=True)
class LatentPath:
    """Joint flow over (a, z): z0 ~ N(0, I) chooses the mode; a starts exactly at xi(0) + sigma0 noise."""

    sigma0: float
    sigma1: float
    k: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.sigma0 <= self.sigma1 < 1.0):
            raise ValueError(
                f"latent path needs 0 <= sigma0 <= sigma1 < 1, got sigma0={self.sigma0}, "
                f"sigma1={self.sigma1}"
            )
        if not (self.k >= 0.0 and math.isfinite(self.k)):
            raise ValueError(f"k must be finite and >= 0, got {self.k}")

    @property
    def state_dim_factor(self) -> int:
        """The flowed state is (a, z), twice the action dimension."""
        return 2

    @property
    def sigma_r(self) -> float:
        return math.sqrt(self.sigma1**2 - self.sigma0**2 * math.exp(-2.0 * self.k))

    def sample(
        self, chunk: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, z0: torch.Tensor
    ) -> PathSample:
        """Closed-form sample of (a, z) at t and its target velocity.

        Args:
            chunk: (B, H+1, D_a); t: (B,); eps, z0: (B, D_a) standard normal.
        Returns:
            PathSample with x_t, dx_t of shape (B, 2 D_a), ordered [a, z].
        """
        g = interpolate(chunk, t)
        tt = t.unsqueeze(-1).to(chunk.dtype)  # (B, 1)
        dev0 = self.sigma0 * eps  # a0 - xi(0)
        decay = torch.exp(-self.k * tt)
        a = g.xi + dev0 * decay + self.sigma_r * tt * z0
        z = (1.0 - (1.0 - self.sigma1) * tt) * z0 + tt * g.xi
        v_a = g.xi_dot - self.k * (a - g.xi) + self.sigma_r * (1.0 + self.k * tt) * z0
        v_z = g.xi + tt * g.xi_dot - (1.0 - self.sigma1) * z0
        return PathSample(x_t=torch.cat([a, z], -1), dx_t=torch.cat([v_a, v_z], -1))

    def velocity(self, chunk: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Conditional velocity at arbitrary (a, z) = x of shape (B, 2 D_a), recovering z0 from z."""
        D = chunk.shape[-1]
        a, z = x[..., :D], x[..., D:]
        g = interpolate(chunk, t)
        tt = t.unsqueeze(-1).to(chunk.dtype)
        z0 = (z - tt * g.xi) / (1.0 - (1.0 - self.sigma1) * tt)
        v_a = g.xi_dot - self.k * (a - g.xi) + self.sigma_r * (1.0 + self.k * tt) * z0
        v_z = g.xi + tt * g.xi_dot - (1.0 - self.sigma1) * z0
        return torch.cat([v_a, v_z], -1)
