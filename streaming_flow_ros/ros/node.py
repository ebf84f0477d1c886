"""The policy node: a lifecycle node streaming one policy action per control tick.

Data flow (glue: every per-tick decision lives in policy/control.py's ControlLoop, the math in
the policy, the limits in policy/safety.py)::

    joint_states, image_raw ──(convert, cache: ObsBuffer)──> plan worker thread: prepare(obs)
                                                               │ mailbox (newest plan)
    control clock (control_rate_hz; ``tick_source``: a dedicated thread on absolute monotonic
    deadlines -- ros/ticker.py -- or, under use_sim_time, an rclpy timer in its own group):
        ControlLoop.tick(now, inputs) -> publish ~/action (+ joint_trajectory | commands)

Topics (relative, remap them): subscribes ``joint_states`` (sensor_msgs/JointState) and
``image_raw`` (one camera) or ``<camera>/image_raw`` (several), sensor QoS (BEST_EFFORT,
depth 1); publishes ``~/action`` (trajectory_msgs/JointTrajectoryPoint, every tick),
``joint_trajectory`` (command_mode jtc, RELIABLE), ``commands`` (command_mode forward,
std_msgs/Float64MultiArray, controller joint order), ``gripper_commands`` (with
``gripper_joints``: Float64MultiArray in that order; ``gripper_mode: binary`` sends the lower or
upper limit, whichever side of the midpoint the command is), ``/diagnostics``. Service ``~/enable``
(std_srvs/SetBool) mirrors the ``enabled`` parameter.

Behaviour:
- configure loads the checkpoint (``checkpoint`` or the package default); on failure the node
  stays unconfigured and /diagnostics carries the reason. activate anchors at the first measured
  joint state (``policy.reset(measured)``); nothing is published before that.
- dry run (``enabled`` false, the default): the policy runs and ``~/action`` is published, but
  nothing goes to the controller. Enabling re-anchors at the measured state; disabling and
  deactivating send one hold of the last commanded position.
- stale watchdog (node clock): joints or any camera older than ``max_obs_age`` -> the plan is
  dropped and the node holds the last commanded position (``on_stale: hold`` publishes that hold
  every tick; ``silent`` publishes nothing). Recovery re-anchors at the last command with the
  next fresh plan. Ticks never catch up: each tick is one flow step.
- a tick never publishes non-finite values (the safety filter holds instead).
- anchoring (activate, enable) needs the measured state within the position limits, or outside
  by at most ``control.WALK_IN_S`` of travel at ``max_velocity`` (the safety filter then walks
  the command in, one step per tick); further out the node does not stream and says why. At
  enable, an arm within ``control.AGREE_S`` of travel of the last command the controller got
  continues from that command (the first command obeys the step limit).
- inputs: a malformed message is dropped and counted (``input_errors``, diagnostics), never
  raised into the executor; per-message work is linear and bounded (policy/joints.py).
  Joint states are merged by name (arm and gripper in separate messages), each joint fresh on
  its own. A header stamp more than ``max_obs_age`` ahead of the node clock is rejected, one
  less far ahead counts from now (a future stamp never delays the stale hold); a stamp far
  behind after the clock jumped back (bag loop) counts as
  stale until newer data arrives. An image whose encoding does not fit the checkpoint's camera
  (depth into an RGB model) is rejected.
- the ``~/enable`` service runs in its own callback group, never behind an input message.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ..policy.control import ControlLoop, LoopConfig, TickInputs, TickOutput
from ..policy.joints import JointStateMerger
from ..policy.obs_buffer import ObsBuffer
from ..policy.protocol import Observation, RuntimeConfig, RuntimePolicy
from . import conversions as cv
from .params import LIVE, NodeParams, controller_joints, resolve_limits
from .plan_worker import PlanWorker, PreparedPlan
from .telemetry import Telemetry, diagnostic_status, one_line
from .ticker import TickThread

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "default_policy.safetensors"
SENSOR_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=qos_profile_sensor_data.durability)
# Joint states: split drivers publish arm and gripper back to back; depth 1 dropped one of them.
JOINT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=qos_profile_sensor_data.durability)
COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
PolicyLoader = Callable[[str, RuntimeConfig], RuntimePolicy]
OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
PARAM_NAMES = frozenset(NodeParams().to_mapping())


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
    it); ``telemetry_window`` None keeps every timing sample (benchmarks)."""

    def __init__(self, node_name: str = "policy_node", *, loader: PolicyLoader | None = None,
                 telemetry_window: int | None = 4096, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._timer = None  # the control clock while active: rclpy timer or TickThread
        self._ticker: TickThread | None = None
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
        self._reason = "unconfigured"
        self._input_reasons: dict[str, str] = {}  # input ("joints"/camera) -> last problem
        self._tick_lock = threading.Lock()
        self._loop: ControlLoop | None = None  # the per-tick decisions, one per activation
        self._pubs: list[Any] = []
        self._subs: list[Any] = []
        self._timer_group = MutuallyExclusiveCallbackGroup()  # the control tick, alone
        self._input_group = MutuallyExclusiveCallbackGroup()  # subscriptions: convert + cache
        # ~/enable: never queued behind input callbacks (with the multi-threaded executor)
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=self._service_group)
        self.create_timer(self.params.diagnostics_period, self._publish_diagnostics)
        self._last_log = time.monotonic()

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
        self._cfg = replace(self._cfg, **{k: getattr(new, k) for k in LIVE})
        if self._loop is not None:
            self._loop.config = self._loop_config()
        if self.policy is not None:  # max_obs_age is live: the joint merge's freshness follows it
            self._joints.max_age = self._cfg.max_obs_age
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
    def lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]

    @property
    def status_reason(self) -> str:
        """Why the node is not streaming ("" when it is): configure failure, stale input, ..."""
        loop_reason = self._loop.reason if self._loop is not None else ""
        return self._reason or loop_reason or "; ".join(r for r in self._input_reasons.values() if r)

    def _loop_config(self) -> LoopConfig:
        return self._cfg.loop_config()

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
            policy = self._loader(path, cfg.runtime_config())
            spec = policy.spec
            self._limits = resolve_limits(cfg, spec)
            self._ctrl_joints = controller_joints(cfg, spec)
            grip = [spec.action_names.index(n) for n in cfg.gripper_joints]
            if cfg.gripper_mode == "binary" and not np.isfinite(
                    np.r_[self._limits.lower[grip], self._limits.upper[grip]]).all():
                raise ValueError(f"gripper_mode binary needs position limits for {list(cfg.gripper_joints)} "
                                 "(open = upper, closed = lower)")
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
        self.policy, self._spec = policy, spec
        self._ctrl_index = np.array([spec.action_names.index(n) for n in self._ctrl_joints], np.intp)
        self._grip_index = np.array([spec.action_names.index(n) for n in cfg.gripper_joints], np.intp)
        wanted = tuple(dict.fromkeys((*spec.state_names, *spec.action_names)))
        self._joints = JointStateMerger(wanted, cfg.max_obs_age)
        self._state_idx = np.array([wanted.index(n) for n in spec.state_names], np.intp)
        self._action_idx = np.array([wanted.index(n) for n in spec.action_names], np.intp)
        self._buffer = ObsBuffer(spec.state_dim, [c.name for c in spec.cameras], policy.obs_horizon,
                                 spec.data_rate_hz, cfg.sync_tolerance)
        poll = 1.0 / spec.data_rate_hz if not spec.cameras else min(0.005, cfg.sync_tolerance / 4)
        self._worker = PlanWorker(self._buffer.build, policy.prepare, self._is_fresh,
                                  self._on_prepared, self._on_prepare_error, poll)
        self._measured: np.ndarray | None = None  # (D_a,) rad, latest joint state
        self._measured_state: np.ndarray | None = None  # (D_s,)
        self._action_pub = self.create_publisher(JointTrajectoryPoint, "~/action", COMMAND_QOS)
        self._jtc_pub = self._fwd_pub = None
        if cfg.command_mode == "jtc":
            self._jtc_pub = self.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
        elif cfg.command_mode == "forward":
            self._fwd_pub = self.create_publisher(Float64MultiArray, "commands", COMMAND_QOS)
        subs = [self.create_subscription(JointState, "joint_states", self._on_joints, JOINT_QOS,
                                         callback_group=self._input_group)]
        for cam in spec.cameras:
            topic = "image_raw" if len(spec.cameras) == 1 else f"{cam.name}/image_raw"
            subs.append(self.create_subscription(
                Image, topic, lambda m, c=cam: self._on_image(c, m), SENSOR_QOS,
                callback_group=self._input_group))
        self._grip_pub = None
        if cfg.gripper_joints and cfg.command_mode != "none":
            self._grip_pub = self.create_publisher(Float64MultiArray, "gripper_commands", COMMAND_QOS)
        self._pubs = [p for p in (self._action_pub, self._jtc_pub, self._fwd_pub, self._grip_pub) if p is not None]
        self._subs = subs
        self._tfs = cv.lookahead_time(cfg.lookahead_ticks, cfg.control_rate_hz)
        self._reason = ""
        # The model, torch and rclpy are loaded: move every object alive now out of the garbage
        # collector's reach, so a later gen-2 collection (which holds the GIL and stops the
        # control timer) walks only new objects instead of the whole heap.
        gc.collect()
        gc.freeze()
        self.get_logger().info(
            f"configured: {path} joints={list(spec.action_names)} cameras={[c.name for c in spec.cameras]} "
            f"data_rate={spec.data_rate_hz} Hz control_rate={cfg.control_rate_hz} Hz mode={cfg.command_mode} "
            f"tick_source={self.tick_source}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._loop = ControlLoop(self.policy, self._limits, self._loop_config(), self._worker)
        self._last_tick: float | None = None
        self.telemetry.started_at = None  # set at the first tick: under use_sim_time, /clock may not have arrived yet
        self._worker.start()
        if self.tick_source == "thread":
            self._ticker = TickThread(self._cfg.period, self._on_tick, self._cfg.tick_priority)
            self._ticker.start()
            if self._ticker.priority_error:
                self.get_logger().warning(self._ticker.priority_error)
        else:
            self._timer = self.create_timer(self._cfg.period, self._on_tick, callback_group=self._timer_group)
        return super().on_activate(state)

    @property
    def tick_source(self) -> str:
        """"thread" or "timer": ``tick_source`` with auto resolved (timer under use_sim_time)."""
        if self._cfg.tick_source != "auto":
            return self._cfg.tick_source
        return "timer" if self.get_parameter("use_sim_time").value else "thread"

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
        if self._timer is None and self._ticker is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        if self._ticker is not None:
            self._ticker.stop()
        with self._tick_lock:
            if self._timer is not None:
                self.destroy_timer(self._timer)
            self._timer = self._ticker = None
            hold = self._loop.stop_command() if self._loop is not None else None
            if hold is not None:
                self._publish_controller(hold, None)
            self._loop = None
        self._worker.stop()

    def _release(self) -> None:
        for pub in self._pubs:
            self.destroy_publisher(pub)
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._pubs, self._subs = [], []
        self.policy = None

    def destroy_node(self) -> None:
        if self._timer is not None or self._ticker is not None:
            self._stop_control()
        super().destroy_node()

    # ---- inputs (convert + cache only) ------------------------------------------------------
    def _stamp(self, header_stamp) -> float:
        """Header stamp s (0: the receive time). A stamp more than ``max_obs_age`` ahead of the
        node clock is rejected (ValueError); one less far ahead (another machine's clock, a sim
        clock the node has not caught up with) is kept for pairing, while its staleness counts
        from its receipt (ObsBuffer ``received``): it cannot stretch the time to the stale hold."""
        now = self.now_s()
        s = cv.stamp_seconds(header_stamp)
        if s <= 0.0:
            return now
        if s - now > self._cfg.max_obs_age:
            raise ValueError(f"header stamp {s:.3f} s is {s - now:.3f} s ahead of the node clock")
        return s

    def _input_error(self, key: str, text: str) -> None:
        self.telemetry.input_errors += 1
        self._input_reasons[key] = text
        self.get_logger().warning(text, throttle_duration_sec=5.0)

    def _clock_started(self) -> bool:
        """False under use_sim_time until the first /clock (node time 0): no stamp can be judged
        then, so inputs are ignored, not counted as errors (a simulator's first messages often
        beat its first /clock)."""
        if self.now_s() > 0.0:
            return True
        self.get_logger().info("waiting for /clock (use_sim_time): inputs ignored until it arrives",
                               throttle_duration_sec=5.0)
        return False

    def _on_joints(self, msg: JointState) -> None:
        if not self._clock_started():
            return
        try:
            stamp = self._stamp(msg.header.stamp)
            merged = self._joints.update(msg.name, msg.position, stamp)
            if merged is not None:  # None: a split state still incomplete (not an error)
                state, measured = merged.positions[self._state_idx], merged.positions[self._action_idx]
                self._buffer.add_state(stamp, state, received=self.now_s())
        except ValueError as e:
            self._input_error("joints", str(e) if isinstance(e, cv.JointStateError) else f"joint_states: {e}")
            return
        except Exception as e:  # noqa: BLE001 -- drop-and-log: one malformed message must not
            # kill the executor (and with it the control loop); the watchdog holds if inputs stop.
            self._input_error("joints", f"joint_states dropped: {type(e).__name__}: {e}")
            return
        self.telemetry.joint_msgs += 1
        self._input_reasons["joints"] = ""
        if merged is None:
            return
        newest = self._buffer.latest_state()
        if newest is not None and newest[0] == stamp:  # a late (out-of-order) message is history only
            self._measured, self._measured_state = measured, state  # action joints, state channels

    def _on_image(self, cam, msg: Image) -> None:
        if not self._clock_started():
            return
        try:
            img = cv.image_to_model(msg, cam)
            self._buffer.add_frame(cam.name, self._stamp(msg.header.stamp), img, received=self.now_s())
        except ValueError as e:
            self._input_error(cam.name, f"camera {cam.name}: {e}")
            return
        except Exception as e:  # noqa: BLE001 -- drop-and-log, as in _on_joints
            self._input_error(cam.name, f"camera {cam.name} dropped: {type(e).__name__}: {e}")
            return
        self.telemetry.image_msgs += 1
        self.telemetry.frame(cam.name, time.monotonic())
        self._input_reasons[cam.name] = ""
        self._worker.wake()

    # ---- plan worker callbacks (worker thread) ----------------------------------------------
    def _is_fresh(self, stamp: float) -> bool:
        """|now - stamp| <= max_obs_age: a stamp far ahead means the clock jumped back."""
        return abs(self.now_s() - stamp) <= self._cfg.max_obs_age

    def _on_prepared(self, p: PreparedPlan) -> None:
        self.telemetry.add("prepare", p.prepare_s)

    def _on_prepare_error(self, e: BaseException) -> None:
        self.telemetry.prepare_errors += 1
        self.telemetry.last_error = f"prepare: {type(e).__name__}: {e}"
        self.get_logger().error(self.telemetry.last_error, throttle_duration_sec=5.0)

    # ---- control tick (timer thread) --------------------------------------------------------
    def _on_tick(self) -> None:
        with self._tick_lock:
            loop = self._loop
            if loop is None or (self._ticker is None and (self._timer is None or self._timer.is_canceled())):
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
                out = loop.tick(now, self._inputs(now))
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
            if out.started is not None:
                tel.add("obs_to_cmd", self.now_s() - out.started)

    def _inputs(self, now: float) -> TickInputs:
        ages = self._buffer.ages(now)  # once per tick: the stale gate reads the same ages
        return TickInputs(measured=self._measured, measured_state=self._measured_state,
                          joints_age=ages.get("joints"), enabled=self._cfg.enabled,
                          stale_reason=self._buffer.stale_reason(now, self._cfg.max_obs_age, ages))

    def _emit(self, out: TickOutput) -> None:
        """Publish a tick's decision and count it."""
        log = self.get_logger()
        for level, text in out.notices:  # one call site per severity: rclpy refuses a site whose severity changes
            if level == "error":
                log.error(text)
            elif level == "warning":
                log.warning(text)
            else:
                log.info(text)
        if out.controller_hold is not None:
            self._publish_controller(out.controller_hold, None)
        if out.command is not None:
            vel = out.velocity if self._cfg.publish_velocities else None
            self._action_pub.publish(cv.make_trajectory_point(out.command, self._tfs, vel))
            if out.to_controller:
                self._publish_controller(out.command, vel)
        self.telemetry.record(out)

    def _publish_controller(self, action: np.ndarray, vel: np.ndarray | None) -> None:
        if self._jtc_pub is not None:
            idx = self._ctrl_index
            msg = cv.make_joint_trajectory(self._ctrl_joints, action[idx], self._tfs,
                                           None if vel is None else vel[idx])
            self._jtc_pub.publish(msg)
        elif self._fwd_pub is not None:
            self._fwd_pub.publish(cv.make_forward_command(action[self._ctrl_index]))
        if self._grip_pub is not None:
            grip = action[self._grip_index]
            if self._cfg.gripper_mode == "binary":  # open/close at the midpoint of its limits
                lo, hi = self._limits.lower[self._grip_index], self._limits.upper[self._grip_index]
                grip = np.where(grip >= 0.5 * (lo + hi), hi, lo)
            self._grip_pub.publish(cv.make_forward_command(grip))

    # ---- telemetry --------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now, state, tel = self.now_s(), self.lifecycle_state, self.telemetry
        s = tel.summary(now, self._cfg.control_rate_hz)
        ages = {k: v * 1e3 for k, v in self._buffer.ages(now).items()} if self.policy else {}
        reason = self.status_reason
        fps = tel.frame_rates(time.monotonic())
        slow = self._slow_cameras(fps) if state == "active" else ""
        reason = "; ".join(r for r in (reason, slow) if r)
        level = OK if state == "active" and not reason else WARN
        if tel.tick_errors or tel.prepare_errors or reason.startswith("configure failed"):
            level = ERROR
        values = {"state": state, "enabled": self._cfg.enabled, "command_mode": self._cfg.command_mode,
                  **s, **{f"obs_age_{k}_ms": v for k, v in ages.items()},
                  **{f"camera_{k}_fps": v for k, v in fps.items()}, "last_error": tel.last_error}
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        message = reason or f"{state}, enabled={self._cfg.enabled}"
        arr.status = [diagnostic_status(f"{self.get_name()}: policy", level, message, values)]
        self._diag_pub.publish(arr)
        due = time.monotonic() - self._last_log >= self._cfg.log_period - 0.5 * self._cfg.diagnostics_period
        if self._cfg.log_period > 0 and due:
            self._last_log = time.monotonic()
            if state == "active":
                self.get_logger().info(one_line(state, self._cfg.enabled, s, ages))


    def _slow_cameras(self, fps: dict[str, float]) -> str:
        """Cameras delivering fewer frames than the model's data rate (frames lost in transport,
        typically: large images over the default DDS set-up; docs/RELIABILITY.md "Cameras over
        DDS"), as a diagnostics message, or ""."""
        if self.policy is None:
            return ""
        need = self._spec.data_rate_hz
        slow = [f"{c} {v:.1f}" for c, v in fps.items() if 0 < v < 0.9 * need]
        if not slow:
            return ""
        return (f"camera frames/s below the {need:g} Hz data rate ({', '.join(slow)}): frames lost in "
                f"transport? see 'Cameras over DDS' in docs/RELIABILITY.md")


def main(argv: list[str] | None = None) -> int:
    """Console script ``policy_node`` (and ``sfp node``): ``argv`` like sys.argv (program name
    first); everything after ``--ros-args`` (remaps, params files, -p) goes to ROS; own option
    ``--executor events|multi``. Returns 0 on a clean shutdown (SIGINT), 1 if autostart failed,
    2 on invalid parameters. See runner.run_main."""
    from .runner import run_main

    return run_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
