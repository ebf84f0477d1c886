"""The mode latent (ModelConfig.mode_dim, ACT's CVAE): its conditioning, its runtime draw, and
that training with it turns a two-mode demo set into flows that follow one mode each."""

import numpy as np
import pytest
import torch
from _core_helpers import tiny_spec

from streaming_flow_ros.checkpoint import make_untrained_checkpoint
from streaming_flow_ros.flow.stepper import integrate
from streaming_flow_ros.nets.model import ModelConfig, SFPModel
from streaming_flow_ros.policy.protocol import Observation, RuntimeConfig
from streaming_flow_ros.policy.streaming import load_policy

SMALL = {"hidden": 32, "depth": 2, "image_channels": (8,), "num_keypoints": 4, "image_feat_dim": 8}


def obs(stamp=0.0, fill=0):
    return Observation(np.zeros((2, 3)), {"camera": np.full((2, 24, 24, 3), fill, np.uint8)}, stamp)


@pytest.mark.parametrize(("kw", "match"), [({"mode_dim": -1}, "mode_dim"), ({"mode_dim": 2.5}, "mode_dim"),
                                           ({"mode_dim": True}, "mode_dim"), ({"mode_beta": float("nan")}, "mode_beta"),
                                           ({"mode_dim": 2, "path": "latent", "sigma1": 0.2}, "stabilizing"),
                                           ({"mode_prior": "uniform"}, "mode_prior"),
                                           ({"mode_dim": 2, "mode_prior": "bank"}, "episode"),
                                           ({"mode_dim": 2, "mode_source": "episode"}, "bank"),
                                           ({"mode_source": "future"}, "mode_source"),
                                           ({"mode_bank_size": 0}, "mode_bank_size")])
def test_config_rejects_bad_mode_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kw)


def test_mode_cache_is_the_z_part_of_the_conditioning():
    torch.manual_seed(0)
    m = SFPModel(ModelConfig(mode_dim=3, **SMALL), tiny_spec())
    cond, z = torch.randn(4, m.encoder.cond_dim), torch.randn(4, 3)
    whole = m.velocity.precompute(m.with_mode(cond, z))
    assert torch.allclose(whole, m.velocity.precompute(m.with_mode(cond)) + m.mode_cache(z), atol=1e-5)
    assert m.with_mode(cond).shape == (4, m.encoder.cond_dim + 3)


@pytest.fixture(scope="module")
def mode_ckpt(tmp_path_factory):
    cfg = ModelConfig(mode_dim=2, **SMALL)
    return make_untrained_checkpoint(tmp_path_factory.mktemp("m") / "m.safetensors", tiny_spec(), config=cfg, seed=1)


def test_runtime_steps_the_field_conditioned_on_its_drawn_z(mode_ckpt):
    outs = []
    for backend in ("numpy", "torch"):
        p = load_policy(mode_ckpt, RuntimeConfig(control_rate_hz=10.0, seed=4, backend=backend))
        plan = p.prepare(obs())
        p.reset(np.zeros(3))
        p.start(plan)
        outs.append(np.array([p.step().action for _ in range(8)]))
        z = torch.as_tensor(p.mode_latent, dtype=torch.float32)[None]
        with torch.no_grad():  # the plan's per-observation part + z's (linear: the test above)
            cache = plan.cache + p.model.mode_cache(z)
            x0 = torch.as_tensor(p.action_norm.normalize(np.zeros(3)), dtype=torch.float32)[None]
            traj = integrate(lambda x, t, v=p.model.velocity, c=cache: v.forward_cached(x, torch.tensor([t]), c), x0, 16)
        expect = p.action_norm.unnormalize(traj[1:9, 0].numpy().astype(np.float64))
        assert np.allclose(outs[-1], expect, atol=1e-4)
    assert np.allclose(outs[0], outs[1], atol=1e-5)  # numpy == torch, same seed -> same z


def test_mode_draw_is_kept_across_reanchors_and_redrawn_per_enable(mode_ckpt):
    """Each plan's z = mean(h) + std(h) x draw, from its own observation's prior; the draw is
    kept across re-anchors with start_noise "first" (the episode's mode) and made anew per enable,
    or per plan with "every"."""
    def draws(start_noise):
        p = load_policy(mode_ckpt, RuntimeConfig(seed=3, start_noise=start_noise))
        assert p.mode_latent is None
        p.reset(np.zeros(3))
        out = []
        for i, fill in enumerate((0, 200, 0)):
            if i == 2:
                p.reset(np.zeros(3))  # a new enable: a new draw
            plan = p.prepare(obs(fill=fill))
            p.start(plan, anchor=np.zeros(3))
            mean, std = plan.mode_prior
            out.append((p.mode_latent - mean) / std)
        return out

    first, every = draws("first"), draws("every")
    assert np.allclose(first[0], first[1]) and not np.allclose(first[1], first[2])
    assert not np.allclose(every[0], every[1]) and not np.allclose(every[1], every[2])


