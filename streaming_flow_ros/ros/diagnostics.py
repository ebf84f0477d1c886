"""The policy node's health report: ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, one
status "<node>: policy") every ``diagnostics_period`` s, and a one-line log summary every
``log_period`` s while active (ros/telemetry.py renders both).

Level: OK while active and streaming; WARN with a reason (not active, stale input, an input
error, a camera slower than the model's data rate); ERROR after a tick or prepare error or a
failed configure. Values: lifecycle state, enabled, command_mode, telemetry's summary,
observation ages (ms) and camera frame rates.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from ..policy.integration import integration_values, integration_warning
from .telemetry import diagnostic_status, one_line

if TYPE_CHECKING:
    from .node import PolicyNode

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def slow_cameras(fps: dict[str, float], data_rate_hz: float) -> str:
    """Cameras delivering fewer frames than the model's data rate (frames lost in transport,
    typically: large images over the default DDS set-up; docs/RELIABILITY.md "Cameras over
    DDS"), as a diagnostics message, or ""."""
    slow = [f"{c} {v:.1f}" for c, v in fps.items() if 0 < v < 0.9 * data_rate_hz]
    if not slow:
        return ""
    return (f"camera frames/s below the {data_rate_hz:g} Hz data rate ({', '.join(slow)}): frames lost in "
            f"transport? see 'Cameras over DDS' in docs/RELIABILITY.md")


class Diagnostics:
    """Publishes the report of ``node`` (read through its public API) on a timer of the node."""

    def __init__(self, node: PolicyNode) -> None:
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.create_timer(node.params.diagnostics_period, self.publish)
        self._last_log = time.monotonic()
        self._stalls = 0

    def publish(self) -> None:
        node = self._node
        now, state, tel, cfg = node.now_s(), node.lifecycle_state, node.telemetry, node.params_in_effect
        s = tel.summary(now, cfg.loop.control_rate_hz)
        inputs = node.inputs if node.policy is not None else None
        ages = {k: v * 1e3 for k, v in inputs.buffer.ages(now).items()} if inputs is not None else {}
        fps = tel.frame_rates(time.monotonic())
        slow = slow_cameras(fps, node.policy.spec.data_rate_hz) if state == "active" and node.policy else ""
        integ = integration_values(node.policy) if node.policy is not None else {}
        behind = integration_warning(integ, self._stalls)
        self._stalls = integ.get("integration_stalls", 0)
        reason = "; ".join(r for r in (node.status_reason, slow, behind) if r)
        level = OK if state == "active" and not reason else WARN
        if tel.tick_errors or tel.prepare_errors or reason.startswith("configure failed"):
            level = ERROR
        values = {"state": state, "enabled": cfg.enabled, "command_mode": cfg.output.command_mode,
                  **s, **{f"obs_age_{k}_ms": v for k, v in ages.items()},
                  **{f"camera_{k}_fps": v for k, v in fps.items()}, **integ, **node.gripper_goal_counts,
                  "last_error": tel.last_error}
        arr = DiagnosticArray()
        arr.header.stamp = node.get_clock().now().to_msg()
        message = reason or f"{state}, enabled={cfg.enabled}"
        arr.status = [diagnostic_status(f"{node.get_name()}: policy", level, message, values)]
        self._pub.publish(arr)
        due = time.monotonic() - self._last_log >= cfg.log_period - 0.5 * cfg.diagnostics_period
        if cfg.log_period > 0 and due:
            self._last_log = time.monotonic()
            if state == "active":
                node.get_logger().info(one_line(state, cfg.enabled, s, ages))
