"""Episodes and datasets on disk: plain arrays, no pickle.

A dataset is a directory::

    dataset.json          {"format": "sfp-dataset", "version": 1, "spec": IOSpec dict,
                           "episodes": ["episode_00000.npz", ...], "source": {...}}
    episode_00000.npz     arrays: state (N, D_s) float32, action (N, D_a) float32,
                          image_<camera> (N, Hh, Ww, C) uint8 for each camera, time (N,) float64 s

All arrays of one episode share N samples at the data rate (``spec.data_rate_hz``): sample i is
at time i / data_rate. ``action[i]`` is the action aligned with observation i (the command
issued at that instant, or the next measured state, depending on how it was built).
Loading uses ``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..spec import IOSpec

DATASET_FORMAT = "sfp-dataset"
DATASET_VERSION = 1


@dataclass
class Episode:
    """One demonstration at the data rate. Robot units (radians), not normalised."""

    state: np.ndarray  # (N, D_s) float32
    action: np.ndarray  # (N, D_a) float32
    images: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N, Hh, Ww, C) uint8
    time: np.ndarray | None = None  # (N,) float64 seconds from episode start

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def validate(self, spec: IOSpec) -> None:
        """Raise ValueError if shapes, dtypes or values do not match ``spec``."""
        n = len(self)
        if n < 2:
            raise ValueError(f"episode has {n} samples; need at least 2")
        if self.state.shape != (n, spec.state_dim):
            raise ValueError(f"state shape {self.state.shape} != ({n}, {spec.state_dim})")
        if self.action.shape != (n, spec.action_dim):
            raise ValueError(f"action shape {self.action.shape} != ({n}, {spec.action_dim})")
        if not (np.isfinite(self.state).all() and np.isfinite(self.action).all()):
            raise ValueError("episode has non-finite state or action values")
        for cam in spec.cameras:
            img = self.images.get(cam.name)
            if img is None:
                raise ValueError(f"episode lacks images for camera {cam.name!r}")
            want = (n, cam.height, cam.width, cam.channels)
            if img.shape != want or img.dtype != np.uint8:
                raise ValueError(f"camera {cam.name!r}: {img.shape} {img.dtype} != {want} uint8")


def save_dataset(
    path: str | Path, spec: IOSpec, episodes: list[Episode], source: dict | None = None
) -> Path:
    """Write ``episodes`` as a dataset directory (created; existing episode files replaced)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i, ep in enumerate(episodes):
        ep.validate(spec)
        arrays = {"state": ep.state.astype(np.float32), "action": ep.action.astype(np.float32)}
        if ep.time is not None:
            arrays["time"] = np.asarray(ep.time, np.float64)
        for cam in spec.cameras:
            arrays[f"image_{cam.name}"] = ep.images[cam.name]
        name = f"episode_{i:05d}.npz"
        np.savez_compressed(root / name, **arrays)
        names.append(name)
    meta = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "spec": spec.to_dict(),
        "episodes": names,
        "source": source or {},
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


def load_dataset(path: str | Path) -> tuple[IOSpec, list[Episode]]:
    """Read a dataset directory written by :func:`save_dataset`; validates every episode."""
    root = Path(path)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise ValueError(f"{root} is not a dataset: no dataset.json (build one with `sfp dataset build`)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path}: invalid JSON: {e}") from e
    if meta.get("format") != DATASET_FORMAT or meta.get("version") != DATASET_VERSION:
        raise ValueError(
            f"{meta_path}: format {meta.get('format')!r} v{meta.get('version')} is not "
            f"{DATASET_FORMAT!r} v{DATASET_VERSION}"
        )
    spec = IOSpec.from_dict(meta["spec"])
    episodes = []
    for name in meta["episodes"]:
        try:
            with np.load(root / name, allow_pickle=False) as z:
                images = {c.name: z[f"image_{c.name}"] for c in spec.cameras}
                ep = Episode(
                    state=z["state"],
                    action=z["action"],
                    images=images,
                    time=z["time"] if "time" in z.files else None,
                )
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{root / name}: cannot read episode: {e}") from e
        ep.validate(spec)
        episodes.append(ep)
    if not episodes:
        raise ValueError(f"{root}: dataset has no episodes")
    return spec, episodes
