"""`sfp dataset export-lerobot`: one of our datasets -> a LeRobotDataset v3.0 directory.

Written in the layout and schema LeRobot 0.6 writes (see :mod:`.lerobot` for the layout):

- features: ``observation.state`` and ``action`` (float32 (D,), joint names), one video feature
  ``observation.images.<camera>`` per camera (shape (H, W, 3), mono cameras as grey RGB), and
  ``timestamp`` (float32), ``frame_index``, ``episode_index``, ``index``, ``task_index`` (int64);
- data parquet: one row group per episode, snappy, with the ``huggingface`` schema metadata;
- videos: every episode of a camera one after the other in one mp4 (yuv420p, GOP 2, CRF 30; AV1
  by libsvtav1 preset 12 as LeRobot's default, or H.264 by libx264), so episode e starts at
  ``from_timestamp`` = frames before it / fps;
- meta/episodes parquet with per-episode stats, meta/stats.json aggregated over episodes as
  LeRobot 0.6.1 does (counts-weighted mean, pooled std, mean of per-episode quantiles),
  meta/tasks.parquet (with the pandas index metadata LeRobot's ``load_tasks`` relies on);
- files roll over to the next ``file-FFF`` at 100 MB (data) / 200 MB (video), 1000 files a chunk.

Timestamps are ``frame_index / fps``: our sample i is at i / data_rate by definition. Tasks: the
LeRobot tasks the dataset came from (``source.lerobot``) if any, else ``--task``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..spec import IOSpec
from .episodes import Episode, load_dataset
from .image_codec import to_model_image
from .lerobot import (
    ACTION,
    CAMERA_PREFIX,
    CODEBASE_VERSION,
    DATA_PATH,
    EPISODES_PATH,
    INFO_PATH,
    STATE,
    STATS_PATH,
    TASKS_PATH,
    TOLERANCE_S,
    VIDEO_PATH,
    read_lerobot,
)

log = logging.getLogger(__name__)

CHUNKS_SIZE, DATA_FILE_MB, VIDEO_FILE_MB = 1000, 100, 200
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
VCODECS = ("libsvtav1", "libx264")
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def encoder_options(vcodec: str) -> dict:
    """LeRobot's VideoEncoderConfig defaults for ``vcodec`` (the ``video.*`` info keys)."""
    if vcodec not in VCODECS:
        raise ValueError(f"vcodec must be one of {VCODECS}, got {vcodec!r}")
    return {"g": 2, "crf": 30, "preset": 12 if vcodec == "libsvtav1" else None, "fast_decode": 0}


def feature_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-episode stats of (n, D) samples: min, max, mean, std, count and q01..q99 from a
    5000-bin histogram, as its RunningQuantileStats computes them from one batch."""
    x = x.astype(np.result_type(x.dtype, np.float32))
    mean, mean_sq = x.mean(axis=0), (x**2).mean(axis=0)
    lo, hi = x.min(axis=0), x.max(axis=0)
    stats = {
        "min": lo,
        "max": hi,
        "mean": mean,
        "std": np.sqrt(np.maximum(0, mean_sq - mean**2)),
        "count": np.array([len(x)]),
    }
    qs = np.empty((len(QUANTILES), x.shape[1]))
    for d in range(x.shape[1]):
        edges = np.linspace(lo[d] - 1e-10, hi[d] + 1e-10, 5001)
        cum = np.cumsum(np.histogram(x[:, d], bins=edges)[0])
        for j, q in enumerate(QUANTILES):
            target = q * len(x)
            i = int(np.searchsorted(cum, target))
            if i == 0 or i >= len(cum):
                qs[j, d] = edges[0] if i == 0 else edges[-1]
            elif cum[i] == cum[i - 1]:
                qs[j, d] = edges[i]
            else:
                qs[j, d] = edges[i] + (target - cum[i - 1]) / (cum[i] - cum[i - 1]) * (edges[i + 1] - edges[i])
    stats.update({f"q{round(q * 100):02d}": qs[j] for j, q in enumerate(QUANTILES)})
    return stats


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of (n, H, W, 3) uint8 frames in [0, 1], shape (3, 1, 1), on the frames
    LeRobot samples (up to 100, evenly spaced); count is the number of frames used."""
    n = len(frames)
    k = min(100, n)
    idx = np.round(np.linspace(0, n - 1, k)).astype(int)
    sample = frames[idx]
    if max(sample.shape[1:3]) >= 300:  # LeRobot's auto_downsample_height_width
        step = int(max(sample.shape[1:3]) / 150)
        sample = sample[:, ::step, ::step]
    stats = feature_stats(sample.reshape(-1, 3))
    return {s: np.array([k]) if s == "count" else v.reshape(3, 1, 1) / 255.0 for s, v in stats.items()}


