"""LeRobot ACT / Diffusion Policy checkpoints as runtime policies (baselines/lerobot_binding.py,
baselines/lerobot_policy.py).

LeRobot does not import on this machine (0.5+ needs Python 3.12, every release pins torch below
2.13, torchvision on the registry is a CUDA build), so most tests here run WITHOUT it:
- the pretrained_model directory is LeRobot-shaped by hand (config.json as LeRobot 0.4.4's
  draccus dump lays it out, placeholder weight and processor files): detection, parsing, the
  binding file, and the clear messages (not installed; a directory where a binding is expected);
- the observation -> batch and chunk -> action mapping, and execution through our executors and
  the node's ControlLoop, with STAND-IN policy and processor objects that implement the methods
  the adapter calls (predict_action_chunk; diffusion.generate_actions(batch, noise); processors
  as callables). They verify our side of the contract, not LeRobot's.
The last tests need LeRobot itself (pytest.importorskip) and have not run here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streaming_flow_ros.baselines import lerobot_policy as lp
from streaming_flow_ros.baselines.lerobot_binding import (
    is_binding_file,
    is_lerobot_pretrained,
    local_training_dataset,
    make_binding,
    read_binding,
    read_pretrained_config,
)
from streaming_flow_ros.baselines.lerobot_policy import (
    LeRobotAsyncRuntime,
    LeRobotChunkSource,
    LeRobotEnsembleRuntime,
    LeRobotRuntime,
    import_lerobot,
    lerobot_frame,
    lerobot_runtime,
)
from streaming_flow_ros.baselines.runtime import ChunkRuntimeConfig
from streaming_flow_ros.policy.control import ControlLoop, LatestObservation, LoopConfig, TickInputs
from streaming_flow_ros.policy.protocol import Observation, RuntimeConfig
from streaming_flow_ros.policy.safety import SafetyLimits
from streaming_flow_ros.policy.streaming import load_policy

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot_v3_arm_reach"  # 8 joints, 10 fps (LeRobot 0.6.1)
JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos"]
HAS_LEROBOT = importlib.util.find_spec("lerobot") is not None


def fake_pretrained(root: Path, ptype: str = "act", state_dim: int = 3, cameras=(("front", 3, 24, 32),),
                    **fields) -> Path:
    """A directory laid out as LeRobot 0.4.4 saves a policy (config.json fields as its draccus
    dump writes them; weights and processor files are placeholders: never read without LeRobot)."""
    root.mkdir(parents=True, exist_ok=True)
    inputs = {"observation.state": {"type": "STATE", "shape": [state_dim]}}
    inputs |= {f"observation.images.{n}": {"type": "VISUAL", "shape": [c, h, w]} for n, c, h, w in cameras}
    doc = {"type": ptype, "n_obs_steps": 1, "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD",
                                                                       "ACTION": "MEAN_STD"},
           "input_features": inputs, "output_features": {"action": {"type": "ACTION", "shape": [state_dim]}},
           "device": "cuda", "use_amp": False, "push_to_hub": True, "repo_id": None, "pretrained_path": None}
    if ptype == "act":
        doc |= {"chunk_size": 10, "n_action_steps": 10, "vision_backbone": "resnet18",
                "pretrained_backbone_weights": "ResNet18_Weights.IMAGENET1K_V1", "temporal_ensemble_coeff": None}
    else:
        doc |= {"n_obs_steps": 2, "horizon": 16, "n_action_steps": 8, "noise_scheduler_type": "DDPM",
                "num_inference_steps": None, "crop_shape": [20, 20]}
    doc |= fields
    (root / "config.json").write_text(json.dumps(doc, indent=4))
    for name in ("model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"):
        (root / name).write_text("{}")
    return root


def binding_file(tmp_path: Path, pretrained: Path, **fields) -> Path:
    doc = {"format": "sfp-lerobot-policy", "version": 1, "pretrained_model": str(pretrained), "fps": 10,
           "state_names": JOINTS} | fields
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return path


# ---- without LeRobot: detection, parsing, binding, messages -----------------------------------
def test_detects_a_lerobot_pretrained_directory(tmp_path):
    act = fake_pretrained(tmp_path / "act")
    assert is_lerobot_pretrained(act)
    assert not is_lerobot_pretrained(tmp_path)  # no config.json
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "bert"}')  # a transformers config
    assert not is_lerobot_pretrained(tmp_path / "other")
    assert not is_lerobot_pretrained(act / "config.json")  # a file
    info = read_pretrained_config(act)
    assert (info.type, info.n_obs_steps, info.chunk_len, info.pred_horizon, info.action_horizon) == ("act", 1, 10, 9, 9)
    assert (info.state_dim, info.action_dim, info.image_keys) == (3, 3, ("observation.images.front",))
    cam = info.cameras[0]
    assert (cam.name, cam.channels, cam.height, cam.width) == ("front", 3, 24, 32)
    dp = read_pretrained_config(fake_pretrained(tmp_path / "dp", "diffusion"))
    # generate_actions returns n_action_steps (8) from the current step: 7 waypoints after the anchor
    assert (dp.n_obs_steps, dp.chunk_len, dp.horizon, dp.pred_horizon, dp.action_horizon) == (2, 8, 16, 7, 7)


@pytest.mark.parametrize(("change", "match"), [
    ({"type": "smolvla"}, "'smolvla' is not supported"),
    ({"chunk_size": 1, "n_action_steps": 1}, "at least 2"),
    ({"input_features": {"observation.state": {"type": "STATE", "shape": [3]},
                         "observation.environment_state": {"type": "ENV", "shape": [4]}}}, "not supported"),
    ({"input_features": {"observation.images.front": {"type": "VISUAL", "shape": [3, 24, 32]}}}, "no 'observation.state'"),
    ({"output_features": None}, "must be mappings"),
    ({"n_obs_steps": 0}, "positive integer"),
])
def test_unsupported_configs_are_refused_by_name(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        read_pretrained_config(fake_pretrained(tmp_path / "p", **change))


def test_missing_files_are_named(tmp_path):
    p = fake_pretrained(tmp_path / "p")
    (p / "policy_postprocessor.json").unlink()
    with pytest.raises(ValueError, match="LeRobot < 0.4.*migrate_policy_normalization"):
        read_pretrained_config(p)
    (p / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="no model.safetensors"):
        read_pretrained_config(p)


def test_binding_reads_names_units_and_order(tmp_path):
    p = fake_pretrained(tmp_path / "p")
    perm = [JOINTS[2], JOINTS[0], JOINTS[1]]  # the action lists the joints in another order
    b = read_binding(binding_file(tmp_path, p, action_names=perm, scale={JOINTS[0]: 180 / math.pi}, offset=1.0))
    assert b.kind == "lerobot" and b.spec.state_names == tuple(JOINTS)
    assert b.spec.action_names == tuple(JOINTS)  # re-ordered to the state's order, by name
    assert [perm[i] for i in b.action_order] == JOINTS
    assert b.spec.data_rate_hz == 10.0 and [c.name for c in b.spec.cameras] == ["front"]
    np.testing.assert_allclose(b.state_scale, [180 / math.pi, 1, 1])
    np.testing.assert_allclose(b.action_scale, [1, 180 / math.pi, 1])  # follows the joint, LeRobot order
    np.testing.assert_allclose(b.action_offset, [1, 1, 1])
    assert is_binding_file(b.path) and not is_binding_file(p / "config.json") and not is_binding_file(p)


@pytest.mark.parametrize(("fields", "match"), [
    ({"state_names": JOINTS[:2]}, "2 names for the policy's 3-dim"),
    ({"fps": 0}, "fps"),
    ({"version": 2}, "version 2"),
    ({"scale": {JOINTS[0]: 0.0}}, "non-zero"),
    ({"scale": {"wrist": 2.0}}, "does not have"),
    ({"joint_map": {}}, "unknown fields"),
    ({"pretrained_model": "missing"}, "no such directory"),
    ({"device": "tpu"}, "device"),
])
def test_bad_bindings_are_refused_by_name(tmp_path, fields, match):
    p = fake_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match=match):
        read_binding(binding_file(tmp_path, p, **fields))


def test_make_binding_from_the_training_dataset(tmp_path, monkeypatch):
    """Names and fps from the LeRobot dataset it was trained on: --dataset, else the local copy
    train_config.json names (dataset.root, or LeRobot's cache $HF_LEROBOT_HOME/<repo_id>)."""
    p = fake_pretrained(tmp_path / "run" / "pretrained_model", state_dim=8)
    out = make_binding(p, tmp_path / "cfg" / "policy.json", dataset=FIXTURE)
    b = read_binding(out)
    assert b.spec.state_names == ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "joint7", "gripper")
    assert b.spec.data_rate_hz == 10.0
    assert not Path(json.loads(out.read_text())["pretrained_model"]).is_absolute()  # relative to the file
    assert local_training_dataset(p) is None
    (p / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "me/arm_reach", "root": None}}))
    cache = tmp_path / "hf" / "lerobot" / "me" / "arm_reach"
    cache.parent.mkdir(parents=True)
    cache.symlink_to(FIXTURE, target_is_directory=True)
    monkeypatch.delenv("HF_LEROBOT_HOME", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert local_training_dataset(p) == cache
    assert read_binding(make_binding(p, tmp_path / "a.json")).spec.state_names[-1] == "gripper"
    (p / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "x/y", "root": str(FIXTURE)}}))
    assert local_training_dataset(p) == FIXTURE
    assert read_binding(make_binding(p, tmp_path / "b.json", fps=15)).spec.data_rate_hz == 15.0
    with pytest.raises(ValueError, match="3 names for the policy's 8-dim"):
        make_binding(p, tmp_path / "c.json", joints=JOINTS, fps=10)
    assert not (tmp_path / "c.json").exists() and not (tmp_path / "c.json.tmp").exists()


