"""Time alignment of recorded streams onto a uniform grid: pure numpy, no bag or ROS types.

Times are integer nanoseconds (int64) on one clock (the bag's log time). Used by
:mod:`.build`; the conventions (linear interpolation for joint states, zero-order hold for
commands and images, cutting at gaps) are described there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Stream:
    """One topic read whole: ``t_ns`` (M,) int64 ascending, ``values`` (M, ...)."""

    topic: str
    t_ns: np.ndarray
    values: np.ndarray
    extra: dict = field(default_factory=dict)


def pieces(
    streams: list[Stream], max_gap_ns: int, split: bool, label: str = ""
) -> list[tuple[int, int]]:
    """[(start_ns, end_ns)] of the overlap of all streams, cut at gaps longer than ``max_gap_ns``.

    The overlap runs from the latest first message to the earliest last message. A gap (a, b)
    between consecutive messages of any stream that intersects the overlap raises ValueError
    (naming the stream and times, in s from the earliest message) unless ``split``, in which case
    the open interval (a, b) is removed. ``label`` prefixes error messages (e.g. the bag path).
    """
    start = max(int(s.t_ns[0]) for s in streams)
    end = min(int(s.t_ns[-1]) for s in streams)
    t0 = min(int(s.t_ns[0]) for s in streams)

    def rel(t: int) -> str:
        return f"{(t - t0) / 1e9:.3f}"

    if end <= start:
        spans = ", ".join(f"{s.topic} [{rel(s.t_ns[0])}, {rel(s.t_ns[-1])}] s" for s in streams)
        raise ValueError(f"{label}: required streams do not overlap in time: {spans}")
    out = [(start, end)]
    for s in streams:
        for k in np.flatnonzero(np.diff(s.t_ns) > max_gap_ns):
            a, b = int(s.t_ns[k]), int(s.t_ns[k + 1])
            if b <= start or a >= end:
                continue  # outside the overlap: irrelevant
            if not split:
                raise ValueError(
                    f"{label}: gap of {(b - a) / 1e9:.3f} s in {s.topic} between t={rel(a)} s and "
                    f"t={rel(b)} s from bag start (log time {a} ns) exceeds max gap "
                    f"{max_gap_ns / 1e9} s; raise --max-gap or pass --split-on-gap"
                )
            out = [p for lo, hi in out for p in ((lo, min(hi, a)), (max(lo, b), hi)) if p[1] > p[0]]
    return out


def grid(lo_ns: int, hi_ns: int, rate_hz: float) -> np.ndarray:
    """(N,) int64 ns: ``lo_ns + k / rate_hz`` for k = 0, 1, ... while <= ``hi_ns`` (empty if none)."""
    period_ns = 1e9 / rate_hz
    if hi_ns < lo_ns:
        return np.zeros(0, np.int64)
    n = int(np.floor((hi_ns - lo_ns) / period_ns + 1e-9)) + 1
    return lo_ns + np.round(np.arange(n) * period_ns).astype(np.int64)


def interp_linear(t_ns: np.ndarray, values: np.ndarray, query_ns: np.ndarray) -> np.ndarray:
    """Linear interpolation of (M, D) ``values`` at (N,) ``query_ns`` -> (N, D) float64.

    Queries must lie within [t_ns[0], t_ns[-1]] (np.interp would clamp outside).
    """
    ref = int(t_ns[0])
    x, xq = (t_ns - ref) / 1e9, (query_ns - ref) / 1e9  # small offsets in s: exact enough in float64
    return np.stack([np.interp(xq, x, values[:, j]) for j in range(values.shape[1])], axis=1)


def hold_latest(t_ns: np.ndarray, values: np.ndarray, query_ns: np.ndarray) -> np.ndarray:
    """Zero-order hold: the latest row at or before each query time (queries >= t_ns[0])."""
    return values[np.searchsorted(t_ns, query_ns, side="right") - 1]
