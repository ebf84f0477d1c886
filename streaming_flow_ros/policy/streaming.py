"""The SFP streaming runtime: what the node calls every control tick (see protocol.py).

Per observation (``prepare``, off the timer thread): normalise, encode once, precompute the
velocity net's FiLM conditioning. The per-tick pass runs in numpy by default (fast_velocity.py,
the same function as the torch module, ~2-3x less overhead at batch 1); backend="torch" keeps it
in torch (optionally TorchScript-traced). Per tick (``step``): one integration step of

    da/dt = v_theta(a, t | h),   a <- a + dt v,   t <- t + dt,   dt = data_rate / (control_rate H)

starting from the anchor (the last commanded action). Each step's ``a`` is the next action.
Bounded channels (``spec.action_lower/upper``) are clamped after every step, in the flow state
too. A non-finite result drops the plan and holds; nothing non-finite ever leaves ``step``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, build_model, read_checkpoint
from ..flow.stepper import step as flow_step
from ..nets.model import SFPModel
from .fast_velocity import NumpyVelocity, limit_blas_threads
from .obs_encoding import CachedObsEncoder
from .protocol import Observation, RuntimeConfig, StepResult, resolve_anchor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFPPlan:
    """Cached per-observation conditioning: the FiLM contribution (1, depth * 2 * hidden) as a
    torch tensor (on the policy's device) and as a float32 vector for the numpy backend (None on
    a GPU); for a mode-latent model also the prior of z given this observation."""

    cache: torch.Tensor
    cache_np: np.ndarray | None
    stamp: float
    mode_prior: tuple[np.ndarray, np.ndarray] | None = None  # mode-latent models: (mean, std) of p(z | h)
    mode_probs: np.ndarray | None = None  # categorical mode latent: p(c | h)
    mode_cond: torch.Tensor | None = None  # flow prior: the observation features z's flow is conditioned on
    mode_z: tuple[np.ndarray, np.ndarray] | None = None  # flow prior: (draw, its z), integrated in prepare()


def check_observation(obs: Observation, spec, obs_horizon: int) -> None:
    """Raise ValueError unless ``obs`` has the shapes, dtypes and finite values the model needs."""
    state = np.asarray(obs.state)
    if state.shape != (obs_horizon, spec.state_dim):
        raise ValueError(f"observation state shape {state.shape} != ({obs_horizon}, {spec.state_dim})")
    if not np.isfinite(state).all():
        raise ValueError("observation state has non-finite values")
    for cam in spec.cameras:
        img = obs.images.get(cam.name)
        want = (obs_horizon, cam.height, cam.width, cam.channels)
        if img is None:
            raise ValueError(f"observation lacks camera {cam.name!r}")
        if img.shape != want or img.dtype != np.uint8:
            raise ValueError(f"camera {cam.name!r}: {img.shape} {img.dtype}, expected {want} uint8")


class StreamingFlowPolicy:
    """Runtime SFP policy. Only prepare/reset/start/step change or read its rollout state."""

    def __init__(self, model: SFPModel, ckpt: Checkpoint, config: RuntimeConfig | None = None) -> None:
        self.config = config or RuntimeConfig()
        self.device = torch.device(check_device(self.config.device))
        self.model = model.eval().to(self.device)
        self.spec = ckpt.spec
        self.state_norm = ckpt.state_norm
        self.action_norm = ckpt.action_norm
        self.obs_horizon = model.config.obs_horizon
        self.pred_horizon = model.config.pred_horizon
        self.action_horizon = model.config.action_horizon
        self.dt = self.spec.data_rate_hz / (self.config.control_rate_hz * self.pred_horizon)
        self._same_names = self.spec.state_names == self.spec.action_names
        if self.config.anchor == "state" and not self._same_names:
            raise ValueError("anchor='state' needs state_names == action_names in the checkpoint")
        self._latent = model.config.path == "latent"
        self._D = self.spec.action_dim
        self._lo = np.asarray(self.spec.action_lower, np.float64) if self.spec.action_lower else None
        self._hi = np.asarray(self.spec.action_upper, np.float64) if self.spec.action_upper else None
        self._gen = torch.Generator().manual_seed(int(self.config.seed))
        self._encode = CachedObsEncoder(model.encoder, self.state_norm, device=self.device)
        self._t_buf = torch.zeros(1, device=self.device)
        if self.config.backend == "numpy" and self.device.type == "cpu":  # on a GPU: torch
            self._np_vel = NumpyVelocity(model.velocity)
            self._field = self._field_numpy
        else:
            self._vel = self._traced_velocity() if self.config.torchscript else model.velocity.forward_cached
            self._field = self._field_torch
        self._x: np.ndarray | None = None  # (x_dim,) float32 normalised flow state
        self._k = 0  # ticks since the current plan started (flow time: flow_time_after(k))
        self._lag = 0  # ticks of observation age the current plan catches up (latency compensation)
        # ticks per data period: the catch-up is spread over the first one
        self._m = max(1, round(self.config.control_rate_hz / self.spec.data_rate_hz))
        self._plan: SFPPlan | None = None
        self._last: np.ndarray | None = None
        self._fresh = True  # the next start() is the first since reset(): start noise applies
        self._z0: np.ndarray | None = None  # latent variant: the z0 in use (start_noise "first": per enable)
        # mode latent (ModelConfig.mode_dim): the standard normal draw (per enable, like z0) and the
        # z of the running plan; z's conditioning is linear in z (no bias): z @ _mode_basis
        self._mode_draw: np.ndarray | None = None
        self._z: np.ndarray | None = None
        if model.mode_dim:
            with torch.inference_mode():
                basis = model.mode_cache(torch.eye(model.mode_dim, device=self.device))  # (mode_dim, cache_dim)
            self._mode_basis = basis.double()
            self._mode_basis_np = (np.stack([NumpyVelocity.cache_from_torch(basis[i:i + 1], model.velocity.film_dim)
                                             for i in range(model.mode_dim)]).astype(np.float64)
                                   if self.device.type == "cpu" else None)
        if model.banked:  # the demos' codes, drawn uniformly per enable
            self._bank = model.mode_bank.detach().double().cpu().numpy()
            if not np.isfinite(self._bank).all():
                raise ValueError("the checkpoint's mode bank is not finite")
            self._bank_probs = np.full(len(self._bank), 1.0 / len(self._bank))

    # -- properties ---------------------------------------------------------------------------
    @property
    def t(self) -> float:
        """Flow time of the current plan (0 right after start/reset)."""
        return self.flow_time_after(self._k)

    @property
    def last_action(self) -> np.ndarray | None:
        return None if self._last is None else self._last.copy()

    @property
    def has_plan(self) -> bool:
        return self._live(self.t)

    def _live(self, t: float) -> bool:
        """A plan is running and flow time ``t`` is before its end (max_flow_time)."""
        return self._plan is not None and t < self.config.max_flow_time - 1e-9

    @property
    def plan_stamp(self) -> float | None:
        return None if self._plan is None else self._plan.stamp

    # -- the four operations ------------------------------------------------------------------
    def prepare(self, obs: Observation) -> SFPPlan:
        """Encode an observation history (heavy; safe in a worker thread). Does not mutate self."""
        check_observation(obs, self.spec, self.obs_horizon)
        cond = self._encode(obs)  # per-frame features cached across observations
        prior = None
        with torch.inference_mode():
            cache = self.model.velocity.precompute(self.model.with_mode(cond))  # z's part: start()
            probs = mode_cond = mode_z = None
            if self.model.categorical:
                probs = self.model.mode_prior_logits(cond)[0].exp().double().cpu().numpy()
            elif self.model.banked:  # the demos' codes, uniformly: the same for every observation
                probs = self._bank_probs
            elif self.model.flow_prior:  # z for the episode's draw, if it has one, off the control thread
                mode_cond = cond.detach().clone()
                draw = self._mode_draw if self.config.start_noise == "first" else None  # replaced, never mutated
                if draw is not None:
                    mode_z = (draw, self._flow_z(mode_cond, draw))
            elif self.model.mode_dim:
                mean, logvar = self.model.mode_prior(cond)
                prior = (mean[0].double().cpu().numpy(), torch.exp(0.5 * logvar[0]).double().cpu().numpy())
        finite = [v for v in (*(prior or ()), probs) if v is not None]
        if not torch.isfinite(cache).all() or not all(np.isfinite(v).all() for v in finite):
            raise ValueError("observation encoding produced non-finite features")
        cache_np = NumpyVelocity.cache_from_torch(cache, self.model.velocity.film_dim) if self.device.type == "cpu" else None
        return SFPPlan(cache=cache, cache_np=cache_np, stamp=float(obs.stamp), mode_prior=prior, mode_probs=probs,
                       mode_cond=mode_cond, mode_z=mode_z)

    def reset(self, action: np.ndarray) -> None:
        """Anchor at ``action`` (robot units, (D_a,)) and drop any plan: step() holds it."""
        self._last = self._checked(action, "reset action")
        self._plan, self._x, self._k, self._lag, self._fresh = None, None, 0, 0, True

    def start(self, plan: SFPPlan, measured_state: np.ndarray | None = None, anchor: np.ndarray | None = None,
              now: float | None = None) -> None:
        """Receding horizon: a new plan, its flow started at the (blended) anchor.

        anchor: the action to continue from (robot units); default the last action produced.
        now: the caller's clock (s, same clock as the plan's stamp). With ``skip_elapsed``
        (latency compensation) the flow catches up with the plan's age, n =
        ``elapsed_ticks(now - stamp)`` ticks: it still starts at the anchor at flow time 0, but
        over the first data period (m ticks) each tick advances flow time by (1 + n / m) dt
        instead of dt, integrated in sub-steps no longer than a data period (1 / H), so after m
        ticks it is at (m + n) dt, where the plan's own clock is, and on the tick grid from then
        on. The commands stay continuous (no n-tick jump at a 100 Hz tick), much as a chunk
        baseline interpolates from the anchor to its first unexpired waypoint over a data
        period. It is not *started* at flow time n dt: the training tube around the
        demonstration narrows as sigma0 exp(-k t), so an anchor placed at t > 0 meets a velocity
        the net never learned. Without ``now`` the flow starts at 0 and advances dt per tick."""
        if not isinstance(plan, SFPPlan):
            raise ValueError(f"start() needs an SFPPlan from prepare(), got {type(plan).__name__}")
        measured = None if measured_state is None else self._checked(measured_state, "measured state", self.spec.state_dim)
        if anchor is not None:
            self._last = self._checked(anchor, "anchor")
        a0 = resolve_anchor(self.config, self._last, measured, self._same_names)
        a_n = self.action_norm.normalize(a0)
        if self.config.start_sigma > 0 and (self.config.start_noise == "every" or self._fresh):
            a_n = a_n + self.config.start_sigma * torch.randn(self._D, generator=self._gen, dtype=torch.float64).numpy()
        if self._latent:  # z0 picks the mode: one per enable ("first": kept across re-anchors) or per plan
            if self._fresh or self.config.start_noise == "every":  # _fresh: the first start after reset
                self._z0 = torch.randn(self._D, generator=self._gen, dtype=torch.float64).numpy()
            a_n = np.concatenate([a_n, self._z0])
        if self.model.mode_dim:  # the mode latent: z = mean(h) + std(h) x a draw kept like z0
            plan = self._with_mode(plan)
        lag = self.elapsed_ticks(float(now) - plan.stamp) if now is not None and self.config.skip_elapsed else 0
        self._x, self._k, self._lag, self._plan, self._fresh = a_n.astype(np.float32), 0, lag, plan, False
        if self._last is None:
            self._last = a0.copy()

    def _with_mode(self, plan: SFPPlan) -> SFPPlan:
        """The plan conditioned on its z: a new draw on the first start after reset() (every
        start with start_noise "every"), read through this plan's prior: z = mean + std x a
        standard normal draw, the one-hot class where a uniform draw falls in p(c | h), the
        bank entry a uniform draw picks (mode_prior "bank"), or a standard normal draw carried
        through the prior's flow (mode_prior "flow")."""
        if plan.mode_prior is None and plan.mode_probs is None and plan.mode_cond is None:
            raise ValueError("a mode-latent policy needs plans from its own prepare()")
        new_draw = self._fresh or self.config.start_noise == "every" or self._mode_draw is None
        if self.model.categorical or self.model.banked:  # a uniform draw, read through p(c | h) (inverse CDF)
            if new_draw:
                self._mode_draw = torch.rand(1, generator=self._gen, dtype=torch.float64).numpy()
            c = min(int(np.searchsorted(np.cumsum(plan.mode_probs), self._mode_draw[0])), len(plan.mode_probs) - 1)
            self._z = self._bank[c] if self.model.banked else np.eye(self.model.mode_dim)[c]
        elif self.model.flow_prior:  # the draw carried through this plan's prior flow
            if new_draw:
                self._mode_draw = torch.randn(self.model.mode_dim, generator=self._gen, dtype=torch.float64).numpy()
            if plan.mode_cond is None:
                raise ValueError("a flow-prior policy needs plans from its own prepare()")
            if plan.mode_z is not None and plan.mode_z[0] is self._mode_draw:  # prepare() already did it
                self._z = plan.mode_z[1]
            else:  # the first plan of an episode (or start_noise "every"): on this thread
                self._z = self._flow_z(plan.mode_cond, self._mode_draw)
        else:
            if new_draw:
                self._mode_draw = torch.randn(self.model.mode_dim, generator=self._gen, dtype=torch.float64).numpy()
            mean, std = plan.mode_prior
            self._z = mean + std * self._mode_draw
        zc = (torch.from_numpy(self._z)[None].to(self._mode_basis) @ self._mode_basis).to(plan.cache.dtype)
        cache_np = None
        if plan.cache_np is not None:
            cache_np = (plan.cache_np + self._z @ self._mode_basis_np).astype(np.float32)
        return SFPPlan(cache=plan.cache + zc, cache_np=cache_np, stamp=plan.stamp, mode_prior=plan.mode_prior,
                       mode_probs=plan.mode_probs, mode_cond=plan.mode_cond, mode_z=plan.mode_z)

    def _flow_z(self, cond: torch.Tensor, draw: np.ndarray) -> np.ndarray:
        """Flow prior: the standard normal ``draw`` carried through the prior's flow for ``cond``."""
        with torch.inference_mode():
            z = self.model.mode_prior_sample(cond, torch.from_numpy(draw)[None].to(cond))[0].double().cpu().numpy()
        if not np.isfinite(z).all():
            raise ValueError("the mode prior's flow produced a non-finite z")
        return z

    @property
    def mode_latent(self) -> np.ndarray | None:
        """The z of the running plan (mode-latent checkpoints), else None."""
        return None if self._z is None else self._z.copy()

    @property
    def lag_ticks(self) -> int:
        """Ticks of observation age the current plan catches up over its first data period."""
        return self._lag

    def flow_time_after(self, ticks: int) -> float:
        """Flow time of the current plan after ``ticks`` ticks: (ticks + lag min(ticks, m) / m) dt."""
        return (ticks + self._lag * min(ticks, self._m) / self._m) * self.dt

    def elapsed_ticks(self, elapsed: float) -> int:
        """Control ticks in ``elapsed`` seconds after the observation (rounded): the lag a plan
        that old catches up. Kept to at most (H - action_horizon) data periods, so at least
        action_horizon of the plan remain (as a chunk baseline keeps action_horizon waypoints).
        A negative or non-finite age (clock jump, stamp from the future) gives 0."""
        if not np.isfinite(elapsed) or elapsed <= 0.0:
            return 0
        t_max = min((self.pred_horizon - self.action_horizon) / self.pred_horizon, self.config.max_flow_time)
        n_max = max(math.floor(t_max / self.dt + 1e-9), 0)
        return min(round(elapsed * self.config.control_rate_hz), n_max)  # elapsed data_rate / H / dt

    def step(self) -> StepResult:
        """One control tick: integrate one step and return the action (or hold)."""
        if self._last is None:
            raise RuntimeError("step() before reset()/start(): no anchor")
        t = self.t
        if not self._live(t):
            return StepResult(self._last.copy(), t, True)
        t_next = self.flow_time_after(self._k + 1)
        if self._lag and self._k < self._m:  # catching up: sub-steps no longer than 1 / H
            n = max(1, math.ceil((t_next - t) * self.pred_horizon - 1e-9))
            x, h = self._x, (t_next - t) / n
            for i in range(n):
                x, action = self._advance(x, t + i * h, h)
                if action is None:
                    break
        else:
            x, action = self._advance(self._x, t, self.dt)
        if action is None:
            return StepResult(self._last.copy(), t, True)
        self._k += 1
        self._x, self._last = x, action
        return StepResult(action.copy(), t_next, False)

    # -- internals ----------------------------------------------------------------------------
    def _advance(self, x: np.ndarray, t: float, h: float) -> tuple[np.ndarray, np.ndarray | None]:
        """One integration step of size h from (x, t), bounds clamped in the flow state too:
        (x, action in robot units), or (x, None) after dropping the plan on a non-finite result."""
        x = flow_step(self._field, x, t, h, self.config.integrator)
        action = self.action_norm.unnormalize(x[: self._D].astype(np.float64))
        if self._lo is not None or self._hi is not None:
            clipped = np.clip(action, self._lo, self._hi)
            if not np.array_equal(clipped, action):
                action = clipped
                x[: self._D] = self.action_norm.normalize(action)
        if not np.isfinite(action).all():
            log.error("non-finite action at flow time %.3f: dropping the plan and holding", t)
            self._plan = None
            return x, None
        return x, action

    def _field_numpy(self, x: np.ndarray, t: float) -> np.ndarray:
        return self._np_vel(x, t, self._plan.cache_np)

    def _field_torch(self, x: np.ndarray, t: float) -> np.ndarray:
        self._t_buf.fill_(t)
        with torch.inference_mode():
            return self._vel(torch.from_numpy(x)[None].to(self.device), self._t_buf, self._plan.cache)[0].cpu().numpy()

    def _checked(self, a: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
        dim = self._D if dim is None else dim
        a = np.asarray(a, np.float64)
        if a.shape != (dim,):
            raise ValueError(f"{what} has shape {a.shape}, expected ({dim},)")
        if not np.isfinite(a).all():
            raise ValueError(f"{what} has non-finite values: {a}")
        return a.copy()

    def _traced_velocity(self):
        vel = self.model.velocity
        cache = torch.zeros(1, vel.cache_dim, device=self.device)
        example = (torch.zeros(1, vel.x_dim, device=self.device), torch.zeros(1, device=self.device), cache)
        with torch.inference_mode():
            traced = torch.jit.trace_module(vel, {"forward_cached": example}, check_trace=False)
        return traced.forward_cached


def check_device(device: str) -> str:
    """``device`` ("cpu" | "cuda") if torch can run there; ValueError naming it otherwise."""
    if device == "cpu":
        return device
    if device != "cuda":
        raise ValueError(f"device must be cpu|cuda, got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device 'cuda' asked for, but torch {torch.__version__} sees no CUDA device "
                         f"(built with CUDA {torch.version.cuda}); set device: cpu")
    return device


def load_policy(path: str | Path, config: RuntimeConfig | None = None):
    """Load a checkpoint into the runtime policy of its kind, integrated as ``config.integration``
    says (policy/integration.py). Raises ValueError on bad files or an unavailable device."""
    from ..baselines import lerobot_binding  # local: plain JSON checks (LeRobot only for a binding)

    if lerobot_binding.is_binding_file(path):  # a LeRobot ACT / Diffusion policy (baselines/lerobot_policy.py)
        from ..baselines.lerobot_policy import load_lerobot_policy

        return load_lerobot_policy(path, config)
    if lerobot_binding.is_lerobot_pretrained(path):
        raise ValueError(lerobot_binding.binding_hint(path))
    config = config or RuntimeConfig()
    # Process-wide: the runtime's encoder and steps should not fight the control loop for cores.
    torch.set_num_threads(int(config.threads))
    limit_blas_threads(int(config.threads))
    check_device(config.device)
    ckpt = read_checkpoint(path)
    if config.device != "cpu" and ckpt.kind != "sfp":
        raise ValueError(f"{path}: device {config.device!r} runs SFP checkpoints; a {ckpt.kind} checkpoint runs on cpu")
    model = build_model(ckpt)
    from ..kinds import model_kinds  # local: the registry imports this module
    from .integration import with_integration

    runtime = model_kinds()[ckpt.kind].runtime
    return with_integration(lambda cfg: runtime(model, ckpt, cfg), config)
