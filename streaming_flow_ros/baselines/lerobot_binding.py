"""A LeRobot policy as the node sees it: a small JSON *binding* file that names a LeRobot ACT or
Diffusion Policy ``pretrained_model`` directory and what LeRobot's files do not say (the joint
names of each vector entry, the data rate, the units). Plain data, read without LeRobot (and
without torch); baselines/lerobot_policy.py runs it.

What LeRobot writes (0.4.x; ``PreTrainedPolicy.save_pretrained`` and the processor pipelines'
``save_pretrained``, src/lerobot/policies/pretrained.py, configs/policies.py)::

    pretrained_model/
      config.json                    "type": "act" | "diffusion" | ..., n_obs_steps, chunk_size /
                                     horizon, n_action_steps, input_features / output_features:
                                     {"observation.state": {"type": "STATE", "shape": [D_s]},
                                      "observation.images.<cam>": {"type": "VISUAL", "shape": [C, H, W]},
                                      "action": {"type": "ACTION", "shape": [D_a]}}
      model.safetensors              the weights (no pickle)
      policy_preprocessor.json       normalisation etc. as a processor pipeline (+ *.safetensors
      policy_postprocessor.json      state files with the dataset statistics)
      train_config.json              the training run (dataset repo_id / root)

The features carry shapes, not names, and no fps: the dataset had them. The binding::

    {"format": "sfp-lerobot-policy", "version": 1,
     "pretrained_model": "outputs/train/act_so101/checkpoints/last/pretrained_model",
     "fps": 30,
     "state_names": ["shoulder_pan.pos", ...],      # observation.state entry k is this joint
     "action_names": ["shoulder_pan.pos", ...],     # action entry k (default: state_names)
     "scale": 1.0, "offset": 0.0,                   # optional, one number or {joint: number}
     "device": "cpu"}                               # optional: where LeRobot runs ("cuda")

``pretrained_model`` is relative to the binding file's directory (or absolute). Units: LeRobot
stores whatever the robot reported (SO-100/101 and Koch followers: degrees or a -100..100 range,
not radians); the node works in the joint states' units (radians). ``scale``/``offset`` map
between them per joint: ``lerobot = scale * robot + offset`` (degrees: scale 180/pi). The node's
IOSpec keeps the state order; action names that are a permutation of the state names are
re-ordered to it (as the LeRobot dataset reader does).

``sfp lerobot bind PRETRAINED --out policy.json`` writes one, with names and fps from the
training dataset (``--dataset``, else the local copy train_config.json points at).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..spec import CameraSpec, IOSpec

FORMAT = "sfp-lerobot-policy"
VERSION = 1
KIND = "lerobot"
SUPPORTED_TYPES = ("act", "diffusion")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PROCESSOR_FILES = ("policy_preprocessor.json", "policy_postprocessor.json")
TRAIN_CONFIG_NAME = "train_config.json"
STATE_KEY, ACTION_KEY, CAMERA_PREFIX = "observation.state", "action", "observation.images."


@dataclass(frozen=True)
class LeRobotPolicyInfo:
    """What a LeRobot ``pretrained_model/config.json`` says, checked (LeRobot not needed).

    chunk_len: actions one inference returns: ACT's ``chunk_size`` (predict_action_chunk), or
        Diffusion's ``n_action_steps`` (generate_actions keeps the steps from the current one).
    image_keys: the VISUAL input features in the config's order (LeRobot's ``image_features``
        order, which Diffusion stacks cameras in); cameras: the same, as our CameraSpecs (name =
        the key without ``observation.images.``).
    """

    root: Path
    type: str
    n_obs_steps: int
    n_action_steps: int
    chunk_len: int
    horizon: int  # Diffusion's sampled horizon (its noise shape); ACT: chunk_size
    state_dim: int
    action_dim: int
    image_keys: tuple[str, ...]
    cameras: tuple[CameraSpec, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def pred_horizon(self) -> int:
        """Waypoints a plan holds (H): the chunk without its first action, the one aligned with
        the newest observation, whose place the anchor takes (our chunk convention,
        baselines/runtime.py; data/windows.py)."""
        return self.chunk_len - 1

    @property
    def action_horizon(self) -> int:
        """Data periods a plan runs before the next is due: LeRobot's n_action_steps (capped)."""
        return max(1, min(self.n_action_steps, self.pred_horizon))


def _read_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: {what} is not valid JSON: {e}") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot read {what}: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: {what} is a {type(doc).__name__}, not a JSON object")
    return doc


