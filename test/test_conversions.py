"""ros/conversions.py: JointState by name, the command message contract, images."""

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState

from streaming_flow_ros.data.image_codec import ImageDecodeError, encode_rgb8
from streaming_flow_ros.ros import conversions as cv
from streaming_flow_ros.spec import CameraSpec

NAMES = ["a", "b", "c"]


def js(names, positions) -> JointState:
    return JointState(name=names, position=[float(p) for p in positions])


def test_joint_positions_by_name_any_order_extra_ignored():
    msg = js(["c", "x", "a", "b"], [3.0, 9.0, 1.0, 2.0])
    np.testing.assert_array_equal(cv.joint_positions(msg, NAMES), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(cv.joint_positions(msg, ["b"]), [2.0])


@pytest.mark.parametrize(
    "names, positions, match",
    [
        (["a", "b"], [1.0, 2.0], r"lacks joints \['c'\]"),
        (["a", "b", "c", "a"], [1.0, 2.0, 3.0, 4.0], "repeats joint names"),
        (["a", "b", "c"], [1.0, 2.0], "3 names but 2 positions"),
        (["a", "b", "c"], [1.0, math.nan, 3.0], r"non-finite or absurd positions for \['b'\]"),
        (["a", "b", "c"], [1.0, 2.0, math.inf], "non-finite"),
    ],
)
def test_joint_positions_errors(names, positions, match):
    with pytest.raises(cv.JointStateError, match=match):
        cv.joint_positions(js(names, positions), NAMES)


def test_joint_trajectory_contract():
    msg = cv.make_joint_trajectory(NAMES, np.array([0.1, 0.2, 0.3]), cv.lookahead_time(2, 100.0),
                                   velocities=np.array([1.0, 0.0, -1.0]))
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (0, 0)
    assert list(msg.joint_names) == NAMES and len(msg.points) == 1
    p = msg.points[0]
    assert list(p.positions) == pytest.approx([0.1, 0.2, 0.3])
    assert list(p.velocities) == [1.0, 0.0, -1.0]
    assert (p.time_from_start.sec, p.time_from_start.nanosec) == (0, 20_000_000)
    assert len(cv.make_joint_trajectory(NAMES, np.zeros(3), 0.01).points[0].velocities) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_from_start": 0.0},
        {"time_from_start": -0.1},
        {"time_from_start": math.nan},
        {"positions": np.zeros(2)},
        {"positions": np.array([0.0, math.nan, 0.0])},
        {"joint_names": ["a", "a", "b"]},
        {"joint_names": []},
        {"velocities": np.zeros(4)},
    ],
)
def test_joint_trajectory_rejects(kwargs):
    args = {"joint_names": NAMES, "positions": np.zeros(3), "time_from_start": 0.02, **kwargs}
    with pytest.raises(ValueError):
        cv.make_joint_trajectory(**args)


def test_lookahead_time():
    assert cv.lookahead_time(3, 500.0) == pytest.approx(0.006)
    for ticks, rate in ((0, 100.0), (1, 0.0), (1, math.inf)):
        with pytest.raises(ValueError):
            cv.lookahead_time(ticks, rate)


def test_forward_command_in_controller_order():
    idx = cv.reorder_index(NAMES, ["c", "a", "b"])
    msg = cv.make_forward_command(np.array([1.0, 2.0, 3.0])[idx])
    assert list(msg.data) == [3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="joint sets differ"):
        cv.reorder_index(NAMES, ["a", "b"])
    with pytest.raises(ValueError):
        cv.reorder_index(NAMES, ["a", "b", "b"])
    with pytest.raises(ValueError):
        cv.make_forward_command(np.array([np.nan]))


def test_trajectory_point_and_durations():
    p = cv.make_trajectory_point(np.array([1.0, 2.0]), 1.5)
    assert list(p.positions) == [1.0, 2.0] and (p.time_from_start.sec, p.time_from_start.nanosec) == (1, 500_000_000)
    assert cv.stamp_seconds(Time(sec=3, nanosec=250_000_000)) == 3.25
    with pytest.raises(ValueError):
        cv.duration_msg(-1.0)


def test_image_to_model_rgb_bgr_and_padding():
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cam = CameraSpec("cam", 8, 8, 3)
    out = cv.image_to_model(Image(**encode_rgb8(rgb)), cam)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8 and (out[..., 0] == 200).all()
    bgr = rgb[..., ::-1]
    padded = np.zeros((8, 10 * 3 + 2), np.uint8)
    padded[:, :30] = bgr.reshape(8, 30)
    msg = Image(height=8, width=10, encoding="bgr8", step=32, data=padded.tobytes())
    np.testing.assert_array_equal(cv.image_to_model(msg, cam), out)
    mono = cv.image_to_model(msg, CameraSpec("m", 16, 16, 1))
    assert mono.shape == (16, 16, 1)


def test_image_errors_are_value_errors():
    bad = Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32))
    with pytest.raises(ImageDecodeError):
        cv.image_to_model(bad, CameraSpec("cam", 8, 8, 3))
    short = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(10))
    with pytest.raises(ValueError):
        cv.image_to_model(short, CameraSpec("cam", 8, 8, 3))
