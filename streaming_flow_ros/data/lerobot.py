"""LeRobotDataset v3.0 directory -> our episodes (see :mod:`.episodes`), read with pyarrow and PyAV.

LeRobot itself is not needed. A v3.0 dataset is a directory::

    meta/info.json                         codebase_version "v3.0", fps, features (dtype, shape, names)
    meta/tasks.parquet                     task_index, task (the natural-language task)
    meta/episodes/chunk-CCC/file-FFF.parquet   one row per episode: length, tasks, data/chunk_index,
                                           data/file_index, videos/<key>/{chunk_index, file_index,
                                           from_timestamp, to_timestamp}, stats/...
    data/chunk-CCC/file-FFF.parquet        one row per frame: observation.state, action, timestamp,
                                           frame_index, episode_index, index, task_index, and
                                           image features as struct {bytes, path} (PNG/JPEG)
    videos/<key>/chunk-CCC/file-FFF.mp4    video features; several episodes follow each other

Mapping (units as stored; LeRobot does not fix them, arms usually store radians or degrees):

- ``observation.state`` (N, D_s) -> ``Episode.state``; names from ``features[...]["names"]``;
- ``action`` (N, D_a) -> ``Episode.action``; its names must be the state names (same set; a
  different order is re-ordered to the state's, by name);
- every image/video feature ``observation.images.<name>`` -> camera ``<name>``, resized by
  :func:`.image_codec.to_model_image`. Video frame of sample i: the frame at
  ``from_timestamp + timestamp[i]`` of the episode's mp4 (within ``TOLERANCE_S``, as LeRobot);
- ``fps`` -> ``data_rate_hz``; ``timestamp - timestamp[0]`` -> ``Episode.time``;
- tasks and LeRobot episode indices -> the dataset's ``source`` metadata.

Timestamps must increase by 1 / fps within ``TOLERANCE_S`` (LeRobot's ``check_timestamps_sync``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..spec import CameraSpec, IOSpec
from .episodes import Episode, save_dataset
from .image_codec import ImageDecodeError, to_model_image

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
TOLERANCE_S = 1e-4  # LeRobot's default tolerance_s for timestamps and video frames
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
STATE, ACTION, CAMERA_PREFIX = "observation.state", "action", "observation.images."
REQUIRED = (STATE, ACTION, "timestamp", "frame_index", "episode_index")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class LeRobotInfo:
    """What ``meta/info.json`` says, checked. Names and shapes as LeRobot stores them."""

    root: Path
    fps: int
    features: dict[str, dict]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    cameras: dict[str, str]  # our camera name -> LeRobot feature key
    robot_type: str | None
    raw: dict[str, Any]

    def is_video(self, key: str) -> bool:
        return self.features[key]["dtype"] == "video"


def is_lerobot_dataset(path: str | Path) -> bool:
    """True if ``path`` is a directory with ``meta/info.json`` (any LeRobot version)."""
    return (Path(path) / INFO_PATH).is_file()


def check_local_path(path: str | Path) -> Path:
    """``path`` as an existing directory; a hub id (``lerobot/pusht``) gets download advice."""
    root = Path(path)
    if root.is_dir():
        return root
    text = str(path)
    if HUB_ID.match(text):
        raise ValueError(
            f"{text!r} does not exist here (no such file or directory). If it is a Hugging Face hub dataset id, download it first: "
            f"`huggingface-cli download --repo-type dataset {text} --local-dir data/{text.split('/')[-1]}`, "
            f"then pass that directory"
        )
    raise ValueError(f"{text}: no such directory")


def _names(info: dict, key: str) -> tuple[str, ...]:
    ft = info["features"][key]
    shape = ft.get("shape")
    if ft.get("dtype") not in ("float32", "float64") or not isinstance(shape, list) or len(shape) != 1:
        raise ValueError(
            f"feature {key!r} must be a float32/float64 vector, got dtype {ft.get('dtype')!r} shape {shape}"
        )
    names = ft.get("names")
    if isinstance(names, dict) and len(names) == 1:  # older writers: {"motors": [...]}
        names = next(iter(names.values()))
    if not isinstance(names, list) or len(names) != shape[0] or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"feature {key!r} needs {shape[0]} joint names in meta/info.json 'names' (checkpoints bind "
            f"joints by name), got {names!r}"
        )
    return tuple(names)


def read_info(path: str | Path) -> LeRobotInfo:
    """Load and check ``meta/info.json`` of a local LeRobotDataset v3.0."""
    root = check_local_path(path)
    info_path = root / INFO_PATH
    if not info_path.is_file():
        raise ValueError(f"{root} is not a LeRobot dataset: no {INFO_PATH}")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{info_path}: invalid JSON: {e}") from e
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        hint = ""
        if isinstance(version, str) and version.startswith("v2"):
            hint = (
                f". {version} keeps one parquet and one mp4 per episode (data/chunk-000/episode_000000.parquet, "
                "videos/chunk-000/<key>/episode_000000.mp4) and meta/episodes.jsonl, tasks.jsonl, "
                "episodes_stats.jsonl, which this reader does not parse: convert it with LeRobot "
                "(`python -m lerobot.scripts.convert_dataset_v21_to_v30 --repo-id=<id>`)"
            )
        raise ValueError(
            f"{info_path}: codebase_version {version!r} is not supported, {CODEBASE_VERSION} is required{hint}"
        )
    features = info.get("features")
    if not isinstance(features, dict):
        raise ValueError(f"{info_path}: no 'features' mapping")
    missing = [k for k in REQUIRED if k not in features]
    if missing:
        raise ValueError(f"{info_path}: missing features {missing} (has {sorted(features)})")
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or not 0.1 <= fps <= 1000:
        raise ValueError(f"{info_path}: fps must be a number in [0.1, 1000], got {fps!r}")
    state_names, action_names = _names(info, STATE), _names(info, ACTION)
    if set(state_names) != set(action_names) or len(state_names) != len(action_names):
        raise ValueError(
            f"{info_path}: action names must be the state names (the policy commands the joints it "
            f"observes); only in {STATE}: {[n for n in state_names if n not in action_names]}, only in "
            f"{ACTION}: {[n for n in action_names if n not in state_names]}"
        )
    cameras = {}
    for key, ft in features.items():
        if ft.get("dtype") in ("video", "image"):
            if ft.get("info", {}).get("is_depth_map"):
                raise ValueError(f"{info_path}: {key!r} is a depth map; depth cameras are not supported")
            name = key.removeprefix(CAMERA_PREFIX)
            cameras[name] = key
    return LeRobotInfo(root, fps, features, state_names, action_names, cameras, info.get("robot_type"), info)


def _read_table(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"{path}: cannot read parquet: {e}") from e


def _read_dir(root: Path, sub: str):
    import pyarrow as pa

    files = sorted((root / sub).glob("chunk-*/file-*.parquet"))
    if not files:
        raise ValueError(f"{root}: no {sub}/chunk-*/file-*.parquet")
    return pa.concat_tables([_read_table(f) for f in files], promote_options="default")


def read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task text from ``meta/tasks.parquet``."""
    table = _read_table(root / TASKS_PATH)
    cols = table.column_names
    text = "task" if "task" in cols else "__index_level_0__"
    if "task_index" not in cols or text not in cols:
        raise ValueError(f"{root / TASKS_PATH}: needs columns task_index and task, has {cols}")
    return dict(zip(table.column("task_index").to_pylist(), table.column(text).to_pylist()))


