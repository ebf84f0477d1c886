"""Scripted-expert demos -> a dataset directory (data/episodes.save_dataset).

Each episode, at 10 Hz until success: ``state[i]`` the 5-d observation at step i and
``action[i]`` the PD target *in force when it was taken*: the target commanded at step i - 1
(``action[0]`` = the agent's start position, where it rests). This is the runtime's alignment:
a policy started at observation i anchors at the last commanded action (= ``action[i]``, the
chunk's waypoint a_0) and its first step emits a_1 = the command for step i, so no method runs
one step ahead of the demonstrations. Failed attempts are
dropped; the expert's own success rate over all attempts is stored in the dataset's ``source``.
Demo seeds start at ``DEMO_SEED0`` (disjoint from the evaluation seeds 0..N-1).

``task="pixels"`` (T3) runs the same expert on the same seeds (the same demos, frame for frame)
and stores, per sample, gym-pusht's 96x96 rendering of the state (camera ``pixels``) and the
agent position as the state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.episodes import Episode, save_dataset
from .env import CAMERA, DATA_RATE_HZ, MAX_STEPS, TASKS, PushTState, pusht_spec
from .expert import ScriptedExpert

log = logging.getLogger(__name__)

DEMO_SEED0 = 1_000_000


@dataclass
class ExpertRun:
    """One expert attempt: arrays at the data rate, success, steps."""

    state: np.ndarray  # (N, 5)
    action: np.ndarray  # (N, 2): action[i] = target commanded at step i - 1 (action[0]: start)
    coverage: np.ndarray  # (N - 1,) after each step
    success: bool
    frames: np.ndarray | None = None  # (N, 96, 96, 3) uint8 with render=True


def run_expert(env: PushTState, seed: int, max_steps: int = MAX_STEPS, render: bool = False) -> ExpertRun:
    """One closed-loop expert episode on ``seed`` (stops at success); ``render``: also the
    T3 camera frame of every sample."""
    obs = env.reset(seed)
    expert = ScriptedExpert(np.random.default_rng(seed))
    states, actions, cov = [], [obs[:2].copy()], []  # actions[i]: the target in force at obs i
    frames = [env.render()] if render else None
    success = False
    for _ in range(max_steps):
        a = expert.act(obs, env.agent_velocity)
        states.append(obs)
        actions.append(a)
        out = env.step(a)
        cov.append(out.coverage)
        obs = out.obs
        if render:
            frames.append(env.render())
        if out.success:
            success = True
            break
    states.append(obs)  # the final state, under the last target: N = steps + 1 samples
    return ExpertRun(np.array(states), np.array(actions), np.array(cov), success,
                     np.stack(frames) if render else None)


def collect(out: str | Path, episodes: int, seed0: int = DEMO_SEED0, max_attempts: int | None = None,
            task: str = "state") -> dict:
    """Collect ``episodes`` successful demos into ``out`` for ``task`` (env.TASKS); returns the
    expert's statistics."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if task not in TASKS:
        raise ValueError(f"unknown Push-T task {task!r} (known: {TASKS})")
    pixels = task == "pixels"
    max_attempts = max_attempts or 2 * episodes + 10
    env = PushTState(DATA_RATE_HZ)
    kept: list[Episode] = []
    attempts, lengths, t0 = 0, [], time.perf_counter()
    while len(kept) < episodes and attempts < max_attempts:
        run = run_expert(env, seed0 + attempts, render=pixels)
        attempts += 1
        if run.success:
            n = len(run.action)
            state = run.state[:, :2] if pixels else run.state
            kept.append(Episode(state=state.astype(np.float32), action=run.action.astype(np.float32),
                                images={CAMERA: run.frames} if pixels else {}, time=np.arange(n) / DATA_RATE_HZ))
            lengths.append(n)
    if not kept:
        raise ValueError(f"the expert succeeded in none of {attempts} attempts")
    stats = {
        "expert_success_rate": len(kept) / attempts,
        "attempts": attempts,
        "episodes": len(kept),
        "mean_length_steps": float(np.mean(lengths)),
        "seed0": seed0,
        "task": task,
        "seconds": time.perf_counter() - t0,
    }
    save_dataset(out, pusht_spec(task), kept, source={"generator": "pusht scripted expert", **stats})
    log.info("expert: %d / %d successful (%.1f %%), mean %.0f steps", len(kept), attempts,
             100 * stats["expert_success_rate"], stats["mean_length_steps"])
    return stats
