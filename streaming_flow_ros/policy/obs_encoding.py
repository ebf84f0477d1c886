"""Observation -> conditioning vector for the runtimes (SFP and the chunk baselines alike), with
a per-frame feature cache: with an observation horizon T_o, every camera frame appears in T_o
consecutive observations (newest, then older); its CNN features are computed once.

The cache is keyed by frame content, so it is exact (a different frame is never served another
frame's features) and needs no timestamps. Thread-safe; bounded to a few frames per camera.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from ..data.normalizer import MinMaxNormalizer
from ..nets.encoders import ObsEncoder
from .protocol import Observation


class CachedObsEncoder:
    def __init__(self, encoder: ObsEncoder, state_norm: MinMaxNormalizer, max_frames_per_camera: int = 8,
                 device: torch.device | str = "cpu") -> None:
        self.encoder = encoder
        self.device = torch.device(device)  # where ``encoder`` lives: inputs go there
        self.state_norm = state_norm
        self.max_frames = max(2, int(max_frames_per_camera))
        self._cache: dict[str, OrderedDict[int, torch.Tensor]] = {n: OrderedDict() for n in encoder.cams}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @torch.inference_mode()
    def __call__(self, obs: Observation) -> torch.Tensor:
        """Checked observation (see streaming.check_observation) -> cond (1, cond_dim)."""
        state_n = torch.as_tensor(self.state_norm.normalize(np.asarray(obs.state, np.float64)), dtype=torch.float32,
                                  device=self.device)
        feats = {name: self._features(name, obs.images[name])[None] for name in self.encoder.cams}
        return self.encoder.combine(state_n[None], feats)

    def _features(self, name: str, frames: np.ndarray) -> torch.Tensor:
        """(T_o, Hh, Ww, C) uint8 -> (T_o, F), encoding only frames not seen recently."""
        keys = [hash(f.tobytes()) for f in frames]
        with self._lock:
            cache = self._cache[name]
            missing = [i for i, k in enumerate(keys) if k not in cache]
        if missing:
            batch = torch.from_numpy(np.ascontiguousarray(frames[missing])).to(self.device)
            new = self.encoder.frame_features(name, batch)  # (len(missing), F)
        with self._lock:
            for j, i in enumerate(missing):
                cache[keys[i]] = new[j]
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
            out = torch.stack([cache[k] for k in keys])
            for k in keys:
                cache.move_to_end(k)
            while len(cache) > self.max_frames:
                cache.popitem(last=False)
        return out
