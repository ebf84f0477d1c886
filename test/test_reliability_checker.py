"""The invariant checker catches what it claims to: a fake "policy_node" publishes hand-made
good and bad commands over DDS and each rule must fire exactly where expected (a checker that
never fires would make every reliability test vacuous)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from invariants import Contract, InvariantChecker
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import JOINTS, ros_context, wait_until
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from streaming_flow_ros.ros import conversions as cv
from streaming_flow_ros.ros.runner import spin

STEP = 0.01
TFS = 0.02
CONTRACT = Contract(JOINTS, ("j3", "j1", "j2"), np.full(3, -1.0), np.full(3, 1.0), np.full(3, STEP), TFS)
REL = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class Fake:
    """A node named policy_node publishing ~/action + joint_trajectory, with an ``enabled``
    parameter (its /parameter_events drive the checker like the real node's)."""

    def __init__(self, ctx) -> None:
        self.node = rclpy.create_node("policy_node", context=ctx)
        self.node.declare_parameter("enabled", True)
        self.action = self.node.create_publisher(JointTrajectoryPoint, "~/action", REL)
        self.jtc = self.node.create_publisher(JointTrajectory, "joint_trajectory", REL)
        self.js = self.node.create_publisher(JointState, "joint_states", 10)

    def send(self, x, jtc: bool = True, tfs: float = TFS, stamp: int = 0, names=None) -> None:
        x = np.asarray(x, np.float64)
        point = JointTrajectoryPoint(positions=x.tolist())
        point.time_from_start = cv.duration_msg(tfs)
        self.action.publish(point)
        if jtc:
            names = names or list(CONTRACT.controller_joints)
            idx = [JOINTS.index(n) for n in names]
            msg = JointTrajectory(joint_names=names, points=[JointTrajectoryPoint(positions=x[idx].tolist())])
            msg.points[0].time_from_start = cv.duration_msg(tfs)
            msg.header.stamp.sec = stamp
            self.jtc.publish(msg)
        time.sleep(0.005)

    def measured(self, q) -> None:
        self.js.publish(JointState(name=list(JOINTS), position=list(map(float, q))))
        time.sleep(0.05)

    def enable(self, on: bool) -> None:
        self.node.set_parameters([Parameter("enabled", value=on)])
        time.sleep(0.1)


@pytest.fixture
def rig():
    with ros_context() as ctx:
        fake = Fake(ctx)
        node = rclpy.create_node("checker", context=ctx)
        checker = InvariantChecker(node, CONTRACT, enabled=True, active=True, grace_s=0.2)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        stop = threading.Event()
        th = threading.Thread(target=spin, args=(ex, ctx, stop), daemon=True)
        th.start()
        pubs = (fake.jtc, fake.action, fake.js, fake.node._parameter_event_publisher)
        assert wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), 5.0)
        time.sleep(0.3)  # > grace_s: the checker's start-up allowance for a first jump is over
        try:
            yield fake, checker
        finally:
            stop.set()
            th.join(5.0)
            ex.shutdown()
            node.destroy_node()
            fake.node.destroy_node()


def rules(checker, timeout: float = 3.0) -> dict:
    """The checker's rule counts once they have settled (unchanged over 0.2 s): a message
    delayed by a loaded machine is counted before the test reads them."""
    end, last = time.monotonic() + timeout, None
    while True:
        time.sleep(0.2)
        cur = checker.summary()["rules"]
        if cur == last or time.monotonic() > end:
            return cur
        last = cur


def test_clean_stream_with_hold_on_disable_passes(rig):
    fake, checker = rig
    x = np.zeros(3)
    for _ in range(20):
        x = x + 0.9 * STEP
        fake.send(x)
    fake.send(x)  # the hold the node sends on disable
    fake.enable(False)
    time.sleep(0.3)
    for _ in range(5):
        fake.send(x, jtc=False)  # dry run continues on ~/action only
    fake.measured(x + 0.2)  # the robot was moved while disabled
    fake.enable(True)
    fake.send(x + 0.2 + 0.5 * STEP)  # re-anchored at the measured state: allowed jump
    fake.send(x + 0.2 + STEP)
    checker.finish()
    assert rules(checker) == {}
    assert checker.counts() == (28, 23)


def test_each_rule_fires(rig):
    fake, checker = rig
    x = np.zeros(3)
    fake.send(x)
    fake.send(x + 2.5 * STEP)  # step (both streams)
    fake.send(x + 2.5 * STEP, stamp=5)  # JTC stamp != 0
    fake.send(x + 2.5 * STEP, tfs=0.0)  # time_from_start 0
    fake.send(x + 2.5 * STEP, names=["j1", "j2", "j3"])  # wrong joint order
    fake.send([np.nan, 0.0, 0.0])  # non-finite
    got = rules(checker)
    assert got.get("step") == 2 and got.get("shape", 0) >= 4 and got.get("finite") == 2, got


def test_limits_and_walk_in(rig):
    fake, checker = rig

    def seen() -> bool:  # the checker must know the robot is out before the first command
        q = checker.last_measured()
        return q is not None and q[0] == 1.5

    for _ in range(40):  # joint_states is best effort for the checker: publish until received
        fake.measured([1.5, 0.0, 0.0])  # a robot outside its limits
        if seen():
            break
    assert seen()
    fake.send([1.5 - STEP, 0.0, 0.0])  # first command: walks in -> allowed
    fake.send([1.5 - 2 * STEP, 0.0, 0.0])
    assert rules(checker) == {}
    fake.send([1.5 - STEP, 0.0, 0.0])  # walks out again -> limits
    assert rules(checker).get("limits") == 2


