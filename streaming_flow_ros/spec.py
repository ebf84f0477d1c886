"""What a policy consumes and produces: joint names, cameras, rates. Plain data, saved in
checkpoints and datasets, validated on load. Imports nothing from ROS or torch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CameraSpec:
    """One camera as the model sees it: images are resized to (height, width), ``channels`` 3 (RGB)
    or 1 (mono), uint8 in [0, 255]."""

    name: str
    height: int = 96
    width: int = 96
    channels: int = 3

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("camera name must be non-empty")
        if not (8 <= self.height <= 1024 and 8 <= self.width <= 1024):
            raise ValueError(f"camera {self.name!r}: size {self.height}x{self.width} out of 8..1024")
        if self.channels not in (1, 3):
            raise ValueError(f"camera {self.name!r}: channels must be 1 or 3, got {self.channels}")


@dataclass(frozen=True)
class IOSpec:
    """The observation/action interface of a policy.

    state_names: names of the low-dimensional state channels (joint names for an arm), D_s.
    action_names: names of the commanded channels (joint names), D_a.
    cameras: image inputs; empty for a state-only policy.
    data_rate_hz: the rate demonstrations were resampled to (one waypoint per data period).
    action_lower/action_upper: optional hard bounds (robot units) clamped after every step;
        empty tuples mean unbounded.
    """

    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    cameras: tuple[CameraSpec, ...] = ()
    data_rate_hz: float = 10.0
    action_lower: tuple[float, ...] = ()
    action_upper: tuple[float, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for label, names in (("state_names", self.state_names), ("action_names", self.action_names)):
            if len(set(names)) != len(names):
                raise ValueError(f"{label} has duplicates: {list(names)}")
            if any(not isinstance(n, str) or not n for n in names):
                raise ValueError(f"{label} must be non-empty strings: {list(names)}")
        if not self.action_names:
            raise ValueError("action_names must not be empty")
        if not (math.isfinite(self.data_rate_hz) and 0.1 <= self.data_rate_hz <= 1000.0):
            raise ValueError(f"data_rate_hz must be in [0.1, 1000], got {self.data_rate_hz}")
        for label, b in (("action_lower", self.action_lower), ("action_upper", self.action_upper)):
            if b and len(b) != len(self.action_names):
                raise ValueError(f"{label} has {len(b)} values for {len(self.action_names)} actions")
        if self.action_lower and self.action_upper and any(
                lo >= hi for lo, hi in zip(self.action_lower, self.action_upper)):
            raise ValueError("action_lower must be < action_upper everywhere")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique: {names}")

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = [asdict(c) for c in self.cameras]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IOSpec:
        if not isinstance(d, dict):
            raise ValueError(f"io spec must be a mapping, got {type(d).__name__}")
        try:
            return cls(
                state_names=tuple(d["state_names"]),
                action_names=tuple(d["action_names"]),
                cameras=tuple(CameraSpec(**c) for c in d.get("cameras", ())),
                data_rate_hz=float(d.get("data_rate_hz", 10.0)),
                action_lower=tuple(float(x) for x in d.get("action_lower", ())),
                action_upper=tuple(float(x) for x in d.get("action_upper", ())),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed io spec: {e}") from e
