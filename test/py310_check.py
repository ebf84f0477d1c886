"""`make test-py310`: what can be checked of the package on Python 3.10 (ROS 2 Humble's) without
torch or rclpy. Run with the 3.10 interpreter of .venv-py310:

1. imports every module of streaming_flow_ros (pkgutil.walk_packages). A module whose import
   fails only because torch, rclpy or a ROS 2 message/interface package is missing is skipped
   and listed; any other failure (a SyntaxError, `from typing import Self`, a missing pure-Python
   dependency) fails the check;
2. runs, under pytest, the test files below: those that need neither torch nor rclpy.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Test files that run without torch and rclpy (found by running every test file under 3.10; the
# others import torch, rclpy or domain_coordinator at module level, or run a checkpoint or the node).
TESTS = [
    "test/test_bags.py",
    "test/test_bench_compare.py",
    "test/test_dataset_build.py",
    "test/test_launch.py",
    "test/test_obs_buffer.py",
    "test/test_params.py",
    "test/test_py310.py",
    "test/test_record.py",
    "test/test_safety.py",
    "test/test_security_scan.py",
    "test/test_sim_arm.py",
    "test/test_sim_task.py",
    "test/test_ticker.py",
]
# Single tests in those files that need torch or rclpy after all.
DESELECT = [
    "test/test_params.py::test_defaults_valid_and_round_trip",  # a sampler builds the torch runtime config
    "test/test_security_scan.py::test_bag_message_types_cannot_import_arbitrary_modules",  # imports ros.play
]

# Missing on a 3.10 venv by design: torch (CUDA-only wheels for 3.10) and ROS 2 (apt on Humble).
ROS_ROOTS = {"rclpy", "rcl_interfaces", "builtin_interfaces", "launch", "launch_ros", "ament_index_python",
             "rosidl_runtime_py", "rosidl_parser", "rpyutils", "rosgraph_msgs", "lifecycle_msgs"}


# Optional extras not in requirements-py310.txt: MuJoCo (the cells in streaming_flow_ros/cells).
OPTIONAL_ROOTS = {"mujoco"}


def absent_by_design(name: str | None) -> bool:
    root = (name or "").split(".")[0]
    return (root == "torch" or root in ROS_ROOTS or root in OPTIONAL_ROOTS
            or root.endswith(("_msgs", "_srvs", "_interfaces")))


def import_all() -> tuple[list[str], dict[str, str], dict[str, str]]:
    import streaming_flow_ros

    imported: list[str] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}

    def onerror(name: str) -> None:  # a package whose __init__ failed: walk_packages cannot descend
        failed[name] = traceback.format_exc()

    for info in pkgutil.walk_packages(streaming_flow_ros.__path__, "streaming_flow_ros.", onerror=onerror):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as e:
            if absent_by_design(e.name):
                skipped[info.name] = f"no module {e.name!r}"
            else:
                failed[info.name] = traceback.format_exc()
        except BaseException:  # noqa: BLE001 - every other error is a 3.10 incompatibility to report
            failed[info.name] = traceback.format_exc()
        else:
            imported.append(info.name)
    return imported, skipped, failed


def main() -> int:
    print(f"Python {sys.version.split()[0]} ({sys.executable})")
    imported, skipped, failed = import_all()
    print(f"\nimported {len(imported)} modules:")
    for name in imported:
        print(f"  {name}")
    print(f"\nskipped {len(skipped)} modules (need torch or ROS 2, not installed for 3.10):")
    width = max((len(n) for n in skipped), default=0)
    for name, why in skipped.items():
        print(f"  {name:<{width}}  {why}")
    if failed:
        print(f"\nFAILED to import {len(failed)} modules on Python 3.10:")
        for name, tb in failed.items():
            print(f"--- {name}\n{tb}")
        return 1
    if not imported:
        print("nothing imported: the package was not found")
        return 1
    print(f"\nrunning {len(TESTS)} torch- and rclpy-free test files under Python 3.10 "
          f"({len(DESELECT)} tests deselected: they need torch or rclpy)", flush=True)
    deselect = [a for t in DESELECT for a in ("--deselect", t)]
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", *deselect,
                            *TESTS], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
