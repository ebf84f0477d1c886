"""Worker integration: the flow integrated off the control thread when one step is slower than
a tick, streamed at the control rate (RuntimeConfig ``integration``; docs/METHOD.md, "Run time").

Tick integration (the default) takes one flow step of dt = 1 / (H m) per control tick on the
control thread, so a network whose pass takes longer than a tick makes every tick late. Worker
integration runs the same runtime at a coarser step, s ticks per flow step (the runtime built
at control_rate / s, so one step advances flow time by s dt), on its own thread, ahead of the
ticks; each tick returns the point of the integrated path at its own time::

    waypoints   w_j = the runtime's j-th step, at tick c0 + j s     (w_0 = the anchor)
    tick c      a_c = (1 - f) w_j + f w_{j+1},   j = (c - c0) // s,   f = ((c - c0) mod s) / s

Flow time still advances by dt per tick, with the plan's (wall) clock, as in tick mode: only the
integration is coarser. With Euler, w_j is Euler with step s dt and the commands are that Euler
polyline sampled at every tick (tick mode exactly when s = 1); s divides the ticks per data
period, so the data-rate knots of the chunk (where its velocity jumps) stay on the waypoint grid.
Commands are continuous and move at most max_j |w_{j+1} - w_j| / s per tick.

Re-anchoring takes effect D = 2 s ticks after ``start()`` (a pass may be in flight, then the new
plan's first step): until then the current path continues. The new plan's flow starts at t = 0
at the point the stream reaches then, and ``now`` is advanced by D ticks, so latency
compensation (``skip_elapsed``) catches up with D as with any other age of the plan. The anchor
given to ``start()`` (the control loop's last safety-filtered command) is honoured: its
difference d from this runtime's own last output (non-zero only when the filter clamped or
rate-limited the path) is added to every output until the switch and then carried by the new
plan's anchor. ``reset()`` acts at once (hold).

When the worker has not produced the point a tick needs (a pass slower than measured, CPU
contention), the tick returns the previous command and the stream's clock waits that tick (a
*stall*, counted in ``stats``): a tick never waits for a pass, the commands stay continuous, the
plan runs late. An exception in the worker is raised from the next ``step()``.

``integrate_on``: "thread" (real time, the node) or "caller": the waypoints are computed inside
``step()`` when a tick needs them (evaluations on a simulated clock): the same commands as the
thread gives when it keeps up, deterministically.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .protocol import Observation, RuntimeConfig, RuntimePolicy, StepResult

log = logging.getLogger(__name__)

TICK_BUDGET = 0.5  # auto: tick integration while a step's median takes at most this share of a tick
MARGIN = 1.5  # a worker step is given MARGIN x its measured median time
WORKER_NICE = 5  # niceness added to the worker thread: the control thread wins a busy core
WAIT_S = 0.05  # s: the idle worker re-checks at least this often (and exits once unreferenced)


def choose_stride(step_s: float, control_rate_hz: float, data_rate_hz: float) -> int:
    """Ticks per flow step for a step of ``step_s`` s: the smallest s >= MARGIN step_s / period
    that keeps the data periods on the waypoint grid (a divisor of m = ticks per data period, or
    a multiple of m)."""
    if not (math.isfinite(step_s) and step_s >= 0):
        raise ValueError(f"step time must be finite and >= 0 s, got {step_s}")
    need = max(1, math.ceil(MARGIN * step_s * control_rate_hz - 1e-9))
    m = max(1, round(control_rate_hz / data_rate_hz))
    if need <= m:
        return min(d for d in range(need, m + 1) if m % d == 0)
    return m * math.ceil(need / m)


def measure_step_s(policy: RuntimePolicy, n: int = 30, budget_s: float = 3.0) -> np.ndarray:
    """Wall seconds of ``n`` ``policy.step()`` calls on a blank observation (fewer if they take
    more than ``budget_s``), after two warm-up steps; the policy is left reset at its anchor."""
    spec, t_o = policy.spec, policy.obs_horizon
    images = {c.name: np.zeros((t_o, c.height, c.width, c.channels), np.uint8) for c in spec.cameras}
    home = np.zeros(spec.action_dim)
    if spec.action_lower:
        home = np.clip(home, spec.action_lower, spec.action_upper)
    measured = home if spec.state_names == spec.action_names else np.zeros(spec.state_dim)  # anchor: state
    plan = policy.prepare(Observation(np.zeros((t_o, spec.state_dim)), images, 0.0))
    policy.reset(home)
    policy.start(plan, measured)
    times: list[float] = []
    end = time.perf_counter() + budget_s
    for k in range(n + 2):
        t0 = time.perf_counter()
        if policy.step().hold:  # used up: start again (not timed)
            policy.start(plan, measured, anchor=home)
            continue
        if k >= 2:
            times.append(time.perf_counter() - t0)
        if time.perf_counter() > end and len(times) >= 3:
            break
    policy.reset(home)
    return np.asarray(times)


def with_integration(build: Callable[[RuntimeConfig], RuntimePolicy], config: RuntimeConfig) -> RuntimePolicy:
    """The runtime ``config.integration`` asks for: ``build(cfg)`` makes the runtime for a
    config with tick integration; "auto" measures its step and returns it as is when a step fits
    TICK_BUDGET of a tick; otherwise a WorkerIntegration around a runtime built at the coarse
    rate (control_rate / ticks_per_step)."""
    tick_cfg = replace(config, integration="tick", ticks_per_step=0)
    if config.integration == "tick":
        return build(tick_cfg)
    rate = config.control_rate_hz
    stride, step_s = int(config.ticks_per_step), float("nan")
    if stride == 0:
        policy = build(tick_cfg)
        step_s = float(np.median(measure_step_s(policy)))
        if config.integration == "auto" and step_s <= TICK_BUDGET / rate:
            log.info("integration auto: a flow step takes %.2f ms, <= %.0f %% of the %.1f ms tick: "
                     "one step per tick", 1e3 * step_s, 100 * TICK_BUDGET, 1e3 / rate)
            return policy
        stride = choose_stride(step_s, rate, policy.spec.data_rate_hz)
        del policy
    inner = build(replace(tick_cfg, control_rate_hz=rate / stride))
    log.info("integration worker: a flow step every %d ticks (measured step %.2f ms, tick %.1f ms), "
             "re-anchoring %d ticks after start", stride, 1e3 * step_s, 1e3 / rate, 2 * stride)
    return WorkerIntegration(inner, config, stride, measured_step_s=step_s)


@dataclass(frozen=True)
class Waypoint:
    """A point of the streamed path: ``tick`` (ticks since reset), ``action`` (D_a,) robot
    units, flow time ``t``, ``hold`` (no plan / used up)."""

    tick: int
    action: np.ndarray
    t: float
    hold: bool


@dataclass
class _Segment:
    """One plan's waypoints (at c0 + j stride), or a hold; ``ended``: no more will come."""

    c0: int
    points: list[Waypoint]
    ended: bool = False

    @property
    def last_tick(self) -> int:
        return self.points[-1].tick

    def at(self, c: int, stride: int) -> Waypoint | None:
        """The path at tick ``c`` >= c0 (linear between waypoints), or None if not computed yet."""
        j, r = divmod(c - self.c0, stride)
        pts = self.points
        if j >= len(pts) - 1 and self.ended:
            last = pts[-1]
            return Waypoint(c, last.action, last.t, last.hold)
        if r == 0 and j < len(pts):
            return pts[j]
        if j + 1 >= len(pts):
            return None
        a, b, f = pts[j], pts[j + 1], r / stride
        return Waypoint(c, a.action + f * (b.action - a.action), a.t + f * (b.t - a.t), b.hold)


