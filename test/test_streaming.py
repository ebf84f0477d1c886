"""The streaming runtime: one flow step per tick, receding horizon, sub-steps, anchoring, holds."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from _core_helpers import tiny_spec

from streaming_flow_ros.checkpoint import make_untrained_checkpoint
from streaming_flow_ros.flow.stepper import integrate
from streaming_flow_ros.policy.protocol import Observation, RuntimeConfig
from streaming_flow_ros.policy.streaming import load_policy


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_untrained_checkpoint(tmp_path_factory.mktemp("c") / "p.safetensors", tiny_spec(), seed=3)


def obs(stamp=0.0, fill=0):
    return Observation(np.zeros((2, 3)), {"camera": np.full((2, 24, 24, 3), fill, np.uint8)}, stamp)


def test_step_is_one_euler_step_of_the_model(ckpt):
    p = load_policy(ckpt, RuntimeConfig(control_rate_hz=10.0))  # = data rate: dt = 1/H
    assert p.dt == pytest.approx(1 / 16)
    plan = p.prepare(obs())
    a0 = np.array([0.1, -0.2, 0.3])
    p.reset(a0)
    p.start(plan)
    got = np.array([p.step().action for _ in range(16)])
    # the same integration done offline on the model, in normalised units
    x0 = torch.as_tensor(p.action_norm.normalize(a0), dtype=torch.float32)[None]
    with torch.no_grad():
        traj = integrate(lambda x, t: p.model.velocity.forward_cached(x, torch.tensor([t]), plan.cache), x0, 16)
    expect = np.clip(p.action_norm.unnormalize(traj[1:, 0].numpy().astype(np.float64)), -2, 2)
    assert np.allclose(got, expect, atol=1e-5)
    r = p.step()  # plan used up at t = 1: hold
    assert r.hold and np.array_equal(r.action, got[-1]) and p.t == pytest.approx(1.0)


def test_new_observation_reanchors_at_last_command(ckpt):
    p = load_policy(ckpt, RuntimeConfig(control_rate_hz=50.0))
    p.reset(np.zeros(3))
    p.start(p.prepare(obs(1.0)))
    for _ in range(7):
        last = p.step().action
    assert p.t == pytest.approx(7 * p.dt)
    p.start(p.prepare(obs(2.0, fill=200)))
    assert p.t == 0.0 and p.plan_stamp == 2.0
    assert np.array_equal(p.last_action, last)  # anchor = last commanded action, no snap
    r = p.step()
    assert np.abs(r.action - last).max() < 0.5 and r.t == pytest.approx(p.dt)


def test_start_with_now_catches_the_flow_up_over_the_first_data_period(ckpt):
    """start(now=...) with a plan 0.1 s old (50 Hz control, 10 Hz data, H 16: 5 ticks of lag,
    m = 5 ticks per data period): the flow still starts at the anchor at t = 0, and each of the
    first 5 ticks advances it by (1 + 5/5) dt (one sub-step: 2 dt < 1/H), so after them it is at
    10 dt, on the plan's clock, and then dt per tick. Lag kept <= (H - action_horizon) data
    periods; a future or non-finite stamp, no ``now`` or skip_elapsed=False give no lag."""
    p = load_policy(ckpt, RuntimeConfig(control_rate_hz=50.0))
    plan = p.prepare(obs(2.0))
    a0 = np.array([0.1, -0.2, 0.3])
    p.reset(a0)
    p.start(plan, now=2.1)
    assert p.lag_ticks == 5 and p.t == 0.0 and np.array_equal(p.last_action, a0)
    got = np.array([p.step().action for _ in range(7)])
    assert p.t == pytest.approx(12 * p.dt)

    def v(x, t):
        with torch.no_grad():
            return p.model.velocity.forward_cached(torch.from_numpy(x)[None], torch.tensor([t]), plan.cache)[0].numpy()

    x, t, want = p.action_norm.normalize(a0).astype(np.float32), 0.0, []
    for h in [2 * p.dt] * 5 + [p.dt] * 2:
        x, t = x + h * v(x, t), t + h
        want.append(np.clip(p.action_norm.unnormalize(x.astype(np.float64)), -2, 2))
    assert np.allclose(got, want, atol=1e-5)
    steps = np.abs(np.diff(np.vstack([a0, got]), axis=0)).max(axis=1)
    assert steps.max() < 3 * steps[-1] + 1e-6  # no jump: a catch-up tick moves about 2 ticks' worth
    for now, lag in ((2.0 + 10.0, 8 * 5), (1.0, 0), (float("nan"), 0), (float("inf"), 0), (None, 0)):
        p.start(plan, now=now)
        assert p.lag_ticks == lag and p.t == 0.0, now
        r = p.step()
        assert np.isfinite(r.action).all() and r.t == pytest.approx((1 + lag / 5) * p.dt)
    q = load_policy(ckpt, RuntimeConfig(control_rate_hz=50.0, skip_elapsed=False))
    q.reset(a0)
    q.start(plan, now=2.1)
    assert q.lag_ticks == 0


def test_catch_up_at_the_data_rate_integrates_in_data_period_steps(ckpt):
    """Control at the data rate (m = 1) and 3 ticks of lag: the first tick integrates 4 Euler
    steps of 1/H from the anchor (the catch-up and the tick), then one per tick."""
    p = load_policy(ckpt, RuntimeConfig(control_rate_hz=10.0))
    plan = p.prepare(obs(1.0))
    a0 = np.array([0.3, 0.1, -0.1])
    p.reset(a0)
    p.start(plan, now=1.3)
    assert p.lag_ticks == 3
    first = p.step()
    assert first.t == pytest.approx(4 / 16)
    x = p.action_norm.normalize(a0).astype(np.float32)
    with torch.no_grad():
        for k in range(4):
            x = x + (1 / 16) * p.model.velocity.forward_cached(torch.from_numpy(x)[None], torch.tensor([k / 16]),
                                                               plan.cache)[0].numpy()
    assert np.allclose(first.action, np.clip(p.action_norm.unnormalize(x.astype(np.float64)), -2, 2), atol=1e-5)
    assert p.step().t == pytest.approx(5 / 16)


def test_substeps_integrate_the_same_flow(ckpt):
    """A faster controller takes m sub-steps per data period of the SAME flow (it does not replay
    the motion faster): read at the data-period instants, the paths converge as m grows."""
    at_data_times = {}
    for rate in (10.0, 50.0, 250.0):
        m = int(rate / 10)
        p = load_policy(ckpt, RuntimeConfig(control_rate_hz=rate, integrator="midpoint"))
        p.reset(np.zeros(3))
        p.start(p.prepare(obs()))
        acts = np.array([p.step().action for _ in range(8 * m)])
        at_data_times[rate] = acts[m - 1 :: m]
        assert p.t == pytest.approx(0.5)  # 8 data periods of a 16-period chunk, at every rate
    fine = np.abs(at_data_times[50.0] - at_data_times[250.0]).max()
    coarse = np.abs(at_data_times[10.0] - at_data_times[250.0]).max()
    assert fine < 0.005 and fine < coarse


def test_state_blend_and_state_anchor(ckpt):
    p = load_policy(ckpt, RuntimeConfig(state_blend=0.5))
    p.reset(np.zeros(3))
    plan = p.prepare(obs())
    p.start(plan, measured_state=np.array([1.0, 1.0, 1.0]))
    q = load_policy(ckpt, RuntimeConfig())
    q.reset(np.full(3, 0.5))
    q.start(plan)
    assert np.allclose(p.step().action, q.step().action, atol=1e-6)  # anchored half-way
    s = load_policy(ckpt, RuntimeConfig(anchor="state"))
    with pytest.raises(ValueError, match="anchor"):
        s.start(plan)
    s.start(plan, measured_state=np.full(3, 0.5))
    assert np.allclose(s.last_action, 0.5)


def test_holds_without_plan_and_rejects_bad_input(ckpt):
    p = load_policy(ckpt)
    with pytest.raises(RuntimeError):
        p.step()
    p.reset(np.ones(3))
    r = p.step()
    assert r.hold and np.array_equal(r.action, np.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        p.reset(np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        p.reset(np.ones(4))
    bad = Observation(np.full((2, 3), np.nan), obs().images)
    with pytest.raises(ValueError, match="non-finite"):
        p.prepare(bad)
    with pytest.raises(ValueError, match="camera"):
        p.prepare(Observation(np.zeros((2, 3)), {}))
    with pytest.raises(ValueError, match="uint8"):
        p.prepare(Observation(np.zeros((2, 3)), {"camera": np.zeros((2, 24, 24, 3), np.float32)}))


def test_bounds_are_clamped_every_step(ckpt):
    p = load_policy(ckpt, RuntimeConfig(control_rate_hz=10.0))
    p.reset(np.full(3, 1.99))
    p.start(p.prepare(obs()))
    acts = np.array([p.step().action for _ in range(16)])
    assert (acts <= 2.0).all() and (acts >= -2.0).all() and np.isfinite(acts).all()


def test_latent_and_torchscript_runtimes(tmp_path):
    from streaming_flow_ros.nets.model import ModelConfig

    cfg = ModelConfig(path="latent", sigma0=0.01, sigma1=0.1, hidden=32, depth=2, image_channels=(8,), num_keypoints=4, image_feat_dim=8)
    c = make_untrained_checkpoint(tmp_path / "l.safetensors", tiny_spec(), config=cfg)
    outs = []
    for backend, ts in (("numpy", False), ("torch", False), ("torch", True)):
        p = load_policy(c, RuntimeConfig(seed=5, backend=backend, torchscript=ts, integrator="midpoint"))
        p.reset(np.zeros(3))
        p.start(p.prepare(obs()))
        outs.append(np.array([p.step().action for _ in range(50)]))
    # same seed -> same z0; numpy == torch eager == TorchScript
    assert np.allclose(outs[0], outs[1], atol=1e-5) and np.allclose(outs[1], outs[2], atol=1e-5)


@pytest.mark.parametrize(("input_cond", "cond_dim"), [(True, 11), (False, 11), (True, 0)])
def test_numpy_velocity_matches_torch_module(input_cond, cond_dim):
    from streaming_flow_ros.nets.velocity import VelocityNet
    from streaming_flow_ros.policy.fast_velocity import NumpyVelocity

    torch.manual_seed(0)
    net = VelocityNet(x_dim=5, cond_dim=cond_dim, hidden=48, depth=3, input_cond=input_cond).eval()
    with torch.no_grad():
        for prm in net.parameters():  # non-trivial LayerNorm affines and FiLM biases
            prm.normal_(0, 0.3)
    fast = NumpyVelocity(net)
    cond = torch.randn(1, cond_dim)
    cache = net.precompute(cond)
    assert cache.shape == (1, net.cache_dim) and net.cache_dim == 3 * 2 * 48 + (48 if input_cond else 0)
    for t in (0.0, 0.37, 1.0, 0.37):  # the second 0.37 comes from the time cache
        x = torch.randn(1, 5)
        with torch.no_grad():
            ref = net.forward_cached(x, torch.tensor([t]), cache)[0].numpy()
        got = fast(x[0].numpy(), t, NumpyVelocity.cache_from_torch(cache, net.film_dim))
        assert np.allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_runtime_config_validation():
    for bad in ({"control_rate_hz": 0}, {"integrator": "rk4"}, {"anchor": "x"}, {"state_blend": 2}, {"max_flow_time": 0}):
        with pytest.raises(ValueError):
            RuntimeConfig(**bad)


def test_core_imports_no_ros():
    """The core (flow, nets, data, train, policy, checkpoint) must work with rclpy unavailable."""
    code = (
        "import sys; sys.modules['rclpy'] = None\n"
        "import streaming_flow_ros.flow.paths, streaming_flow_ros.flow.stepper, streaming_flow_ros.nets.model\n"
        "import streaming_flow_ros.train.pipeline, streaming_flow_ros.policy.streaming, streaming_flow_ros.checkpoint\n"
        "import streaming_flow_ros.data.windows, streaming_flow_ros.toy.run\n"
        "assert not any(m.startswith(('rclpy', 'sensor_msgs')) and sys.modules[m] for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_frame_feature_cache_is_exact_and_reuses_older_frames(ckpt):
    p = load_policy(ckpt)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 24, 24, 3), dtype=np.uint8)
    for i in range(3):  # sliding history: frame i+1 is newest, frame i was newest last time
        o = Observation(rng.normal(size=(2, 3)), {"camera": frames[i : i + 2]}, float(i))
        cached = p._encode(o)
        with torch.inference_mode():
            ref = p.model.encode(
                torch.as_tensor(p.state_norm.normalize(o.state), dtype=torch.float32)[None],
                {"camera": torch.from_numpy(o.images["camera"])[None]},
            )
        assert torch.allclose(cached, ref, atol=1e-6)
    assert p._encode.misses == 4 and p._encode.hits == 2  # each frame encoded once


def test_start_noise_first_only_then_deterministic(ckpt):
    plan_src = load_policy(ckpt)
    plan = plan_src.prepare(obs())
    runs = {}
    for mode in ("first", "every"):
        p = load_policy(ckpt, RuntimeConfig(start_sigma=0.2, start_noise=mode, seed=1))
        p.reset(np.zeros(3))
        p.start(plan)
        first = p.step().action
        a1 = p.last_action
        p.start(plan)  # a re-anchor: no new noise in "first" mode
        q = load_policy(ckpt, RuntimeConfig())  # deterministic reference from the same anchor
        q.reset(a1)
        q.start(plan)
        runs[mode] = (first, np.abs(p.step().action - q.step().action).max())
    assert np.abs(runs["first"][0]).max() > 1e-3  # the first start was perturbed
    assert runs["first"][1] < 1e-6  # later re-anchors are deterministic
    assert runs["every"][1] > 1e-3  # "every" perturbs each re-anchor


def test_start_with_explicit_anchor_continues_from_it(ckpt):
    p = load_policy(ckpt)
    plan = p.prepare(obs())
    p.reset(np.zeros(3))
    p.start(plan, anchor=np.full(3, 0.4))
    q = load_policy(ckpt)
    q.reset(np.full(3, 0.4))
    q.start(plan)
    assert np.allclose(p.step().action, q.step().action)
    with pytest.raises(ValueError, match="anchor"):
        p.start(plan, anchor=np.array([np.inf, 0, 0]))


def test_latent_z0_is_kept_across_reanchors_with_start_noise_first(tmp_path):
    """The latent variant's z0 chooses the mode: with start_noise "first" one z0 serves every
    plan until reset() (re-anchors keep the mode), with "every" each plan draws its own."""
    from streaming_flow_ros.nets.model import ModelConfig

    cfg = ModelConfig(path="latent", sigma0=0.01, sigma1=0.1, hidden=32, depth=2, image_channels=(8,), num_keypoints=4, image_feat_dim=8)
    c = make_untrained_checkpoint(tmp_path / "l.safetensors", tiny_spec(), config=cfg)

    def z0s(start_noise: str) -> list[np.ndarray]:
        """The first step of three plans started at the same anchor and observation (the step
        depends on z0 alone); a reset before the third."""
        p = load_policy(c, RuntimeConfig(seed=3, start_noise=start_noise))
        p.reset(np.zeros(3))
        out = []
        for i in range(3):
            if i == 2:
                p.reset(np.zeros(3))  # a new episode: a new draw
            p.start(p.prepare(obs()), anchor=np.zeros(3))
            out.append(p.step().action)
        return out

    first, every = z0s("first"), z0s("every")
    assert np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert not np.array_equal(every[0], every[1]) and not np.array_equal(every[1], every[2])
