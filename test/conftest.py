"""Suite-wide guard: no test may leave the process on a real-time scheduling policy. SVT-AV1
(the LeRobot export's AV1 encoder) switches the thread that opens an encoder to SCHED_FIFO 99
when run as root; that once made every later subprocess and every DDS thread real-time, and two
busy-loop hogs then starved the 2-core machine for minutes."""

from __future__ import annotations

import os

import pytest

from streaming_flow_ros.data.lerobot_export import set_thread_scheduling


def real_time_threads() -> list[str]:
    """Names of this process's threads on SCHED_FIFO or SCHED_RR."""
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                policy = int(f.read().rsplit(")", 1)[1].split()[38])
            if policy in (os.SCHED_FIFO, os.SCHED_RR):
                with open(f"/proc/self/task/{tid}/comm") as f:
                    out.append(f.read().strip())
        except (OSError, IndexError, ValueError):  # a thread that just ended
            pass
    return out


@pytest.fixture(autouse=True)
def _no_real_time_leftovers():
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    yield
    after = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    if after != before:
        set_thread_scheduling(*before)  # restore first: the rest of the suite must not inherit it
        pytest.fail(f"the test changed the main thread's scheduling policy: {before} -> {after}")
    rt = real_time_threads()
    if rt:
        pytest.fail(f"real-time threads left running: {rt[:8]}")


@pytest.fixture(scope="module")
def cells():
    """MuJoCo arm cells by robot name, 32x32 cameras, made on first use and closed after the
    module (the cell test modules skip themselves without mujoco and robosuite's models)."""
    from streaming_flow_ros.cells.cell import Cell

    made: dict = {}

    def get(robot: str) -> Cell:
        if robot not in made:
            made[robot] = Cell(robot, image_size=(32, 32))
        return made[robot]

    yield get
    for c in made.values():
        c.close()
