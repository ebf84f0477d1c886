"""The simulated arm: kinematics, servo lag and limits, JTC and forward command semantics.
All times are simulated (deterministic), never wall-clock."""

import math

import numpy as np
import pytest

from streaming_flow_ros.sim.arm import (
    ArmConfig,
    JointTrajectory,
    SimArm,
    TrajectoryPoint,
    forward_kinematics,
    point_segment_distance,
)

NAMES = ("joint1", "joint2", "joint3")
Q0 = np.array([0.2, -0.3, 0.4])
Q1 = np.array([0.6, 0.1, -0.2])


def traj(*points, names=NAMES, stamp=0.0):
    return JointTrajectory(tuple(names), tuple(points), stamp)


def pt(q, tfs, v=None):
    return TrajectoryPoint(positions=list(q), time_from_start=tfs, velocities=None if v is None else list(v))


def run_for(arm, seconds):
    arm.step(round(seconds / arm.dt))


def test_forward_kinematics_geometry():
    cfg = ArmConfig()
    pts = forward_kinematics(cfg, np.zeros(3))
    assert pts.shape == (4, 2)
    np.testing.assert_allclose(pts[-1], [0.0, cfg.reach], atol=1e-12)  # q = 0: straight forward
    pts = forward_kinematics(cfg, np.array([math.pi / 2, 0.0, 0.0]))
    np.testing.assert_allclose(pts[-1], [-cfg.reach, 0.0], atol=1e-12)  # + rotates to the left
    batch = forward_kinematics(cfg, np.zeros((5, 7, 3)))
    assert batch.shape == (5, 7, 4, 2)
    assert 0.95 <= cfg.reach <= 1.05
    d = point_segment_distance(np.array([0.0, 1.0]), np.array([-1.0, 0.0]), np.array([1.0, 0.0]))
    assert d == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"joint_names": ("a", "a", "b")},
        {"link_lengths": (0.4, 0.3)},
        {"lower": (1.0, -1.0, -1.0), "upper": (0.5, 1.0, 1.0)},
        {"home": (9.0, 0.0, 0.0)},
        {"max_velocity": (0.0, 1.0, 1.0)},
        {"physics_rate_hz": 20.0},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ArmConfig(**kwargs)


def test_holds_without_command():
    arm = SimArm(q0=Q0)
    run_for(arm, 1.0)
    np.testing.assert_allclose(arm.q, Q0, atol=1e-12)
    assert arm.mode == "hold"


def test_jtc_stamp_zero_interpolates_linearly_over_time_from_start():
    arm = SimArm(q0=Q0)
    run_for(arm, 0.1)
    assert arm.command_trajectory(traj(pt(Q1, 1.0))).accepted
    run_for(arm, 0.25)
    np.testing.assert_allclose(arm.desired_q, Q0 + 0.25 * (Q1 - Q0), atol=1e-9)
    np.testing.assert_allclose(arm.desired_qd, Q1 - Q0, atol=1e-9)  # slope over 1 s
    run_for(arm, 0.75)
    np.testing.assert_allclose(arm.desired_q, Q1, atol=1e-9)
    # With velocity feed-forward the servo tracks a ramp closely.
    assert np.abs(arm.q - Q1).max() < 0.02


def test_jtc_cubic_when_velocities_given():
    arm = SimArm(q0=Q0)
    assert arm.command_trajectory(traj(pt(Q1, 1.0, v=np.zeros(3)))).accepted
    run_for(arm, 0.25)
    s = 0.25
    h01 = -2 * s**3 + 3 * s**2  # cubic Hermite with zero end velocities
    np.testing.assert_allclose(arm.desired_q, Q0 + h01 * (Q1 - Q0), atol=1e-9)
    run_for(arm, 0.75)
    np.testing.assert_allclose(arm.desired_q, Q1, atol=1e-9)
    np.testing.assert_allclose(arm.desired_qd, 0.0, atol=1e-9)


