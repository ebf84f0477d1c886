"""Task geometry, camera rendering, the scripted expert and the expert dataset."""

import itertools
import time

import numpy as np
import pytest

from streaming_flow_ros.data.episodes import load_dataset
from streaming_flow_ros.sim.arm import (
    ArmConfig,
    JointTrajectory,
    TrajectoryPoint,
    forward_kinematics,
)
from streaming_flow_ros.sim.camera import CameraConfig, TopDownCamera
from streaming_flow_ros.sim.expert import (
    SIDES,
    PlanningError,
    ScriptedExpert,
    plan,
    side_wall,
)
from streaming_flow_ros.sim.rollout import (
    episode_seed,
    expert_episodes_to_dataset,
    expert_rollout,
    rollout,
)
from streaming_flow_ros.sim.task import (
    EpisodeMonitor,
    Scene,
    TaskConfig,
    in_collision,
    obstacle_clearance,
    scene_for_seed,
)

ARM = ArmConfig()


def pixel(cam, xy):
    r, c = cam.world_to_pixel(np.asarray(xy))
    return int(r), int(c)


def test_scenes_are_seeded_and_put_the_obstacle_between_home_and_target():
    assert scene_for_seed(3) == scene_for_seed(3)
    assert scene_for_seed(3) != scene_for_seed(4)
    home_ee = forward_kinematics(ARM, np.asarray(ARM.home))[-1]
    for s in range(30):
        sc = scene_for_seed(s)
        t, o = np.asarray(sc.target), np.asarray(sc.obstacle)
        d = np.linalg.norm(t - home_ee)
        along = np.dot(o - home_ee, (t - home_ee) / d)
        assert 0.3 * d < along < 0.7 * d
        u, v = (t - home_ee) / d, o - home_ee
        lateral = abs(u[0] * v[1] - u[1] * v[0])
        assert lateral < sc.obstacle_radius  # the straight line home -> target is blocked
        assert obstacle_clearance(ARM, sc, np.asarray(sc.start)) > 0.05  # starts clear


def test_camera_shows_target_obstacle_and_arm_at_the_right_pixels():
    cam = TopDownCamera(ARM)
    cfg = cam.config
    sc = scene_for_seed(0)
    img = cam.render(np.asarray(sc.start), sc)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    assert tuple(img[pixel(cam, sc.target)]) == cfg.target_color
    assert tuple(img[pixel(cam, sc.obstacle)]) == cfg.obstacle_color
    pts = forward_kinematics(ARM, np.asarray(sc.start))
    mid = 0.5 * (pts[1] + pts[2])  # middle of link 2
    assert tuple(img[pixel(cam, mid)]) == cfg.link_color
    assert tuple(img[0, 0]) == cfg.background
    # Orientation: +y (forward) is up, +x is right.
    r0, c0 = pixel(cam, (0.0, 0.2))
    r1, c1 = pixel(cam, (0.3, 0.6))
    assert r1 < r0 and c1 > c0
    # Moving the target moves its pixels.
    moved = Scene((sc.target[0] - 0.2, sc.target[1]), sc.target_radius, sc.obstacle, sc.obstacle_radius, sc.start)
    img2 = cam.render(np.asarray(sc.start), moved)
    assert tuple(img2[pixel(cam, sc.target)]) == cfg.background
    assert tuple(img2[pixel(cam, moved.target)]) == cfg.target_color


def test_camera_render_speed_is_reasonable():
    cam = TopDownCamera(ARM)
    sc = scene_for_seed(1)
    q = np.asarray(sc.start)
    cam.render(q, sc)
    t = time.perf_counter()
    for k in range(50):
        cam.render(q + 0.01 * k, sc)
    per_frame = (time.perf_counter() - t) / 50
    assert per_frame < 0.02  # loose: ~0.6 ms measured on one core; this only catches regressions


def test_camera_config_validation():
    with pytest.raises(ValueError):
        CameraConfig(height=4)
    with pytest.raises(ValueError):
        CameraConfig(half_extent=0.0)


def test_collision_geometry():
    q = np.array([0.0, 0.0, 0.0])  # straight up the y axis
    on_link = Scene((0.5, 0.9), 0.04, (0.0, 0.5), 0.05, (0.0, 0.0, 0.0))
    assert in_collision(ARM, on_link, q)
    # Touching: gap = distance - link radius - obstacle radius.
    beside = Scene((0.5, 0.9), 0.04, (0.1, 0.5), 0.05, (0.0, 0.0, 0.0))
    assert obstacle_clearance(ARM, beside, q) == pytest.approx(0.1 - ARM.link_radius - 0.05)
    assert not in_collision(ARM, beside, q)
    grazing = Scene((0.5, 0.9), 0.04, (0.06, 0.5), 0.05, (0.0, 0.0, 0.0))
    assert in_collision(ARM, grazing, q)  # the capsule's radius counts
    batch = np.zeros((4, 3))
    assert in_collision(ARM, on_link, batch).shape == (4,)


def test_monitor_metrics_success_time_and_jerk():
    sc = Scene((0.0, ARM.reach), 0.04, (0.8, 0.2), 0.05, (0.0, 0.0, 0.0))
    mon = EpisodeMonitor(ARM, sc, TaskConfig(), t0=10.0)
    for k in range(101):  # 1 s at 100 Hz: constant joint velocity on joint 1 then standing still
        q = np.array([0.5 - 0.5 * min(k / 50, 1.0), 0.0, 0.0])
        mon.update(10.0 + k / 100, q)
    m = mon.metrics()
    assert m.success and not m.collision
    assert m.time_to_success == pytest.approx(0.44, abs=0.015)  # |EE - target| ~ q1 <= 0.06
    assert m.path_length > 0 and m.joint_path_length == pytest.approx(0.5)
    assert m.jerk_rms > 0  # the stop is a velocity step
    assert m.final_distance == pytest.approx(0.0, abs=1e-9)
    mon.update(30.0, np.zeros(3))  # past the time limit: ignored
    assert mon.done and mon.metrics().duration == pytest.approx(1.0)


