"""The layering rule, checked statically over every module: only streaming_flow_ros/ros/ imports
rclpy or ROS message packages; the per-tick decisions live in one place (policy/control.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "streaming_flow_ros"
ROS_MODULE = re.compile(r"^(rclpy|rosidl\w*|rosbag2_py|launch\w*|ros2\w*|\w+_msgs|\w+_srvs|std_srvs|builtin_interfaces)(\.|$)")


def imported(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_only_ros_layer_imports_ros():
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "ros":
            continue
        offenders += [f"{rel}:{line}: import {mod}" for line, mod in imported(path) if ROS_MODULE.match(mod)]
    assert not offenders, "ROS imports outside streaming_flow_ros/ros/:\n" + "\n".join(offenders)


def starts_a_plan(path: Path) -> list[int]:
    """Lines calling ``<...policy>.start(...)``: re-anchoring a runtime policy on a plan."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "start":
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if name.endswith("policy"):
                lines.append(node.lineno)
    return lines


def test_one_control_loop():
    """Only policy/control.py re-anchors a policy on a clock. The exceptions are not loops: the
    compute-timing harnesses (bench/step.py, bench/latency.py, the step measurement in
    policy/integration.py), the node's warm-up, and worker integration (policy/integration.py),
    a runtime whose own start() -- called by the loop -- starts its inner runtime on its worker."""
    allowed = {"policy/control.py", "bench/step.py", "bench/latency.py", "ros/node.py", "policy/integration.py"}
    callers = [f"{path.relative_to(PKG)}:{line}" for path in sorted(PKG.rglob("*.py"))
               if str(path.relative_to(PKG)) not in allowed for line in starts_a_plan(path)]
    assert not callers, f"re-anchoring outside the ControlLoop: {callers}"
    assert starts_a_plan(PKG / "policy" / "control.py")  # the check finds the real one
    node_calls = starts_a_plan(PKG / "ros" / "node.py")
    assert len(node_calls) == 1, "ros/node.py starts a plan only in warm_up"
