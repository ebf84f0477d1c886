"""Bad checkpoints given to the node: truncated, corrupted, wrong format version, shapes that do
not match the configured joints/cameras, pickles. Every one must leave the node unconfigured
with a clear "configure failed: ..." reason (also on /diagnostics, level ERROR), with no
command publisher created and nothing published; a pickle is never unpickled. Hand cases plus
hypothesis over byte corruption (loader) and metadata mutations (node)."""

from __future__ import annotations

import copy
import json
import os
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import tally
from rclpy._rclpy_pybind11 import RCLError
from rclpy.lifecycle import TransitionCallbackReturn
from ros_harness import Peer, make_checkpoint, ros_context

from streaming_flow_ros.checkpoint import make_untrained_checkpoint, read_checkpoint
from streaming_flow_ros.policy.protocol import RuntimeConfig
from streaming_flow_ros.policy.streaming import load_policy
from streaming_flow_ros.ros.runner import NodeRunner, create_policy_node, make_executor
from streaming_flow_ros.spec import CameraSpec, IOSpec

PARAMS = {"controller_joints": ["j1", "j2", "j3"], "position_lower": [-1.0] * 3, "position_upper": [1.0] * 3, "diagnostics_period": 0.1,
          "log_period": 0.0, "enabled": True}
PROPS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                        HealthCheck.too_slow])
SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return Path(make_checkpoint(tmp_path_factory.mktemp("good") / "policy.safetensors"))


