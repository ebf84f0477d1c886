"""Generated doc tables: each bench's `render`, section replacement, and `sfp bench docs --check` on the
committed docs and docs/results."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from streaming_flow_ros.bench.common import replace_section
from streaming_flow_ros.bench.defaults import render as render_defaults
from streaming_flow_ros.bench.step import render as render_step
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


def test_step_table():
    row = {"p50_ms": 0.0812, "p99_ms": 0.156, "max_ms": 5.15, "prepare": {"p50_ms": 0.296, "p99_ms": 0.523},
           "params": 714503, "ticks": 20000}
    doc = {"state": row, "image": {**row, "params": 1072295}, "image_midpoint": {**row, "ticks": 10000},
           "cpu_steal": 0.012, "torchscript": False,
           "machine": {"torch_threads": 1, "cpu_count": 2, "load_avg_1_5_15": [5.3, 4.0, 2.8], "nice": 15}}
    text = render_step(doc)
    assert "| state (7 joints) | 0.71 | 0.081 / 0.156 / 5.2 | 0.30 / 0.52 | 20,000 |" in text
    assert "| image (7 joints, one 96x96 camera) | 1.07 |" in text and "| 10,000 |" in text
    assert "CPU steal during the run 1.2 %, load average at the start [5.3, 4.0, 2.8], niceness 15" in text
    assert "Command: `sfp bench step --ticks 20000`." in text


def test_contention_table():
    r = {"ticks_ratio": 0.95, "period_err_p99_ms": 1.5, "period_err_max_ms": 20.0, "step_p99_ms": 0.8, "cpu_steal": 0.0}
    doc = {"seconds": 10.0, "machine": {"cpu": "x", "cpu_count": 2}, "command": "sfp bench contention",
           "variants": [{"label": "idle", **r}, {"label": "2 hogs", **r, "ticks_ratio": 0.7}]}
    text = render_contention(doc)
    assert "| 2 hogs | 0.700 | 1.50 | 30 | 0.80 | 0.0% |" in text and "on x (2 cores)" in text


def test_cells_table_groups_seeds_and_reports_modes():
    from streaming_flow_ros.bench.cells import parse_run
    from streaming_flow_ros.bench.cells import render as render_cells

    run = {"episodes": 10, "steal": 0.02, "collision_rate": 0.1, "time_to_success_mean_s": 4.0, "jerk_rms": 50.0, "ticks_ratio": 0.99}
    doc = {"episodes": 10, "control_rate_hz": 100.0, "machine": {"cpu_count": 2}, "runs": [
        {**run, "robot": "panda", "task": "lift", "method": "sfp", "success_rate": 0.8, "modes": {"red": 8}},
        {**run, "robot": "panda", "task": "lift", "method": "sfp", "success_rate": 1.0, "modes": {"red": 10},
         "per_episode": [{"grasp": {"lateral_mm": 2.0, "yaw_deg": -30.0}}, {"grasp": None},
                         {"grasp": {"lateral_mm": 4.0, "yaw_deg": 10.0}}, {"grasp": {"lateral_mm": 9.0, "yaw_deg": 5.0}}]},
        {**run, "robot": "panda", "task": "pick_either", "method": "sfp", "success_rate": 0.9,
         "modes": {"red": 5, "green": 4}},
        *({**run, "robot": "panda", "task": "place_either", "method": "sfp", "success_rate": 0.6,
           "modes": {"left": 3, "right": 3}, "misses": m} for m in ({"held": 1, "off pad": 3}, {})),
        {**run, "robot": "panda", "task": "place_either", "method": "fm_chunk", "success_rate": 0.6,
         "modes": {"left": 6}},  # a run that predates misses
        {**run, "robot": "panda", "task": "place_either", "method": "dp", "success_rate": 0.0, "modes": {},
         "misses": {"off pad": 2, "held": 2}}]}
    text = render_cells(doc)
    assert "| left 6, right 6; misses: off pad 3, held 1 | - |" in text  # summed over the seeds, most first
    assert "| misses: held 2, off pad 2 | - |" in text  # none placed; ties by name
    assert "| left 6 | - |" in text
    assert "| panda | lift | sfp | 2 | 20 | 0.90 ± 0.10 | 0.10 ± 0.00 | 4.00 ± 0.00 |" in text
    assert "| panda | pick_either | sfp | 1 | 10 | 0.90 |" in text and "green 4, red 5 | - |" in text
    assert "| 4 mm / 10° |" in text  # medians over the episodes that closed, |yaw|
    assert "CPU steal during the run at most 2.0%" in text
    assert parse_run("ur5e:lift:sfp_bin=a/b.safetensors|gripper_mode=binary,reanchor=observation") == {
        "robot": "ur5e", "task": "lift", "method": "sfp_bin", "checkpoint": "a/b.safetensors",
        "params": {"gripper_mode": "binary", "reanchor": "observation"}}
    with pytest.raises(ValueError, match="ROBOT:TASK:METHOD"):
        parse_run("panda:lift=x")


# ---- `sfp bench docs`: the committed docs are what docs/results renders -------------------------

ROOT = Path(__file__).resolve().parents[1]


def _docs_args(docs: Path, results: Path, check: bool) -> argparse.Namespace:
    from streaming_flow_ros.bench import docs as bench_docs

    p = argparse.ArgumentParser()
    bench_docs.configure(p)
    return p.parse_args(["--docs", str(docs), "--results", str(results), *(["--check"] if check else [])])


def test_committed_docs_match_their_results(capsys):
    """BENCHMARKS.md and RELIABILITY.md hold exactly what docs/results/*.json render: if this
    fails, run `sfp bench docs` (or restore the JSON the doc was generated from)."""
    from streaming_flow_ros.bench import docs as bench_docs

    rc = bench_docs.run(_docs_args(ROOT / "docs", ROOT / "docs" / "results", check=True))
    assert rc == 0, capsys.readouterr().out


def test_docs_check_finds_drift_and_regeneration_fixes_it(tmp_path):
    from streaming_flow_ros.bench import docs as bench_docs

    docs, results = tmp_path / "docs", tmp_path / "results"
    docs.mkdir()
    results.mkdir()
    for name in {s.doc for s in bench_docs.SECTIONS}:
        (docs / name).write_text((ROOT / "docs" / name).read_text())
    shutil.copy(ROOT / "docs" / "results" / "contention.json", results / "contention.json")
    doc = json.loads((results / "contention.json").read_text())
    doc["variants"][0]["ticks_ratio"] = 0.5
    (results / "contention.json").write_text(json.dumps(doc))
    assert bench_docs.run(_docs_args(docs, results, check=True)) == 1
    assert bench_docs.run(_docs_args(docs, results, check=False)) == 0
    assert bench_docs.run(_docs_args(docs, results, check=True)) == 0
    reliability, bench = (docs / "RELIABILITY.md").read_text(), (docs / "BENCHMARKS.md").read_text()
    assert "| idle | 0.500 |" in reliability
    # every section whose JSON is absent keeps its markers and says how to measure it
    assert "<!-- cells:begin -->\nNot yet measured: no docs/results/cells.json." in bench
    assert "<!-- cameras_4k:begin -->\nNot yet measured" in reliability


def test_figures_are_drawn_from_the_results_present(tmp_path):
    """--figures draws latency.png and sim_quality.png from their JSON (and nothing whose JSON is
    absent); pusht.png only once both Push-T state runs are there."""
    from streaming_flow_ros.bench import docs as bench_docs

    results = tmp_path / "results"
    results.mkdir()
    for name in ("latency.json", "sim_quality.json", "pusht_state_sfp.json"):
        shutil.copy(ROOT / "docs" / "results" / name, results / name)
    img = tmp_path / "img"
    # pusht.png needs both Push-T state runs: with one of them it is not drawn
    assert bench_docs.draw_figures(results, img) == [img / "latency.png", img / "sim_quality.png"]
    assert all((img / f).read_bytes()[:4] == b"\x89PNG" for f in ("latency.png", "sim_quality.png"))
    shutil.copy(ROOT / "docs" / "results" / "pusht_state_unets.json", results / "pusht_state_unets.json")
    assert bench_docs.draw_figures(results, img)[0] == img / "pusht.png"
    assert (img / "pusht.png").read_bytes()[:4] == b"\x89PNG"


def test_docs_refuse_a_document_without_its_markers(tmp_path):
    from streaming_flow_ros.bench import docs as bench_docs

    (tmp_path / "BENCHMARKS.md").write_text("# no markers\n")
    (tmp_path / "RELIABILITY.md").write_text((ROOT / "docs" / "RELIABILITY.md").read_text())
    with pytest.raises(ValueError, match="no <!-- latency:begin -->"):
        bench_docs.run(_docs_args(tmp_path, ROOT / "docs" / "results", check=True))
