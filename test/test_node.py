"""The policy node over real DDS (rclpy, Fast DDS) with a real untrained checkpoint: the command
contract, re-anchoring, a slow encoder, enable/lifecycle, stale hold + recovery, remapping,
forward mode, sim time, bad checkpoints/parameters, presets. Each test has its own rclpy context
on a unique ROS_DOMAIN_ID. Timing checks are deliberately loose (2 noisy cores)."""

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from domain_coordinator import domain_id
from lifecycle_msgs.srv import GetState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from ros_harness import JOINTS, Peer, make_checkpoint, ros_context, tick_bar, wait_until
from rosgraph_msgs.msg import Clock
from std_srvs.srv import SetBool

from streaming_flow_ros.bench.common import CpuSteal
from streaming_flow_ros.policy.control import LoopConfig, reanchor_period
from streaming_flow_ros.ros.node import PolicyNode
from streaming_flow_ros.ros.runner import (
    NodeRunner,
    create_policy_node,
    make_executor,
    run_node_in_thread,
)

ROOT = Path(__file__).resolve().parents[1]
STEP = 0.5 / 100.0  # max_velocity 0.5 rad/s at 100 Hz
BASE = {"enabled": True, "max_velocity": [0.5], "controller_joints": ["j1", "j2", "j3"],
        "reanchor": "observation",  # these tests count re-anchors: one per fresh frame
        "position_lower": [-1.0] * 3,
        "position_upper": [1.0] * 3, "diagnostics_period": 0.2, "log_period": 0.0}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "policy.safetensors")


class Spy:
    """Wraps a runtime policy: counts starts, records each step's flow time, can slow prepare."""

    def __init__(self, inner, prepare_delay: float = 0.0):
        self.inner, self.delay = inner, prepare_delay
        self.spec, self.obs_horizon, self.config = inner.spec, inner.obs_horizon, inner.config
        self.action_horizon = inner.action_horizon
        # started: [plan age s, lag ticks it catches up, flow time of the first step after it]
        self.starts, self.steps, self.started = 0, [], []

    def prepare(self, obs):
        time.sleep(self.delay)
        return self.inner.prepare(obs)

    def reset(self, action):
        self.inner.reset(action)

    def start(self, plan, measured_state=None, anchor=None, now=None):
        self.starts += 1
        self.inner.start(plan, measured_state, anchor, now)
        self.started.append([None if now is None else now - plan.stamp, getattr(self.inner, "lag_ticks", None), None])

    def step(self):
        r = self.inner.step()
        self.steps.append((r.t, r.hold))
        if self.started and self.started[-1][2] is None:
            self.started[-1][2] = r.t
        return r

    @property
    def last_action(self):
        return self.inner.last_action

    @property
    def t(self):
        return self.inner.t


def spy_loader(holder: list, delay: float = 0.0):
    from streaming_flow_ros.policy.streaming import load_policy

    def load(path, config):
        holder.append(Spy(load_policy(path, config), delay))
        return holder[-1]

    return load


@contextlib.contextmanager
def running(ckpt, params=None, peer_kw=None, **node_kw):
    with ros_context() as ctx:
        peer = Peer(ctx, **(peer_kw or {}))
        runner = run_node_in_thread(ctx, {"checkpoint": ckpt, **BASE, **(params or {})}, **node_kw)
        try:
            yield runner.node, peer
        finally:
            runner.stop()
            peer.close()


def positions(msgs):
    return np.array([list(m.points[0].positions) for m in msgs])


