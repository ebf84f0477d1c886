"""The control thread's clock semantics (ros/ticker.py), on a simulated clock: ticks on an
absolute grid, a late tick keeps the grid, a tick a period or more late skips the missed grid
points (rcl timer semantics: never a burst of catch-up ticks), errors do not stop the clock, stop() joins."""

import threading
import time

import pytest

from streaming_flow_ros.ros.ticker import ControlClock, TickThread

PERIOD = 0.01


class FakeClock:
    """Monotonic time that only moves when the ticker sleeps or a tick 'takes' time."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def run_ticks(durations: dict[int, float], n: int, errors: set[int] = frozenset()):
    """Run a TickThread on a FakeClock until ``n`` ticks; tick i takes durations.get(i, 0) s
    and raises if i in ``errors``. Returns (tick start times, ticker)."""
    clock = FakeClock()
    starts: list[float] = []
    done = threading.Event()

    def tick() -> None:
        i = len(starts)
        starts.append(clock.t)
        clock.t += durations.get(i, 0.0)
        if len(starts) >= n:
            done.set()
            ticker._stop.set()
        if i in errors:
            raise RuntimeError(f"tick {i} failed")

    ticker = TickThread(PERIOD, tick, clock=clock, sleep=clock.sleep)
    ticker.start()
    assert done.wait(10.0)
    ticker.stop()
    assert not ticker.alive
    return starts, ticker


def test_ticks_on_an_absolute_grid():
    starts, ticker = run_ticks({i: 0.003 for i in range(20)}, 20)
    offsets = [(s - 100.0) / PERIOD for s in starts]
    assert offsets == pytest.approx(list(range(1, 21)), abs=1e-6), "compute time does not drift the grid"
    assert ticker.missed == 0


def test_late_tick_keeps_the_grid_and_overrun_skips():
    # tick 3 overruns by 0.6 periods: tick 4 starts late, tick 5 is back on the grid.
    starts, ticker = run_ticks({3: 1.6 * PERIOD}, 8)
    offsets = [round((s - 100.0) / PERIOD, 6) for s in starts]
    assert offsets[:5] == [1, 2, 3, 4, 5.6]
    assert offsets[5:] == [6, 7, 8]
    assert ticker.missed == 0
    # tick 2 overruns by 2.5 periods (ends at 6.5): one late tick at once (for grid point 6),
    # points 4 and 5 are skipped, then the grid again -- no burst of catch-up ticks.
    starts, ticker = run_ticks({2: 3.5 * PERIOD}, 6)
    offsets = [round((s - 100.0) / PERIOD, 6) for s in starts]
    assert offsets == [1, 2, 3, 6.5, 7, 8]
    assert ticker.missed == 2


def test_errors_do_not_stop_the_clock():
    starts, ticker = run_ticks({}, 6, errors={1, 2})
    assert len(starts) == 6 and ticker.errors == 2 and "tick 2 failed" in ticker.last_error


def test_real_clock_stop_joins_a_running_tick():
    started, finished = threading.Event(), threading.Event()

    def tick() -> None:
        started.set()
        time.sleep(0.05)
        finished.set()

    ticker = TickThread(0.001, tick)
    ticker.start()
    assert started.wait(5.0)
    ticker.stop()
    assert finished.is_set() and not ticker.alive


def test_priority_is_applied_or_refused_with_a_reason():
    import os

    seen = []
    ticker = TickThread(0.005, lambda: seen.append(os.sched_getscheduler(0)), priority=1)
    ticker.start()
    deadline = time.monotonic() + 5.0
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    ticker.stop()
    assert seen
    if ticker.priority_error:
        assert "SCHED_FIFO" in ticker.priority_error and seen[0] == os.SCHED_OTHER
    else:
        assert seen[0] == os.SCHED_FIFO


def test_rejects_a_bad_period():
    with pytest.raises(ValueError):
        TickThread(0.0, lambda: None)


class FakeTimer:
    def __init__(self, period, tick):
        self.period, self.tick, self.canceled = period, tick, False

    def cancel(self):
        self.canceled = True

    def is_canceled(self):
        return self.canceled


def test_control_clock_timer_source_runs_until_cancel_then_destroys():
    made, destroyed = [], []
    clock = ControlClock("timer", PERIOD, lambda: None, 0, lambda p, f: made.append(FakeTimer(p, f)) or made[-1],
                         destroyed.append)
    assert made[0].period == PERIOD and clock.running and not clock.priority_error
    clock.cancel()  # a timer callback already queued now does nothing
    assert not clock.running and made[0].canceled and not destroyed
    clock.destroy()
    assert destroyed == made


def test_control_clock_thread_source_ticks_and_stops():
    ticks = threading.Event()
    clock = ControlClock("thread", PERIOD, ticks.set, 0, lambda p, f: pytest.fail("no timer"), lambda t: None)
    assert clock.running and ticks.wait(2.0)
    clock.cancel()  # joins the thread
    assert not clock.running
    clock.destroy()
