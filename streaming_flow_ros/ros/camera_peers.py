"""The two ROS processes of the camera transport bench (streaming_flow_ros/bench/camera_transport.py):
``python -m streaming_flow_ros.ros.camera_peers --role sub|pub ...``. The bench starts one of each
per (set-up, image size), each with its own environment (Fast DDS reads its variables and XML
profile once per process), and talks to them over stdin/stdout lines:

- ``sub``: subscribes to ``TOPIC`` with the given QoS (``sensor`` = the node's ``SENSOR_QOS``),
  prints ``READY``; on any line (or EOF) on stdin prints ``RESULT {"frames": [[seq, recv_ns,
  stamp_ns, bytes], ...]}`` and exits.
- ``pub``: waits for a subscriber to match, publishes ``rate * seconds`` rgb8 frames at ``rate``
  Hz (``header.frame_id`` = sequence number, ``header.stamp`` = wall clock just before
  ``publish()``), prints ``RESULT {"published", "matched", "first_ns", "last_ns", "publish_s"}``
  and exits.

Both shut down cleanly (a killed Fast DDS participant leaves its shared-memory segment behind).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TOPIC = "/sfp_camera_transport/image_raw"
READY, RESULT = "CT_READY", "CT_RESULT "


def _qos(kind: str, depth: int):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    if kind == "sensor":
        from .inputs import SENSOR_QOS

        return SENSOR_QOS
    rel = ReliabilityPolicy.RELIABLE if kind == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(depth=depth, reliability=rel)


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_subscriber(qos_kind: str, depth: int) -> None:
    """Subscribe; print READY; on a line (or EOF) on stdin print RESULT and exit."""
    import threading

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import Image

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("sfp_camera_transport_sub", context=ctx)
    got: list[tuple[int, int, int, int]] = []  # seq, recv ns, stamp ns, bytes

    def on_image(msg: Image) -> None:
        now = time.time_ns()
        got.append((int(msg.header.frame_id or -1), now,
                    msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, len(msg.data)))

    node.create_subscription(Image, TOPIC, on_image, _qos(qos_kind, depth))
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)

    stop = threading.Event()

    def spin() -> None:
        try:
            while ctx.ok() and not stop.is_set():
                ex.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass

    th = threading.Thread(target=spin, daemon=True)
    th.start()
    _emit(READY)
    sys.stdin.readline()
    stop.set()
    th.join(5.0)
    _emit(RESULT + json.dumps({"frames": list(got)}))
    ex.shutdown(timeout_sec=1.0)
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def run_publisher(width: int, height: int, rate: float, seconds: float, qos_kind: str, depth: int,
                  match_timeout: float = 20.0) -> None:
    """Wait for the subscriber to match, publish rate*seconds frames, print RESULT, exit."""
    import array

    import rclpy
    from sensor_msgs.msg import Image

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("sfp_camera_transport_pub", context=ctx)
    pub = node.create_publisher(Image, TOPIC, _qos(qos_kind, depth))
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width)
    row = bytes(range(256)) * (3 * width // 256 + 1)
    msg.data = array.array("B", b"".join(row[(r % 7):(r % 7) + 3 * width] for r in range(height)))
    t_end = time.monotonic() + match_timeout
    while pub.get_subscription_count() < 1 and time.monotonic() < t_end:
        time.sleep(0.02)
    matched = pub.get_subscription_count() >= 1
    time.sleep(0.5)  # let the reader side finish matching the writer too
    n = int(round(rate * seconds))
    period = 1.0 / rate
    pub_s: list[float] = []
    t0 = time.monotonic()
    t_first = time.time_ns()
    for i in range(n):
        slot = t0 + i * period
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg.header.frame_id = str(i)
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        t = time.perf_counter()
        pub.publish(msg)
        pub_s.append(time.perf_counter() - t)
    t_last = time.time_ns()
    if qos_kind == "reliable":
        from rclpy.duration import Duration

        pub.wait_for_all_acked(Duration(seconds=2.0))
    time.sleep(0.3)
    _emit(RESULT + json.dumps({"published": n, "matched": matched, "first_ns": t_first, "last_ns": t_last,
                               "publish_s": pub_s}))
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streaming_flow_ros.ros.camera_peers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=["sub", "pub"], required=True)
    ap.add_argument("--qos", choices=["sensor", "best_effort", "reliable"], default="sensor")
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args(argv)
    if a.role == "sub":
        run_subscriber(a.qos, a.depth)
    else:
        run_publisher(a.width, a.height, a.rate, a.seconds, a.qos, a.depth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
