"""policy/integration.py: worker integration (flow steps off the control thread, interpolated at
the control rate), without DDS. A scripted inner runtime whose path is a known curve makes every
expectation exact; the thread tests synchronise on the worker (never on wall-clock timing), and
a stuck stand-in network shows that a tick never waits for a pass.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_flow_ros.policy.control import ControlLoop, LoopConfig, TickInputs
from streaming_flow_ros.policy.integration import (
    WorkerIntegration,
    choose_stride,
    integration_values,
    integration_warning,
    with_integration,
)
from streaming_flow_ros.policy.protocol import RuntimeConfig, StepResult
from streaming_flow_ros.policy.safety import SafetyLimits
from streaming_flow_ros.spec import IOSpec

RATE = 100.0
SPEC = IOSpec(("a", "b"), ("a", "b"), (), 10.0)
LIMITS = SafetyLimits.from_velocity([-1.0, -1.0], [1.0, 1.0], [0.5, 0.5], RATE)  # 5 mrad per tick
STEP = 0.005


class Curve:
    """An inner runtime (at the coarse rate) whose plan ``p`` (a (2,) direction) is the curve
    a(t) = anchor + p sin(3 t) at flow time t = k h after k steps, used up after ``n`` steps.
    ``gate``: an Event each step waits for (a stuck network); ``fail``: step raises."""

    obs_horizon, action_horizon = 2, 8

    def __init__(self, h: float = 5 / 160, n: int = 32) -> None:
        self.spec, self.h, self.n = SPEC, h, n
        self.last: np.ndarray | None = None
        self.plan = self.a0 = None
        self.k = 0
        self.starts: list[tuple[np.ndarray, np.ndarray, float | None]] = []
        self.resets = 0
        self.gate: threading.Event | None = None
        self.fail = False
        self.steps = 0

    def prepare(self, obs):
        return np.full(2, 0.1)  # every observation: the same direction

    def reset(self, action) -> None:
        self.last, self.plan, self.resets = np.asarray(action, float).copy(), None, self.resets + 1

    def start(self, plan, measured_state=None, anchor=None, now=None) -> None:
        self.a0 = np.asarray(anchor if anchor is not None else self.last, float).copy()
        self.plan, self.k = np.asarray(plan, float), 0
        self.last = self.a0.copy()
        self.starts.append((self.plan, self.a0.copy(), now))

    def step(self) -> StepResult:
        if self.gate is not None:
            self.gate.wait(10.0)
        if self.fail:
            raise RuntimeError("boom")
        self.steps += 1
        if self.plan is None or self.k >= self.n:
            return StepResult(self.last.copy(), self.t, True)
        self.k += 1
        self.last = self.a0 + self.plan * np.sin(3 * self.t)
        return StepResult(self.last.copy(), self.t, False)

    @property
    def t(self) -> float:
        return self.k * self.h

    @property
    def last_action(self):
        return self.last


def wrap(stride: int = 5, on: str = "caller", **kw) -> tuple[WorkerIntegration, Curve]:
    inner = Curve(h=stride / 160, **kw)
    return WorkerIntegration(inner, RuntimeConfig(control_rate_hz=RATE, integrate_on=on), stride), inner


def stream(policy, n: int, sync: bool = False) -> np.ndarray:
    out = []
    for _ in range(n):
        if sync:
            assert policy.wait_ready(10.0)
        out.append(policy.step().action)
    return np.array(out)


def test_choose_stride_keeps_the_data_periods_on_the_grid():
    assert choose_stride(1e-4, 100.0, 10.0) == 1
    assert choose_stride(0.007, 100.0, 10.0) == 2  # 1.5 x 7 ms -> 2 ticks, a divisor of 10
    assert choose_stride(0.025, 100.0, 10.0) == 5  # 3.75 -> 4 -> 5
    assert choose_stride(0.040, 100.0, 10.0) == 10
    assert choose_stride(0.100, 100.0, 10.0) == 20  # beyond a data period: whole data periods
    with pytest.raises(ValueError):
        choose_stride(float("nan"), 100.0, 10.0)


def test_commands_are_the_integrated_waypoints_interpolated_per_tick():
    """Waypoint j of a plan taken over at tick c_sw is streamed at tick c_sw + j s, linear in
    between: the inner's path sampled at every tick, flow time advancing by dt per tick."""
    s = 5
    policy, inner = wrap(s)
    policy.reset([0.1, -0.2])
    policy.start([0.3, 0.2])
    ticks = stream(policy, 2 * s + 8 * s)
    c_sw = policy.delay_ticks
    assert c_sw == 2 * s
    np.testing.assert_array_equal(ticks[: c_sw], np.tile([0.1, -0.2], (c_sw, 1)))  # until the switch: the hold
    for c in range(c_sw, len(ticks) + 1):  # tick c is row c - 1
        j, f = divmod(c - c_sw, s)
        w = [np.array([0.1, -0.2]) + np.array([0.3, 0.2]) * np.sin(3 * (j + q) * s / 160) for q in (0, 1)]
        np.testing.assert_allclose(ticks[c - 1], (1 - f / s) * w[0] + f / s * w[1], atol=1e-12)
    assert policy.t == pytest.approx((len(ticks) - c_sw) / 160)  # flow time: dt = 1 / 160 per tick
    assert len(inner.starts) == 1 and inner.steps <= 9


