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
   - action from *several* command topics (``action_topics``, e.g. an arm's JTC topic and a
     gripper's Float64MultiArray): each topic commands a set of joints (its messages' names, or
     the names given with the topic; unnamed messages need them), each is held on its own, and
     the action row is assembled by joint name. Every dataset joint must be commanded by exactly
     one topic; every topic is a required stream (overlap, gaps).
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
    action_topics: several command topics merged by joint name, instead of ``action_topic``:
        ``(topic, names)`` pairs; ``names`` are the joints the topic commands, in its value
        order for unnamed messages (required for those), or None for JointTrajectory topics
        (their messages name their joints; given names must then match them as a set).
    action_lower/action_upper: per-joint bounds in ``joints`` order (``joints`` required).
    """

    joint_topic: str = "/joint_states"
    cameras: tuple[tuple[str, str], ...] = (("camera", "/camera/image_raw"),)
    joints: tuple[str, ...] | None = None
    action_source: Literal["command", "next_state"] = "command"
    action_topic: str | None = None
    command_joints: tuple[str, ...] | None = None
    action_topics: tuple[tuple[str, tuple[str, ...] | None], ...] = ()
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
        if self.action_topics:
            if self.action_topic is not None or self.command_joints is not None:
                raise ValueError(
                    "action_topics (several command topics) replaces action_topic and command_joints: "
                    "name each topic's joints with the topic (--action-topic TOPIC=j1,j2)"
                )
            if self.action_source != "command":
                raise ValueError("action_topics needs action_source='command'")
            topics = [t for t, _ in self.action_topics]
            if len(set(topics)) != len(topics):
                raise ValueError(f"action topics must be unique: {topics}")
            for topic, names in self.action_topics:
                if not topic.startswith("/"):
                    raise ValueError(f"action topic must be absolute, got {topic!r}")
                if names is not None and (not names or len(set(names)) != len(names)):
                    raise ValueError(f"{topic}: joint names must be non-empty and unique, got {list(names)}")
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
    msgs: list[B.BagMessage], joints: tuple[str, ...], cmd_joints: tuple[str, ...] | None, topic: str,
    exact: bool = False,
):
    """(times, (M, D) positions in ``joints`` order) of the commands; empty trajectories are
    skipped. Unnamed commands (point, Float64MultiArray) are read in ``cmd_joints`` order, which
    must be given: the controller's order is not the /joint_states order in general. ``exact``:
    named messages must command exactly the joints ``cmd_joints`` (as a set)."""
    times, rows = [], []
    order = None
    for m in msgs:
        if m.msgtype == B.JOINT_TRAJECTORY:
            if not len(m.msg.points):
                continue  # an empty trajectory cancels the goal in JTC; it commands no position
            names, values = list(m.msg.joint_names), np.asarray(m.msg.points[-1].positions, np.float64)
            if exact and cmd_joints is not None and set(names) != set(cmd_joints):
                raise ValueError(
                    f"{topic} at t={m.t_ns} ns commands joints {names}, not the ones given with the "
                    f"topic {list(cmd_joints)}"
                )
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


def _command_sets(
    first: dict[str, B.BagMessage], opts: BuildOptions, joints: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """For each of ``opts.action_topics``: the dataset joints it commands (dataset order).
    Every dataset joint must be commanded by exactly one topic."""
    owner: dict[str, str] = {}
    out: dict[str, tuple[str, ...]] = {}
    for topic, names in opts.action_topics:
        m = first[topic]
        if names is None:
            if m.msgtype != B.JOINT_TRAJECTORY:
                raise ValueError(
                    f"{topic} carries unnamed positions ({m.msgtype}): name its joints with the topic, "
                    f"--action-topic {topic}=j1,j2,... (its value order)"
                )
            names = tuple(str(n) for n in m.msg.joint_names)
        for j in names:
            if j in owner and j in joints:
                raise ValueError(f"joint {j!r} is commanded by both {owner[j]} and {topic}: give it to one")
            owner[j] = topic
        out[topic] = tuple(j for j in joints if j in set(names))
    missing = [j for j in joints if j not in owner]
    if missing:
        raise ValueError(
            f"no action topic commands joints {missing} (topics: "
            f"{ {t: list(v) for t, v in out.items()} }); add a topic or restrict --joints"
        )
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
        if opts.action_topics:
            cmd_topics = [t for t, _ in opts.action_topics]
            for t in cmd_topics:
                r.require(t, COMMAND_TYPES)
        elif opts.action_source == "command":
            cmd_topics = [_pick_action_topic(r, opts)]
        else:
            cmd_topics = []
        topics = [opts.joint_topic, *(t for _, t in opts.cameras), *cmd_topics]
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
    if opts.action_topics:
        sets = _command_sets({t: by_topic[t][0] for t in cmd_topics}, opts, joints)
        for topic, names in opts.action_topics:
            t, v = _command_rows(by_topic[topic], sets[topic], names, topic, exact=True)
            cols = np.array([joints.index(j) for j in sets[topic]], np.int64)
            streams.append(Stream(topic, t, v, {"command": True, "columns": cols}))
    elif cmd_topics:
        (cmd_topic,) = cmd_topics
        t, v = _command_rows(by_topic[cmd_topic], joints, opts.command_joints or opts.joints, cmd_topic)
        streams.append(Stream(cmd_topic, t, v, {"command": True, "columns": np.arange(len(joints))}))
    return joints, streams


def resample(streams: list[Stream], lo_ns: int, hi_ns: int, opts: BuildOptions) -> Episode | None:
    """One episode on the uniform grid over [lo_ns, hi_ns]; None if shorter than min_length.

    ``streams`` as returned by :func:`read_streams` (joints first, then cameras and commands;
    each command stream fills its ``columns`` of the action, held on its own).
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
        action = np.full((len(t), js.values.shape[1]), np.nan)
        for s in streams:
            if s.extra.get("command"):
                action[:, s.extra["columns"]] = align.hold_latest(s.t_ns, s.values, t)
        assert np.isfinite(action).all(), "every action column is commanded (checked in read_streams)"
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
    opts = asdict(options)
    opts["action_topics"] = [[t, None if n is None else list(n)] for t, n in options.action_topics]
    source = {"builder": "sfp dataset build", "options": opts, "episodes": info}
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


