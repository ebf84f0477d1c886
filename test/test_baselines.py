"""Chunk baselines (DP, FM-chunk): configs, U-Net shapes, training, checkpoints, the runtime
contract (prepare -> start -> step, interpolation, holds) and DDIM on a bimodal toy."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from _core_helpers import tiny_dataset, tiny_spec

from streaming_flow_ros.baselines.config import DPConfig, FMChunkConfig
from streaming_flow_ros.baselines.models import make_scheduler
from streaming_flow_ros.baselines.registry import POLICY_TYPES
from streaming_flow_ros.baselines.runtime import (
    ChunkPlan,
    ChunkRuntimeConfig,
    DPRuntime,
    FMChunkRuntime,
)
from streaming_flow_ros.baselines.train import (
    BaselineTrainConfig,
    build_baseline,
    make_untrained_baseline_checkpoint,
    train_baseline,
)
from streaming_flow_ros.baselines.unet1d import ConditionalUnet1d
from streaming_flow_ros.checkpoint import build_model, read_checkpoint
from streaming_flow_ros.data.episodes import load_dataset
from streaming_flow_ros.data.windows import WindowDataset
from streaming_flow_ros.kinds import model_kinds
from streaming_flow_ros.policy.protocol import Observation, RuntimeConfig
from streaming_flow_ros.policy.streaming import load_policy

SMALL = {"down_dims": (16, 32), "time_emb_dim": 16, "image_channels": (8, 16), "num_keypoints": 8, "image_feat_dim": 16}
CONFIGS = {"dp": DPConfig(**SMALL), "fm_chunk": FMChunkConfig(**SMALL)}


def obs(stamp=0.0, fill=0):
    return Observation(np.zeros((2, 3)), {"camera": np.full((2, 24, 24, 3), fill, np.uint8)}, stamp)


# -- configs and network ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dp", "fm_chunk"])
def test_config_round_trip_and_validation(kind):
    import json

    cfg = CONFIGS[kind]
    parse = model_kinds()[kind].config
    assert parse(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="multiple"):
        parse({**cfg.to_dict(), "pred_horizon": 15})
    with pytest.raises(ValueError, match="unknown"):
        parse({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="kind"):
        parse({**cfg.to_dict(), "kind": "sfp"})
    with pytest.raises(ValueError, match="action_horizon"):
        parse({**cfg.to_dict(), "action_horizon": 17})


@pytest.mark.parametrize("B,H,D,dims", [(1, 16, 3, (16, 32)), (3, 8, 1, (8, 16, 32)), (2, 16, 7, (32, 64, 128))])
def test_unet_shapes(B, H, D, dims):
    net = ConditionalUnet1d(D, 5, dims, time_emb_dim=16, n_groups=8)
    out = net(torch.randn(B, H, D), torch.rand(B), torch.randn(B, 5))
    assert out.shape == (B, H, D) and torch.isfinite(out).all()
    out1 = net(torch.randn(B, H, D), torch.tensor(3.0), torch.randn(B, 5))  # scalar time broadcasts
    assert out1.shape == (B, H, D)
    with pytest.raises(ValueError, match="multiple"):
        net(torch.randn(B, H + 1, D), torch.rand(B), torch.randn(B, 5))


def test_registry_is_cheap_and_complete():
    """Every checkpoint read looks its kind up in kinds.py: that must not import diffusers."""
    code = ("import sys, streaming_flow_ros.kinds as k; k.model_kinds(); "
            "assert 'diffusers' not in sys.modules, 'the kind registry imported diffusers'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(model_kinds()) == {"sfp", "dp", "fm_chunk"}
    assert {k for k, _ in POLICY_TYPES.values()} == set(model_kinds())


# -- training and checkpoints -----------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("ds") / "ds")


def _fixed_loss(model, source, seed=0):
    """Mean training loss of ``model`` (eval mode: centre crop) on fixed batches and noise."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return float(np.mean([float(model(source.batch(np.arange(i, len(source), 4)).as_dict(), gen)) for i in range(4)]))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """kind -> (checkpoint path, initial loss, final loss) after a short training run."""
    spec, episodes = load_dataset(dataset)
    out = {}
    for kind, mc in CONFIGS.items():
        cfg = BaselineTrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=5, val_fraction=0.0,
                                  threads=1, progress=False, model=mc)
        torch.manual_seed(0)
        initial = build_baseline(mc, spec)  # the same initial weights train_baseline starts from
        torch.manual_seed(0)
        path, res = train_baseline(dataset, tmp_path_factory.mktemp(kind), cfg)
        model, ck = build_model(read_checkpoint(path)), read_checkpoint(path)
        src = WindowDataset(episodes, ["camera"], mc.obs_horizon, mc.pred_horizon, ck.state_norm, ck.action_norm)
        out[kind] = (path, _fixed_loss(initial, src), _fixed_loss(model, src), res)
    return out


@pytest.mark.parametrize("kind", ["dp", "fm_chunk"])
def test_training_reduces_the_loss(trained, kind):
    _, before, after, res = trained[kind]
    assert np.isfinite(res.final_loss) and res.steps == 60
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("kind", ["dp", "fm_chunk"])
def test_checkpoint_round_trip(trained, kind):
    path = trained[kind][0]
    ck = read_checkpoint(path)
    assert ck.kind == kind and ck.model_config == CONFIGS[kind] and ck.spec == tiny_spec()
    assert ck.train["step"] == 60
    model = build_model(ck)
    assert all(torch.equal(v, ck.tensors[k]) for k, v in model.state_dict().items())
    policy = load_policy(path)
    assert isinstance(policy, model_kinds()[kind].runtime)
    plan = policy.prepare(obs())
    assert plan.actions.shape == (16, 3) and np.isfinite(plan.actions).all()


# -- runtime contract -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("untrained")
    return {k: make_untrained_baseline_checkpoint(d / f"{k}.safetensors", tiny_spec(), c, seed=2) for k, c in CONFIGS.items()}


def test_sampler_selection(ckpts):
    p = load_policy(ckpts["dp"], RuntimeConfig())  # the node's plain config: DDIM-10 by default
    assert isinstance(p, DPRuntime) and (p.sampler, p.inference_steps) == ("ddim", 10)
    p = load_policy(ckpts["dp"], ChunkRuntimeConfig(sampler="ddpm"))
    assert (p.sampler, p.inference_steps, len(p.scheduler.timesteps)) == ("ddpm", 100, 100)
    p = load_policy(ckpts["dp"], ChunkRuntimeConfig.extend(RuntimeConfig(control_rate_hz=50.0), "ddim", 5))
    assert p.config.control_rate_hz == 50.0 and len(p.scheduler.timesteps) == 5
    f = load_policy(ckpts["fm_chunk"])
    assert isinstance(f, FMChunkRuntime) and (f.sampler, f.inference_steps) == ("euler", 10)
    with pytest.raises(ValueError, match="euler"):
        load_policy(ckpts["fm_chunk"], ChunkRuntimeConfig(sampler="ddim"))
    with pytest.raises(ValueError, match="sampler"):
        ChunkRuntimeConfig(sampler="dpm")


@pytest.mark.parametrize("kind", ["dp", "fm_chunk"])
def test_one_waypoint_per_tick_at_data_rate_then_hold(ckpts, kind):
    p = load_policy(ckpts[kind], ChunkRuntimeConfig(control_rate_hz=10.0))
    plan = p.prepare(obs())
    assert isinstance(plan, ChunkPlan) and plan.actions.shape == (16, 3)
    assert np.isfinite(plan.actions).all() and (np.abs(plan.actions) <= 2.0).all()
    p.reset(np.array([0.1, -0.2, 0.3]))
    assert p.t == 0.0 and p.step().hold  # no plan yet: hold the anchor
    p.start(plan)
    got = [p.step() for _ in range(8)]
    assert not any(r.hold for r in got)
    assert np.allclose([r.action for r in got], plan.actions[:8])
    assert np.allclose([r.t for r in got], np.arange(1, 9) / 16)
    r = p.step()  # action_horizon waypoints used: hold the last one
    assert r.hold and np.array_equal(r.action, plan.actions[7]) and r.t == pytest.approx(0.5)


def test_waypoints_that_passed_while_sampling_are_skipped(ckpts):
    """start(now=...) skips the waypoints whose time passed since the observation (10 Hz data:
    0.35 s -> 3), keeps action_horizon of them; skip_elapsed=False or no ``now`` skips none."""
    p = load_policy(ckpts["dp"], ChunkRuntimeConfig(control_rate_hz=10.0))
    plan = p.prepare(obs())
    p.reset(np.zeros(3))
    p.start(plan, now=plan.stamp + 0.35)
    assert p.skipped == 3
    assert np.allclose([p.step().action for _ in range(8)], plan.actions[3:11])
    p.start(plan, now=plan.stamp + 5.0)  # very stale: at most pred - action horizon skipped
    assert p.skipped == 8 and np.allclose(p.step().action, plan.actions[8])
    p.start(plan, now=plan.stamp - 1.0)  # a stamp in the future skips nothing
    assert p.skipped == 0
    q = load_policy(ckpts["dp"], ChunkRuntimeConfig(control_rate_hz=10.0, skip_elapsed=False))
    q.reset(np.zeros(3))
    q.start(plan, now=plan.stamp + 0.35)
    assert q.skipped == 0 and np.allclose(q.step().action, plan.actions[0])


@pytest.mark.parametrize("kind", ["dp", "fm_chunk"])
def test_interpolation_at_control_rate_visits_the_waypoints(ckpts, kind):
    p = load_policy(ckpts[kind], ChunkRuntimeConfig(control_rate_hz=50.0))  # m = 5 ticks per waypoint
    plan = p.prepare(obs())
    anchor = np.zeros(3)
    p.reset(anchor)
    p.start(plan)
    acts = np.array([p.step().action for _ in range(40)])
    assert np.allclose(acts[4::5], plan.actions[:8])  # every 5th tick lands on a waypoint
    assert np.allclose(acts[0], anchor + 0.2 * (plan.actions[0] - anchor))  # starts at the anchor
    w = np.vstack([anchor, plan.actions[:8]])
    expect = np.array([w[j] + (i / 5) * (w[j + 1] - w[j]) for j in range(8) for i in range(1, 6)])
    assert np.allclose(acts, expect)
    assert p.step().hold
    # a non-integer ratio still ends exactly on the last waypoint
    q = load_policy(ckpts[kind], ChunkRuntimeConfig(control_rate_hz=25.0))
    q.reset(anchor)
    q.start(plan)
    res = []
    while not (r := q.step()).hold:
        res.append(r)
    assert len(res) == 20 and np.allclose(res[-1].action, plan.actions[7])


def test_restart_reanchors_at_last_command_and_prepare_is_pure(ckpts):
    p = load_policy(ckpts["dp"], ChunkRuntimeConfig(control_rate_hz=50.0))
    p.reset(np.zeros(3))
    p.start(p.prepare(obs(1.0)))
    for _ in range(7):
        last = p.step().action
    t_before = p.t
    plan2 = p.prepare(obs(2.0, fill=200))  # must not touch the rollout state
    assert p.t == t_before and np.array_equal(p.last_action, last)
    p.start(plan2)
    assert p.t == 0.0 and p.plan_stamp == 2.0
    assert np.allclose(p.step().action, last + 0.2 * (plan2.actions[0] - last))


def test_anchor_options_and_plan_budget(ckpts):
    p = load_policy(ckpts["fm_chunk"], ChunkRuntimeConfig(control_rate_hz=10.0, max_flow_time=0.25))
    p.reset(np.zeros(3))
    plan = p.prepare(obs())
    p.start(plan)
    assert sum(not p.step().hold for _ in range(10)) == 4  # min(action_horizon / H, max_flow_time)
    s = load_policy(ckpts["fm_chunk"], ChunkRuntimeConfig(control_rate_hz=20.0, anchor="state"))
    with pytest.raises(ValueError, match="anchor"):
        s.start(plan)
    s.start(plan, measured_state=np.full(3, 0.5))
    assert np.allclose(s.step().action, 0.5 + 0.5 * (plan.actions[0] - 0.5))
    b = load_policy(ckpts["fm_chunk"], ChunkRuntimeConfig(control_rate_hz=10.0, state_blend=0.5))
    b.reset(np.zeros(3))
    b.start(plan, measured_state=np.ones(3))
    assert np.allclose(b.last_action, 0.0)  # the anchor is blended, the last command is not
    assert np.allclose(b.step().action, plan.actions[0])


def test_seeded_sampling_and_bad_input(ckpts):
    plans = [load_policy(ckpts["dp"], ChunkRuntimeConfig(seed=s)).prepare(obs()).actions for s in (1, 1, 2)]
    assert np.array_equal(plans[0], plans[1]) and not np.allclose(plans[0], plans[2])
    p = load_policy(ckpts["dp"])
    with pytest.raises(RuntimeError):
        p.step()
    with pytest.raises(ValueError, match="ChunkPlan"):
        p.start(object())
    with pytest.raises(ValueError, match="camera"):
        p.prepare(Observation(np.zeros((2, 3)), {}))
    with pytest.raises(ValueError, match="non-finite"):
        p.reset(np.array([np.nan, 0.0, 0.0]))


# -- scheduler sanity on a bimodal toy --------------------------------------------------------
def test_ddim_samples_both_modes_of_a_bimodal_toy():
    """Two demo chunks (to +1 or -1, half each): DDIM-10 on a briefly trained DP must produce
    both, and rarely the average (a wrong scheduler use collapses or blurs the modes)."""
    from streaming_flow_ros.spec import IOSpec
    from streaming_flow_ros.toy import tasks
    from streaming_flow_ros.toy.run import ChunkSource
    from streaming_flow_ros.train.trainer import train

    task = tasks.bifurcation(H=16, n=256)
    mc = DPConfig(obs_horizon=1, down_dims=(16, 32), time_emb_dim=16)
    torch.manual_seed(0)
    model = build_baseline(mc, IOSpec((), ("x",), data_rate_hz=16.0))
    cfg = BaselineTrainConfig(steps=250, batch_size=64, lr=3e-3, warmup_steps=20, threads=1, progress=False, model=mc)
    ema = train(model, ChunkSource(task.demos, 1), cfg).ema
    x = ema.sample(torch.zeros(200, 0), make_scheduler(mc, "ddim", 10), torch.Generator().manual_seed(1))
    end = x[:, -1, 0].numpy()
    plus, minus, averaged = (end > 0.5).mean(), (end < -0.5).mean(), (np.abs(end) < 0.3).mean()
    assert plus > 0.2 and minus > 0.2 and averaged < 0.15, (plus, minus, averaged)
