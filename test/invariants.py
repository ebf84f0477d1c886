"""The invariant checker for live node tests (not a test module): attach
``streaming_flow_ros.ros.bench.invariants.InvariantChecker`` to a running PolicyNode over DDS, spin it
in its own thread, and assert it saw no violation. Every reliability test that runs the node
uses it, mostly through ``live_node``::

    with live_node(ckpt, {"max_obs_age": 0.25}) as lv:   # Peer feeding, node running, checker on
        ...                                              # inject faults (lv.peer, lv.js_pub, ...)
    assert_clean(lv.inv)                                 # after the node stopped (final hold checked)

or ``checking(ctx, node)`` around a node started some other way. ``tally`` counts bad inputs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import rclpy
from rclpy.executors import SingleThreadedExecutor
from ros_harness import Peer, ros_context, wait_until
from sensor_msgs.msg import Image, JointState

from streaming_flow_ros.ros.bench.invariants import Contract, InvariantChecker, Violation
from streaming_flow_ros.ros.runner import run_node_in_thread, spin

# Node parameters of the live reliability tests: limits +-1 rad, 0.5 rad/s (5 mrad per tick at 100 Hz).
BASE = {"enabled": True, "max_velocity": [0.5], "controller_joints": ["j1", "j2", "j3"],
        "reanchor": "observation",  # these tests count re-anchors: one per fresh frame
        "position_lower": [-1.0] * 3,
        "position_upper": [1.0] * 3, "diagnostics_period": 0.2, "log_period": 0.0}

__all__ = ["BASE", "Contract", "InvariantChecker", "Live", "Violation", "assert_clean", "checking", "live_node",
           "tally"]


@contextlib.contextmanager
def checking(ctx: rclpy.Context, policy_node, *, settle_s: float = 0.3, **kwargs) -> Iterator[InvariantChecker]:
    """A checker on its own node + executor thread in ``ctx``, watching ``policy_node`` (a
    configured PolicyNode in this process: the contract is read from it). ``kwargs`` go to
    InvariantChecker (topics, max_obs_age, ...). Waits ``settle_s`` for discovery first.
    On exit waits briefly for in-flight messages, then stops spinning."""
    node = rclpy.create_node("sfp_invariants", context=ctx)
    kwargs.setdefault("enabled", bool(policy_node.params_in_effect.enabled))
    kwargs.setdefault("active", policy_node.lifecycle_state == "active")
    checker = InvariantChecker(node, Contract.from_node(policy_node),
                               policy_node=policy_node.get_fully_qualified_name(), **kwargs)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    stop = threading.Event()
    thread = threading.Thread(target=spin, args=(executor, ctx, stop), name="sfp-invariants", daemon=True)
    thread.start()
    time.sleep(settle_s)
    try:
        yield checker
    finally:
        time.sleep(0.2)
        stop.set()
        thread.join(5.0)
        executor.shutdown()
        checker.destroy()
        node.destroy_node()


def assert_clean(checker: InvariantChecker, min_action: int = 1, min_controller: int = 0) -> dict:
    """No violation, and at least this many messages of each stream were checked."""
    s = checker.summary()
    assert s["violations"] == 0, f"invariant violations: {s}"
    assert s["action_msgs"] >= min_action, s
    assert s["controller_msgs"] >= min_controller, s
    return s


# ---- a running node to inject faults into -----------------------------------------------------
class Live:
    """A running policy node fed by a Peer, plus an injector node publishing on its inputs."""

    def __init__(self, ctx, peer, runner):
        self.ctx, self.peer, self.runner, self.node = ctx, peer, runner, runner.node
        self.inject = rclpy.create_node("sfp_injector", context=ctx)
        self.img_pub = self.inject.create_publisher(Image, "image_raw", 10)
        self.js_pub = self.inject.create_publisher(JointState, "joint_states", 10)
        self.stopped = False
        self._stop = threading.Event()
        self._exec = SingleThreadedExecutor(context=ctx)
        self._exec.add_node(self.inject)
        self._thread = threading.Thread(target=spin, args=(self._exec, ctx, self._stop), daemon=True)
        self._thread.start()
        assert wait_until(lambda: self.img_pub.get_subscription_count() > 0
                          and self.js_pub.get_subscription_count() > 0, 5.0)
        self.peer.wait_for(self.peer.actions, 5)

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.runner.stop()

    def close(self):
        self.stop()
        self._stop.set()
        self._thread.join(5.0)
        self._exec.shutdown()
        self.inject.destroy_node()


@contextlib.contextmanager
def live_node(ckpt, params=None, peer_kw=None, loader=None, **checker_kw) -> Iterator[Live]:
    """Peer + running node + injector + invariant checker (stale rule on). On exit the node is
    stopped (deactivate: the single hold) before the checker's final check."""
    with ros_context() as ctx:
        peer = Peer(ctx, **(peer_kw or {}))
        live = None
        try:
            runner = run_node_in_thread(ctx, {"checkpoint": ckpt, **BASE, **(params or {})}, loader=loader)
            live = Live(ctx, peer, runner)
            checker_kw.setdefault("max_obs_age", live.node.params_in_effect.loop.max_obs_age)  # None: no stale rule
            checker_kw.setdefault("image_topics", ["image_raw"])
            with checking(ctx, live.node, **checker_kw) as inv:
                live.inv = inv
                yield live
                live.stop()
                inv.finish()  # waits until the last messages arrived
        finally:
            if live is not None:
                live.close()
            peer.close()


# ---- counting the bad inputs tried (docs/RELIABILITY.md) -------------------------------------
_TALLY: dict[str, int] = {}


def tally(category: str, n: int = 1, live: bool = False) -> None:
    """Count ``n`` bad inputs tried in ``category`` (``live``: sent over DDS to a running node,
    also counted in ``<category>_live``). With SFP_BAD_INPUT_LOG=path set, the totals of this
    pytest process are appended to that file (one JSON line) at exit; `python -m
    streaming_flow_ros.bench.reliability` sums them into docs/results/reliability.json."""
    if not _TALLY:
        import atexit

        atexit.register(_write_tally)
    for key in (category, f"{category}_live") if live else (category,):
        _TALLY[key] = _TALLY.get(key, 0) + n


def _write_tally() -> None:
    import json
    import os

    path = os.environ.get("SFP_BAD_INPUT_LOG")
    if path and _TALLY:
        with open(path, "a") as f:
            f.write(json.dumps(_TALLY, sort_keys=True) + "\n")
