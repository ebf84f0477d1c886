"""Deterministic synthetic fixture bag for tests: a 3-joint arm moving smoothly, seen by a camera.

``python -m streaming_flow_ros.data.fixtures OUTDIR`` writes ``OUTDIR/arm3_5s`` (rosbag2, MCAP
with zstd chunks, a few hundred KB). Content, all from closed-form functions of time (no RNG):

- ``/joint_states`` (sensor_msgs/JointState) at 100 Hz: joints ``joint1..joint3`` (rad),
  ``q(t) = AMP * sin(2*pi*FREQ*t + PHASE)``, with velocities (rad/s).
- ``/camera/image_raw`` (sensor_msgs/Image, rgb8, 96x96) at 30 Hz: grey background, a red dot
  at the planar forward kinematics of joints 1-2 (link lengths 0.5, 0.4; 1 m = 40 px).
- ``/joint_trajectory_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory) at 10 Hz:
  one point with ``positions = q(t + 0.1)``, ``time_from_start = 0.1 s``, header stamp 0.

Bag time starts at ``T0_NS``; duration ``DURATION_S``. Regenerating must give identical
content, so tests may assert exact values via :func:`joint_positions`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from .bags import BagWriter

log = logging.getLogger(__name__)

NAME = "arm3_5s"
JOINT_NAMES = ("joint1", "joint2", "joint3")
JOINT_TOPIC = "/joint_states"
CAMERA_TOPIC = "/camera/image_raw"
COMMAND_TOPIC = "/joint_trajectory_controller/joint_trajectory"
T0_NS = 1_700_000_000_000_000_000
DURATION_S = 5.0
JOINT_HZ, CAMERA_HZ, COMMAND_HZ = 100.0, 30.0, 10.0
COMMAND_LOOKAHEAD_S = 0.1
IMAGE_SIZE = 96

AMP = np.array([0.8, 0.6, 0.5])  # rad
FREQ = np.array([0.2, 0.3, 0.25])  # Hz
PHASE = np.array([0.0, 0.5, 1.0])  # rad


def joint_positions(t_s: float | np.ndarray) -> np.ndarray:
    """q(t) in rad, t in seconds from bag start. (3,) or (N, 3)."""
    t = np.asarray(t_s, np.float64)[..., None]
    return AMP * np.sin(2 * np.pi * FREQ * t + PHASE)


def joint_velocities(t_s: float | np.ndarray) -> np.ndarray:
    """dq/dt in rad/s. (3,) or (N, 3)."""
    t = np.asarray(t_s, np.float64)[..., None]
    return AMP * 2 * np.pi * FREQ * np.cos(2 * np.pi * FREQ * t + PHASE)


def render(q: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: grey background, red dot (radius 4 px) at the 2-link tip."""
    x = 0.5 * np.cos(q[0]) + 0.4 * np.cos(q[0] + q[1])
    y = 0.5 * np.sin(q[0]) + 0.4 * np.sin(q[0] + q[1])
    cx, cy = size / 2 + 40.0 * x * size / 96, size / 2 - 40.0 * y * size / 96
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size, 3), 96, np.uint8)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 16.0] = (220, 30, 30)
    return img


def _ticks(hz: float, duration_s: float) -> np.ndarray:
    """Integer ns offsets k * (1e9 / hz) for k = 0.. while <= duration (exact, no float drift)."""
    n = int(np.floor(duration_s * hz + 1e-9)) + 1
    return np.array([round(k * 1e9 / hz) for k in range(n)], np.int64)


def write_fixture_bag(
    out_dir: str | Path, duration_s: float = DURATION_S, storage: str = "mcap"
) -> Path:
    """Write the fixture bag into ``out_dir/arm3_5s`` (replacing nothing: must not exist)."""
    path = Path(out_dir) / NAME
    with BagWriter(path, storage=storage, compress=storage == "mcap") as w:  # type: ignore[arg-type]
        events: list[tuple[int, int]] = []
        for kind, hz in ((0, JOINT_HZ), (1, CAMERA_HZ), (2, COMMAND_HZ)):
            events += [(int(dt), kind) for dt in _ticks(hz, duration_s)]
        for dt_ns, kind in sorted(events):
            t = dt_ns / 1e9
            t_ns = T0_NS + dt_ns
            if kind == 0:
                w.joint_state(JOINT_TOPIC, t_ns, JOINT_NAMES, joint_positions(t), joint_velocities(t))
            elif kind == 1:
                w.image(CAMERA_TOPIC, t_ns, render(joint_positions(t)))
            else:
                q_next = joint_positions(t + COMMAND_LOOKAHEAD_S)
                w.joint_trajectory(COMMAND_TOPIC, t_ns, JOINT_NAMES, q_next, COMMAND_LOOKAHEAD_S)
    log.info("wrote fixture bag %s", path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="regenerate the synthetic fixture bag")
    p.add_argument("outdir", type=Path, help="directory to write arm3_5s/ into")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    path = write_fixture_bag(args.outdir)
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"{path} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
