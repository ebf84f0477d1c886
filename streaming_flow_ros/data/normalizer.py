"""Per-dimension min-max normalisation to [-1, 1] (Diffusion-Policy style), saved with the model.

    x_n = (x - center) * scale,  center = (max + min) / 2,  scale = 2 / (max - min)

A dimension whose range is below ``min_range`` (constant in the data) gets scale 1, so it maps
to 0 at its value instead of dividing by ~0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MinMaxNormalizer:
    center: np.ndarray  # (D,) float64
    scale: np.ndarray  # (D,) float64, > 0

    @classmethod
    def fit(cls, x: np.ndarray, min_range: float = 1e-4) -> MinMaxNormalizer:
        """Fit to samples x of shape (N, D)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"fit needs (N, D) samples with N > 0, got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("cannot fit a normaliser to non-finite values")
        lo, hi = x.min(0), x.max(0)
        rng = hi - lo
        scale = np.where(rng > min_range, 2.0 / np.maximum(rng, min_range), 1.0)
        return cls(center=(hi + lo) / 2.0, scale=scale)

    @classmethod
    def identity(cls, dim: int) -> MinMaxNormalizer:
        return cls(center=np.zeros(dim), scale=np.ones(dim))

    @property
    def dim(self) -> int:
        return int(self.center.shape[0])

    def normalize(self, x):
        """Robot units -> [-1, 1]. Works on numpy arrays and torch tensors (last axis = D)."""
        if isinstance(x, np.ndarray):
            return (x - self.center) * self.scale
        c, s = self._torch(x)
        return (x - c) * s

    def unnormalize(self, x_n):
        """[-1, 1] -> robot units."""
        if isinstance(x_n, np.ndarray):
            return x_n / self.scale + self.center
        c, s = self._torch(x_n)
        return x_n / s + c

    def _torch(self, like):
        import torch

        return (
            torch.as_tensor(self.center, dtype=like.dtype, device=like.device),
            torch.as_tensor(self.scale, dtype=like.dtype, device=like.device),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], dim: int | None = None) -> MinMaxNormalizer:
        try:
            center = np.asarray(d["center"], np.float64)
            scale = np.asarray(d["scale"], np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed normaliser: {e}") from e
        if center.ndim != 1 or center.shape != scale.shape:
            raise ValueError(f"normaliser center {center.shape} / scale {scale.shape} mismatch")
        if dim is not None and center.shape[0] != dim:
            raise ValueError(f"normaliser has {center.shape[0]} dims, expected {dim}")
        if not (np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("normaliser has non-finite or non-positive values")
        return cls(center=center, scale=scale)
