"""The control loop: every per-tick decision of the policy node, pure and ROS-free.

One ``ControlLoop.tick(now, inputs)`` per control tick decides what goes out: anchoring, the
stale gate, enable/disable, the re-anchor cadence, latency compensation (via the runtime's
``start(now=...)``), the safety filter and every hold. The node (ros/node.py) is glue around it;
the offline evaluations (apps/offline_eval.py, bench/pusht/evaluate.py, the simulator benches)
drive the same loop on a simulated clock, so every number comes from the loop the node runs.

Per tick, in order::

    enabled changed?   off -> one hold of the last command to the controller
                       on  -> re-anchor (below), no jump for the controller
    not anchored?      needs a fresh measured state within the limits (or at most
                       ``walk_in_s`` of travel at max speed outside them: the safety filter walks
                       it in); anchors policy + safety filter there (or, right after an enable
                       at most ``agree_s`` after the last command the controller got, at that
                       command if the arm is within ``agree_s`` of travel of it: the first
                       command then obeys the step limit)
    stale inputs?      drop the plan, hold the last command (``on_stale``: hold | silent)
    plan due?          every ``period`` ticks (reanchor: observation 1, ticks N, horizon H data
                       periods): take the newest plan; older than ``max_obs_age`` -> dropped;
                       else policy.start(plan, measured, anchor=last command, now)
    step               policy.step() -> SafetyFilter -> command (+ velocity)

Times are seconds on the caller's clock (the node clock; sim time in evaluations); positions in
robot units (rad); the tick period is ``1 / control_rate_hz``.

Guarantees (tests/test_control.py): every command is finite; consecutive commands differ by at
most the step limit, also across a quick disable/enable (within ``agree_s``) while the arm lags
up to ``agree_s`` behind; every command lies within the position limits or, after anchoring outside them, moves toward
them by at most one step per tick and never further out; no command goes to the controller
while disabled except the one hold at disable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from .protocol import RuntimePolicy
from .safety import SafetyFilter, SafetyLimits

WALK_IN_S = 1.0  # s: anchoring outside the limits only if walking in takes at most this
AGREE_S = 0.25  # s: at enable, the arm within this much travel of the last command continues it


@dataclass(frozen=True)
class LoopConfig:
    """The control loop's settings (the node's parameters of the same names).

    control_rate_hz: ticks per second. reanchor / reanchor_ticks: the plan cadence (see
    ``reanchor_period``). max_obs_age: s, the oldest input (and plan) that may drive a command.
    on_stale: "hold" publishes the hold every stale tick, "silent" publishes nothing.
    walk_in_s, agree_s: s of travel at max speed (see the module docstring).
    """

    control_rate_hz: float = 100.0
    reanchor: Literal["observation", "ticks", "horizon"] = "horizon"
    reanchor_ticks: int = 10
    max_obs_age: float = 0.5
    on_stale: Literal["hold", "silent"] = "hold"
    walk_in_s: float = WALK_IN_S
    agree_s: float = AGREE_S

    def __post_init__(self) -> None:
        if not (np.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            raise ValueError(f"control_rate_hz must be finite and > 0, got {self.control_rate_hz}")
        if self.reanchor not in ("observation", "ticks", "horizon"):
            raise ValueError(f"reanchor must be observation|ticks|horizon, got {self.reanchor!r}")
        if int(self.reanchor_ticks) < 1:
            raise ValueError(f"reanchor_ticks must be >= 1, got {self.reanchor_ticks}")
        if not (np.isfinite(self.max_obs_age) and self.max_obs_age > 0):
            raise ValueError(f"max_obs_age must be finite and > 0 s, got {self.max_obs_age}")
        if self.on_stale not in ("hold", "silent"):
            raise ValueError(f"on_stale must be hold|silent, got {self.on_stale!r}")
        if not (self.walk_in_s >= 0 and self.agree_s >= 0):
            raise ValueError(f"walk_in_s and agree_s must be >= 0, got {self.walk_in_s}, {self.agree_s}")


def reanchor_period(config: LoopConfig, policy: RuntimePolicy) -> int:
    """Control ticks from one plan start to the next plan being due: 1 with ``observation``
    (every fresh plan starts at the next tick), ``reanchor_ticks`` with ``ticks``, and the
    policy's action horizon in data periods at the control rate with ``horizon`` (the paper's
    receding horizon: 8 data periods = 80 ticks at 100 Hz on 10 Hz data)."""
    if config.reanchor == "ticks":
        return int(config.reanchor_ticks)
    if config.reanchor == "horizon":
        return max(1, round(policy.action_horizon * config.control_rate_hz / policy.spec.data_rate_hz))
    return 1


class Plan(Protocol):
    plan: Any  # what policy.prepare returned
    stamp: float  # s, the newest observation sample behind it


class PlanSource(Protocol):
    """Where plans come from: the node's PlanWorker (prepared on a thread) or an evaluation's
    synchronous source (prepared on demand). ``take`` is called only when a plan is due."""

    def take(self) -> Plan | None: ...

    def discard(self) -> None: ...


@dataclass(frozen=True)
class PreparedOnDemand:
    """A Plan: what ``prepare`` returned for the observation stamped ``stamp`` (s)."""

    plan: Any
    stamp: float


class LatestObservation:
    """The PlanSource of the offline evaluations: keeps the newest offered observation and
    prepares it only when the loop takes it (when a plan is due), so a simulated clock pays for
    no plan it does not use. The node's PlanWorker prepares every observation on its own
    thread instead; the loop sees the same thing: the newest plan when one is due.

    Usage: ``source.offer(obs)`` each data period, then ``loop.tick(now, inputs)``."""

    def __init__(self, prepare) -> None:
        self._prepare = prepare
        self._pending = None

    def offer(self, obs) -> None:
        """A new observation (an Observation with ``stamp``); replaces an untaken one."""
        self._pending = obs

    def take(self) -> PreparedOnDemand | None:
        obs, self._pending = self._pending, None
        return None if obs is None else PreparedOnDemand(self._prepare(obs), float(obs.stamp))

    def discard(self) -> None:
        self._pending = None


@dataclass(frozen=True)
class TickInputs:
    """What the loop knows of the world at a tick (robot units, s).

    measured: (D_a,) the newest measured positions of the action joints (None: none yet).
    measured_state: (D_s,) the same message's model state channels.
    joints_age: now - stamp of ``measured`` (None: none yet).
    stale_reason: why an input is missing or older than max_obs_age (None: all fresh).
    enabled: whether commands may go to the controller.
    """

    measured: np.ndarray | None
    measured_state: np.ndarray | None
    joints_age: float | None
    stale_reason: str | None
    enabled: bool

    @classmethod
    def simulated(cls, measured: np.ndarray, measured_state: np.ndarray | None = None) -> TickInputs:
        """A simulator's inputs: the true state, fresh, enabled."""
        return cls(measured, measured_state, 0.0, None, True)


