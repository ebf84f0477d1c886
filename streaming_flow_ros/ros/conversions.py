"""ROS messages <-> numpy for the policy node. No node, no executor: plain functions, each
validating at the boundary (ValueError subclasses naming the bad value).

Command contract (docs/ROS.md "Command output contract"):

- ``JointTrajectory`` for joint_trajectory_controller: ``header.stamp = 0`` ("start at the
  controller's next sample"), exactly one point, ``time_from_start = lookahead_ticks * period``
  (> 0), every controller joint by name, positions (and optional velocities) sized to match.
- ``Float64MultiArray`` for forward_command_controller: values in the controller's exact
  joint order.
- ``JointTrajectoryPoint`` on its own topic for logging/bags/custom controllers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ..data.image_codec import ImageDecodeError, decode_image, to_model_image
from ..policy.joints import JointStateError, check_values, index_names
from ..spec import CameraSpec

__all__ = ["JointStateError"]  # re-exported: the node's input errors
DEPTH_ENCODINGS = frozenset({"32FC1", "16UC1"})  # depth cameras (RealSense z16 is 16UC1)


def stamp_seconds(stamp) -> float:
    """builtin_interfaces/Time (sec, nanosec) -> float seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def duration_msg(seconds: float) -> Duration:
    """Non-negative float seconds -> builtin_interfaces/Duration."""
    if not (math.isfinite(seconds) and seconds >= 0.0):
        raise ValueError(f"duration must be finite and >= 0 s, got {seconds}")
    ns = round(seconds * 1e9)
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def joint_positions(msg, names: Sequence[str]) -> np.ndarray:
    """Positions of ``names`` (in that order) from a sensor_msgs/JointState, rad.

    The message's order is free and extra joints are ignored. Raises JointStateError when
    ``name`` and ``position`` differ in length, a name repeats, a wanted joint is missing or its
    position is non-finite. velocity/effort are not read (drivers may leave them empty).

    Returns: (len(names),) float64.
    """
    index = index_names(msg.name, len(msg.position))  # bounded size, linear checks
    msg_names = list(msg.name)
    missing = [n for n in names if n not in index]
    if missing:
        raise JointStateError(f"joint_states lacks joints {missing} (has {msg_names[:20]})")
    out = np.asarray(msg.position, np.float64)[[index[n] for n in names]]
    check_values(names, out)
    return out


def reorder_index(from_names: Sequence[str], to_names: Sequence[str]) -> np.ndarray:
    """Index array ``idx`` with ``values_in_to_order = values_in_from_order[idx]``.

    Raises ValueError unless ``to_names`` is a permutation of ``from_names``.
    """
    if sorted(from_names) != sorted(to_names) or len(set(to_names)) != len(to_names):
        raise ValueError(f"joint sets differ: policy {list(from_names)} vs controller {list(to_names)}")
    pos = {n: i for i, n in enumerate(from_names)}
    return np.array([pos[n] for n in to_names], np.intp)


def _floats(values: np.ndarray, size: int, label: str) -> list[float]:
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size != size:
        raise ValueError(f"{label} has {v.size} values for {size} joints")
    if not np.isfinite(v).all():
        raise ValueError(f"{label} must be finite, got {v.tolist()}")
    return v.tolist()


def lookahead_time(lookahead_ticks: int, control_rate_hz: float) -> float:
    """time_from_start of a streamed point: ``lookahead_ticks / control_rate_hz`` s (> 0)."""
    if int(lookahead_ticks) < 1:
        raise ValueError(f"lookahead_ticks must be >= 1, got {lookahead_ticks}")
    if not (math.isfinite(control_rate_hz) and control_rate_hz > 0):
        raise ValueError(f"control_rate_hz must be finite and > 0, got {control_rate_hz}")
    return int(lookahead_ticks) / float(control_rate_hz)


def make_trajectory_point(
    positions: np.ndarray, time_from_start: float, velocities: np.ndarray | None = None
) -> JointTrajectoryPoint:
    """A JointTrajectoryPoint (positions rad, velocities rad/s, time_from_start s)."""
    n = np.asarray(positions).size
    point = JointTrajectoryPoint()
    point.positions = _floats(positions, n, "positions")
    if velocities is not None:
        point.velocities = _floats(velocities, n, "velocities")
    point.time_from_start = duration_msg(time_from_start)
    return point


def make_joint_trajectory(
    joint_names: Sequence[str],
    positions: np.ndarray,
    time_from_start: float,
    velocities: np.ndarray | None = None,
) -> JointTrajectory:
    """One-point JointTrajectory for joint_trajectory_controller streaming.

    ``header.stamp`` stays 0; ``time_from_start`` must be > 0 s (a 0 s point with stamp 0 is
    "already reached" and a stamp in the past is rejected as ending in the past).
    """
    if not (math.isfinite(time_from_start) and time_from_start > 0.0):
        raise ValueError(f"time_from_start must be finite and > 0 s, got {time_from_start}")
    if not joint_names or len(set(joint_names)) != len(joint_names):
        raise ValueError(f"joint_names must be non-empty and unique, got {list(joint_names)}")
    msg = JointTrajectory()
    msg.joint_names = list(joint_names)
    point = make_trajectory_point(positions, time_from_start, velocities)
    if len(point.positions) != len(joint_names):
        raise ValueError(f"{len(point.positions)} positions for {len(joint_names)} joint_names")
    msg.points = [point]
    return msg


def make_forward_command(values: np.ndarray) -> Float64MultiArray:
    """Float64MultiArray for forward_command_controller; ``values`` already in the controller's
    joint order (see ``reorder_index``)."""
    v = np.asarray(values).reshape(-1)
    if v.size == 0:
        raise ValueError("forward command must not be empty")
    return Float64MultiArray(data=_floats(v, v.size, "forward command"))


def image_to_model(msg, camera: CameraSpec) -> np.ndarray:
    """sensor_msgs/Image -> (Hh, Ww, C) uint8 at the camera's model size (image_codec.py).

    Raises image_codec.ImageDecodeError (a ValueError) on bad encodings/sizes/data, and on a
    depth encoding (32FC1, 16UC1) for a colour camera: a depth image turned silently into grey
    is a wrong remap, not an input (mono8/mono16 intensity images still convert). A bogus huge
    ``step`` costs no memory (the codec views rows with that stride, it does not pad).
    """
    enc = str(msg.encoding)
    if enc in DEPTH_ENCODINGS and camera.channels != 1:
        raise ImageDecodeError(f"encoding {enc!r} is a depth image; camera {camera.name!r} is "
                               f"{camera.channels}-channel colour: check the remap")
    return to_model_image(decode_image(msg), camera.height, camera.width, camera.channels)
