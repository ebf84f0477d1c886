"""Real-time executors of FM-chunk checkpoints (baselines/executors.py, baselines/rtc.py): RTC's
soft mask, guidance weight, frozen prefix and fall-back to the plain sampler; ACT temporal
ensembling; LeRobot async aggregation on hand-computed cases; all three behind the node's
ControlLoop on a simulated clock with a real (untrained) checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _core_helpers import tiny_spec

from streaming_flow_ros.baselines.config import DPConfig, FMChunkConfig
from streaming_flow_ros.baselines.executors import (
    AsyncRuntime,
    EnsembleRuntime,
    RTCPlan,
    RTCRuntime,
    ensemble_weights,
    previous_at,
)
from streaming_flow_ros.baselines.registry import POLICY_TYPES
from streaming_flow_ros.baselines.rtc import guidance_weight, soft_mask
from streaming_flow_ros.baselines.runtime import ChunkPlan, ChunkRuntimeConfig, FMChunkRuntime
from streaming_flow_ros.baselines.train import make_untrained_baseline_checkpoint
from streaming_flow_ros.policy.control import ControlLoop, LatestObservation, LoopConfig, TickInputs
from streaming_flow_ros.policy.protocol import Observation
from streaming_flow_ros.policy.safety import SafetyLimits
from streaming_flow_ros.policy.streaming import load_policy

SMALL = {"down_dims": (16, 32), "time_emb_dim": 16, "image_channels": (8, 16), "num_keypoints": 8, "image_feat_dim": 16}
H, D = 16, 3


def obs(stamp: float, fill: int = 0) -> Observation:
    return Observation(np.zeros((2, D)), {"camera": np.full((2, 24, 24, 3), fill, np.uint8)}, stamp)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("exec")
    return str(make_untrained_baseline_checkpoint(d / "fm.safetensors", tiny_spec(), FMChunkConfig(**SMALL), seed=2))


def runtime(ckpt, sampler: str, rate: float = 10.0, **kw):
    return load_policy(ckpt, ChunkRuntimeConfig(sampler=sampler, control_rate_hz=rate, seed=3, **kw))


# -- selection ------------------------------------------------------------------------------------
def test_selected_by_sampler_and_policy_type(ckpt, tmp_path):
    for name, cls in (("fm_rtc", RTCRuntime), ("fm_ensemble", EnsembleRuntime), ("fm_async", AsyncRuntime)):
        kind, sampler = POLICY_TYPES[name]
        p = runtime(ckpt, sampler)
        assert kind == "fm_chunk" and type(p) is cls and isinstance(p, FMChunkRuntime)
        assert p.inference_steps == 10
    assert type(runtime(ckpt, "euler")) is FMChunkRuntime
    assert runtime(ckpt, "ensemble").action_horizon == 1 and runtime(ckpt, "async").action_horizon == 8
    dp = make_untrained_baseline_checkpoint(tmp_path / "dp.safetensors", tiny_spec(), DPConfig(**SMALL))
    with pytest.raises(ValueError, match="ddpm|ddim"):
        load_policy(str(dp), ChunkRuntimeConfig(sampler="rtc"))
    for bad in ({"rtc_beta": -1.0}, {"ensemble_m": math.nan}, {"async_weight": 1.5}):
        with pytest.raises(ValueError):
            ChunkRuntimeConfig(sampler="rtc", **bad)


# -- RTC math -------------------------------------------------------------------------------------
def test_soft_mask_is_the_papers_schedule():
    w = soft_mask(16, 2, 8)  # H 16, d 2, execution horizon s 8: overlap ends at H - s = 8
    assert w.shape == (16,) and (w[:2] == 1.0).all() and (w[8:] == 0.0).all()
    for i in (2, 5, 7):  # c_i = (H - s - i) / (H - s - d + 1); W_i = c_i (e^c_i - 1) / (e - 1)
        c = (16 - 8 - i) / (16 - 8 - 2 + 1)
        assert w[i] == pytest.approx(c * (math.exp(c) - 1) / (math.e - 1), rel=1e-12)
    assert (np.diff(w[1:9]) < 0).all()  # decays over the overlap
    assert soft_mask(16, 0, 8)[0] == pytest.approx(8 / 9 * math.expm1(8 / 9) / (math.e - 1))
    assert (soft_mask(16, 3, 0) == 0).all()  # empty overlap: nothing to inpaint
    assert (soft_mask(16, 12, 8)[:8] == 1).all()  # d clipped to the overlap


def test_guidance_weight_is_clipped_at_beta():
    assert guidance_weight(0.0, 5.0) == 5.0  # infinite at the noise end: clipped
    assert guidance_weight(0.5, 5.0) == pytest.approx(2.0)  # (1 - s) / (s r^2) = 0.5 / 0.25
    assert guidance_weight(0.2, 5.0) == pytest.approx((0.04 + 0.64) / 0.16)
    assert guidance_weight(0.9, 5.0) == 5.0 and guidance_weight(0.3, 0.0) == 0.0


def test_previous_at_shifts_and_interpolates():
    prev = np.arange(H, dtype=np.float64)[:, None] * np.ones((1, D))
    Y, e = previous_at(prev, 8.0)
    assert e == 8 and (Y[:8, 0] == np.arange(8, 16)).all() and (Y[8:] == 0).all()
    Y, e = previous_at(prev, 7.5)
    assert e == 8 and np.allclose(Y[:8, 0], np.arange(8) + 7.5)
    assert previous_at(prev, 16.0)[1] == 0 and previous_at(prev, -1.0)[1] == 0


# -- RTC runtime ----------------------------------------------------------------------------------
def test_rtc_freezes_the_delayed_prefix_exactly(ckpt):
    plain, rtc = runtime(ckpt, "euler"), runtime(ckpt, "rtc")
    first = rtc.prepare(obs(0.0))
    assert np.array_equal(first.actions, plain.prepare(obs(0.0)).actions)  # nothing runs yet: plain
    rtc.reset(np.zeros(D))
    rtc.start(first, now=0.2)  # 2 data periods old: d = 2
    assert rtc.delay_estimate == 2 and rtc.skipped == 2
    nxt = rtc.prepare(obs(0.8, 5))  # 8 data periods later: overlap H - s = 8
    assert isinstance(nxt, RTCPlan) and (nxt.delay, nxt.overlap, nxt.prev_stamp) == (2, 8, 0.0)
    assert np.array_equal(nxt.actions[:2], first.actions[8:10])  # frozen: the running chunk's
    unguided = plain.prepare(obs(0.8, 5))  # same noise (same seed sequence), no guidance
    gap = lambda a: np.abs(a[2:8] - first.actions[10:16]).mean()
    assert gap(nxt.actions) < 0.75 * gap(unguided.actions)  # the soft region is pulled over
    assert np.isfinite(nxt.actions).all()


@pytest.mark.parametrize("case", ["beta0", "no_overlap"])
def test_rtc_without_guidance_is_the_plain_sampler(ckpt, case):
    plain = runtime(ckpt, "euler")
    rtc = runtime(ckpt, "rtc", rtc_beta=0.0 if case == "beta0" else 5.0)
    rtc.reset(np.zeros(D))
    rtc.start(rtc.prepare(obs(0.0)), now=0.1)
    plain.prepare(obs(0.0))
    later = 0.8 if case == "beta0" else 1.6  # 16 data periods: the chunks do not overlap
    got, want = rtc.prepare(obs(later, 5)), plain.prepare(obs(later, 5))
    assert got.overlap == 0 and np.array_equal(got.actions, want.actions)


def test_rtc_start_skips_the_frozen_prefix_and_keeps_the_largest_delay(ckpt):
    rtc = runtime(ckpt, "rtc", skip_elapsed=False)  # frozen waypoints are in the past anyway
    rtc.reset(np.zeros(D))
    plan = rtc.prepare(obs(0.0))
    for now, want in ((0.3, 3), (0.1, 3), (0.05, 3)):
        rtc.start(plan, now=now)
        assert rtc.delay_estimate == want
    assert rtc.skipped == 0  # 0.05 s: no waypoint due yet (floor)
    rtc.start(plan, now=0.31)
    assert rtc.skipped == 3 and rtc.delay_estimate == 4  # ceil(3.1)


def test_integer_delays_skip_exactly_despite_float_noise(ckpt):
    """0.8 - 0.6 = 0.19999999999999996 s is 2 data periods: the plain runtime skips 2 (a bare
    floor skipped 1), RTC measures d = 2."""
    for sampler in ("euler", "rtc"):
        p = runtime(ckpt, sampler)
        p.reset(np.zeros(D))
        p.start(ChunkPlan(np.zeros((H, D)), 0.6), now=0.8)
        assert p.skipped == 2
    assert p.delay_estimate == 2


# -- ACT temporal ensembling ----------------------------------------------------------------------
def test_ensemble_weights_sum_to_one_oldest_first():
    w = ensemble_weights(5, 0.01)
    assert w.sum() == pytest.approx(1.0) and (np.diff(w) < 0).all()
    assert np.allclose(w, np.exp(-0.01 * np.arange(5)) / np.exp(-0.01 * np.arange(5)).sum())
    assert np.allclose(ensemble_weights(4, 0.0), 0.25)


def test_ensemble_of_constant_predictions_is_the_constant(ckpt):
    p = runtime(ckpt, "ensemble")
    c = np.array([0.3, -0.2, 0.1])
    p.reset(c)
    for k in range(12):  # a chunk every data period, each predicting c throughout
        p.start(ChunkPlan(np.tile(c, (H, 1)), 0.1 * k), now=0.1 * k)
        assert np.allclose(p.step().action, c, atol=1e-12)
    assert p.chunks == 12


def test_ensemble_averages_the_overlapping_predictions(ckpt):
    p = runtime(ckpt, "ensemble", ensemble_m=0.5)
    p.reset(np.zeros(D))
    p.start(ChunkPlan(np.ones((H, D)), 0.0), now=0.0)
    assert np.allclose(p.step().action, 1.0)  # one chunk at t = 0.1
    p.start(ChunkPlan(np.full((H, D), 3.0), 0.1), now=0.1)
    want = (1.0 + 3.0 * math.exp(-0.5)) / (1.0 + math.exp(-0.5))  # the oldest weighs most
    assert np.allclose(p.step().action, want)


# -- LeRobot async aggregation --------------------------------------------------------------------
@pytest.mark.parametrize("late", [0, 2])
def test_async_aggregates_the_overlap_like_lerobot(ckpt, late):
    p = runtime(ckpt, "async")  # control rate = data rate: each step emits the next waypoint
    c1 = np.arange(1, H + 1, dtype=np.float64)[:, None] * np.ones((1, D))
    c2 = 100.0 + np.arange(1, H + 1, dtype=np.float64)[:, None] * np.ones((1, D))
    p.reset(np.zeros(D))
    p.start(ChunkPlan(c1, 0.0), now=0.0)
    assert np.allclose([p.step().action[0] for _ in range(8)], c1[:8, 0])
    p.start(ChunkPlan(c2, 0.8 - 0.1 * late), now=0.8)  # observation ``late`` periods old
    n_new = H - late  # c2's waypoints still due: c2[late:]
    want = c2[late:, 0].copy()
    want[:8] = 0.3 * c1[8:, 0] + 0.7 * c2[late : late + 8, 0]  # overlap with the queue's 9..16
    assert np.allclose(p.queue.actions[:, 0], want) and np.allclose(p.queue.times, 0.9 + 0.1 * np.arange(n_new))
    got = [p.step() for _ in range(n_new + 2)]
    assert np.allclose([g.action[0] for g in got[:n_new]], want)
    assert got[-1].hold and not got[n_new - 1].hold


# -- through the node's control loop --------------------------------------------------------------
@pytest.mark.parametrize("method", ["fm_rtc", "fm_ensemble", "fm_async", "fm_chunk"])
def test_executors_drive_the_control_loop(ckpt, method):
    """100 Hz ticks, a 10 Hz observation 0.15 s old, the node's default cadence (horizon):
    finite, step-limited commands; plans start at the executor's cadence."""
    rate = 100.0
    policy = runtime(ckpt, POLICY_TYPES[method][1], rate=rate)
    limits = SafetyLimits.from_velocity([-2.0] * D, [2.0] * D, [0.5] * D, rate)
    source = LatestObservation(policy.prepare)
    loop = ControlLoop(policy, limits, LoopConfig(control_rate_hz=rate, reanchor="horizon"), source)
    pos, cmds, starts = np.zeros(D), [], 0
    for i in range(250):
        now = i / rate
        if i % 10 == 0:
            source.offer(
                Observation(np.tile(pos, (2, 1)), {"camera": np.full((2, 24, 24, 3), i % 255, np.uint8)}, now - 0.15)
            )
        out = loop.tick(now, TickInputs.simulated(pos, pos))
        starts += out.started is not None
        assert out.command is not None and np.isfinite(out.command).all() and not out.rejected
        cmds.append(out.command)
        pos = out.command
    steps = np.abs(np.diff(np.array(cmds), axis=0))
    assert (steps <= limits.max_step + 1e-12).all() and steps.max() > 0
    assert starts == (25 if method == "fm_ensemble" else 4)  # every data period / every 8
    if method == "fm_rtc":
        assert policy.delay_estimate == 2  # ceil(0.15 s x 10 Hz)
