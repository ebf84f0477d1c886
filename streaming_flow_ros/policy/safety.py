"""The last gate before a command leaves the node: joint position limits, a per-tick step
(velocity) limit and a non-finite guard. Pure numpy, no ROS, no torch.

For a proposed action ``a`` and the previous safe command ``p`` (both (D_a,) radians):

    a1 = clip(a, lower, upper)                     # position limits      -> ``clamped``
    s  = min(1, min_j max_step_j / |a1_j - p_j|)   # per-tick step limit  -> ``rate_limited``
    a2 = p + s * (a1 - p)                          #   the whole step scaled: direction kept
    any(!isfinite(a))  ->  a2 = p                  # hold the last safe command -> ``rejected``

The step limit scales the whole step by the most constrained joint instead of clipping each joint
on its own: a clipped joint would fall behind the others and bend the commanded path (towards an
obstacle the policy was steering around); scaled, the arm follows the same path, slower.

Guarantees (property-tested): the output is finite; ``|a2 - p| <= max_step`` element-wise; a2
lies on the segment from p to a1, so if ``p`` is within the limits, so is ``a2``, and a
rate-limited step points where the proposal does. If ``p`` is *outside* the limits (a robot
started beyond its soft limits), the output moves toward the box by at most ``max_step`` per
tick instead of jumping into it.

``max_step`` is in radians per control tick: ``max_velocity [rad/s] / control_rate [Hz]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SafetyLimits:
    """Per-joint limits, robot units. lower/upper (D_a,) rad (may be -inf/+inf, lower < upper);
    max_step (D_a,) rad per tick (> 0; +inf disables the step limit for that joint)."""

    lower: np.ndarray
    upper: np.ndarray
    max_step: np.ndarray

    def __post_init__(self) -> None:
        lo = np.asarray(self.lower, np.float64).reshape(-1)
        hi = np.asarray(self.upper, np.float64).reshape(-1)
        st = np.asarray(self.max_step, np.float64).reshape(-1)
        if not (lo.shape == hi.shape == st.shape) or lo.size == 0:
            raise ValueError(f"limit sizes differ or are empty: lower {lo.size}, upper {hi.size}, "
                             f"max_step {st.size}")
        if np.isnan(lo).any() or np.isnan(hi).any() or np.isnan(st).any():
            raise ValueError("limits must not contain NaN")
        if not (lo < hi).all():
            bad = np.flatnonzero(~(lo < hi)).tolist()
            raise ValueError(f"lower must be < upper; violated at joints {bad}: "
                             f"lower {lo[bad].tolist()}, upper {hi[bad].tolist()}")
        if not (st > 0).all():
            raise ValueError(f"max_step must be > 0 rad/tick, got {st.tolist()}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "max_step", st)

    @property
    def dim(self) -> int:
        return int(self.lower.size)

    @classmethod
    def from_velocity(
        cls,
        lower: Sequence[float],
        upper: Sequence[float],
        max_velocity: Sequence[float],
        control_rate_hz: float,
    ) -> SafetyLimits:
        """Limits from position bounds (rad) and max joint speeds (rad/s) at a control rate (Hz)."""
        if not (np.isfinite(control_rate_hz) and control_rate_hz > 0):
            raise ValueError(f"control_rate_hz must be finite and > 0, got {control_rate_hz}")
        v = np.asarray(max_velocity, np.float64).reshape(-1)
        return cls(np.asarray(lower, np.float64), np.asarray(upper, np.float64), v / control_rate_hz)


@dataclass(frozen=True)
class SafetyResult:
    """action: (D_a,) float64 rad, finite, the command to send; delta: action - previous.
    clamped: a position limit was binding; rate_limited: the step limit was binding;
    rejected: the proposal had non-finite values and the previous command is held."""

    action: np.ndarray
    delta: np.ndarray
    clamped: bool
    rate_limited: bool
    rejected: bool


class BinaryGripper:
    """``gripper_mode: binary``: the gripper command (arrays element-wise) snapped to its upper
    limit (open) or its lower limit (closed), whichever side of the midpoint it is; with
    ``gripper_hysteresis`` h in [0, 1), a closed output opens only once the command rises above
    the midpoint + h/2 of the travel, and an open one closes only below the midpoint - h/2, so
    a command that lingers near the midpoint (a flow between two demos' gripper states) does not
    make the gripper chatter. The first call (and the first after :meth:`reset`) takes the side
    of the midpoint; a non-finite value keeps the last output (closed before any: the node's
    safety filter never lets one through)."""

    def __init__(self, lower, upper, hysteresis: float = 0.0) -> None:
        lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        if not (np.isfinite(lower).all() and np.isfinite(upper).all() and (lower < upper).all()):
            raise ValueError(f"a binary gripper needs finite limits with lower < upper, got {lower} / {upper}")
        if not (0.0 <= hysteresis < 1.0):
            raise ValueError(f"gripper_hysteresis must be in [0, 1), got {hysteresis}")
        self.lower, self.upper = lower, upper
        self._mid, half = 0.5 * (lower + upper), 0.5 * hysteresis * (upper - lower)
        self._open_above, self._close_below = self._mid + half, self._mid - half
        self._open: np.ndarray | None = None

    def __call__(self, value) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self._open is None:
            state = value >= self._mid
        else:
            keep = ~np.isfinite(value) | ((value < self._open_above) & (value >= self._close_below))
            state = np.where(keep, self._open, value >= self._open_above)
        self._open = state
        return np.where(state, self.upper, self.lower)

    def reset(self) -> None:
        """Forget the last output: the next command takes the side of the midpoint."""
        self._open = None


def filter_action(action: np.ndarray, previous: np.ndarray, limits: SafetyLimits) -> SafetyResult:
    """Apply ``limits`` to a proposed ``action`` given the ``previous`` safe command.

    Args:
        action: (D_a,) proposed command, rad; may contain NaN/inf (then it is rejected).
        previous: (D_a,) last command sent, rad; must be finite.
    Raises:
        ValueError: on size mismatch or a non-finite ``previous``.
    """
    a = np.asarray(action, np.float64).reshape(-1)
    p = np.asarray(previous, np.float64).reshape(-1)
    if a.size != limits.dim or p.size != limits.dim:
        raise ValueError(f"action has {a.size} and previous {p.size} values; limits have {limits.dim}")
    if not np.isfinite(p).all():
        raise ValueError(f"previous command must be finite, got {p.tolist()}")
    if not np.isfinite(a).all():
        return SafetyResult(p.copy(), np.zeros_like(p), False, False, True)
    a1 = np.clip(a, limits.lower, limits.upper)
    d = a1 - p
    over = np.abs(d) > limits.max_step
    if over.any():
        scale = float(np.min(limits.max_step[over] / np.abs(d[over])))
        a2 = p + scale * d
        # rounding guard: stay within the step and on p's side of the box
        a2 = np.clip(a2, p - limits.max_step, p + limits.max_step)
        a2 = np.clip(a2, np.minimum(limits.lower, p), np.maximum(limits.upper, p))
    else:
        a2 = a1
    return SafetyResult(
        action=a2,
        delta=a2 - p,
        clamped=bool((a1 != a).any()),
        rate_limited=bool(over.any()),
        rejected=False,
    )


class SafetyFilter:
    """``filter_action`` with the previous safe command kept between ticks.

    Usage::

        f = SafetyFilter(limits)
        f.reset(measured_position)        # on activation / enable: hold where the robot is
        cmd = f(policy_action).action     # every tick
    """

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        self._last: np.ndarray | None = None

    @property
    def last(self) -> np.ndarray | None:
        """The last safe command (D_a,) rad, a copy; None before ``reset``."""
        return None if self._last is None else self._last.copy()

    def reset(self, position: np.ndarray) -> None:
        """Make ``position`` (D_a,) rad, finite, the previous command (it is not clamped: the
        next outputs walk into the limits at the step limit if it lies outside)."""
        p = np.asarray(position, np.float64).reshape(-1)
        if p.size != self.limits.dim:
            raise ValueError(f"reset position has {p.size} values; limits have {self.limits.dim}")
        if not np.isfinite(p).all():
            raise ValueError(f"reset position must be finite, got {p.tolist()}")
        self._last = p.copy()

    def __call__(self, action: np.ndarray) -> SafetyResult:
        if self._last is None:
            raise RuntimeError("SafetyFilter.reset() must be called before filtering")
        result = filter_action(action, self._last, self.limits)
        self._last = result.action.copy()
        return result
