"""`sfp play`: publish a rosbag2's messages into live topics at their recorded timing.

A stand-in for ``ros2 bag play`` that needs only rclpy and ``rosbags``: messages are published
as the stored CDR bytes (``Publisher.publish(bytes)``), unchanged. Message classes (needed for
the publisher's type support) are imported by name, ``sensor_msgs/msg/Image`` ->
``importlib.import_module("sensor_msgs.msg").Image``.

Timing: message i is published at wall time ``start + (t_i - t_0) / rate`` (t = bag log time).
With ``clock_hz > 0`` a ``/clock`` (rosgraph_msgs/Clock, BEST_EFFORT depth 1, as
``ros2 bag play --clock``) carries the current bag time at that rate, so nodes with
``use_sim_time`` tick smoothly (use >= 200 Hz; a sparse clock makes timers fire in bursts).

QoS: RELIABLE / VOLATILE, depth 10, unless the topic was recorded with a BEST_EFFORT offer or is
listed in ``best_effort_topics`` (BEST_EFFORT publishers never reach reliable subscribers).

Looping: each pass starts again at the bag's first message, so **/clock jumps backwards** at
every loop. rclpy and rclcpp time sources accept it (they fire time-jump callbacks), but anything
that assumes monotonic sim time (rate limiters, message caches keyed by stamp, TF buffers) must
reset on a backward jump, as with ``ros2 bag play --loop``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..data.bags import CLOCK, BagReader

log = logging.getLogger(__name__)
INTERFACE_DIRS = ("msg", "srv", "action")


def message_class(msgtype: str) -> type:
    """The rclpy message class for ``pkg/msg/Name`` (ValueError if its package is missing).

    The type name comes from the bag (untrusted data): only an installed *interface* package
    (one with a ``msg``/``srv``/``action`` subpackage, found without importing anything) is
    imported, so a crafted bag cannot make this import an arbitrary module.
    """
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(p.isidentifier() for p in parts) or parts[1] not in INTERFACE_DIRS:
        raise ValueError(f"malformed message type {msgtype!r} (want pkg/msg/Name)")
    pkg, sub, name = parts
    spec = importlib.util.find_spec(pkg)  # top-level lookup: imports nothing
    if spec is None or not any(Path(d, sub, "__init__.py").is_file() for d in spec.submodule_search_locations or ()):
        raise ValueError(f"message type {msgtype} is not available to rclpy here (no interface package {pkg!r}); "
                         "install its package or leave the topic out with --topics")
    try:
        return getattr(importlib.import_module(f"{pkg}.{sub}"), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(
            f"message type {msgtype} is not available to rclpy here ({e}); "
            f"install its package or leave the topic out with --topics"
        ) from e


def parse_remaps(remap: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """``{"/a": "/b"}`` or ``["/a:=/b", ...]`` -> dict."""
    if remap is None:
        return {}
    if isinstance(remap, Mapping):
        return dict(remap)
    out = {}
    for item in remap:
        src, sep, dst = item.partition(":=")
        if not sep or not src.startswith("/") or not dst.startswith("/"):
            raise ValueError(f"remap must look like /from:=/to, got {item!r}")
        out[src] = dst
    return out


class _Playhead:
    """Bag time <-> wall time under a rate factor and pause; thread-safe."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.cv = threading.Condition()
        self._bag_ns = 0  # bag time at the anchor
        self._wall = time.monotonic()  # wall time at the anchor
        self.paused = False

    def reset(self, bag_ns: int) -> None:
        with self.cv:
            self._bag_ns, self._wall = bag_ns, time.monotonic()
            self.cv.notify_all()

    def now_ns(self) -> int:
        with self.cv:
            if self.paused:
                return self._bag_ns
            return self._bag_ns + int((time.monotonic() - self._wall) * self.rate * 1e9)

    def set_paused(self, paused: bool) -> None:
        with self.cv:
            if paused and not self.paused:
                self._bag_ns = self.now_ns()
            elif not paused and self.paused:
                self._wall = time.monotonic()
            self.paused = paused
            self.cv.notify_all()

    def wait_until(self, bag_ns: int, stop: threading.Event) -> bool:
        """Block until the playhead reaches ``bag_ns``; False if ``stop`` was set first."""
        with self.cv:
            while not stop.is_set():
                if self.paused:
                    self.cv.wait(0.1)
                    continue
                dt = (bag_ns - self.now_ns()) / self.rate / 1e9
                if dt <= 0:
                    return True
                self.cv.wait(min(dt, 0.1))
        return False


