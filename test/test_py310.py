"""Python 3.10 (ROS 2 Humble's Python): vermin finds no language feature or standard-library name
newer than 3.10 in the package, the launch files, setup.py or the tests (annotations included,
since `from __future__ import annotations` would otherwise hide them). The check itself is tested
on planted 3.11 features. Skipped where vermin is not installed (requirements.txt pins it).

`make test-py310` goes further: it imports the torch- and rclpy-free modules and runs the tests
that need neither under a real Python 3.10 (test/py310_check.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vermin")

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["streaming_flow_ros", "launch", "setup.py", "test"]
FLAGS = ["-t=3.10-", "--violations", "--no-tips", "--eval-annotations", "--processes=1"]


def vermin(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    # A child process: vermin's multiprocessing should not fork a pytest process that may hold DDS threads.
    code = "import sys; from vermin import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *FLAGS, *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def flagged(res: subprocess.CompletedProcess[str]) -> bool:
    """A violation, or a file vermin could not parse: vermin parses with the running interpreter's
    grammar, so under 3.10 newer syntax (`except*`) shows up as "error: invalid syntax", exit 0."""
    return res.returncode != 0 or "error:" in res.stdout + res.stderr


def test_nothing_newer_than_python_310():
    res = vermin(*TARGETS)
    out = res.stdout + res.stderr
    analyzed = re.search(r"Analyzing (\d+) files", out)
    assert analyzed, out
    assert int(analyzed.group(1)) >= len(list((ROOT / "streaming_flow_ros").rglob("*.py"))), out
    assert not flagged(res), f"features newer than Python 3.10 (Humble):\n{out}"


@pytest.mark.parametrize("source, what", [
    ("from typing import Self\n", "typing.Self"),
    (("from __future__ import annotations\nimport typing\n\n\nclass A:\n"
      "    def f(self) -> typing.Self:\n        return self\n"), "typing.Self"),
    ("import tomllib\n", "tomllib"),
    ("from enum import StrEnum\n", "enum.StrEnum"),
    ("import datetime\nX = datetime.UTC\n", "datetime.UTC"),
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", "except*"),
    ("raise ExceptionGroup('x', [ValueError()])\n", "ExceptionGroup"),
])
def test_check_catches_planted_311_features(tmp_path: Path, source: str, what: str):
    (tmp_path / "planted.py").write_text(source)
    res = vermin(tmp_path)
    assert flagged(res), res.stdout
    assert what in res.stdout, res.stdout
