"""Closed-loop evaluation of a runtime policy on the numpy simulator, without ROS: the same
observation assembly and tick loop as the node, in one thread, deterministic and fast. Used to
select training settings; the through-the-node numbers come from `sfp eval sim`.

Like the node, every action passes the safety filter with the sim preset's position and velocity
limits (config/robots/sim.yaml; ``--no-safety`` to skip it), and each plan is anchored at the
last safe command.

    python -m streaming_flow_ros.apps.offline_eval CHECKPOINT [--episodes 50] [--rate 100] [--sampler ddpm]

For a chunk baseline (``--sampler``) this is the zero-latency reference: the simulated time stands
still while a chunk is sampled, so the result shows the quality of the samples alone.
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ..policy.protocol import Observation, RuntimeConfig, RuntimePolicy
from ..policy.safety import SafetyFilter, SafetyLimits
from ..policy.streaming import load_policy
from ..presets import load_preset
from ..ros.params import NodeParams, resolve_limits  # plain dataclasses, no rclpy
from ..sim.rollout import CAMERA_NAME, episode_seed, rollout
from ..sim.rollout import Observation as SimObservation
from ..sim.task import scene_for_seed


@dataclass
class PolicySource:
    """Drives a RuntimePolicy from the simulator's observations, like the node does: a new
    observation every data period (history of T_o samples), re-anchoring every
    ``reanchor_every`` observations; one policy step per control tick."""

    policy: RuntimePolicy
    reanchor_every: int = 1
    limits: SafetyLimits | None = None  # None: no safety filter

    def __post_init__(self) -> None:
        self.safety = SafetyFilter(self.limits) if self.limits is not None else None
        self.period = 1.0 / self.policy.spec.data_rate_hz
        self.q_hist: deque = deque(maxlen=self.policy.obs_horizon)
        self.img_hist: deque = deque(maxlen=self.policy.obs_horizon)
        self.next_obs = 0.0
        self.count = 0
        self.started = False

    def __call__(self, obs: SimObservation) -> np.ndarray:
        if obs.time >= self.next_obs - 1e-9:
            self.next_obs += self.period
            self.q_hist.append(obs.position.copy())
            self.img_hist.append(obs.image)
            while len(self.q_hist) < self.q_hist.maxlen:  # pad the first history by repetition
                self.q_hist.appendleft(self.q_hist[0])
                self.img_hist.appendleft(self.img_hist[0])
            if not self.started:
                self.policy.reset(obs.position)
                if self.safety is not None:
                    self.safety.reset(obs.position)
                self.started = True
            if self.count % self.reanchor_every == 0:
                images = {CAMERA_NAME: np.stack(self.img_hist)} if self.policy.spec.cameras else {}
                plan = self.policy.prepare(Observation(np.stack(self.q_hist), images, obs.time))
                anchor = self.safety.last if self.safety is not None else None
                self.policy.start(plan, measured_state=obs.position, anchor=anchor)
            self.count += 1
        action = self.policy.step().action
        if self.safety is None:
            return action
        safe = self.safety(action)
        if safe.rejected:
            self.policy.reset(safe.action)
        return safe.action


def preset_limits(name: str, policy: RuntimePolicy, control_rate_hz: float) -> SafetyLimits:
    """The safety limits the node builds for ``policy`` with robot preset ``name`` at a control
    rate: the preset's limits intersected with the checkpoint's action bounds."""
    params = NodeParams.from_mapping({**load_preset(name), "control_rate_hz": control_rate_hz})
    return resolve_limits(params, policy.spec)


def evaluate(checkpoint: str, episodes: int = 50, seed: int = 1000, control_rate_hz: float = 100.0,
             reanchor_every: int = 1, runtime: RuntimeConfig | None = None,
             preset: str | None = "sim") -> dict:
    """Success/collision rates over ``episodes`` scenes (seeds disjoint from the training seeds
    by default), with per-episode metrics. ``preset``: the robot preset whose limits the safety
    filter applies, as in the node (None: no safety filter)."""
    cfg = runtime or RuntimeConfig(control_rate_hz=control_rate_hz)
    per, limits = [], None
    for i in range(episodes):
        policy = load_policy(checkpoint, replace(cfg, seed=cfg.seed + i))  # noise seed per episode
        if preset and limits is None:  # the same checkpoint every episode: build the limits once
            limits = preset_limits(preset, policy, control_rate_hz)
        s = episode_seed(seed, i)
        rec = rollout(scene_for_seed(s), PolicySource(policy, reanchor_every, limits), command_rate_hz=control_rate_hz,
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
        "per_episode": per,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streaming_flow_ros.apps.offline_eval")
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    p.add_argument("--reanchor-every", type=int, default=8, help="observations per re-anchor (sim preset: 8)")
    p.add_argument("--start-sigma", type=float, default=0.0, help="start noise on the first plan (sim preset: 0)")
    p.add_argument("--noise-seed", type=int, default=0, help="runtime seed of episode 0 (episode i: + i)")
    p.add_argument("--no-safety", action="store_true", help="skip the node's safety filter (sim preset limits)")
    p.add_argument("--sampler", choices=("ddpm", "ddim", "euler"),
                   help="chunk-baseline checkpoints: the sampler (default: the checkpoint kind's)")
    a = p.parse_args(argv)
    rc = RuntimeConfig(control_rate_hz=a.rate, start_sigma=a.start_sigma, start_noise="first", seed=a.noise_seed)
    if a.sampler:
        from ..baselines.runtime import ChunkRuntimeConfig

        rc = ChunkRuntimeConfig.extend(rc, sampler=a.sampler)
    r = evaluate(a.checkpoint, a.episodes, a.seed, a.rate, a.reanchor_every, rc, None if a.no_safety else "sim")
    print(json.dumps({k: v for k, v in r.items() if k != "per_episode"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
