"""policy/control.py: the node's per-tick decisions on a simulated clock, no DDS.

A scripted policy (each plan heads for a target at a fixed speed) makes every expectation exact;
one test drives a real (untrained) SFP checkpoint; property tests drive random input sequences
and check the safety contract on everything that reaches the controller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_flow_ros.policy.control import AGREE_S, ControlLoop, LoopConfig, TickInputs, reanchor_period
from streaming_flow_ros.policy.protocol import StepResult
from streaming_flow_ros.policy.safety import SafetyLimits
from streaming_flow_ros.spec import IOSpec

RATE = 100.0
SPEC = IOSpec(("a", "b"), ("a", "b"), (), 10.0)
LIMITS = SafetyLimits.from_velocity([-1.0, -1.0], [1.0, 1.0], [0.5, 0.5], RATE)  # 5 mrad per tick
STEP = 0.005


@dataclass
class Plan:
    plan: object  # a target (Scripted) or what a real policy's prepare returned
    stamp: float


class Slot:
    """A one-slot mailbox, like the node's PlanWorker."""

    def __init__(self) -> None:
        self.item: Plan | None = None
        self.taken = 0

    def put(self, target, stamp: float) -> None:
        self.item = Plan(target, stamp)

    def take(self) -> Plan | None:
        item, self.item = self.item, None
        self.taken += item is not None
        return item

    def discard(self) -> None:
        self.item = None


class Scripted:
    """A RuntimePolicy whose plan moves the action toward its target at ``speed`` per tick,
    for ``ticks`` ticks (flow time 0 -> 1), then holds."""

    spec, obs_horizon, action_horizon = SPEC, 2, 8

    def __init__(self, speed: float = 0.004, ticks: int = 200) -> None:
        self.speed, self.ticks = speed, ticks
        self.last: np.ndarray | None = None
        self.target: np.ndarray | None = None
        self.k = 0
        self.starts: list[tuple[np.ndarray, float | None]] = []
        self.nan_next = False

    def prepare(self, obs):
        return obs

    def reset(self, action) -> None:
        self.last, self.target = np.asarray(action, np.float64).copy(), None

    def start(self, plan, measured_state=None, anchor=None, now=None) -> None:
        self.last = np.asarray(anchor, np.float64).copy()
        self.target, self.k = np.asarray(plan, np.float64), 0
        self.starts.append((self.last.copy(), now))

    def step(self) -> StepResult:
        if self.nan_next:
            self.nan_next = False
            return StepResult(np.full(2, np.nan), 0.0, False)
        if self.target is None or self.k >= self.ticks:
            return StepResult(self.last.copy(), 1.0 if self.target is not None else 0.0, True)
        d = self.target - self.last
        n = np.linalg.norm(d)
        self.last = self.last + (d if n <= self.speed else d / n * self.speed)
        self.k += 1
        return StepResult(self.last.copy(), self.k / self.ticks, False)

    @property
    def last_action(self):
        return self.last

    @property
    def t(self) -> float:
        return self.k / self.ticks


def inputs(measured=(0.0, 0.0), age=0.0, stale=None, enabled=True) -> TickInputs:
    m = None if measured is None else np.asarray(measured, np.float64)
    return TickInputs(measured=m, measured_state=m, joints_age=None if m is None else age, stale_reason=stale,
                      enabled=enabled)


def make(**cfg) -> tuple[ControlLoop, Scripted, Slot]:
    """A loop re-anchoring at every fresh plan unless ``cfg`` says otherwise (the node's default
    is horizon: tests of the cadence itself set it)."""
    policy, slot = Scripted(), Slot()
    return ControlLoop(policy, LIMITS, LoopConfig(control_rate_hz=RATE, **{"reanchor": "observation", **cfg}), slot), policy, slot


def run(loop: ControlLoop, slot: Slot, n: int, t0: float, target=None, inp=None, every: int | None = None):
    """``n`` ticks from t0; a fresh plan to ``target`` offered every ``every`` ticks."""
    outs = []
    for k in range(n):
        now = t0 + k / RATE
        if target is not None and (every is None or k % every == 0):
            slot.put(target, now)
        outs.append(loop.tick(now, inp or inputs()))
    return outs


def test_nothing_before_a_fresh_joint_state_then_anchors_there():
    loop, _, _ = make()
    out = loop.tick(0.0, inputs(measured=None))
    assert out.command is None and out.stale and "joint" in out.hold
    out = loop.tick(0.01, inputs(measured=(0.1, 0.2), age=0.6))  # older than max_obs_age 0.5
    assert out.command is None and out.stale
    out = loop.tick(0.02, inputs(measured=(0.1, 0.2)))
    np.testing.assert_array_equal(out.command, [0.1, 0.2])  # no plan yet: holds where it anchored
    assert loop.anchored and out.to_controller and out.hold == "plan used up"


