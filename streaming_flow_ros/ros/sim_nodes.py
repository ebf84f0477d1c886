"""The simulated arm as real ROS 2 nodes (rclpy), around the numpy simulator in ``sim/``.

Nodes (names relative, so a namespace applies to all of them):

- ``sim_arm`` (:class:`SimArmNode`): subscribes ``joint_trajectory_controller/joint_trajectory``
  (trajectory_msgs/JointTrajectory, RELIABLE, JTC semantics) and
  ``forward_position_controller/commands`` (std_msgs/Float64MultiArray); on a timer at
  ``joint_state_rate_hz`` it advances the physics to the present and publishes ``joint_states``
  (sensor_msgs/JointState, position + velocity, stamped). With ``publish_clock`` it owns time:
  each tick advances the simulation by ``real_time_factor / joint_state_rate_hz`` s and
  publishes ``/clock`` (other nodes then run with ``use_sim_time``).
  ``latency_s`` (default 0) holds each joint state back for that long before publishing it
  (stamped with its capture time): a sensing delay, for the delay stress test.
- ``sim_camera`` (:class:`SimCameraNode`): renders the scene at ``rate_hz`` and publishes
  ``camera/image_raw`` (sensor_msgs/Image rgb8, 96x96), stamped with the simulation time of the
  rendered state; ``latency_s`` delays publication as for the joint states.
- ``sim_task`` (:class:`SimTaskNode`): ``~/reset`` (std_srvs/Trigger) starts the next episode
  (its response message is JSON: new episode, seed, and the finished episode's metrics);
  publishes the running episode's metrics on ``/diagnostics`` (diagnostic_msgs) at 2 Hz;
  with ``auto_reset`` starts a new episode when the time limit has passed.

In-process use (the demo and eval apps)::

    world = SimWorld(seed=0)
    nodes = create_sim_nodes(world, context=ctx)     # add nodes.all() to an executor
    world.reset(seed=123); ...; world.metrics()

:class:`SimWorld` is the thread-safe shared state (arm, scene, episode monitor, camera). Time:
the arm clock (s, from 0) maps to ROS time as ``world.ros_offset_ns + t * 1e9``.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from ..sim.arm import ArmConfig, CommandResult, JointTrajectory, SimArm, TrajectoryPoint
from ..sim.camera import CameraConfig, TopDownCamera
from ..sim.rollout import episode_seed
from ..sim.task import EpisodeMonitor, Scene, TaskConfig, TaskMetrics, scene_for_seed


class SimWorld:
    """The simulator shared by the sim nodes and the apps: thread-safe (one re-entrant lock).

    Args:
        seed: base seed; episode k (from 0) uses ``episode_seed(seed, k)`` unless reset with
            an explicit seed or scene.
    """

    def __init__(self, arm_config: ArmConfig | None = None, task_config: TaskConfig | None = None,
                 camera_config: CameraConfig | None = None, seed: int = 0) -> None:
        self.arm_config = arm_config or ArmConfig()
        self.task_config = task_config or TaskConfig()
        self.lock = threading.RLock()
        self._camera_lock = threading.Lock()
        self.arm = SimArm(self.arm_config)
        self.camera = TopDownCamera(self.arm_config, camera_config)
        self.base_seed = int(seed)
        self.episode = -1
        self.ros_offset_ns = 0  # ROS time of arm time 0; set by the arm node
        self.reset()

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.arm_config.joint_names

    @property
    def time(self) -> float:
        """Arm clock, s."""
        with self.lock:
            return self.arm.time

    def reset(self, seed: int | None = None, scene: Scene | None = None) -> Scene:
        """Start a new episode (arm at rest at the scene's start, commands dropped); returns its scene."""
        with self.lock:
            self.episode += 1
            if scene is None:
                scene = scene_for_seed(episode_seed(self.base_seed, self.episode) if seed is None else int(seed),
                                       self.arm_config, self.task_config)
            self.scene = scene
            self.arm.reset(scene.start)
            self.episode_start = self.arm.time
            self.monitor = EpisodeMonitor(self.arm_config, scene, self.task_config, t0=self.episode_start)
            self.monitor.update(self.arm.time, self.arm.q)
            return scene

    def metrics(self) -> TaskMetrics:
        """Metrics of the running episode so far."""
        with self.lock:
            return self.monitor.metrics()

    @property
    def episode_time(self) -> float:
        """s since the episode started."""
        with self.lock:
            return self.arm.time - self.episode_start

    @property
    def episode_over(self) -> bool:
        """True once the time limit has passed."""
        with self.lock:
            return self.episode_time > self.task_config.time_limit

    def advance_to(self, t: float, max_steps: int | None = None) -> int:
        """Step the physics (and the monitor) until the arm clock reaches ``t`` s; returns steps."""
        with self.lock:
            n = max(0, math.floor((t - self.arm.time) / self.arm.dt + 0.5))
            if max_steps is not None:
                n = min(n, max_steps)
            for _ in range(n):
                self.arm.step()
                self.monitor.update(self.arm.time, self.arm.q)
            return n

    def joint_state(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(arm time s, positions rad, velocities rad/s)."""
        with self.lock:
            return self.arm.time, self.arm.q, self.arm.qd

    def render(self) -> tuple[float, np.ndarray]:
        """(arm time s, (H, W, 3) uint8 frame of the current state)."""
        with self.lock:
            t, q, scene = self.arm.time, self.arm.q, self.scene
        with self._camera_lock:  # render outside the world lock: the state is copied
            return t, self.camera.render(q, scene)

    def command_trajectory(self, traj: JointTrajectory) -> CommandResult:
        with self.lock:
            return self.arm.command_trajectory(traj)

    def command_forward(self, values: np.ndarray) -> CommandResult:
        with self.lock:
            return self.arm.command_forward(values)

    def stamp_ns(self, t: float) -> int:
        """ROS time (ns) of arm time ``t`` s."""
        return self.ros_offset_ns + round(t * 1e9)


class DelayLine:
    """Holds messages back by ``latency`` s of simulated time: ``push(t_capture, msg)``, then
    ``due(t_now)`` returns (oldest first) every message captured at or before ``t_now - latency``.
    Latency 0 passes every message straight through. Bounded: beyond ``max_len`` waiting
    messages the oldest are dropped (a stalled consumer never grows memory)."""

    def __init__(self, latency: float, max_len: int = 4096) -> None:
        if not (math.isfinite(latency) and 0.0 <= latency <= 2.0):
            raise ValueError(f"latency_s must be in [0, 2] s, got {latency}")
        self.latency = float(latency)
        self._q: deque = deque(maxlen=max_len)

    def push(self, t_capture: float, msg) -> None:
        self._q.append((float(t_capture), msg))

    def due(self, t_now: float) -> list:
        out = []
        while self._q and self._q[0][0] + self.latency <= t_now + 1e-9:
            out.append(self._q.popleft()[1])
        return out

    def __len__(self) -> int:
        return len(self._q)


def trajectory_from_msg(msg: JointTrajectoryMsg, ros_offset_ns: int) -> JointTrajectory:
    """trajectory_msgs/JointTrajectory -> plain data for :mod:`..sim.jtc`. The header stamp (ROS
    time, ns) goes onto the arm clock (``ros_offset_ns`` = ROS time of arm time 0); stamp 0 stays 0
    ("start now")."""
    stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    stamp = 0.0 if stamp_ns == 0 else max((stamp_ns - ros_offset_ns) * 1e-9, 1e-9)
    points = tuple(
        TrajectoryPoint(
            positions=list(pt.positions),
            time_from_start=pt.time_from_start.sec + pt.time_from_start.nanosec * 1e-9,
            velocities=list(pt.velocities) if len(pt.velocities) else None,
        )
        for pt in msg.points
    )
    return JointTrajectory(tuple(msg.joint_names), points, stamp)


def _stamp(msg_header, t_ns: int) -> None:
    msg_header.stamp.sec, msg_header.stamp.nanosec = divmod(int(t_ns), 1_000_000_000)


def _params(node: Node, defaults: dict) -> dict:
    return {k: node.declare_parameter(k, v).value for k, v in defaults.items()}


class SimArmNode(Node):
    """Physics, command interfaces and joint states (see the module docstring)."""

    DEFAULTS: ClassVar[dict] = {
        "joint_state_rate_hz": 100.0,
        "publish_clock": False,
        "real_time_factor": 1.0,
        "trajectory_topic": "joint_trajectory_controller/joint_trajectory",
        "forward_topic": "forward_position_controller/commands",
        "joint_states_topic": "joint_states",
        "latency_s": 0.0,
    }

    def __init__(self, world: SimWorld, **node_kwargs) -> None:
        super().__init__("sim_arm", **node_kwargs)
        self.world = world
        p = _params(self, self.DEFAULTS)
        rate = float(p["joint_state_rate_hz"])
        if not 1.0 <= rate <= 1000.0:
            raise ValueError(f"joint_state_rate_hz must be in [1, 1000], got {rate}")
        self.period = 1.0 / rate
        self.owns_clock = bool(p["publish_clock"])
        self.real_time_factor = float(p["real_time_factor"])
        if not 0.01 <= self.real_time_factor <= 100.0:
            raise ValueError(f"real_time_factor must be in [0.01, 100], got {self.real_time_factor}")
        if self.owns_clock:
            world.ros_offset_ns = 1_000_000_000 - round(world.time * 1e9)  # sim time starts at 1 s
        else:
            world.ros_offset_ns = self.get_clock().now().nanoseconds - round(world.time * 1e9)
        self.rejected = 0
        self._last_stamp = -1
        self._delay = DelayLine(float(p["latency_s"]))
        self._js_pub = self.create_publisher(JointState, p["joint_states_topic"], 10)
        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if self.owns_clock else None
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(JointTrajectoryMsg, p["trajectory_topic"], self._on_trajectory, reliable)
        self.create_subscription(Float64MultiArray, p["forward_topic"], self._on_forward, reliable)
        self._timer = self.create_timer(self.period, self._tick)

    def _now_arm_time(self) -> float:
        return (self.get_clock().now().nanoseconds - self.world.ros_offset_ns) * 1e-9

    def _advance(self) -> None:
        if self.owns_clock:
            self.world.advance_to(self.world.time + self.period * self.real_time_factor)
        else:  # catch up with the node clock, at most 0.2 s per tick (a stalled process resumes)
            self.world.advance_to(self._now_arm_time(), max_steps=int(0.2 / self.world.arm.dt))

    def _tick(self) -> None:
        self._advance()
        t, q, qd = self.world.joint_state()
        stamp = self.world.stamp_ns(t)
        if stamp <= self._last_stamp:
            return  # the physics did not advance since the last message (ticks bunched up)
        self._last_stamp = stamp
        if self._clock_pub is not None:
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = divmod(stamp, 1_000_000_000)
            self._clock_pub.publish(clock)
        msg = JointState()
        _stamp(msg.header, stamp)
        msg.name = list(self.world.joint_names)
        msg.position = q
        msg.velocity = qd
        self._delay.push(t, msg)
        for m in self._delay.due(t):
            self._js_pub.publish(m)

    def _report(self, result: CommandResult, kind: str) -> None:
        if not result.accepted:
            self.rejected += 1
            self.get_logger().warning(f"rejected {kind}: {result.reason}", throttle_duration_sec=1.0)

    def _on_trajectory(self, msg: JointTrajectoryMsg) -> None:
        traj = trajectory_from_msg(msg, self.world.ros_offset_ns)
        with self.world.lock:  # arrival time = now: bring the physics up to date first
            if not self.owns_clock:
                self._advance()
            self._report(self.world.command_trajectory(traj), "trajectory")

    def _on_forward(self, msg: Float64MultiArray) -> None:
        with self.world.lock:
            if not self.owns_clock:
                self._advance()
            self._report(self.world.command_forward(np.asarray(msg.data, np.float64)), "forward command")


class SimCameraNode(Node):
    """Renders the world and publishes rgb8 images (see the module docstring)."""

    DEFAULTS: ClassVar[dict] = {"rate_hz": 30.0, "image_topic": "camera/image_raw", "frame_id": "camera",
                                "latency_s": 0.0}

    def __init__(self, world: SimWorld, **node_kwargs) -> None:
        super().__init__("sim_camera", **node_kwargs)
        self.world = world
        p = _params(self, self.DEFAULTS)
        rate = float(p["rate_hz"])
        if not 0.5 <= rate <= 240.0:
            raise ValueError(f"camera rate_hz must be in [0.5, 240], got {rate}")
        self.frame_id = str(p["frame_id"])
        self._delay = DelayLine(float(p["latency_s"]))
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)  # matches reliable and best-effort subscribers
        self._pub = self.create_publisher(Image, p["image_topic"], qos)
        self._timer = self.create_timer(1.0 / rate, self._tick)

    def _tick(self) -> None:
        t, img = self.world.render()
        msg = Image()
        _stamp(msg.header, self.world.stamp_ns(t))
        msg.header.frame_id = self.frame_id
        h, w, _ = img.shape
        msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = h, w, "rgb8", 0, w * 3
        msg.data = img.tobytes()
        self._delay.push(t, msg)
        for m in self._delay.due(t):  # t: the arm clock now (render copies the current state)
            self._pub.publish(m)


class SimTaskNode(Node):
    """Episode reset service and metrics on /diagnostics (see the module docstring)."""

    DEFAULTS: ClassVar[dict] = {"auto_reset": False, "diagnostics_rate_hz": 2.0}

    def __init__(self, world: SimWorld, **node_kwargs) -> None:
        super().__init__("sim_task", **node_kwargs)
        self.world = world
        p = _params(self, self.DEFAULTS)
        self.auto_reset = bool(p["auto_reset"])
        self.finished: list[dict] = []  # metrics of episodes ended by reset
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._timer = self.create_timer(1.0 / float(p["diagnostics_rate_hz"]), self._tick)

    def reset(self, seed: int | None = None) -> dict:
        """End the running episode, start the next; returns {episode, seed, previous_metrics}."""
        with self.world.lock:
            previous = self.world.metrics().to_dict()
            self.finished.append(previous)
            scene = self.world.reset(seed)
            return {"episode": self.world.episode, "seed": scene.seed, "previous_metrics": previous}

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        info = self.reset()
        response.success = True
        response.message = json.dumps(info, default=float)
        self.get_logger().info(f"episode {info['episode']} (seed {info['seed']})")
        return response

    def _tick(self) -> None:
        if self.auto_reset and self.world.episode_over:
            self.reset()
        with self.world.lock:
            m, scene, episode, t = self.world.metrics(), self.world.scene, self.world.episode, self.world.time
        status = DiagnosticStatus(name="sim_task", hardware_id="sim_arm", message="episode running")
        if m.success:
            status.message = "target reached"
        if m.collision:
            status.level, status.message = DiagnosticStatus.WARN, "collision with the obstacle"
        values = {"episode": episode, "seed": scene.seed, **m.to_dict(),
                  "target_x": scene.target[0], "target_y": scene.target[1],
                  "obstacle_x": scene.obstacle[0], "obstacle_y": scene.obstacle[1]}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        _stamp(msg.header, self.world.stamp_ns(t))
        self._diag_pub.publish(msg)


@dataclass
class SimNodes:
    """The three sim nodes around one world."""

    world: SimWorld
    arm: SimArmNode
    camera: SimCameraNode
    task: SimTaskNode

    def all(self) -> list[Node]:
        return [self.arm, self.camera, self.task]

    def destroy(self) -> None:
        for node in self.all():
            node.destroy_node()


def create_sim_nodes(
    world: SimWorld | None = None, *, context: Context | None = None, namespace: str = "",
    joint_state_rate_hz: float = 100.0, camera_rate_hz: float = 30.0, publish_clock: bool = False,
    real_time_factor: float = 1.0, auto_reset: bool = False, cli_args: list[str] | None = None,
    sensor_latency_s: float = 0.0,
) -> SimNodes:
    """Create the sim nodes (not yet spinning) in ``context`` (default: the global one).
    ``sensor_latency_s`` delays joint states and camera frames alike (DelayLine)."""
    world = world or SimWorld()
    common = {"context": context, "namespace": namespace or None, "cli_args": cli_args}

    def node(cls: type[Node], values: dict) -> Node:
        return cls(world, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()], **common)

    arm = node(SimArmNode, {"joint_state_rate_hz": float(joint_state_rate_hz), "publish_clock": bool(publish_clock),
                            "real_time_factor": float(real_time_factor), "latency_s": float(sensor_latency_s)})
    camera = node(SimCameraNode, {"rate_hz": float(camera_rate_hz), "latency_s": float(sensor_latency_s)})
    task = node(SimTaskNode, {"auto_reset": bool(auto_reset)})
    return SimNodes(world, arm, camera, task)

