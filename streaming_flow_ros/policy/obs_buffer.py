"""Observation assembly for the node: recent camera frames and joint states in, a frozen
``Observation`` history at the model's data rate out. Pure numpy, no ROS, thread-safe.

Times are seconds on the node clock (header stamps; the caller substitutes the receive time for
a zero stamp). Pairing (a small approximate time sync, like message_filters'):

- a *paired sample* is a frame of the first ("primary") camera, the frame of every other camera
  nearest to it and the joint state nearest to it, each within ``sync_tolerance`` s;
- the history has ``T_o`` samples at times ``s_k = s_new - (T_o - 1 - k) / data_rate``,
  k = 0..T_o-1, where ``s_new`` is the newest paired sample; each is the paired sample nearest
  ``s_k``. Before enough history exists the oldest sample repeats (like padding at an episode
  start in training).
- State-only models (no cameras) sample joint states the same way, ``s_new`` = newest state.

Staleness: ``ages(now)`` gives the age of the newest joint state and of each camera's newest
frame; ``stale_reason(now, max_age)`` says which is missing, too old or (after the clock jumped
back) too far in the future (None when fresh).
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .protocol import Observation


@dataclass(frozen=True)
class _Item:
    stamp: float
    value: np.ndarray
    fresh_at: float  # min(stamp, receive time): a stamp from the future cannot extend freshness


class _Series:
    """Time-ordered samples. A slightly late sample is inserted in order; a jump back by more
    than ``CLOCK_RESET`` s (a restarted bag or simulator) restarts the series."""

    CLOCK_RESET = 1.0

    def __init__(self, maxlen: int) -> None:
        self.items: deque[_Item] = deque(maxlen=maxlen)
        self.stamps: deque[float] = deque(maxlen=maxlen)

    def add(self, stamp: float, value: np.ndarray, received: float | None = None) -> None:
        fresh_at = stamp if received is None else min(stamp, received)
        if self.stamps and stamp < self.stamps[-1]:
            if stamp < self.stamps[-1] - self.CLOCK_RESET:
                self.items.clear()
                self.stamps.clear()
            else:
                i = bisect.bisect_right(list(self.stamps), stamp)
                if len(self.stamps) == self.stamps.maxlen and i == 0:
                    return  # older than everything kept in a full buffer
                if len(self.stamps) == self.stamps.maxlen:
                    self.items.popleft()
                    self.stamps.popleft()
                    i -= 1
                self.items.insert(i, _Item(stamp, value, fresh_at))
                self.stamps.insert(i, stamp)
                return
        self.items.append(_Item(stamp, value, fresh_at))
        self.stamps.append(stamp)

    def latest(self) -> _Item | None:
        return self.items[-1] if self.items else None

    def nearest(self, t: float) -> _Item | None:
        if not self.items:
            return None
        stamps = list(self.stamps)
        i = bisect.bisect_left(stamps, t)
        cands = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
        j = min(cands, key=lambda j: abs(stamps[j] - t))
        return self.items[j]


class ObsBuffer:
    """Keeps recent inputs and builds observation histories.

    Args:
        state_dim: D_s, size of each joint-state vector (already in the model's state order).
        cameras: camera names, the first is the primary (pairing reference); () = state-only.
        obs_horizon: T_o >= 1.
        data_rate_hz: the model's data rate (history samples are 1/data_rate s apart).
        sync_tolerance: max |stamp difference| s between a primary frame and its joint state /
            other cameras' frames.
        max_frames/max_states: how many frames per camera / joint states are kept.
    """

    def __init__(
        self,
        state_dim: int,
        cameras: Sequence[str] = (),
        obs_horizon: int = 2,
        data_rate_hz: float = 10.0,
        sync_tolerance: float = 0.05,
        max_frames: int = 64,
        max_states: int = 1024,
    ) -> None:
        if state_dim < 1:
            raise ValueError(f"state_dim must be >= 1, got {state_dim}")
        if obs_horizon < 1:
            raise ValueError(f"obs_horizon must be >= 1, got {obs_horizon}")
        if not (np.isfinite(data_rate_hz) and data_rate_hz > 0):
            raise ValueError(f"data_rate_hz must be finite and > 0, got {data_rate_hz}")
        if not (np.isfinite(sync_tolerance) and sync_tolerance > 0):
            raise ValueError(f"sync_tolerance must be finite and > 0 s, got {sync_tolerance}")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"camera names must be unique: {list(cameras)}")
        self.state_dim = int(state_dim)
        self.cameras = tuple(cameras)
        self.obs_horizon = int(obs_horizon)
        self.data_period = 1.0 / float(data_rate_hz)
        self.sync_tolerance = float(sync_tolerance)
        self._lock = threading.Lock()
        self._states = _Series(max_states)
        self._frames = {c: _Series(max_frames) for c in self.cameras}

    def clear(self) -> None:
        with self._lock:
            self._states = _Series(self._states.items.maxlen or 1024)
            self._frames = {c: _Series(s.items.maxlen or 64) for c, s in self._frames.items()}

    def add_state(self, stamp: float, state: np.ndarray, received: float | None = None) -> None:
        """Add a joint-state vector (D_s,) (model state order, finite) stamped ``stamp`` s,
        received at ``received`` s (staleness counts from the earlier of the two)."""
        s = np.asarray(state, np.float64).reshape(-1)
        if s.size != self.state_dim:
            raise ValueError(f"state has {s.size} values, expected {self.state_dim}")
        if not np.isfinite(s).all():
            raise ValueError(f"state must be finite, got {s.tolist()}")
        with self._lock:
            self._states.add(float(stamp), s, received)

    def add_frame(self, camera: str, stamp: float, image: np.ndarray, received: float | None = None) -> None:
        """Add a model-size image (Hh, Ww, C) uint8 of ``camera`` stamped ``stamp`` s (received
        as for ``add_state``)."""
        if camera not in self._frames:
            raise ValueError(f"unknown camera {camera!r}; known: {list(self.cameras)}")
        with self._lock:
            self._frames[camera].add(float(stamp), image, received)

    def latest_state(self) -> tuple[float, np.ndarray] | None:
        """(stamp s, state (D_s,)) of the newest joint state, or None."""
        with self._lock:
            it = self._states.latest()
        return None if it is None else (it.stamp, it.value.copy())

    def ages(self, now: float) -> dict[str, float]:
        """Seconds since the newest joint state ("joints") and frame of each camera (by name),
        counted from the earlier of its stamp and its receipt; +inf for inputs never received."""
        with self._lock:
            series = {"joints": self._states, **self._frames}
            return {k: (now - s.items[-1].fresh_at) if s.items else float("inf") for k, s in series.items()}

    def stale_reason(self, now: float, max_age: float, ages: dict[str, float] | None = None) -> str | None:
        """None when every input is at most ``max_age`` s old, else a reason naming the input.
        ``ages``: ``self.ages(now)`` if the caller already has it (one read per control tick)."""
        for name, age in (self.ages(now) if ages is None else ages).items():
            if age == float("inf"):
                return f"no {name} received yet"
            if age > max_age:
                return f"{name} stale: {age:.3f} s old > max_obs_age {max_age:.3f} s"
            if age < -max_age:  # the clock jumped back (bag loop): wait for data on the new clock
                return f"{name} stamped {-age:.3f} s ahead of the clock (clock jumped back?)"
        return None

    def newest_stamp(self) -> float | None:
        """Stamp s of the newest sample ``build()`` would use (paired frame / joint state)."""
        with self._lock:
            pair = self._newest_pair()
        return None if pair is None else pair[0]

    def _pair(self, frame: _Item) -> tuple[float, np.ndarray, dict[str, np.ndarray]] | None:
        js = self._states.nearest(frame.stamp)
        if js is None or abs(js.stamp - frame.stamp) > self.sync_tolerance:
            return None
        images = {self.cameras[0]: frame.value}
        for cam in self.cameras[1:]:
            other = self._frames[cam].nearest(frame.stamp)
            if other is None or abs(other.stamp - frame.stamp) > self.sync_tolerance:
                return None
            images[cam] = other.value
        return frame.stamp, js.value, images

    def _newest_pair(self) -> tuple[float, np.ndarray, dict[str, np.ndarray]] | None:
        if not self.cameras:
            it = self._states.latest()
            return None if it is None else (it.stamp, it.value, {})
        for frame in reversed(self._frames[self.cameras[0]].items):
            pair = self._pair(frame)
            if pair is not None:
                return pair
        return None

    def _pair_near(self, t: float) -> tuple[float, np.ndarray, dict[str, np.ndarray]] | None:
        if not self.cameras:
            it = self._states.nearest(t)
            return None if it is None else (it.stamp, it.value, {})
        frames = list(self._frames[self.cameras[0]].items)
        frames.sort(key=lambda f: abs(f.stamp - t))  # nearest first; skip unpaired ones
        for frame in frames:
            pair = self._pair(frame)
            if pair is not None:
                return pair
        return None

    def build(self, after: float | None = None) -> Observation | None:
        """The observation history ending at the newest paired sample, or None if there is none
        (or if its stamp is not newer than ``after`` s -- unless it is older than ``after`` by
        more than ``CLOCK_RESET``: the clock jumped back and the series restarted).

        Returns ``Observation(state (T_o, D_s) float64, images {camera: (T_o, Hh, Ww, C) uint8},
        stamp = newest sample's stamp)``; arrays are fresh copies.
        """
        with self._lock:
            newest = self._newest_pair()
            if newest is None or (after is not None and after - _Series.CLOCK_RESET <= newest[0] <= after):
                return None
            samples = []
            for k in range(self.obs_horizon):
                t = newest[0] - (self.obs_horizon - 1 - k) * self.data_period
                samples.append(newest if k == self.obs_horizon - 1 else self._pair_near(t) or newest)
        state = np.stack([s[1] for s in samples]).astype(np.float64)
        images = {c: np.stack([s[2][c] for s in samples]) for c in self.cameras}
        return Observation(state=state, images=images, stamp=float(newest[0]))
