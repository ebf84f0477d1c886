"""The control clock: a dedicated thread that calls the tick on an absolute monotonic grid.

Why not an rclpy timer: a timer callback is dispatched by the executor, so it waits behind
whatever callback the executor is running (an image conversion, a burst of joint states) and
behind the executor's own Python overhead; at 500 Hz on two cores that cost ~2 % of the ticks
(docs/BENCHMARKS.md). This thread sleeps until each deadline (``time.sleep`` on the monotonic
clock, which releases the GIL), runs the tick, and publishes from there; the executor only
feeds inputs. It is the structure of a ros2_control update loop.

Grid semantics (the same as an rcl timer's): deadlines are ``start + n * period``. A tick that
starts late keeps the grid (the next one is on time); a tick that starts a whole period or more
late skips the grid points it missed (counted in ``missed``) -- ticks never catch up.

``priority`` > 0 asks for SCHED_FIFO at that priority for this thread (what a PREEMPT_RT
deployment uses; needs CAP_SYS_NICE or an rtprio limit). If the kernel refuses, the thread runs
at normal priority and ``priority_error`` says why.

The thread follows the system's monotonic clock, so it cannot follow ``/clock``: the node uses an
rclpy timer under ``use_sim_time`` (``tick_source`` auto).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

MAX_SLEEP = 0.05  # s: the stop flag is checked at least this often


class TickThread:
    """Calls ``tick()`` every ``period`` s on its own daemon thread until ``stop()``."""

    def __init__(self, period: float, tick: Callable[[], None], priority: int = 0,
                 name: str = "sfp-control", clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"period must be > 0 s, got {period}")
        self.period = period
        self._tick = tick
        self._priority = priority
        self._clock, self._sleep = clock, sleep  # injectable for deterministic tests
        self._stop = threading.Event()
        self._ready = threading.Event()  # set once the thread has applied its priority
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.missed = 0  # grid points skipped after overruns
        self.priority_error = ""
        self.errors = 0  # exceptions that escaped tick()
        self.last_error = ""

    def start(self) -> None:
        """Start the thread; returns once its priority is applied (``priority_error`` is set)."""
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for a running tick to finish (no-op from the tick thread itself)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _set_priority(self) -> None:
        if self._priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self._priority))
        except (OSError, AttributeError) as e:  # no CAP_SYS_NICE / rtprio limit / not Linux
            self.priority_error = f"SCHED_FIFO priority {self._priority} refused ({e}); normal priority"

    def _run(self) -> None:
        self._set_priority()
        self._ready.set()
        period, clock = self.period, self._clock
        deadline = clock() + period
        while not self._stop.is_set():
            delay = deadline - clock()
            if delay > 0.0:
                self._sleep(min(delay, MAX_SLEEP))
                continue
            deadline += period
            late = clock() - deadline  # > 0: this tick starts after the next grid point
            if late > 0.0:  # a whole period or more behind: skip those, never catch up
                skipped = math.ceil(late / period)
                deadline += skipped * period
                self.missed += skipped
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 -- the caller's tick handles its own errors;
                # whatever escapes is recorded, and the clock keeps running.
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"


class ControlClock:
    """The policy node's control clock while it is active: a TickThread (``source`` "thread") or
    an rclpy timer (``source`` "timer": follows /clock), made with the node's ``create_timer`` /
    ``destroy_timer`` (no rclpy import here).

    ``running`` turns False at ``cancel()``: a timer callback already queued then does nothing.
    Stop in two steps: ``cancel()`` (waits for a running thread tick), then, under the caller's
    tick lock, ``destroy()``.
    """

    def __init__(self, source: str, period: float, tick: Callable[[], None], priority: int,
                 create_timer: Callable[[float, Callable[[], None]], Any],
                 destroy_timer: Callable[[Any], None]) -> None:
        self._thread: TickThread | None = None
        self._timer = None
        self._destroy_timer = destroy_timer
        self.priority_error = ""
        if source == "thread":
            self._thread = TickThread(period, tick, priority)
            self._thread.start()
            self.priority_error = self._thread.priority_error
        else:
            self._timer = create_timer(period, tick)

    @property
    def running(self) -> bool:
        return self._thread is not None or (self._timer is not None and not self._timer.is_canceled())

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def destroy(self) -> None:
        if self._timer is not None:
            self._destroy_timer(self._timer)
            self._timer = None