def _passing_side(scene, q):
    """Which side of the obstacle the chain crosses the wall line on (looking home -> target)."""
    w0, w1 = side_wall(ARM, scene, "left")  # runs from the obstacle to its right
    right = (w1 - w0) / np.linalg.norm(w1 - w0)
    pts = forward_kinematics(ARM, q)
    s = np.linspace(0, 1, 200)[:, None]
    dense = np.concatenate([a + s * (b - a) for a, b in itertools.pairwise(pts)])
    along = np.array([-right[1], right[0]])  # home -> target direction
    depth = (dense - w0) @ along
    crossing = np.flatnonzero(np.diff(np.sign(depth)) != 0)
    lateral = (dense[crossing[0]] - w0) @ right
    return "right" if lateral > 0 else "left"


@pytest.mark.parametrize("side", SIDES)
def test_expert_plan_passes_on_the_requested_side(side):
    # scenes where both sides leave the expert's clearance (about half do; elsewhere the expert
    # takes the only side that does: test_expert_success_rate_and_both_sides)
    for s in (101, 102, 107):
        sc = scene_for_seed(s)
        p = plan(sc, side, ARM)
        assert p.side == side
        assert _passing_side(sc, p.path[-1]) == side
        assert obstacle_clearance(ARM, sc, p.path).min() > 0.02
        np.testing.assert_allclose(p.path[0], sc.start, atol=1e-9)
        assert np.linalg.norm(forward_kinematics(ARM, p.path[-1])[-1] - sc.target) < 1e-6


def test_expert_success_rate_and_both_sides():
    n, ok, unplannable, sides = 50, 0, 0, {"left": 0, "right": 0}
    for i in range(n):
        s = episode_seed(7, i)
        try:
            rec = expert_rollout(scene_for_seed(s), np.random.default_rng([s, 1]), render=False)
        except PlanningError:  # no side leaves the expert's clearance (the recorder skips these)
            unplannable += 1
            continue
        ok += rec.metrics.clean_success
        sides[rec.info["side"]] += 1
        assert not rec.rejections
    assert unplannable <= 0.05 * n, f"{unplannable}/{n} scenes unplannable"
    assert ok / (n - unplannable) >= 0.95, f"expert success {ok}/{n - unplannable}"
    assert sides["left"] >= 10 and sides["right"] >= 10, sides


def test_rollout_streams_and_forward_mode():
    sc = scene_for_seed(5)
    expert = ScriptedExpert(sc, np.random.default_rng(0), ARM, side="left")
    rec = rollout(sc, expert, duration=3.0, joint_state_rate_hz=100, camera_rate_hz=30, command_rate_hz=10)
    assert len(rec.joint_time) == 301 and len(rec.images) == 91 and len(rec.command_time) == 30
    np.testing.assert_allclose(np.diff(rec.command_time), 0.1, atol=1e-9)
    assert rec.images.shape[1:] == (96, 96, 3)
    assert (rec.command_image_index >= 0).all()
    assert (rec.image_time[rec.command_image_index] <= rec.command_time + 1e-9).all()
    fwd = rollout(sc, expert, duration=3.0, command_mode="forward", render=False)
    assert fwd.metrics.success  # slower without feed-forward, but gets there
    with pytest.raises(ValueError):
        rollout(sc, expert, duration=1.0, command_mode="bogus")


def test_rollout_accepts_trajectory_sources_in_any_joint_order():
    sc = scene_for_seed(6)
    goal = np.asarray(sc.start) + np.array([0.1, 0.2, -0.1])
    names = ARM.joint_names[::-1]

    def source(obs):  # sent once: re-sending would restart the interpolation (replace-on-new)
        return JointTrajectory(names, (TrajectoryPoint(goal[::-1], 0.5),)) if obs.time == 0 else None

    rec = rollout(sc, source, duration=1.0, render=False)
    np.testing.assert_allclose(rec.command[0], goal)
    np.testing.assert_allclose(rec.joint_position[-1], goal, atol=1e-3)
    bad = rollout(sc, lambda obs: JointTrajectory(names, (TrajectoryPoint(goal, 0.0),)), duration=0.5, render=False)
    assert len(bad.command_time) == 0 and bad.rejections


def test_expert_dataset_round_trip(tmp_path):
    report = expert_episodes_to_dataset(2, seed=3, out_dir=tmp_path / "ds")
    assert report.episodes == 2 and report.expert_success_rate > 0
    spec, episodes = load_dataset(tmp_path / "ds")
    assert spec.state_names == spec.action_names == ARM.joint_names
    assert spec.data_rate_hz == 10.0 and spec.cameras[0].name == "camera"
    assert (spec.cameras[0].height, spec.cameras[0].width, spec.cameras[0].channels) == (96, 96, 3)
    assert spec.action_lower == ARM.lower and spec.action_upper == ARM.upper
    for ep in episodes:
        n = len(ep)
        assert ep.images["camera"].shape == (n, 96, 96, 3)
        np.testing.assert_allclose(ep.time, np.arange(n) / 10.0, atol=1e-9)
        # The action leads the state by about one data period (the arm tracks the command).
        lead = np.abs(ep.action[:-1] - ep.state[1:]).max()
        assert lead < 0.05
        assert np.abs(ep.state[0] - ep.action[-1]).max() > 0.1  # the arm did move
