"""The camera transport bench (bench/camera_transport.py, ROS side ros/camera_peers.py) in --quick mode:
the shipped Fast DDS profile (config/dds/fastdds_camera.xml), 640x480 rgb8 at 30 Hz for 2 s,
publisher and subscriber in their own processes, the subscriber with the node's SENSOR_QOS.
Behaviour only (frames arrive, the JSON has its fields); the measured rates are in
docs/RELIABILITY.md ("Cameras over DDS"), never asserted here: the machine is shared."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

from domain_coordinator import domain_id

from streaming_flow_ros.bench import camera_transport as ct

ROW_KEYS = {"setup", "size", "bytes", "published", "received", "lost", "delivered_fps", "delivery_ratio",
            "latency_ms", "max_gap_ms", "cpu_steal", "matched", "sizes_ok", "sub_qos", "pub_qos"}


def test_shipped_profile_is_a_default_participant_profile():
    root = ET.parse(ct.profile_path()).getroot()
    ns = {"d": "http://www.eprosima.com"}
    parts = root.findall(".//d:participant", ns)
    assert any(p.get("is_default_profile") == "true" for p in parts)
    kinds = {t.findtext("d:type", namespaces=ns) for t in root.findall(".//d:transport_descriptor", ns)}
    assert {"SHM", "UDPv4"} <= kinds
    assert int(root.findtext(".//d:segment_size", namespaces=ns)) >= 4 * 1280 * 720 * 3


def test_quick_mode_delivers_frames_with_the_shipped_profile(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ct.json"
    with domain_id() as did:
        monkeypatch.setenv("ROS_DOMAIN_ID", str(did))
        rc = ct.main(["--quick", "--json", str(out)])
    printed = capsys.readouterr().out
    print(printed)
    doc = json.loads(out.read_text())
    assert rc == 0, doc
    assert {"settings", "fastdds", "machine", "results"} <= set(doc)
    assert doc["settings"]["setups"] == [ct.SHIPPED] and doc["settings"]["sizes"] == [ct.QUICK_SIZE]
    assert doc["fastdds"]["libfastdds"] != "not found"
    steal = doc["machine"]["cpu_steal"]
    assert math.isnan(steal) or 0.0 <= steal <= 1.0
    (row,) = doc["results"]
    assert ROW_KEYS <= set(row), sorted(ROW_KEYS - set(row))
    assert "error" not in row
    assert row["setup"] == ct.SHIPPED and row["size"] == ct.QUICK_SIZE and row["sub_qos"] == "SENSOR_QOS"
    assert row["matched"] and row["published"] == 60
    assert row["received"] > 0 and row["sizes_ok"]  # frames arrive, whole
    assert row["latency_ms"]["n"] >= row["received"] and row["latency_ms"]["p50"] > 0
    assert 0 < row["delivery_ratio"] <= 1 and row["delivered_fps"] > 0
    assert "fps" in printed and "CPU steal" in printed
