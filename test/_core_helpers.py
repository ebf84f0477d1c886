"""Small synthetic datasets and checkpoints for core tests (produced by the project's own code)."""

from __future__ import annotations

import numpy as np

from streaming_flow_ros.data.episodes import Episode, save_dataset
from streaming_flow_ros.spec import CameraSpec, IOSpec

JOINTS = ("j1", "j2", "j3")


def tiny_spec(cameras: bool = True) -> IOSpec:
    cams = (CameraSpec("camera", 24, 24, 3),) if cameras else ()
    return IOSpec(JOINTS, JOINTS, cams, 10.0, (-2.0, -2.0, -2.0), (2.0, 2.0, 2.0))


def tiny_episodes(n_eps: int = 6, n: int = 30, cameras: bool = True, seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n_eps):
        goal = rng.uniform(-1, 1, 3)
        s = np.linspace(0, 1, n)[:, None]
        action = (goal * s).astype(np.float32)
        state = np.vstack([action[:1], action[:-1]]).astype(np.float32)  # lags by one sample
        images = {}
        if cameras:
            img = np.zeros((n, 24, 24, 3), np.uint8)
            r, c = int(12 + 8 * goal[0]), int(12 + 8 * goal[1])
            img[:, max(0, r - 2) : r + 2, max(0, c - 2) : c + 2] = 255
            images["camera"] = img
        eps.append(Episode(state=state, action=action, images=images, time=np.arange(n) / 10.0))
    return eps


def tiny_dataset(path, cameras: bool = True, n_eps: int = 6):
    return save_dataset(path, tiny_spec(cameras), tiny_episodes(n_eps, cameras=cameras))
