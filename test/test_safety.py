"""policy/safety.py: properties over random limits/actions (hypothesis) and the named cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streaming_flow_ros.policy.safety import BinaryGripper, SafetyFilter, SafetyLimits, filter_action

D = 4
finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)
anything = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def limits_and_prev(draw, inside: bool = True):
    lo = np.array(draw(hnp.arrays(np.float64, D, elements=st.floats(-5.0, 0.0))))
    width = np.array(draw(hnp.arrays(np.float64, D, elements=st.floats(0.01, 5.0))))
    step = np.array(draw(hnp.arrays(np.float64, D, elements=st.floats(1e-4, 1.0))))
    limits = SafetyLimits(lo, lo + width, step)
    if inside:
        frac = np.array(draw(hnp.arrays(np.float64, D, elements=st.floats(0.0, 1.0))))
        prev = np.clip(lo + frac * width, limits.lower, limits.upper)
    else:
        prev = np.array(draw(hnp.arrays(np.float64, D, elements=finite)))
    return limits, prev


@settings(max_examples=300, deadline=None)
@given(limits_and_prev(), hnp.arrays(np.float64, D, elements=anything))
def test_output_finite_within_limits_and_step(lp, action):
    limits, prev = lp
    r = filter_action(action, prev, limits)
    assert np.isfinite(r.action).all()
    assert (r.action >= limits.lower).all() and (r.action <= limits.upper).all()
    assert (np.abs(r.action - prev) <= limits.max_step * (1 + 1e-12) + 1e-12).all()
    np.testing.assert_allclose(r.delta, r.action - prev)
    assert r.rejected == (not np.isfinite(action).all())


@settings(max_examples=200, deadline=None)
@given(limits_and_prev(inside=False), hnp.arrays(np.float64, D, elements=finite))
def test_outside_limits_walks_in_at_step_rate(lp, action):
    limits, prev = lp
    r = filter_action(action, prev, limits)
    assert (np.abs(r.action - prev) <= limits.max_step * (1 + 1e-12) + 1e-12).all()

    def dist(x):
        return np.maximum(limits.lower - x, 0) + np.maximum(x - limits.upper, 0)

    assert (dist(r.action) <= dist(prev) + 1e-12).all()


@settings(max_examples=300, deadline=None)
@given(limits_and_prev(), hnp.arrays(np.float64, D, elements=finite))
def test_rate_limit_keeps_the_direction(lp, action):
    """A rate-limited step is the proposed step scaled down (same direction): the arm follows
    the commanded path, slower, instead of bending it joint by joint."""
    check_direction(lp, action)


def test_rate_limit_rounding_edge():
    # found by hypothesis: the clipped step exceeds max_step by one rounding error only
    lim = SafetyLimits(np.full(D, -1.0), np.full(D, -0.99), np.full(D, 0.01))
    check_direction((lim, np.full(D, -1.0)), np.zeros(D))
    r = filter_action(np.zeros(D), np.full(D, -1.0), lim)
    assert (r.action <= -0.99).all() and (np.abs(r.delta) <= 0.01 * (1 + 1e-12)).all()


def check_direction(lp, action):
    limits, prev = lp
    r = filter_action(action, prev, limits)
    want = np.clip(action, limits.lower, limits.upper) - prev
    if r.rate_limited:
        scale = np.dot(r.delta, want) / np.dot(want, want)
        assert 0.0 < scale <= 1.0 + 1e-9  # ~1 when the step exceeds max_step by rounding only
        np.testing.assert_allclose(r.delta, scale * want, atol=1e-9)
        assert np.isclose(np.abs(r.delta) / limits.max_step, 1.0, atol=1e-9).any(), "the binding joint moves a full step"
    else:
        np.testing.assert_allclose(r.delta, want)


def test_flags():
    lim = SafetyLimits([-1.0, -1.0], [1.0, 1.0], [0.1, 0.1])
    prev = np.zeros(2)
    r = filter_action([0.05, -0.05], prev, lim)
    assert not (r.clamped or r.rate_limited or r.rejected)
    np.testing.assert_array_equal(r.action, [0.05, -0.05])
    r = filter_action([0.5, 0.0], prev, lim)
    assert r.rate_limited and not r.clamped
    np.testing.assert_allclose(r.action, [0.1, 0.0])
    r = filter_action([0.5, 0.25], prev, lim)  # scaled as a whole: [0.1, 0.05], not [0.1, 0.1]
    assert r.rate_limited
    np.testing.assert_allclose(r.action, [0.1, 0.05])
    r = filter_action([5.0, 0.0], np.array([0.95, 0.0]), lim)
    assert r.clamped and not r.rate_limited
    np.testing.assert_allclose(r.action, [1.0, 0.0])


def test_non_finite_holds_previous():
    lim = SafetyLimits([-1.0], [1.0], [0.1])
    for bad in (np.nan, np.inf, -np.inf):
        r = filter_action([bad], np.array([0.3]), lim)
        assert r.rejected and r.action.tolist() == [0.3] and r.delta.tolist() == [0.0]


def test_filter_keeps_previous_between_ticks():
    f = SafetyFilter(SafetyLimits.from_velocity([-1.0], [1.0], [10.0], 100.0))  # 0.1 rad/tick
    with pytest.raises(RuntimeError):
        f(np.zeros(1))
    f.reset(np.zeros(1))
    outs = [f(np.array([1.0])).action[0] for _ in range(12)]
    np.testing.assert_allclose(outs[:10], np.arange(1, 11) * 0.1)
    assert outs[-1] == 1.0
    assert f(np.array([np.nan])).action[0] == 1.0
    assert f.last.tolist() == [1.0]


@pytest.mark.parametrize(
    "lower, upper, step",
    [([0.0], [0.0], [0.1]), ([1.0], [0.0], [0.1]), ([0.0], [1.0], [0.0]), ([np.nan], [1.0], [0.1]),
     ([0.0, 0.0], [1.0], [0.1]), ([], [], [])],
)
def test_bad_limits_raise(lower, upper, step):
    with pytest.raises(ValueError):
        SafetyLimits(lower, upper, step)


def test_bad_inputs_raise():
    lim = SafetyLimits([-1.0], [1.0], [0.1])
    with pytest.raises(ValueError, match="previous"):
        filter_action([0.0], np.array([np.nan]), lim)
    with pytest.raises(ValueError, match="values"):
        filter_action([0.0, 0.0], np.zeros(1), lim)
    f = SafetyFilter(lim)
    with pytest.raises(ValueError):
        f.reset(np.array([np.inf]))
    with pytest.raises(ValueError):
        SafetyLimits.from_velocity([-1.0], [1.0], [1.0], 0.0)


def test_binary_gripper_threshold_and_hysteresis():
    """gripper_mode binary: exactly a limit out; without a band the midpoint decides each value,
    with one a command lingering near the midpoint keeps the last output."""
    rng = np.random.default_rng(0)
    plain, values = BinaryGripper([0.0], [0.08]), rng.uniform(-0.01, 0.09, (200, 1))
    for v in values:
        np.testing.assert_array_equal(plain(v), np.where(v >= 0.04, 0.08, 0.0))
    g = BinaryGripper([0.0], [0.08], hysteresis=0.5)  # opens above 0.06, closes below 0.02
    seq = [0.0, 0.045, 0.059, 0.061, 0.03, 0.021, float("nan"), 0.019, 0.05, np.inf, 0.07, -np.inf]
    assert [float(g([v])[0]) for v in seq] == [0.0, 0.0, 0.0, 0.08, 0.08, 0.08, 0.08, 0.0, 0.0, 0.0, 0.08, 0.08]
    g.reset()
    assert float(g([0.045])[0]) == 0.08  # after a reset: the side of the midpoint
    # a command dithering around the midpoint: chatter without a band, none with one
    t = np.arange(500) / 100.0
    dither = 0.04 + 0.006 * np.sin(2 * np.pi * 3 * t) + rng.normal(0, 0.002, t.size)
    for band, most in ((0.0, None), (0.4, 0)):
        b = BinaryGripper([0.0], [0.08], band)
        switches = int(np.count_nonzero(np.diff([b([v])[0] for v in dither])))
        assert switches > 20 if most is None else switches <= most, (band, switches)
    two = BinaryGripper([0.0, -1.0], [0.08, 1.0], 0.2)  # element-wise
    np.testing.assert_array_equal(two([0.05, -0.5]), [0.08, -1.0])
    np.testing.assert_array_equal(two([0.039, 0.05]), [0.08, -1.0])
    for bad in ({"lower": [0.0], "upper": [0.0]}, {"lower": [0.0], "upper": [np.inf]}, {"hysteresis": 1.0},
                {"hysteresis": -0.1}):
        with pytest.raises(ValueError):
            BinaryGripper(**{"lower": [0.0], "upper": [0.08], **bad})
