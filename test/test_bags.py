"""rosbag2 writer/reader: round trips in both storages, type hashes, clear errors, the fixture."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from streaming_flow_ros.data import fixtures
from streaming_flow_ros.data.bags import (
    FLOAT64_ARRAY,
    IMAGE,
    JOINT_STATE,
    JOINT_TRAJECTORY,
    TRAJECTORY_POINT,
    BagReader,
    BagWriter,
    read_messages,
    typestore,
)
from streaming_flow_ros.data.image_codec import decode_image

FIXTURE = Path(__file__).parent / "fixtures" / fixtures.NAME
T0 = 1_000_000_000_000


def write_all_kinds(path: Path, storage: str) -> Path:
    """Two messages of every kind the writer offers."""
    ts = typestore()
    with BagWriter(path, storage=storage, best_effort_topics=["/cam"]) as w:
        for k in range(2):
            t = T0 + k * 10_000_000
            w.joint_state("/js", t, ["a", "b"], [k, -k], [0.5, 0.25], [1.0, 2.0])
            w.image("/cam", t, np.full((4, 5, 3), (k, 2, 3), np.uint8))
            w.image("/mono", t, np.full((4, 5), 7 + k, np.uint8))
            w.image("/mono1", t, np.full((4, 5, 1), 9, np.uint8))
            w.joint_trajectory("/jt", t, ["a", "b"], [k, 2.0], 0.25, velocities=[0.1, 0.2])
            w.trajectory_point("/pt", t, [k, 3.0], 0.5)
            w.float64_array("/fa", t, [k, 4.0])
            msg = ts.types["std_msgs/msg/String"](data=f"hello {k}")
            w.raw("/str", "std_msgs/String", t, msg)
            w.raw("/str_cdr", "std_msgs/msg/String", t, ts.serialize_cdr(msg, "std_msgs/msg/String"))
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_all_kinds(tmp_path: Path, storage: str) -> None:
    bag = write_all_kinds(tmp_path / "bag", storage)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == storage
    assert isinstance(meta["custom_data"], dict)
    with BagReader(bag) as r:
        assert r.topics["/js"].msgtype == JOINT_STATE and r.topics["/js"].count == 2
        assert r.topics["/cam"].reliable is False and r.topics["/js"].reliable is True
        assert r.start_ns == T0 and r.end_ns == T0 + 10_000_000
        msgs = {(m.topic, m.t_ns): m for m in r.messages()}
    assert len(msgs) == 2 * 9
    for k in range(2):
        t = T0 + k * 10_000_000
        js = msgs["/js", t].msg
        assert list(js.name) == ["a", "b"] and js.position.tolist() == [k, -k]
        assert js.velocity.tolist() == [0.5, 0.25] and js.effort.tolist() == [1.0, 2.0]
        assert js.header.stamp.sec * 10**9 + js.header.stamp.nanosec == t
        cam = msgs["/cam", t].msg
        assert cam.encoding == "rgb8" and cam.header.stamp.sec * 10**9 + cam.header.stamp.nanosec == t
        assert (decode_image(cam) == np.array([k, 2, 3], np.uint8)).all()
        assert msgs["/mono", t].msg.encoding == "mono8"
        assert decode_image(msgs["/mono", t].msg).shape == (4, 5, 1)
        assert (decode_image(msgs["/mono", t].msg) == 7 + k).all()
        assert (decode_image(msgs["/mono1", t].msg) == 9).all()
        jt = msgs["/jt", t].msg
        assert msgs["/jt", t].msgtype == JOINT_TRAJECTORY
        assert (jt.header.stamp.sec, jt.header.stamp.nanosec) == (0, 0)  # JTC: start now
        assert list(jt.joint_names) == ["a", "b"] and len(jt.points) == 1
        assert jt.points[0].positions.tolist() == [k, 2.0]
        assert jt.points[0].velocities.tolist() == [0.1, 0.2]
        assert (jt.points[0].time_from_start.sec, jt.points[0].time_from_start.nanosec) == (
            0,
            250_000_000,
        )
        pt = msgs["/pt", t]
        assert pt.msgtype == TRAJECTORY_POINT and pt.msg.positions.tolist() == [k, 3.0]
        assert pt.msg.time_from_start.nanosec == 500_000_000
        fa = msgs["/fa", t]
        assert fa.msgtype == FLOAT64_ARRAY and fa.msg.data.tolist() == [k, 4.0]
        assert msgs["/str", t].msg.data == f"hello {k}" == msgs["/str_cdr", t].msg.data


def test_type_hashes_match_the_ros_install(tmp_path: Path) -> None:
    """metadata.yaml carries the RIHS01 hashes the real message packages declare."""
    share = Path(sys.prefix) / "share"
    bag = write_all_kinds(tmp_path / "bag", "mcap")
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    checked = 0
    for entry in meta["topics_with_message_count"]:
        tm = entry["topic_metadata"]
        desc = share / f"{tm['type']}.json"
        if not desc.is_file():
            continue
        hashes = json.loads(desc.read_text())["type_hashes"]
        assert tm["type_description_hash"] == hashes[0]["hash_string"], tm["type"]
        checked += 1
    if checked == 0:
        pytest.skip(f"no ROS type descriptions under {share}")


def test_topic_filter_and_unknown_topic(tmp_path: Path) -> None:
    bag = write_all_kinds(tmp_path / "bag", "mcap")
    assert {m.topic for m in read_messages(bag, ["/js", "/fa"])} == {"/js", "/fa"}
    with BagReader(bag) as r:
        with pytest.raises(
            ValueError, match=r"'/nope' not in bag .*available: .*/js \(sensor_msgs/msg/JointState"
        ):
            list(r.messages(["/nope"]))
        with pytest.raises(ValueError, match="has type sensor_msgs/msg/JointState, expected"):
            r.require("/js", IMAGE)


def test_bare_storage_file_is_readable(tmp_path: Path) -> None:
    bag = write_all_kinds(tmp_path / "bag", "mcap")
    assert len(read_messages(bag / "bag.mcap", ["/js"])) == 2


@pytest.mark.parametrize("cut", [0.5, 0.95, 0.0])
def test_truncated_mcap_is_a_value_error_naming_the_file(tmp_path: Path, cut: float) -> None:
    bag = write_all_kinds(tmp_path / "bag", "mcap")
    f = bag / "bag.mcap"
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError, match=r"bag\.mcap"), BagReader(bag) as r:
        list(r.messages())


def test_corrupt_sqlite_is_a_value_error(tmp_path: Path) -> None:
    bag = write_all_kinds(tmp_path / "bag", "sqlite3")
    f = bag / "bag.db3"
    data = bytearray(f.read_bytes())
    data[100:4000] = b"\xff" * 3900
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bag\.db3"), BagReader(bag) as r:
        list(r.messages())


def test_missing_and_non_bag_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        BagReader(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="without metadata.yaml"):
        BagReader(tmp_path / "empty")
    (tmp_path / "old.bag").write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(ValueError, match="ROS 1 bag"):
        BagReader(tmp_path / "old.bag")
    bad = write_all_kinds(tmp_path / "bag", "mcap")
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9")
    with pytest.raises(ValueError, match="cannot open bag"):
        BagReader(bad)


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    (tmp_path / "exists").mkdir()
    with pytest.raises(ValueError, match="exists already"):
        BagWriter(tmp_path / "exists")
    with pytest.raises(ValueError, match="storage must be"):
        BagWriter(tmp_path / "x", storage="rosbag1")  # type: ignore[arg-type]
    with BagWriter(tmp_path / "b") as w:
        with pytest.raises(ValueError, match="unknown message type 'foo_msgs/msg/Bar'"):
            w.raw("/x", "foo_msgs/msg/Bar", 0, b"")
        with pytest.raises(ValueError, match="image must be"):
            w.image("/cam", 0, np.zeros((4, 4, 2), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            w.image("/cam", 0, np.zeros((4, 4, 3), np.float32))
        with pytest.raises(ValueError, match="1 values for 2 names"):
            w.joint_state("/js", 0, ["a", "b"], [1.0])
        with pytest.raises(ValueError, match="non-finite"):
            w.joint_state("/js", 0, ["a"], [float("nan")])
        with pytest.raises(ValueError, match="t_ns"):
            w.joint_state("/js", -1, ["a"], [0.0])
        with pytest.raises(ValueError, match="absolute"):
            w.float64_array("rel", 0, [1.0])
        w.float64_array("/x", 0, [1.0])
        with pytest.raises(ValueError, match="already has type std_msgs/msg/Float64MultiArray"):
            w.trajectory_point("/x", 1, [1.0])
    with pytest.raises(ValueError, match="not open"):
        w.float64_array("/x", 2, [1.0])


def test_fixture_bag_content() -> None:
    with BagReader(FIXTURE) as r:
        counts = {t: i.count for t, i in r.topics.items()}
        assert counts == {
            fixtures.JOINT_TOPIC: 501,
            fixtures.CAMERA_TOPIC: 151,
            fixtures.COMMAND_TOPIC: 51,
        }
        for m in r.messages([fixtures.JOINT_TOPIC]):
            t = (m.t_ns - fixtures.T0_NS) / 1e9
            np.testing.assert_allclose(m.msg.position, fixtures.joint_positions(t), atol=1e-12)
    assert sum(f.stat().st_size for f in FIXTURE.iterdir()) < 500_000


def test_fixture_regenerates_identically(tmp_path: Path) -> None:
    new = fixtures.write_fixture_bag(tmp_path)
    for f in FIXTURE.iterdir():
        assert (new / f.name).read_bytes() == f.read_bytes(), (
            f"{f.name} drifted: regenerate (test/fixtures/README.md)"
        )
    shutil.rmtree(new)