def test_jtc_multi_point_and_joint_name_mapping():
    arm = SimArm(q0=Q0)
    order = [2, 0, 1]
    names = tuple(NAMES[i] for i in order)
    q_mid = np.array([0.3, 0.3, 0.3])
    msg = traj(pt(q_mid[order], 0.5), pt(Q1[order], 1.0), names=names)
    assert arm.command_trajectory(msg).accepted
    run_for(arm, 0.5)
    np.testing.assert_allclose(arm.desired_q, q_mid, atol=1e-9)
    run_for(arm, 0.25)
    np.testing.assert_allclose(arm.desired_q, 0.5 * (q_mid + Q1), atol=1e-9)


def test_jtc_replace_on_new_message_starts_from_desired_state():
    arm = SimArm(q0=Q0)
    assert arm.command_trajectory(traj(pt(Q1, 1.0))).accepted
    run_for(arm, 0.5)
    mid = Q0 + 0.5 * (Q1 - Q0)
    np.testing.assert_allclose(arm.desired_q, mid, atol=1e-9)
    q2 = np.array([-0.2, 0.5, 0.0])
    assert arm.command_trajectory(traj(pt(q2, 0.5))).accepted
    np.testing.assert_allclose(arm.desired_q, mid, atol=1e-9)  # no jump at arrival
    run_for(arm, 0.25)
    np.testing.assert_allclose(arm.desired_q, 0.5 * (mid + q2), atol=1e-9)  # old goal Q1 forgotten


def test_jtc_streaming_one_point_messages_is_continuous():
    arm = SimArm(q0=Q0)
    last = arm.desired_q
    for k in range(1, 21):  # 10 Hz stream, each point one period ahead
        goal = Q0 + (Q1 - Q0) * min(k / 10, 1.0)
        assert arm.command_trajectory(traj(pt(goal, 0.1))).accepted
        for _ in range(50):
            arm.step()
            assert np.abs(arm.desired_q - last).max() < 0.01  # no jumps between physics steps
            last = arm.desired_q
    np.testing.assert_allclose(arm.q, Q1, atol=1e-3)


def test_jtc_holds_last_point_after_the_end():
    arm = SimArm(q0=Q0)
    assert arm.command_trajectory(traj(pt(Q1, 0.2))).accepted
    run_for(arm, 3.0)
    np.testing.assert_allclose(arm.desired_q, Q1, atol=1e-12)
    np.testing.assert_allclose(arm.desired_qd, 0.0)
    np.testing.assert_allclose(arm.q, Q1, atol=1e-6)
    assert np.abs(arm.qd).max() < 1e-6


def test_jtc_future_stamp_waits_then_runs():
    arm = SimArm(q0=Q0)
    run_for(arm, 1.0)
    assert arm.command_trajectory(traj(pt(Q1, 0.5), stamp=arm.time + 0.5)).accepted
    run_for(arm, 0.4)
    np.testing.assert_allclose(arm.desired_q, Q0, atol=1e-12)  # not started yet
    run_for(arm, 1.0)
    np.testing.assert_allclose(arm.desired_q, Q1, atol=1e-9)


@pytest.mark.parametrize(
    "msg, why",
    [
        (traj(TrajectoryPoint([0.1, 0.2], 0.5)), "positions"),
        (traj(TrajectoryPoint([0.1, 0.2, 0.3], 0.5, [0.0])), "velocities"),
        (traj(pt([0.1, math.nan, 0.3], 0.5)), "non-finite"),
        (traj(pt([0.1, 0.2, math.inf], 0.5)), "non-finite"),
        (traj(pt(Q1, 0.0)), "time_from_start 0"),
        (traj(pt(Q1, -0.1)), "negative"),
        (traj(pt(Q1, 0.5), pt(Q0, 0.5)), "strictly increasing"),
        (traj(pt(Q1, 0.5, v=[0.0, 0.1, 0.0])), "velocity of the last point"),
        (traj(pt(Q1, 0.5), names=("joint1", "joint2", "elbow")), "unknown"),
        (traj(TrajectoryPoint([0.1, 0.2], 0.5), names=("joint1", "joint2")), "partial"),
        (traj(pt(Q1, 0.5), names=("joint1", "joint1", "joint2")), "duplicate"),
        (traj(), "empty"),
    ],
)
def test_jtc_rejects_malformed_and_keeps_running(msg, why):
    arm = SimArm(q0=Q0)
    assert arm.command_trajectory(traj(pt(Q1, 1.0))).accepted
    run_for(arm, 0.5)
    result = arm.command_trajectory(msg)
    assert not result.accepted
    assert why in result.reason
    run_for(arm, 0.5)
    np.testing.assert_allclose(arm.desired_q, Q1, atol=1e-9)  # the previous trajectory went on