@pytest.mark.parametrize("source", ["thread", "timer"])
def test_jtc_command_contract(ckpt, source):
    with running(ckpt, params={"tick_source": source}) as (node, peer):
        assert node.tick_source == source
        peer.wait_for(peer.trajectories, 1)
        t0 = time.monotonic()
        time.sleep(1.5)
        trajs = peer.take(peer.trajectories, since=t0)
        actions = peer.take(peer.actions)
    assert 0.5 * 150 <= len(trajs) <= 1.3 * 150, "rate roughly 100 Hz"
    for m in trajs:
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == (0, 0)
        assert list(m.joint_names) == list(JOINTS) and len(m.points) == 1
        p = m.points[0]
        assert len(p.positions) == 3 and len(p.velocities) == 0
        assert p.time_from_start.sec * 1e9 + p.time_from_start.nanosec == 20_000_000
    pos = positions(trajs)
    assert np.isfinite(pos).all() and (np.abs(pos) <= 1.0).all()
    assert (np.abs(np.diff(pos, axis=0)) <= STEP + 1e-9).all()
    act = np.array([list(a.positions) for a in actions])
    assert act.shape[1] == 3 and np.isfinite(act).all()
    assert any(np.allclose(act[i], pos[-1]) for i in range(len(act)))  # same stream on ~/action


def test_each_observation_reanchors(ckpt):
    spies = []
    with running(ckpt, peer_kw={"img_hz": 30.0}, loader=spy_loader(spies)) as (node, _peer):  # BASE: observation
        spy = spies[0]
        starts0, steps0 = spy.starts, len(spy.steps)
        time.sleep(1.5)
        starts, steps, started = spy.starts - starts0, spy.steps[steps0:], spy.started[starts0:]
        reanchors = node.telemetry.reanchors
    dt = 10.0 / (100.0 * 16)  # data_rate / (control_rate * H)
    assert starts >= 20, f"only {starts} re-anchors from ~45 frames"
    assert reanchors >= starts
    # each start begins the new flow at t = 0 and catches up with the plan's age (the node
    # passes now) over the first data period: the first step lands at (1 + lag / 10) dt
    assert all(age is not None and 0 <= age < 0.2 for age, _, _ in started), started
    assert all(lag == round(age * 100.0) for age, lag, _ in started), started
    firsts = [(lag, t1) for _, lag, t1 in started if t1 is not None]
    assert len(firsts) >= 20 and all(t1 == pytest.approx((1 + lag / 10) * dt) for lag, t1 in firsts), firsts
    assert max(t for t, _ in steps) < 40 * dt, "re-anchored long before the plan runs out"


def test_reanchor_ticks_takes_the_first_plan_at_once(ckpt):
    """reanchor: ticks waits reanchor_ticks between plans, but never for the first plan after an
    (re-)anchor: enabling starts streaming with the next fresh plan."""
    spies = []
    params = {"reanchor": "ticks", "reanchor_ticks": 100000}
    with running(ckpt, params=params, peer_kw={"img_hz": 30.0}, loader=spy_loader(spies)) as (node, _peer):
        assert wait_until(lambda: spies and spies[0].starts >= 1, 5.0), "first plan after activation"
        node.set_parameters([Parameter("enabled", value=False)])
        time.sleep(0.2)
        starts = spies[0].starts
        node.set_parameters([Parameter("enabled", value=True)])
        assert wait_until(lambda: spies[0].starts > starts, 2.0), "first plan after enabling"
        time.sleep(1.0)
        assert spies[0].starts == starts + 1, "then no re-anchor before reanchor_ticks"


def test_reanchor_horizon_runs_each_plan_for_the_action_horizon(ckpt):
    """reanchor: horizon starts a plan every action_horizon data periods (the paper's receding
    horizon), whatever the camera rate: flow time then reaches action_horizon / H between starts."""
    spies = []
    with running(ckpt, params={"reanchor": "horizon"}, peer_kw={"img_hz": 30.0}, loader=spy_loader(spies)):
        assert wait_until(lambda: spies and spies[0].starts >= 1, 5.0), "first plan after activation"
        spy = spies[0]
        period = reanchor_period(LoopConfig(reanchor="horizon"), spy)
        time.sleep(2.0)
        ts = [t for t, _ in spy.steps]
    assert period == round(spy.action_horizon * 100.0 / spy.spec.data_rate_hz)
    # flow time climbs through a whole horizon before each restart (ticks may be missed, not
    # added), plus the observation age each plan caught up with (latency compensation)
    dt, lag = 10.0 / (100.0 * 16), max(lag for _, lag, _ in spy.started)
    assert spy.action_horizon / 16 - 2 * dt <= max(ts) <= spy.action_horizon / 16 + (lag + 2) * dt, (max(ts), lag)
    restarts = sum(1 for a, b in itertools.pairwise(ts) if b < a)
    assert 1 <= restarts <= 2.0 * 100.0 / period + 1, f"{restarts} restarts in 2 s at one per {period} ticks"


