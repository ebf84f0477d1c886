"""Checkpoints are data: one ``.safetensors`` file whose header metadata carries a JSON document
(format, version, model kind + config, IO spec, normalisers, training info). Nothing is ever
unpickled. One loader, which fails loudly (ValueError) on corruption or mismatch.

    {"format": "sfp-checkpoint", "version": 1, "kind": "sfp", "model": {...}, "spec": {...},
     "normalizers": {"state": {...}, "action": {...}}, "train": {...}}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data.normalizer import MinMaxNormalizer
from .kinds import model_kinds
from .spec import IOSpec

FORMAT = "sfp-checkpoint"
VERSION = 1
META_KEY = "sfp_checkpoint"


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``tensors`` are the model's weights (EMA weights when trained)."""

    kind: str
    model_config: Any
    spec: IOSpec
    state_norm: MinMaxNormalizer
    action_norm: MinMaxNormalizer
    tensors: dict[str, torch.Tensor]
    train: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "model": self.model_config.to_dict(),
            "spec": self.spec.to_dict(),
            "normalizers": {"state": self.state_norm.to_dict(), "action": self.action_norm.to_dict()},
            "train": self.train,
        }


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    spec: IOSpec,
    state_norm: MinMaxNormalizer,
    action_norm: MinMaxNormalizer,
    train: dict[str, Any] | None = None,
) -> Path:
    """Write model weights + metadata atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    cfg = model.config
    ckpt = Checkpoint(cfg.kind, cfg, spec, state_norm, action_norm, {}, dict(train or {}))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(ckpt.metadata())})
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint file (weights not yet put into a model)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    # A safetensors file is <u64 little-endian header length><JSON header starting with "{">.
    # Only a file that is NOT that is sniffed for pickle/zip (the length's first byte can be 0x80).
    looks_safetensors = len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size
    if not looks_safetensors and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise ValueError(
            f"{path} looks like a pickle / torch.save file; checkpoints here are safetensors and "
            "are never unpickled"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors checkpoint (truncated or corrupt?): {e}") from e
    if META_KEY not in meta:
        raise ValueError(f"{path}: safetensors file without {META_KEY!r} metadata: not an sfp checkpoint")
    try:
        doc = json.loads(meta[META_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: checkpoint metadata is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: checkpoint metadata is a {type(doc).__name__}, not a JSON object")
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: metadata format is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {doc.get('version')!r} is not supported "
            f"(this build reads version {VERSION})"
        )
    kinds = model_kinds()
    kind = doc.get("kind")
    if kind not in kinds:
        raise ValueError(f"{path}: unknown model kind {kind!r} (known: {sorted(kinds)})")
    try:
        spec = IOSpec.from_dict(doc["spec"])
        model_config = kinds[kind].config(doc["model"])
        norms = doc["normalizers"]
        state_norm = MinMaxNormalizer.from_dict(norms["state"], spec.state_dim)
        action_norm = MinMaxNormalizer.from_dict(norms["action"], spec.action_dim)
    except KeyError as e:
        raise ValueError(f"{path}: checkpoint metadata lacks {e}") from e
    except (TypeError, AttributeError) as e:  # a field of the wrong JSON type (list for object...)
        raise ValueError(f"{path}: malformed checkpoint metadata: {type(e).__name__}: {e}") from e
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return Checkpoint(kind, model_config, spec, state_norm, action_norm, tensors, doc.get("train", {}), path)


def build_model(ckpt: Checkpoint) -> nn.Module:
    """Construct the model for ``ckpt`` and load its weights strictly (eval mode)."""
    model = model_kinds()[ckpt.kind].model(ckpt.model_config, ckpt.spec)
    own = model.state_dict()
    missing = sorted(set(own) - set(ckpt.tensors))
    unexpected = sorted(set(ckpt.tensors) - set(own))
    bad_shape = [
        f"{k}: {tuple(ckpt.tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in ckpt.tensors and ckpt.tensors[k].shape != v.shape
    ]
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"{ckpt.path}: weights do not match the model its metadata describes: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape {bad_shape[:5]}"
        )
    for k, v in ckpt.tensors.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{ckpt.path}: weight {k!r} has non-finite values")
    model.load_state_dict(ckpt.tensors, strict=True)
    model.eval()
    return model


def half_precision_copy(src: str | Path, dst: str | Path) -> Path:
    """Write ``src`` to ``dst`` with its float32 weights stored as float16 (about half the
    size, for shipping; the metadata is unchanged). Loading casts them back to the model's
    float32, so a half copy runs exactly like a float32 checkpoint whose weights were rounded
    to float16. Raises ValueError when a weight exceeds float16's range (|w| > 65504)."""
    from safetensors.torch import save_file

    ckpt = read_checkpoint(src)
    build_model(ckpt)  # the source must be valid
    tensors = {}
    for k, v in ckpt.tensors.items():
        if v.dtype == torch.float32:
            if v.abs().max() > torch.finfo(torch.float16).max:
                raise ValueError(f"{src}: weight {k!r} exceeds float16's range")
            v = v.to(torch.float16)
        tensors[k] = v.contiguous()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(ckpt.metadata())})
    os.replace(tmp, dst)
    return dst


def load_model(path: str | Path) -> tuple[nn.Module, Checkpoint]:
    ckpt = read_checkpoint(path)
    return build_model(ckpt), ckpt


def check_compatible(spec: IOSpec, joint_names: list[str] | None = None, camera_names: list[str] | None = None) -> None:
    """Raise ValueError when a deployment's joints/cameras do not cover the checkpoint's."""
    if joint_names is not None:
        missing = [n for n in (*spec.state_names, *spec.action_names) if n not in joint_names]
        if missing:
            raise ValueError(
                f"checkpoint needs joints {sorted(set(missing))} that the configuration does not have "
                f"(configured: {joint_names})"
            )
    if camera_names is not None:
        missing = [c.name for c in spec.cameras if c.name not in camera_names]
        if missing:
            raise ValueError(f"checkpoint needs cameras {missing}; configured: {camera_names}")


def make_untrained_checkpoint(path: str | Path, spec: IOSpec, seed: int = 0, config: Any = None) -> Path:
    """A real, randomly initialised SFP checkpoint (for tests and dry runs), with normalisers
    spanning the action bounds when given, else [-pi, pi]."""
    from .nets.model import ModelConfig, SFPModel

    torch.manual_seed(seed)
    cfg = config or ModelConfig(hidden=64, depth=2, image_channels=(8, 16), num_keypoints=8, image_feat_dim=16)
    model = SFPModel(cfg, spec)
    lo = list(spec.action_lower) or [-math.pi] * spec.action_dim
    hi = list(spec.action_upper) or [math.pi] * spec.action_dim
    import numpy as np

    action_norm = MinMaxNormalizer.fit(np.array([lo, hi]))
    state_norm = (
        MinMaxNormalizer.fit(np.array([lo, hi])) if spec.state_names == spec.action_names
        else MinMaxNormalizer.identity(spec.state_dim)
    )
    return save_checkpoint(path, model, spec, state_norm, action_norm, {"untrained": True, "seed": seed})
