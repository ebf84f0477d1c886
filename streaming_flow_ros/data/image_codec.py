"""sensor_msgs/Image <-> numpy without cv_bridge. Pure numpy; works on rclpy messages and on
rosbags-deserialised messages alike (they share the field names).

Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1 (8UC1/8UC3 alias
mono8/bgr8). Rows may be padded (``step`` > width * bytes per pixel); ``data`` must hold
``step * height`` bytes; ``is_bigendian`` is honoured for 16- and 32-bit encodings.

Model images are uint8 (Hh, Ww, C) with C = 3 (RGB) or 1. 16-bit images map 0..65535 to
0..255; 32FC1 maps [0, 1] to 0..255 (clipped) and rejects non-finite pixels.
"""

from __future__ import annotations

import numpy as np

# encoding -> (channels, numpy dtype char, bytes per channel)
ENCODINGS: dict[str, tuple[int, str, int]] = {
    "rgb8": (3, "u1", 1),
    "bgr8": (3, "u1", 1),
    "8UC3": (3, "u1", 1),
    "rgba8": (4, "u1", 1),
    "bgra8": (4, "u1", 1),
    "mono8": (1, "u1", 1),
    "8UC1": (1, "u1", 1),
    "mono16": (1, "u2", 2),
    "16UC1": (1, "u2", 2),
    "32FC1": (1, "f4", 4),
}

MAX_PIXELS = 4096 * 4096


class ImageDecodeError(ValueError):
    """The image message cannot be turned into a model image (says why)."""


def decode_image(msg) -> np.ndarray:
    """Decode an Image-like message to an (height, width, C) uint8 RGB or mono array.

    ``msg`` needs: height, width, encoding, is_bigendian, step, data.
    Raises ImageDecodeError on unknown encodings, zero/huge sizes, short data, bad step,
    or non-finite float pixels.
    """
    h, w = int(msg.height), int(msg.width)
    enc = str(msg.encoding)
    if enc not in ENCODINGS:
        raise ImageDecodeError(f"unsupported image encoding {enc!r} (supported: {sorted(ENCODINGS)})")
    if h <= 0 or w <= 0:
        raise ImageDecodeError(f"image has zero size {h}x{w}")
    if h * w > MAX_PIXELS:
        raise ImageDecodeError(f"image {h}x{w} exceeds {MAX_PIXELS} pixels")
    ch, kind, nbytes = ENCODINGS[enc]
    row_bytes = w * ch * nbytes
    step = int(msg.step)
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} < width*bpp {row_bytes} for {enc} {w} px wide")
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, (bytes, np.ndarray)) else msg.data, np.uint8)
    if buf.size < step * h:  # sensor_msgs/Image: data is step * height bytes
        raise ImageDecodeError(f"image data has {buf.size} bytes, step * height needs {step * h}")
    # (h, row_bytes) view with the row stride ``step``: drops the row padding without copying.
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row_bytes), strides=(step, 1), writeable=False)
    order = ">" if msg.is_bigendian else "<"
    px = np.ascontiguousarray(rows).view(np.dtype(order + kind) if nbytes > 1 else np.uint8)
    px = px.reshape(h, w, ch)
    if kind == "u2":
        out = (px.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif kind == "f4":
        f = px.astype(np.float32)
        if not np.isfinite(f).all():
            raise ImageDecodeError("32FC1 image has non-finite pixels")
        out = (np.clip(f, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        out = px
    if enc in ("bgr8", "8UC3", "bgra8"):
        out = out[..., 2::-1] if ch == 4 else out[..., ::-1]
    elif enc == "rgba8":
        out = out[..., :3]
    return np.ascontiguousarray(out)


def to_model_image(img: np.ndarray, height: int, width: int, channels: int = 3) -> np.ndarray:
    """Resize (nearest, centre-aligned) and convert channels to the model's input.

    Args:
        img: (h, w, 1 or 3) uint8.
    Returns:
        (height, width, channels) uint8.
    """
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.dtype != np.uint8:
        raise ImageDecodeError(f"expected (h, w, 1|3) uint8, got {img.shape} {img.dtype}")
    h, w, c = img.shape
    if (h, w) != (height, width):
        rows = ((np.arange(height) + 0.5) * h / height).astype(np.intp)
        cols = ((np.arange(width) + 0.5) * w / width).astype(np.intp)
        img = img[rows[:, None], cols[None, :]]
    if c != channels:
        if channels == 3:
            img = np.repeat(img, 3, axis=2)
        else:  # RGB -> luma
            img = (img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def encode_rgb8(img: np.ndarray) -> dict:
    """Fields of an rgb8 Image message for an (h, w, 3) uint8 array (header left to the caller)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"encode_rgb8 needs (h, w, 3) uint8, got {img.shape} {img.dtype}")
    h, w, _ = img.shape
    return {
        "height": h,
        "width": w,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": w * 3,
        "data": np.ascontiguousarray(img).reshape(-1),
    }