def test_slow_encoder_does_not_stretch_ticks(ckpt):
    spies = []
    with running(ckpt, loader=spy_loader(spies, delay=0.2)) as (node, peer):
        peer.wait_for(peer.trajectories, 1)
        t0, n0, steal = node.now_s(), node.telemetry.ticks, CpuSteal()
        time.sleep(2.0)
        ticks = node.telemetry.ticks - n0
        elapsed = node.now_s() - t0
        period_err = node.telemetry.summary(node.now_s(), 100.0)["period_err_p50_ms"]
        starts = spies[0].starts
    # a 0.2 s encoder on the control thread would leave < 0.3 of the ticks and ~100 ms period errors
    assert ticks >= tick_bar(0.8, steal.share()) * elapsed * 100.0, f"{ticks} ticks in {elapsed:.2f} s"
    assert period_err < 20.0
    assert 2 <= starts <= 15  # ~5 plans/s with a 0.2 s encoder


def _call(node, client, request, timeout=5.0):
    assert client.wait_for_service(timeout_sec=timeout)
    future = client.call_async(request)
    assert wait_until(future.done, timeout)
    return future.result()


def test_dry_run_enable_disable_and_lifecycle(ckpt):
    with running(ckpt, params={"enabled": False}) as (node, peer):
        peer.wait_for(peer.actions, 20)
        assert peer.take(peer.trajectories) == [], "dry run sends nothing to the controller"
        measured = peer.positions.copy()
        enable = peer.node.create_client(SetBool, "/policy_node/enable")
        assert _call(peer.node, enable, SetBool.Request(data=True)).success
        first = positions(peer.wait_for(peer.trajectories, 5))[0]
        assert np.abs(first - measured).max() <= STEP + 1e-6, "enabling starts at the measured state"
        assert node.get_parameter("enabled").value is True

        node.set_parameters([Parameter("enabled", value=False)])
        assert peer.settled(peer.trajectories) is not None, "disabled: no more commands"
        trajs = peer.take(peer.trajectories)
        np.testing.assert_allclose(positions(trajs[-1:])[0], positions(trajs[-2:-1])[0])  # hold sent
        assert len(peer.take(peer.actions, since=time.monotonic() - 0.2)) > 5, "dry run continues"

        get_state = peer.node.create_client(GetState, "/policy_node/get_state")
        assert _call(peer.node, get_state, GetState.Request()).current_state.label == "active"
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        n = peer.settled(peer.actions)  # at 100 Hz a node still publishing never settles
        assert n is not None, "inactive: nothing published"
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        peer.wait_for(peer.actions, n + 10)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.lifecycle_state == "unconfigured" and node.policy is None
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.lifecycle_state == "inactive"


