"""rosbag2 I/O: the only module that reads (and writes) bags. Pure Python (``rosbags``), no ROS.

Writing::

    with BagWriter("demo_bag", storage="mcap") as w:
        w.joint_state("/joint_states", t_ns, ["j1", "j2"], [0.1, 0.2])
        w.image("/camera/image_raw", t_ns, rgb_uint8)

The result is a rosbag2 *directory* (``metadata.yaml`` + one ``.mcap`` or ``.db3`` file, format
version 9) with embedded message definitions and RIHS01 type hashes from a pinned typestore
(ROS 2 Kilted), so ``ros2 bag info/play`` on a real install read it. ``t_ns`` is the bag's
receive/log time in nanoseconds; header stamps are set from it (JointState, Image) or left at
0 (JointTrajectory: "start at the controller's next sample", as joint_trajectory_controller
expects).

Reading::

    with BagReader("demo_bag") as r:          # a bag directory, or a bare .mcap / .db3 file
        r.require("/joint_states", JOINT_STATE)
        for m in r.messages(["/joint_states"]):  # BagMessage(topic, msgtype, t_ns, msg)
            ...

Every failure at this boundary (missing path, truncated or corrupt storage, a topic that is not
in the bag, an unexpected type) is a ``ValueError`` naming the bag, and for topics listing what
the bag does contain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import (
    CompressionFormat,
    CompressionMode,
    ReaderError,
    StoragePlugin,
    Writer,
    WriterError,
)
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, TypesysError, get_typestore
from rosbags.typesys.store import Typestore

from .image_codec import encode_rgb8

log = logging.getLogger(__name__)

JOINT_STATE = "sensor_msgs/msg/JointState"
IMAGE = "sensor_msgs/msg/Image"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
TRAJECTORY_POINT = "trajectory_msgs/msg/JointTrajectoryPoint"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
CLOCK = "rosgraph_msgs/msg/Clock"

TYPESTORE_NAME = "ROS2_KILTED" if hasattr(Stores, "ROS2_KILTED") else "ROS2_JAZZY"
_STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_INF = QosTime(2147483647, 4294967295)  # rosbag2's "infinite" duration


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The pinned typestore used to serialise messages we write (ROS 2 Kilted, else Jazzy)."""
    return get_typestore(getattr(Stores, TYPESTORE_NAME))


def normalize_msgtype(msgtype: str) -> str:
    """``"sensor_msgs/Image"`` -> ``"sensor_msgs/msg/Image"``; full names pass through."""
    parts = str(msgtype).split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3 and all(parts):
        return str(msgtype)
    raise ValueError(f"malformed message type {msgtype!r} (want pkg/msg/Name)")


def _qos(reliable: bool) -> Qos:
    return Qos(
        QosHistory.KEEP_LAST,
        10,
        QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        QosDurability.VOLATILE,
        _INF,
        _INF,
        QosLiveliness.AUTOMATIC,
        _INF,
        False,
    )


def _vec(values: Iterable[float] | None, label: str) -> np.ndarray:
    if values is None:
        return np.zeros(0, np.float64)
    arr = np.asarray(values, np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"{label} has non-finite values: {arr.tolist()}")
    return arr


