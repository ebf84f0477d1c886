"""The interface every runtime policy implements (SFP and the chunk baselines alike).

The node's control timer drives it; only these named methods change its state:

    plan = policy.prepare(obs)        # heavy: encode (SFP) or sample a whole chunk (baselines).
                                      # Pure w.r.t. the policy state; safe to call in a worker
                                      # thread while step() runs on the timer thread.
    policy.reset(action)              # a fresh start (new episode, resume after a hold): anchor
                                      # at an action (robot units), drop any plan: hold.
    policy.start(plan, measured, anchor=None, now=None)
                                      # receding horizon: flow time -> 0 (caught up with the
                                      # plan's age when given ``now``: RuntimeConfig.skip_elapsed),
                                      # re-anchor at ``anchor``
                                      # (default: the last action the policy produced; the node
                                      # passes the safety-filtered command it actually sent),
                                      # blended towards ``measured``. Cheap.
    result = policy.step()            # one control tick: the next action (robot units).

Without a plan, or once the plan is used up (flow time reached ``max_flow_time``), ``step()``
returns the last action with ``hold=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from ..spec import IOSpec


@dataclass(frozen=True)
class Observation:
    """A frozen observation history, oldest first, robot units.

    state: (T_o, D_s) float; images: camera name -> (T_o, Hh, Ww, C) uint8 at the model's size;
    stamp: seconds (node clock) of the newest sample.
    """

    state: np.ndarray
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    stamp: float = 0.0


@dataclass(frozen=True)
class StepResult:
    """One tick's output. ``action`` (D_a,) float64 robot units, a fresh array the caller owns.

    t: flow time after the step (0 when holding without a plan).
    hold: True when no plan is active or it is used up (action == previous action).
    """

    action: np.ndarray
    t: float
    hold: bool


@dataclass
class RuntimeConfig:
    """Deployment-time settings of a runtime policy (not saved in the checkpoint).

    control_rate_hz: timer rate; one step() advances flow time by
        data_rate / (control_rate * H) (m sub-steps per data period, docs/METHOD.md "Conventions").
    integrator: one velocity pass per tick (euler) or two (midpoint, heun).
    anchor: "action" re-anchors at the last commanded action; "state" at the measured state.
    state_blend: with anchor="action", the fraction of (measured - commanded) blended into the
        anchor at each re-anchor (0 = pure action imitation, 1 = snap to the measured state).
    max_flow_time: flow time at which the plan is used up and the policy holds (<= 1).
    start_sigma: std (normalised units) of noise added to the anchor (0 = deterministic SFP,
        the default): SFP's start distribution N(a0, sigma0^2), which picks a mode when the
        demonstrations are multimodal.
    start_noise: when start_sigma applies: "first" (only the first start after reset(): one
        mode-choosing kick from rest, then deterministic re-anchors that keep the mode) or
        "every" (every re-anchor; jittery at high re-anchor rates). For a latent-path checkpoint
        the same choice applies to its z0: "first" draws one z0 per reset and keeps it across
        re-anchors (one mode per episode), "every" draws a new one per plan; so for the mode
        latent z of a checkpoint with ``mode_dim`` (drawn even when start_sigma is 0).
    seed: seed of the runtime's random generator (latent z0, mode latent, start noise).
    threads: torch intra-op and BLAS threads for the runtime (1 keeps tick jitter low; process-wide).
    backend: the per-tick velocity pass: "numpy" (default, fastest at batch 1) or "torch".
    torchscript: with backend="torch", trace the velocity net with TorchScript.
    skip_elapsed: latency compensation when ``start`` gets ``now`` (the caller's clock, the
        same clock as the observation stamp): the plan catches up with its age instead of
        starting as if its observation were current. SFP starts its flow at the anchor at flow
        time 0 as always, and advances it faster over the first data period until it reaches
        the plan's own clock (continuous commands; StreamingFlowPolicy.start); a chunk baseline
        skips the waypoints whose time has passed and interpolates from the anchor to the next
        one (Diffusion Policy's real-robot latency handling). Both keep at least
        action_horizon data periods of the plan.
    integration: where the flow is integrated (policy/integration.py). "tick": one flow step per
        control tick, on the control thread (every tick pays one velocity pass). "worker": flow
        steps of ``ticks_per_step`` ticks each, integrated ahead on a worker thread, and every
        tick streams the point of that trajectory at its own time (linear interpolation between
        the integrated waypoints; re-anchoring takes effect 2 x ticks_per_step ticks after
        start()). "auto": measures one step at load and keeps "tick" while it takes at most
        half a tick, else "worker" with ticks_per_step from the measured time.
    ticks_per_step: with integration "worker", control ticks per flow step (0: chosen from the
        measured step time); must be 0 otherwise.
    integrate_on: with worker integration, "thread" (real time: the node) or "caller" (the
        waypoints are computed inside step() when a tick needs them: evaluations on a simulated
        clock get the commands the thread gives when it keeps up, deterministically).
    device: "cpu" or "cuda" (SFP checkpoints): where the encoder and the velocity net run. On
        cuda the per-tick pass runs in torch on the GPU whatever ``backend`` says (numpy is
        CPU-only); load_policy raises ValueError when CUDA is not available.
    """

    control_rate_hz: float = 100.0
    integrator: Literal["euler", "midpoint", "heun"] = "euler"
    anchor: Literal["action", "state"] = "action"
    state_blend: float = 0.0
    max_flow_time: float = 1.0
    start_sigma: float = 0.0
    start_noise: Literal["first", "every"] = "first"
    seed: int = 0
    threads: int = 1
    backend: Literal["numpy", "torch"] = "numpy"
    torchscript: bool = False
    skip_elapsed: bool = True
    integration: Literal["tick", "worker", "auto"] = "tick"
    ticks_per_step: int = 0
    integrate_on: Literal["thread", "caller"] = "thread"
    device: Literal["cpu", "cuda"] = "cpu"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.control_rate_hz) and 0.1 <= self.control_rate_hz <= 5000.0):
            raise ValueError(f"control_rate_hz must be in [0.1, 5000], got {self.control_rate_hz}")
        if self.integrator not in ("euler", "midpoint", "heun"):
            raise ValueError(f"integrator must be euler|midpoint|heun, got {self.integrator!r}")
        if self.anchor not in ("action", "state"):
            raise ValueError(f"anchor must be action|state, got {self.anchor!r}")
        if not (0.0 <= self.state_blend <= 1.0):
            raise ValueError(f"state_blend must be in [0, 1], got {self.state_blend}")
        if not (0.0 < self.max_flow_time <= 1.0):
            raise ValueError(f"max_flow_time must be in (0, 1], got {self.max_flow_time}")
        if not (0.0 <= self.start_sigma < 10.0):
            raise ValueError(f"start_sigma must be in [0, 10), got {self.start_sigma}")
        if self.start_noise not in ("first", "every"):
            raise ValueError(f"start_noise must be first|every, got {self.start_noise!r}")
        if self.backend not in ("numpy", "torch"):
            raise ValueError(f"backend must be numpy|torch, got {self.backend!r}")
        if not (1 <= int(self.threads) <= 64):
            raise ValueError(f"threads must be in [1, 64], got {self.threads}")
        if self.integration not in ("tick", "worker", "auto"):
            raise ValueError(f"integration must be tick|worker|auto, got {self.integration!r}")
        if not (0 <= int(self.ticks_per_step) <= 1000):
            raise ValueError(f"ticks_per_step must be in [0, 1000], got {self.ticks_per_step}")
        if self.ticks_per_step and self.integration != "worker":
            raise ValueError(f"ticks_per_step {self.ticks_per_step} needs integration: worker "
                             f"(got {self.integration!r}; 0 chooses it from the measured step time)")
        if self.integrate_on not in ("thread", "caller"):
            raise ValueError(f"integrate_on must be thread|caller, got {self.integrate_on!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu|cuda, got {self.device!r}")


def resolve_anchor(config: RuntimeConfig, last: np.ndarray | None, measured: np.ndarray | None,
                   same_names: bool) -> np.ndarray:
    """Where a plan starts (robot units, (D_a,)), shared by every runtime: the last commanded
    action ``last`` (blended towards ``measured`` by ``config.state_blend``), or the measured
    state when ``config.anchor == "state"`` or nothing was commanded yet. ``same_names``: the
    state and action joints are the same (else the measured state cannot be an action).

    Raises ValueError when there is no anchor."""
    if config.anchor == "state" or last is None:
        if measured is None or not same_names:
            raise ValueError("no anchor: call reset(action) first or pass a measured state")
        return measured
    if measured is not None and same_names and config.state_blend > 0:
        return last + config.state_blend * (measured - last)
    return last


class RuntimePolicy(Protocol):
    spec: IOSpec
    obs_horizon: int
    action_horizon: int  # data periods a plan runs before the next one is due (reanchor: horizon)
    config: RuntimeConfig

    def prepare(self, obs: Observation) -> Any: ...

    def reset(self, action: np.ndarray) -> None: ...

    def start(self, plan: Any, measured_state: np.ndarray | None = None, anchor: np.ndarray | None = None,
              now: float | None = None) -> None: ...
    # now: the caller's clock (same clock as Observation.stamp), s. A chunk runtime uses it to skip
    # the waypoints whose time passed while the chunk was sampled; SFP ignores it.

    def step(self) -> StepResult: ...

    @property
    def last_action(self) -> np.ndarray | None: ...

    @property
    def t(self) -> float: ...
