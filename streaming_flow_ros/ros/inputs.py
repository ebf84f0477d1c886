"""The policy node's inputs: joint states and camera images, converted and cached (ObsBuffer),
and the plan worker that prepares plans from them (ros/plan_worker.py: the encoder on its own
thread). Convert, cache, prepare: nothing here decides a command (policy/control.py does).

Topics (relative, remap them): ``joint_states`` (sensor_msgs/JointState) and ``image_raw`` (one
camera) or ``<camera>/image_raw`` (several), sensor QoS (BEST_EFFORT).

- a malformed message is dropped and counted (telemetry ``input_errors``, diagnostics), never
  raised into the executor; per-message work is linear and bounded (policy/joints.py).
- joint states are merged by name (arm and gripper in separate messages), each joint fresh on
  its own.
- a header stamp more than ``max_obs_age`` ahead of the node clock is rejected, one less far
  ahead counts from now (a future stamp never delays the stale hold); a stamp far behind after
  the clock jumped back (bag loop) counts as stale until newer data arrives.
- an image whose encoding does not fit the checkpoint's camera (depth into an RGB model) is
  rejected.
- under use_sim_time, inputs are ignored (not counted as errors) until the first /clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from ..policy.control import TickInputs
from ..policy.joints import JointStateMerger
from ..policy.obs_buffer import ObsBuffer
from ..policy.protocol import RuntimePolicy
from ..spec import CameraSpec
from . import conversions as cv
from .plan_worker import PlanWorker, PreparedPlan
from .telemetry import Telemetry

SENSOR_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=qos_profile_sensor_data.durability)
# Joint states: split drivers publish arm and gripper back to back; depth 1 dropped one of them.
JOINT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=qos_profile_sensor_data.durability)


class Inputs:
    """One configuration's input side (built at configure, for one ``policy``).

    now: the node clock, s. logger: the node's. telemetry: returns the node's current Telemetry
    (a benchmark may swap it on a running node). ``max_obs_age`` (s) is live: set it when the
    parameter changes. Public state: ``measured`` (D_a,) rad and ``measured_state`` (D_s,), the
    latest complete joint state (None before one); ``reasons``: input ("joints" or a camera) ->
    its last problem ("" once a message is accepted again); ``joints`` (the merger), ``buffer``
    (the ObsBuffer), ``worker`` (the PlanWorker: the ControlLoop's plan source; the node starts
    and stops it with the control clock).
    """

    def __init__(self, policy: RuntimePolicy, max_obs_age: float, sync_tolerance: float,
                 now: Callable[[], float], logger: Any, telemetry: Callable[[], Telemetry]) -> None:
        self.spec = spec = policy.spec
        self._now, self._log, self._telemetry = now, logger, telemetry
        wanted = tuple(dict.fromkeys((*spec.state_names, *spec.action_names)))
        self.joints = JointStateMerger(wanted, max_obs_age)
        self._state_idx = np.array([wanted.index(n) for n in spec.state_names], np.intp)
        self._action_idx = np.array([wanted.index(n) for n in spec.action_names], np.intp)
        self.buffer = ObsBuffer(spec.state_dim, [c.name for c in spec.cameras], policy.obs_horizon,
                                spec.data_rate_hz, sync_tolerance)
        poll = 1.0 / spec.data_rate_hz if not spec.cameras else min(0.005, sync_tolerance / 4)
        self.worker = PlanWorker(self.buffer.build, policy.prepare, self.is_fresh, self._on_prepared,
                                 self._on_prepare_error, poll)
        self._max_obs_age = max_obs_age
        self.measured: np.ndarray | None = None  # (D_a,) rad, latest joint state
        self.measured_state: np.ndarray | None = None  # (D_s,)
        self.reasons: dict[str, str] = {}

    @property
    def max_obs_age(self) -> float:
        return self._max_obs_age

    @max_obs_age.setter
    def max_obs_age(self, value: float) -> None:  # the joint merge's freshness follows it
        self._max_obs_age = self.joints.max_age = value

    @property
    def reason(self) -> str:
        """The inputs' current problems joined ("" when none)."""
        return "; ".join(r for r in self.reasons.values() if r)

    def subscribe(self, node: Any, group: Any) -> list[Any]:
        """Create the subscriptions on ``node`` in callback ``group``; returns them."""
        subs = [node.create_subscription(JointState, "joint_states", self.on_joints, JOINT_QOS,
                                         callback_group=group)]
        for cam in self.spec.cameras:
            topic = "image_raw" if len(self.spec.cameras) == 1 else f"{cam.name}/image_raw"
            subs.append(node.create_subscription(
                Image, topic, lambda m, c=cam: self.on_image(c, m), SENSOR_QOS, callback_group=group))
        return subs

    def tick_inputs(self, now: float, enabled: bool) -> TickInputs:
        """What the control tick sees at node time ``now``."""
        ages = self.buffer.ages(now)  # once per tick: the stale gate reads the same ages
        return TickInputs(measured=self.measured, measured_state=self.measured_state,
                          joints_age=ages.get("joints"), enabled=enabled,
                          stale_reason=self.buffer.stale_reason(now, self._max_obs_age, ages))

    def is_fresh(self, stamp: float) -> bool:
        """|now - stamp| <= max_obs_age: a stamp far ahead means the clock jumped back."""
        return abs(self._now() - stamp) <= self._max_obs_age

    # ---- callbacks (the node's input callback group) ----------------------------------------
    def on_joints(self, msg: JointState) -> None:
        if not self._clock_started():
            return
        try:
            stamp = self._stamp(msg.header.stamp)
            merged = self.joints.update(msg.name, msg.position, stamp)
            if merged is not None:  # None: a split state still incomplete (not an error)
                state, measured = merged.positions[self._state_idx], merged.positions[self._action_idx]
                self.buffer.add_state(stamp, state, received=self._now())
        except ValueError as e:
            self._error("joints", str(e) if isinstance(e, cv.JointStateError) else f"joint_states: {e}")
            return
        except Exception as e:  # noqa: BLE001 -- drop-and-log: one malformed message must not
            # kill the executor (and with it the control loop); the watchdog holds if inputs stop.
            self._error("joints", f"joint_states dropped: {type(e).__name__}: {e}")
            return
        self._telemetry().joint_msgs += 1
        self.reasons["joints"] = ""
        if merged is None:
            return
        newest = self.buffer.latest_state()
        if newest is not None and newest[0] == stamp:  # a late (out-of-order) message is history only
            self.measured, self.measured_state = measured, state  # action joints, state channels

    def on_image(self, cam: CameraSpec, msg: Image) -> None:
        if not self._clock_started():
            return
        try:
            img = cv.image_to_model(msg, cam)
            self.buffer.add_frame(cam.name, self._stamp(msg.header.stamp), img, received=self._now())
        except ValueError as e:
            self._error(cam.name, f"camera {cam.name}: {e}")
            return
        except Exception as e:  # noqa: BLE001 -- drop-and-log, as in on_joints
            self._error(cam.name, f"camera {cam.name} dropped: {type(e).__name__}: {e}")
            return
        tel = self._telemetry()
        tel.image_msgs += 1
        tel.frame(cam.name, time.monotonic())
        self.reasons[cam.name] = ""
        self.worker.wake()

    # ---- plan worker callbacks (worker thread) ----------------------------------------------
    def _on_prepared(self, p: PreparedPlan) -> None:
        self._telemetry().add("prepare", p.prepare_s)

    def _on_prepare_error(self, e: BaseException) -> None:
        tel = self._telemetry()
        tel.prepare_errors += 1
        tel.last_error = f"prepare: {type(e).__name__}: {e}"
        self._log.error(tel.last_error, throttle_duration_sec=5.0)

    # ---- checks -----------------------------------------------------------------------------
    def _stamp(self, header_stamp) -> float:
        """Header stamp s (0: the receive time). A stamp more than ``max_obs_age`` ahead of the
        node clock is rejected (ValueError); one less far ahead (another machine's clock, a sim
        clock the node has not caught up with) is kept for pairing, while its staleness counts
        from its receipt (ObsBuffer ``received``): it cannot stretch the time to the stale hold."""
        now = self._now()
        s = cv.stamp_seconds(header_stamp)
        if s <= 0.0:
            return now
        if s - now > self._max_obs_age:
            raise ValueError(f"header stamp {s:.3f} s is {s - now:.3f} s ahead of the node clock")
        return s

    def _clock_started(self) -> bool:
        """False under use_sim_time until the first /clock (node time 0): no stamp can be judged
        then, so inputs are ignored, not counted as errors (a simulator's first messages often
        beat its first /clock)."""
        if self._now() > 0.0:
            return True
        self._log.info("waiting for /clock (use_sim_time): inputs ignored until it arrives",
                       throttle_duration_sec=5.0)
        return False

    def _error(self, key: str, text: str) -> None:
        self._telemetry().input_errors += 1
        self.reasons[key] = text
        self._log.warning(text, throttle_duration_sec=5.0)
