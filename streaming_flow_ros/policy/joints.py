"""Joint states by name: validation with bounded cost, and merging of split messages.

Real drivers publish arm and gripper (or two halves of an arm) in separate
sensor_msgs/JointState messages on the same topic. ``JointStateMerger`` keeps the newest value
of every wanted joint with its own stamp and yields a full state whenever a message completes
one in which every joint is fresh: no joint older than ``max_age`` s relative to the message.

Cost per message is linear in its length and bounded: a message with more than
``MAX_JOINT_NAMES`` names is refused before any per-name work (one hostile 20,000-name message
once held the node's input thread for seconds). Pure numpy, no ROS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_JOINT_NAMES = 1024  # far above any arm (a humanoid has ~60); refused before any work
MAX_ABS_POSITION = 1e4  # rad (or m): beyond it a value is a sensor error, not a pose
CLOCK_RESET = 1.0  # s: a stamp this far behind the newest kept restarts the merge (ObsBuffer's rule)


class JointStateError(ValueError):
    """A joint-state message cannot be used (the message says why)."""


def index_names(names: Sequence[str], n_positions: int) -> dict[str, int]:
    """{name: index} of a message's joints, checked in linear time: at most MAX_JOINT_NAMES,
    as many positions as names, no name twice. Raises JointStateError."""
    if len(names) > MAX_JOINT_NAMES or n_positions > MAX_JOINT_NAMES:
        raise JointStateError(
            f"joint_states has {len(names)} names / {n_positions} positions (more than "
            f"{MAX_JOINT_NAMES}): refused unread")
    if len(names) != n_positions:
        raise JointStateError(f"joint_states has {len(names)} names but {n_positions} positions")
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):
        seen: set[str] = set()
        dups = sorted({n for n in names if n in seen or seen.add(n)})  # linear
        raise JointStateError(f"joint_states repeats joint names {dups[:10]}")
    return index


def check_values(names: Sequence[str], values: np.ndarray) -> None:
    """Raise JointStateError when a wanted joint's position is non-finite or beyond
    MAX_ABS_POSITION (a sensor error: 1e9 rad is not a pose)."""
    bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_POSITION)
    if bad.any():
        raise JointStateError(
            f"joint_states has non-finite or absurd positions for "
            f"{[n for n, b in zip(names, bad) if b]}: {values[bad].tolist()}")


@dataclass(frozen=True)
class Merged:
    """positions: (len(names),) rad in the merger's order; stamp: s, of the message that
    completed it (every joint's own stamp is within max_age before it)."""

    positions: np.ndarray
    stamp: float


class JointStateMerger:
    """Merges JointState messages by name with per-joint freshness.

    Args:
        names: the wanted joints, in the order of the merged vector.
        max_age: s; a joint whose newest value is older than this relative to the completing
            message keeps the state incomplete (the stale watchdog then holds).
    """

    def __init__(self, names: Sequence[str], max_age: float) -> None:
        if not names or len(set(names)) != len(names):
            raise ValueError(f"names must be unique and non-empty, got {list(names)}")
        if not (math.isfinite(max_age) and max_age > 0):
            raise ValueError(f"max_age must be finite and > 0 s, got {max_age}")
        self.names = tuple(names)
        self.max_age = float(max_age)
        self._slot = {n: i for i, n in enumerate(self.names)}
        self._values = np.full(len(self.names), np.nan)
        self._stamps = np.full(len(self.names), -np.inf)

    def update(self, names: Sequence[str], positions: Sequence[float], stamp: float) -> Merged | None:
        """Take one message (its joint names and positions, stamp s). Returns the full state
        when every wanted joint is known and fresh, else None (see ``missing``). A value older
        than the one kept for its joint is ignored for that joint.

        Raises JointStateError for a malformed message or one with none of the wanted joints."""
        names = list(names)
        pos = np.asarray(positions, np.float64).reshape(-1) if len(positions) <= MAX_JOINT_NAMES else None
        index = index_names(names, len(positions) if pos is None else pos.size)
        assert pos is not None  # index_names refused oversized messages
        mine = [(self._slot[n], i) for n, i in index.items() if n in self._slot]
        if not mine:
            raise JointStateError(f"joint_states lacks joints {list(self.names)} (has {names[:20]})")
        slots = np.array([s for s, _ in mine], np.intp)
        values = pos[[i for _, i in mine]]
        check_values([self.names[s] for s in slots], values)
        if stamp < self._stamps.max() - CLOCK_RESET:  # a restarted bag or simulator
            self.clear()
        newer = stamp >= self._stamps[slots]
        self._values[slots[newer]] = values[newer]
        self._stamps[slots[newer]] = stamp
        if self.missing(stamp):
            return None
        return Merged(self._values.copy(), float(stamp))

    def missing(self, stamp: float) -> list[str]:
        """The wanted joints without a value within ``max_age`` before ``stamp``."""
        old = self._stamps < stamp - self.max_age
        return [self.names[i] for i in np.flatnonzero(old)]

    def clear(self) -> None:
        self._values[:] = np.nan
        self._stamps[:] = -np.inf
