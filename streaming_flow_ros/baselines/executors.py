"""Real-time executors of an FM-chunk checkpoint (inference-time only, no retraining), behind the
same RuntimePolicy protocol as every runtime (policy/protocol.py): ``prepare`` is pure and may
run on the node's plan thread, ``start`` and ``step`` are cheap.

Chosen by ``ChunkRuntimeConfig.sampler`` (``FMChunkRuntime`` builds them; POLICY_TYPES names
fm_rtc / fm_ensemble / fm_async):

- "rtc": Real-Time Chunking (Black, Galliker, Levine 2025, arXiv 2506.07339; rtc.py has the
  math). The next chunk is sampled while the current one runs, by guided flow matching that
  inpaints it onto the current chunk: the d waypoints executed during the inference delay are
  frozen (mask 1, and copied exactly), the rest of the overlap is blended by the paper's
  exponentially decaying soft mask, the remainder is free; guidance weight clipped at
  ``rtc_beta`` (the paper's 5). d is the paper's conservative estimate, the largest delay of
  the last 10 starts (its Algorithm 1 keeps a buffer of delays and takes the max): each
  ``start(plan, now=...)`` measures ceil((now - stamp) x data rate). The overlap is set by the
  two chunks' stamps (the paper's H - s: s = the data periods between their observations, the
  execution horizon when plans start every action horizon). ``start`` always skips the frozen
  waypoints (they are in the past) and runs action_horizon waypoints as the plain runtime.
- "ensemble": ACT temporal ensembling (Zhao et al. 2023). action_horizon is 1, so the loop's
  ``reanchor: horizon`` starts a chunk every data period; every chunk stays until its last
  waypoint, and the command at time tau is sum_i w_i a_i(tau) over the chunks covering tau,
  oldest first, w_i = exp(-m i) / sum_j exp(-m j) (ACT's m = 0.01: the oldest weighs most).
- "async": LeRobot async inference (RobotClient._aggregate_action_queues with its default
  ``aggregate_fn_name="weighted_average"``): the queue of future waypoints is rebuilt from
  each new chunk; where the old queue has a waypoint at the same time it becomes
  0.3 old + 0.7 new (``async_weight`` 0.7), elsewhere the new one; waypoints already due are
  dropped, old ones the new chunk does not cover too. A chunk starts every action_horizon data
  periods (LeRobot's ``chunk_size_threshold`` g = 1 - action_horizon / H: 0.5, its default, for
  the Push-T checkpoints) and the queue runs to its end if no new chunk comes.

Clock: ensemble and async place waypoint j of a chunk at ``stamp + j / data_rate`` on the
caller's clock (with ``skip_elapsed``; without it, at ``now + j / data_rate``), start at
``now`` from the anchor (last command) and interpolate to the next waypoint as the plain
runtime; ``step`` advances the clock by one control period and returns the action there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..policy.protocol import Observation, RuntimeConfig, StepResult, resolve_anchor
from .rtc import guided_euler, soft_mask
from .runtime import ChunkPlan, FMChunkRuntime

DELAY_BUFFER = 10  # RTC: starts whose measured delay enters the estimate (max over them)
_EPS = 1e-9


# ---- RTC ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RTCPlan(ChunkPlan):
    """A chunk inpainted onto the chunk that ran when it was prepared.

    delay: frozen waypoints (the estimated d); overlap: waypoints with a previous action (the
    paper's H - s; 0 = unguided); prev_stamp: the stamp of the chunk it continues (None)."""

    delay: int = 0
    overlap: int = 0
    prev_stamp: float | None = None


def previous_at(prev: np.ndarray, shift: float) -> tuple[np.ndarray, int]:
    """The previous chunk's actions at the new chunk's waypoints: new waypoint i (0-based) lies
    ``shift`` data periods after the previous waypoint i, so it is previous index i + shift.

    prev: (H, D_a). Returns (Y (H, D_a), overlap e): rows i < e hold the previous chunk's value
    (exact copies when ``shift`` is an integer, else linear interpolation), rows >= e zeros."""
    H = prev.shape[0]
    if abs(shift - round(shift)) < 1e-6:
        shift = float(round(shift))
    pos = np.arange(H) + shift
    e = int(np.count_nonzero((pos >= -_EPS) & (pos <= H - 1 + 1e-6)))
    if shift < -_EPS:  # a chunk older than the running one: nothing to continue
        return np.zeros_like(prev), 0
    Y = np.zeros_like(prev)
    if e:
        if float(shift).is_integer():
            Y[:e] = prev[int(shift) : int(shift) + e]
        else:
            grid = np.arange(H, dtype=np.float64)
            Y[:e] = np.stack([np.interp(pos[:e], grid, prev[:, k]) for k in range(prev.shape[1])], axis=1)
    return Y, e


class RTCRuntime(FMChunkRuntime):
    """FM-chunk under Real-Time Chunking (module docstring). The running chunk and the measured
    delays, which ``prepare`` reads, are immutable objects replaced whole by ``start``/``reset``
    (one reference read each: safe while ``prepare`` runs on another thread)."""

    default_sampler = "rtc"
    samplers = ("rtc",)

    def __init__(self, model, ckpt, config: RuntimeConfig | None = None) -> None:
        super().__init__(model, ckpt, config)
        self.beta = float(getattr(self.config, "rtc_beta", 5.0))
        self._running: ChunkPlan | None = None  # the chunk a new one continues
        self._delays: tuple[int, ...] = ()  # measured delays of the last starts, data periods

    @property
    def delay_estimate(self) -> int:
        """d for the next chunk: the largest delay of the last DELAY_BUFFER starts (0 before)."""
        return max(self._delays, default=0)

    def prepare(self, obs: Observation) -> RTCPlan:
        """Sample a chunk inpainted onto the running one (guided Euler; the plain Euler chunk
        when nothing runs, ``rtc_beta`` is 0 or the chunks do not overlap)."""
        cond, gen = self._condition(obs)
        running, d = self._running, self.delay_estimate
        stamp = float(obs.stamp)
        Y, e = (
            (None, 0)
            if running is None or self.beta == 0
            else previous_at(running.actions, (stamp - running.stamp) * self.spec.data_rate_hz)
        )
        if e == 0:
            with torch.inference_mode():
                chunk_n = self.model.sample(cond, self.inference_steps, gen)  # = FMChunkRuntime's
            return RTCPlan(self._to_actions(chunk_n), stamp)
        d = min(d, e)
        x = torch.randn((1, self.pred_horizon, self._D), generator=gen, dtype=cond.dtype)
        target = torch.as_tensor(self.action_norm.normalize(Y), dtype=cond.dtype)[None]
        weights = torch.as_tensor(soft_mask(self.pred_horizon, d, e))
        cond = cond.clone()  # a normal tensor (the encoder returns an inference tensor): autograd
        chunk_n = guided_euler(
            lambda x_, s_: self.model.net(x_, s_, cond), x, target, weights, self.inference_steps, self.beta
        )
        actions = self._to_actions(chunk_n)
        actions[:d] = Y[:d]  # frozen: exactly what the running chunk commands meanwhile
        return RTCPlan(actions, stamp, delay=d, overlap=e, prev_stamp=running.stamp)

    def reset(self, action: np.ndarray) -> None:
        super().reset(action)
        self._running = None  # a fresh start continues nothing (the delays stay: same system)

    def start(
        self,
        plan: ChunkPlan,
        measured_state: np.ndarray | None = None,
        anchor: np.ndarray | None = None,
        now: float | None = None,
    ) -> None:
        """As the plain runtime, but always skipping the waypoints whose time passed (the frozen
        prefix is in the past by construction); measures this plan's delay for the estimate."""
        super().start(plan, measured_state, anchor, now)
        if now is not None:
            if not self.config.skip_elapsed:  # skip anyway: replaying the frozen prefix moves back
                k = self._elapsed_waypoints(plan, now)
                self._waypoints = np.vstack([self._waypoints[:1], plan.actions[k : k + self.action_horizon]])
                self.skipped = k
            age = (float(now) - plan.stamp) * self.spec.data_rate_hz
            d = int(np.clip(math.ceil(age - 1e-6), 0, self.pred_horizon))
            self._delays = (*self._delays, d)[-DELAY_BUFFER:]
        self._running = plan


# ---- executors on the caller's clock ----------------------------------------------------------
@dataclass(frozen=True)
class TimedPath:
    """A piecewise-linear action path on the caller's clock: times (N,) s increasing, actions
    (N, D_a) robot units. Defined on [times[0], times[-1]]."""

    times: np.ndarray
    actions: np.ndarray

    def covers(self, tau: float) -> bool:
        return self.times[0] - _EPS <= tau <= self.times[-1] + _EPS

    def at(self, tau) -> np.ndarray:
        """Actions at time(s) ``tau`` (scalar -> (D_a,), (n,) -> (n, D_a)), linear in between,
        clamped to the end points outside."""
        tau = np.asarray(tau, np.float64)
        if self.times.size == 1:
            return np.broadcast_to(self.actions[0], (*tau.shape, self.actions.shape[1])).copy()
        j = np.clip(np.searchsorted(self.times, tau, side="right") - 1, 0, self.times.size - 2)
        t0, t1 = self.times[j], self.times[j + 1]
        alpha = np.clip((tau - t0) / (t1 - t0), 0.0, 1.0)[..., None]
        return self.actions[j] + alpha * (self.actions[j + 1] - self.actions[j])


class _ClockedRuntime(FMChunkRuntime):
    """Executes chunks placed on the caller's clock (module docstring, "Clock"); subclasses
    decide how a started chunk merges with the running ones (``_merge``) and what is commanded
    at a time (``_action_at``). prepare is FMChunkRuntime's (a plain Euler chunk)."""

    def __init__(self, model, ckpt, config: RuntimeConfig | None = None) -> None:
        super().__init__(model, ckpt, config)
        self._tick = 1.0 / self.config.control_rate_hz  # s per step
        self._period = 1.0 / self.spec.data_rate_hz  # s per waypoint
        self._n_way = max(1, min(self.pred_horizon, math.floor(self.config.max_flow_time * self.pred_horizon + 1e-9)))
        self._clock = 0.0
        self._origin = 0.0

    @property
    def has_plan(self) -> bool:
        return self._plan is not None and self._action_at(self._clock + self._tick) is not None

    def reset(self, action: np.ndarray) -> None:
        super().reset(action)
        self._clear()

    def start(
        self,
        plan: ChunkPlan,
        measured_state: np.ndarray | None = None,
        anchor: np.ndarray | None = None,
        now: float | None = None,
    ) -> None:
        """Merge ``plan`` into what runs; the path continues from the anchor at ``now``."""
        if not isinstance(plan, ChunkPlan):
            raise ValueError(f"start() needs a ChunkPlan from prepare(), got {type(plan).__name__}")
        if plan.actions.shape != (self.pred_horizon, self._D):
            raise ValueError(f"plan actions {plan.actions.shape} != ({self.pred_horizon}, {self._D})")
        measured = (
            None if measured_state is None else self._checked(measured_state, "measured state", self.spec.state_dim)
        )
        if anchor is not None:
            self._last = self._checked(anchor, "anchor")
        anchor = resolve_anchor(self.config, self._last, measured, self._same_names)
        clock = plan.stamp if now is None else float(now)
        origin = plan.stamp if (now is None or self.config.skip_elapsed) else clock
        origin = min(origin, clock)  # a plan stamped after now starts now
        times = origin + self._period * np.arange(1, self._n_way + 1)
        due = times > clock + _EPS
        self.skipped = int(np.count_nonzero(~due))
        self._merge(clock, anchor, times[due], plan.actions[: self._n_way][due])
        self._plan, self._clock, self._origin, self._t = plan, clock, origin, 0.0
        if self._last is None:
            self._last = anchor.copy()

    def step(self) -> StepResult:
        """One control tick: the action at the next tick's time (or hold the last one)."""
        if self._last is None:
            raise RuntimeError("step() before reset()/start(): no anchor")
        tau = self._clock + self._tick
        self._clock = tau  # the clock runs on while holding: the next start resets it anyway
        action = self._action_at(tau) if self._plan is not None else None
        if action is None:
            return StepResult(self._last.copy(), self._t, True)
        self._t = float(np.clip((tau - self._origin) / (self._period * self.pred_horizon), 0.0, 1.0))
        self._last = action
        return StepResult(action.copy(), self._t, False)

    def _clear(self) -> None:
        raise NotImplementedError

    def _merge(self, clock: float, anchor: np.ndarray, times: np.ndarray, actions: np.ndarray) -> None:
        raise NotImplementedError

    def _action_at(self, tau: float) -> np.ndarray | None:
        raise NotImplementedError


def ensemble_weights(n: int, m: float) -> np.ndarray:
    """ACT's temporal-ensembling weights for ``n`` predictions, oldest first: exp(-m i), i = 0..n-1,
    normalised to sum to one."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    w = np.exp(-float(m) * np.arange(n))
    return w / w.sum()


class EnsembleRuntime(_ClockedRuntime):
    """FM-chunk with ACT temporal ensembling (module docstring): a chunk every data period."""

    default_sampler = "ensemble"
    samplers = ("ensemble",)

    def __init__(self, model, ckpt, config: RuntimeConfig | None = None) -> None:
        super().__init__(model, ckpt, config)
        self.m = float(getattr(self.config, "ensemble_m", 0.01))
        self.action_horizon = 1  # a new chunk every data period (ACT queries every step)
        self._paths: tuple[TimedPath, ...] = ()

    @property
    def chunks(self) -> int:
        """Chunks still running."""
        return len(self._paths)

    def _clear(self) -> None:
        self._paths = ()

    def _merge(self, clock, anchor, times, actions) -> None:
        alive = tuple(p for p in self._paths if p.times[-1] > clock + _EPS)
        if times.size:
            alive += (TimedPath(np.concatenate([[clock], times]), np.vstack([anchor[None], actions])),)
        self._paths = alive
        # the running paths stacked (P, N) / (P, N, D_a), padded with +inf times: one tick's
        # read-out is a few array operations whatever the number of chunks
        N = max((p.times.size for p in alive), default=0)
        self._T = np.full((len(alive), N), np.inf)
        self._A = np.zeros((len(alive), N, self._D))
        for k, p in enumerate(alive):
            self._T[k, : p.times.size], self._A[k, : p.times.size] = p.times, p.actions
        self._n = np.array([p.times.size for p in alive], dtype=np.int64)

    def _action_at(self, tau: float) -> np.ndarray | None:
        if not self._paths:
            return None
        rows = np.arange(len(self._paths))
        live = (self._T[:, 0] - _EPS <= tau) & (tau <= self._T[rows, self._n - 1] + _EPS)  # oldest first
        if not live.any():
            return None
        T, A, n = self._T[live], self._A[live], self._n[live]
        r = np.arange(T.shape[0])
        j = np.clip((T <= tau).sum(axis=1) - 1, 0, n - 2)  # segment [j, j + 1] holding tau
        alpha = np.clip((tau - T[r, j]) / (T[r, j + 1] - T[r, j]), 0.0, 1.0)[:, None]
        preds = A[r, j] + alpha * (A[r, j + 1] - A[r, j])  # (P_live, D_a)
        return ensemble_weights(T.shape[0], self.m) @ preds


class AsyncRuntime(_ClockedRuntime):
    """FM-chunk with LeRobot's async-inference queue aggregation (module docstring)."""

    default_sampler = "async"
    samplers = ("async",)

    def __init__(self, model, ckpt, config: RuntimeConfig | None = None) -> None:
        super().__init__(model, ckpt, config)
        self.weight = float(getattr(self.config, "async_weight", 0.7))
        self._queue: TimedPath | None = None  # future waypoints (aggregated), no anchor
        self._path: TimedPath | None = None  # what runs: the anchor at the last start, then the queue

    @property
    def queue(self) -> TimedPath | None:
        """The aggregated waypoints of the last start (times on the caller's clock)."""
        return self._queue

    def _clear(self) -> None:
        self._queue = self._path = None

    def _merge(self, clock, anchor, times, actions) -> None:
        if not times.size:
            return  # the whole chunk is in the past: keep what runs
        new = actions.copy()
        old = self._queue
        if old is not None:
            both = (times >= old.times[0] - 1e-6) & (times <= old.times[-1] + 1e-6)
            if both.any():
                new[both] = (1.0 - self.weight) * old.at(times[both]) + self.weight * new[both]
        self._queue = TimedPath(times, new)
        self._path = TimedPath(np.concatenate([[clock], times]), np.vstack([anchor[None], new]))

    def _action_at(self, tau: float) -> np.ndarray | None:
        if self._path is None or not self._path.covers(tau):
            return None
        return self._path.at(tau)


EXECUTORS: dict[str, type[FMChunkRuntime]] = {"rtc": RTCRuntime, "ensemble": EnsembleRuntime, "async": AsyncRuntime}
