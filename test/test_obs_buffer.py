"""policy/obs_buffer.py: pairing frames with joint states, history at the data rate, staleness."""

import numpy as np
import pytest

from streaming_flow_ros.policy.obs_buffer import ObsBuffer


def img(v: int) -> np.ndarray:
    return np.full((4, 4, 3), v, np.uint8)


def feed(buf: ObsBuffer, t_end: float, js_hz: float = 100.0, cam_hz: float = 30.0, cams=("cam",)):
    """Joint state i carries [t]; frame k of every camera carries k (mod 256)."""
    for i in range(int(t_end * js_hz) + 1):
        t = i / js_hz
        buf.add_state(t, [t, 0.0])
    for k in range(int(t_end * cam_hz) + 1):
        for c in cams:
            buf.add_frame(c, k / cam_hz, img(k % 256))


def test_history_at_data_rate_pairs_nearest_state():
    buf = ObsBuffer(2, ["cam"], obs_horizon=3, data_rate_hz=10.0, sync_tolerance=0.006)
    feed(buf, 1.0)
    obs = buf.build()
    assert obs.stamp == pytest.approx(1.0)  # newest paired frame (k = 30)
    assert obs.state.shape == (3, 2) and obs.images["cam"].shape == (3, 4, 4, 3)
    # samples at 0.8, 0.9, 1.0 s: frames 24, 27, 30; their joint states within 6 ms
    np.testing.assert_allclose(obs.state[:, 0], [0.8, 0.9, 1.0], atol=0.006)
    assert obs.images["cam"][:, 0, 0, 0].tolist() == [24, 27, 30]


def test_unpaired_newest_frame_is_skipped_until_its_joint_state_arrives():
    buf = ObsBuffer(2, ["cam"], obs_horizon=2, data_rate_hz=10.0, sync_tolerance=0.01)
    feed(buf, 1.0)
    buf.add_frame("cam", 1.05, img(99))  # no joint state near 1.05 yet
    assert buf.build().stamp == pytest.approx(1.0)
    buf.add_state(1.052, [1.052, 0.0])
    obs = buf.build()
    assert obs.stamp == pytest.approx(1.05) and obs.images["cam"][-1, 0, 0, 0] == 99
    assert buf.build(after=obs.stamp) is None


def test_padding_repeats_oldest_at_start():
    buf = ObsBuffer(2, ["cam"], obs_horizon=3, data_rate_hz=10.0)
    buf.add_state(0.0, [0.0, 0.0])
    buf.add_frame("cam", 0.0, img(7))
    obs = buf.build()
    assert obs.state.shape == (3, 2) and obs.images["cam"][:, 0, 0, 0].tolist() == [7, 7, 7]


def test_state_only_samples_joint_states():
    buf = ObsBuffer(2, (), obs_horizon=2, data_rate_hz=20.0)
    assert buf.build() is None
    feed(buf, 0.5, cams=())
    obs = buf.build()
    assert obs.images == {} and obs.stamp == pytest.approx(0.5)
    np.testing.assert_allclose(obs.state[:, 0], [0.45, 0.5])


def test_multi_camera_sync():
    buf = ObsBuffer(2, ["a", "b"], obs_horizon=1, data_rate_hz=10.0, sync_tolerance=0.01)
    feed(buf, 0.5, cams=("a",))
    assert buf.build() is None  # camera b never seen
    buf.add_frame("b", 0.495, img(5))
    obs = buf.build()
    assert obs.stamp == pytest.approx(0.5) and obs.images["b"][0, 0, 0, 0] == 5


def test_stale_reasons():
    buf = ObsBuffer(2, ["cam"], obs_horizon=2, data_rate_hz=10.0)
    assert "no joints" in buf.stale_reason(0.0, 0.5)
    buf.add_state(1.0, [0.0, 0.0])
    assert "no cam" in buf.stale_reason(1.0, 0.5)
    buf.add_frame("cam", 1.0, img(0))
    assert buf.stale_reason(1.2, 0.5) is None
    assert "joints stale" in buf.stale_reason(1.6, 0.5)
    assert buf.ages(1.25) == pytest.approx({"joints": 0.25, "cam": 0.25})


def test_out_of_order_and_clock_reset():
    buf = ObsBuffer(1, (), obs_horizon=1, data_rate_hz=10.0)
    buf.add_state(2.0, [2.0])
    buf.add_state(1.99, [1.99])  # slightly late: inserted in order, newest unchanged
    assert buf.latest_state()[0] == 2.0
    buf.add_state(0.0, [0.0])  # clock jumped back > 1 s: series restarts
    assert buf.latest_state()[0] == 0.0
    assert buf.build().stamp == 0.0


def test_validation():
    with pytest.raises(ValueError):
        ObsBuffer(0)
    with pytest.raises(ValueError):
        ObsBuffer(2, ["a", "a"])
    with pytest.raises(ValueError):
        ObsBuffer(2, obs_horizon=0)
    buf = ObsBuffer(2, ["cam"])
    with pytest.raises(ValueError):
        buf.add_state(0.0, [0.0])
    with pytest.raises(ValueError):
        buf.add_state(0.0, [np.nan, 0.0])
    with pytest.raises(ValueError):
        buf.add_frame("other", 0.0, img(0))


def test_future_stamp_counts_from_receipt():
    """A sample stamped 0.4 s ahead (another machine's clock) is kept with its stamp for pairing,
    but its staleness counts from its receipt: stale after max_age, not max_age + 0.4."""
    b = ObsBuffer(2, (), obs_horizon=1)
    b.add_state(10.4, np.zeros(2), received=10.0)
    assert b.latest_state()[0] == 10.4
    assert b.stale_reason(10.45, 0.5) is None
    assert "stale" in b.stale_reason(10.55, 0.5)
    b.add_state(10.6, np.zeros(2))  # no receipt time: the stamp counts
    assert b.stale_reason(11.05, 0.5) is None