def test_node_loader_explains_a_directory_and_a_missing_lerobot(tmp_path):
    """load_policy (the node's loader): a pretrained_model directory where a checkpoint is
    expected says how to bind it; a valid binding without LeRobot says how to install it."""
    p = fake_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match="sfp lerobot bind"):
        load_policy(str(p), RuntimeConfig())
    if HAS_LEROBOT:
        pytest.skip("LeRobot is installed here: the not-installed message cannot be shown")
    with pytest.raises(ImportError, match=r"LeRobot is not installed: pip install lerobot==0\.4\.4 --no-deps"):
        load_policy(str(binding_file(tmp_path, p)), RuntimeConfig())
    with pytest.raises(ImportError, match="LeRobot is not installed"):
        import_lerobot()


def test_a_lerobot_that_does_not_import_is_reported(monkeypatch):
    """Installed but broken (e.g. a torchvision that does not load): an ImportError naming the
    version and the cause. Only LeRobot's own imports are guarded."""
    monkeypatch.setattr(lp.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(lp.importlib.metadata, "version", lambda name: "0.4.4")
    monkeypatch.setitem(sys.modules, "lerobot", None)  # any import of it fails
    with pytest.raises(ImportError, match="LeRobot 0.4.4 is installed but does not import"):
        import_lerobot()


# ---- the mapping, with stand-in policy and processors -----------------------------------------
def test_frame_is_lerobots_inference_batch():
    """prepare_observation_for_inference: state (1, D) float32; images HWC uint8 -> (1, C, H, W)
    float32 / 255 (channels first); task and robot_type empty strings."""
    img = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    mono = np.arange(20, dtype=np.uint8).reshape(4, 5, 1)
    b = lerobot_frame(np.array([1.0, -2.0]), {"observation.images.a": img, "observation.images.m": mono})
    assert b["observation.state"].dtype == torch.float32 and b["observation.state"].tolist() == [[1.0, -2.0]]
    a = b["observation.images.a"]
    assert a.shape == (1, 3, 4, 5) and a.dtype == torch.float32 and 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a[0].numpy(), (img.transpose(2, 0, 1) / np.float32(255)).astype(np.float32))
    assert b["observation.images.m"].shape == (1, 1, 4, 5) and b["observation.images.m"][0, 0, 0, 1] == np.float32(1 / 255)
    assert (b["task"], b["robot_type"]) == ("", "")
    with pytest.raises(ValueError, match="uint8"):
        lerobot_frame(np.zeros(2), {"observation.images.a": img.astype(np.float32)})


