"""ros/params.py: validation, coercion of ROS parameter values, limits, config/policy.yaml."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from streaming_flow_ros.ros.params import NodeParams, controller_joints, resolve_limits
from streaming_flow_ros.spec import IOSpec

ROOT = Path(__file__).resolve().parents[1]
SPEC = IOSpec(("a", "b"), ("a", "b"), (), 10.0, (-1.0, -2.0), (1.0, 2.0))


def test_defaults_valid_and_round_trip():
    p = NodeParams()
    assert p.enabled is False and p.output.command_mode == "jtc"
    assert NodeParams.from_mapping(p.to_mapping()) == p
    assert p.runtime.control_rate_hz == p.loop.control_rate_hz
    assert p.runtime.skip_elapsed is True  # latency compensation on by default
    assert p.runtime.integration == "auto"  # the node's default (RuntimeConfig's is "tick")
    off = NodeParams.from_mapping({"skip_elapsed": False, "sampler": "ddim"})
    assert off.runtime.skip_elapsed is False and off.runtime.sampler == "ddim"
    assert off.to_mapping()["sampler"] == "ddim" and NodeParams.from_mapping(off.to_mapping()) == off
    assert p.period == pytest.approx(0.01)


def test_coercion_from_ros_values():
    p = NodeParams.from_mapping({"control_rate_hz": 500, "max_velocity": [1, 2.5],
                                 "controller_joints": ["a", "b"], "lookahead_ticks": 3.0})
    assert p.loop.control_rate_hz == 500.0 and isinstance(p.loop.control_rate_hz, float)
    assert p.runtime.control_rate_hz == 500.0
    assert p.limits.max_velocity == (1.0, 2.5) and p.output.controller_joints == ("a", "b")
    assert p.output.lookahead_ticks == 3
    assert NodeParams.from_mapping({"controller_joints": None}).output.controller_joints == ()


@pytest.mark.parametrize(
    "values, match",
    [
        ({"control_rate_hz": 0.0}, "control_rate_hz"),
        ({"control_rate_hz": math.nan}, "control_rate_hz"),
        ({"command_mode": "position"}, "command_mode"),
        ({"reanchor": "sometimes"}, "reanchor"),
        ({"on_stale": "panic"}, "on_stale"),
        ({"lookahead_ticks": 0}, "lookahead_ticks"),
        ({"max_obs_age": -1.0}, "max_obs_age"),
        ({"max_velocity": []}, "max_velocity"),
        ({"max_velocity": [1.0, -1.0]}, "max_velocity"),
        ({"position_lower": [0.0], "position_upper": []}, "position_lower"),
        ({"controller_joints": ["a"], "position_lower": [1.0], "position_upper": [0.0]}, "lower < upper"),
        # per-joint values need the joint names they belong to (never bound by position alone)
        ({"position_lower": [0.0, 0.0], "position_upper": [1.0, 1.0]}, "controller_joints is empty"),
        ({"controller_joints": ["a", "b"], "position_lower": [0.0], "position_upper": [1.0]},
         "1 values for the 2 controller_joints"),
        ({"max_velocity": [1.0, 2.0]}, "one per controller_joints"),
        ({"controller_joints": ["a", "b", "c"], "max_velocity": [1.0, 2.0]}, "one per controller_joints"),
        ({"controller_joints": ["a", "a"]}, "controller_joints"),
        ({"integrator": "rk4"}, "integrator"),
        ({"state_blend": 2.0}, "state_blend"),
        ({"enabled": "yes"}, "enabled must be a bool"),
        ({"control_rate_hz": "fast"}, "must be a number"),
        ({"lookahead_ticks": 1.5}, "integer"),
        ({"max_velocity": "1.0"}, "list"),
        ({"controller_joints": [1, 2]}, "strings"),
        ({"no_such_param": 1}, "unknown node parameters"),
    ],
)
def test_invalid_values_raise_naming_the_field(values, match):
    with pytest.raises(ValueError, match=match):
        NodeParams.from_mapping(values)


def test_with_changes_validates():
    p = NodeParams()
    assert p.with_changes({"enabled": True}).enabled is True
    assert p.with_changes({"max_obs_age": 0.2}).loop.max_obs_age == 0.2
    with pytest.raises(ValueError):
        p.with_changes({"control_rate_hz": -5.0})


def test_resolve_limits_intersects_and_scales_velocity():
    p = NodeParams.from_mapping({"controller_joints": ["a", "b"], "position_lower": [-0.5, -3.0],
                                 "position_upper": [2.0, 1.0], "max_velocity": [1.0, 2.0],
                                 "control_rate_hz": 200.0})
    lim = resolve_limits(p, SPEC)
    np.testing.assert_allclose(lim.lower, [-0.5, -2.0])
    np.testing.assert_allclose(lim.upper, [1.0, 1.0])
    np.testing.assert_allclose(lim.max_step, [0.005, 0.01])
    unbounded = resolve_limits(NodeParams(), IOSpec(("a",), ("a",)))
    assert np.isinf(unbounded.lower).all() and unbounded.max_step.tolist() == [0.01]


def test_resolve_limits_binds_by_name_not_order():
    """The node's limits are written in controller order, the checkpoint's in its own: each value
    lands on the joint it names (the UR elbow got the pan's +-2 pi when this bound by position)."""
    p = NodeParams.from_mapping({"controller_joints": ["b", "a"], "position_lower": [-0.1, -0.5],
                                 "position_upper": [0.1, 0.5], "max_velocity": [3.0, 1.0],
                                 "control_rate_hz": 100.0})
    lim = resolve_limits(p, SPEC)  # SPEC lists ("a", "b")
    np.testing.assert_allclose(lim.lower, [-0.5, -0.1])
    np.testing.assert_allclose(lim.upper, [0.5, 0.1])
    np.testing.assert_allclose(lim.max_step, [0.01, 0.03])


def test_resolve_limits_errors():
    two = {"controller_joints": ["a", "b"]}
    with pytest.raises(ValueError, match="do not overlap for joints \\['a'\\]"):
        resolve_limits(NodeParams.from_mapping({**two, "position_lower": [1.5, 0.0],
                                                "position_upper": [3.0, 1.0]}), SPEC)
    with pytest.raises(ValueError, match="do not match"):
        resolve_limits(NodeParams.from_mapping({"controller_joints": ["a", "c"], "position_lower": [0.0, 0.0],
                                                "position_upper": [1.0, 1.0]}), SPEC)


def test_controller_joints_must_match_checkpoint():
    assert controller_joints(NodeParams(), SPEC) == ("a", "b")
    assert controller_joints(NodeParams.from_mapping({"controller_joints": ["b", "a"]}), SPEC) == ("b", "a")
    with pytest.raises(ValueError, match="do not match"):
        controller_joints(NodeParams.from_mapping({"controller_joints": ["a", "c"]}), SPEC)


def test_policy_yaml_documents_every_parameter_with_defaults():
    doc = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text())
    values = doc["/**"]["ros__parameters"]
    assert set(values) == set(NodeParams().to_mapping())
    assert NodeParams.from_mapping(values) == NodeParams()
    text = (ROOT / "config" / "policy.yaml").read_text()
    for name in values:  # a comment mentions or precedes every key
        assert f"{name}:" in text