@dataclass(frozen=True)
class _Start:
    c_sw: int  # the tick the plan takes over
    plan: Any
    measured: np.ndarray | None
    delta: np.ndarray  # anchor given to start() - this runtime's output then
    now: float | None  # the caller's clock at c_sw (estimated: start's now + D ticks)


@dataclass
class IntegrationStats:
    """Counters of a WorkerIntegration: ``stride`` ticks per flow step, ``delay_ticks`` from
    start() to the switch, ``ticks`` streamed, ``stalls`` (ticks that found no point and held),
    ``steps`` / ``step_s`` flow steps the worker computed and their total wall seconds."""

    stride: int
    delay_ticks: int
    measured_step_s: float = float("nan")
    ticks: int = 0
    stalls: int = 0
    steps: int = 0
    step_s: float = 0.0
    errors: int = 0
    step_samples: deque = field(default_factory=lambda: deque(maxlen=4096))


def integration_values(policy: object) -> dict[str, float | int]:
    """The worker integration's counters (policy/integration.py) when the node runs one: ticks
    per flow step, ticks from a plan's start to its hand-over, stalls (ticks that repeated the
    last command because the worker was behind) and the mean flow-step time; {} otherwise."""
    if not isinstance(policy, WorkerIntegration):
        return {}
    stats = policy.stats
    mean_ms = stats.step_s / stats.steps * 1e3 if stats.steps else float("nan")
    return {"integration_stride": stats.stride, "integration_handover_ticks": stats.delay_ticks,
            "integration_stalls": stats.stalls, "integration_step_mean_ms": mean_ms,
            "integration_errors": stats.errors}


