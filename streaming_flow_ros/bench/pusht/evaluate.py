"""Closed-loop Push-T evaluation of a runtime policy (any RuntimePolicy: SFP or a chunk
baseline), driven through the node's ControlLoop (policy/control.py) on the simulated clock, as
apps/offline_eval.py drives the arm simulator: one tick per control step, a new observation every
data period (history of T_o samples at the data rate), a plan started every ``reanchor_every``
observations.

Settings (the same for every method):
- episodes on seeds ``seed0 .. seed0 + episodes - 1``, ``max_steps`` data periods each (300 =
  30 s), stopped early at success (coverage > 0.95: the score is 1 from then on);
- ``delay``: the policy's observation at control step i is the one from step i - delay
  (stress test; control steps);
- ``latency_comp``: the runtime's ``skip_elapsed`` (the node's default): each method compensates
  the observation's age its own way (SFP catches its new flow up with that age, chunk baselines
  skip the elapsed waypoints); without it every plan starts as if its observation were current;
- ``control_mult``: control rate = control_mult x data rate; the env is stepped at the control
  rate (PD target updated every tick, the same gains), SFP takes 1/m-size flow steps and chunk
  policies interpolate their waypoints (runtime semantics, policy/protocol.py).

The task follows the checkpoint: a policy whose spec has the T3 camera (env.CAMERA) gets the agent
position and the rendered 96x96 frames of its observation history (T3); any other gets the 5-d
state (T2).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from ...baselines.registry import POLICY_TYPES
from ...baselines.runtime import ChunkRuntimeConfig
from ...flow.stepper import PASSES_PER_STEP
from ...policy.control import ControlLoop, LatestObservation, LoopConfig, TickInputs
from ...policy.protocol import Observation, RuntimeConfig
from ...policy.safety import SafetyLimits
from ...policy.streaming import load_policy
from .env import CAMERA, DATA_RATE_HZ, MAX_STEPS, WORKSPACE, PushTState, task_of
from .metrics import summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    episodes: int = 50
    seed0: int = 0
    max_steps: int = MAX_STEPS
    delay: int = 0
    control_mult: int = 1
    reanchor_every: int = 1
    start_sigma: float = 0.0  # SFP only: start noise (normalised units) at every re-anchor
    integrator: str = "euler"  # SFP only: velocity passes per tick (RuntimeConfig.integrator)
    latency_comp: bool = False  # start() gets now: the methods compensate the observation's age

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.max_steps < 1:
            raise ValueError(f"episodes and max_steps must be >= 1, got {self.episodes}, {self.max_steps}")
        if not (0.0 <= self.start_sigma <= 5.0):
            raise ValueError(f"start_sigma must be in [0, 5], got {self.start_sigma}")
        if self.integrator not in PASSES_PER_STEP:
            raise ValueError(f"integrator must be one of {sorted(PASSES_PER_STEP)}, got {self.integrator!r}")
        if self.delay < 0 or self.control_mult < 1 or self.reanchor_every < 1:
            raise ValueError(f"bad delay/control_mult/reanchor_every: {self.delay}/{self.control_mult}/{self.reanchor_every}")


def default_reanchor(method: str, action_horizon: int = 8) -> int:
    """Every method re-plans after ``action_horizon`` observations: chunk methods when their
    chunk is used up, SFP after integrating its flow over the action horizon (the paper's
    setting, and the arm simulator preset's ``reanchor: ticks``). SFP re-anchored at every
    observation (``reanchor_every`` 1) is a variant: on Push-T it takes one flow step per
    anchor, always at t = 0 where the learned velocity is a blend of the modes, and stalls."""
    if method not in POLICY_TYPES:
        raise ValueError(f"unknown method {method!r} (known: {sorted(POLICY_TYPES)})")
    if POLICY_TYPES[method][1] == "ensemble":
        return 1  # ACT temporal ensembling: a chunk every data period (EnsembleRuntime.action_horizon)
    return action_horizon


def runtime_config(method: str, control_rate_hz: float, seed: int = 0, start_sigma: float = 0.0,
                   integrator: str = "euler", latency_comp: bool = False) -> RuntimeConfig:
    """The runtime config of ``method`` (POLICY_TYPES): SFP starting at the last commanded
    action (deterministic, or with N(0, start_sigma^2) start noise at every re-anchor: the
    paper's stochastic start), Euler unless ``integrator`` says otherwise; DP with DDPM-100 / DDIM-10, FM-chunk with 10 Euler steps."""
    if method not in POLICY_TYPES:
        raise ValueError(f"unknown method {method!r} (known: {sorted(POLICY_TYPES)})")
    base = RuntimeConfig(control_rate_hz=control_rate_hz, seed=seed, threads=1, start_sigma=start_sigma,
                         start_noise="every", integrator=integrator, skip_elapsed=latency_comp)
    sampler = POLICY_TYPES[method][1]
    return base if sampler is None else ChunkRuntimeConfig.extend(base, sampler=sampler)


def loop_config(s: EvalSettings) -> LoopConfig:
    """The node's control loop for these settings: a plan every ``reanchor_every``
    observations (``observation`` when 1), inputs never stale (delays are injected here)."""
    rate = DATA_RATE_HZ * s.control_mult
    if s.reanchor_every == 1:
        return LoopConfig(control_rate_hz=rate, reanchor="observation", max_obs_age=1e6)
    return LoopConfig(control_rate_hz=rate, reanchor="ticks", reanchor_ticks=s.reanchor_every * s.control_mult,
                      max_obs_age=1e6)


def rollout(policy, env: PushTState, seed: int, s: EvalSettings) -> list[float]:
    """One episode through the node's ControlLoop on the simulated clock; returns the coverage
    after every control step. Actions are not limited (the env clips them to the workspace)."""
    m, T_o = s.control_mult, policy.obs_horizon
    control_rate = DATA_RATE_HZ * m
    pixels = task_of(policy.spec) == "pixels"
    history = [env.reset(seed)]  # history[i]: the observation at the start of control step i
    frames = [env.render()] if pixels else []  # frames[i]: the T3 camera at that moment
    d = policy.spec.action_dim
    plans = LatestObservation(policy.prepare)
    loop = ControlLoop(policy, SafetyLimits(np.full(d, -np.inf), np.full(d, np.inf), np.full(d, np.inf)),
                       loop_config(s), plans)
    coverage = []
    for i in range(s.max_steps * m):
        if i % m == 0:
            j = max(0, i - s.delay)
            idx = [max(0, j - m * (T_o - 1 - q)) for q in range(T_o)]  # data-rate spacing
            state = np.stack([history[k] for k in idx])
            if pixels:
                plans.offer(Observation(state[:, :2], {CAMERA: np.stack([frames[k] for k in idx])}, j / control_rate))
            else:
                plans.offer(Observation(state, {}, j / control_rate))
        tick = loop.tick(i / control_rate, TickInputs.simulated(history[i][:2]))
        out = env.step(tick.command)
        coverage.append(out.coverage)
        history.append(out.obs)
        if pixels:
            frames.append(env.render())
        if out.success:
            break
    return coverage


def evaluate_checkpoint(checkpoint: str, method: str, s: EvalSettings, seed: int = 0) -> dict:
    """Score / success of ``method`` (a POLICY_TYPES name) loaded from ``checkpoint``."""
    env = PushTState(DATA_RATE_HZ * s.control_mult)
    policy = load_policy(checkpoint, runtime_config(method, DATA_RATE_HZ * s.control_mult, seed, s.start_sigma,
                                                     s.integrator, s.latency_comp))
    t0 = time.perf_counter()
    covs = [rollout(policy, env, s.seed0 + e, s) for e in range(s.episodes)]
    res = summarize(covs)
    res.update(method=method, checkpoint=str(checkpoint), seconds=time.perf_counter() - t0, settings=asdict(s))
    log.info("%s: score %.3f success %.2f (%d episodes, %.0f s)", method, res["score"], res["success"],
             s.episodes, res["seconds"])
    return res


def evaluate_random(s: EvalSettings, seed: int = 0) -> dict:
    """The floor: a new uniformly random PD target in the workspace every data period."""
    env = PushTState(DATA_RATE_HZ * s.control_mult)
    rng = np.random.default_rng(seed)
    covs = []
    for e in range(s.episodes):
        env.reset(s.seed0 + e)
        cov = []
        for i in range(s.max_steps * s.control_mult):
            if i % s.control_mult == 0:
                a = rng.uniform(*WORKSPACE, size=2)
            out = env.step(a)
            cov.append(out.coverage)
            if out.success:
                break
        covs.append(cov)
    return {**summarize(covs), "method": "random", "settings": asdict(s)}


def evaluate_expert(s: EvalSettings) -> dict:
    """The scripted expert under the same protocol (seeds, steps): the ceiling of the demos."""
    from .collect import run_expert

    env = PushTState(DATA_RATE_HZ)
    covs = [list(run_expert(env, s.seed0 + e, s.max_steps).coverage) for e in range(s.episodes)]
    return {**summarize(covs), "method": "expert", "settings": asdict(s)}
