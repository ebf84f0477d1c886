"""The policy node: a lifecycle node that publishes the policy's next action every control tick.

Glue around policy/control.py's ControlLoop, which makes every per-tick decision (anchoring,
stale hold, enable, re-anchor cadence, latency compensation, safety filter; its docstring)::

    joint_states, image_raw -> ros/inputs.py (convert, cache: ObsBuffer) -> plan worker thread:
                               prepare(obs) -> mailbox (newest plan)
    control clock (control_rate_hz; ``tick_source``: a thread on absolute monotonic deadlines,
    ros/ticker.py, or under use_sim_time an rclpy timer in its own callback group):
        ControlLoop.tick(now, inputs) -> ros/outputs.py: ~/action (+ joint_trajectory | commands,
        gripper_commands)
    ros/diagnostics.py: /diagnostics and the log summary

Each tick streams the policy's point at its own time; whether it also integrates a flow step is
``integration``'s choice (policy/integration.py): "tick" takes one flow step per tick on the
control thread, "worker" integrates steps of several ticks ahead on a worker thread and the
tick interpolates, "auto" (the default) picks by the measured step time. Ticks never catch up.

Parameters: ros/params.py, documented in config/policy.yaml. Service ``~/enable``
(std_srvs/SetBool) mirrors ``enabled``, in its own callback group (never behind an input).

- configure loads the checkpoint (``checkpoint`` or the package default); on failure the node
  stays unconfigured and /diagnostics carries the reason. activate anchors at the first measured
  joint state; nothing is published before that.
- dry run (``enabled`` false, the default): ``~/action`` is published, nothing goes to the
  controller. Enabling re-anchors; disabling and deactivating send one hold of the last command.
- stale inputs (older than ``max_obs_age`` on the node clock): hold the last command
  (``on_stale``); a failing tick holds too and is counted. No tick publishes non-finite values.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_srvs.srv import SetBool

from ..policy.control import ControlLoop, TickOutput
from ..policy.protocol import Observation, RuntimeConfig, RuntimePolicy
from .diagnostics import Diagnostics
from .inputs import Inputs
from .outputs import Outputs, import_gripper_command
from .params import LIVE, OWNER, NodeParams, check_binary_gripper, controller_joints, resolve_limits
from .telemetry import Telemetry
from .ticker import ControlClock

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "default_policy.safetensors"
PolicyLoader = Callable[[str, RuntimeConfig], RuntimePolicy]
PARAM_NAMES = frozenset(OWNER)  # the flat ROS parameters the node declares


def load_checkpoint_policy(path: str, config: RuntimeConfig) -> RuntimePolicy:
    """The default loader: policy/streaming.py's ``load_policy`` (imports torch lazily)."""
    from ..policy.streaming import load_policy

    return load_policy(path, config)


def warm_up(policy: RuntimePolicy, home: np.ndarray, steps: int = 5) -> None:
    """One prepare + a few steps on a blank observation at ``home`` (D_a,) rad, so the first real
    ticks do not pay for lazy initialisation (allocations, kernel selection); then reset."""
    spec, t_o = policy.spec, policy.obs_horizon
    images = {c.name: np.zeros((t_o, c.height, c.width, c.channels), np.uint8) for c in spec.cameras}
    measured = home if spec.state_names == spec.action_names else np.zeros(spec.state_dim)
    policy.reset(home)
    policy.start(policy.prepare(Observation(np.zeros((t_o, spec.state_dim)), images, 0.0)), measured)
    for _ in range(steps):
        policy.step()
    policy.reset(home)