@dataclass(frozen=True)
class TickOutput:
    """One tick's decision.

    command: (D_a,) rad to publish (the preview topic, and the controller when
    ``to_controller``); None: publish nothing. velocity: (D_a,) rad/s of the step (zeros on a
    hold). controller_hold: a hold to send to the controller *before* ``command`` (the one hold
    at disable). hold: why the loop is not streaming a plan ("" when it is). started: the stamp
    of the plan started this tick (obs-to-command latency). anchored: the loop (re)started from
    the measured state this tick (activate, enable after a pause): outputs that remember past
    commands (the binary gripper's band) start over from it. notices: (level, text) for the log,
    level "info" | "warning" | "error", only when something changed.
    """

    command: np.ndarray | None = None
    velocity: np.ndarray | None = None
    to_controller: bool = False
    controller_hold: np.ndarray | None = None
    anchored: bool = False
    hold: str = ""
    started: float | None = None
    stale: bool = False
    plan_dropped: bool = False
    policy_held: bool = False
    clamped: bool = False
    rate_limited: bool = False
    rejected: bool = False
    flow_time: float = 0.0
    policy_step_s: float = 0.0
    notices: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def reanchored(self) -> bool:
        """A plan started this tick."""
        return self.started is not None


class ControlLoop:
    """Sole owner of the anchored / stale / enabled / cadence state of one activation.

    Args:
        policy: any RuntimePolicy (SFP or a chunk baseline); ``prepare`` runs elsewhere.
        limits: the safety limits, in ``policy.spec.action_names`` order.
        config: LoopConfig.
        plans: PlanSource.
    """

    def __init__(self, policy: RuntimePolicy, limits: SafetyLimits, config: LoopConfig, plans: PlanSource) -> None:
        if limits.dim != policy.spec.action_dim:
            raise ValueError(f"limits have {limits.dim} joints, the policy {policy.spec.action_dim}")
        self.policy, self.limits, self.config, self.plans = policy, limits, config, plans
        self.safety = SafetyFilter(limits)
        self.period = reanchor_period(config, policy)
        self.names = tuple(policy.spec.action_names)
        self.anchored = False
        self.stale = True
        self.enabled: bool | None = None  # None: the first tick takes inputs.enabled as is
        self.reason = "waiting for a joint state"
        self.last_sent: np.ndarray | None = None  # the last command the controller got
        self._at_state = False  # the last anchor was the measured state (not a continued command)
        self._last_sent_at = self._now = -np.inf  # s: when it went out; the last tick's time
        self._since_start = self.period  # the first plan is due at once
        self._travel = limits.max_step * config.control_rate_hz  # rad/s per joint

    # ---- the tick ---------------------------------------------------------------------------
    def tick(self, now: float, inp: TickInputs) -> TickOutput:
        """One control tick at ``now`` (s). Never raises on input content; a failing policy
        call raises (the caller holds with :meth:`fail_safe`)."""
        notices: list[tuple[str, str]] = []
        hold_to_ctrl = None
        self._now = now
        if self.enabled is None:
            self.enabled = inp.enabled
        elif inp.enabled != self.enabled:
            self.enabled = inp.enabled
            if inp.enabled:
                self.anchored = False  # re-anchor where the controller's command meets the arm
            elif self.anchored:
                hold_to_ctrl = self._send(self.safety.last)
        fresh = False
        if not self.anchored:
            why = self._anchor(now, inp, notices)
            if why:
                return TickOutput(controller_hold=hold_to_ctrl, hold=why, stale=True, notices=tuple(notices))
            fresh = self._at_state
        if inp.stale_reason is not None:
            if not self.stale:
                notices.append(("warning", f"holding: {inp.stale_reason}"))
                self._reset_policy(self.safety.last)  # drop the plan, hold the last command
            self.stale, self.reason = True, inp.stale_reason
            self.plans.discard()
            held = self.safety.last if self.config.on_stale == "hold" else None
            return TickOutput(
                command=held, velocity=None if held is None else np.zeros(self.limits.dim),
                to_controller=self._to_controller(held), controller_hold=hold_to_ctrl, anchored=fresh,
                hold=inp.stale_reason, stale=True, notices=tuple(notices))
        if self.stale:
            notices.append(("info", "inputs fresh: streaming resumes with the next plan"))
            self.stale, self.reason = False, ""
        started, dropped = None, False
        self._since_start += 1
        plan = self.plans.take() if self._since_start >= self.period else None
        if plan is not None and now - plan.stamp > self.config.max_obs_age:
            plan, dropped = None, True
        if plan is not None:  # re-anchor at the last *commanded* (safety-filtered) action
            self.policy.start(plan.plan, inp.measured_state, anchor=self.safety.last, now=now)
            self._since_start = 0
            started = plan.stamp
        t0 = time.perf_counter()
        result = self.policy.step()
        step_s = time.perf_counter() - t0
        safe = self.safety(result.action)
        if safe.rejected:
            self._reset_policy(safe.action)  # non-finite proposal: hold, drop the plan
        return TickOutput(
            command=safe.action, velocity=safe.delta * self.config.control_rate_hz,
            to_controller=self._to_controller(safe.action), controller_hold=hold_to_ctrl, anchored=fresh,
            hold="plan used up" if result.hold else "", started=started,
            plan_dropped=dropped, policy_held=bool(result.hold), clamped=safe.clamped,
            rate_limited=safe.rate_limited, rejected=safe.rejected, flow_time=float(result.t),
            policy_step_s=step_s, notices=tuple(notices))

    def fail_safe(self, error: str) -> TickOutput:
        """After a tick raised: re-anchor at the last safe command and hold it."""
        if not self.anchored:
            return TickOutput(hold=error, stale=True)
        last = self.safety.last
        self._reset_policy(last)
        return TickOutput(command=last, to_controller=self._to_controller(last), hold=error)

    def stop_command(self) -> np.ndarray | None:
        """The hold to send the controller when control stops (deactivate), or None."""
        if self.anchored and self.enabled:
            return self._send(self.safety.last)
        return None

    def outside_reason(self, measured: np.ndarray) -> str:
        """Why the loop must not anchor at ``measured`` (D_a,) rad, or "". Outside the position
        limits the safety filter walks the command in at max speed; a state further out than
        ``walk_in_s`` of that travel (a bad sensor value, wrong limits) is refused."""
        lim = self.limits
        margin = self._travel * self.config.walk_in_s
        out = np.maximum(lim.lower - measured, 0.0) + np.maximum(measured - lim.upper, 0.0)
        bad = np.flatnonzero(out > margin)
        if bad.size == 0:
            return ""
        names = [self.names[i] for i in bad]
        return (f"not anchoring: measured {names} = {measured[bad].tolist()} rad lie more than "
                f"{margin[bad].tolist()} rad outside the limits [{lim.lower[bad].tolist()}, "
                f"{lim.upper[bad].tolist()}] (move the robot inside or fix position_lower/upper)")

    # ---- internals --------------------------------------------------------------------------
    def _anchor(self, now: float, inp: TickInputs, notices: list[tuple[str, str]]) -> str:
        """Anchor at a fresh measured state; returns why not ("" when anchored). The last command
        is continued instead only for a quick disable/enable (at most ``agree_s`` since it went
        out) with the arm still on its way there; after a longer pause the controller has had
        time to reach it, so an arm elsewhere was moved (by hand, another controller, a reset)
        and the loop starts where it is (gripper included)."""
        if inp.measured is None or inp.joints_age is None or abs(inp.joints_age) > self.config.max_obs_age:
            self.reason = inp.stale_reason or "no fresh joint state to anchor at"
            return self.reason
        outside = self.outside_reason(inp.measured)
        if outside:  # never stream from a state the limits cannot walk back from in time
            if self.reason != outside:
                notices.append(("error", outside))
            self.stale, self.reason = True, outside
            return outside
        at, self._at_state = inp.measured, True
        quick = self.last_sent is not None and now - self._last_sent_at <= self.config.agree_s + 1e-9
        if quick and (np.abs(inp.measured - self.last_sent) <= self._travel * self.config.agree_s).all():
            at, self._at_state = self.last_sent, False  # the arm is on its way there: continue from it, no jump
        self._reset_policy(at)
        self.safety.reset(at)
        self.anchored = True
        return ""

    def _reset_policy(self, action: np.ndarray) -> None:
        """Anchor the policy at ``action`` without a plan (it holds); the next fresh plan is due
        at once, whatever the cadence (no wait after an enable, a stale hold or a rejection)."""
        self.policy.reset(action)
        self._since_start = self.period

    def _to_controller(self, command: np.ndarray | None) -> bool:
        if command is None or not self.enabled:
            return False
        self.last_sent, self._last_sent_at = command.copy(), self._now
        return True

    def _send(self, command: np.ndarray | None) -> np.ndarray | None:
        if command is not None:
            self.last_sent, self._last_sent_at = command.copy(), self._now
        return command
