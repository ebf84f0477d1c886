"""Robot presets (config/robots/<name>.yaml) as plain parameter dicts, without ROS: the node,
the closed-loop harness and the offline evaluator read the same file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def find_preset(name: str) -> Path:
    """config/robots/<name>.yaml in the source tree, or the installed share/ directory."""
    here = Path(__file__).resolve()
    candidates = [here.parents[1] / "config" / "robots", here.parent / "config" / "robots",
                  Path(sys.prefix) / "share" / "streaming_flow_ros" / "config" / "robots"]
    for base in candidates:
        p = base / f"{name}.yaml"
        if p.is_file():
            return p
    raise ValueError(f"robot preset {name!r} not found (looked in config/robots and share/)")


def load_preset(name: str = "sim") -> dict[str, Any]:
    """The preset's node parameters (its ``/**: ros__parameters`` block)."""
    doc = yaml.safe_load(find_preset(name).read_text())
    return dict(doc["/**"]["ros__parameters"])
