"""The policy node's parameters: one validated object built from the flat ROS parameters. No
rclpy here, so presets and tests can validate parameter sets without a node.

Users write flat parameters (config/policy.yaml, config/robots/*.yaml, launch files); each flat
name has exactly one owner inside ``NodeParams`` (``GROUPS``)::

    NodeParams
      (own fields)  checkpoint, enabled, autostart, tick_source, tick_priority, sync_tolerance,
                    diagnostics_period, log_period                    the node itself
      loop          LoopConfig (policy/control.py): control_rate_hz, reanchor, reanchor_ticks,
                    max_obs_age, on_stale                             the per-tick decisions
      runtime       RuntimeConfig (policy/protocol.py): integrator ... device, and ``sampler``
                    (a ChunkRuntimeConfig when one is set)            the policy runtime
      output        OutputParams: command_mode, joints, gripper, lookahead, velocities
      limits        LimitParams: position_lower/upper, max_velocity   the safety filter

``control_rate_hz`` belongs to the loop; the runtime's copy is always set from it.
``NodeParams.from_mapping`` is the one place that turns the flat mapping into this structure;
``to_mapping`` is its inverse. The node declares every flat name as a ROS parameter (dynamic
typing), builds ``from_mapping`` at start (a ValueError keeps the node unconfigured) and
validates every ``set_parameters`` call the same way (rejected with the reason). Parameters in
``LIVE`` take effect at once; the rest at the next configure. config/policy.yaml documents each.

Units: rates Hz, times s, positions rad, velocities rad/s.
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from ..policy.control import LoopConfig
from ..policy.protocol import RuntimeConfig
from ..policy.safety import SafetyLimits
from ..spec import IOSpec

CommandMode = Literal["jtc", "forward", "none"]
COMMAND_MODES = ("jtc", "forward", "none")
REANCHOR_MODES = ("observation", "ticks", "horizon")
SAMPLERS = ("", "ddpm", "ddim", "euler", "rtc", "ensemble", "async")  # the last three: FM-chunk executors
STALE_MODES = ("hold", "silent")
GRIPPER_MODES = ("continuous", "binary")
GRIPPER_OUTPUTS = ("topic", "action")
TICK_SOURCES = ("auto", "thread", "timer")

# Applied immediately on set; everything else waits for the next configure.
LIVE = frozenset({"enabled", "max_obs_age", "on_stale", "log_period", "publish_velocities"})


@dataclass(frozen=True)
class OutputParams:
    """Where commands go besides ``~/action`` (ros/outputs.py): the controller's joints in its
    order, the gripper channel, the JointTrajectory lookahead, velocities on the point."""

    command_mode: CommandMode = "jtc"
    controller_joints: tuple[str, ...] = ()
    gripper_joints: tuple[str, ...] = ()
    gripper_mode: Literal["continuous", "binary"] = "continuous"
    gripper_hysteresis: float = 0.0  # binary: the band around the midpoint, a fraction of the travel
    # "topic": gripper_commands (Float64MultiArray); "action": control_msgs/action/GripperCommand
    # goals to the server ``gripper_action`` names, gated by policy/gripper.py's GripperGoalGate
    gripper_output: Literal["topic", "action"] = "topic"
    gripper_action: str = ""
    gripper_max_effort: float = 0.0
    gripper_goal_deadband: float = 0.02
    gripper_goal_rate_hz: float = 10.0
    lookahead_ticks: int = 2
    publish_velocities: bool = False


@dataclass(frozen=True)
class LimitParams:
    """The safety filter's limits, rad and rad/s; per-joint values bound to
    ``NodeParams.named_joints`` (see ``resolve_limits``)."""

    position_lower: tuple[float, ...] = ()
    position_upper: tuple[float, ...] = ()
    max_velocity: tuple[float, ...] = (1.0,)


# The runtime fields the node exposes (RuntimeConfig's backend and integrate_on stay at their
# defaults; control_rate_hz comes from the loop) and the chunk baselines' sampler.
RUNTIME_PARAMS = ("integrator", "anchor", "state_blend", "max_flow_time", "start_sigma", "start_noise", "sampler",
                  "seed", "threads", "torchscript", "skip_elapsed", "integration", "ticks_per_step", "device")
NODE_PARAMS = ("checkpoint", "enabled", "autostart", "tick_source", "tick_priority", "sync_tolerance",
               "diagnostics_period", "log_period")
# Owner ("" = NodeParams itself) -> the flat ROS parameters it holds, in config/policy.yaml's order.
GROUPS: dict[str, tuple[str, ...]] = {
    "": NODE_PARAMS,
    "loop": ("control_rate_hz", "reanchor", "reanchor_ticks", "max_obs_age", "on_stale"),
    "output": tuple(f.name for f in fields(OutputParams)),
    "limits": tuple(f.name for f in fields(LimitParams)),
    "runtime": RUNTIME_PARAMS,
}
OWNER: dict[str, str] = {name: owner for owner, names in GROUPS.items() for name in names}
# Node defaults that differ from RuntimeConfig's (a library caller gets one flow step per tick).
NODE_RUNTIME = RuntimeConfig(integration="auto")


def _with_sampler(base: RuntimeConfig, sampler: str) -> RuntimeConfig:
    """``base``, or with a chunk ``sampler`` ("" = none) a ChunkRuntimeConfig, which chooses
    DP-DDPM / DP-DDIM / FM-chunk sampling or an FM-chunk executor for a chunk-baseline checkpoint."""
    if not sampler:
        return base
    # torch (an optional dependency) only when a sampler is chosen
    from ..baselines.runtime import ChunkRuntimeConfig

    return ChunkRuntimeConfig.extend(base, sampler)


def _sampler_of(runtime: RuntimeConfig) -> str:
    """The ``sampler`` parameter of a runtime config ("" = none: not a ChunkRuntimeConfig)."""
    return getattr(runtime, "sampler", None) or ""


@dataclass(frozen=True)
class NodeParams:
    """Validated node parameters (see the module docstring for the structure and
    config/policy.yaml for the documentation of each)."""

    checkpoint: str = ""
    enabled: bool = False
    autostart: bool = False
    tick_source: Literal["auto", "thread", "timer"] = "auto"
    tick_priority: int = 0
    sync_tolerance: float = 0.05
    diagnostics_period: float = 1.0
    log_period: float = 10.0
    loop: LoopConfig = field(default_factory=LoopConfig)
    runtime: RuntimeConfig = field(default_factory=lambda: replace(NODE_RUNTIME))
    output: OutputParams = field(default_factory=OutputParams)
    limits: LimitParams = field(default_factory=LimitParams)

    def __post_init__(self) -> None:
        if self.runtime.control_rate_hz != self.loop.control_rate_hz:
            raise ValueError(f"runtime control_rate_hz {self.runtime.control_rate_hz} differs from the loop's "
                             f"{self.loop.control_rate_hz}: one control rate")
        _validate(self.flat())

    @property
    def period(self) -> float:
        """Control period, s."""
        return 1.0 / self.loop.control_rate_hz

    @property
    def named_joints(self) -> tuple[str, ...]:
        """The joints the per-joint lists are bound to: ``controller_joints`` then
        ``gripper_joints``."""
        return (*self.output.controller_joints, *self.output.gripper_joints)

    def per_joint(self, name: str) -> dict[str, float]:
        """A per-joint limit (``position_lower`` | ``position_upper`` | ``max_velocity``) as
        {joint name: value} ({} when unset; one max_velocity value applies to every joint and is
        returned under the key ``"*"``)."""
        values = getattr(self.limits, name)
        if name == "max_velocity" and len(values) == 1:
            return {"*": values[0]}
        return dict(zip(self.named_joints, values))

    def flat(self) -> dict[str, Any]:
        """{flat parameter name: value}, lists as tuples (``to_mapping`` for ROS values)."""
        out = {}
        for owner, names in GROUPS.items():
            part = getattr(self, owner) if owner else self
            out.update({n: _sampler_of(part) if n == "sampler" else getattr(part, n) for n in names})
        return out

    def to_mapping(self) -> dict[str, Any]:
        """Plain ROS-parameter values (tuples -> lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.flat().items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], strict: bool = True) -> NodeParams:
        """Build from flat ROS-parameter-like values (YAML/`get_parameters`), coercing ints to
        floats and None (an empty YAML list) to (); missing names keep their defaults. Unknown
        keys raise when ``strict``. Every value is validated before the parts are built, so a
        ValueError names the ROS parameter as the node's checks word it."""
        unknown = sorted(set(values) - set(OWNER))
        if strict and unknown:
            raise ValueError(f"unknown node parameters {unknown}")
        v = {**DEFAULTS, **{n: _coerce(n, values[n], DEFAULTS[n]) for n in OWNER if n in values}}
        _validate(v)

        def part(owner: str) -> dict[str, Any]:
            return {n: v[n] for n in GROUPS[owner] if n != "sampler"}

        runtime = replace(NODE_RUNTIME, control_rate_hz=v["control_rate_hz"], **part("runtime"))
        return cls(**part(""), loop=LoopConfig(**part("loop")), runtime=_with_sampler(runtime, v["sampler"]),
                   output=OutputParams(**part("output")), limits=LimitParams(**part("limits")))

    def with_changes(self, changes: Mapping[str, Any]) -> NodeParams:
        """A validated copy with ``changes`` (flat ROS-parameter values) applied."""
        return NodeParams.from_mapping({**self.to_mapping(), **changes})

    def with_live(self, other: NodeParams) -> NodeParams:
        """This copy with ``other``'s ``LIVE`` parameters (the node's parameters in effect after
        a set: live changes at once, the rest at the next configure)."""
        new = other.flat()
        return self.with_changes({n: new[n] for n in LIVE})


