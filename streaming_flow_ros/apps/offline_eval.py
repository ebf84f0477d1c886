"""Closed-loop evaluation of a runtime policy on the numpy simulator, without ROS: the node's
own ControlLoop (policy/control.py) on the simulated clock, in one thread, deterministic and
fast. Used to select training settings and defaults; the through-the-node numbers come from
`sfp eval sim`.

Like the node, every action passes the safety filter with the sim preset's position and velocity
limits (config/robots/sim.yaml; ``--no-safety`` to skip it), plans start on the node's
``reanchor`` cadence, and each plan is anchored at the last safe command.

    python -m streaming_flow_ros.apps.offline_eval CHECKPOINT [--episodes 50] [--rate 100] \
        [--reanchor horizon] [--no-skip-elapsed] [--sampler ddpm]

For a chunk baseline (``--sampler``) this is the zero-latency reference: the simulated time stands
still while a chunk is sampled, so the result shows the quality of the samples alone.
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ..policy.control import ControlLoop, LatestObservation, LoopConfig, TickInputs
from ..policy.protocol import Observation, RuntimeConfig, RuntimePolicy
from ..policy.safety import SafetyLimits
from ..policy.streaming import load_policy
from ..presets import load_preset
from ..ros.params import NodeParams, resolve_limits  # plain dataclasses, no rclpy
from ..sim.rollout import CAMERA_NAME, SimObservation, episode_seed, rollout
from ..sim.task import scene_for_seed


@dataclass
class PolicySource:
    """Drives a RuntimePolicy from the simulator's observations through the node's ControlLoop:
    a new observation every data period (history of T_o samples at the data rate, the first one
    repeated before there are T_o), offered ``delay`` data periods late and stamped with its
    sampling time (as a late sensor would: the loop compensates by the stamps); plans start on
    ``loop``'s re-anchor cadence; one loop tick per control tick. ``commands`` and ``starts``
    (the ticks at which a plan started) record what the loop did."""

    policy: RuntimePolicy
    loop_config: LoopConfig
    limits: SafetyLimits | None = None  # None: no position or step limits
    delay: int = 0  # data periods

    def __post_init__(self) -> None:
        d = self.policy.spec.action_dim
        limits = self.limits or SafetyLimits(np.full(d, -np.inf), np.full(d, np.inf), np.full(d, np.inf))
        self.plans = LatestObservation(self.policy.prepare)
        self.loop = ControlLoop(self.policy, limits, self.loop_config, self.plans)
        self.period = 1.0 / self.policy.spec.data_rate_hz
        self.samples: deque = deque(maxlen=self.policy.obs_horizon + self.delay)  # (q, image, t)
        self.next_obs = 0.0
        self.commands: list[np.ndarray] = []
        self.starts: list[int] = []

    def __call__(self, obs: SimObservation) -> np.ndarray:
        if obs.time >= self.next_obs - 1e-9:
            self.next_obs += self.period
            self.samples.append((obs.position.copy(), obs.image, obs.time))
            j = max(0, len(self.samples) - 1 - self.delay)  # the newest sample the loop may see
            hist = [self.samples[max(0, j - (self.policy.obs_horizon - 1 - q))] for q in range(self.policy.obs_horizon)]
            images = {CAMERA_NAME: np.stack([h[1] for h in hist])} if self.policy.spec.cameras else {}
            self.plans.offer(Observation(np.stack([h[0] for h in hist]), images, hist[-1][2]))
        out = self.loop.tick(obs.time, TickInputs.simulated(obs.position, obs.position))
        assert out.command is not None, out.hold  # fresh simulated inputs: the loop always commands
        if out.reanchored:
            self.starts.append(len(self.commands))
        self.commands.append(out.command.copy())
        return out.command


def preset_limits(name: str, policy: RuntimePolicy, control_rate_hz: float) -> SafetyLimits:
    """The safety limits the node builds for ``policy`` with robot preset ``name`` at a control
    rate: the preset's limits intersected with the checkpoint's action bounds."""
    params = NodeParams.from_mapping({**load_preset(name), "control_rate_hz": control_rate_hz})
    return resolve_limits(params, policy.spec)


def evaluate(checkpoint: str, episodes: int = 50, seed: int = 1000, control_rate_hz: float = 100.0,
             reanchor: str = "horizon", reanchor_ticks: int = 10, runtime: RuntimeConfig | None = None,
             preset: str | None = "sim") -> dict:
    """Success/collision rates over ``episodes`` scenes (seeds disjoint from the training seeds
    by default), with per-episode metrics, through the node's ControlLoop with its ``reanchor``
    cadence. ``preset``: the robot preset whose limits the safety filter applies, as in the
    node (None: no safety filter)."""
    cfg = runtime or RuntimeConfig(control_rate_hz=control_rate_hz)
    per, limits = [], None
    for i in range(episodes):
        policy = load_policy(checkpoint, replace(cfg, seed=cfg.seed + i))  # noise seed per episode
        if preset and limits is None:  # the same checkpoint every episode: build the limits once
            limits = preset_limits(preset, policy, control_rate_hz)
        s = episode_seed(seed, i)
        loop = LoopConfig(control_rate_hz=control_rate_hz, reanchor=reanchor, reanchor_ticks=reanchor_ticks)
        rec = rollout(scene_for_seed(s), PolicySource(policy, loop, limits), command_rate_hz=control_rate_hz,
                      stop_after_success=0.3)
        m = rec.metrics
        per.append({"seed": s, "success": bool(m.success), "collision": bool(m.collision),
                    "clean_success": bool(m.clean_success), "time_to_success": float(m.time_to_success),
                    "jerk_rms": float(m.jerk_rms), "final_distance": float(m.final_distance)})
    return {
        "episodes": episodes,
        "success_rate": float(np.mean([p["clean_success"] for p in per])),
        "reached_rate": float(np.mean([p["success"] for p in per])),
        "collision_rate": float(np.mean([p["collision"] for p in per])),
        "time_to_success_median_s": float(np.nanmedian([p["time_to_success"] for p in per])) if any(
            p["success"] for p in per) else float("nan"),
        "per_episode": per,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streaming_flow_ros.apps.offline_eval")
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    p.add_argument("--reanchor", choices=("observation", "ticks", "horizon"), default="horizon",
                   help="plan cadence, as the node's parameter (sim preset: horizon)")
    p.add_argument("--reanchor-ticks", type=int, default=10, help="ticks per plan with --reanchor ticks")
    p.add_argument("--no-skip-elapsed", action="store_true", help="no latency compensation (node: skip_elapsed)")
    p.add_argument("--start-sigma", type=float, default=0.0, help="start noise on the first plan (sim preset: 0)")
    p.add_argument("--noise-seed", type=int, default=0, help="runtime seed of episode 0 (episode i: + i)")
    p.add_argument("--no-safety", action="store_true", help="skip the node's safety filter (sim preset limits)")
    p.add_argument("--sampler", choices=("ddpm", "ddim", "euler"),
                   help="chunk-baseline checkpoints: the sampler (default: the checkpoint kind's)")
    a = p.parse_args(argv)
    rc = RuntimeConfig(control_rate_hz=a.rate, start_sigma=a.start_sigma, start_noise="first", seed=a.noise_seed,
                       skip_elapsed=not a.no_skip_elapsed)
    if a.sampler:
        from ..baselines.runtime import ChunkRuntimeConfig

        rc = ChunkRuntimeConfig.extend(rc, sampler=a.sampler)
    r = evaluate(a.checkpoint, a.episodes, a.seed, a.rate, a.reanchor, a.reanchor_ticks, rc,
                 None if a.no_safety else "sim")
    print(json.dumps({k: v for k, v in r.items() if k != "per_episode"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