def _two_mode_batch(n, H, gen):
    """One observation; demo chunks that hold 0 for half the chunk, then ramp to +0.6 or -0.6 in
    every action channel (50/50): modes that part late, and whose mean (0) is no demo."""
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, 1.0, -1.0)
    ramp = torch.clamp(2.0 * (torch.linspace(0, 1, H + 1) - 0.5), min=0.0)
    chunk = 0.6 * sign[:, None, None] * ramp[None, :, None].expand(n, H + 1, 3)
    return {"state_n": torch.zeros(n, 2, 3), "images": {"camera": torch.zeros(n, 2, 24, 24, 3, dtype=torch.uint8)},
            "chunk_n": chunk, "end_n": chunk[:, -1]}  # each window its own episode, ending on its ramp


def _trained_on_two_modes(prior):
    """A small model with a two-dimensional (or two-class) mode latent, 300 Adam steps on the
    two ramps; returns (model in eval mode, its conditioning of the one observation, generator)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    source = "episode" if prior == "bank" else "chunk"
    model = SFPModel(ModelConfig(mode_dim=2, sigma0=0.05, k=5.0, flow_samples=8, mode_beta=1e-3, mode_prior=prior,
                                 mode_source=source, hidden=64, depth=2, image_channels=(4,), num_keypoints=2,
                                 image_feat_dim=4), tiny_spec())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model.loss(_two_mode_batch(64, 16, gen), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    if prior == "bank":
        model.fill_mode_bank(_two_mode_batch(64, 16, gen)["end_n"])
    with torch.no_grad():
        cond = model.encode(torch.zeros(1, 2, 3), {"camera": torch.zeros(1, 2, 24, 24, 3, dtype=torch.uint8)})
    return model, cond, gen


def _flow_ends(model, cond, zs):
    """Mean action channel at flow time 1 of the deterministic flow from 0, one per z."""
    ends = []
    with torch.no_grad():
        for z in zs:
            cache = model.velocity.precompute(model.with_mode(cond, z[None]))
            traj = integrate(lambda x, t, c=cache: model.velocity.forward_cached(x, torch.tensor([t]), c), torch.zeros(1, 3), 16)
            ends.append(float(traj[-1, 0].mean()))
    return np.array(ends)


@pytest.mark.parametrize("prior", ["standard", "learned", "flow", "bank"])
def test_training_with_a_mode_latent_follows_one_mode_per_draw(prior):
    """Trained on the two late-parting ramps, the deterministic flow from the shared start
    follows one ramp per draw of z from the prior, both among 16 draws, and the same z the same one."""
    model, cond, gen = _trained_on_two_modes(prior)
    with torch.no_grad():
        zs = model.mode_prior_draw(cond.expand(16, -1), torch.randn(16, 2, generator=gen))  # draws from the prior
    ends = _flow_ends(model, cond, [*zs, zs[0]])
    assert (np.abs(ends) > 0.4).mean() >= 0.8, ends  # on a ramp's end, not between them
    assert (ends > 0.4).any() and (ends < -0.4).any(), ends  # both modes
    assert ends[-1] == pytest.approx(ends[0], abs=1e-6)  # z decides: the same z, the same end


@pytest.mark.parametrize("prior", ["learned", "flow", "bank"])
def test_pipeline_trains_logs_the_kl_and_the_checkpoint_runs(tmp_path, prior):
    """``sfp train``'s pipeline with a mode latent: the KL (and a flow prior's loss) is logged
    next to the loss, the checkpoint (safetensors + JSON) loads with its mode encoder and prior
    and the runtime steps it."""
    import json

    from _core_helpers import tiny_dataset

    from streaming_flow_ros.checkpoint import read_checkpoint
    from streaming_flow_ros.train.config import TrainConfig
    from streaming_flow_ros.train.pipeline import train_from_dataset

    cfg = TrainConfig(steps=60, batch_size=32, warmup_steps=5, save_every=60, eval_every=60, progress=False,
                      model=ModelConfig(mode_dim=3, mode_prior=prior, mode_source="episode" if prior == "bank" else "chunk",
                                        **SMALL))
    path, _ = train_from_dataset(tiny_dataset(tmp_path / "ds"), tmp_path / "run", cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["kl"]) and r["kl"] >= 0 for r in log)
    assert all(np.isfinite(r["prior"]) and r["prior"] >= 0 for r in log) if prior == "flow" else "prior" not in log[-1]
    assert read_checkpoint(path).model_config.mode_prior == prior
    p = load_policy(path, RuntimeConfig())
    p.reset(np.zeros(3))
    p.start(p.prepare(obs()))
    assert np.isfinite(p.step().action).all() and p.mode_latent.shape == (3,)
    if prior == "bank":  # the saved bank: q's codes of the training episodes' ends; z is one of them
        bank = p.model.mode_bank.numpy()
        assert bank.shape == (64, 3) and np.isfinite(bank).all() and np.abs(bank).max() > 0
        assert np.abs(bank - p.mode_latent).sum(1).min() < 1e-6
        assert len({tuple(np.round(b, 6)) for b in bank}) > 1  # the episodes differ, so do their codes


def test_config_without_a_mode_latent_is_written_as_before():
    d = ModelConfig(**SMALL).to_dict()
    assert "mode_dim" not in d and "mode_beta" not in d and "mode_prior" not in d and ModelConfig.from_dict(d) == ModelConfig(**SMALL)
    m = ModelConfig(mode_dim=2, mode_beta=0.01, **SMALL)
    assert ModelConfig.from_dict(m.to_dict()) == m


def test_categorical_mode_latent_trains_one_class_per_mode_and_runs(tmp_path):
    """mode_prior "categorical": the flow loss summed over classes weighted by q; trained on the
    two late-parting ramps, each class's flow ends on one ramp (a different one per class) and
    the prior splits between them; the runtime draws a one-hot z, kept across re-anchors."""
    model, cond, _ = _trained_on_two_modes("categorical")
    with torch.no_grad():
        probs = model.mode_prior_logits(cond)[0].exp()
    ends = _flow_ends(model, cond, torch.eye(2))
    assert sorted(np.sign(ends)) == [-1.0, 1.0] and min(abs(e) for e in ends) > 0.4, ends
    assert 0.3 < float(probs[0]) < 0.7, probs

    c = make_untrained_checkpoint(tmp_path / "c.safetensors", tiny_spec(), config=ModelConfig(
        mode_dim=3, mode_prior="categorical", **SMALL))
    p = load_policy(c, RuntimeConfig(seed=2))
    p.reset(np.zeros(3))
    zs = []
    for fill in (0, 0, 200):
        plan = p.prepare(obs(fill=fill))
        assert plan.mode_probs.shape == (3,) and plan.mode_probs.sum() == pytest.approx(1.0)
        p.start(plan, anchor=np.zeros(3))
        zs.append(p.mode_latent)
        assert np.isfinite(p.step().action).all()
    assert all(z.sum() == 1.0 and set(z) <= {0.0, 1.0} for z in zs) and np.array_equal(zs[0], zs[1])


def test_flow_prior_runtime_reads_one_draw_through_each_plans_flow(tmp_path):
    """mode_prior "flow": a plan keeps its observation's features; start() carries the episode's
    standard normal draw through that plan's prior flow (the same draw across re-anchors, a new
    one per enable), and the field is stepped conditioned on the z it gives."""
    cfg = ModelConfig(mode_dim=2, mode_prior="flow", mode_prior_steps=4, **SMALL)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg and "mode_prior_steps" not in ModelConfig(mode_dim=2, **SMALL).to_dict()
    c = make_untrained_checkpoint(tmp_path / "f.safetensors", tiny_spec(), config=cfg, seed=5)
    p = load_policy(c, RuntimeConfig(seed=2))
    p.reset(np.zeros(3))
    draws = []
    for i, fill in enumerate((0, 200, 0)):
        if i == 2:
            p.reset(np.zeros(3))
        plan = p.prepare(obs(fill=fill))
        assert plan.mode_prior is None and plan.mode_cond is not None
        p.start(plan, anchor=np.zeros(3))
        assert np.isfinite(p.step().action).all()
        with torch.no_grad():
            z = p.model.mode_prior_sample(plan.mode_cond, torch.from_numpy(p._mode_draw)[None].float())[0].numpy()
        assert np.allclose(p.mode_latent, z, atol=1e-5)
        draws.append(p._mode_draw.copy())
    assert np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
    plan = p.prepare(obs(fill=200))  # the episode has its draw: prepare() integrates z off the control thread
    assert plan.mode_z[0] is p._mode_draw and not np.array_equal(plan.mode_z[1], p.mode_latent)  # a new h, a new z
    p.start(plan, anchor=np.zeros(3))
    assert np.array_equal(p.mode_latent, plan.mode_z[1])
    with pytest.raises(ValueError, match="mode_prior_sample"):
        p.model.mode_prior(plan.mode_cond)


@pytest.mark.parametrize("steps", [0, 101, 2.0, True])
def test_config_rejects_bad_prior_steps(steps):
    with pytest.raises(ValueError, match="mode_prior_steps"):
        ModelConfig(mode_dim=2, mode_prior="flow", mode_prior_steps=steps)
