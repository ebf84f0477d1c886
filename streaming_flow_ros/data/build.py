"""`sfp dataset build`: rosbag2 recordings -> a training dataset (see :mod:`.episodes`).

Time alignment (all times are the bag's log/receive time, ns; header stamps are not used):

1. Required streams: joint states, every camera, and the command topic when
   ``action_source="command"``. The usable interval is the overlap of all of them, from the
   latest first message to the earliest last message.
2. A gap longer than ``max_gap_s`` between consecutive messages of a required stream, inside the
   overlap, either raises (default) or, with ``split_on_gap``, cuts the interval there; each piece
   becomes one episode. Otherwise one bag is one episode.
3. Each piece gets a uniform grid ``t_k = t_start + k / rate_hz`` (k = 0, 1, ...), and:

   - state: joint positions interpolated *linearly* at ``t_k``, joints matched by *name* (drivers
     do not guarantee order; every message must contain every joint);
   - action, ``command``: zero-order hold of the latest command at or before ``t_k``. A
     JointTrajectory contributes its *last* point's positions (the goal it sets), mapped by
     ``joint_names``; a JointTrajectoryPoint / Float64MultiArray carries no names, so its values
     are read in ``command_joints`` order (default: the dataset joints);
   - action, ``next_state``: the measured state interpolated at ``t_k + 1 / rate_hz`` (the grid
     ends one period early so that it exists);
   - images: the latest frame at or before ``t_k``, decoded and resized by :mod:`.image_codec`.

Pieces shorter than ``min_length`` samples are dropped with a warning.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..spec import CameraSpec, IOSpec
from . import align
from . import bags as B
from .align import Stream
from .episodes import Episode, save_dataset
from .image_codec import ImageDecodeError, decode_image, to_model_image

log = logging.getLogger(__name__)

COMMAND_TYPES = (B.JOINT_TRAJECTORY, B.TRAJECTORY_POINT, B.FLOAT64_ARRAY)


@dataclass(frozen=True)
class BuildOptions:
    """How to turn bags into episodes. Times in seconds, rates in Hz, image size in pixels.

    cameras: (name, topic) pairs; empty for a state-only dataset.
    joints: dataset joint order (state and action); None = the first JointState's order.
    action_topic: command topic; None = the one topic of a command type, if unique.
    command_joints: order of values in unnamed commands (Float64MultiArray, point); None = joints
        (an error when both are None: unnamed values cannot be bound to names by guesswork).
    action_lower/action_upper: per-joint bounds in ``joints`` order (``joints`` required).
    """

    joint_topic: str = "/joint_states"
    cameras: tuple[tuple[str, str], ...] = (("camera", "/camera/image_raw"),)
    joints: tuple[str, ...] | None = None
    action_source: Literal["command", "next_state"] = "command"
    action_topic: str | None = None
    command_joints: tuple[str, ...] | None = None
    rate_hz: float = 10.0
    image_height: int = 96
    image_width: int = 96
    image_channels: int = 3
    max_gap_s: float = 0.5
    split_on_gap: bool = False
    min_length: int = 2
    action_lower: tuple[float, ...] = ()
    action_upper: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.action_source not in ("command", "next_state"):
            raise ValueError(
                f"action_source must be 'command' or 'next_state', got {self.action_source!r}"
            )
        if not (np.isfinite(self.rate_hz) and 0.1 <= self.rate_hz <= 1000.0):
            raise ValueError(f"rate_hz must be in [0.1, 1000], got {self.rate_hz}")
        if not (np.isfinite(self.max_gap_s) and self.max_gap_s > 0):
            raise ValueError(f"max_gap_s must be > 0, got {self.max_gap_s}")
        if self.min_length < 2:
            raise ValueError(f"min_length must be >= 2 samples, got {self.min_length}")
        for label, bound in (("action_lower", self.action_lower), ("action_upper", self.action_upper)):
            if not bound:
                continue
            if self.joints is None:  # the first message's order is the driver's, not the user's
                raise ValueError(
                    f"{label} gives per-joint bounds: name their joints with joints / --joints "
                    "(the order of the values)"
                )
            if len(bound) != len(self.joints):
                raise ValueError(f"{label} has {len(bound)} values for joints {list(self.joints)}")
        names = [n for n, _ in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique: {names}")
        for name, _ in self.cameras:  # validates sizes and channels early
            CameraSpec(name, self.image_height, self.image_width, self.image_channels)


def _times(msgs: list[B.BagMessage]) -> np.ndarray:
    return np.array([m.t_ns for m in msgs], np.int64)


def _joint_rows(msgs: list[B.BagMessage], joints: tuple[str, ...], topic: str) -> np.ndarray:
    """(M, D) positions in ``joints`` order, matched by name per message."""
    out = np.empty((len(msgs), len(joints)), np.float64)
    for i, m in enumerate(msgs):
        names = list(m.msg.name)
        pos = np.asarray(m.msg.position, np.float64)
        if len(pos) != len(names):
            raise ValueError(f"{topic} at t={m.t_ns} ns: {len(names)} names but {len(pos)} positions")
        index = {n: k for k, n in enumerate(names)}
        missing = [j for j in joints if j not in index]
        if missing:
            raise ValueError(f"{topic} at t={m.t_ns} ns lacks joints {missing} (message has {names})")
        out[i] = pos[[index[j] for j in joints]]
    return out


def _command_rows(
    msgs: list[B.BagMessage], joints: tuple[str, ...], cmd_joints: tuple[str, ...] | None, topic: str
):
    """(times, (M, D) positions) of the commands; empty trajectories are skipped. Unnamed
    commands (point, Float64MultiArray) are read in ``cmd_joints`` order, which must be given:
    the controller's order is not the /joint_states order in general."""
    times, rows = [], []
    order = None
    for m in msgs:
        if m.msgtype == B.JOINT_TRAJECTORY:
            if not len(m.msg.points):
                continue  # an empty trajectory cancels the goal in JTC; it commands no position
            names, values = list(m.msg.joint_names), np.asarray(m.msg.points[-1].positions, np.float64)
        else:
            values = np.asarray(
                m.msg.positions if m.msgtype == B.TRAJECTORY_POINT else m.msg.data, np.float64
            )
            if cmd_joints is None:
                raise ValueError(
                    f"{topic} carries unnamed positions ({m.msgtype}): give --command-joints (or "
                    "--joints) naming the controller's joint order"
                )
            names = list(cmd_joints)
        if len(values) != len(names):
            raise ValueError(f"{topic} at t={m.t_ns} ns: {len(values)} positions for joints {names}")
        index = {n: k for k, n in enumerate(names)}
        missing = [j for j in joints if j not in index]
        if missing:
            raise ValueError(f"{topic} at t={m.t_ns} ns lacks joints {missing} (command has {names})")
        order = [index[j] for j in joints]
        times.append(m.t_ns)
        rows.append(values[order])
    if not rows:
        raise ValueError(f"{topic}: no command with positions")
    return np.asarray(times, np.int64), np.stack(rows)


