"""The package's shipped config files without ROS: robot presets (config/robots/<name>.yaml) as
plain parameter dicts, and the path of any file under config/ (training configs). The node, the
closed-loop harness, the offline evaluator and the benchmarks read the same files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def find_config(*parts: str) -> Path:
    """config/<parts...> in the source tree, or in the installed share/ directory."""
    here = Path(__file__).resolve()
    roots = [here.parents[1] / "config", here.parent / "config",
             Path(sys.prefix) / "share" / "streaming_flow_ros" / "config"]
    for root in roots:
        p = root.joinpath(*parts)
        if p.is_file():
            return p
    raise ValueError(f"config/{'/'.join(parts)} not found (looked in the source tree and share/)")


def find_preset(name: str) -> Path:
    """config/robots/<name>.yaml."""
    return find_config("robots", f"{name}.yaml")


def load_preset(name: str = "sim") -> dict[str, Any]:
    """The preset's node parameters (its ``/**: ros__parameters`` block)."""
    doc = yaml.safe_load(find_preset(name).read_text())
    return dict(doc["/**"]["ros__parameters"])