class StandInACT:
    """predict_action_chunk(batch) -> (1, n, D_a): a ramp from the (normalised) state, recorded."""

    def __init__(self, n: int = 10) -> None:
        self.n, self.batches = n, []

    def predict_action_chunk(self, batch):
        self.batches.append(batch)
        state = batch["observation.state"]  # (1, D)
        return state[:, None, :] + 0.01 * torch.arange(self.n, dtype=torch.float32)[None, :, None] * torch.tensor(
            [1.0, 2.0, 3.0])


class StandInDiffusionModel:
    def __init__(self, n: int = 8) -> None:
        self.n, self.calls = n, []

    def generate_actions(self, batch, noise=None):
        self.calls.append((batch, noise))
        return noise[:, : self.n] + batch["observation.state"][:, -1:, :]


class StandInDiffusion:
    def __init__(self) -> None:
        self.diffusion = StandInDiffusionModel()


def pre(batch):  # a stand-in normaliser: state -> 2 * state - 1; images untouched
    return {**batch, "observation.state": 2 * batch["observation.state"] - 1}


def post(chunk):  # a stand-in unnormaliser
    return (chunk + 1) / 2


def test_act_chunk_maps_names_units_and_order(tmp_path):
    p = fake_pretrained(tmp_path / "p")
    perm = [JOINTS[2], JOINTS[0], JOINTS[1]]
    scale = {JOINTS[0]: 180 / math.pi, JOINTS[1]: 180 / math.pi, JOINTS[2]: 50.0}
    b = read_binding(binding_file(tmp_path, p, action_names=perm, scale=scale, offset={JOINTS[2]: 50.0}))
    act = StandInACT()
    runtime = lerobot_runtime(LeRobotChunkSource(b, act, pre, post), b, RuntimeConfig(control_rate_hz=10.0))
    assert type(runtime) is LeRobotRuntime and runtime.sampler == "queue"
    assert (runtime.obs_horizon, runtime.pred_horizon, runtime.action_horizon) == (1, 9, 9)
    state = np.array([[0.1, -0.2, 0.3]])  # robot units (rad), spec (state) order
    img = np.random.default_rng(1).integers(0, 256, (1, 24, 32, 3), dtype=np.uint8)
    plan = runtime.prepare(Observation(state, {"front": img}, 5.0))
    (batch,) = act.batches
    lerobot_state = state[0] * [180 / math.pi, 180 / math.pi, 50.0] + [0, 0, 50.0]
    np.testing.assert_allclose(batch["observation.state"][0].numpy(), 2 * lerobot_state - 1, rtol=1e-6)
    np.testing.assert_allclose(batch["observation.images.front"][0].numpy(), img[0].transpose(2, 0, 1) / 255, atol=1e-7)
    # expected: the stand-in's chunk, unnormalised, in LeRobot's action order (perm), to robot units
    chunk_n = (2 * lerobot_state - 1)[None, :] + 0.01 * np.arange(10)[:, None] * [1.0, 2.0, 3.0]
    lerobot = (chunk_n + 1) / 2  # column k is joint perm[k]
    s = np.array([scale[j] for j in perm])
    o = np.array([50.0 if j == JOINTS[2] else 0.0 for j in perm])
    robot_perm = (lerobot - o) / s
    expected = robot_perm[1:][:, [perm.index(j) for j in JOINTS]]  # first action dropped; spec order
    assert plan.actions.shape == (9, 3) and plan.stamp == 5.0
    np.testing.assert_allclose(plan.actions, expected, rtol=1e-6, atol=1e-9)
    # at control rate = data rate each tick emits the next waypoint: the chunk, executed
    runtime.reset(np.zeros(3))
    runtime.start(plan)
    got = np.array([runtime.step().action for _ in range(9)])
    np.testing.assert_allclose(got, plan.actions, atol=1e-12)
    assert runtime.step().hold