def test_stale_inputs_hold_then_recover(ckpt):
    def tail(n):
        return positions(peer.take(peer.trajectories)[-n:])

    def holding():
        t = tail(8)
        return len(t) == 8 and np.ptp(t, axis=0).max() == 0.0

    with running(ckpt, params={"max_obs_age": 0.25}) as (node, peer):
        for stall in (peer.images_on, peer.feeding):  # camera only, then everything
            peer.wait_for(peer.trajectories, 30)
            stale0 = node.telemetry.ticks_stale
            stall.clear()
            assert wait_until(lambda: "stale" in node.status_reason, 3.0)
            assert wait_until(holding, 3.0), "holds the last command"
            assert np.isfinite(tail(8)).all() and node.telemetry.ticks_stale > stale0
            hold, reanchors = tail(1)[0], node.telemetry.reanchors
            n_before = len(peer.take(peer.trajectories))
            stall.set()
            t0, ticks0 = node.now_s(), node.telemetry.ticks
            assert wait_until(lambda r=reanchors: node.telemetry.reanchors > r, 5.0), "re-anchors on recovery"
            assert node.status_reason == ""
            time.sleep(0.5)
            ticks, elapsed = node.telemetry.ticks - ticks0, node.now_s() - t0
            assert ticks <= 1.3 * 100 * elapsed + 5, "no burst of catch-up ticks"
            after = positions(peer.take(peer.trajectories)[n_before:])
            assert np.abs(after[0] - hold).max() <= STEP + 1e-9, "no jump on recovery"
            assert (np.abs(np.diff(after, axis=0)) <= STEP + 1e-9).all()


