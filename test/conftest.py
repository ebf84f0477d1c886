"""Suite-wide guard: no test may leave the test process's main thread on another scheduling
policy (a library that switched it to SCHED_FIFO once made every later subprocess real-time,
and two busy-loop hogs starved the machine for minutes)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _scheduling_policy_unchanged():
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    yield
    after = os.sched_getscheduler(0), os.sched_getparam(0)
    if after != before:
        os.sched_setscheduler(0, *before)  # restore first: the rest of the suite must not inherit it
        pytest.fail(f"the test changed the main thread's scheduling policy: {before} -> {after}")