def test_diffusion_stacks_history_and_cameras_like_select_action(tmp_path):
    """T_o frames (oldest first) -> observation.state (1, T_o, D_s) and observation.images
    (1, T_o, N_cam, C, H, W), cameras in the config's order; noise (1, horizon, D_a) from the
    runtime's seeded generator (same seed, same chunks; each chunk its own noise)."""
    p = fake_pretrained(tmp_path / "p", "diffusion", cameras=(("wrist", 3, 8, 8), ("front", 3, 8, 8)))
    b = read_binding(binding_file(tmp_path, p))
    assert b.info.image_keys == ("observation.images.wrist", "observation.images.front")

    def make():
        dp = StandInDiffusion()
        return dp, lerobot_runtime(LeRobotChunkSource(b, dp, pre, post), b, RuntimeConfig(seed=7))

    dp, runtime = make()
    rng = np.random.default_rng(2)
    state = rng.normal(size=(2, 3))
    imgs = {n: rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8) for n in ("front", "wrist")}
    obs = Observation(state, imgs, 1.0)
    first, second = runtime.prepare(obs), runtime.prepare(obs)
    batch, noise = dp.diffusion.calls[0]
    assert set(batch) == {"observation.state", "observation.images"}
    np.testing.assert_allclose(batch["observation.state"][0].numpy(), 2 * state - 1, rtol=1e-6)
    stacked = batch["observation.images"]
    assert stacked.shape == (1, 2, 2, 3, 8, 8)
    for t in range(2):
        for k, name in enumerate(("wrist", "front")):
            np.testing.assert_allclose(stacked[0, t, k].numpy(), imgs[name][t].transpose(2, 0, 1) / 255, atol=1e-7)
    assert noise.shape == (1, 16, 3) and not torch.equal(noise, dp.diffusion.calls[1][1])
    assert first.actions.shape == (7, 3)
    np.testing.assert_allclose(first.actions, ((noise[0, :8].numpy() + 2 * state[-1] - 1) + 1)[1:] / 2, rtol=1e-6)
    _, again = make()
    np.testing.assert_array_equal(again.prepare(obs).actions, first.actions)
    np.testing.assert_array_equal(again.prepare(obs).actions, second.actions)


