"""The policy node's parameters: one self-validating dataclass. No rclpy here, so presets and
tests can validate parameter sets without a node.

The node declares every field as a ROS parameter (same name, dynamic typing), builds
``NodeParams.from_mapping`` at start (a ValueError keeps the node unconfigured) and validates
every ``set_parameters`` call the same way (rejected with the reason). Fields in ``LIVE`` take
effect at once; the rest at the next configure. config/policy.yaml documents each field.

Units: rates Hz, times s, positions rad, velocities rad/s.
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
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
TICK_SOURCES = ("auto", "thread", "timer")

# Applied immediately on set; everything else waits for the next configure.
LIVE = frozenset({"enabled", "max_obs_age", "on_stale", "log_period", "publish_velocities"})


@dataclass(frozen=True)
class NodeParams:
    """Validated node parameters (see config/policy.yaml for the documentation of each)."""

    checkpoint: str = ""
    control_rate_hz: float = 100.0
    tick_source: Literal["auto", "thread", "timer"] = "auto"
    tick_priority: int = 0
    command_mode: CommandMode = "jtc"
    enabled: bool = False
    autostart: bool = False
    controller_joints: tuple[str, ...] = ()
    gripper_joints: tuple[str, ...] = ()
    gripper_mode: Literal["continuous", "binary"] = "continuous"
    lookahead_ticks: int = 2
    publish_velocities: bool = False
    position_lower: tuple[float, ...] = ()
    position_upper: tuple[float, ...] = ()
    max_velocity: tuple[float, ...] = (1.0,)
    reanchor: Literal["observation", "ticks", "horizon"] = "horizon"
    reanchor_ticks: int = 10
    max_obs_age: float = 0.5
    sync_tolerance: float = 0.05
    on_stale: Literal["hold", "silent"] = "hold"
    integrator: Literal["euler", "midpoint", "heun"] = "euler"
    anchor: Literal["action", "state"] = "action"
    state_blend: float = 0.0
    max_flow_time: float = 1.0
    start_sigma: float = 0.0
    start_noise: Literal["first", "every"] = "first"
    sampler: str = ""  # chunk baselines only: "" (the kind's default) | ddpm | ddim | euler | rtc | ensemble | async
    seed: int = 0
    threads: int = 1
    torchscript: bool = False
    skip_elapsed: bool = True
    integration: Literal["tick", "worker", "auto"] = "auto"
    ticks_per_step: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    diagnostics_period: float = 1.0
    log_period: float = 10.0

    def __post_init__(self) -> None:
        def in_range(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")

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
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        if len(set(self.controller_joints)) != len(self.controller_joints) or not all(
            self.controller_joints
        ):
            raise ValueError(f"controller_joints must be unique, non-empty names: {list(self.controller_joints)}")
        if len(self.position_lower) != len(self.position_upper):
            raise ValueError(
                f"position_lower has {len(self.position_lower)} values, position_upper "
                f"{len(self.position_upper)}"
            )
        named = (*self.controller_joints, *self.gripper_joints)
        if len(set(named)) != len(named) or not all(self.gripper_joints):
            raise ValueError(f"gripper_joints must be unique, non-empty names that are not controller_joints: "
                             f"{list(self.gripper_joints)}")
        if self.gripper_mode == "binary" and not self.gripper_joints:
            raise ValueError("gripper_mode binary needs gripper_joints")
        self._check_per_joint()
        for lo, hi in zip(self.position_lower, self.position_upper):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"position limits must be finite with lower < upper, got [{lo}, {hi}]")
        if not self.max_velocity or not all(math.isfinite(v) and v > 0 for v in self.max_velocity):
            raise ValueError(f"max_velocity must be one or more finite values > 0 rad/s, got {list(self.max_velocity)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}")
        self.runtime_config()  # RuntimeConfig validates the pass-through fields

    @property
    def named_joints(self) -> tuple[str, ...]:
        """The joints the per-joint lists are bound to: ``controller_joints`` then
        ``gripper_joints``."""
        return (*self.controller_joints, *self.gripper_joints)

    def _check_per_joint(self) -> None:
        """Per-joint values are bound to joint names through ``named_joints``
        (``controller_joints`` + ``gripper_joints``): value k belongs to ``named_joints[k]``,
        whatever order the checkpoint lists its joints in. A per-joint list without those names
        would bind by position to the checkpoint's order, which drivers do not share (UR
        publishes /joint_states alphabetically), so it is refused."""
        n = len(self.named_joints)
        for name in ("position_lower", "position_upper"):
            values = getattr(self, name)
            if values and not n:
                raise ValueError(
                    f"{name} gives per-joint limits but controller_joints is empty: set "
                    "controller_joints to the joint names the values belong to (in the same order)"
                )
            if values and len(values) != n:
                raise ValueError(
                    f"{name} has {len(values)} values for the {n} controller_joints + gripper_joints "
                    f"{list(self.named_joints)}"
                )
        if len(self.max_velocity) > 1 and len(self.max_velocity) != n:
            raise ValueError(
                f"max_velocity has {len(self.max_velocity)} values: give one value for all joints "
                f"or one per controller_joints + gripper_joints entry ({n}: {list(self.named_joints)})"
            )

    def per_joint(self, name: str) -> dict[str, float]:
        """A per-joint parameter as {joint name: value} ({} when unset; one max_velocity value
        applies to every joint and is returned under the key ``"*"``)."""
        values = getattr(self, name)
        if name == "max_velocity" and len(values) == 1:
            return {"*": values[0]}
        return dict(zip(self.named_joints, values))

    def runtime_config(self) -> RuntimeConfig:
        """The policy runtime's deployment config (a ChunkRuntimeConfig when ``sampler`` is set,
        which chooses DP-DDPM / DP-DDIM / FM-chunk sampling for a chunk-baseline checkpoint)."""
        base = RuntimeConfig(**self._fields_of(RuntimeConfig))
        if not self.sampler:
            return base
        # torch only when a sampler is chosen
        from ..baselines.runtime import ChunkRuntimeConfig

        return ChunkRuntimeConfig.extend(base, self.sampler)

    def loop_config(self) -> LoopConfig:
        """The control loop's config (policy/control.py): the fields of the same names."""
        return LoopConfig(**self._fields_of(LoopConfig))

    def _fields_of(self, cls) -> dict[str, Any]:
        """This object's values for the fields ``cls`` shares with it, by name (no hand copy:
        a field added to both flows through; one added only to ``cls`` keeps its default)."""
        return {f.name: getattr(self, f.name) for f in fields(cls) if f.name in _NAMES}

    @property
    def period(self) -> float:
        """Control period, s."""
        return 1.0 / self.control_rate_hz

    def to_mapping(self) -> dict[str, Any]:
        """Plain ROS-parameter values (tuples -> lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], strict: bool = True) -> NodeParams:
        """Build from ROS-parameter-like values (YAML/`get_parameters`), coercing ints to floats
        and None (an empty YAML list) to (). Unknown keys raise when ``strict``."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if strict and unknown:
            raise ValueError(f"unknown node parameters {unknown}")
        kwargs = {n: _coerce(n, values[n], f.default) for n, f in known.items() if n in values}
        return cls(**kwargs)

    def with_changes(self, changes: Mapping[str, Any]) -> NodeParams:
        """A validated copy with ``changes`` (ROS-parameter values) applied."""
        merged = self.to_mapping()
        merged.update(changes)
        return NodeParams.from_mapping(merged)


_NAMES = frozenset(f.name for f in fields(NodeParams))


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
    if params.position_lower:
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
    return SafetyLimits.from_velocity(lower, upper, vel, params.control_rate_hz)


def controller_joints(params: NodeParams, spec: IOSpec) -> tuple[str, ...]:
    """The arm controller's joint order: ``controller_joints`` if set, else the checkpoint's
    action names without ``gripper_joints``. With the gripper joints they must be exactly the
    checkpoint's action joints."""
    grip = set(params.gripper_joints)
    joints = params.controller_joints or tuple(n for n in spec.action_names if n not in grip)
    if sorted((*joints, *params.gripper_joints)) != sorted(spec.action_names):
        raise ValueError(
            f"controller_joints {list(joints)} + gripper_joints {list(params.gripper_joints)} do not match the "
            f"checkpoint's action joints {list(spec.action_names)}"
        )
    return tuple(joints)
