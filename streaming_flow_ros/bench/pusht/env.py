"""Push-T (gym-pusht), wrapped for the benchmark: state observations (T2) and 96x96 images (T3).

Units: pixels (the 512 x 512 workspace), radians, seconds. Observation (D_s = 5):
``agent_x, agent_y, block_x, block_y, block_angle``; action (D_a = 2): the PD target
``agent_x, agent_y`` (the environment's own action: a target position, kp 100 / kv 20).

Two deliberate choices, the same for every method:
- ``block_angle`` is wrapped to [goal - pi, goal + pi) instead of gym-pusht's [0, 2 pi): the
  branch cut then sits opposite the goal orientation (pi/4), not 45 degrees from it.
- ``control_hz`` sets how long one ``step`` lasts (gym-pusht integrates 10 ms physics steps at
  its ``control_hz``; 10 Hz = 10 physics steps per action, 50 Hz = 2). The PD gains never change.

``coverage`` (fraction of the goal T covered by the block) comes from gym-pusht's ``info``;
``reward = clip(coverage / 0.95, 0, 1)``; success is ``coverage > 0.95`` (the env terminates).

Tasks (``TASKS``): ``state`` (T2: the 5-d observation) and ``pixels`` (T3: gym-pusht's own
96x96 RGB rendering of the scene, ``PushTState.render``, plus the agent position, D_s = 2: Diffusion
Policy's image Push-T). The simulation, expert, actions and metrics are the same for both.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ...spec import CameraSpec, IOSpec

STATE_NAMES = ("agent_x", "agent_y", "block_x", "block_y", "block_angle")
ACTION_NAMES = ("agent_x", "agent_y")
DATA_RATE_HZ = 10.0
WORKSPACE = (0.0, 512.0)  # action bounds, pixels (gym-pusht's action space)
GOAL_POSE = (256.0, 256.0, math.pi / 4)
SUCCESS_COVERAGE = 0.95
MAX_STEPS = 300  # at the data rate (30 s)
TASKS = ("state", "pixels")
CAMERA = "pixels"  # the T3 camera's name in datasets and checkpoints
IMAGE_SIZE = 96
KP, KV = 100.0, 20.0  # gym-pusht's defaults; asserted, never changed


def pusht_spec(task: str = "state") -> IOSpec:
    """The dataset / checkpoint interface of the benchmark for ``task`` (TASKS)."""
    if task not in TASKS:
        raise ValueError(f"unknown Push-T task {task!r} (known: {TASKS})")
    lo, hi = WORKSPACE
    pixels = task == "pixels"
    return IOSpec(
        state_names=STATE_NAMES[:2] if pixels else STATE_NAMES,
        action_names=ACTION_NAMES,
        data_rate_hz=DATA_RATE_HZ,
        action_lower=(lo, lo),
        action_upper=(hi, hi),
        cameras=(CameraSpec(CAMERA, IMAGE_SIZE, IMAGE_SIZE, 3),) if pixels else (),
        extra={"task": f"pusht-{task}", "goal_pose": list(GOAL_POSE)},
    )


def task_of(spec: IOSpec) -> str:
    """``pixels`` for a checkpoint / dataset with the T3 camera, else ``state``."""
    return "pixels" if any(c.name == CAMERA for c in spec.cameras) else "state"


def wrap_angle(theta: float, center: float = GOAL_POSE[2]) -> float:
    """theta wrapped to [center - pi, center + pi)."""
    return float((theta - center + math.pi) % (2 * math.pi) - math.pi + center)


def import_gym_pusht():
    """Import gym-pusht headless (no window, no pygame banner); ImportError names the package."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        from gym_pusht.envs.pusht import PushTEnv
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"the Push-T benchmark needs gym-pusht (pip install gym-pusht): {e}") from e
    return PushTEnv


@dataclass
class StepOut:
    """One step: obs (5,) float64, reward, coverage, success (coverage > 0.95)."""

    obs: np.ndarray
    reward: float
    coverage: float
    success: bool


class PushTState:
    """gym-pusht's PushTEnv (state observations) without gymnasium's wrappers (no time limit:
    the caller counts steps), at ``control_hz`` (10 = the data rate)."""

    def __init__(self, control_hz: float = DATA_RATE_HZ) -> None:
        PushTEnv = import_gym_pusht()
        self.env = PushTEnv(obs_type="state", render_mode="rgb_array")
        if (self.env.k_p, self.env.k_v) != (KP, KV):
            raise ValueError(f"gym-pusht PD gains {self.env.k_p}/{self.env.k_v} != {KP}/{KV}")
        n = 1.0 / (self.env.dt * control_hz)
        if abs(n - round(n)) > 1e-6 or round(n) < 1:
            raise ValueError(f"control_hz {control_hz} must divide 1 / {self.env.dt} s physics steps")
        self.env.control_hz = control_hz
        self.control_hz = float(control_hz)

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=int(seed))
        return self._obs(obs)

    def step(self, action: np.ndarray) -> StepOut:
        a = np.clip(np.asarray(action, np.float64), *WORKSPACE)
        obs, reward, _, _, info = self.env.step(a)
        cov = float(info["coverage"])
        return StepOut(self._obs(obs), float(reward), cov, cov > SUCCESS_COVERAGE)

    def observe(self) -> np.ndarray:
        """The state observation of the scene as it is now (after the block was moved by hand)."""
        e = self.env
        return self._obs(np.array([*e.agent.position, *e.block.position, e.block.angle]))

    def coverage(self) -> float:
        return float(self.env._get_coverage())

    def render(self) -> np.ndarray:
        """The current scene as the T3 camera sees it: (96, 96, 3) uint8 RGB, gym-pusht's own
        observation rendering (no action marker)."""
        img = np.ascontiguousarray(self.env._render(visualize=False), dtype=np.uint8)
        if img.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise ValueError(f"gym-pusht rendered {img.shape}, expected ({IMAGE_SIZE}, {IMAGE_SIZE}, 3)")
        return img

    @property
    def agent_velocity(self) -> np.ndarray:
        return np.array(self.env.agent.velocity, np.float64)

    @staticmethod
    def _obs(obs: np.ndarray) -> np.ndarray:
        o = np.asarray(obs, np.float64).copy()
        o[4] = wrap_angle(o[4])
        return o
