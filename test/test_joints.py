"""policy/joints.py: split joint states merged by name, bounded per-message work."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming_flow_ros.policy.joints import (
    MAX_JOINT_NAMES,
    JointStateError,
    JointStateMerger,
    index_names,
)

ARM = ("j1", "j2", "j3")
GRIP = ("finger",)


def test_full_message_in_any_order():
    m = JointStateMerger(ARM, 0.5)
    out = m.update(["j3", "x", "j1", "j2"], [3.0, 9.0, 1.0, 2.0], 1.0)
    np.testing.assert_array_equal(out.positions, [1.0, 2.0, 3.0])
    assert out.stamp == 1.0


def test_arm_and_gripper_in_separate_messages():
    m = JointStateMerger(ARM + GRIP, 0.1)
    assert m.update(list(ARM), [1.0, 2.0, 3.0], 1.0) is None  # no gripper value yet
    assert m.missing(1.0) == ["finger"]
    out = m.update(["finger"], [0.04], 1.005)
    np.testing.assert_array_equal(out.positions, [1.0, 2.0, 3.0, 0.04])
    out = m.update(list(ARM), [1.1, 2.1, 3.1], 1.01)  # the arm at its own rate
    np.testing.assert_array_equal(out.positions, [1.1, 2.1, 3.1, 0.04])
    assert m.update(list(ARM), [1.2, 2.2, 3.2], 1.2) is None  # the gripper went quiet > 0.1 s
    assert m.missing(1.2) == ["finger"]


def test_arm_split_in_two_streams():
    m = JointStateMerger(("a1", "a2", "a3", "a4"), 0.05)
    outs = []
    for k in range(20):
        t = k * 0.002
        half = ["a1", "a2"] if k % 2 == 0 else ["a3", "a4"]
        outs.append(m.update(half, [float(k)] * 2, t))
    assert outs[0] is None and all(o is not None for o in outs[1:])
    np.testing.assert_array_equal(outs[-1].positions, [18.0, 18.0, 19.0, 19.0])


def test_older_value_does_not_overwrite_a_newer_one_and_clock_reset_restarts():
    m = JointStateMerger(ARM, 0.5)
    m.update(list(ARM), [1.0, 1.0, 1.0], 2.0)
    out = m.update(["j1", "j2", "j3"], [0.0, 0.0, 0.0], 1.9)  # late: ignored per joint
    np.testing.assert_array_equal(out.positions, [1.0, 1.0, 1.0])
    out = m.update(list(ARM), [5.0, 5.0, 5.0], 0.1)  # the clock jumped back (bag loop)
    np.testing.assert_array_equal(out.positions, [5.0, 5.0, 5.0])


@pytest.mark.parametrize("names, pos, match", [
    (["j1", "j2"], [1.0], "2 names but 1 positions"),
    (["j1", "j1", "j2", "j3"], [0.0] * 4, "repeats joint names \\['j1'\\]"),
    (["x", "y"], [0.0, 0.0], "lacks joints"),
    (["j1", "j2", "j3"], [0.0, np.nan, 0.0], "non-finite or absurd positions for \\['j2'\\]"),
    (["j1", "j2", "j3"], [1e9, 0.0, 0.0], "absurd"),
    (["j1"] * (MAX_JOINT_NAMES + 1), [0.0] * (MAX_JOINT_NAMES + 1), "refused unread"),
])
def test_bad_messages_raise_naming_the_problem(names, pos, match):
    with pytest.raises(JointStateError, match=match):
        JointStateMerger(ARM, 0.5).update(names, pos, 1.0)


def test_hostile_message_costs_microseconds_not_seconds():
    """20,000 names with one repeated used to take ~8 s (a quadratic duplicate search)."""
    names = [f"n{i}" for i in range(20_000)] + ["n0"]
    t0 = time.perf_counter()
    for _ in range(100):
        with pytest.raises(JointStateError):
            JointStateMerger(ARM, 0.5).update(names, [0.0] * len(names), 1.0)
    assert time.perf_counter() - t0 < 1.0  # 100 messages; generous for a loaded machine
    dup = [f"n{i}" for i in range(MAX_JOINT_NAMES - 1)] + ["n5"]
    with pytest.raises(JointStateError, match="n5"):
        index_names(dup, len(dup))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(["j1", "j2", "j3", "g", "x"]), max_size=6),
                          st.floats(allow_nan=True, allow_infinity=True, width=32),
                          st.floats(0.0, 0.2)), max_size=30))
def test_property_merged_states_are_finite_complete_and_fresh(msgs):
    m = JointStateMerger(("j1", "j2", "j3", "g"), 0.1)
    t = 0.0
    for names, v, dt in msgs:
        t += dt
        try:
            out = m.update(names, [v] * len(names), t)
        except JointStateError:
            continue
        if out is not None:
            assert np.isfinite(out.positions).all() and out.positions.shape == (4,)
            assert m.missing(t) == []