def test_plan_streams_within_the_step_limit_and_reports_its_start():
    loop, policy, slot = make()
    slot.put([0.5, 0.5], 0.0)
    outs = run(loop, slot, 50, 0.0)
    assert outs[0].started == 0.0 and outs[0].reanchored and sum(o.reanchored for o in outs) == 1
    cmds = np.array([o.command for o in outs])
    assert (np.abs(np.diff(cmds, axis=0)) <= STEP + 1e-12).all()
    assert cmds[-1][0] > 0.1 and not outs[-1].rate_limited  # speed 0.004 < step 0.005
    assert policy.starts[0][1] == 0.0  # start() gets now: the runtime compensates the plan's age


@pytest.mark.parametrize("mode, ticks, expect", [("observation", 10, 1), ("ticks", 7, 7), ("horizon", 10, 80)])
def test_reanchor_cadence(mode, ticks, expect):
    loop, policy, slot = make(reanchor=mode, reanchor_ticks=ticks)
    assert loop.period == expect == reanchor_period(loop.config, policy)
    run(loop, slot, 161, 0.0, target=[0.5, 0.5], every=1)
    assert len(policy.starts) == 160 // expect + 1


def test_stale_input_holds_drops_the_plan_and_recovers_with_the_next():
    loop, policy, slot = make()
    run(loop, slot, 20, 0.0, target=[0.5, 0.5], every=10)
    last = loop.safety.last
    slot.put([0.9, 0.9], 0.2)
    out = loop.tick(0.2, inputs(stale="camera: no frame for 0.6 s"))
    assert out.stale and out.hold.startswith("camera") and out.notices[0][0] == "warning"
    np.testing.assert_array_equal(out.command, last)
    np.testing.assert_array_equal(out.velocity, [0.0, 0.0])
    assert slot.item is None  # the plan was discarded
    out = loop.tick(0.21, inputs(stale="camera: no frame for 0.61 s"))
    assert out.notices == () and np.array_equal(out.command, last)
    n = len(policy.starts)
    slot.put([0.0, 0.9], 0.22)
    out = loop.tick(0.22, inputs())
    assert out.notices[0][0] == "info" and out.reanchored and len(policy.starts) == n + 1
    np.testing.assert_array_equal(policy.starts[-1][0], last)  # re-anchored at the held command


def test_silent_stale_publishes_nothing():
    loop, _, slot = make(on_stale="silent")
    run(loop, slot, 5, 0.0)
    out = loop.tick(0.05, inputs(stale="joints: none"))
    assert out.command is None and not out.to_controller


def test_old_plan_is_dropped():
    loop, policy, slot = make(max_obs_age=0.1)
    loop.tick(0.0, inputs())
    slot.put([0.5, 0.5], 0.0)
    out = loop.tick(0.2, inputs())
    assert out.plan_dropped and not out.reanchored and policy.starts == []


def test_disabled_previews_without_the_controller_and_disable_sends_one_hold():
    loop, _, slot = make()
    outs = run(loop, slot, 30, 0.0, target=[0.5, 0.5], every=10, inp=inputs(enabled=False))
    assert all(o.command is not None and not o.to_controller for o in outs)
    outs = run(loop, slot, 10, 0.3, target=[0.5, 0.5], every=10, inp=inputs(enabled=True))
    assert all(o.to_controller for o in outs)
    out = loop.tick(0.4, inputs(enabled=False))
    np.testing.assert_array_equal(out.controller_hold, outs[-1].command)
    assert not out.to_controller
    assert loop.tick(0.41, inputs(enabled=False)).controller_hold is None


def test_reenable_with_a_lagging_arm_continues_from_the_last_command():
    """Disable then enable 20 ms later while the arm follows 0.15 s behind: the first command
    after enable is within one step of the last one the controller got (it used to re-anchor at
    the measured state, up to 2.6 steps away)."""
    loop, _, slot = make()
    run(loop, slot, 100, 0.0, target=[0.9, 0.9], every=10)
    sent = loop.last_sent.copy()
    lag = 0.15 * 0.4  # 0.15 s behind at 0.4 rad/s
    out = loop.tick(1.0, inputs(measured=sent - lag, enabled=False))
    np.testing.assert_array_equal(out.controller_hold, sent)
    loop.tick(1.01, inputs(measured=sent - lag, enabled=False))
    slot.put([0.9, 0.9], 1.02)
    out = loop.tick(1.02, inputs(measured=sent - lag + 0.002, enabled=True))
    assert out.to_controller and np.abs(out.command - sent).max() <= STEP + 1e-12


