"""runner.make_executor across rclpy releases: ``events`` is rclpy.experimental.EventsExecutor
where this rclpy has it (Kilted; Jazzy's rclpy 7.1.6 wheels) and falls back to the
MultiThreadedExecutor with a warning where it does not (Humble, older Jazzy patch releases),
instead of killing the node at start-up."""

import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from ros_harness import ros_context

from streaming_flow_ros.ros.runner import make_executor


def _has_events_executor() -> bool:
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_events_executor(), reason="this rclpy has no EventsExecutor")
def test_events_is_the_events_executor_where_rclpy_has_it():
    with ros_context() as ctx:
        ex = make_executor("events", ctx)
        try:
            assert type(ex).__name__ == "EventsExecutor"
        finally:
            ex.shutdown()


@pytest.mark.parametrize("missing", ["module", "native"])
def test_events_falls_back_to_multi_without_events_executor(monkeypatch, capfd, missing):
    if missing == "module":  # Humble, older Jazzy: no rclpy.experimental at all
        monkeypatch.setitem(sys.modules, "rclpy.experimental", None)  # import -> ImportError
    else:  # the Python shim present, the native EventsExecutor not built in
        from rclpy.experimental import events_executor

        class NoNative:
            def __getattr__(self, name):
                raise AttributeError(f"module '_rclpy' has no attribute '{name}'")

        monkeypatch.setattr(events_executor, "_rclpy", NoNative())
    with ros_context() as ctx:
        ex = make_executor("events", ctx)
        try:
            assert isinstance(ex, MultiThreadedExecutor)
        finally:
            ex.shutdown()
    err = capfd.readouterr().err
    assert "EventsExecutor is not available" in err and "MultiThreadedExecutor" in err


def test_unknown_executor_is_refused():
    with ros_context() as ctx, pytest.raises(ValueError, match="events|multi"):
        make_executor("single", ctx)


def test_rclpy_comes_from_its_own_distribution():
    """Whichever lane runs this (Kilted .venv or Jazzy .venv-jazzy), rclpy's native module and
    the ros-rclpy distribution come from the same venv: no Kilted/Jazzy mix."""
    site = Path(str(distribution("ros-rclpy").locate_file("")))
    assert Path(rclpy.__file__).resolve().is_relative_to(site.resolve())
