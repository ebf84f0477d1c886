"""Push-T quality metrics on per-step coverage sequences (fraction of the goal T covered).

- score (Diffusion Policy's): max over the episode of clip(coverage / 0.95, 0, 1); the reported
  number is its mean over episodes. A 0.95 score is far from "95 % success".
- success (strict): max coverage > 0.95 (gym-pusht's termination condition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .env import SUCCESS_COVERAGE


def episode_score(coverage: Sequence[float]) -> float:
    """max_t clip(coverage_t / 0.95, 0, 1); 0 for an empty episode."""
    c = np.asarray(coverage, np.float64)
    if c.size == 0:
        return 0.0
    if not np.isfinite(c).all():
        raise ValueError("coverage has non-finite values")
    return float(np.clip(c.max() / SUCCESS_COVERAGE, 0.0, 1.0))


def episode_success(coverage: Sequence[float]) -> bool:
    """True when coverage exceeded 0.95 at some step (strictly)."""
    c = np.asarray(coverage, np.float64)
    return bool(c.size and c.max() > SUCCESS_COVERAGE)


def summarize(coverages: Sequence[Sequence[float]]) -> dict[str, float]:
    """{"score", "success", "max_coverage", "episodes"} over episodes (means)."""
    if not coverages:
        raise ValueError("summarize needs at least one episode")
    scores = [episode_score(c) for c in coverages]
    return {
        "score": float(np.mean(scores)),
        "success": float(np.mean([episode_success(c) for c in coverages])),
        "max_coverage": float(np.mean([max(c) if len(c) else 0.0 for c in coverages])),
        "episodes": len(coverages),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (0 for one value) over seeds."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std()) if v.size > 1 else 0.0