def _validate(v: Mapping[str, Any]) -> None:
    """The node's checks over the flat values (ValueError naming the parameter). The runtime and
    loop configs check their own fields again when built."""

    def in_range(name: str, lo: float, hi: float) -> None:
        if not (math.isfinite(v[name]) and lo <= v[name] <= hi):
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {v[name]}")

    in_range("control_rate_hz", 1.0, 2000.0)
    in_range("lookahead_ticks", 1, 100)
    in_range("tick_priority", 0, 99)
    in_range("reanchor_ticks", 1, 100000)
    in_range("max_obs_age", 1e-3, 60.0)
    in_range("sync_tolerance", 1e-4, 1.0)
    in_range("diagnostics_period", 0.01, 60.0)
    in_range("log_period", 0.0, 3600.0)
    for name, choices in (
        ("command_mode", COMMAND_MODES),
        ("reanchor", REANCHOR_MODES),
        ("on_stale", STALE_MODES),
        ("tick_source", TICK_SOURCES),
        ("gripper_mode", GRIPPER_MODES),
        ("gripper_output", GRIPPER_OUTPUTS),
    ):
        if v[name] not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}, got {v[name]!r}")
    ctrl, grip = v["controller_joints"], v["gripper_joints"]
    if len(set(ctrl)) != len(ctrl) or not all(ctrl):
        raise ValueError(f"controller_joints must be unique, non-empty names: {list(ctrl)}")
    lower, upper = v["position_lower"], v["position_upper"]
    if len(lower) != len(upper):
        raise ValueError(f"position_lower has {len(lower)} values, position_upper {len(upper)}")
    named = (*ctrl, *grip)
    if len(set(named)) != len(named) or not all(grip):
        raise ValueError(f"gripper_joints must be unique, non-empty names that are not controller_joints: "
                         f"{list(grip)}")
    if v["gripper_mode"] == "binary" and not grip:
        raise ValueError("gripper_mode binary needs gripper_joints")
    in_range("gripper_max_effort", 0.0, 1e4)
    in_range("gripper_hysteresis", 0.0, 0.9)
    in_range("gripper_goal_deadband", 0.0, 0.99)
    in_range("gripper_goal_rate_hz", 0.1, 100.0)
    if v["gripper_output"] == "action":
        if len(grip) != 1:
            raise ValueError(f"gripper_output action sends GripperCommand goals to one gripper joint; gripper_joints "
                             f"has {list(grip)}")
        if not str(v["gripper_action"]).strip():
            raise ValueError("gripper_output action needs gripper_action, the server's action name (e.g. "
                             "/robotiq_gripper_controller/gripper_cmd; `ros2 action list` shows it)")
    _check_per_joint(v, named)
    for lo, hi in zip(lower, upper):
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"position limits must be finite with lower < upper, got [{lo}, {hi}]")
    vmax = v["max_velocity"]
    if not vmax or not all(math.isfinite(x) and x > 0 for x in vmax):
        raise ValueError(f"max_velocity must be one or more finite values > 0 rad/s, got {list(vmax)}")
    if v["sampler"] not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {v['sampler']!r}")