def check_timestamps(ts: np.ndarray, fps: float, where: str) -> None:
    """Raise unless ``ts`` (s) increases by 1 / fps at every step, within ``TOLERANCE_S``."""
    d = np.diff(ts)
    if (d <= 0).any():
        i = int(np.argmax(d <= 0))
        raise ValueError(f"{where}: timestamps out of order at frame {i + 1}: {ts[i]:.6f} s then {ts[i + 1]:.6f} s")
    off = np.abs(d - 1.0 / fps) > TOLERANCE_S
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"{where}: timestamps not on the {fps} fps grid at frame {i + 1}: step {d[i]:.6f} s, expected "
            f"{1.0 / fps:.6f} s within {TOLERANCE_S} s (LeRobot's tolerance)"
        )


def decode_still(data: bytes | None, where: str) -> np.ndarray:
    """A PNG or JPEG image (bytes) -> (h, w, 3) uint8 RGB, decoded by PyAV."""
    import av

    if not data:
        raise ValueError(f"{where}: image has no embedded bytes (only a path); re-save it with embedded images")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        codec = "png"
    elif data[:2] == b"\xff\xd8":
        codec = "mjpeg"
    else:
        raise ValueError(f"{where}: image bytes are neither PNG nor JPEG (starts {data[:8]!r})")
    try:
        frames = av.CodecContext.create(codec, "r").decode(av.Packet(data))
    except av.error.FFmpegError as e:
        raise ValueError(f"{where}: cannot decode {codec} image: {e}") from e
    if len(frames) != 1:
        raise ValueError(f"{where}: {codec} image decoded to {len(frames)} frames")
    return frames[0].to_ndarray(format="rgb24")


