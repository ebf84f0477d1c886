"""`sfp bench latency`: runs end to end and writes the documented JSON. No timing thresholds
(a shared CI machine is noisy): only that every number is there, finite and positive."""

import json
import math

import pytest
from _core_helpers import tiny_spec

from streaming_flow_ros.bench.common import format_table, percentiles_ms
from streaming_flow_ros.bench.latency import METHODS, render
from streaming_flow_ros.cli import main as sfp_main

KEYS = ("ttfa_ms_p50", "ttfa_ms_p99", "step_ms_p99", "ms_per_action")


def _check_methods(methods):
    assert set(methods) == set(METHODS)
    for name, row in methods.items():
        for k in (*KEYS, "step_ms_p50", "prepare_ms_p50", "ms_per_action_wall_p50", "ms_per_data_period_at_100hz"):
            assert math.isfinite(row[k]) and row[k] > 0, (name, k, row[k])
        assert row["chunks"] >= 1 and row["steps"] == row["chunks"] * row["action_horizon"]
        assert row["params"]["total"] == row["params"]["encoder"] + row["params"]["net"] > 0
        assert row["ttfa_ms_p50"] >= row["prepare_ms_p50"]
        assert all(math.isfinite(v) and v > 0 for v in row["x_sfp"].values())
    assert methods["sfp"]["x_sfp"]["ttfa_ms_p50"] == pytest.approx(1.0)