def test_samplers_select_the_executor(tmp_path):
    b = read_binding(binding_file(tmp_path, fake_pretrained(tmp_path / "p")))
    source = LeRobotChunkSource(b, StandInACT(), pre, post)
    assert type(lerobot_runtime(source, b, None)) is LeRobotRuntime
    ens = lerobot_runtime(source, b, ChunkRuntimeConfig(sampler="ensemble"))
    assert type(ens) is LeRobotEnsembleRuntime and ens.action_horizon == 1 and ens.pred_horizon == 9
    assert type(lerobot_runtime(source, b, ChunkRuntimeConfig(sampler="async"))) is LeRobotAsyncRuntime
    for bad in ("ddim", "euler", "rtc"):
        with pytest.raises(ValueError, match="queue.*ensemble or async"):
            lerobot_runtime(source, b, ChunkRuntimeConfig(sampler=bad))


def test_load_policy_builds_the_runtime_from_a_binding(tmp_path, monkeypatch):
    """The node's loader with LeRobot's loading replaced by the stand-ins: the binding file is
    dispatched, the sampler chosen, and an ACT config's temporal_ensemble_coeff becomes the
    ensembling rate."""
    p = fake_pretrained(tmp_path / "p", temporal_ensemble_coeff=0.05, n_action_steps=1)
    path = binding_file(tmp_path, p)
    monkeypatch.setattr(lp, "load_lerobot_source", lambda b: LeRobotChunkSource(b, StandInACT(), pre, post))
    policy = load_policy(str(path), ChunkRuntimeConfig(sampler="ensemble"))
    assert type(policy) is LeRobotEnsembleRuntime and policy.m == 0.05
    queue = load_policy(str(path), RuntimeConfig())
    assert type(queue) is LeRobotRuntime and queue.action_horizon == 1  # n_action_steps 1