class BagWriter:
    """Write a rosbag2 (version 9) from numpy data. Use as a context manager.

    Args:
        path: the bag *directory* to create; must not exist yet.
        storage: "mcap" (default, ``ros2 bag`` default since Iron) or "sqlite3".
        best_effort_topics: topics whose recorded offered QoS is BEST_EFFORT (sensor data);
            all others are recorded as RELIABLE/VOLATILE, which ``ros2 bag play`` and
            :mod:`streaming_flow_ros.ros.play` reuse when publishing.
        compress: zstd-compress MCAP chunks (rosbag2's own ``mcap`` storage reads them).
    """

    def __init__(
        self,
        path: str | Path,
        storage: Literal["mcap", "sqlite3"] = "mcap",
        *,
        best_effort_topics: Iterable[str] = (),
        compress: bool = False,
    ) -> None:
        if storage not in _STORAGES:
            raise ValueError(f"storage must be one of {sorted(_STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(f"{self.path} exists already; BagWriter only creates new bags")
        self.storage = storage
        self._best_effort = set(best_effort_topics)
        self._writer = Writer(self.path, version=9, storage_plugin=_STORAGES[storage])
        if compress:
            if storage != "mcap":
                raise ValueError(f"compress=True needs storage='mcap' (zstd chunks), got {storage!r}")
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        # A non-empty map (not null) so every rosbag2 metadata parser reads custom_data.
        self._writer.set_custom_data("generator", "streaming_flow_ros")
        self._conns: dict[str, Any] = {}
        self._ts = typestore()
        self._open = False

    def __enter__(self) -> BagWriter:
        self._writer.open()
        self._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Close even on error: what was written so far stays a readable bag.
        self.close()

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml (idempotent)."""
        if self._open:
            self._open = False
            self._writer.close()

    # -- typed helpers -------------------------------------------------------------------------
    def _types(self) -> dict[str, type]:
        return self._ts.types

    def _header(self, t_ns: int, frame_id: str = "") -> Any:
        T = self._types()
        sec, nsec = divmod(int(t_ns), 1_000_000_000)
        return T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame_id
        )

    def _duration(self, seconds: float) -> Any:
        if not (np.isfinite(seconds) and seconds >= 0.0):
            raise ValueError(f"time_from_start must be finite and >= 0 s, got {seconds}")
        sec, nsec = divmod(round(seconds * 1e9), 1_000_000_000)
        return self._types()["builtin_interfaces/msg/Duration"](sec=sec, nanosec=nsec)

    def joint_state(
        self,
        topic: str,
        t_ns: int,
        names: Sequence[str],
        position: Iterable[float],
        velocity: Iterable[float] | None = None,
        effort: Iterable[float] | None = None,
    ) -> None:
        """sensor_msgs/JointState, header stamp = t_ns. Positions in rad, velocities rad/s."""
        pos = _vec(position, "position")
        vel, eff = _vec(velocity, "velocity"), _vec(effort, "effort")
        for label, arr in (("position", pos), ("velocity", vel), ("effort", eff)):
            if arr.size not in ((0, len(names)) if label != "position" else (len(names),)):
                raise ValueError(f"joint_state {label} has {arr.size} values for {len(names)} names")
        msg = self._types()[JOINT_STATE](
            header=self._header(t_ns),
            name=[str(n) for n in names],
            position=pos,
            velocity=vel,
            effort=eff,
        )
        self.raw(topic, JOINT_STATE, t_ns, msg)

    def image(self, topic: str, t_ns: int, img: np.ndarray, frame_id: str = "camera") -> None:
        """sensor_msgs/Image: (h, w, 3) uint8 -> rgb8, (h, w) or (h, w, 1) uint8 -> mono8."""
        img = np.asarray(img)
        if img.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got {img.dtype}")
        if img.ndim == 3 and img.shape[2] == 3:
            fields = encode_rgb8(img)
        elif img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
            h, w = img.shape[:2]
            fields = {
                "height": h,
                "width": w,
                "encoding": "mono8",
                "is_bigendian": 0,
                "step": w,
                "data": np.ascontiguousarray(img).reshape(-1),
            }
        else:
            raise ValueError(f"image must be (h, w, 3) or (h, w[, 1]) uint8, got {img.shape}")
        msg = self._types()[IMAGE](header=self._header(t_ns, frame_id), **fields)
        self.raw(topic, IMAGE, t_ns, msg)

    def _point(self, positions: Iterable[float], tfs: float, velocities: Iterable[float] | None) -> Any:
        e = np.zeros(0, np.float64)
        return self._types()[TRAJECTORY_POINT](
            positions=_vec(positions, "positions"),
            velocities=_vec(velocities, "velocities"),
            accelerations=e,
            effort=e,
            time_from_start=self._duration(tfs),
        )

    def joint_trajectory(
        self,
        topic: str,
        t_ns: int,
        names: Sequence[str],
        positions: Iterable[float],
        time_from_start_s: float,
        velocities: Iterable[float] | None = None,
    ) -> None:
        """trajectory_msgs/JointTrajectory with one point; header stamp 0 (JTC convention)."""
        pt = self._point(positions, time_from_start_s, velocities)
        if pt.positions.size != len(names) or pt.velocities.size not in (0, len(names)):
            raise ValueError(
                f"joint_trajectory: {pt.positions.size} positions / {pt.velocities.size} velocities "
                f"for {len(names)} joint names"
            )
        msg = self._types()[JOINT_TRAJECTORY](
            header=self._header(0), joint_names=[str(n) for n in names], points=[pt]
        )
        self.raw(topic, JOINT_TRAJECTORY, t_ns, msg)

    def trajectory_point(
        self, topic: str, t_ns: int, positions: Iterable[float], time_from_start_s: float = 0.0
    ) -> None:
        """trajectory_msgs/JointTrajectoryPoint (no joint names: order is the controller's)."""
        self.raw(topic, TRAJECTORY_POINT, t_ns, self._point(positions, time_from_start_s, None))

    def float64_array(self, topic: str, t_ns: int, values: Iterable[float]) -> None:
        """std_msgs/Float64MultiArray with an empty layout (forward_command_controller style)."""
        T = self._types()
        layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        self.raw(
            topic, FLOAT64_ARRAY, t_ns, T[FLOAT64_ARRAY](layout=layout, data=_vec(values, "values"))
        )

    def clock(self, topic: str, t_ns: int) -> None:
        """rosgraph_msgs/Clock carrying ``t_ns`` (a simulator's /clock)."""
        T = self._types()
        sec, nsec = divmod(int(t_ns), 1_000_000_000)
        self.raw(topic, CLOCK, t_ns, T[CLOCK](clock=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)))

    def raw(self, topic: str, msgtype: str, t_ns: int, msg_or_cdr_bytes: Any) -> None:
        """Write any message of the pinned typestore: a rosbags message object (serialised
        here) or already-serialised CDR bytes (written unchanged)."""
        if not self._open:
            raise ValueError(f"{self.path}: BagWriter is not open (use it as a context manager)")
        if not isinstance(t_ns, (int, np.integer)) or t_ns < 0:
            raise ValueError(f"t_ns must be a non-negative integer (ns), got {t_ns!r}")
        msgtype = normalize_msgtype(msgtype)
        if msgtype not in self._ts.types:
            raise ValueError(f"unknown message type {msgtype!r} (not in the {TYPESTORE_NAME} typestore)")
        if not topic.startswith("/"):
            raise ValueError(f"topic must be absolute (start with '/'), got {topic!r}")
        if isinstance(msg_or_cdr_bytes, (bytes, bytearray, memoryview)):
            data = bytes(msg_or_cdr_bytes)
        else:
            try:
                data = bytes(self._ts.serialize_cdr(msg_or_cdr_bytes, msgtype))
            except (SerdeError, AttributeError, TypeError, KeyError) as e:
                raise ValueError(
                    f"cannot serialise {type(msg_or_cdr_bytes).__name__} as {msgtype}: {e}"
                ) from e
        conn = self._conns.get(topic)
        if conn is None:
            try:
                conn = self._writer.add_connection(
                    topic,
                    msgtype,
                    typestore=self._ts,
                    offered_qos_profiles=[_qos(reliable=topic not in self._best_effort)],
                )
            except WriterError as e:
                raise ValueError(f"{self.path}: {e}") from e
            self._conns[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"topic {topic!r} already has type {conn.msgtype}, cannot write {msgtype}")
        self._writer.write(conn, int(t_ns), data)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class TopicInfo:
    """One topic in a bag."""

    name: str
    msgtype: str
    count: int
    reliable: bool = True  # recorded offered QoS (True if none recorded)


@dataclass(frozen=True)
class BagMessage:
    """A deserialised message (field names as in ROS; arrays are numpy). t_ns: log time, ns."""

    topic: str
    msgtype: str
    t_ns: int
    msg: Any


@dataclass(frozen=True)
class RawMessage:
    """A message as stored: CDR bytes, ready to publish unchanged."""

    topic: str
    msgtype: str
    t_ns: int
    data: bytes


def _storage_errors() -> tuple[type[BaseException], ...]:
    """Errors the storage libraries raise on damaged files: apsw (sqlite3) errors, and the
    OverflowError / MemoryError a corrupted length field in an MCAP record produces."""
    try:
        import apsw

        return (apsw.Error, OverflowError, MemoryError)
    except ImportError:
        return (OverflowError, MemoryError)


_READ_ERRORS = (AnyReaderError, ReaderError, SerdeError, TypesysError, OSError, KeyError, EOFError,
                *_storage_errors())


class BagReader:
    """Read a rosbag2 (directory with metadata.yaml, or a bare .mcap / .db3 file).

    Opens on construction; use as a context manager or call :meth:`close`.
    Raises ValueError naming the path for anything unreadable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"bag {self.path} does not exist")
        if self.path.suffix == ".bag":
            raise ValueError(
                f"{self.path} is a ROS 1 bag; convert it first: rosbags-convert --src {self.path}"
            )
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise ValueError(f"{self.path} is a directory without metadata.yaml: not a rosbag2 bag")
        try:
            # Bags from before Humble embed no message definitions: fall back to the pinned store.
            self._reader = AnyReader([self.path], default_typestore=typestore())
            self._reader.open()
        except (*_READ_ERRORS, ValueError, IndexError, AssertionError) as e:
            raise ValueError(
                f"cannot open bag {self._files()}: {e} (truncated or corrupt? a recording cut short "
                "has no MCAP footer: `mcap recover` can rebuild one)"
            ) from e
        self.topics: dict[str, TopicInfo] = {}
        for name, info in self._reader.topics.items():
            qos = [q for c in info.connections for q in getattr(c.ext, "offered_qos_profiles", [])]
            reliable = not any(q.reliability == QosReliability.BEST_EFFORT for q in qos)
            self.topics[name] = TopicInfo(name, str(info.msgtype), int(info.msgcount), reliable)
        log.debug("opened %s: %s", self.path, {t.name: t.count for t in self.topics.values()})

    def _files(self) -> str:
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix in (".mcap", ".db3"))
            if files:
                return ", ".join(str(p) for p in files)
        return str(self.path)

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._reader.stack is not None:
            self._reader.close()

    @property
    def start_ns(self) -> int:
        """Log time of the first message, ns."""
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        """Log time of the last message, ns (rosbags reports one past it)."""
        return int(self._reader.end_time) - 1

    def describe(self) -> str:
        """Human-readable list of topics: ``/a (pkg/msg/T, 12 msgs), ...``."""
        if not self.topics:
            return "(no topics)"
        return ", ".join(f"{t.name} ({t.msgtype}, {t.count} msgs)" for t in self.topics.values())

    def require(self, topic: str, msgtypes: str | Iterable[str] | None = None) -> TopicInfo:
        """The topic's info; ValueError listing available topics if absent or of another type."""
        info = self.topics.get(topic)
        if info is None:
            raise ValueError(f"topic {topic!r} not in bag {self.path}; available: {self.describe()}")
        if msgtypes is not None:
            allowed = {msgtypes} if isinstance(msgtypes, str) else set(msgtypes)
            if info.msgtype not in allowed:
                raise ValueError(
                    f"topic {topic!r} in {self.path} has type {info.msgtype}, expected one of {sorted(allowed)}"
                )
        return info

    def _conns(self, topics: Iterable[str] | None) -> list[Any]:
        if topics is None:
            return list(self._reader.connections)
        wanted = list(topics)
        for t in wanted:
            self.require(t)
        return [c for c in self._reader.connections if c.topic in set(wanted)]

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        """Messages of ``topics`` (all if None) in log-time order, as stored CDR bytes."""
        conns = self._conns(topics)
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except (*_READ_ERRORS, ValueError, IndexError, AssertionError) as e:
                raise ValueError(
                    f"bag {self._files()} is truncated or corrupt: {type(e).__name__}: {e}"
                ) from e
            conn, t_ns, data = item
            yield RawMessage(conn.topic, conn.msgtype, int(t_ns), bytes(data))

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all if None) in log-time order, deserialised."""
        for raw in self.raw_messages(topics):
            try:
                msg = self._reader.deserialize(raw.data, raw.msgtype)
            except (*_READ_ERRORS, ValueError, IndexError, AssertionError) as e:
                raise ValueError(
                    f"bag {self.path}: cannot deserialise {raw.msgtype} on {raw.topic} at t={raw.t_ns} ns: {e}"
                ) from e
            yield BagMessage(raw.topic, raw.msgtype, raw.t_ns, msg)


def read_messages(path: str | Path, topics: Iterable[str] | None = None) -> list[BagMessage]:
    """All messages of ``topics`` from the bag at ``path`` (convenience for small bags)."""
    with BagReader(path) as r:
        return list(r.messages(topics))