def test_bad_checkpoint_stays_unconfigured(ckpt, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with ros_context() as ctx:
        peer = Peer(ctx)
        for path, match in ((str(tmp_path / "missing.safetensors"), "does not exist"), (str(corrupt), "")):
            node = create_policy_node(ctx, {"checkpoint": path, "diagnostics_period": 0.1})
            runner = NodeRunner(node, make_executor("events", ctx))
            try:
                assert node.trigger_configure() != TransitionCallbackReturn.SUCCESS
                assert node.lifecycle_state == "unconfigured"
                assert "configure failed" in node.status_reason and match in node.status_reason
                t0 = time.monotonic()
                diag = peer.wait_for(peer.diagnostics, 1, since=t0)[-1].status[0]
                assert diag.level == diag.ERROR and "configure failed" in diag.message
            finally:
                runner.stop()
        with pytest.raises(ValueError, match="failed to start"):
            run_node_in_thread(ctx, {"checkpoint": str(corrupt)})
        peer.close()


def test_parameters_validated_at_start_and_on_set(ckpt):
    with ros_context() as ctx:
        with pytest.raises(ValueError, match="control_rate_hz"):
            create_policy_node(ctx, {"control_rate_hz": 0.0})
        node = create_policy_node(ctx, {"checkpoint": ckpt})
        try:
            r = node.set_parameters([Parameter("command_mode", value="position")])[0]
            assert not r.successful and "command_mode" in r.reason
            r = node.set_parameters([Parameter("max_obs_age", value=-1.0)])[0]
            assert not r.successful and "max_obs_age" in r.reason
            assert node.set_parameters([Parameter("max_obs_age", value=0.2)])[0].successful
            assert node.params.loop.max_obs_age == 0.2
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            r = node.set_parameters([Parameter("controller_joints", value=["j1", "x", "j3"])])[0]
            assert not r.successful and "do not match" in r.reason  # checked against the checkpoint
            r = node.set_parameters([Parameter("max_velocity", value=[1.0, 1.0])])[0]
            assert not r.successful and "max_velocity" in r.reason
        finally:
            node.destroy_node()
        node = create_policy_node(ctx, {"checkpoint": ckpt, "anchor": "state", "state_blend": 0.5},
                                  node_name="policy_node_state_anchor")
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        finally:
            node.destroy_node()


def test_remapping_and_namespace(ckpt):
    cli = ["--ros-args", "-r", "joint_states:=/arm/js", "-r", "image_raw:=/arm/cam",
           "-r", "joint_trajectory:=/arm/ctrl/joint_trajectory"]
    peer_kw = {"ns": "/robot1", "joint_topic": "/arm/js", "cameras": ("/arm/cam",),
               "trajectory_topic": "/arm/ctrl/joint_trajectory"}
    with running(ckpt, peer_kw=peer_kw, namespace="/robot1", cli_args=cli) as (node, peer):
        peer.wait_for(peer.trajectories, 10)
        peer.wait_for(peer.actions, 10)  # /robot1/policy_node/action
        assert node.telemetry.reanchors > 0


def test_forward_mode_uses_controller_order(ckpt):
    params = {"command_mode": "forward", "controller_joints": ["j3", "j1", "j2"]}
    with running(ckpt, params=params) as (_node, peer):
        cmds = peer.wait_for(peer.commands, 20)
        time.sleep(0.1)
        actions = np.array([list(a.positions) for a in peer.take(peer.actions)])
        assert peer.take(peer.trajectories) == []
    last = np.array(cmds[-1].data)
    assert any(np.allclose(a[[2, 0, 1]], last) for a in actions)


def test_follows_sim_time(ckpt):
    """With use_sim_time the control timer follows /clock (here at half real speed)."""
    with ros_context() as ctx:
        peer = Peer(ctx)
        pub = peer.node.create_publisher(Clock, "/clock", 10)
        peer.zero_stamps = True
        sim = [1000.0]

        def tick_clock():
            sim[0] += 0.0025
            s = int(sim[0] * 1e9)
            pub.publish(Clock(clock=rclpy.time.Time(nanoseconds=s).to_msg()))

        clock_timer = peer.node.create_timer(0.005, tick_clock)
        time.sleep(0.2)
        runner = run_node_in_thread(ctx, {"checkpoint": ckpt, **BASE, "use_sim_time": True})
        try:
            node = runner.node
            assert node.tick_source == "timer", "auto: the rclpy timer under use_sim_time"
            assert wait_until(lambda: node.telemetry.ticks > 5, 5.0)
            assert node.now_s() == pytest.approx(sim[0], abs=0.05)
            n0, s0, w0 = node.telemetry.ticks, sim[0], time.monotonic()
            time.sleep(1.5)
            ticks, sim_dt, wall_dt = node.telemetry.ticks - n0, sim[0] - s0, time.monotonic() - w0
            assert ticks <= 1.3 * 100 * sim_dt + 5 and ticks < 0.8 * 100 * wall_dt
            assert peer.take(peer.trajectories), "streams with sim-time stamps"
        finally:
            runner.stop()
            peer.node.destroy_timer(clock_timer)
            peer.close()


@pytest.mark.parametrize("preset", sorted(p.stem for p in (ROOT / "config" / "robots").glob("*.yaml")))
def test_presets_load_into_node_params(preset):
    args = ["policy_node", "--ros-args", "--params-file", str(ROOT / "config" / "policy.yaml"),
            "--params-file", str(ROOT / "config" / "robots" / f"{preset}.yaml")]
    ctx = rclpy.Context()
    with domain_id() as did:  # a private domain: the tests run two files at a time
        rclpy.init(args=args, context=ctx, domain_id=did)
        try:
            node = PolicyNode(context=ctx)
            assert len(node.params.output.controller_joints) >= 3
            assert len(node.params.limits.position_lower) == len(node.params.output.controller_joints)
            assert node.params.enabled is False
            node.destroy_node()
        finally:
            rclpy.try_shutdown(context=ctx)


def test_main_console_script_with_ros_args(ckpt):
    """`python -m streaming_flow_ros.ros.node --ros-args ...`: params, remaps, autostart, SIGINT."""
    with ros_context() as ctx:
        did = ctx.get_domain_id()
        env = {**os.environ, "ROS_DOMAIN_ID": str(did)}
        bad = subprocess.run([sys.executable, "-m", "streaming_flow_ros.ros.node", "--ros-args",
                              "-p", "control_rate_hz:=0.0"], check=False, env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "control_rate_hz" in bad.stderr
        peer = Peer(ctx, trajectory_topic="/remapped/joint_trajectory")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streaming_flow_ros.ros.node", "--ros-args", "-p", f"checkpoint:={ckpt}",
             "-p", "autostart:=true", "-p", "enabled:=true", "-p", "controller_joints:=['j3','j2','j1']",
             "-r", "joint_trajectory:=/remapped/joint_trajectory"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            msgs = peer.wait_for(peer.trajectories, 10, timeout=30.0)
            assert list(msgs[-1].joint_names) == ["j3", "j2", "j1"]
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            peer.close()
        assert proc.returncode == 0, out[-2000:]
