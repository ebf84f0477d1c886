"""The sim as real ROS 2 nodes, over DDS (rclpy + Fast DDS), each test in its own context and
domain. Waits are generous (conditions, not timings): the machine may be loaded."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

import itertools

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from domain_coordinator import domain_id
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from streaming_flow_ros.data.image_codec import decode_image
from streaming_flow_ros.ros.sim_nodes import SimWorld, create_sim_nodes

TIMEOUT = 20.0


@pytest.fixture
def ctx():
    with domain_id() as did:
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=did)
        try:
            yield context
        finally:
            context.try_shutdown()


class Harness:
    """Sim nodes + a probe node in one context, spun by the test thread."""

    def __init__(self, context, **kwargs):
        self.world = SimWorld(seed=0)
        self.sim = create_sim_nodes(self.world, context=context, **kwargs)
        self.probe = rclpy.create_node("probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        for node in [*self.sim.all(), self.probe]:
            self.executor.add_node(node)
        self.joint_states, self.images, self.clocks, self.diagnostics = [], [], [], []
        self.probe.create_subscription(JointState, "joint_states", self.joint_states.append, 50)
        self.probe.create_subscription(Image, "camera/image_raw", self.images.append, 10)
        self.probe.create_subscription(Clock, "/clock", self.clocks.append, 10)
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def spin_until(self, cond, timeout=TIMEOUT):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return cond()

    def close(self):
        self.executor.shutdown()
        self.sim.destroy()
        self.probe.destroy_node()


@pytest.fixture
def harness(ctx):
    h = Harness(ctx)
    yield h
    h.close()


def trajectory(names, positions, tfs_s):
    msg = JointTrajectory()  # header.stamp stays 0: "start now"
    msg.joint_names = list(names)
    pt = JointTrajectoryPoint()
    pt.positions = [float(v) for v in positions]
    pt.time_from_start = Duration(sec=int(tfs_s), nanosec=round((tfs_s % 1) * 1e9))
    msg.points = [pt]
    return msg


def test_trajectory_command_moves_joint_states(harness):
    h = harness
    assert h.spin_until(lambda: len(h.joint_states) >= 3)
    first = h.joint_states[-1]
    assert list(first.name) == ["joint1", "joint2", "joint3"]
    start = np.array(first.position)
    goal = start + np.array([0.3, -0.2, 0.25])
    pub = h.probe.create_publisher(
        JointTrajectory, "joint_trajectory_controller/joint_trajectory",
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
    )
    assert h.spin_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(trajectory(reversed(first.name), goal[::-1], 0.5))  # order is free: mapped by name
    assert h.spin_until(lambda: np.abs(np.array(h.joint_states[-1].position) - goal).max() < 0.01)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in h.joint_states]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert abs(stamps[-1] - h.probe.get_clock().now().nanoseconds * 1e-9) < 1.0  # node-clock stamps
    # A malformed message is rejected; the accepted trajectory goes on to its end and holds.
    pub.publish(trajectory(first.name, goal[:2], 0.5))
    assert h.spin_until(lambda: h.sim.arm.rejected >= 1)
    assert h.spin_until(lambda: np.abs(h.world.arm.desired_q - goal).max() < 1e-9)


def test_forward_command_and_reset_service(harness):
    h = harness
    pub = h.probe.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
    assert h.spin_until(lambda: pub.get_subscription_count() > 0 and h.joint_states)
    goal = np.array(h.joint_states[-1].position) + 0.2
    pub.publish(Float64MultiArray(data=goal.tolist()))
    assert h.spin_until(lambda: np.abs(np.array(h.joint_states[-1].position) - goal).max() < 0.01)
    assert h.spin_until(lambda: any(s.name == "sim_task" for d in h.diagnostics for s in d.status))

    client = h.probe.create_client(Trigger, "sim_task/reset")
    assert h.spin_until(client.service_is_ready)
    episode = h.world.episode
    future = client.call_async(Trigger.Request())
    assert h.spin_until(future.done)
    info = json.loads(future.result().message)
    assert future.result().success and info["episode"] == episode + 1
    assert "success" in info["previous_metrics"]
    start = np.array(h.world.scene.start)
    n = len(h.joint_states)
    assert h.spin_until(lambda: len(h.joint_states) > n + 2)
    np.testing.assert_allclose(h.joint_states[-1].position, start, atol=1e-9)  # back at rest


def test_camera_publishes_rgb8_frames_of_the_scene(harness):
    h = harness
    assert h.spin_until(lambda: len(h.images) >= 3)
    msg = h.images[-1]
    assert (msg.height, msg.width, msg.encoding, msg.step) == (96, 96, "rgb8", 288)
    assert len(msg.data) == 96 * 96 * 3 and msg.header.frame_id == "camera"
    img = decode_image(msg)
    cam, scene = h.world.camera, h.world.scene
    r, c = (int(v) for v in cam.world_to_pixel(np.asarray(scene.target)))
    assert tuple(img[r, c]) == cam.config.target_color


def test_owning_sim_time_publishes_clock(ctx):
    h = Harness(ctx, publish_clock=True, joint_state_rate_hz=200.0, real_time_factor=2.0)
    try:
        assert h.spin_until(lambda: len(h.clocks) >= 20 and len(h.joint_states) >= 20)
        clocks = [c.clock.sec + c.clock.nanosec * 1e-9 for c in h.clocks]
        assert clocks[0] >= 1.0 and all(b > a for a, b in itertools.pairwise(clocks))
        np.testing.assert_allclose(np.diff(clocks), 2.0 / 200.0, atol=1e-6)  # rtf * period per tick
        # Joint states are stamped with the simulation time published on /clock in the same tick.
        ticks = {c.clock.sec * 10**9 + c.clock.nanosec for c in h.clocks}
        js = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in h.joint_states]
        js = [t for t in js if min(ticks) <= t <= max(ticks)]  # both streams received
        assert js and set(js) <= ticks
    finally:
        h.close()


def test_sfp_sim_command_runs_and_exits(tmp_path):
    with domain_id() as did:
        env = dict(os.environ, ROS_DOMAIN_ID=str(did))
        out = subprocess.run(
            [sys.executable, "-m", "streaming_flow_ros.cli", "sim", "--duration", "1.0", "--seed", "4"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
    assert out.returncode == 0, out.stderr
    assert "final episode metrics" in out.stdout


def test_delay_line_holds_messages_back_by_the_latency():
    from streaming_flow_ros.ros.sim_nodes import DelayLine

    line = DelayLine(0.1)
    for k in range(10):  # captured every 20 ms
        line.push(0.02 * k, k)
    assert line.due(0.05) == []  # nothing is 100 ms old yet
    assert line.due(0.14) == [0, 1, 2]  # captured at 0, 0.02, 0.04 (<= 0.14 - 0.1)
    assert line.due(0.14) == [] and len(line) == 7
    assert line.due(10.0) == list(range(3, 10))
    passthrough = DelayLine(0.0)
    passthrough.push(1.0, "a")
    assert passthrough.due(1.0) == ["a"]
    bounded = DelayLine(1.0, max_len=3)
    for k in range(5):
        bounded.push(0.0, k)
    assert bounded.due(1.0) == [2, 3, 4]  # a stalled consumer keeps only the newest
    for bad in (-0.1, float("nan"), 3.0):
        with pytest.raises(ValueError, match="latency_s"):
            DelayLine(bad)


def test_sensor_latency_delays_joint_states_and_frames(ctx):
    """With sensor_latency_s the messages arrive that late after their (capture-time) stamps."""
    latency = 0.2
    h = Harness(ctx, sensor_latency_s=latency, joint_state_rate_hz=100.0)
    try:
        ages_js, ages_img = [], []

        def age(msg):
            return h.probe.get_clock().now().nanoseconds * 1e-9 - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

        h.probe.create_subscription(JointState, "joint_states", lambda m: ages_js.append(age(m)), 50)
        h.probe.create_subscription(Image, "camera/image_raw", lambda m: ages_img.append(age(m)), 10)
        assert h.spin_until(lambda: len(ages_js) >= 30 and len(ages_img) >= 5)
        # never early; late by the latency plus scheduling (and up to one camera period for frames)
        assert min(ages_js) >= latency - 0.011 and np.median(ages_js) < latency + 0.05
        assert min(ages_img) >= latency - 0.011 and np.median(ages_img) < latency + 1 / 30 + 0.05
    finally:
        h.close()
