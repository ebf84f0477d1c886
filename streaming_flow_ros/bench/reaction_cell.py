"""`sfp bench reaction --cell panda`: the reaction benchmark (bench/reaction.py) on the MuJoCo
arm cell: a Franka Panda with its gripper lifting a cube (cells/tasks.py Lift), driven without
DDS, synchronously, through the one control loop the node runs (policy/control.py), with the
node's limits (the robot's preset with its gripper, bound by joint name: ros/params.py
``resolve_limits``) and its outputs (the arm command as the node's JTC / forward point, the
gripper channel to the cell's gripper: ros/outputs.py).

Protocol, per episode (scene seed ``EVAL_SEED + e``, the seeds of ``sfp eval cell``) and method:
- reset the task, let ``SETTLE_S`` pass (the arm holds home; the frames of that time are the
  first observation history, as the node has them at enable), then control at 100 Hz from
  enable; every 0.1 s an observation (joint state + the scene and wrist images at the
  checkpoint's size) is taken, and given to the loop ``delay`` data periods late, latency
  compensation on (the node's default);
- two rollouts from the same seed: the *base* one, and the *perturbed* one in which, at data
  step ``k`` after enable (``WINDOW``: during the approach, before the gripper closes), the
  cube is moved ``SHIFT_M`` on the table in a random direction (a new free-joint pose, same
  orientation, velocities zeroed), kept inside the area the task places cubes in;
- **reaction latency**: from the perturbation to the first tick whose commanded arm joints
  differ from the base rollout's at the same tick by more than ``EPS_RAD`` on any joint; both
  rollouts are checked bit-identical before it (MuJoCo, rendering and the seeded policy are
  deterministic); no response within ``reaction.NO_REACTION_S`` counts as that cap;
- **success after perturbation**: the task's success (cube held lifted) before its time limit
  (12 s after enable);
- **jerk RMS** of the commanded arm joints (third difference / dt^3, rad/s^3) over the
  perturbed rollout, and at the ticks where a new plan started (seams).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..cells.cell import Cell
from ..cells.robots import robot_spec
from ..cells.scene import cube_name
from ..cells.tasks import make_task
from ..data.image_codec import to_model_image
from ..policy.control import ControlLoop, LatestObservation, TickInputs
from ..policy.protocol import Observation, RuntimePolicy
from ..policy.safety import BinaryGripper
from ..policy.streaming import load_policy
from ..presets import load_preset
from ..ros.params import NodeParams, controller_joints, resolve_limits  # plain dataclasses, no rclpy
from ..sim.jtc import JointTrajectory, TrajectoryPoint
from . import reaction
from .pusht.evaluate import runtime_config

TASK = "lift"
EVAL_SEED = 100_000  # ros/cell_loop.py EVAL_SEED: disjoint from the recorded demos' seeds (0 up)
CONTROL_HZ = 100.0
DATA_HZ = 10.0  # observations (the checkpoints' data rate)
SETTLE_S = 0.5  # s between reset and enable (ros/cell_loop.py settle_s)
EPS_RAD = 1e-3  # a commanded arm joint this far from the base rollout's is a reaction
# data steps after enable, [low, high): 0.8-1.5 s, the approach. Unperturbed, on the eval scenes the
# Lift SFP starts closing the gripper at 2.2-2.7 s, the FM-chunk checkpoint at 1.7-2.5 s.
WINDOW = (8, 16)
SHIFT_M = (0.04, 0.07)  # cube displacement, m
TIME_LIMIT_S: float | None = None  # s after enable; None: the task's (12 s)


def about(robot: str) -> dict[str, Any]:
    """What the JSON says about the protocol (bench/reaction.py ``render`` captions the table
    with it)."""
    limit = TIME_LIMIT_S or make_task(TASK).config.time_limit
    return {"task": TASK, "robot": robot, "control_hz": CONTROL_HZ, "eps_rad": EPS_RAD,
            "units": "rad/s^3, commanded arm joints",
            "protocol": (f"{robot.capitalize()} {TASK.capitalize()} cell (joint state + scene and wrist cameras), "
                         f"cube moved {SHIFT_M[0] * 100:.0f}-{SHIFT_M[1] * 100:.0f} cm at "
                         f"{WINDOW[0] / DATA_HZ:.1f}-{(WINDOW[1] - 1) / DATA_HZ:.1f} s, reaction = first command "
                         f"> {EPS_RAD * 1e3:.0f} mrad off the base rollout on an arm joint, success = cube lifted "
                         f"within {limit:.0f} s")}


def perturbation(seed: int) -> tuple[int, np.ndarray]:
    """(data step k after enable, cube displacement (2,) m) of scene ``seed``: a random
    direction, each component that would leave the task's cube area (from the scene's cube
    place) mirrored back into it (always inside: the area is wider than twice the shift)."""
    rng = np.random.default_rng([int(seed), 7100])
    k = int(rng.integers(*WINDOW))
    direction = rng.uniform(0, 2 * np.pi)
    shift = rng.uniform(*SHIFT_M) * np.array([np.cos(direction), np.sin(direction)])
    task = make_task(TASK)
    xy = np.asarray(task.scene(seed).cube_xy)
    lo, hi = np.array([task.config.cube_x[0], task.config.cube_y[0]]), np.array([task.config.cube_x[1], task.config.cube_y[1]])
    out = (xy + shift < lo) | (xy + shift > hi)
    return k, np.where(out, -shift, shift)


def displace_cube(cell: Cell, colour: str, shift: np.ndarray) -> None:
    """Move the ``colour`` cube by ``shift`` (2,) m on the table, same height and orientation,
    at rest (its free joint's pose set, velocities zeroed)."""
    import mujoco  # here, not at the top: cells/cell.py chooses the GL backend before mujoco loads

    with cell.lock:
        joint = cell.data.joint(f"{cube_name(colour)}_joint")
        joint.qpos[:2] += shift
        joint.qvel[:] = 0.0
        mujoco.mj_forward(cell.model, cell.data)


class CellIO:
    """The node's view of the cell, in the checkpoint's names: measured joints (action and state
    order), camera frames at the model's size, and the node's outputs (ros/outputs.py) applied
    straight to the cell: the controller joints as a JTC point ``lookahead_ticks`` ahead, with
    velocities when ``publish_velocities`` (or a forward command), the gripper joint (continuous
    or binary) as the gripper width."""

    def __init__(self, cell: Cell, policy: RuntimePolicy, params: NodeParams) -> None:
        spec, grip = policy.spec, cell.robot.gripper
        self.cell, self.params, self.spec = cell, params, spec
        self.limits = resolve_limits(params, spec)
        self.arm = controller_joints(params, spec)
        names = (*cell.joint_names, grip.joint)
        missing = sorted((set(spec.state_names) | set(spec.action_names)) - set(names))
        if missing:
            raise ValueError(f"the checkpoint's joints {missing} are not the {cell.robot.name} cell's {list(names)}")
        self._names = names
        self.arm_idx = np.array([spec.action_names.index(n) for n in self.arm], np.intp)
        self._grip_idx = spec.action_names.index(grip.joint)
        self._tfs = params.output.lookahead_ticks / params.loop.control_rate_hz
        i = self._grip_idx
        self._binary = (BinaryGripper(self.limits.lower[i], self.limits.upper[i], params.output.gripper_hysteresis)
                        if params.output.gripper_mode == "binary" else None)

    def measured(self) -> tuple[np.ndarray, np.ndarray]:
        """(action joints (D_a,), state channels (D_s,)): the arm's positions and the gripper
        joint in driver units, as the cell node's joint_states carry them."""
        _, q, _ = self.cell.joint_state()
        value = dict(zip(self._names, [*q, self.cell.robot.gripper.joint_from_width(self.cell.gripper_width())]))
        return (np.array([value[n] for n in self.spec.action_names]),
                np.array([value[n] for n in self.spec.state_names]))

    def frames(self) -> dict[str, np.ndarray]:
        """Each checkpoint camera's image now, at the model's size (the node's conversion)."""
        return {c.name: to_model_image(self.cell.render(c.name)[1], c.height, c.width, c.channels)
                for c in self.spec.cameras}

    def send(self, command: np.ndarray, velocity: np.ndarray) -> None:
        """``command`` (D_a,) rad (``velocity`` rad/s) to the arm controller and the gripper, as
        the node publishes them."""
        out, arm = self.params.output, command[self.arm_idx]
        if out.command_mode == "jtc":
            vel = velocity[self.arm_idx].tolist() if out.publish_velocities else None
            r = self.cell.command_trajectory(JointTrajectory(self.arm, (TrajectoryPoint(arm.tolist(), self._tfs, vel),)))
        else:
            r = self.cell.command_forward(arm)
        if not r.accepted:
            raise RuntimeError(f"the cell rejected the arm command: {r.reason}")
        g = command[self._grip_idx]
        if self._binary is not None:
            g = self._binary(g)
        self.cell.command_gripper(self.cell.robot.gripper.width_from_joint(float(g)))


def node_params(robot: str) -> NodeParams:
    """The node's parameters for the cell: the robot's preset with its stock gripper, at the
    bench's control rate."""
    return NodeParams.from_mapping({**load_preset(robot_spec(robot).preset, gripper=True),
                                    "control_rate_hz": CONTROL_HZ})


def delayed_observation(samples: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]], n: int, delay: int,
                        first: int, obs_horizon: int) -> Observation:
    """What the loop is offered at data step ``n``: the sample ``delay`` steps back (none before
    ``first``) and its history at the data rate, the oldest repeated before ``first``, stamped
    with that sample's time (s after enable). ``samples``: data step -> (state, frames)."""
    j = max(first, n - delay)
    idx = [max(first, j - (obs_horizon - 1 - q)) for q in range(obs_horizon)]
    images = {c: np.stack([samples[q][1][c] for q in idx]) for c in samples[j][1]}
    return Observation(np.stack([samples[q][0] for q in idx]), images, j / DATA_HZ)


