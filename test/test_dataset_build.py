"""`sfp dataset build`: time alignment on synthetic bags with known answers, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streaming_flow_ros import cli
from streaming_flow_ros.data import align, fixtures
from streaming_flow_ros.data.bags import BagWriter, typestore
from streaming_flow_ros.data.build import BuildOptions, bag_to_episodes, build_dataset
from streaming_flow_ros.data.episodes import load_dataset

JOINTS = ("j1", "j2", "j3")
A = np.array([0.1, -0.2, 0.3])  # rad
B = np.array([0.5, 1.0, -0.25])  # rad/s
T0 = 5_000_000_000  # ns
CMD_TOPIC = "/arm/joint_trajectory"


def q(t_s: np.ndarray | float) -> np.ndarray:
    """Linear joint motion: exact under linear interpolation."""
    return A + B * np.asarray(t_s, np.float64)[..., None]


def cmd_value(k: int) -> np.ndarray:
    return np.array([k, 10.0 + k, -k], np.float64)


def bgr_image(k: int) -> tuple[dict, np.ndarray]:
    """A bgr8 Image's fields (24x32) and the RGB colour it decodes to."""
    img = np.zeros((24, 32, 3), np.uint8)
    img[...] = (k, 100, 200)  # B, G, R
    fields = {
        "height": 24,
        "width": 32,
        "encoding": "bgr8",
        "is_bigendian": 0,
        "step": 96,
        "data": img.reshape(-1),
    }
    return fields, np.array([200, 100, k], np.uint8)


def write_bag(
    path: Path,
    duration_s: float = 2.0,
    gap: tuple[float, float] | None = None,
    drop_joint_at: float | None = None,
    encoding_override: str | None = None,
    command_kind: str = "trajectory",
) -> Path:
    """Joints at ~100 Hz (jittered, shuffled order), rgb8 camera at 30 Hz from 0.02 s, bgr8 wrist
    camera at 15 Hz, commands at 10 Hz offset by 0.05 s. ``gap`` removes joint messages in
    (a, b) seconds."""
    ts = typestore()
    rng = np.random.default_rng(0)
    with BagWriter(path, storage="mcap") as w:
        for i in range(int(duration_s * 100) + 1):
            t = i / 100 + (rng.uniform(-0.003, 0.003) if 0 < i < duration_s * 100 else 0.0)
            if gap and gap[0] < t < gap[1]:
                continue
            order = rng.permutation(3)
            names = [JOINTS[k] for k in order]
            if drop_joint_at is not None and abs(t - drop_joint_at) < 0.006:
                names, order = names[:2], order[:2]
            w.joint_state("/joint_states", T0 + round(t * 1e9), names, q(t)[order], velocity=B[order])
        for k in range(int(duration_s * 30)):
            t = 0.02 + k / 30
            w.image("/cam", T0 + round(t * 1e9), np.full((48, 64, 3), k, np.uint8))
        for k in range(int(duration_s * 15)):
            t = k / 15
            fields, _ = bgr_image(k)
            if encoding_override:
                fields["encoding"] = encoding_override
            hdr = ts.types["std_msgs/msg/Header"](
                stamp=ts.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
            )
            w.raw(
                "/wrist",
                "sensor_msgs/msg/Image",
                T0 + round(t * 1e9),
                ts.types["sensor_msgs/msg/Image"](header=hdr, **fields),
            )
        for k in range(int(duration_s * 10)):
            t_ns = T0 + round((0.05 + k / 10) * 1e9)
            if command_kind == "trajectory":
                names = ["j3", "j1", "j2"]  # a different order than the dataset's
                vals = cmd_value(k)[[2, 0, 1]]
                w.joint_trajectory(CMD_TOPIC, t_ns, names, vals, 0.1)
            elif command_kind == "float64":
                w.float64_array(CMD_TOPIC, t_ns, cmd_value(k))
            else:
                w.trajectory_point(CMD_TOPIC, t_ns, cmd_value(k), 0.1)
    return path


OPTS = BuildOptions(
    cameras=(("scene", "/cam"), ("wrist", "/wrist")),
    joints=JOINTS,
    action_topic=CMD_TOPIC,
    rate_hz=10.0,
    image_height=16,
    image_width=16,
)