def test_quick_bench_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "lat.json"
    assert sfp_main(["bench", "latency", "--quick", "--rounds", "2", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"methods", "machine", "versions", "specs", "settings"} <= set(doc)
    _check_methods(doc["methods"])
    assert set(doc["specs"]) == {"state", "image"} and doc["primary_spec"] == "image"
    for res in doc["specs"].values():
        _check_methods(res["methods"])
    assert doc["specs"]["image"]["spec"]["cameras"] == ["camera 96x96x3"]
    assert doc["versions"]["torch"] and doc["versions"]["diffusers"] != "not installed"
    assert doc["machine"]["cpu_count"] >= 1 and doc["settings"]["torch_threads"] == 1
    text = capsys.readouterr().out
    assert "dp_ddpm" in text and "TTFA xSFP" in text
    assert doc["command"] == "sfp bench latency --quick --rounds 2" and 0 <= doc["cpu_steal"] < 1
    assert "| dp_ddpm |" in render(doc) and "Spec state (6 joints, no camera" in render(doc)
    # the documentation figure is drawn from this JSON; a missing input only skips its figure
    none = tmp_path / "none.json"
    assert sfp_main(["bench", "plot", "--latency", str(out), "--sim", str(none), "--pusht", str(none), "--pusht-pixels", str(none),
                     "--out", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img" / "latency.png").stat().st_size > 5000
    assert not (tmp_path / "img" / "sim_quality.png").exists()
    assert f"skip sim: no {none}" in capsys.readouterr().out


def test_bench_plot_rejects_wrong_or_missing_inputs(tmp_path, capsys):
    none = tmp_path / "none.json"
    assert sfp_main(["bench", "plot", "--latency", str(none), "--sim", str(none), "--pusht", str(none), "--pusht-pixels", str(none),
                     "--pusht-pixels-stress", str(none), "--out", str(tmp_path / "img")]) == 2
    assert "no input JSON found" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"foo": 1}')
    assert sfp_main(["bench", "plot", "--latency", str(wrong), "--out", str(tmp_path / "img")]) == 2
    assert "lacks ['methods']" in capsys.readouterr().err
    wrong.write_text("{not json")
    assert sfp_main(["bench", "plot", "--latency", str(wrong), "--out", str(tmp_path / "img")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bench_with_a_given_checkpoint(tmp_path):
    from streaming_flow_ros.baselines.config import FMChunkConfig
    from streaming_flow_ros.baselines.train import make_untrained_baseline_checkpoint
    from streaming_flow_ros.bench.latency import BenchSettings, run_latency

    ck = make_untrained_baseline_checkpoint(tmp_path / "fm.safetensors", tiny_spec(), FMChunkConfig(down_dims=(16, 32)))
    doc = run_latency(BenchSettings(rounds=1, round_budget_s=0.0, warmup=1), {"fm_chunk": ck})
    assert doc["primary_spec"] == "checkpoint" and doc["specs"]["checkpoint"]["given"] == ["fm_chunk"]
    _check_methods(doc["methods"])
    assert doc["methods"]["fm_chunk"]["params"]["net"] < doc["methods"]["dp_ddim"]["params"]["net"]


def test_docs_table_with_the_node_column():
    """`sfp bench docs` draws the latency section from this shape: the primary spec's rows with
    their node run, the other spec's TTFA ratios, the run's steal, load, niceness and command."""
    def row(ttfa, x):
        return {"params": {"total": 1_072_295}, "ttfa_ms_p50": ttfa, "ttfa_ms_p99": 2 * ttfa, "step_ms_p99": 0.41,
                "ms_per_action": ttfa / 8, "x_sfp": {"ttfa_ms_p50": x}}

    node = {"ticks_ratio": 0.9999, "period_err_p99_ms": 1.25, "obs_to_cmd_p50_ms": 8.4, "obs_to_cmd_p99_ms": 12.4,
            "cpu_steal": 0.001}
    spec = {"joints": 6, "cameras": ["camera 96x96x3"], "data_rate_hz": 10.0}
    doc = {"primary_spec": "image", "methods": {"sfp": row(0.92, 1.0), "dp_ddpm": row(346.0, 374.2)},
           "specs": {"image": {"spec": spec, "given": []},
                     "state": {"spec": {**spec, "cameras": []}, "given": [],
                               "methods": {"sfp": row(0.5, 1.0), "dp_ddim": row(19.0, 38.0)}}},
           "node": {"rate_hz": 100.0, "seconds": 10.0, "methods": {"sfp": node},
                    "camera": {"width": 320, "height": 240, "rate_hz": 30.0}, "joint_rate_hz": 100.0},
           "cpu_steal": 0.002, "command": "sfp bench latency --node --node-seconds 10",
           "machine": {"cpu_count": 2, "load_avg_at_start": [1.5, 1.2, 1.0], "load_avg_1_5_15": [1.6, 1.3, 1.0], "nice": 0},
           "settings": {"torch_threads": 1, "batch": 1, "rounds": 30, "round_budget_s": 0.1, "seconds": 61.2}}
    text = render(doc)
    assert "| sfp | 1.07 | 0.92 | 1.84 | 0.41 | 0.12 | 1.00 | 99.99 %, 1.25, 8.40 / 12.4, 0.1 % |" in text
    assert "| dp_ddpm | 1.07 | 346 | 692 | 0.41 | 43.2 | 374 |\n" in text + "\n"  # no node run: no node cell
    assert "Spec state (6 joints, no camera, data 10 Hz, untrained weights): TTFA ÷ SFP dp_ddim 38." in text
    assert "a 320x240 camera at 30 Hz and joint states at 100 Hz" in text
    assert "CPU steal over the rounds 0.2 %" in text and "niceness 0" in text
    assert text.endswith("Command: `sfp bench latency --node --node-seconds 10`.")


def test_common_helpers():
    p = percentiles_ms([0.001, 0.002, 0.003])
    assert p["p50"] == pytest.approx(2.0) and p["max"] == pytest.approx(3.0) and p["n"] == 3
    assert math.isnan(percentiles_ms([])["p50"])
    table = format_table(["a", "b"], [["x", 1.5], ["yy", float("nan")]])
    assert table.splitlines()[0].startswith("a") and "nan" in table


def test_node_comparison_runs_methods_through_the_node():
    from streaming_flow_ros.bench.latency import NODE_PARAMS, run_node_comparison

    node = run_node_comparison(seconds=1.0, methods=["sfp", "fm_chunk"])  # DDPM/DDIM: same code path, slower
    assert set(node["methods"]) == {"sfp", "fm_chunk"} and set(NODE_PARAMS) >= set(node["methods"])
    sfp = node["methods"]["sfp"]
    assert sfp["ticks"] > 0 and sfp["reanchors"] > 0 and sfp["obs_to_cmd_p50_ms"] > 0
    for r in node["methods"].values():
        assert {"ticks_ratio", "period_err_p99_ms", "obs_to_cmd_p50_ms", "obs_to_cmd_p99_ms"} <= set(r)