def rollout(checkpoint: str, method: str, every: int, seed: int, delay: int, perturb: bool,
            robot: str = "panda") -> dict[str, Any]:
    """One episode of scene ``seed`` on a fresh cell through the ControlLoop; returns the
    commands (T, D_a) in the checkpoint's order, the arm columns, plan-start ticks, the
    perturbation tick, the task's success and the cube's final place. The perturbed rollout
    runs to success or the time limit; the base one to ``reaction.NO_REACTION_S + 0.5`` s after
    the perturbation tick."""
    m = round(CONTROL_HZ / DATA_HZ)
    policy = load_policy(checkpoint, runtime_config(method, CONTROL_HZ, seed=seed, latency_comp=True))
    params = node_params(robot)
    cams = policy.spec.cameras
    cell = Cell(robot, image_size=(cams[0].width, cams[0].height) if cams else (96, 96))
    try:
        task = make_task(TASK)
        scene = task.reset(cell, seed)
        io = CellIO(cell, policy, params)
        plans = LatestObservation(policy.prepare)
        loop = ControlLoop(policy, io.limits, reaction.arm_loop_config(every, CONTROL_HZ, DATA_HZ), plans)
        k, shift = perturbation(seed)
        limit = TIME_LIMIT_S or task.config.time_limit
        end_s = limit if perturb else k / DATA_HZ + reaction.NO_REACTION_S + 0.5
        first = -round(SETTLE_S * DATA_HZ)  # the data step of the first frame (at reset)
        samples: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}  # data step -> (state, frames)
        commands, starts = [], []
        for i in range(first * m, round(end_s * CONTROL_HZ)):
            if perturb and i == k * m:
                displace_cube(cell, scene.cubes[0], shift)
            if i % m == 0:
                samples[i // m] = (io.measured()[1], io.frames())
                plans.offer(delayed_observation(samples, i // m, delay, first, policy.obs_horizon))
            if i >= 0:
                measured, state = io.measured()
                out = loop.tick(i / CONTROL_HZ, TickInputs.simulated(measured, state))
                if out.command is None:  # fresh simulated inputs: only a refused anchor
                    raise RuntimeError(f"seed {seed}: no command at tick {i}: {out.hold}")
                io.send(out.command, out.velocity)
                commands.append(out.command.copy())
                if out.reanchored:
                    starts.append(i)
            cell.step(1.0 / CONTROL_HZ)
            if i >= 0 and task.update(cell) and perturb and i >= k * m:
                break
        return {"commands": np.array(commands), "arm": io.arm_idx, "starts": starts, "k_tick": k * m,
                "success": bool(task.success), "cube_xy": cell.cube_position(scene.cubes[0])[:2], "rate": CONTROL_HZ}
    finally:
        cell.close()


def episode(checkpoint: str, method: str, every: int, index: int, delay: int, robot: str = "panda") -> dict[str, float]:
    """Episode ``index`` (scene ``EVAL_SEED + index``): base and perturbed rollout, compared
    (bench/reaction.py's row: reaction_s, success, jerk_rms, seam_jerk_rms). Raises
    RuntimeError when the two differ before the perturbation (the criterion needs them equal)."""
    seed = EVAL_SEED + index
    base = rollout(checkpoint, method, every, seed, delay, perturb=False, robot=robot)
    pert = rollout(checkpoint, method, every, seed, delay, perturb=True, robot=robot)
    return {**reaction.compare_joint_rollouts(base, pert, EPS_RAD, f"seed {seed} {method}", pert["arm"]),
            "success": pert["success"]}