def test_jtc_rejects_nonzero_stamp_that_ended():
    arm = SimArm(q0=Q0)
    run_for(arm, 2.0)
    result = arm.command_trajectory(traj(pt(Q1, 0.5), stamp=1.0))  # ended at 1.5 s, now 2 s
    assert not result.accepted and "past" in result.reason
    # A stamp in the past whose end is still ahead is accepted (JTC semantics).
    assert arm.command_trajectory(traj(pt(Q1, 1.5), stamp=1.0)).accepted


def test_nonzero_end_velocity_allowed_when_configured():
    arm = SimArm(q0=Q0, allow_nonzero_velocity_at_trajectory_end=True)
    assert arm.command_trajectory(traj(pt(Q1, 0.5, v=[0.1, 0.0, 0.0]))).accepted


def test_forward_command_tracks_with_lag():
    arm = SimArm(q0=Q0)
    assert arm.command_forward(Q1).accepted
    assert arm.mode == "forward"
    np.testing.assert_allclose(arm.desired_q, Q1)
    run_for(arm, 0.02)
    moved = np.abs(arm.q - Q0) / np.abs(Q1 - Q0)
    assert (moved < 0.3).all() and (moved > 0.0).all()  # lags, but moves at once
    peak_v = 0.0
    for _ in range(500):
        arm.step()
        peak_v = max(peak_v, float(np.abs(arm.qd / np.asarray(arm.config.max_velocity)).max()))
    np.testing.assert_allclose(arm.q, Q1, atol=1e-4)
    assert peak_v <= 1.0 + 1e-9


def test_forward_command_rejections_and_joint_limits():
    arm = SimArm(q0=Q0)
    assert not arm.command_forward([0.1, 0.2]).accepted
    assert not arm.command_forward([0.1, math.nan, 0.2]).accepted
    assert arm.mode == "hold"
    upper = np.asarray(arm.config.upper)
    assert arm.command_forward(upper + 1.0).accepted
    run_for(arm, 3.0)
    assert (arm.q <= upper + 1e-12).all()
    np.testing.assert_allclose(arm.q, upper, atol=1e-6)


def test_velocity_and_acceleration_limits_bound_a_big_step():
    cfg = ArmConfig()
    arm = SimArm(cfg, q0=np.zeros(3))
    arm.command_forward(np.array([2.0, -2.0, 2.0]))
    prev = arm.qd
    for _ in range(200):
        arm.step()
        acc = np.abs(arm.qd - prev) / arm.dt
        assert (acc <= np.asarray(cfg.max_acceleration) + 1e-6).all()
        assert (np.abs(arm.qd) <= np.asarray(cfg.max_velocity) + 1e-12).all()
        prev = arm.qd


def test_reset_keeps_clock_and_drops_commands():
    arm = SimArm(q0=Q0)
    arm.command_forward(Q1)
    run_for(arm, 0.5)
    t = arm.time
    arm.reset(Q0)
    assert arm.time == t and arm.mode == "hold"
    run_for(arm, 0.5)
    np.testing.assert_allclose(arm.q, Q0)
    with pytest.raises(ValueError):
        arm.reset([0.0, 0.0])
