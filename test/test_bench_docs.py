"""Generated doc tables: `--render` of the defaults / contention JSON and section replacement."""

from __future__ import annotations

import pytest

from streaming_flow_ros.bench.common import replace_section
from streaming_flow_ros.bench.defaults import render as render_defaults
from streaming_flow_ros.ros.bench.contention import render as render_contention


def test_replace_section_only_between_markers(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("head\n<!-- t:begin -->\nold\n<!-- t:end -->\ntail\n")
    replace_section(doc, "t", "| a |\n|---|")
    assert doc.read_text() == "head\n<!-- t:begin -->\n| a |\n|---|\n<!-- t:end -->\ntail\n"
    with pytest.raises(ValueError, match="no <!-- u:begin -->"):
        replace_section(doc, "u", "x")


def test_defaults_table_has_every_cell():
    row = {"episodes": 50, "success": 0.5, "seconds": 1.0}
    doc = {"pusht_checkpoint": "ck", "cpu_steal": 0.01, "command": "sfp bench defaults",
           "pusht": [{**row, "reanchor": m, "delay_steps": d, "skip_elapsed": c, "score": 0.1 * d + (m == "horizon")}
                     for m in ("observation", "horizon") for d in (0, 2) for c in ((False,) if d == 0 else (False, True))],
           "sim": [{"reanchor": m, "skip_elapsed": c, "episodes": 30, "success_rate": 1.0, "collision_rate": 0.0,
                    "time_to_success_mean": 2.0, "jerk_rms_mean": 200.0, "ticks_ratio": 0.999}
                   for m in ("observation", "horizon") for c in (True, False)]}
    text = render_defaults(doc)
    assert "| horizon | true | 1.000 (0.50) | 1.200 (0.50) |" in text
    assert "| observation | false | 0.000 (0.50) | 0.200 (0.50) |" in text
    assert text.count("| horizon |") == 4 and "CPU steal during the run: 1.0%" in text


def test_contention_table():
    r = {"ticks_ratio": 0.95, "period_err_p99_ms": 1.5, "period_err_max_ms": 20.0, "step_p99_ms": 0.8, "cpu_steal": 0.0}
    doc = {"seconds": 10.0, "machine": {"cpu": "x", "cpu_count": 2}, "command": "sfp bench contention",
           "variants": [{"label": "idle", **r}, {"label": "2 hogs", **r, "ticks_ratio": 0.7}]}
    text = render_contention(doc)
    assert "| 2 hogs | 0.700 | 1.50 | 30 | 0.80 | 0.0% |" in text and "on x (2 cores)" in text
