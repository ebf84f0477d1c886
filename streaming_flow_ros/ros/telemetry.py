"""Control-loop telemetry of the policy node: counters and rolling timing samples, rendered as
diagnostic_msgs/DiagnosticStatus and as a one-line log summary.

Definitions (all on the node clock unless said otherwise):

- tick period error: |actual period between consecutive control ticks - nominal period|, ms;
- step compute: wall time (time.perf_counter) of one tick's work (re-anchor if any, one
  ``policy.step()``, safety filter, message build and publish), ms; ``policy_step`` is the
  ``policy.step()`` call alone;
- obs-to-command latency: time the first command computed from a new plan was published minus
  the stamp of that plan's newest observation (the image's header stamp), ms;
- prepare: wall time of one ``policy.prepare(obs)`` (encoder) on the worker thread, ms;
- ticks expected: elapsed node time since activation x control rate.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from ..bench.common import percentiles_ms
from ..policy.control import TickOutput


def p50_p99_max(samples) -> tuple[float, float, float]:
    """(p50, p99, max) in ms of samples given in seconds (NaN when empty)."""
    d = percentiles_ms(samples)
    return d["p50"], d["p99"], d["max"]


@dataclass
class Telemetry:
    """Counters and samples; ``window`` None keeps every sample (benchmarks)."""

    window: int | None = 4096
    ticks: int = 0
    ticks_held: int = 0
    ticks_stale: int = 0
    reanchors: int = 0
    clamped: int = 0
    rate_limited: int = 0
    rejected: int = 0
    tick_errors: int = 0
    prepare_errors: int = 0
    plans_dropped: int = 0
    joint_msgs: int = 0
    image_msgs: int = 0
    input_errors: int = 0
    flow_time: float = 0.0
    started_at: float | None = None  # node-clock s one period before the first tick after activation
    last_error: str = ""
    period_err: deque = field(init=False)
    periods: deque = field(init=False)
    step: deque = field(init=False)
    policy_step: deque = field(init=False)
    obs_to_cmd: deque = field(init=False)
    prepare: deque = field(init=False)
    frames: dict = field(init=False, default_factory=dict)  # camera -> deque of receipt times (monotonic s)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for name in ("period_err", "periods", "step", "policy_step", "obs_to_cmd", "prepare"):
            setattr(self, name, deque(maxlen=self.window))

    def add(self, name: str, value: float) -> None:
        """Append a sample (seconds) to the named series; thread-safe."""
        with self._lock:
            getattr(self, name).append(float(value))

    def frame(self, camera: str, t: float) -> None:
        """A frame of ``camera`` arrived at ``t`` (monotonic s)."""
        with self._lock:
            self.frames.setdefault(camera, deque(maxlen=512)).append(t)

    def frame_rates(self, t: float, window: float = 2.0) -> dict[str, float]:
        """Frames/s delivered per camera over the last ``window`` s before ``t`` (monotonic);
        a camera whose first frame is less than ``window`` s old is not rated yet."""
        with self._lock:
            return {c: sum(1 for x in d if x > t - window) / window for c, d in self.frames.items()
                    if d and t - d[0] >= window}

    def record(self, out: TickOutput) -> None:
        """Count one tick's decision (control thread)."""
        if out.stale:
            self.ticks_stale += 1
            return
        self.reanchors += int(out.reanchored)
        self.plans_dropped += int(out.plan_dropped)
        self.ticks_held += int(out.policy_held)
        self.clamped += int(out.clamped)
        self.rate_limited += int(out.rate_limited)
        self.rejected += int(out.rejected)
        if out.policy_step_s > 0:  # the policy stepped this tick (not a hold or a fail-safe)
            self.flow_time = out.flow_time
            self.add("policy_step", out.policy_step_s)

    def snapshot(self, name: str) -> list[float]:
        with self._lock:
            return list(getattr(self, name))

    def expected_ticks(self, now: float, rate_hz: float) -> float:
        return 0.0 if self.started_at is None else max(0.0, (now - self.started_at) * rate_hz)

    def summary(self, now: float, rate_hz: float) -> dict[str, float]:
        """Key numbers (ms for times) for logs and diagnostics."""
        pe50, pe99, pemax = p50_p99_max(self.snapshot("period_err"))
        st50, st99, stmax = p50_p99_max(self.snapshot("step"))
        ol50, ol99, _ = p50_p99_max(self.snapshot("obs_to_cmd"))
        pr50, pr99, _ = p50_p99_max(self.snapshot("prepare"))
        return {
            "ticks": self.ticks,
            "ticks_expected": round(self.expected_ticks(now, rate_hz), 1),
            "ticks_held": self.ticks_held,
            "ticks_stale": self.ticks_stale,
            "reanchors": self.reanchors,
            "period_err_p50_ms": pe50,
            "period_err_p99_ms": pe99,
            "period_err_max_ms": pemax,
            "step_p50_ms": st50,
            "step_p99_ms": st99,
            "step_max_ms": stmax,
            "obs_to_cmd_p50_ms": ol50,
            "obs_to_cmd_p99_ms": ol99,
            "prepare_p50_ms": pr50,
            "prepare_p99_ms": pr99,
            "clamped": self.clamped,
            "rate_limited": self.rate_limited,
            "rejected": self.rejected,
            "tick_errors": self.tick_errors,
            "prepare_errors": self.prepare_errors,
            "plans_dropped": self.plans_dropped,
            "joint_msgs": self.joint_msgs,
            "image_msgs": self.image_msgs,
            "input_errors": self.input_errors,
            "flow_time": round(self.flow_time, 4),
        }


def diagnostic_status(
    name: str, level: bytes, message: str, values: dict[str, object]
) -> DiagnosticStatus:
    """A DiagnosticStatus with ``values`` rendered as strings (floats to 3 decimals)."""

    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=name,
        values=[KeyValue(key=k, value=fmt(v)) for k, v in values.items()],
    )


def one_line(state: str, enabled: bool, s: dict[str, float], ages_ms: dict[str, float]) -> str:
    """The periodic log summary."""
    ages = " ".join(f"{k}={v:.0f}ms" for k, v in ages_ms.items())
    return (
        f"{state} enabled={enabled} ticks={s['ticks']}/{s['ticks_expected']:.0f} "
        f"held={s['ticks_held']} stale={s['ticks_stale']} reanchors={s['reanchors']} "
        f"period_err p99={s['period_err_p99_ms']:.2f}ms step p99={s['step_p99_ms']:.2f}ms "
        f"obs->cmd p50={s['obs_to_cmd_p50_ms']:.1f}ms age {ages}"
    )
