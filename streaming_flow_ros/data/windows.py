"""Training windows over episodes: observation history + future action chunk.

For a sample index i of an episode with N samples (the newest observation):

    obs indices    i - T_o + 1, ..., i        (clamped to >= 0: the first frame repeats)
    chunk indices  i, i + 1, ..., i + H       (clamped to <= N - 1: the last action repeats)

so the chunk's first waypoint is the action aligned with the newest observation (docs/METHOD.md,
step 1) and waypoint j is j data periods later (t = j / H). Every i in [0, N - 1] is a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .episodes import Episode
from .normalizer import MinMaxNormalizer


def window_indices(n: int, obs_horizon: int, pred_horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, T_o) observation and (N, H+1) chunk indices into one episode of n samples."""
    i = np.arange(n)[:, None]
    obs = np.clip(i + np.arange(-obs_horizon + 1, 1)[None], 0, n - 1)
    act = np.clip(i + np.arange(pred_horizon + 1)[None], 0, n - 1)
    return obs, act


@dataclass
class WindowBatch:
    """state_n (B, T_o, D_s) float32; images name -> (B, T_o, Hh, Ww, C) uint8; chunk_n (B, H+1, D_a);
    end_n (B, D_a): the last action of each window's episode (what an episode-level mode latent reads)."""

    state_n: torch.Tensor
    images: dict[str, torch.Tensor]
    chunk_n: torch.Tensor
    end_n: torch.Tensor

    def as_dict(self) -> dict:
        return {"state_n": self.state_n, "images": self.images, "chunk_n": self.chunk_n, "end_n": self.end_n}


class WindowDataset:
    """All windows of a list of episodes, gathered in batches by fancy indexing (no DataLoader:
    everything sits in memory, which at 96x96 is ~28 KB a frame)."""

    def __init__(
        self,
        episodes: list[Episode],
        camera_names: list[str],
        obs_horizon: int,
        pred_horizon: int,
        state_norm: MinMaxNormalizer,
        action_norm: MinMaxNormalizer,
    ) -> None:
        if not episodes:
            raise ValueError("WindowDataset needs at least one episode")
        obs_idx, act_idx, end_idx, offset = [], [], [], 0
        for ep in episodes:
            o, a = window_indices(len(ep), obs_horizon, pred_horizon)
            obs_idx.append(o + offset)
            act_idx.append(a + offset)
            end_idx.append(np.full(len(ep), offset + len(ep) - 1))
            offset += len(ep)
        self.obs_idx = np.concatenate(obs_idx)  # (M, T_o)
        self.act_idx = np.concatenate(act_idx)  # (M, H+1)
        self.end_idx = np.concatenate(end_idx)  # (M,)
        self.episode_end_idx = np.cumsum([len(ep) for ep in episodes]) - 1  # (E,)
        state = np.concatenate([ep.state for ep in episodes]).astype(np.float64)
        action = np.concatenate([ep.action for ep in episodes]).astype(np.float64)
        self.state_n = torch.as_tensor(state_norm.normalize(state), dtype=torch.float32)
        self.action_n = torch.as_tensor(action_norm.normalize(action), dtype=torch.float32)
        self.images = {c: torch.from_numpy(np.concatenate([ep.images[c] for ep in episodes])) for c in camera_names}

    def __len__(self) -> int:
        return int(self.obs_idx.shape[0])

    def batch(self, idx: np.ndarray) -> WindowBatch:
        o = torch.from_numpy(self.obs_idx[idx])
        a = torch.from_numpy(self.act_idx[idx])
        return WindowBatch(
            state_n=self.state_n[o],
            images={c: img[o] for c, img in self.images.items()},
            chunk_n=self.action_n[a],
            end_n=self.action_n[torch.from_numpy(self.end_idx[idx])],
        )

    def episode_ends(self) -> torch.Tensor:
        """(E, D_a): each episode's last action, normalised."""
        return self.action_n[torch.from_numpy(self.episode_end_idx)]


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Episode-level train/validation split (never windows of one episode on both sides)."""
    if n < 2 or val_fraction <= 0:
        return list(range(n)), []
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())