def test_alignment_is_exact(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag")
    joints, (ep,), _ = bag_to_episodes(bag, OPTS)
    assert joints == JOINTS
    # Overlap: joints from 0, scene camera from 0.02, wrist from 0, commands from 0.05 -> start 0.05.
    # Ends: joints 2.0, scene 0.02 + 59/30 = 1.9867, wrist 29/15 = 1.9333, commands 1.95 -> 1.9333.
    start = 0.05
    n = int(np.floor((29 / 15 - start) * 10 + 1e-9)) + 1
    assert len(ep) == n == 19
    t = start + np.arange(n) / 10
    np.testing.assert_allclose(ep.time, t - start, atol=1e-12)
    np.testing.assert_allclose(ep.state, q(t), atol=1e-6)  # float32 storage
    k_cmd = np.floor((t - 0.05) * 10 + 1e-9).astype(int)  # latest command at or before t
    np.testing.assert_array_equal(ep.action, np.stack([cmd_value(k) for k in k_cmd]).astype(np.float32))
    k_scene = np.floor((t - 0.02) * 30 + 1e-9).astype(int)
    assert ep.images["scene"].shape == (n, 16, 16, 3)
    np.testing.assert_array_equal(ep.images["scene"][:, 0, 0, 0], k_scene)
    k_wrist = np.floor(t * 15 + 1e-9).astype(int)
    want = np.stack([bgr_image(k)[1] for k in k_wrist])
    np.testing.assert_array_equal(ep.images["wrist"][:, 5, 5], want)  # bgr8 decoded to RGB


def test_next_state_actions(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag")
    opts = BuildOptions(cameras=(), joints=("j2", "j1"), action_source="next_state", rate_hz=20.0)
    joints, (ep,), _ = bag_to_episodes(bag, opts)
    t = np.arange(len(ep)) / 20  # state-only: starts at 0
    assert joints == ("j2", "j1") and len(ep) == 40  # 0 .. 1.95 s; the last needs a state at 2.0 s
    np.testing.assert_allclose(ep.state, q(t)[:, [1, 0]], atol=1e-6)
    np.testing.assert_allclose(ep.action, q(t + 0.05)[:, [1, 0]], atol=1e-6)
    np.testing.assert_allclose(ep.action[:-1], ep.state[1:], atol=1e-6)


@pytest.mark.parametrize("kind", ["float64", "point"])
def test_unnamed_commands_auto_detected(tmp_path: Path, kind: str) -> None:
    bag = write_bag(tmp_path / "bag", command_kind=kind)
    opts = BuildOptions(cameras=(), joints=("j3", "j1"), command_joints=JOINTS)  # topic auto-detected
    _, (ep,), _ = bag_to_episodes(bag, opts)
    np.testing.assert_array_equal(ep.action[0], cmd_value(0)[[2, 0]].astype(np.float32))


def test_gap_raises_or_splits(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", duration_s=3.0, gap=(1.0, 1.8))
    opts = BuildOptions(cameras=(), joints=JOINTS, action_source="next_state", max_gap_s=0.5)
    with pytest.raises(
        ValueError,
        match=r"gap of 0\.8\d* s in /joint_states between t=(0\.9|1\.0)\d* s and t=1\.[78]\d* s",
    ):
        bag_to_episodes(bag, opts)
    split = BuildOptions(
        cameras=(), joints=JOINTS, action_source="next_state", max_gap_s=0.5, split_on_gap=True
    )
    _, eps, info = bag_to_episodes(bag, split)
    assert len(eps) == 2 and [i["samples"] for i in info] == [len(e) for e in eps]
    for ep, t_start in zip(eps, [0.0, (info[1]["start_ns"] - T0) / 1e9]):
        t = t_start + ep.time
        np.testing.assert_allclose(ep.state, q(t), atol=1e-6)
    assert 9 <= len(eps[0]) <= 10 and 11 <= len(eps[1]) <= 12
    tiny = BuildOptions(
        cameras=(),
        joints=JOINTS,
        max_gap_s=0.5,
        split_on_gap=True,
        min_length=11,
        action_source="next_state",
    )
    assert len(bag_to_episodes(bag, tiny)[1]) == 1  # the short piece is dropped


def test_missing_topic_lists_available(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag")
    with pytest.raises(
        ValueError, match=r"'/camera/image_raw' not in bag .*available: .*/cam \(sensor_msgs/msg/Image"
    ):
        bag_to_episodes(bag, BuildOptions(joints=JOINTS, action_topic=CMD_TOPIC))
    with pytest.raises(ValueError, match="'/nope' not in bag"):
        bag_to_episodes(bag, BuildOptions(cameras=(), joints=JOINTS, action_topic="/nope"))
    with pytest.raises(ValueError, match="has type sensor_msgs/msg/Image, expected"):
        bag_to_episodes(bag, BuildOptions(cameras=(), joints=JOINTS, action_topic="/cam"))


def test_missing_joint_unknown_encoding_and_bad_joint_name(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "a", drop_joint_at=0.5)
    with pytest.raises(ValueError, match=r"/joint_states at t=\d+ ns lacks joints \['j\d'\]"):
        bag_to_episodes(bag, BuildOptions(cameras=(), joints=JOINTS, action_topic=CMD_TOPIC))
    bag = write_bag(tmp_path / "b", encoding_override="yuv422")
    with pytest.raises(ValueError, match=r"/wrist at t=\d+ ns: unsupported image encoding 'yuv422'"):
        bag_to_episodes(bag, OPTS)
    with pytest.raises(ValueError, match=r"lacks joints \['elbow'\]"):
        bag_to_episodes(bag, BuildOptions(cameras=(), joints=("j1", "elbow"), action_topic=CMD_TOPIC))


def test_no_overlap(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag") as w:
        for i in range(10):
            w.joint_state("/joint_states", T0 + i * 10**7, JOINTS, q(i / 100))
        for i in range(10):
            w.image("/camera/image_raw", T0 + 10**9 + i * 10**7, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="do not overlap"):
        bag_to_episodes(tmp_path / "bag", BuildOptions(action_source="next_state"))


def test_build_dataset_two_bags(tmp_path: Path) -> None:
    bags = [write_bag(tmp_path / "b0"), write_bag(tmp_path / "b1", duration_s=1.0)]
    out = build_dataset(bags, tmp_path / "ds", OPTS)
    spec, eps = load_dataset(out)  # validates every episode against the spec
    assert spec.state_names == spec.action_names == JOINTS and spec.data_rate_hz == 10.0
    assert [(c.name, c.height, c.width, c.channels) for c in spec.cameras] == [
        ("scene", 16, 16, 3),
        ("wrist", 16, 16, 3),
    ]
    assert len(eps) == 2
    src = json.loads((out / "dataset.json").read_text())["source"]
    assert [e["bag"] for e in src["episodes"]] == [str(b) for b in bags]
    with pytest.raises(ValueError, match="already holds a dataset"):
        build_dataset(bags, out, OPTS)
    build_dataset(bags[:1], out, OPTS, overwrite=True)
    assert len(load_dataset(out)[1]) == 1 and not (out / "episode_00001.npz").exists()


def test_cli_on_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = Path(__file__).parent / "fixtures" / fixtures.NAME
    out = tmp_path / "ds"
    rc = cli.main(
        ["dataset", "build", str(bag), "--out", str(out), "--image-size", "32x24", "--rate", "10"]
    )
    assert rc == 0 and "1 episode(s), 51 samples" in capsys.readouterr().out
    spec, (ep,) = load_dataset(out)
    assert spec.cameras[0].name == "camera" and ep.images["camera"].shape == (51, 24, 32, 3)
    np.testing.assert_allclose(ep.state, fixtures.joint_positions(ep.time), atol=1e-6)
    np.testing.assert_allclose(
        ep.action, fixtures.joint_positions(ep.time + fixtures.COMMAND_LOOKAHEAD_S), atol=1e-6
    )
    rc = cli.main(
        ["dataset", "build", str(bag), "--out", str(tmp_path / "x"), "--camera-topic", "cam=/nope"]
    )
    assert rc == 2 and "available: /camera/image_raw" in capsys.readouterr().err


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        BuildOptions(rate_hz=0.0)
    with pytest.raises(ValueError, match="action_source"):
        BuildOptions(action_source="future")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of 8..1024"):
        BuildOptions(image_height=4)


def test_align_primitives() -> None:
    np.testing.assert_array_equal(align.grid(10, 10 + 3 * 10**8, 10.0), 10 + np.arange(4) * 10**8)
    assert len(align.grid(10, 5, 10.0)) == 0
    t = np.array([0, 100, 200], np.int64)
    v = np.array([[0.0], [1.0], [4.0]])
    np.testing.assert_allclose(
        align.interp_linear(t, v, np.array([0, 50, 150, 200]))[:, 0], [0, 0.5, 2.5, 4]
    )
    np.testing.assert_array_equal(
        align.hold_latest(t, v, np.array([0, 99, 100, 250]))[:, 0], [0, 0, 1, 4]
    )
    a = align.Stream("/a", np.array([0, 10, 100, 110]), np.zeros((4, 1)))
    b = align.Stream("/b", np.array([5, 40, 70, 105]), np.zeros((4, 1)))
    assert align.pieces([a, b], 50, split=True) == [(5, 10), (100, 105)]
    with pytest.raises(ValueError, match="gap of"):
        align.pieces([a, b], 50, split=False)
    assert align.pieces([a, b], 200, split=False) == [(5, 105)]
