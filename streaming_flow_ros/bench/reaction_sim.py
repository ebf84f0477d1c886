"""`sfp bench reaction --task sim`: the reaction benchmark (bench/reaction.py) on the arm
simulator's reaching task (T4: the 3-joint arm reaches a target seen only in its 96x96 camera,
around an obstacle), driven without DDS through the one control loop the node runs
(apps/offline_eval.PolicySource: policy/control.py with the ``sim`` preset's limits).

Protocol, per episode (scene ``episode_seed(EVAL_SEED, e)``, the held-out scenes of `sfp eval
sim`) and method:
- control at 100 Hz; an observation (joint state + the camera frame) every 0.1 s, given to the
  loop ``delay`` data periods late and stamped with its sampling time (latency compensation on,
  the node's default);
- two rollouts of the same scene: the *base* one, and the *perturbed* one in which, at data step
  ``k`` (``WINDOW``: 0.3-0.8 s, while the arm is on its way; the shipped policy reaches the
  target in 1.5 s, median of apps/offline_eval on 50 scenes) the target jumps ``JUMP_RAD`` in bearing around the arm's base, at the same
  distance (mirrored back into the task's bearing range); the obstacle stays;
- **reaction latency**: from the jump to the first tick whose commanded joints differ from the
  base rollout's at the same tick by more than ``EPS_RAD`` on any joint; the two rollouts must
  agree exactly before it (the simulator, camera and seeded policy are deterministic); no
  response within ``reaction.NO_REACTION_S`` counts as that cap;
- **success after perturbation**: the end effector reaches the *new* target within the task's
  time limit (8 s) without touching the obstacle (a success on the old target does not count);
  **reached after**: the same, collisions allowed;
- **jerk RMS** of the commanded joints (third difference / dt^3, rad/s^3) over the perturbed
  rollout, and at the ticks where a new plan started (seams).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ..apps.offline_eval import PolicySource, preset_limits
from ..policy.streaming import load_policy
from ..sim.arm import ArmConfig
from ..sim.rollout import episode_seed, rollout
from ..sim.task import Scene, TaskConfig, scene_for_seed
from . import reaction
from .pusht.evaluate import runtime_config

EVAL_SEED = 1000  # `sfp eval sim` / offline_eval: scenes disjoint from the demos'
CONTROL_HZ = 100.0
DATA_HZ = 10.0  # observations (the checkpoints' data rate)
EPS_RAD = 1e-3  # a commanded joint this far from the base rollout's is a reaction
# data steps after the start, [low, high): 0.3-0.8 s. Unperturbed, the shipped SFP policy reaches the
# target in 1.5 s (median over 50 held-out scenes, apps/offline_eval; the scripted expert in about 3 s).
WINDOW = (3, 9)
JUMP_RAD = (0.25, 0.40)  # target bearing change, rad (at 0.74-0.86 m: 19-34 cm)


def about() -> dict[str, Any]:
    """What the JSON says about the protocol (bench/reaction.py ``render`` captions with it)."""
    return {"task": "sim", "robot": "sim", "control_hz": CONTROL_HZ, "eps_rad": EPS_RAD,
            "units": "rad/s^3, commanded joints",
            "protocol": (f"Arm simulator reaching T4 (3 joints and a 96x96 camera), target jumps "
                         f"{JUMP_RAD[0]:.2f}-{JUMP_RAD[1]:.2f} rad in bearing at {WINDOW[0] / DATA_HZ:.1f}-"
                         f"{(WINDOW[1] - 1) / DATA_HZ:.1f} s, reaction = first command > {EPS_RAD * 1e3:.0f} mrad "
                         f"off the base rollout, success = new target reached without collision within "
                         f"{TaskConfig().time_limit:.0f} s")}


def jumped_scene(scene: Scene, seed: int) -> tuple[int, Scene]:
    """(data step k, the scene after the jump) of episode scene ``seed``: the target turned by
    ``JUMP_RAD`` around the base in a random direction, mirrored back when that leaves the
    task's bearing range, at the same distance."""
    rng = np.random.default_rng([int(seed), 7200])
    k = int(rng.integers(*WINDOW))
    jump = rng.uniform(*JUMP_RAD) * rng.choice((-1.0, 1.0))
    base = np.asarray(ArmConfig().base_xy)
    rel = np.asarray(scene.target) - base
    distance, bearing = float(np.hypot(*rel)), math.atan2(-rel[0], rel[1])  # bearing from +y, + to the left
    lo, hi = TaskConfig().target_bearing
    new = bearing + jump if lo <= bearing + jump <= hi else bearing - jump
    target = base + distance * np.array([-math.sin(new), math.cos(new)])
    return k, replace(scene, target=(float(target[0]), float(target[1])))


def run_once(checkpoint: str, method: str, every: int, seed: int, delay: int, perturb: bool) -> dict[str, Any]:
    """One episode of scene ``seed`` through the ControlLoop: the commands (T, D), plan-start
    ticks, the jump's tick and the success (on the new target when ``perturb``). The base
    rollout runs to ``reaction.NO_REACTION_S + 0.5`` s after the jump tick, the perturbed one to
    the time limit (or 0.3 s after success)."""
    policy = load_policy(checkpoint, runtime_config(method, CONTROL_HZ, seed=seed, latency_comp=True))
    source = PolicySource(policy, reaction.arm_loop_config(every, CONTROL_HZ, DATA_HZ), preset_limits("sim", policy, CONTROL_HZ), delay=delay)
    scene = scene_for_seed(seed)
    k, jumped = jumped_scene(scene, seed)
    t_jump = k / DATA_HZ
    duration = None if perturb else t_jump + reaction.NO_REACTION_S + 0.5
    rec = rollout(scene, source, command_rate_hz=CONTROL_HZ, duration=duration,
                  stop_after_success=0.3 if perturb else None, scene_change=(t_jump, jumped) if perturb else None)
    return {"commands": np.asarray(source.commands), "starts": source.starts, "k_tick": round(t_jump * CONTROL_HZ),
            "success": bool(rec.metrics.clean_success), "reached": bool(rec.metrics.success), "rate": CONTROL_HZ}


def episode(checkpoint: str, method: str, every: int, index: int, delay: int) -> dict[str, float]:
    """Episode ``index``: base and perturbed rollout compared (bench/reaction.py's row). Raises
    RuntimeError when the two differ before the jump (the criterion needs them equal)."""
    seed = episode_seed(EVAL_SEED, index)
    base = run_once(checkpoint, method, every, seed, delay, perturb=False)
    pert = run_once(checkpoint, method, every, seed, delay, perturb=True)
    return {**reaction.compare_joint_rollouts(base, pert, EPS_RAD, f"scene {seed} {method}"),
            "success": pert["success"], "reached": pert["reached"]}