def integration_warning(values: dict[str, float | int], stalls_before: int) -> str:
    """A diagnostics message when the worker integration stalled since the last report (its
    counter had ``stalls_before``), or ""."""
    stalls = values.get("integration_stalls", 0) - stalls_before
    if stalls <= 0:
        return ""
    return (f"integration worker behind: {stalls} ticks repeated the last command (flow step "
            f"{values['integration_step_mean_ms']:.1f} ms, {values['integration_stride']} ticks per step): "
            f"raise ticks_per_step or use a smaller net")


class WorkerIntegration:
    """A RuntimePolicy streaming ``inner`` (a runtime built at control_rate / ``stride``) at the
    control rate, integrating it on a worker (module docstring). ``config``: the deployment
    config at the control rate (integrate_on, skip_elapsed...). Only prepare / reset / start /
    step change its state, as for every runtime; ``inner`` must not be used by anyone else."""

    def __init__(self, inner: RuntimePolicy, config: RuntimeConfig, stride: int,
                 measured_step_s: float = float("nan")) -> None:
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1 tick, got {stride}")
        self._policy = inner  # the worker's only: never touched from the tick side
        self.config = config
        self.spec, self.obs_horizon, self.action_horizon = inner.spec, inner.obs_horizon, inner.action_horizon
        self.stride = int(stride)
        self.delay_ticks = 2 * self.stride
        self.lookahead = self.delay_ticks + self.stride
        # a started plan's first command goes out this much later than the tick that started it
        self.handover_s = self.delay_ticks / config.control_rate_hz
        self.stats = IntegrationStats(self.stride, self.delay_ticks, measured_step_s)
        self._D = inner.spec.action_dim
        self._cv = threading.Condition()
        # tick side state, under _cv; the worker reads it and appends waypoints / segments
        self._gen = 0  # bumped by reset(): the worker drops results of an older generation
        self._c = 0  # ticks streamed since reset
        self._out: Waypoint | None = None  # the last output
        self._segments: list[_Segment] = []
        self._starts: deque[_Start] = deque()  # started, not yet taken over by the worker
        self._offsets: deque[tuple[int, np.ndarray]] = deque()  # (c_sw, delta) until the switch
        self._reset_to: np.ndarray | None = None  # a reset the worker has still to apply
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if config.integrate_on == "thread":
            self._thread = threading.Thread(target=_worker_main, args=(weakref.ref(self),),
                                            name="sfp-integration", daemon=True)
            self._thread.start()

    # -- the runtime protocol -----------------------------------------------------------------
    @property
    def t(self) -> float:
        return 0.0 if self._out is None else self._out.t

    @property
    def last_action(self) -> np.ndarray | None:
        return None if self._out is None else self._out.action.copy()

    def prepare(self, obs: Observation) -> Any:
        """The inner runtime's prepare (pure; any thread)."""
        return self._policy.prepare(obs)

    def reset(self, action: np.ndarray) -> None:
        """Hold at ``action`` at once; pending starts and computed waypoints are dropped."""
        a = self._checked(action, "reset action")
        with self._cv:
            self._gen += 1
            self._c = 0
            self._out = Waypoint(0, a, 0.0, True)
            self._segments = [_Segment(0, [self._out], ended=True)]
            self._starts.clear()
            self._offsets.clear()
            self._reset_to = a
            self._error = None
            self._cv.notify_all()

    def start(self, plan: Any, measured_state: np.ndarray | None = None, anchor: np.ndarray | None = None,
              now: float | None = None) -> None:
        """Take ``plan`` over ``delay_ticks`` ticks from now, continuing from ``anchor`` (default:
        the last output); see the module docstring."""
        if anchor is not None:
            anchor = self._checked(anchor, "anchor")
        if self._out is None:
            if anchor is None:
                raise ValueError("no anchor: call reset(action) first or pass anchor")
            self.reset(anchor)
        measured = None if measured_state is None else np.asarray(measured_state, np.float64).copy()
        with self._cv:
            delta = np.zeros(self._D) if anchor is None else anchor - self._out.action
            c_sw = self._c + self.delay_ticks
            now_sw = None if now is None else float(now) + self.delay_ticks / self.config.control_rate_hz
            self._starts.append(_Start(c_sw, plan, measured, delta, now_sw))
            if delta.any():
                self._offsets.append((c_sw, delta))
            self._cv.notify_all()

    def step(self) -> StepResult:
        """One tick: the path at the next tick (never waits for the worker's pass)."""
        if self._thread is None:
            self._compute_until(self._c + 1)
        with self._cv:
            if self._error is not None:
                err, self._error = self._error, None
                raise RuntimeError(f"integration worker: {type(err).__name__}: {err}") from err
            if self._out is None:
                raise RuntimeError("step() before reset()/start(): no anchor")
            c = self._c + 1
            w = self._value(c)
            if w is None:  # the worker is behind: hold this tick, the path waits
                self.stats.stalls += 1
                out = self._out
                return StepResult(out.action.copy(), out.t, out.hold)
            while self._offsets and self._offsets[0][0] <= c:
                self._offsets.popleft()
            action = w.action + sum(d for _, d in self._offsets) if self._offsets else w.action
            self._c, self._out = c, Waypoint(c, action, w.t, w.hold)
            self.stats.ticks += 1
            while len(self._segments) > 1 and self._segments[1].c0 <= c:
                self._segments.pop(0)
            self._cv.notify_all()  # the look-ahead window moved
            return StepResult(action.copy(), w.t, w.hold)

    # -- helpers ------------------------------------------------------------------------------
    def ready(self) -> bool:
        """The next tick's point is computed (benchmarks / tests synchronise on it)."""
        with self._cv:
            return self._error is not None or self._value(self._c + 1) is not None

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``ready()`` (never call this from a control tick)."""
        end = time.monotonic() + timeout
        with self._cv:
            while self._error is None and self._value(self._c + 1) is None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker thread (it also stops by itself once this object is unreferenced)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _value(self, c: int) -> Waypoint | None:
        """The raw path (without offsets) at tick ``c``, or None if not computed yet (under _cv)."""
        if self._starts and self._starts[0].c_sw <= c:
            return None  # a plan takes over by then and the worker has not applied it yet
        for seg in reversed(self._segments):
            if seg.c0 <= c:
                return seg.at(c, self.stride)
        return None

    def _checked(self, a: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(a, np.float64)
        if a.shape != (self._D,):
            raise ValueError(f"{what} has shape {a.shape}, expected ({self._D},)")
        if not np.isfinite(a).all():
            raise ValueError(f"{what} has non-finite values: {a}")
        return a.copy()

    # -- the worker ---------------------------------------------------------------------------
    def _compute_until(self, c: int) -> None:
        """integrate_on "caller": do the worker's jobs until tick ``c``'s point exists."""
        while True:
            with self._cv:
                if self._error is not None or self._out is None or self._value(c) is not None:
                    return
            if not self._work_once(horizon=c):
                return

    def _work_once(self, horizon: int | None = None, idle_wait: float = 0.0) -> bool:
        """One job, in this order: apply a reset; take a due start over (once the current path
        reaches its tick); one flow step of the current plan (while it is needed: up to a start,
        or ``horizon``, default ``lookahead`` ticks ahead of the stream). Returns False when
        there was nothing to do, after waiting up to ``idle_wait`` s for a change (under the
        same lock as the decision: no notification is missed). Jobs run outside the lock."""
        with self._cv:
            if self._closed or not self._segments:
                if not self._closed and idle_wait > 0:
                    self._cv.wait(idle_wait)
                return False
            gen = self._gen
            if self._reset_to is not None:
                job, arg, self._reset_to = "reset", self._reset_to, None
            else:
                seg = self._segments[-1]
                nxt = self._starts[0] if self._starts else None
                limit = self._c + self.lookahead if horizon is None else horizon
                if nxt is not None and (seg.ended or seg.last_tick >= nxt.c_sw):
                    job, arg = "start", (nxt, seg.at(nxt.c_sw, self.stride).action + nxt.delta)
                elif not seg.ended and (nxt is not None or seg.last_tick < limit):
                    job, arg = "step", seg
                else:
                    if idle_wait > 0:
                        self._cv.wait(idle_wait)
                    return False
        try:
            if job == "reset":
                self._policy.reset(arg)
                return True
            if job == "start":
                start, anchor = arg
                self._policy.start(start.plan, start.measured, anchor=anchor, now=start.now)
                first = Waypoint(start.c_sw, anchor, float(self._policy.t), False)
                with self._cv:
                    if gen == self._gen and self._starts and self._starts[0] is start:
                        self._starts.popleft()
                        self._segments.append(_Segment(start.c_sw, [first]))
                        self._cv.notify_all()
                return True
            t0 = time.perf_counter()
            r = self._policy.step()
            took = time.perf_counter() - t0
        except Exception as e:  # handed to the tick side: step() raises it there
            with self._cv:
                self.stats.errors += 1
                if self._thread is None:
                    raise  # integrate_on caller: we are in step()
                if gen == self._gen:
                    self._error = e
                    self._segments[-1].ended = True  # nothing more comes from this plan
                    self._cv.notify_all()
            return True
        with self._cv:
            self.stats.steps += 1
            self.stats.step_s += took
            self.stats.step_samples.append(took)
            if gen == self._gen and self._segments and self._segments[-1] is arg:
                arg.points.append(Waypoint(arg.last_tick + self.stride, r.action.copy(), float(r.t), bool(r.hold)))
                arg.ended = bool(r.hold)
                self._cv.notify_all()
        return True


def _worker_main(ref: weakref.ref) -> None:
    """The worker thread: jobs until the WorkerIntegration is closed or unreferenced (only a
    weak reference is kept between jobs, so dropping the runtime ends the thread)."""
    try:  # Linux: nice only this thread, so the OS prefers the control thread on busy cores
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except (AttributeError, OSError):
        pass
    while True:
        self = ref()
        if self is None or self._closed:
            return
        self._work_once(idle_wait=WAIT_S)
        del self