def _image_rows(msgs: list[B.BagMessage], opts: BuildOptions, topic: str) -> np.ndarray:
    out = np.empty((len(msgs), opts.image_height, opts.image_width, opts.image_channels), np.uint8)
    for i, m in enumerate(msgs):
        try:
            out[i] = to_model_image(
                decode_image(m.msg), opts.image_height, opts.image_width, opts.image_channels
            )
        except ImageDecodeError as e:
            raise ValueError(f"{topic} at t={m.t_ns} ns: {e}") from e
    return out


def _pick_action_topic(reader: B.BagReader, opts: BuildOptions) -> str:
    if opts.action_topic:
        reader.require(opts.action_topic, COMMAND_TYPES)
        return opts.action_topic
    found = [t.name for t in reader.topics.values() if t.msgtype in COMMAND_TYPES]
    if len(found) != 1:
        raise ValueError(
            f"{reader.path}: cannot auto-detect the command topic ({len(found)} candidates {found}); "
            f"pass --action-topic. Available: {reader.describe()}"
        )
    return found[0]


def read_streams(
    bag: Path, opts: BuildOptions, joints: tuple[str, ...] | None
) -> tuple[tuple[str, ...], list[Stream]]:
    """Read the required topics of one bag. Returns (joints, [joints, cameras..., command?])."""
    with B.BagReader(bag) as r:
        r.require(opts.joint_topic, B.JOINT_STATE)
        for _, topic in opts.cameras:
            r.require(topic, B.IMAGE)
        cmd_topic = _pick_action_topic(r, opts) if opts.action_source == "command" else None
        topics = [opts.joint_topic, *(t for _, t in opts.cameras), *([cmd_topic] if cmd_topic else [])]
        by_topic: dict[str, list[B.BagMessage]] = {t: [] for t in topics}
        for m in r.messages(sorted(set(topics))):
            by_topic[m.topic].append(m)
    for t, msgs in by_topic.items():
        if not msgs:
            raise ValueError(f"{bag}: topic {t} has no messages")
    js = by_topic[opts.joint_topic]
    joints = joints or opts.joints or tuple(str(n) for n in js[0].msg.name)
    if not joints:
        raise ValueError(f"{bag}: first message on {opts.joint_topic} has no joint names")
    streams = [Stream(opts.joint_topic, _times(js), _joint_rows(js, joints, opts.joint_topic))]
    for name, topic in opts.cameras:
        msgs = by_topic[topic]
        streams.append(Stream(topic, _times(msgs), _image_rows(msgs, opts, topic), {"camera": name}))
    if cmd_topic:
        t, v = _command_rows(by_topic[cmd_topic], joints, opts.command_joints or opts.joints, cmd_topic)
        streams.append(Stream(cmd_topic, t, v, {"command": True}))
    return joints, streams