def _check_per_joint(v: Mapping[str, Any], named: tuple[str, ...]) -> None:
    """Per-joint values are bound to joint names through ``named`` (``controller_joints`` +
    ``gripper_joints``): value k belongs to ``named[k]``, whatever order the checkpoint lists its
    joints in. A per-joint list without those names would bind by position to the checkpoint's
    order, which drivers do not share (UR publishes /joint_states alphabetically), so it is
    refused."""
    n = len(named)
    for name in ("position_lower", "position_upper"):
        values = v[name]
        if values and not n:
            raise ValueError(
                f"{name} gives per-joint limits but controller_joints is empty: set "
                "controller_joints to the joint names the values belong to (in the same order)"
            )
        if values and len(values) != n:
            raise ValueError(
                f"{name} has {len(values)} values for the {n} controller_joints + gripper_joints "
                f"{list(named)}"
            )
    if len(v["max_velocity"]) > 1 and len(v["max_velocity"]) != n:
        raise ValueError(
            f"max_velocity has {len(v['max_velocity'])} values: give one value for all joints "
            f"or one per controller_joints + gripper_joints entry ({n}: {list(named)})"
        )


DEFAULTS: dict[str, Any] = NodeParams().flat()  # flat name -> default (lists as tuples)


class ParameterTypeError(TypeError, ValueError):
    """A parameter value of the wrong type (a ValueError too, so one except clause catches all)."""


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterTypeError(f"{name} must be a bool, got {value!r}")
        return value
    if isinstance(default, int):
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not integral:
            raise ParameterTypeError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterTypeError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ParameterTypeError(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if value is None:
            return ()
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, array.array)):
            raise ParameterTypeError(f"{name} must be a list, got {value!r}")
        items = list(value)
        if name in ("controller_joints", "gripper_joints"):
            if not all(isinstance(v, str) for v in items):
                raise ParameterTypeError(f"{name} must be a list of strings, got {items!r}")
            return tuple(items)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            raise ParameterTypeError(f"{name} must be a list of numbers, got {items!r}")
        return tuple(float(v) for v in items)
    raise AssertionError(f"no coercion for {name}")  # internal: every field type is covered


