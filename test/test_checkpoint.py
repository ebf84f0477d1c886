"""Checkpoint round trip and loud rejection of corrupt or mismatched files."""

import json
import pickle
import struct

import numpy as np
import pytest
import torch
from _core_helpers import tiny_spec

from streaming_flow_ros.checkpoint import (
    check_compatible,
    load_model,
    make_untrained_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from streaming_flow_ros.cli import main as sfp_main


@pytest.fixture
def ckpt(tmp_path):
    return make_untrained_checkpoint(tmp_path / "p.safetensors", tiny_spec(), seed=1)


def _rewrite_meta(path, out, edit):
    """Rewrite the JSON header of a safetensors file through ``edit(doc)``."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    doc = json.loads(header["__metadata__"]["sfp_checkpoint"])
    edit(doc)
    header["__metadata__"]["sfp_checkpoint"] = json.dumps(doc)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    out.write_bytes(struct.pack("<Q", len(hb)) + hb + raw[8 + n :])
    return out


def test_round_trip_same_outputs(ckpt, tmp_path):
    model, c = load_model(ckpt)
    assert c.spec == tiny_spec() and c.kind == "sfp"
    x, t = torch.randn(3, 3), torch.rand(3)
    cond = torch.randn(3, model.encoder.cond_dim)
    out = save_checkpoint(tmp_path / "again.safetensors", model, c.spec, c.state_norm, c.action_norm, {"a": 1})
    model2, c2 = load_model(out)
    with torch.no_grad():
        assert torch.equal(model.velocity(x, t, cond), model2.velocity(x, t, cond))
    assert c2.train == {"a": 1}
    assert np.allclose(c2.action_norm.scale, c.action_norm.scale)


def test_truncated_file_is_rejected(ckpt, tmp_path):
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_checkpoint(bad)


def test_corrupt_header_is_rejected(ckpt, tmp_path):
    raw = bytearray(ckpt.read_bytes())
    raw[10:20] = b"\xff" * 10
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError):
        read_checkpoint(bad)


def test_pickle_is_never_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="pickle"):
        read_checkpoint(p)
    torch.save({"w": torch.zeros(1)}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match="pickle"):
        read_checkpoint(tmp_path / "t.pt")


def test_wrong_version_and_kind(ckpt, tmp_path):
    v = _rewrite_meta(ckpt, tmp_path / "v.safetensors", lambda d: d.update(version=99))
    with pytest.raises(ValueError, match="version 99"):
        read_checkpoint(v)
    k = _rewrite_meta(ckpt, tmp_path / "k.safetensors", lambda d: d.update(kind="mystery"))
    with pytest.raises(ValueError, match="unknown model kind"):
        read_checkpoint(k)


def test_metadata_that_does_not_match_weights(ckpt, tmp_path):
    def more_joints(d):
        d["spec"]["state_names"].append("j4")
        d["spec"]["action_names"].append("j4")
        d["spec"]["action_lower"].append(-1.0)
        d["spec"]["action_upper"].append(1.0)
        for n in d["normalizers"].values():
            n["center"].append(0.0)
            n["scale"].append(1.0)

    bad = _rewrite_meta(ckpt, tmp_path / "j.safetensors", more_joints)
    with pytest.raises(ValueError, match="do not match"):
        load_model(bad)
    bad = _rewrite_meta(ckpt, tmp_path / "h.safetensors", lambda d: d["model"].update(hidden=32))
    with pytest.raises(ValueError, match="shape"):
        load_model(bad)
    bad = _rewrite_meta(ckpt, tmp_path / "n.safetensors", lambda d: d["normalizers"]["action"].update(scale=[1.0]))
    with pytest.raises(ValueError, match="normaliser"):
        read_checkpoint(bad)


def test_compatibility_check():
    spec = tiny_spec()
    check_compatible(spec, ["j3", "j1", "j2", "extra"], ["camera"])
    with pytest.raises(ValueError, match="j3"):
        check_compatible(spec, ["j1", "j2"])
    with pytest.raises(ValueError, match="camera"):
        check_compatible(spec, None, ["wrist"])


def test_sfp_info_prints_metadata(ckpt, capsys):
    assert sfp_main(["info", str(ckpt)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "sfp-checkpoint" and doc["parameters"] > 0
    assert doc["spec"]["action_names"] == ["j1", "j2", "j3"]


def test_sfp_info_bad_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "x.safetensors").write_bytes(b"nope")
    assert sfp_main(["info", str(tmp_path / "x.safetensors")]) == 2
    assert "sfp: error" in capsys.readouterr().err


def test_header_length_starting_with_0x80_is_not_taken_for_a_pickle(ckpt, tmp_path):
    """Regression: the u64 header length of a valid file can start with byte 0x80."""
    raw = ckpt.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = raw[8 : 8 + n].rstrip(b" ")
    pad = (0x80 - (len(header) % 256)) % 256  # make the length's low byte 0x80
    hb = header + b" " * pad
    out = tmp_path / "x80.safetensors"
    out.write_bytes(struct.pack("<Q", len(hb)) + hb + raw[8 + n :])
    assert out.read_bytes()[0] == 0x80
    assert read_checkpoint(out).kind == "sfp"


def test_input_cond_default_and_checkpoints_without_the_key(ckpt, tmp_path):
    """New models condition the velocity net's input layer; a checkpoint written before the
    option (no ``input_cond`` key) loads as the net it was, and a header that flips the flag
    under the stored weights is refused, not silently half-loaded."""
    from streaming_flow_ros.nets.model import ModelConfig

    assert ModelConfig().input_cond is True and ModelConfig.from_dict({}).input_cond is True
    assert ModelConfig.from_checkpoint_dict({}).input_cond is False
    with pytest.raises(ValueError, match="input_cond"):
        ModelConfig.from_dict({"input_cond": "yes"})
    model, _ = load_model(ckpt)
    assert model.config.input_cond is True and model.velocity.input_cond
    flipped = _rewrite_meta(ckpt, tmp_path / "f.safetensors", lambda d: d["model"].update(input_cond=False))
    with pytest.raises(ValueError, match="do not match|unexpected|missing"):
        load_model(flipped)
    legacy = _rewrite_meta(ckpt, tmp_path / "l.safetensors", lambda d: d["model"].pop("input_cond"))
    with pytest.raises(ValueError, match="do not match|unexpected|missing"):
        load_model(legacy)  # read as input_cond False, and these weights have the input part


def test_shipped_default_policy_loads_as_written():
    """The shipped checkpoint predates input_cond: it loads without it, numpy == torch."""
    from pathlib import Path

    import streaming_flow_ros
    from streaming_flow_ros.policy.fast_velocity import NumpyVelocity

    model, _ = load_model(Path(streaming_flow_ros.__file__).parent / "assets" / "default_policy.safetensors")
    vel = model.velocity
    assert model.config.input_cond is False and not hasattr(vel, "inp_t") and vel.cache_dim == vel.film_dim
    cache = vel.precompute(torch.randn(1, vel.cond_dim))
    x = torch.randn(1, vel.x_dim)
    with torch.no_grad():
        ref = vel.forward_cached(x, torch.tensor([0.25]), cache)[0].numpy()
    got = NumpyVelocity(vel)(x[0].numpy(), 0.25, NumpyVelocity.cache_from_torch(cache, vel.film_dim))
    assert np.allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_half_precision_copy_is_half_the_size_and_loads_as_float32(ckpt, tmp_path, capsys):
    """`sfp compact`: float16 storage, float32 model, outputs within float16 rounding."""
    out = tmp_path / "half.safetensors"
    assert sfp_main(["compact", str(ckpt), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.stat().st_size < 0.6 * ckpt.stat().st_size
    assert all(v.dtype == torch.float16 for v in read_checkpoint(out).tensors.values() if v.is_floating_point())
    model, c = load_model(ckpt)
    half, ch = load_model(out)
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert ch.metadata() == {**c.metadata()}
    x, t = torch.randn(3, 3), torch.rand(3)
    cond = torch.randn(3, model.encoder.cond_dim)
    with torch.no_grad():
        a, b = model.velocity(x, t, cond), half.velocity(x, t, cond)
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=1e-2, rtol=1e-2)


def test_shipped_cell_policies_load_on_their_presets_joints():
    """Every assets/<robot>_<task>.safetensors (`sfp eval cell` / `sfp demo` without
    --checkpoint) loads without unpickling and acts on its robot preset's joints plus the
    gripper, in order, with the cell's two cameras."""
    from streaming_flow_ros.apps.eval_cell import ASSETS, shipped_checkpoint
    from streaming_flow_ros.cells.robots import robot_spec
    from streaming_flow_ros.presets import load_preset

    shipped = sorted(p.stem for p in ASSETS.glob("*_*.safetensors") if p.stem != "default_policy")
    assert {"panda_lift", "panda_place_either", "ur5e_lift"} <= set(shipped)
    for stem in shipped:
        robot, task = stem.split("_", 1)
        model, ckpt = load_model(shipped_checkpoint(robot, task))
        preset = load_preset(robot_spec(robot).preset, gripper=True)
        assert list(ckpt.spec.action_names) == [*preset["controller_joints"], *preset["gripper_joints"]], stem
        assert [c.name for c in ckpt.spec.cameras] == ["scene", "wrist"], stem
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters()), stem
    with pytest.raises(ValueError, match="no shipped policy for ur5e pick_either"):
        shipped_checkpoint("ur5e", "pick_either")
