"""One integration step of a velocity field, and whole-interval integration for offline use.

The runtime needs ONE step per control tick, so the step functions are the primitive:

    euler:    x' = x + dt v(x, t)
    midpoint: x' = x + dt v(x + dt/2 v(x, t), t + dt/2)
    heun:     x' = x + dt/2 [v(x, t) + v(x + dt v(x, t), t + dt)]

Midpoint evaluates the field between waypoints, away from the knots where xi_dot jumps
(docs/BENCHMARKS.md, "Integrator"). Explicit Euler needs k dt < 1 to avoid overshoot (docs/METHOD.md, "Training").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
Integrator = Literal["euler", "midpoint", "heun"]

PASSES_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2}


def step(v: VelocityFn, x: torch.Tensor, t: float, dt: float, method: Integrator = "euler") -> torch.Tensor:
    """Advance x (B, D) from flow time t to t + dt. Returns a new tensor; x is not mutated."""
    if method == "euler":
        return x + dt * v(x, t)
    if method == "midpoint":
        return x + dt * v(x + (0.5 * dt) * v(x, t), t + 0.5 * dt)
    if method == "heun":
        k1 = v(x, t)
        k2 = v(x + dt * k1, t + dt)
        return x + (0.5 * dt) * (k1 + k2)
    raise ValueError(f"unknown integrator {method!r}; use euler, midpoint or heun")


def integrate(
    v: VelocityFn,
    x0: torch.Tensor,
    n_steps: int,
    t0: float = 0.0,
    t1: float = 1.0,
    method: Integrator = "euler",
) -> torch.Tensor:
    """Integrate from t0 to t1 in n_steps equal steps.

    Returns:
        (n_steps + 1, B, D) trajectory including x0.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    dt = (t1 - t0) / n_steps
    xs = [x0]
    x = x0
    for i in range(n_steps):
        x = step(v, x, t0 + i * dt, dt, method)
        xs.append(x)
    return torch.stack(xs)