def _action_topic(text: str) -> tuple[str, tuple[str, ...] | None]:
    """ "/topic" or "/topic=j1,j2" -> (topic, names or None)."""
    topic, sep, names = text.partition("=")
    if not topic.startswith("/"):
        raise argparse.ArgumentTypeError(f"action topic must be /topic or /topic=j1,j2,..., got {text!r}")
    return topic, (_names(names) if sep else None)


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
        action="append",
        type=_action_topic,
        metavar="/topic[=j1,j2,...]",
        help="JointTrajectory / JointTrajectoryPoint / Float64MultiArray topic (default: the only such "
        "topic in the bag). Repeat it to merge several controllers by joint name (arm + gripper), "
        "each held on its own: =j1,j2 names the joints a topic commands, in value order (required "
        "for unnamed messages; a JointTrajectory names its own), e.g. --action-topic "
        "/arm/joint_trajectory --action-topic /gripper_controller/commands=finger_joint",
    )
    parser.add_argument(
        "--command-joints",
        type=_names,
        help="joint order of unnamed commands (Float64MultiArray, point) on the one --action-topic; "
        "default --joints (with several topics, name the joints per topic instead)",
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
    topics = args.action_topic or []
    action_topic, action_topics, command_joints = None, (), args.command_joints
    if len(topics) == 1 and topics[0][1] is None:
        action_topic = topics[0][0]  # one topic: --command-joints / --joints name unnamed values
    elif len(topics) == 1 and command_joints is not None:
        raise ValueError("give the topic's joints either with --action-topic TOPIC=j1,... or --command-joints")
    elif topics:
        if command_joints is not None:
            raise ValueError(
                "--command-joints is ambiguous with several --action-topic: name each topic's joints "
                "(--action-topic TOPIC=j1,j2,...)"
            )
        action_topics = tuple(topics)
    return BuildOptions(
        joint_topic=args.joint_topic,
        cameras=cameras,
        joints=args.joints,
        action_source=args.action_source,
        action_topic=action_topic,
        command_joints=command_joints,
        action_topics=action_topics,
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


def options_from_argv(argv: list[str]) -> BuildOptions:
    """BuildOptions from ``sfp dataset build`` arguments (``argv`` without the command)."""
    parser = argparse.ArgumentParser(prog="sfp dataset build")
    configure(parser)
    return options_from_args(parser.parse_args(argv))


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