def aggregate(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset stats from per-episode stats, as LeRobot 0.6.1's aggregate_feature_stats."""
    counts = np.stack([s["count"] for s in stats]).astype(np.float64)  # (E, 1)
    total = counts.sum(axis=0)
    means = np.stack([s["mean"] for s in stats])
    w = counts.reshape(-1, *([1] * (means.ndim - 1)))
    mean = (means * w).sum(axis=0) / total
    var = ((np.stack([s["std"] for s in stats]) ** 2 + (means - mean) ** 2) * w).sum(axis=0) / total
    out = {
        "min": np.min([s["min"] for s in stats], axis=0),
        "max": np.max([s["max"] for s in stats], axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": total.astype(np.int64),
    }
    for q in (f"q{round(q * 100):02d}" for q in QUANTILES):
        out[q] = (np.stack([s[q] for s in stats]) * w).sum(axis=0) / total
    return out


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file + 1 >= CHUNKS_SIZE else (chunk, file + 1)


def _rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames, 3, axis=3) if frames.shape[3] == 1 else frames


class _VideoWriter:
    """One camera's mp4 files: episodes appended with continuous timestamps, rolled over at 200 MB."""

    def __init__(self, root: Path, key: str, fps: int, vcodec: str, height: int, width: int) -> None:
        self.root, self.key, self.fps, self.vcodec, self.height, self.width = root, key, fps, vcodec, height, width
        self.chunk, self.file, self.container, self.frames, self.bytes = 0, 0, None, 0, 0

    def _open(self) -> None:
        import av

        self.path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        opts = {k: v for k, v in encoder_options(self.vcodec).items() if v is not None and k != "fast_decode"}
        if self.vcodec == "libsvtav1":
            opts["svtav1-params"] = "fast-decode=0"
        self.container = av.open(str(self.path), "w")
        self.stream = self.container.add_stream(self.vcodec, self.fps, options={k: str(v) for k, v in opts.items()})
        self.stream.pix_fmt, self.stream.width, self.stream.height = "yuv420p", self.width, self.height
        self.frames, self.bytes = 0, 0

    def add_episode(self, frames: np.ndarray) -> dict:
        """Encode (n, H, W, 3) uint8 frames; returns the episode's videos/<key>/... metadata."""
        import av

        if self.container is not None and self.bytes >= VIDEO_FILE_MB * 1e6:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file)
        if self.container is None:
            self._open()
        start = self.frames
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
            packets = self.stream.encode(frame)
            self.bytes += sum(p.size for p in packets)
            self.container.mux(packets)
            self.frames += 1
        p = f"videos/{self.key}/"
        return {
            p + "chunk_index": self.chunk,
            p + "file_index": self.file,
            p + "from_timestamp": start / self.fps,
            p + "to_timestamp": self.frames / self.fps,
        }

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode())
            self.container.close()
            self.container = None


def _features(spec: IOSpec, fps: int, vcodec: str) -> dict:
    feats = {
        STATE: {"dtype": "float32", "shape": [spec.state_dim], "names": list(spec.state_names)},
        ACTION: {"dtype": "float32", "shape": [spec.action_dim], "names": list(spec.action_names)},
    }
    for cam in spec.cameras:
        feats[CAMERA_PREFIX + cam.name] = {
            "dtype": "video",
            "shape": [cam.height, cam.width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": cam.height,
                "video.width": cam.width,
                "video.codec": "av1" if vcodec == "libsvtav1" else "h264",
                "video.pix_fmt": "yuv420p",
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
                **{f"video.{k}": v for k, v in encoder_options(vcodec).items()},
                "video.video_backend": "pyav",
                "video.extra_options": {},
                "is_depth_map": False,
            },
        }
    return feats | {k: dict(v) for k, v in DEFAULT_FEATURES.items()}


def _hf_metadata(features: dict) -> bytes:
    """The ``huggingface`` schema metadata `datasets` writes for the non-video features."""
    hf = {}
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        value = {"dtype": ft["dtype"], "_type": "Value"}
        hf[key] = value if ft["shape"] == [1] else {"feature": value, "length": ft["shape"][0], "_type": "List"}
    return json.dumps({"info": {"features": hf}}).encode()