def test_commands_while_disabled_and_missing_hold(rig):
    fake, checker = rig
    x = np.zeros(3)
    for _ in range(5):
        x = x + STEP
        fake.send(x)
    fake.enable(False)  # no hold was sent: the segment ends moving
    time.sleep(0.4)  # beyond the grace period
    fake.send(x)  # controller command while disabled
    got = rules(checker)
    assert got.get("command_while_disabled") == 1 and got.get("no_hold_on_disable") is None
    fake.enable(True)  # closing the segment checks its end (applied at the next command) ...
    fake.send(x, jtc=False)
    got = rules(checker)
    assert got.get("no_hold_on_disable") is None  # ... the disabled command was a hold of x


def test_segment_without_hold_is_flagged(rig):
    fake, checker = rig
    x = np.zeros(3)
    for _ in range(5):
        x = x + STEP
        fake.send(x)
    fake.enable(False)
    checker.finish()
    assert rules(checker).get("no_hold_on_disable") == 1


def test_bad_anchor_and_stale_hold(rig):
    fake, checker = rig
    fake.send(np.zeros(3))
    fake.send(np.zeros(3))
    fake.enable(False)
    fake.measured([0.5, 0.5, 0.5])
    fake.enable(True)
    fake.send([-0.5, 0.0, 0.0])  # jump, but not to the measured state
    assert rules(checker).get("anchor") == 2  # both streams
    checker.max_obs_age, checker.stale_margin = 0.05, 0.05  # inputs now count as stale
    time.sleep(0.2)
    fake.send([-0.5, 0.0, 0.0])  # a hold: fine
    fake.send([-0.5 + STEP, 0.0, 0.0])  # moving while stale
    assert rules(checker).get("hold_while_stale") == 2


def test_enable_event_arriving_after_the_reanchor_jump_is_not_a_violation():
    """The node re-anchors ~/action on enable, after the parameter event; the event may still
    reach the checker after that jump (another topic). One jump published within grace_s after
    the event is retracted; one published before it, or later, stays."""
    import streaming_flow_ros.ros.bench.invariants as inv_mod

    chk = inv_mod.InvariantChecker.__new__(inv_mod.InvariantChecker)
    chk.violation_count, chk.rule_counts, chk.violations, chk.keep, chk.grace_s = 0, {}, [], 10, 0.5
    chk._violate(1.2, "action", "step", "jump")
    chk._action_jump_at = 1.2
    chk._retract_action_jump(1.0)  # the event, published 0.2 s before the jump
    assert chk.violation_count == 0 and chk.rule_counts == {} and chk.violations == []
    for jump, event in ((0.8, 1.0), (2.0, 1.0)):  # before the event; after its grace period
        chk._violate(jump, "action", "step", "jump")
        chk._action_jump_at = jump
        chk._retract_action_jump(event)
    assert chk.violation_count == 2


def test_a_stalled_checker_judges_by_publication_time(rig):
    """An overloaded host can stall the checker's executor while the node keeps publishing; the
    backlog it then drains must be judged by when each message was published (DDS source
    timestamps), not when the checker got to it: fresh inputs stay fresh, commands sent before a
    disable stay inside its grace period."""
    fake, checker = rig
    checker.max_obs_age, checker.stale_margin = 0.1, 0.1  # stale after 0.2 s without a joint state
    stall = threading.Event()
    timers = []

    def block() -> None:  # runs on the checker's (single-threaded) executor
        if stall.is_set() or not timers:
            return
        timers[0].cancel()
        stall.set()
        time.sleep(1.0)

    check = checker._check_values

    def slow_check(*args) -> None:  # and an overloaded one drains slowly: 40 ticks take > grace_s
        time.sleep(0.005)
        check(*args)

    x = np.zeros(3)
    fake.send(x)
    fake.measured(x)
    checker._check_values = slow_check
    timers.append(checker.node.create_timer(0.01, block))
    assert stall.wait(2.0)
    for _ in range(40):  # ~0.6 s of a moving stream with fresh joint states, all queued
        x = x + 0.9 * STEP
        fake.send(x)
        fake.js.publish(JointState(name=list(JOINTS), position=x.tolist()))
        time.sleep(0.01)
    fake.send(x)  # the hold sent on disable
    fake.enable(False)  # its event queues behind the stream ...
    fake.send(x, jtc=False)  # ... like the dry-run action points after it
    assert wait_until(lambda: checker.counts() == (43, 42), 10.0), checker.counts()  # the stall ends; it drains
    checker.node.destroy_timer(timers[0])
    checker.finish()
    assert rules(checker) == {}


def test_checker_process_checks_over_dds_and_reports_a_bad_start():
    """`sfp soak`'s checker runs in its own process: it must see the stream over DDS, answer
    for its counts and rules, and fail loudly (not check nothing) when it cannot start."""
    from streaming_flow_ros.ros.bench.invariants import CheckerProcess

    with ros_context() as ctx:
        with pytest.raises(RuntimeError, match="did not start: TypeError"):
            CheckerProcess(CONTRACT, domain_id=ctx.get_domain_id(), no_such_option=1)
        fake = Fake(ctx)
        try:
            with CheckerProcess(CONTRACT, domain_id=ctx.get_domain_id(), enabled=True, active=True,
                                grace_s=0.2) as proc:
                assert wait_until(lambda: fake.jtc.get_subscription_count() > 0
                                  and fake.action.get_subscription_count() > 0, 10.0)
                time.sleep(0.3)  # > grace_s
                x = np.zeros(3)
                fake.send(x)
                fake.send(x + 0.5 * STEP)
                fake.send(x + 3 * STEP)  # a step on both streams
                assert wait_until(lambda: proc.counts() == (3, 3), 5.0), proc.counts()
                proc.finish()
                assert rules(proc) == {"step": 2}
        finally:
            fake.node.destroy_node()
