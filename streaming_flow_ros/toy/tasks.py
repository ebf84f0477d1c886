"""Toy demonstration sets and their metrics. Flow time t in [0, 1] spans the whole demo; a demo
is one chunk of H + 1 waypoints at t = j / H, already in normalised units ([-1, 1]).

- bifurcation (1-D): a(t) = s * smoothstep((t - 0.25) / 0.75), s = +1 or -1 (half each).
- crossing (2-D): "S" = (0.8 sin 2 pi t, 2t - 1) and its mirror (-0.8 sin 2 pi t, 2t - 1); the
  two cross at t = 0.5. SFP matches per-time marginals; a sample that follows one shape before
  the crossing and the other after it is *spliced* (docs/METHOD.md, "Known limits").
- obstacle (2-D): from (0, -1) to (0, 1) around a disc of radius 0.3 at the origin, left or right
  at random (bulge amplitude 0.55..0.7); averaging the two modes drives straight into the disc.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBSTACLE_RADIUS = 0.3
GOAL = np.array([0.0, 1.0])


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class ToyTask:
    """demos (M, H+1, D); mode (M,) +1/-1 label of each demo; dim names."""

    name: str
    demos: np.ndarray
    mode: np.ndarray
    names: tuple[str, ...]


def bifurcation(H: int = 32, n: int = 512, seed: int = 0) -> ToyTask:
    t = np.linspace(0.0, 1.0, H + 1)
    s = np.where(np.random.default_rng(seed).random(n) < 0.5, 1.0, -1.0)
    demos = (s[:, None] * smoothstep((t - 0.25) / 0.75)[None])[..., None]
    return ToyTask("bifurcation", demos, s, ("x",))


def crossing(H: int = 32, n: int = 512, seed: int = 0) -> ToyTask:
    t = np.linspace(0.0, 1.0, H + 1)
    s = np.where(np.random.default_rng(seed).random(n) < 0.5, 1.0, -1.0)
    x = s[:, None] * 0.8 * np.sin(2 * np.pi * t)[None]
    y = np.broadcast_to(2 * t - 1, x.shape)
    return ToyTask("crossing", np.stack([x, y], -1), s, ("x", "y"))


def obstacle(H: int = 32, n: int = 512, seed: int = 0) -> ToyTask:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, H + 1)
    s = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    amp = rng.uniform(0.55, 0.7, n)
    x = (s * amp)[:, None] * np.sin(np.pi * t)[None]
    y = np.broadcast_to(2 * t - 1, x.shape)
    return ToyTask("obstacle", np.stack([x, y], -1), s, ("x", "y"))


TASKS = {"bifurcation": bifurcation, "crossing": crossing, "obstacle": obstacle}


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """1-D W1 distance between two equal-size sample sets."""
    return float(np.mean(np.abs(np.sort(a) - np.sort(b))))


def marginal_distance(samples: np.ndarray, task: ToyTask, sigma_t: np.ndarray, seed: int = 0) -> float:
    """Mean over waypoint times and dims of W1(sampled a(t_j), demo tube mixture at t_j).

    samples (N, H+1, D); sigma_t (H+1,) tube std at each waypoint (sigma0 e^{-k t}).
    """
    rng = np.random.default_rng(seed)
    N = samples.shape[0]
    pick = task.demos[rng.integers(0, len(task.demos), N)]  # (N, H+1, D)
    ref = pick + sigma_t[None, :, None] * rng.standard_normal(pick.shape)
    H1, D = samples.shape[1:]
    return float(np.mean([wasserstein1(samples[:, j, d], ref[:, j, d]) for j in range(H1) for d in range(D)]))


def bifurcation_metrics(samples: np.ndarray) -> dict[str, float]:
    end = samples[:, -1, 0]
    return {
        "mode_balance_error": float(abs(np.mean(end > 0) - 0.5)),
        "averaged_fraction": float(np.mean(np.abs(end) < 0.2)),
    }


def crossing_metrics(samples: np.ndarray) -> dict[str, float]:
    H = samples.shape[1] - 1
    first = np.sign(samples[:, H // 4, 0])  # x at t = 0.25
    second = np.sign(samples[:, 3 * H // 4, 0])  # x at t = 0.75
    # A demo has opposite signs before and after the crossing; a splice keeps the sign.
    return {"splice_rate": float(np.mean(first == second))}


def obstacle_metrics(samples: np.ndarray) -> dict[str, float]:
    # check collisions on a dense linear interpolation of the sampled path
    a, b = samples[:, :-1], samples[:, 1:]
    s = np.linspace(0, 1, 8)[None, None, :, None]
    dense = a[:, :, None] + s * (b - a)[:, :, None]
    min_dist = np.linalg.norm(dense, axis=-1).reshape(len(samples), -1).min(1)
    reached = np.linalg.norm(samples[:, -1] - GOAL, axis=-1) < 0.15
    collided = min_dist < OBSTACLE_RADIUS
    left = np.mean(samples[:, samples.shape[1] // 2, 0] < 0)
    return {
        "success_rate": float(np.mean(reached & ~collided)),
        "collision_rate": float(np.mean(collided)),
        "left_fraction": float(left),
    }
