"""LeRobot's ACT and Diffusion Policy checkpoints behind our runtime protocol, as peers of the
chunk baselines: the node streams them through the same executors (chunk queue, ACT temporal
ensembling, LeRobot-style async aggregation), safety filter, stale hold and telemetry.

    policy = load_lerobot_policy("policy.json", config)   # a binding file (lerobot_binding.py)
    plan = policy.prepare(obs)       # Observation -> LeRobot batch -> one chunk (heavy; pure)
    policy.reset(a) / start(plan, measured, anchor, now) / step()   # our chunk execution

One inference (``LeRobotChunkSource.chunk``), with LeRobot 0.4.x's API (read from its source,
tag v0.4.4: policies/pretrained.py, act/modeling_act.py, diffusion/modeling_diffusion.py,
policies/factory.py, utils/control_utils.py ``predict_action``, policies/utils.py
``prepare_observation_for_inference``, async_inference/policy_server.py):

1. each of the T_o frames of ``obs`` (oldest first) becomes LeRobot's inference batch as its
   record loop makes it: ``observation.state`` (1, D_s) float32 in LeRobot units
   (``scale * robot + offset``), ``observation.images.<cam>`` (1, C, H, W) float32 in [0, 1]
   (our uint8 (H, W, C) / 255, channels first), ``task`` "" and ``robot_type`` "";
2. LeRobot's own preprocessor pipeline (policy_preprocessor.json: normalisation, device) runs
   on each frame, as ``select_action`` would see it;
3. the chunk, normalised, without LeRobot's hidden queues (so ``prepare`` is pure and may run
   on the node's plan thread): ACT (n_obs_steps 1): ``policy.predict_action_chunk(frame)`` ->
   (1, chunk_size, D_a); Diffusion: the frames stacked as ``DiffusionPolicy.select_action``
   stacks its queue (``observation.state`` (1, T_o, D_s), ``observation.images`` (1, T_o,
   N_cam, C, H, W), cameras in the config's order) into ``policy.diffusion.generate_actions(
   batch, noise)`` -> (1, n_action_steps, D_a), the noise (1, horizon, D_a) drawn from the
   runtime's seeded generator (its ``predict_action_chunk`` in 0.4.x reads only the queues
   that ``select_action`` fills);
4. LeRobot's postprocessor (unnormalisation to LeRobot units, CPU) on the (n, D_a) chunk at
   once (its steps are element-wise; LeRobot's policy server loops over the n actions);
5. robot units ``(x - offset) / scale``, our action order, and the first action dropped: it is
   the action aligned with the newest observation, whose place our anchor (the last command)
   takes; LeRobot's action k is our waypoint k, k data periods after the observation.

Samplers (the node's ``sampler`` parameter): "" -> the chunk queue (ChunkRuntime: a plan every
``n_action_steps`` data periods, like LeRobot's select_action queue, but starting from the last
command and interpolated per control tick); "ensemble" -> ACT temporal ensembling (a chunk every
data period, exp(-ensemble_m i) weights, ACT's 0.01; EnsembleRuntime); "async" -> LeRobot async
inference's aggregation (AsyncRuntime). Diffusion's scheduler and step count are its config's.

Verified here (test/test_lerobot_policy.py, LeRobot absent): the binding and config parsing on
LeRobot-shaped files, the frame/batch mapping, the chunk mapping and the executors with stand-in
policy and processor objects. Not verified here: LeRobot itself (it does not import on this
machine: see ``import_lerobot``); the tests that need it skip.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..policy.protocol import Observation, RuntimeConfig
from ..policy.streaming import check_observation
from .executors import AsyncRuntime, EnsembleRuntime
from .lerobot_binding import STATE_KEY, LeRobotBinding, read_binding
from .runtime import ChunkPlan, ChunkRuntime

log = logging.getLogger(__name__)

IMAGES_KEY = "observation.images"  # Diffusion's stacked cameras (LeRobot's OBS_IMAGES)
INSTALL_HINT = (
    "pip install lerobot==0.4.4 --no-deps, then its requirements by hand (0.5+ needs Python >= 3.12 and "
    "every release pins torch below 2.13; torchvision must be a build that loads here)"
)


def lerobot_frame(state: np.ndarray, images: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """One observation frame as LeRobot's inference batch (``prepare_observation_for_inference``).

    state: (D_s,) LeRobot units; images: feature key (``observation.images.<cam>``) -> (H, W, C)
    uint8. Returns ``observation.state`` (1, D_s) float32, each image (1, C, H, W) float32 in
    [0, 1], ``task`` "" and ``robot_type`` ""."""
    batch: dict[str, Any] = {STATE_KEY: torch.as_tensor(np.asarray(state, np.float32))[None]}
    for key, img in images.items():
        if img.dtype != np.uint8 or img.ndim != 3:
            raise ValueError(f"{key}: expected an (H, W, C) uint8 image, got {img.shape} {img.dtype}")
        batch[key] = (torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32) / 255.0).permute(2, 0, 1)[None]
    batch["task"], batch["robot_type"] = "", ""
    return batch


class LeRobotChunkSource:
    """A LeRobot policy and its processor pipelines: ``chunk(obs)`` -> (H, D_a) robot units.

    policy: ACT (``predict_action_chunk(batch)``) or Diffusion (``.diffusion.generate_actions(
    batch, noise=)``), any object with that method (tests use stand-ins); preprocessor:
    batch -> batch; postprocessor: (n, D_a) tensor -> tensor. Thread-safety: one ``chunk`` at a
    time (the node's plan worker); nothing here changes between calls."""

    def __init__(self, binding: LeRobotBinding, policy: Any, preprocessor: Callable[[dict], dict],
                 postprocessor: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.binding, self.info = binding, binding.info
        self.policy, self.preprocessor, self.postprocessor = policy, preprocessor, postprocessor
        self.device = torch.device(binding.device)
        self._cams = {c.name: key for c, key in zip(self.info.cameras, self.info.image_keys)}

    def frames(self, obs: Observation) -> list[dict[str, Any]]:
        """The T_o frames of ``obs`` as LeRobot batches, oldest first (before preprocessing)."""
        b = self.binding
        state = np.asarray(obs.state, np.float64) * b.state_scale + b.state_offset  # (T_o, D_s) LeRobot units
        return [lerobot_frame(state[t], {key: obs.images[name][t] for name, key in self._cams.items()})
                for t in range(state.shape[0])]

    def chunk(self, obs: Observation, generator: torch.Generator) -> np.ndarray:
        """One inference on ``obs`` -> (H, D_a) float64 robot units, spec action order."""
        with torch.inference_mode():
            frames = [self.preprocessor(f) for f in self.frames(obs)]
            chunk_n = self._predict(frames, generator)  # (1, n, D_a) normalised, LeRobot order
            n = self.info.chunk_len
            if tuple(chunk_n.shape) != (1, n, self.info.action_dim):
                raise ValueError(f"LeRobot {self.info.type} returned a chunk of shape {tuple(chunk_n.shape)}, "
                                 f"expected (1, {n}, {self.info.action_dim})")
            chunk = self.postprocessor(chunk_n[0])  # (n, D_a) LeRobot units
        return self.to_robot(chunk.detach().to("cpu", torch.float64).numpy())

    def to_robot(self, chunk: np.ndarray) -> np.ndarray:
        """(n, D_a) LeRobot units, LeRobot order -> (n - 1, D_a) robot units, spec order (the
        first action, aligned with the newest observation, dropped: the anchor's place)."""
        b = self.binding
        robot = (chunk - b.action_offset) / b.action_scale
        return robot[1:, b.action_order]

    def _predict(self, frames: list[dict[str, Any]], generator: torch.Generator) -> torch.Tensor:
        if self.info.type == "act":  # n_obs_steps is 1 (ACTConfig refuses more)
            return self.policy.predict_action_chunk(frames[-1])
        batch = {STATE_KEY: torch.stack([f[STATE_KEY] for f in frames], dim=1)}  # (1, T_o, D_s)
        if self.info.image_keys:  # per frame (1, N_cam, C, H, W), then (1, T_o, N_cam, C, H, W)
            per_frame = [torch.stack([f[k] for k in self.info.image_keys], dim=-4) for f in frames]
            batch[IMAGES_KEY] = torch.stack(per_frame, dim=1)
        noise = torch.randn((1, self.info.horizon, self.info.action_dim), generator=generator, dtype=torch.float32)
        return self.policy.diffusion.generate_actions(batch, noise=noise.to(self.device))


class _LeRobotChunks:
    """What a LeRobot runtime adds to a chunk executor: its model binding and ``prepare``. Put
    first in the bases, so the executor's ``__init__`` calls this ``_bind_model``."""

    executor: str  # the node's sampler name ("" = the queue)

    def _bind_model(self, source: LeRobotChunkSource, binding: LeRobotBinding) -> None:
        self.sampler = self.executor or "queue"
        self.source = source
        self.spec = binding.spec
        self.obs_horizon = binding.info.n_obs_steps
        self.pred_horizon = binding.info.pred_horizon
        self.action_horizon = binding.info.action_horizon

    def prepare(self, obs: Observation) -> ChunkPlan:
        """One LeRobot inference on ``obs`` (heavy; pure: safe on a worker thread)."""
        check_observation(obs, self.spec, self.obs_horizon)
        with self._gen_lock:
            seed = int(torch.randint(0, 2**62, (1,), generator=self._gen))
        actions = self.source.chunk(obs, torch.Generator().manual_seed(seed))
        if not np.isfinite(actions).all():
            raise ValueError("LeRobot chunk has non-finite actions")
        return ChunkPlan(actions=actions, stamp=float(obs.stamp))


class LeRobotRuntime(_LeRobotChunks, ChunkRuntime):
    """A LeRobot chunk executed as a queue: ``n_action_steps`` data periods per plan."""

    executor = ""


class LeRobotEnsembleRuntime(_LeRobotChunks, EnsembleRuntime):
    """A LeRobot chunk every data period, temporally ensembled (ACT's scheme)."""

    executor = "ensemble"


class LeRobotAsyncRuntime(_LeRobotChunks, AsyncRuntime):
    """LeRobot chunks aggregated on their overlap (LeRobot async inference's weighted_average)."""

    executor = "async"


RUNTIMES: dict[str, type[ChunkRuntime]] = {"": LeRobotRuntime, "ensemble": LeRobotEnsembleRuntime,
                                           "async": LeRobotAsyncRuntime}


def lerobot_runtime(source: LeRobotChunkSource, binding: LeRobotBinding,
                    config: RuntimeConfig | None = None) -> ChunkRuntime:
    """The runtime for ``config.sampler`` ("" / None: queue, "ensemble", "async")."""
    sampler = getattr(config, "sampler", None) or ""
    if sampler not in RUNTIMES:
        raise ValueError(f"a LeRobot policy runs with sampler '' (chunk queue), ensemble or async, not {sampler!r} "
                         "(Diffusion's scheduler and steps are its config.json's)")
    return RUNTIMES[sampler](source, binding, config)


# ---- loading (the only place LeRobot is imported) ------------------------------------------------
def import_lerobot() -> tuple[Any, Any, Any]:
    """LeRobot's (PreTrainedConfig, get_policy_class, make_pre_post_processors), imported now.

    Raises ImportError with what to do when LeRobot is not installed or does not import (on a
    CPU machine, typically a CUDA build of torchvision). Only LeRobot's own imports are guarded."""
    if importlib.util.find_spec("lerobot") is None:
        raise ImportError(f"LeRobot is not installed: {INSTALL_HINT}")
    version = importlib.metadata.version("lerobot")
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except (ImportError, OSError, RuntimeError) as e:  # a dependency that fails to load
        raise ImportError(f"LeRobot {version} is installed but does not import: {type(e).__name__}: {e}. "
                          f"{INSTALL_HINT}") from e
    if not version.startswith("0.4."):
        log.warning("LeRobot %s: this adapter follows LeRobot 0.4.x's API", version)
    return PreTrainedConfig, get_policy_class, make_pre_post_processors


def load_lerobot_source(binding: LeRobotBinding) -> LeRobotChunkSource:
    """Load the policy and its processors with LeRobot, as its policy server does (weights from
    model.safetensors, processors from the policy_*processor.json files, device overridden)."""
    PreTrainedConfig, get_policy_class, make_pre_post_processors = import_lerobot()
    root = str(binding.pretrained_dir)
    cfg = PreTrainedConfig.from_pretrained(root)
    if cfg.type != binding.info.type:
        raise ValueError(f"{root}: LeRobot reads policy type {cfg.type!r}, config.json says {binding.info.type!r}")
    cfg.device = binding.device
    if getattr(cfg, "pretrained_backbone_weights", None):
        # ACT builds its ResNet with ImageNet weights (a download) before model.safetensors
        # overwrites them: skip it (a robot is often offline).
        cfg.pretrained_backbone_weights = None
    policy = get_policy_class(cfg.type).from_pretrained(root, config=cfg)
    policy.eval()
    device = {"device_processor": {"device": binding.device}}
    pre, post = make_pre_post_processors(cfg, pretrained_path=root, preprocessor_overrides=device)
    return LeRobotChunkSource(binding, policy, pre, post)


def load_lerobot_policy(path: str | Path, config: RuntimeConfig | None = None) -> ChunkRuntime:
    """A binding file -> the runtime policy (imports LeRobot). Raises ValueError on a bad
    binding or pretrained_model directory, ImportError when LeRobot does not import."""
    config = config or RuntimeConfig()
    binding = read_binding(path)  # checked before LeRobot is imported: errors name our file
    coeff = binding.info.raw.get("temporal_ensemble_coeff")
    if coeff is not None and (not isinstance(coeff, (int, float)) or isinstance(coeff, bool)):
        raise ValueError(f"{binding.pretrained_dir}: temporal_ensemble_coeff must be a number, got {coeff!r}")
    if coeff is not None:  # ACT trained for temporal ensembling: its m, under our ensembling
        if getattr(config, "sampler", None) != "ensemble":
            log.warning("%s sets temporal_ensemble_coeff: run it with sampler ensemble", binding.pretrained_dir)
        else:
            config = replace(config, ensemble_m=float(coeff))
    torch.set_num_threads(int(config.threads))
    return lerobot_runtime(load_lerobot_source(binding), binding, config)

