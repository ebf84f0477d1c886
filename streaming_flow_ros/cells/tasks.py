"""Manipulation tasks on a cell (``cells/cell.py``). No ROS.

**Lift**: the cube starts at a random place and yaw on the table (drawn from the episode's
seed); success is the cube's bottom face held above ``lift_height`` m over the table for
``hold_s`` s of simulated time. The arm starts at the robot's home posture, gripper open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .cell import Cell


@dataclass(frozen=True)
class LiftConfig:
    """Randomisation and success of Lift (m, rad, s)."""

    cube_x: tuple[float, float] = (-0.08, 0.08)  # m, table frame (centre 0)
    cube_y: tuple[float, float] = (-0.08, 0.08)
    cube_yaw: tuple[float, float] = (-np.pi / 4, np.pi / 4)  # rad (a cube: 90 deg covers all)
    lift_height: float = 0.05  # m, cube bottom above the table
    hold_s: float = 0.5  # s the cube must stay above lift_height
    time_limit: float = 12.0  # s

    def __post_init__(self) -> None:
        for label, (lo, hi) in (("cube_x", self.cube_x), ("cube_y", self.cube_y), ("cube_yaw", self.cube_yaw)):
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"{label} must be a finite (low, high) range, got {(lo, hi)}")
        if not (0.0 < self.lift_height < 0.5 and self.hold_s >= 0.0 and self.time_limit > 0.0):
            raise ValueError("lift_height in (0, 0.5) m, hold_s >= 0 and time_limit > 0 required")


@dataclass(frozen=True)
class LiftScene:
    """One episode's initial condition."""

    seed: int
    cube_xy: tuple[float, float]  # m
    cube_yaw: float  # rad

    def to_dict(self) -> dict:
        return asdict(self)


class LiftTask:
    """Lift: :meth:`reset` sets the cell up from a seed; call :meth:`update` after each step
    of the episode (any period), then read :attr:`success`."""

    name = "lift"

    def __init__(self, config: LiftConfig | None = None) -> None:
        self.config = config or LiftConfig()
        self._above_since: float | None = None
        self.success = False
        self.max_height = 0.0

    def scene(self, seed: int) -> LiftScene:
        """The initial condition of episode ``seed`` (deterministic)."""
        c = self.config
        rng = np.random.default_rng([int(seed), 7031])
        x, y = rng.uniform(*c.cube_x), rng.uniform(*c.cube_y)
        return LiftScene(int(seed), (float(x), float(y)), float(rng.uniform(*c.cube_yaw)))

    def reset(self, cell: Cell, seed: int) -> LiftScene:
        """Arm home, gripper open, cube placed from ``seed``; success tracking restarted."""
        s = self.scene(seed)
        cell.reset(cube_xy=s.cube_xy, cube_yaw=s.cube_yaw)
        self._above_since = None
        self.success = False
        self.max_height = 0.0
        return s

    def update(self, cell: Cell) -> bool:
        """Track the cube at the cell's current time; returns :attr:`success` (latched)."""
        m = cell.metrics()
        self.max_height = max(self.max_height, m.cube_height)
        if m.cube_height > self.config.lift_height:
            if self._above_since is None:
                self._above_since = m.time
            if m.time - self._above_since >= self.config.hold_s:
                self.success = True
        else:
            self._above_since = None
        return self.success


TASKS = {"lift": LiftTask}


def make_task(name: str, **config) -> LiftTask:
    if name not in TASKS:
        raise ValueError(f"unknown cell task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name](LiftConfig(**config) if config else None)
