"""Running the policy node in-process (demo, evaluation, benchmarks, tests) and choosing an
executor. ``node.main`` is the process entry point; this is the library entry point::

    ctx = rclpy.Context(); rclpy.init(context=ctx)
    with run_node_in_thread(ctx, parameters={"checkpoint": path, "enabled": True}) as runner:
        ...                      # runner.node is the PolicyNode, active and ticking
    rclpy.shutdown(context=ctx)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.logging import get_logger
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args

from .node import PolicyLoader, PolicyNode


def make_executor(kind: str, context: rclpy.Context) -> Executor:
    """``events`` (rclpy.experimental.EventsExecutor, one thread; the default: see the node
    benchmark) or ``multi`` (MultiThreadedExecutor, 3 threads).

    ``events`` falls back to ``multi``, with a warning, where this rclpy has no
    EventsExecutor (Humble; older Jazzy patch releases have no ``rclpy.experimental``)."""
    if kind == "events":
        executor = _events_executor(context)
        if executor is not None:
            return executor
        kind = "multi"
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=3, context=context)
    raise ValueError(f"executor must be events|multi, got {kind!r}")


def _events_executor(context: rclpy.Context) -> Executor | None:
    """rclpy.experimental.EventsExecutor, or None (logged) where this rclpy lacks it."""
    try:
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context)
    except (ImportError, AttributeError) as e:  # no module / no native _rclpy.EventsExecutor
        get_logger("streaming_flow_ros.runner").warning(
            f"rclpy.experimental.EventsExecutor is not available in this rclpy ({e}); "
            "using MultiThreadedExecutor (3 threads) instead")
        return None


GIL_SWITCH_INTERVAL = 0.0005  # s; CPython's default 5 ms lets the worker delay a tick by 5 ms


def tune_process() -> None:
    """Process-wide settings for a steady control loop: a short GIL switch interval, so the
    timer thread gets the GIL within ~0.5 ms while the plan worker runs Python code."""
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)


def spin(executor: Executor, context: rclpy.Context, stop: threading.Event | None = None) -> None:
    """Spin until ``stop`` is set or the context shuts down. Loops over ``spin_once`` with a
    timeout: in these rclpy wheels ``EventsExecutor.spin()`` keeps the GIL and starves every
    other Python thread (the plan worker, in-process peers), while ``spin_once`` releases it."""
    while context.ok() and not (stop is not None and stop.is_set()):
        executor.spin_once(timeout_sec=0.1)


def autostart(node: PolicyNode) -> bool:
    """configure + activate; False (reason logged, node left unconfigured/inactive) on failure."""
    ok = TransitionCallbackReturn.SUCCESS
    return node.trigger_configure() == ok and node.trigger_activate() == ok


def set_enabled(node: PolicyNode, on: bool) -> None:
    """Set the node's ``enabled`` parameter (as ``~/enable`` would); RuntimeError if refused."""
    res = node.set_parameters([Parameter("enabled", value=on)])
    if not res[0].successful:
        raise RuntimeError(f"could not set enabled={on}: {res[0].reason}")


class NodeRunner:
    """A PolicyNode spinning on its own executor in a daemon thread. ``stop()`` deactivates
    (holding the last command), destroys the node and joins the thread; also a context manager."""

    def __init__(self, node: PolicyNode, executor: Executor) -> None:
        self.node = node
        self.executor = executor
        executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="sfp-policy-node", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            spin(self.executor, self.node.context, self._stop)
        except ExternalShutdownException:
            pass

    def stop(self) -> None:
        if self.node.lifecycle_state == "active":
            self.node.trigger_deactivate()
        self._stop.set()
        self._thread.join(5.0)
        self.executor.shutdown()
        self.node.destroy_node()

    def __enter__(self) -> NodeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_policy_node(
    context: rclpy.Context,
    parameters: Mapping[str, Any] | None = None,
    *,
    node_name: str = "policy_node",
    namespace: str | None = None,
    cli_args: Sequence[str] | None = None,
    loader: PolicyLoader | None = None,
    telemetry_window: int | None = 4096,
) -> PolicyNode:
    """A PolicyNode (unconfigured) in ``context``. ``parameters`` override the declared values
    (e.g. {"checkpoint": path, "control_rate_hz": 500.0}); ``cli_args`` are node-local ROS
    arguments, e.g. ["--ros-args", "-r", "joint_states:=/arm/joint_states"].
    Raises ValueError on invalid parameters."""
    overrides = [Parameter(k, value=v) for k, v in (parameters or {}).items()]
    return PolicyNode(node_name, context=context, namespace=namespace or "",
                      cli_args=list(cli_args) if cli_args else None,
                      parameter_overrides=overrides, loader=loader,
                      telemetry_window=telemetry_window)


def run_node_in_thread(
    context: rclpy.Context,
    parameters: Mapping[str, Any] | None = None,
    *,
    executor: str = "events",
    autostart_node: bool = True,
    **kwargs: Any,
) -> NodeRunner:
    """``create_policy_node`` + configure/activate (``autostart_node``) + spin in a thread.
    Calls ``tune_process()`` (sets the interpreter's GIL switch interval to 0.5 ms).
    Raises ValueError (with the node's reason) if configure/activate fails."""
    tune_process()
    node = create_policy_node(context, parameters, **kwargs)
    if autostart_node and not autostart(node):
        reason = node.status_reason
        node.destroy_node()
        raise ValueError(f"policy node failed to start: {reason}")
    return NodeRunner(node, make_executor(executor, context))


def run_main(argv: list[str] | None = None) -> int:
    """The ``policy_node`` process: parse ROS args, build the node (exit 2 on invalid
    parameters), autostart if the ``autostart`` parameter says so (exit 1 if that fails), spin
    until SIGINT/shutdown (exit 0)."""
    argv = list(sys.argv if argv is None else argv)
    tune_process()
    context = rclpy.Context()
    # Our own SIGINT/SIGTERM handling: a KeyboardInterrupt raised inside the native executor
    # surfaces as a pybind11 RuntimeError (a crash instead of a hold). The handler only sets an
    # event; the spin loop (0.1 s slices) sees it and shuts down in order.
    rclpy.init(args=argv, context=context, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    parser = argparse.ArgumentParser(prog=argv[0] if argv else "policy_node")
    parser.add_argument("--executor", choices=("events", "multi"), default="events")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    try:
        node = PolicyNode(context=context)
    except ValueError as e:
        print(f"policy_node: {e}", file=sys.stderr)
        rclpy.try_shutdown(context=context)
        return 2
    executor = make_executor(args.executor, context)
    executor.add_node(node)
    code = 0
    try:
        if node.params.autostart and not autostart(node):
            code = 1
        else:
            spin(executor, context, stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.lifecycle_state == "active":
            node.trigger_deactivate()  # sends the hold of the last command when enabled
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)
    return code