def is_lerobot_pretrained(path: str | Path) -> bool:
    """True if ``path`` is a directory whose config.json looks like a LeRobot policy config (a
    string ``type`` and an ``input_features`` mapping), whatever the policy type."""
    cfg = Path(path) / CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        doc = json.loads(cfg.read_text())
    except (json.JSONDecodeError, OSError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("type"), str) and isinstance(doc.get("input_features"), dict)


def _feature(features: dict, key: str, kind: str, where: Path) -> list[int]:
    ft = features.get(key)
    if not isinstance(ft, dict) or ft.get("type") != kind or not isinstance(ft.get("shape"), list):
        raise ValueError(f"{where}: feature {key!r} must be {{'type': {kind!r}, 'shape': [...]}}, got {ft!r}")
    shape = ft["shape"]
    if not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"{where}: feature {key!r} has shape {shape}")
    return shape


def _positive_int(doc: dict, key: str, where: Path) -> int:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{where}: {key} must be a positive integer, got {v!r}")
    return v


def read_pretrained_config(path: str | Path) -> LeRobotPolicyInfo:
    """Check a LeRobot ``pretrained_model`` directory (config.json, weights, processor files)
    and read the policy's interface. Raises ValueError naming what is missing or unsupported."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: no such directory (a LeRobot pretrained_model directory was expected)")
    where = root / CONFIG_NAME
    if not where.is_file():
        raise ValueError(f"{root}: no {CONFIG_NAME}: not a LeRobot pretrained_model directory")
    doc = _read_json(where, "the LeRobot policy config")
    ptype = doc.get("type")
    if ptype not in SUPPORTED_TYPES:
        raise ValueError(f"{where}: LeRobot policy type {ptype!r} is not supported here (supported: "
                         f"{', '.join(SUPPORTED_TYPES)})")
    if not (root / WEIGHTS_NAME).is_file():
        raise ValueError(f"{root}: no {WEIGHTS_NAME} (the policy's weights)")
    missing = [f for f in PROCESSOR_FILES if not (root / f).is_file()]
    if missing:
        raise ValueError(
            f"{root}: no {', '.join(missing)}: saved by LeRobot < 0.4, which kept the normalisation "
            "inside the model; migrate it with LeRobot 0.4's "
            "`python -m lerobot.processor.migrate_policy_normalization --pretrained-path DIR`"
        )
    inputs, outputs = doc.get("input_features"), doc.get("output_features")
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise ValueError(f"{where}: input_features and output_features must be mappings (null: never trained?)")
    (state_dim,) = _vector(inputs, STATE_KEY, "STATE", where)
    (action_dim,) = _vector(outputs, ACTION_KEY, "ACTION", where)
    image_keys, cameras = [], []
    for key, ft in inputs.items():
        if key == STATE_KEY:
            continue
        if not (isinstance(ft, dict) and ft.get("type") == "VISUAL" and key.startswith(CAMERA_PREFIX)):
            raise ValueError(f"{where}: input feature {key!r} ({ft!r}) is not supported: the node feeds "
                             f"{STATE_KEY} (joint positions) and {CAMERA_PREFIX}<camera> images only")
        shape = _feature(inputs, key, "VISUAL", where)
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise ValueError(f"{where}: camera {key!r} must be [C, H, W] with C 1 or 3, got {shape}")
        image_keys.append(key)
        cameras.append(CameraSpec(key.removeprefix(CAMERA_PREFIX), shape[1], shape[2], shape[0]))
    n_obs = _positive_int(doc, "n_obs_steps", where)
    n_act = _positive_int(doc, "n_action_steps", where)
    if ptype == "act":
        chunk = horizon = _positive_int(doc, "chunk_size", where)
    else:
        horizon = _positive_int(doc, "horizon", where)
        chunk = n_act
        if n_obs - 1 + n_act > horizon:
            raise ValueError(f"{where}: n_obs_steps - 1 + n_action_steps ({n_obs - 1 + n_act}) exceeds horizon {horizon}")
    if chunk < 2:
        raise ValueError(f"{where}: one inference returns {chunk} action: a chunk of at least 2 is needed "
                         f"(its first action is the anchor's); raise {'chunk_size' if ptype == 'act' else 'n_action_steps'}")
    return LeRobotPolicyInfo(root, ptype, n_obs, n_act, chunk, horizon, state_dim, action_dim,
                             tuple(image_keys), tuple(cameras), doc)


def _vector(features: dict, key: str, kind: str, where: Path) -> list[int]:
    if key not in features:
        raise ValueError(f"{where}: the policy has no {key!r} feature (has {sorted(features)}); the node "
                         f"streams policies that read joint positions and command them")
    shape = _feature(features, key, kind, where)
    if len(shape) != 1:
        raise ValueError(f"{where}: feature {key!r} must be a vector, got shape {shape}")
    return shape


@dataclass(frozen=True)
class LeRobotBinding:
    """A read binding file: the policy's interface as an IOSpec plus the maps between our arrays
    and LeRobot's vectors (checkpoint-like: ``kind``, ``spec``, ``path``).

    spec: state_names in LeRobot's observation.state order, action_names in spec order (the
        state's when the action is a permutation of it), the cameras, fps as data_rate_hz.
    action_order: (D_a,) LeRobot action column of our action k.
    state_scale/state_offset (D_s,), action_scale/action_offset (D_a,) in LeRobot's order:
        lerobot = scale * robot + offset.
    """

    path: Path
    info: LeRobotPolicyInfo
    spec: IOSpec
    action_order: np.ndarray
    state_scale: np.ndarray
    state_offset: np.ndarray
    action_scale: np.ndarray
    action_offset: np.ndarray
    device: str = "cpu"
    kind: str = KIND

    @property
    def pretrained_dir(self) -> Path:
        return self.info.root


def _names(doc: dict, key: str, n: int, where: Path, what: str) -> tuple[str, ...]:
    names = doc.get(key)
    if not isinstance(names, list) or not all(isinstance(s, str) and s for s in names):
        raise ValueError(f"{where}: {key} must be a list of joint names, got {names!r}")
    if len(names) != n:
        raise ValueError(f"{where}: {key} has {len(names)} names for the policy's {n}-dim {what}")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: {key} has duplicates: {names}")
    return tuple(names)


def _per_joint(doc: dict, key: str, default: float, joints: set[str], where: Path) -> dict[str, float]:
    v = doc.get(key, default)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        values = dict.fromkeys(joints, float(v))
    elif isinstance(v, dict):
        unknown = sorted(set(v) - joints)
        if unknown:
            raise ValueError(f"{where}: {key} names joints the policy does not have: {unknown}")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values()):
            raise ValueError(f"{where}: {key} values must be numbers, got {v!r}")
        values = {j: float(v.get(j, default)) for j in joints}
    else:
        raise ValueError(f"{where}: {key} must be a number or {{joint: number}}, got {v!r}")
    bad = {j: x for j, x in values.items() if not math.isfinite(x) or (key == "scale" and x == 0.0)}
    if bad:
        raise ValueError(f"{where}: {key} must be finite{' and non-zero' if key == 'scale' else ''}: {bad}")
    return values


def read_binding(path: str | Path) -> LeRobotBinding:
    """Read and check a binding file and the pretrained_model directory it names (no LeRobot)."""
    path = Path(path)
    doc = _read_json(path, "the LeRobot policy binding")
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: format is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise ValueError(f"{path}: binding version {doc.get('version')!r} is not supported (this build reads {VERSION})")
    known = {"format", "version", "pretrained_model", "fps", "state_names", "action_names", "scale", "offset", "device"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ValueError(f"{path}: unknown fields {unknown} (known: {sorted(known)})")
    target = doc.get("pretrained_model")
    if not isinstance(target, str) or not target:
        raise ValueError(f"{path}: pretrained_model must name the LeRobot pretrained_model directory")
    info = read_pretrained_config((path.parent / target).expanduser())
    fps = doc.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0.1 <= fps <= 1000:
        raise ValueError(f"{path}: fps (the training dataset's rate, Hz) must be in [0.1, 1000], got {fps!r}")
    state = _names(doc, "state_names", info.state_dim, path, STATE_KEY)
    action = _names(doc, "action_names", info.action_dim, path, ACTION_KEY) if "action_names" in doc else state
    if "action_names" not in doc and info.action_dim != info.state_dim:
        raise ValueError(f"{path}: the action has {info.action_dim} entries, the state {info.state_dim}: "
                         "give action_names too")
    ours = state if sorted(action) == sorted(state) else action  # a permutation: the state's order
    order = np.array([action.index(n) for n in ours], np.intp)
    joints = set(state) | set(action)
    scale = _per_joint(doc, "scale", 1.0, joints, path)
    offset = _per_joint(doc, "offset", 0.0, joints, path)
    device = doc.get("device", "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith(("cuda", "mps"))):
        raise ValueError(f"{path}: device must be cpu, cuda[:N] or mps, got {device!r}")
    spec = IOSpec(state, ours, info.cameras, float(fps),
                  extra={"lerobot": {"type": info.type, "pretrained_model": str(info.root)}})
    return LeRobotBinding(
        path, info, spec, order,
        np.array([scale[n] for n in state]), np.array([offset[n] for n in state]),
        np.array([scale[n] for n in action]), np.array([offset[n] for n in action]), device,
    )


def is_binding_file(path: str | Path) -> bool:
    """True if ``path`` is a JSON file whose ``format`` is a LeRobot policy binding (cheap: a
    safetensors checkpoint starts with a binary length, not ``{``)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        if f.read(64).lstrip()[:1] != b"{":
            return False
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def binding_hint(pretrained: str | Path) -> str:
    """What to do with a pretrained_model directory given where a checkpoint was expected."""
    return (f"{pretrained} is a LeRobot pretrained_model directory; the node runs one through a binding "
            f"file that names its joints and data rate: `sfp lerobot bind {pretrained} --out policy.json` "
            "(names and fps from the training dataset), then checkpoint:=policy.json (docs/ROS.md, "
            "'LeRobot policies')")


# ---- writing one: `sfp lerobot bind` ---------------------------------------------------------
def local_training_dataset(pretrained: str | Path) -> Path | None:
    """The training dataset's local directory, from train_config.json (``dataset.root``, else
    LeRobot's cache ``$HF_LEROBOT_HOME/<repo_id>``, default ``$HF_HOME/lerobot``), or None."""
    cfg = Path(pretrained) / TRAIN_CONFIG_NAME
    if not cfg.is_file():
        return None
    dataset = _read_json(cfg, "the LeRobot train config").get("dataset")
    if not isinstance(dataset, dict):
        return None
    if isinstance(dataset.get("root"), str):
        root = Path(dataset["root"]).expanduser()
    elif isinstance(dataset.get("repo_id"), str):
        hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
        root = Path(os.environ.get("HF_LEROBOT_HOME", hf_home / "lerobot")).expanduser() / dataset["repo_id"]
    else:
        return None
    return root if root.is_dir() else None


def make_binding(pretrained: str | Path, out: str | Path, *, dataset: str | Path | None = None,
                 joints: list[str] | None = None, fps: float | None = None, scale: float = 1.0,
                 device: str = "cpu") -> Path:
    """Write a binding for ``pretrained`` to ``out`` and check it by reading it back. Names and
    fps come from ``joints``/``fps`` when given, else from the LeRobot dataset ``dataset`` (its
    meta/info.json, through our reader; default: ``local_training_dataset``)."""
    pretrained, out = Path(pretrained).resolve(), Path(out)
    read_pretrained_config(pretrained)  # a bad directory fails before the dataset is read
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    state = action = list(joints) if joints else None
    if state is None or fps is None:
        from ..data.lerobot import read_info

        source = dataset or local_training_dataset(pretrained)
        if source is None:
            raise ValueError(f"{pretrained}: the training dataset is not here (train_config.json names no local "
                             "copy): pass --dataset DIR, or --joints and --fps")
        ds = read_info(source)
        state, action = (state, action) if state is not None else (list(ds.state_names), list(ds.action_names))
        fps = ds.fps if fps is None else fps
    doc["pretrained_model"] = os.path.relpath(pretrained, out.resolve().parent)
    doc.update(fps=fps, state_names=state)
    if action != state:
        doc["action_names"] = action
    if scale != 1.0:
        doc["scale"] = scale
    doc["device"] = device
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    try:
        read_binding(tmp)
    except ValueError:
        tmp.unlink()
        raise
    os.replace(tmp, out)
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pretrained", type=Path, metavar="PRETRAINED_DIR",
                        help="LeRobot pretrained_model directory (ACT or Diffusion Policy)")
    parser.add_argument("--out", type=Path, required=True, help="binding file to write (JSON); the node's checkpoint")
    parser.add_argument("--dataset", type=Path,
                        help="the local LeRobot dataset it was trained on (joint names, fps); default: the one "
                        "train_config.json names, if it is here")
    parser.add_argument("--joints", help="comma-separated joint names of observation.state and action, in order")
    parser.add_argument("--fps", type=float, help="the training data's rate, Hz")
    parser.add_argument("--degrees", action="store_true",
                        help="LeRobot's values are degrees, the joint states radians (scale 180/pi for every "
                        "joint; edit 'scale' per joint for a gripper in another unit)")
    parser.add_argument("--device", default="cpu", help="where LeRobot runs: cpu, cuda, cuda:N")


def run(args: argparse.Namespace) -> int:
    joints = [j.strip() for j in args.joints.split(",")] if args.joints else None
    out = make_binding(args.pretrained, args.out, dataset=args.dataset, joints=joints, fps=args.fps,
                       scale=180.0 / math.pi if args.degrees else 1.0, device=args.device)
    b = read_binding(out)
    print(f"{out}: LeRobot {b.info.type}, joints {list(b.spec.state_names)}, cameras "
          f"{[c.name for c in b.spec.cameras]}, {b.spec.data_rate_hz:g} Hz; run it with "
          f"`sfp node --ros-args -p checkpoint:={out}`")
    return 0