def test_robot_presets_validate():
    presets = sorted((ROOT / "config" / "robots").glob("*.yaml"))
    assert {p.stem for p in presets} >= {"sim", "ur", "franka_fr3", "xarm7", "kinova_gen3", "so101"}
    for path in presets:
        doc = yaml.safe_load(path.read_text())
        p = NodeParams.from_mapping(doc["/**"]["ros__parameters"])
        n = len(p.output.controller_joints)
        assert n >= 3 and len(p.limits.position_lower) == n and len(p.limits.max_velocity) in (1, n), path.name
        assert all(v <= 2.5 for v in p.limits.max_velocity), f"{path.name}: streaming limits must be conservative"
        topics = doc["policy_launch_topics"]["ros__parameters"]
        assert set(topics) == {"joint_states", "image_raw", "joint_trajectory", "commands"}
        if p.output.command_mode == "forward":
            assert topics["commands"]
        spec = IOSpec(p.output.controller_joints, p.output.controller_joints)
        resolve_limits(p, spec)


PRESETS = sorted((ROOT / "config" / "robots").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
@pytest.mark.parametrize("order", ["reversed", "alphabetical", "rotated"])
def test_preset_limits_follow_joint_names_for_any_checkpoint_order(path, order):
    """Every preset against a checkpoint whose joints are listed in another order than the
    controller's: each joint gets exactly the preset's limit and speed for its name."""
    p = NodeParams.from_mapping(yaml.safe_load(path.read_text())["/**"]["ros__parameters"])
    ctrl, lim_p = p.output.controller_joints, p.limits
    names = {"reversed": ctrl[::-1], "alphabetical": tuple(sorted(ctrl)),
             "rotated": ctrl[1:] + ctrl[:1]}[order]
    lim = resolve_limits(p, IOSpec(names, names))
    vel = lim_p.max_velocity * len(ctrl) if len(lim_p.max_velocity) == 1 else lim_p.max_velocity
    for k, name in enumerate(names):
        c = ctrl.index(name)
        assert lim.lower[k] == lim_p.position_lower[c] and lim.upper[k] == lim_p.position_upper[c], (name, order)
        assert lim.max_step[k] == pytest.approx(vel[c] / p.loop.control_rate_hz), (name, order)
    assert controller_joints(p, IOSpec(names, names)) == ctrl


# A value other than the default for every flat parameter (valid on its own).
CHANGED = {
    "checkpoint": "x.safetensors", "enabled": True, "autostart": True, "tick_source": "timer", "tick_priority": 5,
    "sync_tolerance": 0.02, "diagnostics_period": 2.0, "log_period": 5.0,
    "control_rate_hz": 250.0, "reanchor": "ticks", "reanchor_ticks": 7, "max_obs_age": 0.2, "on_stale": "silent",
    "command_mode": "forward", "controller_joints": ("a", "b"), "gripper_joints": ("g",), "gripper_mode": "binary",
    "gripper_hysteresis": 0.3, "gripper_output": "action", "gripper_action": "/g/gripper_cmd", "gripper_max_effort": 20.0,
    "gripper_goal_deadband": 0.05, "gripper_goal_rate_hz": 5.0,
    "lookahead_ticks": 3, "publish_velocities": True,
    "position_lower": (-1.0, -1.0, 0.0), "position_upper": (1.0, 1.0, 0.1), "max_velocity": (2.0,),
    "integrator": "heun", "anchor": "state", "state_blend": 0.5, "max_flow_time": 0.5, "start_sigma": 0.1,
    "start_noise": "every", "sampler": "ddim", "seed": 3, "threads": 2, "torchscript": True, "skip_elapsed": False,
    "integration": "worker", "ticks_per_step": 4, "device": "cuda",
}
LIMITED = {"controller_joints": ["a", "b"], "gripper_joints": ["g"],
           "position_lower": [-2.0, -2.0, -0.1], "position_upper": [2.0, 2.0, 0.2]}
# What a changed value needs from the others to be valid (the reference keeps these too).
NEEDS = {"gripper_joints": {"controller_joints": ["a", "b"]}, "gripper_mode": {"gripper_joints": ["g"]},
         "gripper_output": {"gripper_joints": ["g"], "gripper_action": "/g/gripper_cmd"},
         "position_lower": LIMITED, "position_upper": LIMITED, "ticks_per_step": {"integration": "worker"}}


def test_every_flat_parameter_has_exactly_one_owner():
    """Each flat ROS parameter (the names users' YAML files use) is held by exactly one part of
    NodeParams, and setting it changes that part alone."""
    from streaming_flow_ros.ros.params import GROUPS, OWNER

    listed = [n for names in GROUPS.values() for n in names]
    assert len(listed) == len(set(listed)), "a parameter listed under two owners"
    assert set(listed) == set(NodeParams().to_mapping()) == set(CHANGED)
    parts = ("loop", "runtime", "output", "limits")
    base = NodeParams()
    for name, value in CHANGED.items():
        if name == "sampler" and importlib.util.find_spec("torch") is None:
            continue  # the chunk runtime config lives with the torch baselines
        others = NEEDS.get(name, {})
        ref = NodeParams.from_mapping(others)
        p = NodeParams.from_mapping({**others, name: value})
        assert p.flat()[name] == value and p != ref, name
        owner = OWNER[name]
        read = getattr(getattr(p, owner), name) if owner and name != "sampler" else p.flat()[name]
        assert read == value, name
        changed = {part for part in parts if getattr(p, part) != getattr(ref, part)}
        if name == "control_rate_hz":  # the loop's rate; the runtime's copy follows it
            assert changed == {"loop", "runtime"} and p.runtime.control_rate_hz == value
        else:
            assert changed == ({owner} if owner else set()), (name, changed)
        if not owner:
            assert getattr(p, name) == value
    assert base == NodeParams.from_mapping({})


def test_runtime_and_loop_configs_take_every_shared_field_by_name():
    from dataclasses import fields

    from streaming_flow_ros.policy.control import LoopConfig
    from streaming_flow_ros.policy.protocol import RuntimeConfig

    p = NodeParams.from_mapping({"reanchor": "ticks", "reanchor_ticks": 7, "max_obs_age": 0.2, "on_stale": "silent",
                                 "control_rate_hz": 250, "integrator": "heun", "skip_elapsed": False, "seed": 3})
    flat = p.flat()
    for cfg, cls in ((p.loop, LoopConfig), (p.runtime, RuntimeConfig)):
        shared = [f.name for f in fields(cls) if f.name in flat]
        assert len(shared) >= 5 and all(getattr(cfg, n) == flat[n] for n in shared), cls


def test_executor_samplers_reach_the_runtime_config():
    pytest.importorskip("torch")  # the chunk runtime config lives with the torch baselines
    for s in ("rtc", "ensemble", "async"):
        assert NodeParams.from_mapping({"sampler": s}).runtime.sampler == s
