"""A MuJoCo cell (``cells/``) behind the topics of the real arm's ros2_control stack.

Node ``cell`` (:class:`CellNode`), topics from the arm's preset (``config/robots/<preset>.yaml``,
``policy_launch_topics``), so the policy node's preset remappings apply unchanged:

- publishes ``joint_states`` (sensor_msgs/JointState: the arm joints, by the real driver's names,
  and the gripper joint in the driver's units), ``/clock`` (the cell owns time: run every other
  node with ``use_sim_time``), and two cameras, ``camera/image_raw`` (scene) and
  ``wrist_camera/image_raw`` (sensor_msgs/Image rgb8, ``image_width`` x ``image_height`` at
  ``camera_rate_hz`` of *simulated* time, stamped with the rendered state's time);
- subscribes the preset's ``joint_trajectory`` topic (trajectory_msgs/JointTrajectory, RELIABLE,
  joint_trajectory_controller semantics: sim/jtc.py, the same code as the planar sim),
  ``forward_position_controller/commands`` (std_msgs/Float64MultiArray in the preset's
  ``controller_joints`` order) and ``gripper_controller/commands`` (Float64MultiArray, one
  value: the gripper joint's position in the driver's units, see cells/robots.py).

Each tick (``joint_state_rate_hz`` of wall time, times ``real_time_factor``) advances the
physics by one tick of simulated time, renders the cameras that are due, then publishes. The
cell runs slower than real time when rendering or physics cannot keep up; simulated time is
what every stamp and /clock carry, so nodes under ``use_sim_time`` see a consistent world.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import yaml
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from ..cells.cell import Cell
from ..presets import find_preset
from .sim_nodes import trajectory_from_msg

CLOCK_START_NS = 1_000_000_000  # ROS time of cell time 0 (sim time starts at 1 s, as in `sfp sim`)


def _stamp(header, t_ns: int) -> None:
    header.stamp.sec, header.stamp.nanosec = divmod(int(t_ns), 1_000_000_000)


def _params(node: Node, defaults: dict) -> dict:
    return {k: node.declare_parameter(k, v).value for k, v in defaults.items()}


def preset_topics(preset: str) -> dict[str, str]:
    """The preset's topic names (``policy_launch_topics``): joint_states, image_raw,
    joint_trajectory, commands (may be empty)."""
    doc = yaml.safe_load(find_preset(preset).read_text())
    return dict(doc["policy_launch_topics"]["ros__parameters"])


class CellNode(Node):
    """Physics, command interfaces, joint states, cameras and /clock (see the module docstring)."""

    DEFAULTS: ClassVar[dict] = {
        "joint_state_rate_hz": 100.0,
        "real_time_factor": 1.0,
        "camera_rate_hz": 10.0,
        "image_width": 96,
        "image_height": 96,
        "wrist_camera": True,
        "joint_states_topic": "",  # empty: the preset's
        "trajectory_topic": "",
        "forward_topic": "forward_position_controller/commands",
        "gripper_topic": "gripper_controller/commands",
        "scene_image_topic": "",
        "wrist_image_topic": "wrist_camera/image_raw",
    }

    def __init__(self, cell: Cell, **node_kwargs) -> None:
        super().__init__("cell", **node_kwargs)
        self.cell = cell
        p = _params(self, self.DEFAULTS)
        topics = preset_topics(cell.robot.preset)
        rate = float(p["joint_state_rate_hz"])
        if not 1.0 <= rate <= 1000.0:
            raise ValueError(f"joint_state_rate_hz must be in [1, 1000], got {rate}")
        self.period = 1.0 / rate
        rtf = float(p["real_time_factor"])
        if not 0.01 <= rtf <= 100.0:
            raise ValueError(f"real_time_factor must be in [0.01, 100], got {rtf}")
        cam_rate = float(p["camera_rate_hz"])
        if not 0.0 <= cam_rate <= 240.0:
            raise ValueError(f"camera_rate_hz must be in [0, 240] (0: no cameras), got {cam_rate}")
        self.camera_period = 1.0 / cam_rate if cam_rate > 0 else None
        self.offset_ns = CLOCK_START_NS - round(cell.time * 1e9)  # ROS time of cell time 0
        self.rejected = 0
        self.received = {"trajectory": 0, "forward": 0, "gripper": 0}  # accepted commands
        self.gripper = cell.robot.gripper
        self._next_frame = cell.time
        self._js_pub = self.create_publisher(JointState, p["joint_states_topic"] or topics["joint_states"], 10)
        self._clock_pub = self.create_publisher(Clock, "/clock", 10)
        cam_qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)  # matches reliable and best-effort
        self._cams = {"scene": self.create_publisher(Image, p["scene_image_topic"] or topics["image_raw"], cam_qos)}
        if p["wrist_camera"]:
            self._cams["wrist"] = self.create_publisher(Image, p["wrist_image_topic"], cam_qos)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(JointTrajectoryMsg, p["trajectory_topic"] or topics["joint_trajectory"],
                                 self._on_trajectory, reliable)
        self.create_subscription(Float64MultiArray, p["forward_topic"], self._on_forward, reliable)
        self.create_subscription(Float64MultiArray, p["gripper_topic"], self._on_gripper, reliable)
        # Called after each physics tick, before publishing, on the cell's thread (an episode
        # harness tracks task success and the measured motion here).
        self.tick_hooks: list[Callable[[Cell], None]] = []
        self._publish_state()
        self._timer = self.create_timer(self.period / rtf, self._tick)

    def stamp_ns(self, t: float) -> int:
        """ROS time (ns) of cell time ``t`` s."""
        return self.offset_ns + round(t * 1e9)

    def _tick(self) -> None:
        with self.cell.lock:  # a reset from another thread lands between ticks, not inside one
            self.cell.step(self.period)
            for hook in self.tick_hooks:
                hook(self.cell)
        self._publish_state()
        if self.camera_period is not None and self.cell.time >= self._next_frame - 1e-9:
            self._next_frame += self.camera_period * max(1, int((self.cell.time - self._next_frame) / self.camera_period) + 1)
            for name, pub in self._cams.items():
                t, img = self.cell.render(name)
                pub.publish(self._image(t, img, name))

    def _publish_state(self) -> None:
        t, q, qd = self.cell.joint_state()
        stamp = self.stamp_ns(t)
        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = divmod(stamp, 1_000_000_000)
        self._clock_pub.publish(clock)
        msg = JointState()
        _stamp(msg.header, stamp)
        msg.name = [*self.cell.joint_names, self.gripper.joint]
        msg.position = [*q.tolist(), self.gripper.joint_from_width(self.cell.gripper_width())]
        msg.velocity = [*qd.tolist(), 0.0]
        self._js_pub.publish(msg)

    def _image(self, t: float, img: np.ndarray, frame_id: str) -> Image:
        msg = Image()
        _stamp(msg.header, self.stamp_ns(t))
        msg.header.frame_id = frame_id
        h, w, _ = img.shape
        msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = h, w, "rgb8", 0, w * 3
        msg.data = img.tobytes()
        return msg

    def _report(self, accepted: bool, reason: str, kind: str) -> None:
        if accepted:
            self.received[kind.split()[0]] += 1
        else:
            self.rejected += 1
            self.get_logger().warning(f"rejected {kind}: {reason}", throttle_duration_sec=1.0)

    def _on_trajectory(self, msg: JointTrajectoryMsg) -> None:
        r = self.cell.command_trajectory(trajectory_from_msg(msg, self.offset_ns))
        self._report(r.accepted, r.reason, "trajectory")

    def _on_forward(self, msg: Float64MultiArray) -> None:
        r = self.cell.command_forward(np.asarray(msg.data, np.float64))
        self._report(r.accepted, r.reason, "forward command")

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        values = np.asarray(msg.data, np.float64)
        if values.size != 1 or not np.isfinite(values).all():
            self._report(False, f"gripper command must be one finite value ({self.gripper.joint}), got {values.tolist()}",
                         "gripper command")
            return
        self.cell.command_gripper(self.gripper.width_from_joint(float(values[0])))  # clamped by the cell
        self._report(True, "", "gripper command")


def create_cell_node(cell: Cell, *, context: Context | None = None, namespace: str = "",
                     cli_args: list[str] | None = None, **params) -> CellNode:
    """A CellNode (not yet spinning) in ``context``; ``params`` override :attr:`CellNode.DEFAULTS`."""
    unknown = set(params) - set(CellNode.DEFAULTS)
    if unknown:
        raise ValueError(f"unknown cell node parameters {sorted(unknown)}")
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return CellNode(cell, context=context, namespace=namespace or None, cli_args=cli_args,
                    parameter_overrides=overrides)