def test_reenable_after_the_arm_was_moved_anchors_at_the_arm():
    """The documented exception: the arm is further than AGREE_S of travel from the last
    command (moved by hand or another controller), so the loop starts where the arm is."""
    loop, _, slot = make()
    run(loop, slot, 50, 0.0, target=[0.5, 0.5], every=10)
    loop.tick(0.5, inputs(enabled=False))
    far = loop.last_sent - (AGREE_S * 0.5 + 0.05)
    out = loop.tick(0.51, inputs(measured=far, enabled=True))
    np.testing.assert_allclose(out.command, far)


def test_reenable_after_a_pause_anchors_at_the_arm_even_when_it_is_near_the_last_command():
    """The controller had agree_s to reach the disable hold: an arm elsewhere after that was
    moved (a reset, by hand), so the loop starts where it is, even within agree_s of travel
    (continuing would keep, e.g., a gripper closed that now stands open)."""
    loop, _, slot = make()
    run(loop, slot, 50, 0.0, target=[0.5, 0.5], every=10)
    loop.tick(0.5, inputs(enabled=False))
    near = loop.last_sent - AGREE_S * 0.4 * 0.5  # half the agree travel away (0.4 rad/s)
    out = loop.tick(0.5 + AGREE_S + 0.02, inputs(measured=near, enabled=True))
    np.testing.assert_allclose(out.command, near)


def test_anchored_marks_each_start_from_the_measured_state():
    """``anchored`` is set on the tick the loop starts from the measured state (first anchor,
    enable after a pause), not on the ticks after it, nor when a quick re-enable continues the
    last command: outputs with memory (the binary gripper's band) start over only then."""
    loop, _, slot = make()
    assert not loop.tick(0.0, inputs(measured=None)).anchored  # nothing to anchor at yet
    outs = run(loop, slot, 30, 0.01, target=[0.5, 0.5], every=10)
    assert [o.anchored for o in outs] == [True] + [False] * 29
    sent = loop.last_sent.copy()
    loop.tick(0.4, inputs(measured=sent, enabled=False))
    assert not loop.tick(0.41, inputs(measured=sent, enabled=True)).anchored  # quick: continued
    loop.tick(0.42, inputs(measured=sent, enabled=False))
    out = loop.tick(0.42 + AGREE_S + 0.02, inputs(measured=sent, enabled=True))
    assert out.anchored and out.to_controller  # after a pause: from the arm


def test_walk_in_from_outside_the_limits_and_refusal_further_out():
    loop, _, slot = make()
    out = loop.tick(0.0, inputs(measured=(1.2, 0.0)))  # 0.2 rad out, margin 0.5 rad (1 s at 0.5)
    assert loop.anchored
    slot.put([0.0, 0.0], 0.0)
    prev = out.command
    for k in range(1, 60):
        out = loop.tick(k / RATE, inputs(measured=(1.2, 0.0)))
        assert np.abs(out.command - prev).max() <= STEP + 1e-12
        assert out.command[0] <= prev[0] and out.command[0] > 0.0  # toward the box, never further out
        prev = out.command
    assert prev[0] < 1.0  # inside after 0.2 rad / 5 mrad = 40 ticks
    loop2, _, _ = make()
    out = loop2.tick(0.0, inputs(measured=(1.6, 0.0)))
    assert out.command is None and "not anchoring" in out.hold and out.notices[0][0] == "error"


def test_non_finite_proposal_is_rejected_and_held():
    loop, policy, slot = make()
    run(loop, slot, 10, 0.0, target=[0.5, 0.5], every=10)
    last = loop.safety.last
    policy.nan_next = True
    out = loop.tick(0.1, inputs())
    assert out.rejected and np.array_equal(out.command, last)
    assert policy.target is None  # re-anchored without a plan: holds until the next one


def test_fail_safe_holds_the_last_command():
    loop, _, slot = make()
    run(loop, slot, 10, 0.0, target=[0.5, 0.5], every=10)
    last = loop.safety.last
    out = loop.fail_safe("tick: boom")
    assert np.array_equal(out.command, last) and out.to_controller and out.hold == "tick: boom"
    assert make()[0].fail_safe("x").command is None  # never anchored: nothing to hold


def test_stop_command_only_when_anchored_and_enabled():
    loop, _, slot = make()
    assert loop.stop_command() is None
    run(loop, slot, 5, 0.0)
    np.testing.assert_array_equal(loop.stop_command(), loop.safety.last)
    loop.tick(0.1, inputs(enabled=False))
    assert loop.stop_command() is None


def test_default_cadence_is_the_action_horizon():
    assert LoopConfig().reanchor == "horizon" and ControlLoop(Scripted(), LIMITS, LoopConfig(), Slot()).period == 80