def _tasks_table(tasks: list[str]):
    """meta/tasks.parquet as pandas writes LeRobot's DataFrame (index "task"), without pandas."""
    import pyarrow as pa

    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",  # the layout of the fixture LeRobot 0.6.1 wrote
    }
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _episode_tasks(source: dict, n: int, task: str) -> list[str]:
    eps = source.get("lerobot", {}).get("episodes", [])
    if len(eps) == n and all(e.get("tasks") for e in eps):
        return [e["tasks"][0] for e in eps]
    return [task] * n


@contextlib.contextmanager
def keep_scheduling():
    """Restore the calling thread's scheduling policy on exit. SVT-AV1 (libsvtav1) switches the
    thread that opens an encoder to SCHED_FIFO 99 when it runs as root; left so, every process
    this thread spawns afterwards is a real-time process (two such busy loops starved a 2-core
    machine for minutes)."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        log.debug("restoring the thread's scheduling policy (the video encoder may change it)")
        set_thread_scheduling(policy, param.sched_priority)


def set_thread_scheduling(policy: int, priority: int) -> None:
    """Set the calling thread's policy through pthread_setschedparam, which also updates the
    copy glibc keeps for the thread and hands to every thread it creates (a raw
    sched_setscheduler leaves that copy at SCHED_FIFO: Fast DDS's threads, created later,
    were real-time)."""
    try:
        libc = ctypes.CDLL(None)
        libc.pthread_self.restype = ctypes.c_ulong
        err = libc.pthread_setschedparam(ctypes.c_ulong(libc.pthread_self()), policy, ctypes.byref(ctypes.c_int(priority)))
    except (OSError, AttributeError):  # not glibc: the kernel call is all there is
        err = -1
    if err:
        os.sched_setscheduler(0, policy, os.sched_param(priority))


def export_lerobot(
    dataset: str | Path,
    out: str | Path,
    vcodec: str = "libsvtav1",
    task: str | None = None,
    robot_type: str | None = None,
) -> Path:
    """Write the dataset at ``dataset`` as a LeRobotDataset v3.0 at ``out`` (must not hold one).
    The calling thread's scheduling policy is kept (see ``keep_scheduling``)."""
    with keep_scheduling():
        return _export(dataset, out, vcodec, task, robot_type)


def _export(dataset, out, vcodec, task, robot_type) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec, episodes = load_dataset(dataset)
    source = json.loads((Path(dataset) / "dataset.json").read_text()).get("source", {})
    out = Path(out)
    if (out / INFO_PATH).exists():
        raise ValueError(f"{out} already holds a LeRobot dataset (meta/info.json); choose another --out")
    fps = spec.data_rate_hz
    if abs(fps - round(fps)) > 1e-9:
        raise ValueError(f"LeRobot's fps is an integer; this dataset's data rate is {fps} Hz")
    fps = round(fps)
    encoder_options(vcodec)
    for cam in spec.cameras:
        if vcodec == "libx264" and (cam.height % 2 or cam.width % 2):
            raise ValueError(f"camera {cam.name!r}: libx264 yuv420p needs even sizes, got {cam.width}x{cam.height}")
    ep_tasks = _episode_tasks(source, len(episodes), task or Path(dataset).resolve().name)
    tasks = list(dict.fromkeys(ep_tasks))
    features = _features(spec, fps, vcodec)
    videos = {c.name: _VideoWriter(out, CAMERA_PREFIX + c.name, fps, vcodec, c.height, c.width) for c in spec.cameras}
    schema = pa.schema(
        [
            (STATE, pa.list_(pa.float32(), spec.state_dim)),
            (ACTION, pa.list_(pa.float32(), spec.action_dim)),
            ("timestamp", pa.float32()),
            *((k, pa.int64()) for k in ("frame_index", "episode_index", "index", "task_index")),
        ],
        metadata={b"huggingface": _hf_metadata(features)},
    )
    rows, ep_stats, writer, chunk, file, index, written = [], [], None, 0, 0, 0, 0
    try:
        for e, ep in enumerate(episodes):
            n = len(ep)
            if writer is not None and written >= DATA_FILE_MB * 1e6:
                writer.close()
                writer, written = None, 0
                chunk, file = _next_file(chunk, file)
            if writer is None:
                path = out / DATA_PATH.format(chunk_index=chunk, file_index=file)
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=True)
            cols = {
                STATE: ep.state.astype(np.float32),
                ACTION: ep.action.astype(np.float32),
                "timestamp": (np.arange(n) / fps).astype(np.float32),
                "frame_index": np.arange(n),
                "episode_index": np.full(n, e),
                "index": index + np.arange(n),
                "task_index": np.full(n, tasks.index(ep_tasks[e])),
            }
            table = pa.table(
                {
                    k: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1]) if v.ndim == 2 else v
                    for k, v in cols.items()
                },
                schema=schema,
            )
            writer.write_table(table)
            written += table.nbytes
            row = {
                "episode_index": e,
                "tasks": [ep_tasks[e]],
                "length": n,
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": index,
                "dataset_to_index": index + n,
            }
            stats = {STATE: feature_stats(cols[STATE]), ACTION: feature_stats(cols[ACTION])}
            for cam in spec.cameras:
                frames = _rgb(ep.images[cam.name])
                row.update(videos[cam.name].add_episode(frames))
                stats[CAMERA_PREFIX + cam.name] = image_stats(frames)
            for k in DEFAULT_FEATURES:
                stats[k] = feature_stats(np.asarray(cols[k]).reshape(-1, 1))
            row.update({f"stats/{k}/{s}": v.tolist() for k, st in stats.items() for s, v in st.items()})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            rows.append(row)
            ep_stats.append(stats)
            index += n
    finally:
        if writer is not None:
            writer.close()
        for v in videos.values():
            v.close()
    path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, compression="snappy", use_dictionary=True)
    pq.write_table(_tasks_table(tasks), out / TASKS_PATH)
    stats = {k: {s: v.tolist() for s, v in aggregate([st[k] for st in ep_stats]).items()} for k in ep_stats[0]}
    (out / STATS_PATH).write_text(json.dumps(stats, indent=4))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "fps": fps,
        "features": features,
        "total_episodes": len(episodes),
        "total_frames": index,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": VIDEO_FILE_MB,
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if spec.cameras else None,
        "robot_type": robot_type or source.get("lerobot", {}).get("robot_type"),
        "splits": {"train": f"0:{len(episodes)}"},
    }
    (out / INFO_PATH).write_text(json.dumps(info, indent=4))
    log.info("wrote %s: %d episodes, %d frames, %s", out, len(episodes), index, vcodec)
    return out