def test_start_takes_effect_after_the_delay_with_now_advanced_and_the_anchor_carried():
    s = 2
    policy, inner = wrap(s)
    policy.reset([0.0, 0.0])
    policy.start([0.5, 0.0], now=1.0)
    before = stream(policy, 20)
    policy.start([0.0, 0.5], anchor=before[-1] + [0.01, 0.0], now=2.0)  # the filter held it 10 mrad off
    after = stream(policy, 2 * s + 6)
    assert np.abs(np.diff(np.vstack([before[-1] + [0.01, 0.0], after]), axis=0)).max() < 0.05
    (_, _, now_first), (_, a_second, now_second) = inner.starts
    assert now_first == pytest.approx(1.0 + 2 * s / RATE) and now_second == pytest.approx(2.0 + 2 * s / RATE)
    np.testing.assert_allclose(a_second, after[2 * s - 1], atol=1e-12)  # the new plan starts where the stream is
    cont, _ = wrap(s)  # the same stream without the second start: identical until the switch
    cont.reset([0.0, 0.0])
    cont.start([0.5, 0.0], now=1.0)
    ref = stream(cont, 20 + 2 * s)[20:]
    np.testing.assert_allclose(after[: 2 * s], ref + [0.01, 0.0], atol=1e-12)


def test_reset_holds_at_once_and_drops_a_pending_start():
    policy, inner = wrap(5)
    policy.reset([0.0, 0.0])
    policy.start([0.5, 0.5])
    stream(policy, 3)
    policy.reset([0.2, 0.2])
    r = policy.step()
    assert r.hold and np.array_equal(r.action, [0.2, 0.2])
    assert (stream(policy, 30) == [0.2, 0.2]).all() and len(inner.starts) == 0


def test_a_used_up_plan_holds_its_last_point():
    policy, inner = wrap(5, n=4)
    policy.reset([0.0, 0.0])
    policy.start([0.5, 0.5])
    out = [policy.step() for _ in range(10 + 4 * 5 + 10)]
    assert out[-1].hold and not out[20].hold
    np.testing.assert_allclose(out[-1].action, inner.last)


def test_a_tick_never_waits_for_a_stuck_network_and_resumes_without_a_jump():
    """The stand-in network blocks inside its pass: step() returns at once with the previous
    command (a stall); once the pass returns, the stream continues from where it held."""
    policy, inner = wrap(2, on="thread")
    policy.reset([0.0, 0.0])
    policy.start([0.5, 0.5])
    first = stream(policy, 6, sync=True)
    inner.gate = threading.Event()  # the next pass never ends until released
    held: list[StepResult] = []
    ticker = threading.Thread(target=lambda: held.extend(policy.step() for _ in range(50)))
    ticker.start()
    ticker.join(10.0)
    assert not ticker.is_alive(), "a tick waited for the network"
    assert policy.stats.stalls > 0
    values = integration_values(policy)  # what the node's /diagnostics carries
    assert values["integration_stalls"] == policy.stats.stalls and values["integration_stride"] == 2
    assert "integration worker behind" in integration_warning(values, 0)
    assert integration_warning(values, policy.stats.stalls) == ""  # no new stall since the last report
    stalled = np.array([r.action for r in held])
    assert np.abs(np.diff(np.vstack([first, stalled]), axis=0)).max() < 0.05
    assert np.array_equal(stalled[-1], stalled[-2])  # holding
    inner.gate.set()
    inner.gate = None
    resumed = stream(policy, 20, sync=True)
    steps = np.abs(np.diff(np.vstack([stalled[-1], resumed]), axis=0)).max()
    assert steps < 0.05  # no catch-up jump: the path waited
    policy.close()