def resample(streams: list[Stream], lo_ns: int, hi_ns: int, opts: BuildOptions) -> Episode | None:
    """One episode on the uniform grid over [lo_ns, hi_ns]; None if shorter than min_length.

    ``streams`` as returned by :func:`read_streams` (joints first, command last if any).
    """
    step_ns = round(1e9 / opts.rate_hz)
    if opts.action_source == "next_state":
        hi_ns -= step_ns  # the last sample needs a measured state one period later
    t = align.grid(lo_ns, hi_ns, opts.rate_hz)  # (N,) ns
    if len(t) < opts.min_length:
        return None
    js = streams[0]
    state = align.interp_linear(js.t_ns, js.values, t)
    if opts.action_source == "next_state":
        action = align.interp_linear(js.t_ns, js.values, t + step_ns)
    else:
        action = align.hold_latest(streams[-1].t_ns, streams[-1].values, t)
    images = {
        s.extra["camera"]: align.hold_latest(s.t_ns, s.values, t) for s in streams if "camera" in s.extra
    }
    return Episode(
        state=state.astype(np.float32),
        action=action.astype(np.float32),
        images=images,
        time=(t - lo_ns) / 1e9,
    )


def bag_to_episodes(
    bag: str | Path, opts: BuildOptions, joints: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], list[Episode], list[dict]]:
    """Episodes of one bag. Returns (joints, episodes, per-episode source info)."""
    bag = Path(bag)
    joints, streams = read_streams(bag, opts, joints)
    episodes, info = [], []
    max_gap_ns = round(opts.max_gap_s * 1e9)
    for lo, hi in align.pieces(streams, max_gap_ns, opts.split_on_gap, str(bag)):
        ep = resample(streams, lo, hi, opts)
        if ep is None:
            log.warning(
                "%s: dropping piece [%d, %d] ns: shorter than %d samples", bag, lo, hi, opts.min_length
            )
            continue
        episodes.append(ep)
        info.append({"bag": str(bag), "start_ns": lo, "samples": len(ep)})
    log.info("%s: %d episode(s), %d samples", bag, len(episodes), sum(len(e) for e in episodes))
    return joints, episodes, info


def build_dataset(bags: list[Path], out: Path, options: BuildOptions, overwrite: bool = False) -> Path:
    """Build a dataset directory at ``out`` from ``bags`` (see the module docstring)."""
    if not bags:
        raise ValueError("no bags given")
    out = Path(out)
    if (out / "dataset.json").exists() and not overwrite:
        raise ValueError(f"{out} already holds a dataset; pass overwrite=True / --overwrite")
    joints = options.joints
    episodes: list[Episode] = []
    info: list[dict] = []
    for bag in bags:
        joints, eps, inf = bag_to_episodes(bag, options, joints)
        episodes += eps
        info += inf
    if not episodes:
        raise ValueError(
            f"no episode of at least {options.min_length} samples in {[str(b) for b in bags]}"
        )
    assert joints is not None
    spec = IOSpec(
        state_names=joints,
        action_names=joints,
        cameras=tuple(
            CameraSpec(n, options.image_height, options.image_width, options.image_channels)
            for n, _ in options.cameras
        ),
        data_rate_hz=options.rate_hz,
        action_lower=options.action_lower,
        action_upper=options.action_upper,
    )
    if overwrite:
        for old in out.glob("episode_*.npz"):
            old.unlink()
    source = {"builder": "sfp dataset build", "options": asdict(options), "episodes": info}
    path = save_dataset(out, spec, episodes, source=source)
    log.info("wrote %s: %d episodes, %d samples", path, len(episodes), sum(len(e) for e in episodes))
    return path