def resolve_limits(params: NodeParams, spec: IOSpec) -> SafetyLimits:
    """Safety limits in the checkpoint's action order (``spec.action_names``): the node's
    position limits (bound to ``controller_joints`` names) intersected with the checkpoint's
    action bounds (bound to its own action names); unbounded where neither is set.
    ``max_velocity`` has one value (all joints) or one per controller joint.

    Every value is looked up by joint name, so a checkpoint whose joints are listed in another
    order than the controller's (``sfp dataset build`` takes the first /joint_states order,
    alphabetical on UR drivers) gets each limit on the joint it was written for.

    Raises ValueError naming the joints that do not match or an empty intersection.
    """
    names = tuple(spec.action_names)
    d = len(names)
    lower = np.full(d, -np.inf)
    upper = np.full(d, np.inf)
    ctrl = controller_joints(params, spec)  # validates that the names match the checkpoint's
    if params.limits.position_lower:
        lo, hi = params.per_joint("position_lower"), params.per_joint("position_upper")
        lower = np.maximum(lower, [lo[n] for n in names])
        upper = np.minimum(upper, [hi[n] for n in names])
    for bound, label in ((spec.action_lower, "action_lower"), (spec.action_upper, "action_upper")):
        if bound and len(bound) != d:
            raise ValueError(f"checkpoint {label} has {len(bound)} values for {d} joints {list(names)}")
    if spec.action_lower:
        lower = np.maximum(lower, np.asarray(spec.action_lower, np.float64))
    if spec.action_upper:
        upper = np.minimum(upper, np.asarray(spec.action_upper, np.float64))
    if not (lower < upper).all():
        bad = [n for n, lo_, hi_ in zip(names, lower, upper) if not lo_ < hi_]
        raise ValueError(
            f"position limits and checkpoint bounds do not overlap for joints {bad}: "
            f"[{lower.tolist()}, {upper.tolist()}] in checkpoint order {list(names)}"
        )
    vmap = params.per_joint("max_velocity")
    vel = np.array([vmap.get(n, vmap.get("*", np.nan)) for n in names], np.float64)
    assert np.isfinite(vel).all(), (vmap, names, ctrl)  # NodeParams validated the lengths
    return SafetyLimits.from_velocity(lower, upper, vel, params.loop.control_rate_hz)


def controller_joints(params: NodeParams, spec: IOSpec) -> tuple[str, ...]:
    """The arm controller's joint order: ``controller_joints`` if set, else the checkpoint's
    action names without ``gripper_joints``. With the gripper joints they must be exactly the
    checkpoint's action joints."""
    out = params.output
    grip = set(out.gripper_joints)
    joints = out.controller_joints or tuple(n for n in spec.action_names if n not in grip)
    if sorted((*joints, *out.gripper_joints)) != sorted(spec.action_names):
        raise ValueError(
            f"controller_joints {list(joints)} + gripper_joints {list(out.gripper_joints)} do not match the "
            f"checkpoint's action joints {list(spec.action_names)}"
        )
    return tuple(joints)


def check_binary_gripper(params: NodeParams, spec: IOSpec, limits: SafetyLimits) -> None:
    """``gripper_mode`` binary sends the gripper joints' upper (open) or lower (closed) limit, and
    ``gripper_output`` action measures its goal deadband in the gripper's travel, so each needs
    finite position limits (node or checkpoint); ValueError naming them otherwise."""
    out = params.output
    grip = [spec.action_names.index(n) for n in out.gripper_joints]
    finite = np.isfinite(np.r_[limits.lower[grip], limits.upper[grip]]).all()
    if out.gripper_mode == "binary" and not finite:
        raise ValueError(f"gripper_mode binary needs position limits for {list(out.gripper_joints)} "
                         "(open = upper, closed = lower)")
    if out.gripper_output == "action" and not finite:
        raise ValueError(f"gripper_output action needs position limits for {list(out.gripper_joints)} "
                         "(its goal deadband is a fraction of the travel)")