def split(path: Path) -> tuple[dict, dict, bytes]:
    """(safetensors header, sfp metadata doc, tensor bytes)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    return header, json.loads(header["__metadata__"]["sfp_checkpoint"]), raw[8 + n :]


def join(out: Path, header: dict, meta: str | None, body: bytes) -> Path:
    header = copy.deepcopy(header)
    if meta is None:
        header.pop("__metadata__", None)
    else:
        header["__metadata__"] = {"sfp_checkpoint": meta}
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    out.write_bytes(struct.pack("<Q", len(hb)) + hb + body)
    return out


class Evil:
    """Unpickling this creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hand_cases(good: Path, d: Path, marker: Path) -> dict[str, tuple[Path, str, dict]]:
    """name -> (file, expected text in the reason, extra node parameters)."""
    raw = good.read_bytes()
    header, doc, body = split(good)

    def file(name: str, data: bytes) -> Path:
        (d / name).write_bytes(data)
        return d / name

    def mutated(name: str, edit) -> Path:
        m = copy.deepcopy(doc)
        edit(m)
        return join(d / name, header, json.dumps(m), body)

    def more_joints(m):  # a 4-joint checkpoint (metadata only; weights then mismatch too)
        m["spec"]["state_names"] = m["spec"]["action_names"] = ["j1", "j2", "j3", "j4"]
        m["spec"]["action_lower"].append(-1.0)
        m["spec"]["action_upper"].append(1.0)
        for nm in m["normalizers"].values():
            nm["center"].append(0.0)
            nm["scale"].append(1.0)

    four = d / "four_joints.safetensors"
    make_untrained_checkpoint(four, IOSpec(("j1", "j2", "j3", "j4"), ("j1", "j2", "j3", "j4"),
                                           (CameraSpec("cam", 32, 32, 3),), 10.0))
    other = d / "other_names.safetensors"
    make_untrained_checkpoint(other, IOSpec(("a", "b", "c"), ("a", "b", "c"), (CameraSpec("cam", 32, 32, 3),), 10.0))
    far = d / "far_bounds.safetensors"
    make_untrained_checkpoint(far, IOSpec(("j1", "j2", "j3"), ("j1", "j2", "j3"), (CameraSpec("cam", 32, 32, 3),),
                                          10.0, (2.0, 2.0, 2.0), (3.0, 3.0, 3.0)))
    torch.save({"w": torch.zeros(2)}, d / "torch_save.pt")
    weights_nan = bytearray(raw)
    weights_nan[-64:] = b"\xff" * 64  # float32 0xffffffff = NaN in the last weights
    return {
        "missing file": (d / "nope.safetensors", "does not exist", {}),
        "empty file": (file("empty.safetensors", b""), "configure failed", {}),
        "truncated 8 bytes": (file("t8.safetensors", raw[:8]), "truncated or corrupt", {}),
        "truncated header": (file("t100.safetensors", raw[:100]), "configure failed", {}),
        "truncated half": (file("thalf.safetensors", raw[: len(raw) // 2]), "truncated or corrupt", {}),
        "last byte missing": (file("tlast.safetensors", raw[:-1]), "truncated or corrupt", {}),
        "garbage": (file("garbage.safetensors", bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8))),
                    "configure failed", {}),
        "corrupt header bytes": (file("hdr.safetensors", raw[:20] + b"\xff" * 40 + raw[60:]), "configure failed", {}),
        "NaN weights": (file("nan.safetensors", bytes(weights_nan)), "non-finite", {}),
        "json text": (file("text.safetensors", b'{"format": "sfp-checkpoint"}'), "configure failed", {}),
        "pickle payload": (file("evil.safetensors", pickle.dumps(Evil(marker))), "pickle", {}),
        "pickle .pt": (file("evil.pt", pickle.dumps(Evil(marker))), "pickle", {}),
        "torch.save zip": (d / "torch_save.pt", "pickle", {}),
        "no sfp metadata": (join(d / "nometa.safetensors", header, None, body), "metadata", {}),
        "metadata not JSON": (join(d / "notjson.safetensors", header, "{nope", body), "JSON", {}),
        "metadata a list": (join(d / "list.safetensors", header, "[1, 2]", body), "configure failed", {}),
        "wrong version 99": (mutated("v99.safetensors", lambda m: m.update(version=99)), "version 99", {}),
        "wrong version str": (mutated("vstr.safetensors", lambda m: m.update(version="1")), "version", {}),
        "wrong format": (mutated("fmt.safetensors", lambda m: m.update(format="other")), "format", {}),
        "unknown kind": (mutated("kind.safetensors", lambda m: m.update(kind="mystery")), "kind", {}),
        "normalizers a list": (mutated("norml.safetensors", lambda m: m.update(normalizers=[])), "configure failed", {}),
        "spec not a mapping": (mutated("spec5.safetensors", lambda m: m.update(spec=5)), "spec", {}),
        "hidden size mismatch": (mutated("hidden.safetensors", lambda m: m["model"].update(hidden=32)), "shape", {}),
        "4 joints in metadata, 3 in weights": (mutated("meta4.safetensors", more_joints), "do not match", {}),
        "2 cameras in metadata, 1 in weights": (mutated("cam2.safetensors", lambda m: m["spec"]["cameras"].append(
            dict(m["spec"]["cameras"][0], name="cam2"))), "do not match", {}),
        "mono camera, RGB weights": (mutated("mono.safetensors", lambda m: m["spec"]["cameras"][0].update(channels=1)),
                                     "do not match", {}),
        "4-joint checkpoint, 3 limits": (four, "do not match", {}),
        "joint names not the controller's": (other, "do not match", {"position_lower": [], "position_upper": []}),
        "bounds do not overlap the limits": (far, "do not overlap", {}),
    }


def configure_fails(ctx, path: Path, extra: dict, match: str, name: str = "policy_node", spin: bool = False,
                    peer: Peer | None = None) -> None:
    node = create_policy_node(ctx, {**PARAMS, **extra, "checkpoint": str(path)}, node_name=name)
    runner = NodeRunner(node, make_executor("events", ctx)) if spin else None
    try:
        assert node.trigger_configure() != SUCCESS, f"{path} configured"
        assert node.lifecycle_state == "unconfigured" and node.policy is None
        reason = node.status_reason
        assert reason.startswith("configure failed") and match in reason, reason
        try:  # cannot be activated either (Kilted returns ERROR; Jazzy's rclpy raises RCLError)
            assert node.trigger_activate() != SUCCESS
        except RCLError:
            pass
        topics = [f"/{name}/action", "/joint_trajectory", "/commands"]
        assert all(node.count_publishers(t) == 0 for t in topics), "no command publisher exists"
        if peer is not None:  # /diagnostics says why, at level ERROR
            t0 = time.monotonic()
            status = peer.wait_for(peer.diagnostics, 1, since=t0)[-1].status[0]
            assert status.level == status.ERROR and "configure failed" in status.message
    finally:
        if runner is not None:
            runner.stop()
        else:
            node.destroy_node()


def test_hand_cases_leave_the_node_unconfigured(good, tmp_path):
    marker = tmp_path / "UNPICKLED"
    cases = hand_cases(good, tmp_path, marker)
    with ros_context() as ctx:
        peer = Peer(ctx)
        peer.feeding.clear()  # no inputs needed; the peer only listens
        try:
            for i, (name, (path, match, extra)) in enumerate(cases.items()):
                tally("checkpoints")
                configure_fails(ctx, path, extra, match, spin=i < 4, peer=peer if i < 4 else None)
            time.sleep(0.2)
            assert peer.take(peer.actions) == [] and peer.take(peer.trajectories) == [] and peer.take(peer.commands) == []
        finally:
            peer.close()
    assert not marker.exists(), "a pickle was unpickled"


@pytest.mark.parametrize("meta", ['[1, 2]', "normalizers-list"])
def test_loader_raises_value_error_on_structurally_wrong_metadata(good, tmp_path, meta):
    header, doc, body = split(good)
    if meta == "normalizers-list":
        doc["normalizers"] = []
        meta = json.dumps(doc)
    with pytest.raises(ValueError):
        read_checkpoint(join(tmp_path / "x.safetensors", header, meta, body))


# ---- hypothesis ----------------------------------------------------------------------------------
@settings(PROPS, max_examples=120)
@given(st.data())
def test_byte_corruption_is_a_value_error_or_a_sane_policy(good, tmp_path_factory, data):
    """Truncate and/or overwrite random bytes: the loader raises ValueError, or what it loads
    steps to finite actions (corrupted weights that stay finite are indistinguishable from
    training; non-finite ones are rejected)."""
    tally("checkpoints")
    raw = bytearray(good.read_bytes())
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(raw))))
    for _ in range(data.draw(st.integers(0 if cut is not None else 1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos : pos + 8] = data.draw(st.binary(min_size=1, max_size=8))
    if cut is not None:
        raw = raw[:cut]
    path = tmp_path_factory.mktemp("corrupt") / "c.safetensors"
    path.write_bytes(bytes(raw))
    try:
        policy = load_policy(path, RuntimeConfig())
    except ValueError:
        return
    policy.reset(np.zeros(policy.spec.action_dim))
    assert np.isfinite(policy.step().action).all()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=4),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=4)