# -- CLI ------------------------------------------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return names


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in _names(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


def _size(text: str) -> tuple[int, int]:
    """ "WIDTHxHEIGHT" -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"image size must be WIDTHxHEIGHT like 96x96, got {text!r}"
        ) from e
    return w, h


def _camera(text: str) -> tuple[str, str] | None:
    if text.lower() == "none":
        return None
    name, sep, topic = text.partition("=")
    if not sep or not name or not topic.startswith("/"):
        raise argparse.ArgumentTypeError(f"camera must be NAME=/topic (or 'none'), got {text!r}")
    return name, topic


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bags",
        nargs="+",
        type=Path,
        metavar="BAG",
        help="rosbag2 directories or .mcap/.db3 files, or one LeRobotDataset v3.0 directory (meta/info.json; "
        "then only --out, --overwrite, --image-size and --image-channels apply, the rate is its fps)",
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    parser.add_argument("--joint-topic", default="/joint_states", help="sensor_msgs/JointState topic")
    parser.add_argument(
        "--camera-topic",
        action="append",
        type=_camera,
        metavar="NAME=/topic",
        help="camera (repeatable); default camera=/camera/image_raw; 'none' for a state-only dataset",
    )
    parser.add_argument(
        "--joints", type=_names, help="j1,j2,...: dataset joint order (default: first JointState)"
    )
    parser.add_argument(
        "--action-source",
        choices=("command", "next_state"),
        default="command",
        help="commanded positions (zero-order hold) or the next measured state",
    )
    parser.add_argument(
        "--action-topic",
        help="JointTrajectory / JointTrajectoryPoint / Float64MultiArray "
        "topic (default: the only such topic in the bag)",
    )
    parser.add_argument(
        "--command-joints",
        type=_names,
        help="joint order of unnamed commands (Float64MultiArray, point); default --joints",
    )
    parser.add_argument("--rate", type=float, default=10.0, help="data rate, Hz")
    parser.add_argument("--image-size", type=_size, default=(96, 96), help="WIDTHxHEIGHT, pixels")
    parser.add_argument(
        "--image-channels", type=int, choices=(1, 3), default=3, help="3 = RGB, 1 = mono"
    )
    parser.add_argument("--max-gap", type=float, default=0.5, help="largest allowed gap in a stream, s")
    parser.add_argument(
        "--split-on-gap", action="store_true", help="split episodes at gaps instead of failing"
    )
    parser.add_argument(
        "--min-length", type=int, default=2, help="drop episodes shorter than this, samples"
    )
    parser.add_argument(
        "--action-lower", type=_floats, default=(), help="optional lower action bounds, rad"
    )
    parser.add_argument(
        "--action-upper", type=_floats, default=(), help="optional upper action bounds, rad"
    )


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    """BuildOptions from parsed CLI arguments."""
    if args.camera_topic is None:
        cameras: tuple[tuple[str, str], ...] = (("camera", "/camera/image_raw"),)
    else:
        cameras = tuple(c for c in args.camera_topic if c is not None)
    width, height = args.image_size
    return BuildOptions(
        joint_topic=args.joint_topic,
        cameras=cameras,
        joints=args.joints,
        action_source=args.action_source,
        action_topic=args.action_topic,
        command_joints=args.command_joints,
        rate_hz=args.rate,
        image_height=height,
        image_width=width,
        image_channels=args.image_channels,
        max_gap_s=args.max_gap,
        split_on_gap=args.split_on_gap,
        min_length=args.min_length,
        action_lower=args.action_lower,
        action_upper=args.action_upper,
    )


def run(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    from . import lerobot

    if len(args.bags) == 1 and not args.bags[0].exists() and lerobot.HUB_ID.match(str(args.bags[0])):
        lerobot.check_local_path(args.bags[0])  # maybe a hub id such as lerobot/pusht: download it first
    if any(lerobot.is_lerobot_dataset(b) for b in args.bags):  # meta/info.json: a LeRobot dataset
        if len(args.bags) != 1:
            raise ValueError(f"give one LeRobot dataset directory at a time, got {[str(b) for b in args.bags]}")
        path = lerobot.build_from_lerobot(
            args.bags[0], args.out, opts.image_height, opts.image_width, opts.image_channels, args.overwrite
        )
    else:
        path = build_dataset(list(args.bags), args.out, opts, overwrite=args.overwrite)
    from .episodes import load_dataset

    spec, episodes = load_dataset(path)
    print(
        f"{path}: {len(episodes)} episode(s), {sum(len(e) for e in episodes)} samples at {spec.data_rate_hz} Hz, "
        f"joints {list(spec.state_names)}, cameras {[c.name for c in spec.cameras]}"
    )
    return 0
