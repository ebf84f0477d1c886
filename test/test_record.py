"""`sfp dataset record-sim`: expert demos as rosbag2 bags, read back with rosbags' AnyReader."""

import json

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from streaming_flow_ros.cli import main as sfp_main
from streaming_flow_ros.data.image_codec import decode_image
from streaming_flow_ros.sim import record


def _read(path):
    out = {}
    with AnyReader([path]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, t_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t_ns, reader.deserialize(raw, conn.msgtype)))
    return types, out


def test_record_two_mcap_episodes_via_cli(tmp_path):
    out = tmp_path / "bags"
    assert sfp_main(["dataset", "record-sim", "--episodes", "2", "--out", str(out), "--seed", "1"]) == 0
    bags = sorted(p for p in out.iterdir() if p.is_dir())
    assert [b.name for b in bags] == ["episode_00000", "episode_00001"]
    index = json.loads((out / "episodes.json").read_text())
    assert len(index["episodes"]) == 2 and index["storage"] == "mcap"
    for bag, entry in zip(bags, index["episodes"]):
        assert (bag / "metadata.yaml").is_file()
        assert list(bag.glob("*.mcap"))
        assert entry["metrics"]["success"] and entry["side"] in ("left", "right")
        types, msgs = _read(bag)
        assert types == {
            record.JOINT_STATES: "sensor_msgs/msg/JointState",
            record.IMAGE: "sensor_msgs/msg/Image",
            record.TRAJECTORY: "trajectory_msgs/msg/JointTrajectory",
            record.ACTION: "trajectory_msgs/msg/JointTrajectoryPoint",
        }
        js = msgs[record.JOINT_STATES]
        span = (js[-1][0] - js[0][0]) * 1e-9
        assert len(js) == pytest.approx(span * 100 + 1, abs=2)  # 100 Hz
        assert len(msgs[record.IMAGE]) == pytest.approx(span * 30 + 1, abs=2)  # 30 Hz
        assert len(msgs[record.TRAJECTORY]) == len(msgs[record.ACTION]) == pytest.approx(span * 10, abs=2)
        t0, first = js[0]
        assert list(first.name) == ["joint1", "joint2", "joint3"] and len(first.velocity) == 3
        assert first.header.stamp.sec * 10**9 + first.header.stamp.nanosec == t0
        _, img = msgs[record.IMAGE][0]
        assert (img.encoding, img.height, img.width, img.step) == ("rgb8", 96, 96, 288)
        assert decode_image(img).shape == (96, 96, 3)
        _, traj = msgs[record.TRAJECTORY][0]
        assert traj.header.stamp.sec == 0 and traj.header.stamp.nanosec == 0  # JTC "start now"
        assert len(traj.points) == 1 and traj.points[0].time_from_start.nanosec == 100_000_000
        assert list(traj.joint_names) == ["joint1", "joint2", "joint3"]
        # The last command is where the arm ends up.
        _, last_action = msgs[record.ACTION][-1]
        np.testing.assert_allclose(last_action.positions, js[-1][1].position, atol=0.02)
        # Log times are ordered across topics.
        times = sorted(t for topic in msgs.values() for t, _ in topic)
        assert times[0] == t0


def test_record_sqlite3_and_refuse_to_overwrite(tmp_path):
    paths = record.record_expert_bags(1, tmp_path, seed=2, storage="sqlite3")
    assert list(paths[0].glob("*.db3")) and (paths[0] / "metadata.yaml").is_file()
    types, _ = _read(paths[0])
    assert record.JOINT_STATES in types
    with pytest.raises(ValueError):
        record.record_expert_bags(1, tmp_path, seed=2)  # episode_00000 exists already
    with pytest.raises(ValueError):
        record.record_expert_bags(1, tmp_path / "x", storage="zip")