class PolicyNode(LifecycleNode):
    """See the module docstring. ``loader`` builds the policy at configure (tests/demos may wrap
    it); ``telemetry_window`` None keeps every timing sample (benchmarks).

    Public state: ``params`` (every accepted parameter change), ``params_in_effect``,
    ``telemetry``, ``policy`` and ``inputs`` (None while unconfigured), ``lifecycle_state``,
    ``status_reason``, ``tick_source``, ``now_s()``."""

    def __init__(self, node_name: str = "policy_node", *, loader: PolicyLoader | None = None,
                 telemetry_window: int | None = 4096, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._control_clock: ControlClock | None = None  # while active
        self._loader = loader or load_checkpoint_policy
        for name, value in NodeParams().to_mapping().items():
            self.declare_parameter(name, value, ParameterDescriptor(dynamic_typing=True))
        try:
            self.params = NodeParams.from_mapping({n: self.get_parameter(n).value for n in PARAM_NAMES})
        except ValueError as e:  # invalid parameters at start: no half-made node left behind
            super().destroy_node()
            raise ValueError(f"invalid parameters: {e}") from e
        self._cfg = self.params  # the parameters in effect (non-live fields frozen at configure)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.telemetry = Telemetry(window=telemetry_window)
        self.policy: RuntimePolicy | None = None
        self.inputs: Inputs | None = None  # subscriptions -> ObsBuffer, while configured
        self._outputs: Outputs | None = None
        self._reason = "unconfigured"
        self._tick_lock = threading.Lock()
        self._loop: ControlLoop | None = None  # the per-tick decisions, one per activation
        self._subs: list[Any] = []
        self._timer_group = MutuallyExclusiveCallbackGroup()  # the control tick, alone
        self._input_group = MutuallyExclusiveCallbackGroup()  # subscriptions: convert + cache
        # ~/enable: never queued behind input callbacks (with the multi-threaded executor)
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._diagnostics = Diagnostics(self)
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=self._service_group)

    # ---- parameters and enable -------------------------------------------------------------
    def _on_set_parameters(self, changed: list[Parameter]) -> SetParametersResult:
        ours = {p.name: p.value for p in changed if p.name in PARAM_NAMES}
        try:
            new = self.params.with_changes(ours)
            if self.policy is not None:
                resolve_limits(new, self.policy.spec)
                controller_joints(new, self.policy.spec)
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        self.params = new
        self._cfg = self._cfg.with_live(new)
        if self._loop is not None:
            self._loop.config = self._cfg.loop
        if self.inputs is not None:  # max_obs_age is live
            self.inputs.max_obs_age = self._cfg.loop.max_obs_age
        if set(ours) - LIVE:
            self.get_logger().info(f"{sorted(set(ours) - LIVE)} take effect at the next configure")
        return SetParametersResult(successful=True)

    def _on_enable(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        result = self.set_parameters([Parameter("enabled", Parameter.Type.BOOL, bool(req.data))])[0]
        res.success = result.successful
        res.message = f"enabled={self._cfg.enabled} state={self.lifecycle_state}" + (
            "" if result.successful else f" ({result.reason})")
        return res

    @property
    def params_in_effect(self) -> NodeParams:
        """The parameters the node runs with: ``params`` with the non-live fields as of the last
        configure (``params`` holds every accepted change)."""
        return self._cfg

    def reset_telemetry(self, window: int | None = 4096) -> Telemetry:
        """Start counting afresh (benchmarks: ``window`` None keeps every sample)."""
        self.telemetry = Telemetry(window=window)
        return self.telemetry

    @property
    def gripper_goal_counts(self) -> dict[str, int]:
        """GripperCommand goals sent / rejected / without a server ({} unless gripper_output is action)."""
        return self._outputs.gripper_goal_counts if self._outputs is not None else {}

    @property
    def lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]

    @property
    def status_reason(self) -> str:
        """Why the node is not streaming ("" when it is): configure failure, stale input, ..."""
        loop_reason = self._loop.reason if self._loop is not None else ""
        return self._reason or loop_reason or (self.inputs.reason if self.inputs is not None else "")

    @property
    def tick_source(self) -> str:
        """"thread" or "timer": ``tick_source`` with auto resolved (timer under use_sim_time)."""
        if self._cfg.tick_source != "auto":
            return self._cfg.tick_source
        return "timer" if self.get_parameter("use_sim_time").value else "thread"

    def now_s(self) -> float:
        """Node-clock time, s (follows /clock under use_sim_time)."""
        return self.get_clock().now().nanoseconds * 1e-9

    # ---- lifecycle --------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self._cfg = self.params
        path = cfg.checkpoint or str(DEFAULT_CHECKPOINT)
        try:
            if not Path(path).exists():  # a directory: the loader says what it is (a LeRobot policy)
                raise ValueError(f"checkpoint {path!r} does not exist")
            policy = self._loader(path, cfg.runtime)
            spec = policy.spec
            self._limits = resolve_limits(cfg, spec)
            ctrl_joints = controller_joints(cfg, spec)
            check_binary_gripper(cfg, spec, self._limits)
            if cfg.output.gripper_output == "action" and cfg.output.gripper_joints:
                import_gripper_command()  # fail the configure, not the first tick, without control_msgs
            warm_up(policy, np.clip(np.zeros(spec.action_dim), self._limits.lower, self._limits.upper))
        except (ValueError, OSError, ImportError) as e:
            self._reason = f"configure failed: {e}"
            self.get_logger().error(self._reason)
            return TransitionCallbackReturn.FAILURE
        except Exception as e:  # noqa: BLE001 -- fail the transition with the reason: rclpy would
            # turn it into an unexplained ERROR transition (a malformed checkpoint's TypeError...).
            self._reason = f"configure failed: {type(e).__name__}: {e}"
            self.get_logger().error(self._reason)
            return TransitionCallbackReturn.FAILURE
        self.policy = policy
        self.inputs = Inputs(policy, cfg.loop.max_obs_age, cfg.sync_tolerance, self.now_s, self.get_logger(),
                             lambda: self.telemetry)
        self._outputs = Outputs(self, cfg.output, spec, self._limits, ctrl_joints, cfg.loop.control_rate_hz)
        self._subs = self.inputs.subscribe(self, self._input_group)
        self._reason = ""
        # The model, torch and rclpy are loaded: move every object alive now out of the garbage
        # collector's reach, so a later gen-2 collection (which holds the GIL and stops the
        # control timer) walks only new objects instead of the whole heap.
        gc.collect()
        gc.freeze()
        self.get_logger().info(
            f"configured: {path} joints={list(spec.action_names)} cameras={[c.name for c in spec.cameras]} "
            f"data_rate={spec.data_rate_hz} Hz control_rate={cfg.loop.control_rate_hz} Hz "
            f"mode={cfg.output.command_mode} tick_source={self.tick_source}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._loop = ControlLoop(self.policy, self._limits, self._cfg.loop, self.inputs.worker)
        self._last_tick: float | None = None
        self.telemetry.started_at = None  # set at the first tick: under use_sim_time, /clock may not have arrived yet
        self.inputs.worker.start()
        self._control_clock = ControlClock(
            self.tick_source, self._cfg.period, self._on_tick, self._cfg.tick_priority,
            lambda period, tick: self.create_timer(period, tick, callback_group=self._timer_group),
            self.destroy_timer)
        if self._control_clock.priority_error:
            self.get_logger().warning(self._control_clock.priority_error)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_control()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._reason = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_control()
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_control()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_control(self) -> None:
        """Stop ticking (waits for a running tick), stop the worker, hold the last command."""
        if self._control_clock is None:
            return
        self._control_clock.cancel()
        with self._tick_lock:
            self._control_clock.destroy()
            self._control_clock = None
            hold = self._loop.stop_command() if self._loop is not None else None
            if hold is not None:
                self._outputs.to_controller(hold, None)
            self._loop = None
        self.inputs.worker.stop()

    def _release(self) -> None:
        if self._outputs is not None:
            self._outputs.destroy(self)
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._outputs, self._subs = None, []
        self.policy = self.inputs = None

    def destroy_node(self) -> None:
        self._stop_control()
        super().destroy_node()

    # ---- control tick (tick thread or timer) ------------------------------------------------
    def _on_tick(self) -> None:
        with self._tick_lock:
            loop = self._loop
            if loop is None or self._control_clock is None or not self._control_clock.running:
                return
            t0 = time.perf_counter()
            now = self.now_s()
            tel = self.telemetry
            if tel.started_at is None:
                tel.started_at = now - self._cfg.period  # this tick is the first expected one
            if self._last_tick is not None:
                tel.add("period_err", abs(now - self._last_tick - self._cfg.period))
            self._last_tick = now
            try:
                out = loop.tick(now, self.inputs.tick_inputs(now, self._cfg.enabled))
                self._emit(out)
            except Exception as e:  # noqa: BLE001 -- hold-and-log: a failing step holds the
                # last safe command (re-anchored there) instead of killing the control loop.
                tel.tick_errors += 1
                tel.last_error = f"tick: {type(e).__name__}: {e}"
                self.get_logger().error(tel.last_error, throttle_duration_sec=5.0)
                out = loop.fail_safe(tel.last_error)
                self._emit(out)
            tel.ticks += 1
            tel.add("step", time.perf_counter() - t0)
            if out.started is not None:  # + a worker integration's hand-over: when the plan takes effect
                tel.add("obs_to_cmd", self.now_s() - out.started + getattr(self.policy, "handover_s", 0.0))

    def _emit(self, out: TickOutput) -> None:
        """Publish a tick's decision and count it."""
        self._outputs.publish(out, self._cfg.output.publish_velocities)
        self.telemetry.record(out)


def main(argv: list[str] | None = None) -> int:
    """Console script ``policy_node`` (and ``sfp node``): ``argv`` like sys.argv (program name
    first); everything after ``--ros-args`` (remaps, params files, -p) goes to ROS; own option
    ``--executor events|multi``. Returns 0 on a clean shutdown (SIGINT), 1 if autostart failed,
    2 on invalid parameters. See runner.run_main."""
    from .runner import run_main  # here, not at the top: runner imports this module

    return run_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