@st.composite
def mutated_meta(draw, doc: dict) -> str:
    """The metadata with one random subtree replaced by a random JSON value (or deleted)."""
    doc = copy.deepcopy(doc)
    parent, key, node = None, None, doc
    for _ in range(draw(st.integers(1, 4))):
        if isinstance(node, dict) and node:
            k = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            k = draw(st.integers(0, len(node) - 1))
        else:
            break
        parent, key, node = node, k, node[k]
    if parent is not None:
        if isinstance(parent, dict) and draw(st.integers(0, 4)) == 0:
            del parent[key]
        else:
            parent[key] = draw(json_values)
    return json.dumps(doc)


@pytest.fixture(scope="module")
def ctx():
    with ros_context() as c:
        yield c


@settings(PROPS, max_examples=60)
@given(st.data())
def test_mutated_metadata_never_half_configures_the_node(good, ctx, tmp_path_factory, data):
    tally("checkpoints")
    header, doc, body = split(good)
    path = join(tmp_path_factory.mktemp("meta") / "m.safetensors", header, data.draw(mutated_meta(doc)), body)
    node = create_policy_node(ctx, {**PARAMS, "checkpoint": str(path)})
    try:
        if node.trigger_configure() == SUCCESS:  # a harmless change (e.g. training info)
            assert node.policy is not None and node.lifecycle_state == "inactive"
        else:
            assert node.lifecycle_state == "unconfigured" and node.policy is None
            assert node.status_reason.startswith("configure failed"), node.status_reason
            assert node.count_publishers("/policy_node/action") == 0
    finally:
        node.destroy_node()