def test_config_validation():
    for bad in ({"control_rate_hz": 0.0}, {"reanchor": "x"}, {"reanchor_ticks": 0}, {"max_obs_age": -1.0},
                {"on_stale": "panic"}, {"agree_s": -1.0}):
        with pytest.raises(ValueError):
            LoopConfig(**bad)
    with pytest.raises(ValueError, match="limits have"):
        ControlLoop(Scripted(), SafetyLimits.from_velocity([-1.0], [1.0], [1.0], RATE), LoopConfig(), Slot())


EVENTS = st.lists(st.tuples(
    st.sampled_from(["tick", "tick", "tick", "plan", "toggle", "stale", "lag", "nan", "jump"]),
    st.floats(-1.3, 1.3), st.floats(-1.3, 1.3)), min_size=20, max_size=150)


@settings(max_examples=100, deadline=None)
@given(EVENTS, st.sampled_from(["observation", "ticks", "horizon"]))
def test_property_safety_contract_on_every_controller_command(events, mode):
    """Whatever arrives: every command is finite; the controller's stream never moves a joint
    more than one step per tick (a quick disable/enable included, with the arm up to 0.1 s
    behind), and stays within the limits once inside them."""
    loop, policy, slot = make(reanchor=mode, reanchor_ticks=5)
    measured, enabled, stale, now = np.zeros(2), True, None, 0.0
    prev, prev_at = None, None  # the previous command that reached the controller, and when
    first_after_enable = False
    for kind, x, y in events:
        if kind == "plan":
            slot.put([x, y], now)
        elif kind == "toggle":
            enabled = not enabled
        elif kind == "stale":
            stale = None if stale else "camera: no frame"
        elif kind == "nan":
            policy.nan_next = True
        elif kind == "jump":  # a measured state anywhere (a sensor glitch or a hand push)
            measured = np.array([x, y])
        now += 1.0 / RATE
        if kind == "lag" and loop.last_sent is not None:
            measured = loop.last_sent - np.sign(loop.last_sent) * 0.05 * abs(x)  # <= 0.1 s behind at 0.5
        out = loop.tick(now, TickInputs(measured, measured, 0.0, stale, enabled))
        sent = [c for c in (out.controller_hold, out.command if out.to_controller else None) if c is not None]
        if kind == "toggle" and enabled:
            first_after_enable = True
        for c in sent:
            assert np.isfinite(c).all()
            moved = prev is not None and np.abs(measured - prev).max() > AGREE_S * 0.5
            paused = prev_at is not None and now - prev_at > AGREE_S + 1e-9  # the loop's tolerance
            if first_after_enable and (moved or paused) and out.controller_hold is None:
                # the documented exceptions: enabled where the arm is, far from the last command
                # or after a pause longer than agree_s (the controller had time to get there)
                assert np.abs(c - measured).max() <= STEP + 1e-9, (kind, measured, c)
            elif prev is not None:
                assert np.abs(c - prev).max() <= STEP + 1e-9, (kind, prev, c)
                if (np.abs(prev) <= 1.0).all():  # inside stays inside; outside only walks in
                    assert (np.abs(c) <= 1.0 + 1e-12).all()
                else:
                    assert (np.maximum(np.abs(c) - 1.0, 0) <= np.maximum(np.abs(prev) - 1.0, 0) + 1e-12).all()
            prev, prev_at = c, now
            first_after_enable = False
        if out.command is not None:
            assert np.isfinite(out.command).all()
        if not enabled:
            assert not out.to_controller


def test_real_sfp_checkpoint_through_the_loop(tmp_path):
    """A real (untrained) SFP runtime behind the loop: plans from real observations, commands
    finite and step-limited, one re-anchor per fresh plan with reanchor: observation."""
    from streaming_flow_ros.checkpoint import make_untrained_checkpoint
    from streaming_flow_ros.policy.protocol import Observation, RuntimeConfig
    from streaming_flow_ros.policy.streaming import load_policy

    path = make_untrained_checkpoint(tmp_path / "p.safetensors", IOSpec(("a", "b"), ("a", "b"), (), 10.0))
    policy = load_policy(str(path), RuntimeConfig(control_rate_hz=RATE))
    slot = Slot()
    loop = ControlLoop(policy, LIMITS, LoopConfig(control_rate_hz=RATE, reanchor="observation"), slot)
    prev = None
    for k in range(100):
        now = k / RATE
        if k % 10 == 0:
            obs = Observation(np.zeros((policy.obs_horizon, 2)), {}, now)
            slot.put(policy.prepare(obs), now)
        out = loop.tick(now, inputs())
        assert np.isfinite(out.command).all()
        if prev is not None:
            assert np.abs(out.command - prev).max() <= STEP + 1e-12
        prev = out.command
    assert slot.taken == 10