@pytest.mark.parametrize("sampler", ["", "ensemble", "async"])
def test_lerobot_chunks_drive_the_control_loop(tmp_path, sampler):
    """100 Hz ticks, a 10 Hz observation 0.15 s old, the node's default cadence (horizon), the
    node's safety filter: finite, step-limited commands; plans at the executor's cadence."""
    b = read_binding(binding_file(tmp_path, fake_pretrained(tmp_path / "p", n_action_steps=5)))
    rate = 100.0
    config = ChunkRuntimeConfig.extend(RuntimeConfig(control_rate_hz=rate), sampler or None)
    policy = lerobot_runtime(LeRobotChunkSource(b, StandInACT(), pre, post), b, config)
    limits = SafetyLimits.from_velocity([-2.0] * 3, [2.0] * 3, [0.5] * 3, rate)
    source = LatestObservation(policy.prepare)
    loop = ControlLoop(policy, limits, LoopConfig(control_rate_hz=rate, reanchor="horizon"), source)
    pos, cmds, starts = np.zeros(3), [], 0
    for i in range(250):
        now = i / rate
        if i % 10 == 0:
            source.offer(Observation(pos[None].copy(), {"front": np.full((1, 24, 32, 3), i % 255, np.uint8)}, now - 0.15))
        out = loop.tick(now, TickInputs.simulated(pos, pos))
        starts += out.started is not None
        assert out.command is not None and np.isfinite(out.command).all() and not out.rejected
        cmds.append(out.command)
        pos = out.command
    steps = np.abs(np.diff(np.array(cmds), axis=0))
    assert (steps <= limits.max_step + 1e-12).all() and steps.max() > 0
    assert starts == (25 if sampler == "ensemble" else 5)  # every data period / every n_action_steps


# ---- with LeRobot (skipped where it does not import) ------------------------------------------
def test_real_act_matches_lerobots_own_inference(tmp_path):
    """A tiny ACT saved by LeRobot itself, loaded through a binding: our plan equals LeRobot's
    own predict_action path (prepare_observation_for_inference -> preprocessor ->
    predict_action_chunk -> postprocessor), first action dropped. Has not run on this machine."""
    pytest.importorskip("lerobot", reason="LeRobot is not installed (it does not install on Python 3.11 "
                        "with torch 2.13 CPU: pip install lerobot==0.4.4 --no-deps where it can)")
    try:
        from lerobot.configs.types import FeatureType, PolicyFeature
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy
        from lerobot.policies.factory import make_pre_post_processors
        from lerobot.policies.utils import prepare_observation_for_inference
    except (ImportError, OSError, RuntimeError) as e:
        pytest.skip(f"LeRobot is installed but does not import here: {type(e).__name__}: {e}")
    torch.manual_seed(0)
    cfg = ACTConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (3,)),
                        "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, 32, 32))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (3,))},
        chunk_size=6, n_action_steps=6, dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1,
        n_decoder_layers=1, n_vae_encoder_layers=1, pretrained_backbone_weights=None, device="cpu")
    stats = {"observation.state": {"mean": torch.tensor([0.1, 0.2, 0.3]), "std": torch.tensor([2.0, 3.0, 4.0])},
             "action": {"mean": torch.tensor([1.0, -1.0, 0.5]), "std": torch.tensor([5.0, 6.0, 7.0])},
             "observation.images.front": {"mean": torch.full((3, 1, 1), 0.4), "std": torch.full((3, 1, 1), 0.2)}}
    policy = ACTPolicy(cfg).eval()
    pre_, post_ = make_pre_post_processors(cfg, dataset_stats=stats)
    root = tmp_path / "pretrained_model"
    policy.save_pretrained(root)
    pre_.save_pretrained(root)
    post_.save_pretrained(root)
    runtime = load_policy(str(binding_file(tmp_path, root)), RuntimeConfig())
    state = np.array([[0.3, -0.1, 0.7]])
    img = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    plan = runtime.prepare(Observation(state, {"front": img}, 0.0))
    with torch.inference_mode():
        frame = prepare_observation_for_inference(
            {"observation.state": state[0].astype(np.float32), "observation.images.front": img[0]},
            torch.device("cpu"))
        want = post_(policy.predict_action_chunk(pre_(frame))[0]).numpy()
    np.testing.assert_allclose(plan.actions, want[1:], rtol=1e-5, atol=1e-6)
