"""A live invariant checker for the policy node's outputs: subscribes to what the node publishes
(over DDS, like any controller) and flags every message that breaks the command contract.
Used by the reliability tests (test/invariants.py) and by `sfp soak`.

The contract checked (ros/outputs.py's and ros/node.py's docstrings, docs/ROS.md "Command output contract"),
per stream — ``action`` (``<node>/action``, JointTrajectoryPoint, every tick, dry run too) and
``controller`` (``joint_trajectory`` JointTrajectory or ``commands`` Float64MultiArray):

- shape: JTC: ``header.stamp == 0``, exactly one point, ``joint_names`` == the controller
  joints (configured order), positions sized to them, velocities empty or sized,
  ``time_from_start`` == lookahead (> 0); forward: one value per controller joint; action
  point: one position per action joint, ``time_from_start`` == lookahead (> 0).
- finite: every position (and velocity) finite.
- limits: within [lower, upper] (tolerance ``abs_tol``) -- or, when the previous command (or
  the measured anchor) was already outside (a robot started beyond its soft limits), not
  further outside than it (safety.py: "walks in at the step rate").
- step: ``|x_k - x_(k-1)| <= max_step`` per joint (max_velocity / control_rate) up to
  ``step_rel_tol``. Allowed exception: re-anchoring at the measured state when the node is
  enabled or activated (the first controller command of a new enabled segment; one jump of
  the action stream within ``grace_s`` of the event), which must then be within
  ``max_step + anchor_tol`` of the latest measured joint state (if joint states are watched).
- enable gate: no controller command while disabled or not active, except within ``grace_s``
  of the disable / deactivate event (the tick in flight and the single hold); each enabled
  segment of two or more commands ends with a hold (last command == the one before it), unless
  it was re-enabled within ``grace_s`` (the node applies enable changes at its next tick, so a
  shorter off period may never reach it). No action point while not active (same grace).
- stale inputs (optional, ``max_obs_age`` set): when no joint state or watched image was
  published in the ``max_obs_age + stale_margin`` s before a command, that command is a hold
  (== the previous one, ``on_stale: hold``) or there is none (``on_stale: silent``). Each input
  topic is judged from its first message on (discovery is not staleness).

Time is publication time: every message is judged at its DDS source timestamp (the publisher's
system clock, s since the epoch; ``time.time()`` where the middleware gives none), never at the
moment this checker's executor got to it. An overloaded host can stall the checker while the
node keeps publishing; the backlog it drains afterwards must not read as stale inputs or as
commands long after a disable. For the same reason enable/lifecycle events are applied in
publication order: an event waits until a command published after it is checked (or
``finish``; it counts from ``EVENT_LEAD_S`` before its publication, as the node applies a change
just before announcing it), and the input and event subscriptions are made before the command
ones so an executor draining a backlog takes them first. Rules that fire when an event is
applied (a segment end on re-enable, a retracted re-anchor) therefore show in ``summary()`` only
after the next command or ``finish()``. Source timestamps are wall clock: the stale rule holds
under sim time only while sim time runs at about wall rate (the node ages inputs by their header
stamps on its own clock); input publishers, node and checker on different hosts need
synchronised clocks (NTP/PTP); a step of the wall clock during a run can cause false verdicts.
The re-anchor check compares with the newest joint state received, which during a drained
backlog may be newer than the command (a limitation: an arm moved by a reset during a stall can
read as a bad anchor).

Enable and lifecycle state come from the graph itself: ``/parameter_events`` (the node's
``enabled`` parameter) and ``<node>/transition_event``. Memory is constant (counters, the last
commands, at most ``keep`` stored violations), so it can watch a soak of any length.

Caveat: the node's command publishers are RELIABLE with depth 1; a reader that falls far
behind can miss a sample, which would show as a step of up to 2 x max_step here (reported,
never hidden). ``summary()["max_step_ratio"]`` shows how close the stream came to the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from lifecycle_msgs.msg import TransitionEvent
from rcl_interfaces.msg import ParameterEvent
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_parameter_events
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ...spec import IOSpec
from ..conversions import lookahead_time
from ..params import NodeParams, controller_joints, resolve_limits

if TYPE_CHECKING:  # Jazzy's rclpy has no rclpy.subscription.MessageInfo (callbacks get a dict there too)
    from rclpy.subscription import MessageInfo

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)  # seconds of backlog at 200 Hz
SENSOR = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
ACTIVE_LABELS = frozenset({"activating", "active"})
# An event counts from this long before its publication: the node applies a parameter change in
# its on-set callback, before rclpy publishes the event, so a tick can slip in between (s).
EVENT_LEAD_S = 0.02


@dataclass(frozen=True)
class Contract:
    """What the node promised at configure. Arrays (D_a,) in action order: lower/upper rad,
    max_step rad per tick; time_from_start s."""

    action_names: tuple[str, ...]
    controller_joints: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_step: np.ndarray
    time_from_start: float
    command_mode: str = "jtc"
    on_stale: str = "hold"
    gripper_joints: tuple[str, ...] = ()  # sent on the gripper topic, not the arm controller's
    gripper_binary: bool = False  # gripper values are exactly its lower or upper limit

    @classmethod
    def from_params(cls, params: NodeParams, spec: IOSpec) -> Contract:
        lim, out = resolve_limits(params, spec), params.output
        return cls(tuple(spec.action_names), controller_joints(params, spec), lim.lower, lim.upper,
                   lim.max_step, lookahead_time(out.lookahead_ticks, params.loop.control_rate_hz),
                   out.command_mode, params.loop.on_stale, tuple(out.gripper_joints),
                   out.gripper_mode == "binary")

    @classmethod
    def from_node(cls, node: Any) -> Contract:
        """From a configured PolicyNode (the parameters in effect since its configure)."""
        if node.policy is None:
            raise ValueError("the policy node is not configured: no contract to check yet")
        return cls.from_params(node.params_in_effect, node.policy.spec)


@dataclass(frozen=True)
class Violation:
    t: float  # the offending message's publication time (source timestamp), s since the epoch
    stream: str  # "action" | "controller"
    rule: str
    detail: str


@dataclass
class _Stream:
    name: str
    prev: np.ndarray | None = None
    prev2: np.ndarray | None = None  # the one before prev (hold detection at segment ends)
    count: int = 0
    holds: int = 0
    anchor_until: float | None = None  # action: one re-anchor jump is allowed until then
    segment_first: bool = True  # controller: the next command opens an enabled segment
    segment_len: int = 0  # controller: commands since the segment opened
    max_step_ratio: float = 0.0


@dataclass
class _Inputs:
    last_rx: dict[str, float] = field(default_factory=dict)  # topic -> newest publication time, s
    measured: np.ndarray | None = None  # (D_a,) latest joint positions, action order


class InvariantChecker:
    """Subscribes ``node`` (the checker's own rclpy node; the caller spins it) to the outputs of
    the policy node named ``policy_node`` (fully qualified, e.g. "/policy_node").

    Spin ``node`` on a SingleThreadedExecutor (or MultiThreadedExecutor): the callbacks take the
    message's MessageInfo (its source timestamp), which the EventsExecutor of these rclpy wheels
    cannot deliver (it raises SystemError and nothing is checked).

    Args:
        contract: see :class:`Contract` (``Contract.from_node(policy_node)`` in-process).
        joint_trajectory_topic / commands_topic: controller topics as the node publishes them
            after remapping (resolved against ``node``'s namespace).
        joint_states_topic: watched for the measured state (re-anchor check) and staleness;
            None to skip.
        image_topics: watched for staleness only.
        enabled / active: the node's state when the checker starts (later from the graph).
        max_obs_age: enables the stale-input rule (s); None = off.
    """

    def __init__(self, node: Node, contract: Contract, *, policy_node: str = "/policy_node",
                 joint_trajectory_topic: str = "joint_trajectory", commands_topic: str = "commands",
                 gripper_topic: str = "gripper_commands",
                 joint_states_topic: str | None = "joint_states", image_topics: Sequence[str] = (),
                 enabled: bool = False, active: bool = True, max_obs_age: float | None = None,
                 stale_margin: float = 0.25, grace_s: float = 0.5, anchor_tol: float = 0.05,
                 step_rel_tol: float = 1e-6, abs_tol: float = 1e-9, keep: int = 200) -> None:
        self.node, self.contract = node, contract
        self.policy_node = policy_node.rstrip("/")
        self.max_obs_age, self.stale_margin = max_obs_age, stale_margin
        self.grace_s, self.anchor_tol = grace_s, anchor_tol
        self.step_rel_tol, self.abs_tol, self.keep = step_rel_tol, abs_tol, keep
        self._lock = threading.Lock()
        self.violations: list[Violation] = []  # the first ``keep``
        self.violation_count = 0
        self.rule_counts: dict[str, int] = {}
        self.events: list[tuple[float, str]] = []  # (time, "enabled"/"disabled"/lifecycle label), last 100
        self.enabled, self.active = bool(enabled), bool(active)
        now = time.time()  # the clock of DDS source timestamps
        self._off_since: float | None = None if (self.enabled and self.active) else now
        self._inactive_since: float | None = None if self.active else now
        self._streams = {"action": _Stream("action"), "controller": _Stream("controller"),
                         "gripper": _Stream("gripper")}
        self._pending: list[tuple[float, int, str, bool, str]] = []  # (t, seq, field, value, label)
        self._event_seq = 0
        self._last_callback = time.monotonic()  # receipt clock: only for finish()'s quiet wait
        self._streams["action"].anchor_until = now + grace_s
        self._inputs = _Inputs()
        self._joint_values: dict[str, float] = {}  # newest position per joint name (split states merge)
        self._action_jump_at: float | None = None  # time of the last ~/action step violation
        self._ctrl_index = np.array([contract.action_names.index(n) for n in contract.controller_joints],
                                    np.intp)  # action[idx] = controller order
        self._inverse = np.argsort(self._ctrl_index)  # controller[inv] = action order (arm joints)
        grip = np.array([contract.action_names.index(n) for n in contract.gripper_joints], np.intp)
        # the action-order joints each stream carries (the arm controller lacks the gripper's)
        self._idx = {"action": np.arange(len(contract.action_names)), "controller": np.sort(self._ctrl_index),
                     "gripper": grip}
        # inputs and events first: a single-threaded executor takes ready subscriptions in this order
        subs = []
        if joint_states_topic:
            subs.append((JointState, joint_states_topic, self._on_joints, SENSOR))
        for topic in image_topics:
            subs.append((Image, topic, lambda m, info, t=topic: self._on_input(t, info), SENSOR))
        subs += [
            (ParameterEvent, "/parameter_events", self._on_param_event, qos_profile_parameter_events),
            (TransitionEvent, f"{self.policy_node}/transition_event", self._on_transition, RELIABLE),
            (JointTrajectoryPoint, f"{self.policy_node}/action", self._on_action, RELIABLE),
        ]
        if contract.command_mode == "jtc":
            subs.append((JointTrajectory, joint_trajectory_topic, self._on_jtc, RELIABLE))
        elif contract.command_mode == "forward":
            subs.append((Float64MultiArray, commands_topic, self._on_forward, RELIABLE))
        if contract.gripper_joints and contract.command_mode != "none":
            subs.append((Float64MultiArray, gripper_topic, self._on_gripper, RELIABLE))
        self._joints_topic = joint_states_topic
        self._subs = [node.create_subscription(t, n, cb, q) for t, n, cb, q in subs]

    # ---- results ----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "violations": self.violation_count,
                "rules": dict(self.rule_counts),
                "action_msgs": self._streams["action"].count,
                "controller_msgs": self._streams["controller"].count,
                "gripper_msgs": self._streams["gripper"].count,
                "holds": {k: s.holds for k, s in self._streams.items()},
                "max_step_ratio": {k: round(s.max_step_ratio, 6) for k, s in self._streams.items()},
                "first": [f"{v.stream}/{v.rule}: {v.detail}" for v in self.violations[:5]],
            }

    def counts(self) -> tuple[int, int]:
        """(action points, controller commands) checked so far."""
        with self._lock:
            return self._streams["action"].count, self._streams["controller"].count

    def finish(self, quiet_s: float = 0.3, timeout: float = 10.0) -> None:
        """End-of-run checks: a finished enabled segment must end with a hold. Call after the
        policy node was disabled or deactivated (e.g. after ``runner.stop()``). Waits first (up
        to ``timeout`` s) until no message has reached the checker for ``quiet_s`` s, so a
        checker still draining a backlog judges the final hold before the off event closes the
        segment; then applies every pending event."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                idle = time.monotonic() - self._last_callback
            if idle >= quiet_s:
                break
            time.sleep(min(0.05, quiet_s))
        with self._lock:
            self._apply_events(float("inf"))
            if not (self.enabled and self.active):
                self._check_segment_end(time.time())

    def destroy(self) -> None:
        for s in self._subs:
            self.node.destroy_subscription(s)
        self._subs = []

    # ---- graph events -----------------------------------------------------------------------
    def _on_param_event(self, msg: ParameterEvent, info: MessageInfo) -> None:
        if msg.node != self.policy_node:
            return
        for p in (*msg.new_parameters, *msg.changed_parameters):
            if p.name == "enabled":
                on = p.value.bool_value
                self._queue_event(_published(info) - EVENT_LEAD_S, "enabled", on, "enabled" if on else "disabled")

    def _on_transition(self, msg: TransitionEvent, info: MessageInfo) -> None:
        label = msg.goal_state.label
        self._queue_event(_published(info) - EVENT_LEAD_S, "active", label in ACTIVE_LABELS, label)

    def _queue_event(self, t: float, which: str, value: bool, label: str) -> None:
        """Hold an event until a command published after it is checked: the backlog of a stalled
        executor may still hold commands published before it."""
        with self._lock:
            self._last_callback = time.monotonic()
            self._event_seq += 1
            self._pending.append((t, self._event_seq, which, value, label))
            self._pending.sort()

    def _apply_events(self, upto: float) -> None:
        """Apply the pending events published at or before ``upto`` (s), oldest first."""
        while self._pending and self._pending[0][0] <= upto:
            t, _, which, value, label = self._pending.pop(0)
            enabled, active = (value, self.active) if which == "enabled" else (self.enabled, value)
            self._set_state(t, enabled, active, label)

    def _output_arrived(self, now: float) -> None:
        """A command published at ``now`` is about to be checked: the events before it apply."""
        self._last_callback = time.monotonic()
        self._apply_events(now)

    def _set_state(self, now: float, enabled: bool, active: bool, label: str) -> None:
        self.events = [*self.events[-99:], (now, label)]
        was_on, was_active = self.enabled and self.active, self.active
        self.enabled, self.active = enabled, active
        on = enabled and active
        if was_on and not on:
            self._off_since = now
        if (on and not was_on) or (active and not was_active):
            self._retract_action_jump(now)
        if active and not was_active:  # activation re-anchors both streams at the measured state
            self._inactive_since = None
            self._streams["action"].anchor_until = now + self.grace_s
        elif was_active and not active:
            self._inactive_since = now
        if on and not was_on:
            if self._off_since is None or now - self._off_since >= self.grace_s:
                self._check_segment_end(now)  # (a shorter off period may fall between two ticks)
            self._off_since = None
            for name in ("controller", "gripper"):
                self._streams[name].segment_len, self._streams[name].segment_first = 0, True
            self._streams["action"].anchor_until = now + self.grace_s

    def _check_segment_end(self, now: float) -> None:
        ctrl = self._streams["controller"]
        if ctrl.segment_len >= 2 and not np.array_equal(ctrl.prev, ctrl.prev2):
            self._violate(now, "controller", "no_hold_on_disable",
                          f"enabled segment of {ctrl.segment_len} commands ended without a hold")
        ctrl.segment_len = 0

    # ---- inputs -----------------------------------------------------------------------------
    def _on_input(self, topic: str, info: MessageInfo) -> None:
        t = _published(info)
        with self._lock:
            self._last_callback = time.monotonic()
            self._inputs.last_rx[topic] = max(t, self._inputs.last_rx.get(topic, t))

    def last_measured(self) -> np.ndarray | None:
        """The newest measured joint state received (contract action order), or None."""
        with self._lock:
            q = self._inputs.measured
            return None if q is None else q.copy()

    def _on_joints(self, msg: JointState, info: MessageInfo) -> None:
        """Merged by name like the node (arm and gripper may come in separate messages)."""
        names = list(msg.name)
        pos = np.asarray(msg.position, np.float64)
        if len(names) != pos.size or len(set(names)) != len(names) or len(names) > 1024:
            return
        wanted = set(self.contract.action_names)
        mine = {n: float(v) for n, v in zip(names, pos) if n in wanted and np.isfinite(v)}
        if not mine:
            return
        self._joint_values.update(mine)
        if len(self._joint_values) < len(wanted):
            return
        q = np.array([self._joint_values[n] for n in self.contract.action_names])
        self._on_input(self._joints_topic, info)
        with self._lock:
            self._inputs.measured = q

    def _inputs_stale(self, now: float) -> bool:
        """A topic is judged from its first message on: discovery (seconds, topic by topic) is not
        staleness."""
        if self.max_obs_age is None:
            return False
        limit = self.max_obs_age + self.stale_margin
        return any(now - t > limit for t in self._inputs.last_rx.values())

    # ---- outputs ----------------------------------------------------------------------------
    def _on_action(self, msg: JointTrajectoryPoint, info: MessageInfo) -> None:
        now = _published(info)
        c = self.contract
        n = len(c.action_names)
        with self._lock:
            self._output_arrived(now)
            problems = self._point_problems(msg, n)
            if problems:
                self._violate(now, "action", "shape", problems)
                return
            if not self.active and self._inactive_since is not None and now - self._inactive_since > self.grace_s:
                self._violate(now, "action", "action_while_inactive",
                              f"{now - self._inactive_since:.3f} s after deactivation")
            self._check_values(now, "action", np.asarray(msg.positions, np.float64))

    def _on_jtc(self, msg: JointTrajectory, info: MessageInfo) -> None:
        now = _published(info)
        c = self.contract
        with self._lock:
            self._output_arrived(now)
            problems = []
            if (msg.header.stamp.sec, msg.header.stamp.nanosec) != (0, 0):
                problems.append(f"header.stamp {msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d} != 0")
            if tuple(msg.joint_names) != c.controller_joints:
                problems.append(f"joint_names {list(msg.joint_names)} != {list(c.controller_joints)}")
            if len(msg.points) != 1:
                problems.append(f"{len(msg.points)} points, expected 1")
            else:
                p = self._point_problems(msg.points[0], len(c.controller_joints))
                if p:
                    problems.append(p)
            if problems:
                self._violate(now, "controller", "shape", "; ".join(problems))
                return
            values = np.asarray(msg.points[0].positions, np.float64)
            self._controller(now, values[self._inverse])

    def _on_forward(self, msg: Float64MultiArray, info: MessageInfo) -> None:
        now = _published(info)
        values = np.asarray(msg.data, np.float64)
        with self._lock:
            self._output_arrived(now)
            if values.size != len(self.contract.controller_joints):
                self._violate(now, "controller", "shape",
                              f"{values.size} values for {len(self.contract.controller_joints)} joints")
                return
            self._controller(now, values[self._inverse])

    def _point_problems(self, p: JointTrajectoryPoint, n: int) -> str:
        out = []
        if len(p.positions) != n:
            out.append(f"{len(p.positions)} positions for {n} joints")
        if len(p.velocities) not in (0, n):
            out.append(f"{len(p.velocities)} velocities for {n} joints")
        elif len(p.velocities) and not np.isfinite(np.asarray(p.velocities, np.float64)).all():
            out.append("non-finite velocities")
        if len(p.accelerations) or len(p.effort):
            out.append("accelerations/effort set")
        tfs = p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec
        if not (tfs > 0.0 and abs(tfs - self.contract.time_from_start) < 1e-6):
            out.append(f"time_from_start {tfs} s, expected {self.contract.time_from_start} s (> 0)")
        return "; ".join(out)

    def _on_gripper(self, msg: Float64MultiArray, info: MessageInfo) -> None:
        now = _published(info)
        values = np.asarray(msg.data, np.float64)
        c, idx = self.contract, self._idx["gripper"]
        with self._lock:
            self._output_arrived(now)
            if values.size != idx.size:
                self._violate(now, "gripper", "shape", f"{values.size} values for {list(c.gripper_joints)}")
                return
            if c.gripper_binary:  # thresholded by design: exactly open or closed, no step rule
                lo, hi = c.lower[idx], c.upper[idx]
                self._streams["gripper"].count += 1
                if not ((values == lo) | (values == hi)).all():
                    self._violate(now, "gripper", "binary", f"{values.tolist()} not in {lo.tolist()} / {hi.tolist()}")
                return
            self._controller(now, values, "gripper")

    def _controller(self, now: float, x: np.ndarray, stream: str = "controller") -> None:
        if not (self.enabled and self.active):
            since = self._off_since
            if since is None or now - since > self.grace_s:
                state = f"enabled={self.enabled} active={self.active}"
                self._violate(now, stream, "command_while_disabled",
                              f"{state}, {now - (since or now):.3f} s after the off event")
        self._check_values(now, stream, x)
        self._streams[stream].segment_len += 1

    def _check_values(self, now: float, stream: str, x: np.ndarray) -> None:
        c, s, idx = self.contract, self._streams[stream], self._idx[stream]
        lower, upper, max_step = c.lower[idx], c.upper[idx], c.max_step[idx]
        s.count += 1
        if not np.isfinite(x).all():
            self._violate(now, stream, "finite", f"non-finite command {x.tolist()}")
            return
        measured = None if self._inputs.measured is None else self._inputs.measured[idx]
        if stream != "action":
            allow_anchor, s.segment_first = s.segment_first, False
        else:
            allow_anchor = s.anchor_until is not None and now <= s.anchor_until
        anchored = s.prev is None  # a first command or an allowed re-anchor jump: judged by measured
        if s.prev is not None:
            ratio = float(np.max(np.abs(x - s.prev) / max_step))
            too_far = (np.abs(x - s.prev) > max_step * (1 + self.step_rel_tol) + self.abs_tol).any()
            if too_far and allow_anchor:
                s.anchor_until, anchored = None, True
                if measured is not None and (np.abs(x - measured) > max_step + self.anchor_tol).any():
                    self._violate(now, stream, "anchor", f"re-anchor at {x.tolist()}, measured {measured.tolist()}")
            elif too_far:
                self._violate(now, stream, "step",
                              f"|{x.tolist()} - {s.prev.tolist()}| > max_step {max_step.tolist()} ({ratio:.3f}x)")
                if stream == "action":  # may be the re-anchor of an enable whose event is still in flight
                    self._action_jump_at = now
            else:
                s.max_step_ratio = max(s.max_step_ratio, ratio)
            if np.array_equal(x, s.prev):
                s.holds += 1
            elif self._inputs_stale(now) and c.on_stale == "hold":
                self._violate(now, stream, "hold_while_stale", f"moved to {x.tolist()} with stale inputs")
        ref = measured if anchored else s.prev
        out = _outside(x, lower, upper)
        bad = out > self.abs_tol
        if bad.any():  # outside: only a robot that started outside, walking in
            ref_out = _outside(ref, lower, upper) if ref is not None else np.zeros_like(out)
            if (out[bad] > ref_out[bad] + self.abs_tol).any():
                self._violate(now, stream, "limits", f"{x.tolist()} outside [{lower.tolist()}, {upper.tolist()}]")
        if self._inputs_stale(now) and c.on_stale == "silent":
            self._violate(now, stream, "command_while_stale", "on_stale=silent but a command arrived")
        s.prev2, s.prev = s.prev, x

    def _retract_action_jump(self, now: float) -> None:
        """The enable/activate event travels on another topic than the commands: the node's
        re-anchor jump on ~/action, published after it, can reach the checker before it. One
        action-stream step violation published within ``grace_s`` after the event (``now``, its
        lead-adjusted publication time) is that allowed jump: retract it. A jump published
        before the event stays a violation."""
        t = self._action_jump_at
        if t is None or not now <= t <= now + self.grace_s:
            return
        self._action_jump_at = None
        self.violation_count -= 1
        self.rule_counts["step"] -= 1
        if not self.rule_counts["step"]:
            del self.rule_counts["step"]
        for i in range(len(self.violations) - 1, -1, -1):
            v = self.violations[i]
            if v.stream == "action" and v.rule == "step" and v.t == t:
                del self.violations[i]
                break

    def _violate(self, now: float, stream: str, rule: str, detail: str) -> None:
        self.violation_count += 1
        self.rule_counts[rule] = self.rule_counts.get(rule, 0) + 1
        if len(self.violations) < self.keep:
            self.violations.append(Violation(now, stream, rule, detail))


def _published(info: MessageInfo) -> float:
    """A message's publication time (the DDS source timestamp), s since the epoch; now when the
    middleware does not provide one."""
    t = info.get("source_timestamp", 0) if info else 0
    return t * 1e-9 if t > 0 else time.time()


def _outside(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per-joint distance outside [lower, upper] (0 inside), rad."""
    return np.maximum(lower - x, 0.0) + np.maximum(x - upper, 0.0)


class CheckerProcess:
    """An :class:`InvariantChecker` in a child process (spawned: its own interpreter, rclpy
    context and SingleThreadedExecutor), for long runs where the checker must take neither the
    GIL nor executor time from the node it measures (``sfp soak``). The results API is the
    checker's: ``counts()``, ``summary()``, ``finish()``; ``close()`` stops the process (also a
    context manager). ``kwargs`` go to InvariantChecker; ``domain_id`` None = ROS_DOMAIN_ID."""

    def __init__(self, contract: Contract, *, domain_id: int | None = None, namespace: str = "",
                 node_name: str = "sfp_invariants", start_timeout: float = 60.0, **kwargs: Any) -> None:
        import multiprocessing

        mp = multiprocessing.get_context("spawn")  # never fork a process that has rclpy threads
        self._conn, child = mp.Pipe()
        self._proc = mp.Process(target=_serve_checker, name="sfp-invariants", daemon=True,
                                args=(child, contract, domain_id, namespace, node_name, kwargs))
        self._proc.start()
        child.close()
        self._broken: str | None = None
        try:
            ready = self._conn.recv() if self._conn.poll(start_timeout) else f"no answer within {start_timeout:g} s"
        except (EOFError, OSError):
            self._proc.join(5.0)
            ready = f"it exited (code {self._proc.exitcode})"
        if ready != "ready":
            self.close()
            raise RuntimeError(f"the invariant checker process did not start: {ready}")

    def _call(self, what: str, timeout: float = 30.0) -> Any:
        """One request, one reply. After a timeout or a dead child the object refuses further
        calls (a late reply would otherwise answer the next request)."""
        if self._broken:
            raise RuntimeError(f"the invariant checker process is unusable: {self._broken}")
        try:
            self._conn.send(what)
            if not self._conn.poll(timeout):
                self._broken = f"no answer to {what!r} within {timeout:g} s"
            else:
                ok, value, spinning = self._conn.recv()
                if not spinning:
                    self._broken = "its executor thread died: the stream is no longer checked"
                elif not ok:
                    raise RuntimeError(f"invariant checker process, {what}: {value}")
                else:
                    return value
        except (EOFError, OSError):
            self._broken = f"it exited (code {self._proc.exitcode})"
        raise RuntimeError(f"the invariant checker process is unusable: {self._broken}")

    def counts(self) -> tuple[int, int]:
        return tuple(self._call("counts"))

    def summary(self) -> dict[str, Any]:
        return self._call("summary")

    def finish(self) -> None:
        self._call("finish")

    def close(self) -> None:
        """Stop the child (idempotent)."""
        if self._proc.is_alive():
            try:
                self._conn.send("close")
            except OSError:
                pass
            self._proc.join(10.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)
        self._conn.close()
        self._broken = self._broken or "closed"

    def __enter__(self) -> CheckerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve_checker(conn: Any, contract: Contract, domain_id: int | None, namespace: str, node_name: str,
                   kwargs: dict[str, Any]) -> None:
    """CheckerProcess's child: spin a checker, answer the parent's calls until "close" or EOF.
    Each reply is (ok, value, executor thread alive)."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    parent = os.getppid()
    stop = threading.Event()
    ctx = node = checker = executor = thread = None
    try:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from ..runner import spin

        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=domain_id) if domain_id is not None else rclpy.init(context=ctx)
        node = rclpy.create_node(node_name, namespace=namespace, context=ctx)
        checker = InvariantChecker(node, contract, **kwargs)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        thread = threading.Thread(target=spin, args=(executor, ctx, stop), name="sfp-invariants", daemon=True)
        thread.start()
        conn.send("ready")
        calls = {"counts": checker.counts, "summary": checker.summary, "finish": checker.finish}
        while True:
            if not conn.poll(1.0):
                if os.getppid() != parent:  # the parent died: nobody will ask
                    break
                continue
            what = conn.recv()
            if what == "close":
                break
            try:
                conn.send((True, calls[what](), thread.is_alive()))
            except Exception as e:  # noqa: BLE001 -- report to the parent, keep serving
                conn.send((False, f"{type(e).__name__}: {e}", thread.is_alive()))
    except EOFError:
        pass
    except Exception as e:  # noqa: BLE001 -- the parent raises it as "did not start: ..."
        try:
            conn.send(f"{type(e).__name__}: {e}")
        except OSError:
            pass
    finally:
        stop.set()
        if thread is not None:
            thread.join(5.0)
        if executor is not None:
            executor.shutdown()
        if checker is not None:
            checker.destroy()
        if node is not None:
            node.destroy_node()
        if ctx is not None:
            rclpy.try_shutdown(context=ctx)
