"""pytest plugin for `make test-jazzy` only (`-p jazzy_compat`): papers over the ROS 2 Jazzy
rclpy (7.1.6) API differences that are still open in the package, each printed at the end of
the run so that none hides. Delete an entry once the package handles the difference itself.

- ``rclpy.subscription.MessageInfo`` (a TypedDict, Kilted's rclpy 9) does not exist in Jazzy's
  rclpy; the callbacks still receive the same dict (``source_timestamp``, ...).
  ``streaming_flow_ros/ros/bench/invariants.py`` imports it at module level for annotations only
  (the module has ``from __future__ import annotations``), so the import fails on Jazzy and with
  it the invariant checker, the reliability tests that use it and ``sfp soak``. The fix there:
  import it under ``typing.TYPE_CHECKING``.
"""

from __future__ import annotations

from typing import TypedDict

import rclpy.subscription

SHIMMED: list[str] = []

if not hasattr(rclpy.subscription, "MessageInfo"):

    class MessageInfo(TypedDict, total=False):  # Kilted's definition, for the import only
        source_timestamp: int
        received_timestamp: int
        publication_sequence_number: int
        reception_sequence_number: int

    rclpy.subscription.MessageInfo = MessageInfo
    SHIMMED.append("rclpy.subscription.MessageInfo missing (needed by "
                   "streaming_flow_ros/ros/bench/invariants.py): shimmed")


def pytest_terminal_summary(terminalreporter) -> None:  # printed under -q too
    for line in SHIMMED or ["nothing shimmed"]:
        terminalreporter.write_line(f"jazzy_compat: {line}")
