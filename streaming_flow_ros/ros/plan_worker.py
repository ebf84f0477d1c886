"""Runs ``policy.prepare(obs)`` (the encoder) on its own thread so a slow encoder never delays
a control tick. Plain threading, no rclpy; torch releases the GIL while it computes.

The worker wakes when told (a new camera frame) or every ``poll_s`` seconds, builds the newest
observation not yet prepared, prepares it and leaves the result in a one-slot mailbox (a newer
plan replaces an unread one). The control timer ``take()``s it when it is due.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..policy.protocol import Observation

log = logging.getLogger(__name__)
WORKER_NICE = 5  # niceness added to the worker thread (control timer stays at the process level)


@dataclass(frozen=True)
class PreparedPlan:
    """plan: whatever ``prepare`` returned; stamp: s (node clock) of the observation's newest
    sample; prepare_s: wall seconds ``prepare`` took."""

    plan: Any
    stamp: float
    prepare_s: float


class PlanWorker:
    """Args:
    build: ``build(after)`` -> the newest Observation with stamp > ``after`` (None: nothing new).
    prepare: ``policy.prepare``.
    is_fresh: ``is_fresh(stamp)`` -> False to skip an observation that is already too old.
    on_prepared: called with each PreparedPlan (telemetry).
    on_error: called with the exception when ``prepare`` fails (that observation is skipped).
    poll_s: longest sleep between attempts, s.
    """

    def __init__(
        self,
        build: Callable[[float | None], Observation | None],
        prepare: Callable[[Observation], Any],
        is_fresh: Callable[[float], bool],
        on_prepared: Callable[[PreparedPlan], None],
        on_error: Callable[[BaseException], None],
        poll_s: float,
    ) -> None:
        if not (poll_s > 0):
            raise ValueError(f"poll_s must be > 0, got {poll_s}")
        self._build, self._prepare, self._is_fresh = build, prepare, is_fresh
        self._on_prepared, self._on_error = on_prepared, on_error
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._slot: PreparedPlan | None = None
        self._last_stamp: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sfp-plan-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waits up to ``timeout`` s for a running ``prepare``) and empty the slot."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("plan worker still busy in prepare() after %.1f s; left as daemon", timeout)
        self._thread = None
        self.discard()
        self._last_stamp = None

    def wake(self) -> None:
        self._wake.set()

    def take(self) -> PreparedPlan | None:
        """The newest unread plan (and empty the slot), or None."""
        with self._lock:
            plan, self._slot = self._slot, None
        return plan

    def discard(self) -> None:
        with self._lock:
            self._slot = None

    def _loop(self) -> None:
        try:  # Linux: nice only this thread, so the OS prefers the control thread on busy cores
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        except (AttributeError, OSError):
            pass
        while not self._stop.is_set():
            self._wake.wait(self._poll_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            obs = self._build(self._last_stamp)
            if obs is None:
                continue
            self._last_stamp = obs.stamp
            if not self._is_fresh(obs.stamp):
                continue
            t0 = time.perf_counter()
            try:
                plan = self._prepare(obs)
            except Exception as e:  # noqa: BLE001 -- log-and-skip: without new plans the control
                # loop holds once the current plan is used up; diagnostics turn ERROR.
                self._on_error(e)
                continue
            prepared = PreparedPlan(plan, obs.stamp, time.perf_counter() - t0)
            if self._stop.is_set():
                break
            with self._lock:
                self._slot = prepared
            self._on_prepared(prepared)