def test_thread_gives_the_callers_commands_when_it_keeps_up():
    def scenario(on: str) -> np.ndarray:
        policy, _ = wrap(5, on=on)
        policy.reset([0.0, 0.1])
        out = []
        for k in range(120):
            if k % 25 == 3:
                policy.start([np.sin(k), np.cos(k)], anchor=None if k % 2 else policy.last_action + 0.002, now=k / RATE)
            if k == 77:
                policy.reset(policy.last_action)
            if on == "thread":
                assert policy.wait_ready(10.0)
            out.append(policy.step().action)
        if on == "thread":
            assert policy.stats.stalls == 0
            policy.close()
        return np.array(out)

    np.testing.assert_array_equal(scenario("thread"), scenario("caller"))


def test_a_worker_error_is_raised_from_the_next_step_and_reset_recovers():
    policy, inner = wrap(2, on="thread")
    policy.reset([0.0, 0.0])
    policy.start([0.5, 0.5])
    inner.fail = True
    with pytest.raises(RuntimeError, match="integration worker: RuntimeError: boom"):
        for _ in range(500):
            policy.wait_ready(10.0)
            policy.step()
    inner.fail = False
    policy.reset([0.1, 0.1])
    assert np.array_equal(policy.step().action, [0.1, 0.1])
    policy.close()


def test_the_thread_ends_when_the_runtime_is_dropped():
    policy, _ = wrap(2, on="thread")
    thread = policy._thread
    del policy
    thread.join(5.0)
    assert not thread.is_alive()


EVENTS = st.lists(st.tuples(st.sampled_from(["tick", "tick", "tick", "plan", "stale", "nan"]),
                            st.floats(-1.3, 1.3), st.floats(-1.3, 1.3)), min_size=20, max_size=120)


@settings(max_examples=60, deadline=None)
@given(EVENTS, st.sampled_from([1, 2, 5]))
def test_property_the_control_loop_contract_holds_with_worker_integration(events, stride):
    """Through the ControlLoop: commands finite and within one step of the previous one, within
    the limits; a stale tick holds the last command exactly; a non-finite path is rejected (the
    enable logic is the loop's own, test_control.py)."""
    policy, inner = wrap(stride)
    slot: list = []

    class Plans:
        def take(self):
            return slot.pop() if slot else None

        def discard(self):
            slot.clear()

    class P:
        def __init__(self, plan, stamp):
            self.plan, self.stamp = plan, stamp

    loop = ControlLoop(policy, LIMITS, LoopConfig(control_rate_hz=RATE, reanchor="observation"), Plans())
    prev, now, stale = None, 0.0, None
    for kind, x, y in events:
        now += 1 / RATE
        if kind == "plan":
            slot[:] = [P([x, y], now)]
        elif kind == "stale":
            stale = None if stale else "camera: no frame"
        elif kind == "nan" and inner.plan is not None:
            inner.plan = np.array([np.nan, 0.0])
        out = loop.tick(now, TickInputs(np.zeros(2), np.zeros(2), 0.0, stale, True))
        if out.command is None:
            continue
        assert np.isfinite(out.command).all() and (np.abs(out.command) <= 1.0).all()
        if prev is not None:
            assert np.abs(out.command - prev).max() <= STEP + 1e-9
            if out.stale:
                np.testing.assert_array_equal(out.command, prev)
        prev = out.command


def test_with_integration_builds_the_coarse_runtime_or_keeps_tick():
    built: list[RuntimeConfig] = []

    def build(cfg):
        built.append(cfg)
        return Curve(h=10 / (cfg.control_rate_hz * 16))

    policy = with_integration(build, RuntimeConfig(integration="worker", ticks_per_step=5, integrate_on="caller"))
    assert isinstance(policy, WorkerIntegration) and policy.stride == 5 and policy.delay_ticks == 10
    assert built[-1].control_rate_hz == 20.0 and built[-1].integration == "tick"
    assert not isinstance(with_integration(build, RuntimeConfig(integration="auto")), WorkerIntegration)  # fast: tick


