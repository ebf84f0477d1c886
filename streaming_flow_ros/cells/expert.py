"""A scripted expert for the cells' tasks (Lift, PickEither, PlaceEither): it lifts one cube, and
places it on a pad when the task has pads. Cartesian waypoints for the grip site, turned into
joint targets by damped-least-squares IK on the cell's MuJoCo model (``cells/ik.py``). No ROS.

Which cube: :func:`expert_cube` of the episode's scene: Lift's one cube, or, with two cubes on
the table (PickEither), one of them at random, 50/50, drawn from the scene's seed (its own
stream, independent of the cubes' places), so a set of demonstrations shows both modes. Which
pad (PlaceEither): :func:`expert_pad`, the same way from another stream. :func:`make_expert`
plans both for a task's scene.

Plan (world frame, m, rad, s), made once at the start of the episode from the measured arm
state and the chosen cube's pose (the expert is privileged: it reads the cube from the
simulator):

1. approach: grip site from where it is to ``approach_height`` above the cube, gripper
   pointing down and turned to the cube's yaw (folded into [-45, 45] deg: a cube looks the
   same every 90 deg), minimum-jerk, duration from ``speed``; with ``turn_above_s`` > 0 the
   approach keeps the start's yaw and the gripper turns to the cube's once above it, in that
   many seconds, where the wrist camera sees the cube large (the UR5e's recipe, with
   ``config/train/cell_lift_fine.yaml``: docs/BENCHMARKS.md, cells);
2. descend to the grasp (grip site ``grasp_offset`` above the cube centre);
3. close the gripper (width 0: the cube stops the fingers) and wait ``close_s``;
4. lift by ``lift``, then hold;

or, placing (PlaceEither: ``place`` names a pad), after the lift:

5. transport the cube at the lift's height to above the pad (minimum-jerk, duration from
   ``speed``);
6. lower it until its bottom is ``place_clearance`` above the table;
7. open the gripper and wait ``release_s``;
8. retreat straight up by ``retreat``, then hold.

The Cartesian path is sampled at ``plan_rate_hz`` and each sample solved by IK warm-started
from the previous one (joint limits respected); joint targets between samples are linear. At
run time the expert is a command source like ``sim/expert.py``'s: at time t it returns the
joint positions planned for t + 1 / command_rate_hz (a JTC point with that time_from_start)
and the gripper width (m) planned for then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from ..sim.jtc import JointTrajectory, TrajectoryPoint
from . import scene as sc
from .cell import Cell
from .ik import grasp_yaw, gripper_yaw, rot_z, rotation_error

# Grip site axes pointing down, fingers closing along world y (yaw 0): the site's x axis is
# the closing direction on both robosuite grippers used here (Franka hand, Robotiq 2F-85).
DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


class PlanningError(ValueError):
    """The IK found no joint path for a waypoint (unreachable, or a limit in the way)."""


@dataclass(frozen=True)
class LiftExpertConfig:
    approach_height: float = 0.10  # m above the cube centre
    grasp_offset: float | None = None  # m, grip site above the cube centre (None: the gripper's)
    lift: float = 0.15  # m
    speed: float = 0.25  # m/s, mean approach speed
    min_approach_s: float = 1.5
    descend_s: float = 1.2
    close_s: float = 0.7
    lift_s: float = 1.5
    hold_s: float = 1.0
    plan_rate_hz: float = 50.0
    command_rate_hz: float = 10.0
    max_joint_jump: float = 0.15  # rad between plan samples: larger is an IK branch flip
    turn_above_s: float = 0.0  # s turning to the cube's yaw above it (0: turn during the approach)
    place_clearance: float = 0.003  # m, cube bottom above the table when released (placing)
    lower_s: float = 1.2  # s, placing: down onto the pad
    release_s: float = 0.6  # s, placing: gripper opening, arm still
    retreat: float = 0.08  # m, placing: straight up after the release
    retreat_s: float = 1.0

    def __post_init__(self) -> None:
        if not (0.5 <= self.command_rate_hz <= 1000.0 and self.plan_rate_hz >= self.command_rate_hz):
            raise ValueError("command_rate_hz in [0.5, 1000] and plan_rate_hz >= command_rate_hz required")
        if min(self.speed, self.descend_s, self.lift_s, self.lower_s, self.retreat_s) <= 0 or \
                min(self.close_s, self.hold_s, self.turn_above_s, self.release_s, self.place_clearance) < 0:
            raise ValueError("speed, descend_s, lift_s, lower_s and retreat_s must be > 0; close_s, hold_s, "
                             "turn_above_s, release_s and place_clearance >= 0")


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    tau = np.clip(tau, 0.0, 1.0)
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


def _rotvec_matrix(v: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    quat, mat = np.empty(4), np.empty(9)
    mujoco.mju_axisAngle2Quat(quat, v / angle, angle)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)


@dataclass(frozen=True)
class LiftPlan:
    times: np.ndarray  # (K,) s from the plan start
    q: np.ndarray  # (K, N) rad
    site: np.ndarray  # (K, 3) m, the Cartesian targets
    close_time: float  # s: gripper commanded closed from here
    open_time: float  # s: gripper commanded open again from here (inf: never; Lift)
    phases: dict  # name -> start time, s
    max_ik_error: float  # m

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def position(self, t: float) -> np.ndarray:
        t = min(max(float(t), 0.0), float(self.times[-1]))
        return np.array([np.interp(t, self.times, self.q[:, j]) for j in range(self.q.shape[1])])


def expert_cube(scene) -> str:
    """The cube the expert lifts in the episode of ``scene`` (a task's scene: ``seed`` and
    ``cubes``, the colours on the table): the only one, or one of them uniformly at random from
    the seed (deterministic)."""
    cubes = tuple(scene.cubes)
    if len(cubes) == 1:
        return cubes[0]
    rng = np.random.default_rng([int(scene.seed), 40961])  # not the task's stream (cube places)
    return cubes[int(rng.integers(len(cubes)))]


def expert_pad(scene) -> str | None:
    """The pad the expert places the cube on in the episode of ``scene``: None when the scene
    has no pads (``scene.pads``), else one of them uniformly at random from the seed."""
    pads = tuple(getattr(scene, "pads", ()))
    if not pads:
        return None
    rng = np.random.default_rng([int(scene.seed), 40962])  # its own stream, like expert_cube's
    return pads[int(rng.integers(len(pads)))]


def make_expert(cell: Cell, scene, config: LiftExpertConfig | None = None) -> LiftExpert:
    """The expert for a task's ``scene`` on ``cell`` (right after the task's reset): the cube
    of :func:`expert_cube`, placed on the pad of :func:`expert_pad` when the scene has pads."""
    return LiftExpert(cell, config, cube=expert_cube(scene), place=expert_pad(scene))


class LiftExpert:
    """Plans the lift of the ``cube`` cube (a colour on the table) for the cell's current state
    (call right after the task's reset), and with ``place`` (a pad on the table) its placing
    on that pad. :attr:`mode` is what the task reports as the episode's mode: the pad when
    placing, else the cube.

    ``expert.command_at(t)`` -> (arm joint positions (N,) rad in the driver's order, gripper
    width m), t in s from the plan start."""

    def __init__(self, cell: Cell, config: LiftExpertConfig | None = None, cube: str = "red",
                 place: str | None = None) -> None:
        if cube not in cell.cubes_on_table:
            raise ValueError(f"the {cube!r} cube is not on the table; on the table: {list(cell.cubes_on_table)}")
        if place is not None and place not in cell.pads_on_table:
            raise ValueError(f"the {place!r} pad is not on the table; on the table: {list(cell.pads_on_table)}")
        self.config = c = config or LiftExpertConfig()
        self.cube, self.place = cube, place
        self.mode = place or cube
        self.max_width = cell.robot.gripper.max_width
        ik = cell.make_ik()
        _, q0, _ = cell.joint_state()
        p0, r0 = ik.pose(q0)
        cube_p = cell.cube_position(cube)
        r_goal = rot_z(grasp_yaw(cell.cube_yaw(cube))) @ DOWN
        above = cube_p + [0.0, 0.0, c.approach_height]
        offset = cell.robot.gripper.grasp_offset if c.grasp_offset is None else c.grasp_offset
        grasp = cube_p + [0.0, 0.0, offset]
        lifted = grasp + [0.0, 0.0, c.lift]
        approach_s = max(c.min_approach_s, 1.875 * float(np.linalg.norm(above - p0)) / c.speed)
        # (name, duration, site start, site end, orientation start, orientation end): the
        # orientation turns from r0 to r_goal on the approach, or, with turn_above_s, to the
        # start's yaw pointing down on the approach and then to r_goal above the cube.
        r_above = rot_z(gripper_yaw(r0)) @ DOWN if c.turn_above_s > 0 else r_goal
        segments = [("approach", approach_s, p0, above, r0, r_above)]
        if c.turn_above_s > 0:
            segments.append(("turn", c.turn_above_s, above, above, r_above, r_goal))
        segments += [("descend", c.descend_s, above, grasp, r_goal, r_goal),
                     ("close", c.close_s, grasp, grasp, r_goal, r_goal), ("lift", c.lift_s, grasp, lifted, r_goal, r_goal)]
        if place is None:
            segments.append(("hold", c.hold_s, lifted, lifted, r_goal, r_goal))
        else:
            pad_xy = np.asarray(sc.PADS[place], float)  # the table frame is the world's in x, y
            carried = np.array([*pad_xy, lifted[2]])
            down = np.array([*pad_xy, grasp[2] + c.place_clearance])
            up = down + [0.0, 0.0, c.retreat]
            transport_s = max(c.min_approach_s, 1.875 * float(np.linalg.norm(carried - lifted)) / c.speed)
            segments += [("transport", transport_s, lifted, carried, r_goal, r_goal),
                         ("lower", c.lower_s, carried, down, r_goal, r_goal),
                         ("release", c.release_s, down, down, r_goal, r_goal),
                         ("retreat", c.retreat_s, down, up, r_goal, r_goal),
                         ("hold", c.hold_s, up, up, r_goal, r_goal)]
        dt = 1.0 / c.plan_rate_hz
        times, qs, sites, phases = [], [], [], {}
        t0, q = 0.0, q0.copy()
        worst = 0.0
        for name, dur, a, b, ra, rb in segments:
            turn = rotation_error(rb, ra)
            phases[name] = t0
            n = max(1, math.ceil(dur / dt))
            taus = np.arange(1, n + 1) / n if times else np.arange(0, n + 1) / n
            for tau in taus:
                s = float(_min_jerk(np.array(tau)))
                p = a + s * (b - a)
                r = _rotvec_matrix(s * turn) @ ra
                res = ik.solve(p, q, r)
                if not res.converged(pos_tol=3e-3, rot_tol=0.03):
                    raise PlanningError(f"{name}: IK residual {res.position_error * 1e3:.1f} mm, "
                                        f"{math.degrees(res.orientation_error):.1f} deg at {p.round(3).tolist()}")
                if np.abs(res.q - q).max() > c.max_joint_jump and times:
                    raise PlanningError(f"{name}: IK jumped {np.abs(res.q - q).max():.2f} rad between samples")
                worst = max(worst, res.position_error)
                q = res.q
                times.append(t0 + tau * dur)
                qs.append(q)
                sites.append(p)
            t0 += dur
        self.plan = LiftPlan(np.asarray(times), np.asarray(qs), np.asarray(sites), phases["close"],
                             phases.get("release", math.inf), phases, worst)

    @property
    def command_period(self) -> float:
        return 1.0 / self.config.command_rate_hz

    @property
    def done_time(self) -> float:
        """s after which the expert only holds."""
        return self.plan.duration

    def gripper_at(self, t: float) -> float:
        """Gripper width target, m: open, then closed (0) from the close phase on (and open
        again from the release phase on, placing)."""
        return 0.0 if self.plan.close_time <= t < self.plan.open_time else self.max_width

    def command_at(self, t: float) -> tuple[np.ndarray, float]:
        """(arm joint positions (N,) rad, gripper width m) to reach at t + command_period."""
        t1 = t + self.command_period
        return self.plan.position(t1), self.gripper_at(t1)


def run_expert_episode(cell: Cell, task, seed: int, config: LiftExpertConfig | None = None,
                       tail_s: float = 0.5) -> dict:
    """One expert episode without cameras or bags (for success rates and tests): the task's
    reset from ``seed``, the expert's JTC + gripper commands at its command rate for the cube
    of :func:`make_expert`, physics in 10 ms steps with the task updated after each. Returns
    seed, success, max cube height, table contact, the expert's mode (``object``: its cube, or
    its pad when placing) and the task's (``lifted_object``, None without success)."""
    scene = task.reset(cell, seed)
    expert = make_expert(cell, scene, config)
    t0 = cell.time
    period = expert.command_period
    for k in range(round((expert.done_time + tail_s) / period) + 1):
        q, width = expert.command_at(cell.time - t0)
        r = cell.command_trajectory(JointTrajectory(cell.joint_names, (TrajectoryPoint(q.tolist(), period),)))
        if not r.accepted:
            raise ValueError(f"the cell rejected the expert's command: {r.reason}")
        cell.command_gripper(width)
        end = t0 + (k + 1) * period
        while cell.time < end - 1e-6:
            cell.step(0.01)
            task.update(cell)
    m = cell.metrics()
    return {"seed": int(seed), "success": bool(task.success), "max_cube_height": task.max_height,
            "table_contact": m.table_contact, "object": expert.mode, "lifted_object": task.lifted_object}