class BagPlayer:
    """Play a bag into live topics from a background thread.

    Args:
        context: an initialised rclpy Context (the caller owns init/shutdown).
        bag_path: rosbag2 directory or .mcap/.db3 file.
        rate: playback speed factor (2.0 = twice as fast), > 0.
        loop: start again after the last message until stop().
        remap: {"/from": "/to"} or ["/from:=/to"]; sources must be topics of the bag.
        topics: play only these bag topics (default: all).
        clock_hz: publish /clock at this rate (Hz); 0 = no /clock.
        start_paused: start() begins paused; call resume().
        best_effort_topics: bag topics to publish BEST_EFFORT (others RELIABLE unless recorded so).
        node_name: name of the publishing node.
        record: keep ``(topic, bag t_ns, monotonic publish time s)`` of every publish in
            ``self.record`` (for tests and timing checks; grows without bound).

    Usage::

        with BagPlayer(ctx, "bag", clock_hz=200) as p:
            p.wait_for_subscribers(2.0)
            p.start()
            p.wait()
    """

    def __init__(
        self,
        context: Context,
        bag_path: str | Path,
        rate: float = 1.0,
        loop: bool = False,
        remap: Mapping[str, str] | Iterable[str] | None = None,
        topics: Iterable[str] | None = None,
        clock_hz: float = 0.0,
        start_paused: bool = False,
        best_effort_topics: Iterable[str] = (),
        node_name: str = "sfp_player",
        record: bool = False,
    ) -> None:
        if not (rate > 0 and rate < float("inf")):
            raise ValueError(f"rate must be > 0, got {rate}")
        if clock_hz < 0 or (0 < clock_hz < 1):
            raise ValueError(f"clock_hz must be 0 (off) or >= 1 Hz, got {clock_hz}")
        self.bag_path, self.loop, self.clock_hz = Path(bag_path), loop, clock_hz
        self._remap = parse_remaps(remap)
        with BagReader(self.bag_path) as reader:
            wanted = list(topics) if topics is not None else list(reader.topics)
            for t in [*wanted, *self._remap]:
                reader.require(t)
            self._infos = {t: reader.topics[t] for t in wanted}
            self._start_ns, self._end_ns = reader.start_ns, reader.end_ns
        classes = {t: message_class(i.msgtype) for t, i in self._infos.items()}  # fail before the node
        best_effort = set(best_effort_topics)
        self.node = Node(node_name, context=context, enable_rosout=False, start_parameter_services=False)
        self._pubs: dict[str, Any] = {}
        for t, info in self._infos.items():
            reliable = info.reliable and t not in best_effort
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=10,
                durability=DurabilityPolicy.VOLATILE,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            )
            self._pubs[t] = self.node.create_publisher(classes[t], self._remap.get(t, t), qos)
        self._clock_pub = None
        if clock_hz > 0:
            self._clock_cls = message_class(CLOCK)
            self._time_cls = message_class("builtin_interfaces/msg/Time")
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            self._clock_pub = self.node.create_publisher(self._clock_cls, "/clock", qos)
        self._playhead = _Playhead(rate)
        self._playhead.paused = start_paused
        self._stop = threading.Event()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self.published = 0  # messages published so far (all topics, all loops)
        self.clock_published = 0  # /clock messages published so far
        self.record: list[tuple[str, int, float]] | None = [] if record else None
        self._closed = False

    # -- control --------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin playback in background threads (once)."""
        if self._threads:
            raise ValueError("BagPlayer.start() called twice")
        self._threads = [threading.Thread(target=self._play, name="sfp_play", daemon=True)]
        if self._clock_pub is not None:
            self._threads.append(threading.Thread(target=self._clock, name="sfp_clock", daemon=True))
        for th in self._threads:
            th.start()

    def pause(self) -> None:
        self._playhead.set_paused(True)

    def resume(self) -> None:
        self._playhead.set_paused(False)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end of playback (never, with loop, until stop()). True if it ended.
        Re-raises an error from the playback thread."""
        finished = self._done.wait(timeout)
        if self._error is not None:
            kind = ValueError if isinstance(self._error, ValueError) else RuntimeError
            raise kind(f"playback of {self.bag_path} failed: {self._error}") from self._error
        return finished

    def stop(self) -> None:
        """Stop playback and join the threads (idempotent)."""
        self._stop.set()
        with self._playhead.cv:
            self._playhead.cv.notify_all()
        for th in self._threads:
            th.join(timeout=5.0)

    def close(self) -> None:
        """stop() and destroy the node (idempotent)."""
        self.stop()
        if not self._closed:
            self._closed = True
            self.node.destroy_node()

    def __enter__(self) -> BagPlayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for_subscribers(self, timeout_s: float, topics: Iterable[str] | None = None) -> bool:
        """Block until each publisher (of ``topics``, bag names; default all) has a matched
        subscriber, up to ``timeout_s``. Returns whether all matched."""
        pubs = [self._pubs[t] for t in (topics if topics is not None else self._pubs)]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in pubs):
                return True
            time.sleep(0.01)
        return False

    def now_ns(self) -> int:
        """Current bag time (ns) of the playhead."""
        return self._playhead.now_ns()

    # -- threads --------------------------------------------------------------------------------
    def _play(self) -> None:
        try:
            while not self._stop.is_set():
                with BagReader(self.bag_path) as reader:
                    messages = reader.raw_messages(self._infos)
                    first = next(messages, None)  # open and read ahead before the clock starts
                    if first is None:
                        log.warning("%s: nothing to play on %s", self.bag_path, list(self._infos))
                        return
                    self._playhead.reset(self._start_ns)
                    for m in itertools.chain([first], messages):
                        if not self._playhead.wait_until(m.t_ns, self._stop):
                            return
                        self._pubs[m.topic].publish(m.data)
                        self.published += 1
                        if self.record is not None:
                            self.record.append((m.topic, m.t_ns, time.monotonic()))
                if not self.loop:
                    return
                log.info("%s: looping (bag time, and /clock, jump back to the start)", self.bag_path)
        except BaseException as e:  # handed to wait(), which re-raises it
            log.exception("playback of %s failed", self.bag_path)
            self._error = e
        finally:
            self._done.set()
            self._stop.set()  # ends the clock thread too

    def _clock(self) -> None:
        try:
            self._clock_loop()
        except BaseException as e:  # handed to wait(), which re-raises it
            log.exception("/clock publishing for %s failed", self.bag_path)
            self._error = self._error or e
            self._stop.set()

    def _clock_loop(self) -> None:
        period = 1.0 / self.clock_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            bag_ns = min(max(self._playhead.now_ns(), self._start_ns), self._end_ns)
            sec, nsec = divmod(bag_ns, 1_000_000_000)
            self._clock_pub.publish(self._clock_cls(clock=self._time_cls(sec=sec, nanosec=nsec)))
            self.clock_published += 1
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -10 * period:  # a long stall: skip the missed ticks rather than burst
                next_t = time.monotonic()
            self._stop.wait(max(delay, 0.0))


# -- CLI ------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 directory or .mcap/.db3 file")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor")
    parser.add_argument("--loop", action="store_true", help="repeat (note: /clock jumps back each loop)")
    parser.add_argument("--remap", nargs="+", default=[], metavar="/FROM:=/TO", help="rename topics")
    parser.add_argument("--topics", nargs="+", help="play only these topics")
    parser.add_argument("--clock", action="store_true", help="publish /clock (for use_sim_time)")
    parser.add_argument("--clock-hz", type=float, default=200.0, help="/clock rate with --clock, Hz")
    parser.add_argument(
        "--best-effort", nargs="+", default=[], metavar="TOPIC", help="publish BEST_EFFORT"
    )
    parser.add_argument("--start-paused", action="store_true", help="wait for Enter before playing")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="wait this long before playing (discovery), s"
    )


def run(args: argparse.Namespace) -> int:
    import rclpy

    ctx = Context()
    rclpy.init(args=["sfp_play"], context=ctx)  # not sys.argv: our --remap is not a ROS remap rule
    try:
        with BagPlayer(
            ctx,
            args.bag,
            rate=args.rate,
            loop=args.loop,
            remap=args.remap,
            topics=args.topics,
            clock_hz=args.clock_hz if args.clock else 0.0,
            best_effort_topics=args.best_effort,
        ) as player:
            if args.start_paused:
                input("paused; press Enter to play ")
            time.sleep(max(args.delay, 0.0))
            player.start()
            print(f"playing {args.bag} at {args.rate}x{' (loop)' if args.loop else ''}; Ctrl-C stops")
            while not player.wait(0.5):
                pass
            print(f"done: {player.published} messages")
    finally:
        rclpy.try_shutdown(context=ctx)
    return 0