def test_runtime_config_validates_the_new_fields():
    for bad in ({"integration": "async"}, {"ticks_per_step": 3}, {"integration": "worker", "ticks_per_step": -1},
                {"integrate_on": "gpu"}, {"device": "tpu"}):
        with pytest.raises(ValueError):
            RuntimeConfig(**bad)
    assert RuntimeConfig(integration="worker", ticks_per_step=3).ticks_per_step == 3


def test_real_sfp_checkpoint_worker_integration_follows_the_tick_path(tmp_path):
    """An untrained SFP checkpoint, one plan: worker integration at 5 ticks per step streams the
    tick-integrated path, D ticks later and within the coarser Euler step's error; auto keeps
    tick integration for this small net."""
    from streaming_flow_ros.checkpoint import make_untrained_checkpoint
    from streaming_flow_ros.policy.protocol import Observation
    from streaming_flow_ros.policy.streaming import StreamingFlowPolicy, load_policy

    path = make_untrained_checkpoint(tmp_path / "p.safetensors", SPEC)
    tick = load_policy(path, RuntimeConfig(control_rate_hz=RATE))
    worker = load_policy(path, RuntimeConfig(control_rate_hz=RATE, integration="worker", ticks_per_step=5,
                                             integrate_on="caller"))
    assert isinstance(tick, StreamingFlowPolicy) and isinstance(worker, WorkerIntegration)
    assert worker._policy.config.control_rate_hz == 20.0 and worker._policy.dt == pytest.approx(5 * tick.dt)
    assert isinstance(load_policy(path, RuntimeConfig(integration="auto")), StreamingFlowPolicy)
    obs = Observation(np.full((tick.obs_horizon, 2), 0.3), {}, 0.0)
    paths = []
    for policy in (tick, worker):
        policy.reset(np.zeros(2))
        policy.start(policy.prepare(obs))
        paths.append(np.array([policy.step().action for _ in range(100)]))
    D = worker.delay_ticks
    ref, got = paths[0][: 100 - D], paths[1][D:]
    moved = np.abs(ref - ref[0]).max()
    assert moved > 0.05  # the plan moves, so the comparison means something
    assert np.abs(got - ref).max() < 0.1 * moved
    assert np.abs(np.diff(paths[1], axis=0)).max() <= 1.5 * np.abs(np.diff(paths[0], axis=0)).max()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is available here")
def test_cuda_asked_for_without_cuda_is_a_clear_error(tmp_path):
    from streaming_flow_ros.checkpoint import make_untrained_checkpoint
    from streaming_flow_ros.policy.streaming import load_policy

    path = make_untrained_checkpoint(tmp_path / "p.safetensors", SPEC)
    with pytest.raises(ValueError, match="device 'cuda' asked for.*no CUDA device.*device: cpu"):
        load_policy(path, RuntimeConfig(device="cuda"))


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_cuda_policy_steps_like_the_cpu_one(tmp_path):
    from streaming_flow_ros.checkpoint import make_untrained_checkpoint
    from streaming_flow_ros.nets.model import ModelConfig
    from streaming_flow_ros.policy.protocol import Observation
    from streaming_flow_ros.policy.streaming import load_policy
    from streaming_flow_ros.spec import CameraSpec

    spec = IOSpec(("a", "b"), ("a", "b"), (CameraSpec("cam", 32, 32, 3),), 10.0)
    cfg = ModelConfig(hidden=64, depth=2, image_encoder="resnet18", num_keypoints=8, image_feat_dim=16)
    path = make_untrained_checkpoint(tmp_path / "p.safetensors", spec, config=cfg)
    rng = np.random.default_rng(0)
    obs = Observation(rng.uniform(-1, 1, (2, 2)), {"cam": rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)}, 0.0)
    out = []
    for device in ("cpu", "cuda"):
        policy = load_policy(path, RuntimeConfig(device=device))
        policy.reset(np.zeros(2))
        policy.start(policy.prepare(obs))
        out.append(np.array([policy.step().action for _ in range(20)]))
    np.testing.assert_allclose(out[1], out[0], atol=1e-4)