def check_export(out: Path, spec: IOSpec, episodes: list[Episode]) -> float:
    """Read ``out`` back the way LeRobot loads it (timestamps on the fps grid, every video frame
    found within TOLERANCE_S of its timestamp) and compare with ``episodes``. Returns the largest
    mean absolute pixel error of a camera's episode (0-255)."""
    size = (spec.cameras[0].height, spec.cameras[0].width, 3) if spec.cameras else (96, 96, 3)
    spec2, eps2, _ = read_lerobot(out, *size)
    if [len(e) for e in eps2] != [len(e) for e in episodes] or spec2.state_names != spec.state_names:
        raise ValueError(
            f"{out}: read back {len(eps2)} episodes / joints {spec2.state_names}, wrote "
            f"{len(episodes)} / {spec.state_names}"
        )
    err = 0.0
    for a, b in zip(episodes, eps2):
        if not (np.array_equal(a.state, b.state) and np.array_equal(a.action, b.action)):
            raise ValueError(f"{out}: state or action read back differ")
        for cam in spec.cameras:  # ours resized as the reader resized the decoded frames
            want = np.stack([to_model_image(img, *size) for img in _rgb(a.images[cam.name])])
            err = max(err, float(np.abs(want.astype(int) - b.images[cam.name]).mean()))
    return err


# -- CLI ------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="our dataset (dataset.json)")
    parser.add_argument("--out", type=Path, required=True, help="LeRobotDataset v3.0 directory to write")
    parser.add_argument("--vcodec", choices=VCODECS, default="libsvtav1", help="AV1 (LeRobot's default) or H.264")
    parser.add_argument(
        "--task",
        help="task text of every frame (default: the LeRobot tasks the dataset was "
        "built from, else the dataset directory's name)",
    )
    parser.add_argument("--robot-type", help="info.json robot_type (default: the source's, else null)")
    parser.add_argument(
        "--fps-check",
        action="store_true",
        help=f"read the export back as LeRobot loads it: timestamps on the fps grid and every video frame "
        f"within {TOLERANCE_S} s of its timestamp; state/action must match exactly",
    )


def run(args: argparse.Namespace) -> int:
    out = export_lerobot(args.dataset, args.out, args.vcodec, args.task, args.robot_type)
    info = json.loads((out / INFO_PATH).read_text())
    print(
        f"{out}: LeRobotDataset {CODEBASE_VERSION}, {info['total_episodes']} episodes, {info['total_frames']} "
        f"frames at {info['fps']} fps, {args.vcodec}"
    )
    if args.fps_check:
        spec, episodes = load_dataset(args.dataset)
        err = check_export(out, spec, episodes)
        print(f"fps check passed: timestamps on the grid, every frame found; mean |pixel error| <= {err:.2f}")
    return 0
