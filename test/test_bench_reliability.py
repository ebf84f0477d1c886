"""`python -m streaming_flow_ros.bench.reliability`: the bad-input tallies of several pytest
processes are summed, JUnit outcomes are counted per test file, and the RELIABILITY section
renders both (the full run is the 2-minute reliability suite itself: not repeated here)."""

import json

import pytest

from streaming_flow_ros.bench import reliability

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="test.test_reliability_inputs" name="test_a" time="0.1"/>
<testcase classname="test.test_reliability_inputs" name="test_b" time="0.1"><failure message="x">boom</failure></testcase>
<testcase classname="test.test_reliability_faults.TestFaults" name="test_c" time="0.1"/>
<testcase classname="test.test_security_scan" name="test_d" time="0.1"><skipped message="no rclpy"/></testcase>
</testsuite></testsuites>"""


def test_tallies_summed_and_outcomes_counted_per_file(tmp_path):
    log = tmp_path / "bad.jsonl"
    log.write_text(json.dumps({"images": 3, "images_live": 1}) + "\n" + json.dumps({"images": 2, "bags": 5}) + "\n\n")
    assert reliability._sum_tallies(log) == {"bags": 5, "images": 5, "images_live": 1}
    assert reliability._sum_tallies(tmp_path / "absent.jsonl") == {}
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    out = reliability._outcomes(junit)
    assert (out["passed"], out["failed"], out["skipped"]) == (2, 1, 1)
    assert out["files"] == {"test_reliability_inputs": {"passed": 1, "failed": 1},
                            "test_reliability_faults": {"passed": 1}, "test_security_scan": {"skipped": 1}}
    doc = {"tried": {"images": 5, "images_live": 1, "bags": 5}, "tests": out, "exit_status": 1, "seconds": 12.0,
           "command": "python -m streaming_flow_ros.bench.reliability --seed 0"}
    text = reliability.render(doc)
    assert "| images | 5 | 1 |" in text and "| bags / dataset build | 5 | - |" in text
    assert "| joint states | 0 | - |" in text and "| **all** | **10** | **1** |" in text
    assert "**1 failed**" in text and "in 3 files" in text


def test_refuses_to_run_outside_a_source_checkout(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a source checkout"):
        reliability.measure(tmp_path)
