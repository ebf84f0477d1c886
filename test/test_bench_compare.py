"""`sfp bench compare`: lining up two benchmark JSON documents."""

from __future__ import annotations

import json
import math

import pytest

from streaming_flow_ros.bench.compare import compare, flatten
from streaming_flow_ros.cli import main as sfp_main


def _latency(ttfa: float, ticks: float, rounds: int = 3) -> dict:
    return {"methods": {"sfp": {"ttfa_ms_p50": ttfa, "ttfa_ms_p99": 2 * ttfa, "chunks": 10, "params": {"total": 5}},
                        "dp_ddim": {"ttfa_ms_p50": 20.0, "ttfa_ms_p99": 30.0}},
            "node": {"methods": {"sfp": {"ticks_ratio": ticks, "obs_to_cmd_p50_ms": 8.0}}},
            "settings": {"rounds": rounds, "spec": "image"},
            "machine": {"cpu": "x", "load_avg_at_start": [ttfa, 0, 0]}, "versions": {"torch": "2.13.0"}}


def test_flatten_paths():
    doc = {"a": {"b": 1, "c": [1, {"d": 2}]}, "e": True}
    assert flatten(doc) == {"a.b": 1, "a.c": [1, {"d": 2}], "e": True}
    assert flatten(doc, lists=True) == {"a.b": 1, "a.c[0]": 1, "a.c[1].d": 2, "e": True}


def test_compare_headline_metrics_settings_and_filters():
    a, b = _latency(0.5, 0.999), _latency(1.0, 0.999, rounds=5)
    d = compare(a, b)
    rows = {p: (va, vb, diff, r) for p, va, vb, diff, r in d["rows"]}
    assert rows["methods.sfp.ttfa_ms_p50"] == (0.5, 1.0, 0.5, 2.0)
    assert rows["node.methods.sfp.ticks_ratio"][3] == 1.0
    assert "methods.sfp.chunks" not in rows and "methods.sfp.params.total" not in rows  # not headline metrics
    assert d["settings"] == [("settings.rounds", 3, 5)]
    assert d["machine"] is None  # only the load average differs
    # --min-change hides the unchanged rows; --match keeps only the matching paths
    assert {r[0] for r in compare(a, b, min_change=0.1)["rows"]} == {"methods.sfp.ttfa_ms_p50", "methods.sfp.ttfa_ms_p99"}
    assert [r[0] for r in compare(a, b, patterns=["methods.*.ttfa_ms_p99"])["rows"]] == \
        ["methods.sfp.ttfa_ms_p99", "methods.dp_ddim.ttfa_ms_p99"]
    # --all: every number, the settings' too
    assert {"methods.sfp.chunks", "settings.rounds"} <= {r[0] for r in compare(a, b, everything=True)["rows"]}
    assert compare(a, b, patterns=["settings.*"])["rows"] == []  # settings numbers only with --all
    # a metric on one side only, a zero and a NaN
    b["methods"]["fm_chunk"] = {"ttfa_ms_p50": 19.0}
    a["methods"]["dp_ddim"]["ttfa_ms_p50"], b["methods"]["dp_ddim"]["ttfa_ms_p50"] = 0.0, float("nan")
    d = compare(a, b, min_change=0.5)
    assert d["only_b"] == ["methods.fm_chunk.ttfa_ms_p50"] and d["only_a"] == []
    nan_row = [r for r in d["rows"] if r[0] == "methods.dp_ddim.ttfa_ms_p50"]
    assert len(nan_row) == 1 and math.isnan(nan_row[0][2])  # a NaN is never hidden
    b["methods"]["dp_ddim"]["ttfa_ms_p50"] = -2.0
    assert [r[4] for r in compare(a, b)["rows"] if r[0] == "methods.dp_ddim.ttfa_ms_p50"] == [-math.inf]
    b["machine"]["cpu"] = "y"
    assert compare(a, b)["machine"] == ({"cpu": "x"}, {"cpu": "y"})


def test_compare_unrelated_documents_is_an_error():
    with pytest.raises(ValueError, match="share no metric"):
        compare(_latency(0.5, 1.0), {"sfp": {"score_mean": 0.7}})


def test_cli(tmp_path, capsys):
    pa, pb, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "diff" / "d.json"
    pa.write_text(json.dumps(_latency(0.5, 0.999)))
    pb.write_text(json.dumps(_latency(0.75, 0.98)))
    assert sfp_main(["bench", "compare", str(pa), str(pb), "--min-change", "0.01", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("methods.sfp.ttfa_ms_p50"))
    assert line.split()[1:] == ["0.5", "0.75", "+0.25", "1.5"] and "methods.dp_ddim" not in text
    doc = json.loads(out.read_text())
    assert {r["metric"] for r in doc["rows"]} == {"methods.sfp.ttfa_ms_p50", "methods.sfp.ttfa_ms_p99",
                                                  "node.methods.sfp.ticks_ratio"}
    # a NaN metric is written as null (JSON has no NaN)
    b = _latency(0.75, float("nan"))
    pb.write_text(json.dumps(b))
    assert sfp_main(["bench", "compare", str(pa), str(pb), "--json", str(out)]) == 0
    capsys.readouterr()
    rows = {r["metric"]: r for r in json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))["rows"]}
    assert rows["node.methods.sfp.ticks_ratio"]["b"] is None and rows["node.methods.sfp.ticks_ratio"]["a"] == 0.999
    bad = tmp_path / "bad.json"
    for text, msg in (("{not json", "cannot read benchmark JSON"), ("[1, 2]", "is an object")):
        bad.write_text(text)
        assert sfp_main(["bench", "compare", str(pa), str(bad)]) == 2  # a clear error, no traceback
        assert msg in capsys.readouterr().err
    assert sfp_main(["bench", "compare", str(pa), str(pb), "--min-change", "-1"]) == 2
    assert "min-change" in capsys.readouterr().err