def check_decodable(codec: str, where: str) -> None:
    """Raise a ValueError if PyAV has no decoder named ``codec``."""
    import av

    try:
        av.Codec(codec, "r")
    except (av.codec.codec.UnknownCodecError, ValueError) as e:
        raise ValueError(
            f"{where}: PyAV {av.__version__} cannot decode video codec {codec!r} (it decodes e.g. av1, h264, "
            f"hevc, vp9); re-encode the videos, e.g. to AV1 with LeRobot's default encoder"
        ) from e


def decode_video(path: Path, times: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Frames of ``path`` at ``times`` (s, ascending) -> (len(times), H, W, C) uint8 model images.

    Decodes the file once, front to back, and keeps for each time the frame nearest to it; each
    must be within ``TOLERANCE_S``. ``size`` is (height, width, channels).
    """
    import av

    if not path.is_file():
        raise ValueError(f"{path}: video file missing")
    out = np.empty((len(times), *size), np.uint8)
    best = np.full(len(times), np.inf)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            check_decodable(stream.codec_context.name, str(path))
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                lo, hi = np.searchsorted(times, [t - TOLERANCE_S, t + TOLERANCE_S])
                if lo == hi:
                    if len(times) and t > times[-1] + TOLERANCE_S:
                        break
                    continue
                img = to_model_image(frame.to_ndarray(format="rgb24"), *size)
                for k in range(lo, hi):
                    if abs(times[k] - t) < best[k]:
                        best[k] = abs(times[k] - t)
                        out[k] = img
    except av.error.FFmpegError as e:
        raise ValueError(f"{path}: cannot decode: {e}") from e
    if not np.isfinite(best).all():
        k = int(np.argmax(~np.isfinite(best)))
        raise ValueError(
            f"{path}: no frame within {TOLERANCE_S} s of {times[k]:.6f} s ({int((~np.isfinite(best)).sum())} "
            f"of {len(times)} timestamps unmatched)"
        )
    return out


def read_lerobot(
    path: str | Path, image_height: int = 96, image_width: int = 96, image_channels: int = 3
) -> tuple[IOSpec, list[Episode], dict]:
    """Read a local LeRobotDataset v3.0 directory. Returns (spec, episodes, source metadata)."""
    info = read_info(path)
    root = info.root
    cams = tuple(CameraSpec(n, image_height, image_width, image_channels) for n in info.cameras)
    spec = IOSpec(
        state_names=info.state_names, action_names=info.state_names, cameras=cams, data_rate_hz=float(info.fps)
    )
    for key in info.cameras.values():
        if info.is_video(key):
            codec = info.features[key].get("info", {}).get("video.codec")
            if codec:
                check_decodable(codec, f"{root / INFO_PATH}: {key}")
    tasks = read_tasks(root)
    meta_table = _read_dir(root, EPISODES_DIR)
    want = ["episode_index", "length", "tasks"]
    want += [f"videos/{k}/{c}" for k in info.cameras.values() if info.is_video(k)
             for c in ("chunk_index", "file_index", "from_timestamp")]  # fmt: skip
    missing = [c for c in want if c not in meta_table.column_names]
    if missing:
        raise ValueError(f"{root}/{EPISODES_DIR}: parquet lacks columns {missing}")
    meta = meta_table.to_pylist()
    meta.sort(key=lambda r: r["episode_index"])
    data = _read_dir(root, "data")
    missing = [
        k
        for k in (*REQUIRED, *(k for k in info.cameras.values() if not info.is_video(k)))
        if k not in data.column_names
    ]
    if missing:
        raise ValueError(f"{root}/data: parquet lacks columns {missing} (has {data.column_names})")
    ep_col = data.column("episode_index").to_numpy()
    order = [info.action_names.index(n) for n in info.state_names]  # action columns in state order
    episodes: list[Episode] = []
    video_queries: dict[tuple[str, Path], list[tuple[int, np.ndarray]]] = {}
    for e, row in enumerate(meta):
        idx = row["episode_index"]
        rows = np.flatnonzero(ep_col == idx)
        where = f"{root}: episode {idx}"
        if len(rows) != row["length"]:
            raise ValueError(f"{where}: {len(rows)} frames in data/, meta/episodes says {row['length']}")
        t = data.take(rows)
        ts = t.column("timestamp").to_numpy().astype(np.float64)
        check_timestamps(ts, info.fps, where)
        state = np.stack(t.column(STATE).to_numpy(zero_copy_only=False)).astype(np.float32)
        action = np.stack(t.column(ACTION).to_numpy(zero_copy_only=False)).astype(np.float32)[:, order]
        images = {}
        for name, key in info.cameras.items():
            size = (image_height, image_width, image_channels)
            if info.is_video(key):
                vpath = root / info.raw.get("video_path", VIDEO_PATH).format(
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                )
                video_queries.setdefault((name, vpath), []).append((e, row[f"videos/{key}/from_timestamp"] + ts))
                continue
            imgs = np.empty((len(ts), *size), np.uint8)
            for i, cell in enumerate(t.column(key).to_pylist()):
                try:
                    imgs[i] = to_model_image(
                        decode_still(cell and cell.get("bytes"), f"{where} {key} frame {i}"), *size
                    )
                except ImageDecodeError as err:
                    raise ValueError(f"{where} {key} frame {i}: {err}") from err
            images[name] = imgs
        episodes.append(Episode(state=state, action=action, images=images, time=ts - ts[0]))
    for (name, vpath), queries in video_queries.items():  # one pass per video file
        times = np.concatenate([q for _, q in queries])
        if (np.diff(times) <= 0).any():
            raise ValueError(f"{vpath}: episodes overlap in time (from_timestamp in meta/episodes)")
        frames = decode_video(vpath, times, (image_height, image_width, image_channels))
        start = 0
        for e, q in queries:
            episodes[e].images[name] = frames[start : start + len(q)]
            start += len(q)
    for e, ep in enumerate(episodes):
        try:
            ep.validate(spec)
        except ValueError as err:
            raise ValueError(f"{root}: episode {meta[e]['episode_index']}: {err}") from err
    source = {
        "builder": "sfp dataset build (LeRobotDataset v3.0)",
        "lerobot": {
            "path": str(root),
            "codebase_version": CODEBASE_VERSION,
            "fps": info.fps,
            "robot_type": info.robot_type,
            "features": {k: info.raw["features"][k] for k in (STATE, ACTION, *info.cameras.values())},
            "tasks": [tasks[k] for k in sorted(tasks)],
            "episodes": [
                {"episode_index": r["episode_index"], "length": r["length"], "tasks": list(r["tasks"])} for r in meta
            ],
        },
        "options": {"image_height": image_height, "image_width": image_width, "image_channels": image_channels},
    }
    return spec, episodes, source


def build_from_lerobot(
    path: str | Path,
    out: str | Path,
    image_height: int = 96,
    image_width: int = 96,
    image_channels: int = 3,
    overwrite: bool = False,
) -> Path:
    """`sfp dataset build LEROBOT_DIR`: write the LeRobot dataset at ``path`` as our dataset at ``out``."""
    out = Path(out)
    if (out / "dataset.json").exists() and not overwrite:
        raise ValueError(f"{out} already holds a dataset; pass overwrite=True / --overwrite")
    spec, episodes, source = read_lerobot(path, image_height, image_width, image_channels)
    if overwrite:
        for old in out.glob("episode_*.npz"):
            old.unlink()
    written = save_dataset(out, spec, episodes, source=source)
    log.info("wrote %s: %d episodes from %s", written, len(episodes), path)
    return written
