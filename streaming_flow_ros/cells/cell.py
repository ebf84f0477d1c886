"""A MuJoCo cell that behaves like a real arm's ros2_control stack, without ROS.

- Arm: MuJoCo position servos (kp, kv per joint, the model's torque limits are not modelled;
  gravity compensated) follow the desired state of a :class:`~streaming_flow_ros.sim.jtc.
  TrajectoryController` (joint_trajectory_controller / forward_command_controller semantics, the
  same implementation as the planar sim), sampled every physics step (500 Hz, the ros2_control
  update rate) with velocity feed-forward: torque = kp (q_d - q) + kv (qd_d - qd).
- Joints are named as the real driver names them (``RobotSpec.driver_joints``).
- Gripper: a width w in [0, max_width] m (clamped), position-servoed fingers.
- Cameras: ``scene`` (fixed, looking at the table) and ``wrist`` (the arm's eye-in-hand),
  rendered offscreen (set ``MUJOCO_GL=egl`` before importing mujoco: done here if unset).
- Cubes: a red and a green one (``scene.CUBE_COLORS``). The red cube is always on the table;
  the green one is on the table only when :meth:`Cell.reset` places it, and otherwise parked
  on the floor under the table, out of every camera's view and of the measurements
  (``scene.PARKED_XY``), so a one-cube task (Lift) sees, measures and renders one cube.
- Measurements: the heights of the cubes on the table, arm (or gripper) contacts with the
  table, time.

Thread safety: every public method takes the cell's lock; rendering holds it only while the
scene is copied, so stepping and rendering can run in different threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen on a headless machine (before importing mujoco)

import mujoco
import numpy as np

from ..sim.jtc import CommandResult, JointTrajectory, TrajectoryController
from . import scene as sc
from .ik import GRIP_SITE, ArmIK, grasp_yaw, gripper_yaw
from .robots import RobotSpec, robot_spec

CAMERAS = {"scene": "scene", "wrist": "robot/eye_in_hand"}
LIFT_HEIGHT = 0.04  # m above the table: "cube lifted"


@dataclass(frozen=True)
class CellMetrics:
    """The running episode: ``time`` s, cube heights m above the table (bottom face), table
    contacts (latched since reset) and the robot bodies that touched it.

    ``cube_height`` is the highest cube on the table (with one cube, Lift's: that cube's
    height), ``max_cube_height`` its peak since reset, ``cube_heights`` each cube on the table
    by colour; a parked cube is in none of them."""

    time: float
    cube_height: float
    max_cube_height: float
    lifted: bool
    table_contact: bool
    table_contact_steps: int
    table_contact_bodies: tuple[str, ...]
    cube_heights: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


class Cell:
    """One arm on a table with one or two cubes (see the module docstring).

    Args:
        robot: a name in :data:`~streaming_flow_ros.cells.robots.ROBOTS` or a RobotSpec.
        image_size: (width, height) of rendered images, px.
    """

    def __init__(self, robot: str | RobotSpec = "panda", image_size: tuple[int, int] = (96, 96)) -> None:
        self.robot = robot if isinstance(robot, RobotSpec) else robot_spec(robot)
        w, h = (int(v) for v in image_size)
        if not (8 <= w <= 4096 and 8 <= h <= 4096):
            raise ValueError(f"image_size must be within 8..4096 px, got {image_size}")
        self.image_size = (w, h)
        self.lock = threading.RLock()
        self.model = sc.build_model(self.robot, max_image_size=(max(w, 640), max(h, 480)))
        self.data = mujoco.MjData(self.model)
        m, r = self.model, self.robot
        self.dt = float(m.opt.timestep)
        jid = [m.joint(f"robot/{n}").id for n in r.model_joints]
        self._qpos = np.array([m.jnt_qposadr[j] for j in jid])
        self._dof = np.array([m.jnt_dofadr[j] for j in jid])
        self._act = np.array([m.actuator(f"servo/{n}").id for n in r.model_joints])
        self._kv = np.asarray(r.kv, np.float64)
        self.lower = np.where(m.jnt_limited[jid] > 0, m.jnt_range[jid, 0], -np.inf)  # (N,) rad
        self.upper = np.where(m.jnt_limited[jid] > 0, m.jnt_range[jid, 1], np.inf)
        g = r.gripper
        self._grip_act = np.array([m.actuator(f"robot/gripper/{a}").id for a in g.actuators])
        self._grip_open, self._grip_closed = np.asarray(g.ctrl_open), np.asarray(g.ctrl_closed)
        self._grip_q = np.array([m.jnt_qposadr[m.joint(f"robot/gripper/{j}").id] for j in g.width_joints])
        self._grip_coef = np.asarray(g.width_coefs)
        self._cube_qpos = {c: int(m.jnt_qposadr[m.joint(f"{sc.cube_name(c)}_joint").id]) for c in sc.CUBE_COLORS}
        self._on_table: tuple[str, ...] = ("red",)
        self._table_geom = m.geom("table_top").id
        self._pad_geoms = {n: m.geom(sc.pad_name(n)).id for n in sc.PADS}
        self._pads_on_table = False
        robot_root = m.body("robot/base").id
        self._robot_bodies = {b for b in range(m.nbody) if self._is_under(b, robot_root)}
        self._cameras = {k: m.camera(v).id for k, v in CAMERAS.items()}
        self._renderers: dict[tuple[int, int, int], mujoco.Renderer] = {}  # per (thread, W, H): a GL context is per thread
        self.controller = TrajectoryController(r.driver_joints, r.home)
        self.reset()

    def _is_under(self, body: int, root: int) -> bool:
        while body > 0:
            if body == root:
                return True
            body = self.model.body_parentid[body]
        return False

    # -- state -----------------------------------------------------------------------------
    @property
    def joint_names(self) -> tuple[str, ...]:
        """Arm joints, the real driver's names."""
        return self.robot.driver_joints

    @property
    def time(self) -> float:
        """Cell clock, s (from 0 at construction; never goes back)."""
        with self.lock:
            return float(self.data.time)

    def joint_state(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(time s, (N,) positions rad, (N,) velocities rad/s) in :attr:`joint_names` order."""
        with self.lock:
            d = self.data
            return float(d.time), d.qpos[self._qpos].copy(), d.qvel[self._dof].copy()

    def gripper_width(self) -> float:
        """Measured finger opening, m."""
        with self.lock:
            g = self.robot.gripper
            w = g.width_offset + float(self._grip_coef @ self.data.qpos[self._grip_q])
            return float(np.clip(w, 0.0, g.max_width))

    @property
    def cube_colors(self) -> tuple[str, ...]:
        """Every cube of the model, on the table or parked."""
        return tuple(self._cube_qpos)

    @property
    def cubes_on_table(self) -> tuple[str, ...]:
        """The cubes the last :meth:`reset` put on the table (red first)."""
        with self.lock:
            return self._on_table

    def _cube_adr(self, colour: str) -> int:
        if colour not in self._cube_qpos:
            raise ValueError(f"unknown cube {colour!r}; cubes are {list(self._cube_qpos)}")
        return self._cube_qpos[colour]

    def cube_yaw(self, colour: str = "red") -> float:
        """Rotation of the ``colour`` cube about the world z axis, rad in (-pi, pi] (of its x
        axis)."""
        c = self._cube_adr(colour)
        with self.lock:
            w, x, y, z = self.data.qpos[c + 3:c + 7]
            return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    def grasp_error(self) -> dict[str, float | str]:
        """Where the grip site is relative to the nearest cube on the table (horizontally), as
        the gripper closes: ``lateral_mm`` (horizontal distance of the site from the cube's
        centre), ``height_mm`` (site above the cube's centre; the gripper's ``grasp_offset`` is
        the expert's), ``yaw_deg`` (closing axis against the cube's faces, folded into
        [-45, 45]: a cube looks the same every 90 deg; 45 closes on two edges), ``cube``."""
        with self.lock:
            site = self.model.site(GRIP_SITE).id
            p = self.data.site_xpos[site].copy()
            yaw = gripper_yaw(self.data.site_xmat[site].reshape(3, 3))
            cube = min(self._on_table, key=lambda c: float(np.linalg.norm(self.cube_position(c)[:2] - p[:2])))
            c = self.cube_position(cube)
            cube_yaw = self.cube_yaw(cube)
        return {"cube": cube, "lateral_mm": round(float(np.linalg.norm(p[:2] - c[:2])) * 1e3, 1),
                "height_mm": round(float(p[2] - c[2]) * 1e3, 1),
                "yaw_deg": round(float(np.degrees(grasp_yaw(yaw - cube_yaw))), 1)}

    def make_ik(self, **kwargs) -> ArmIK:
        """An :class:`~streaming_flow_ros.cells.ik.ArmIK` of this arm's grip site (its own
        MjData: the physics is untouched), limits = the model's, rest posture = home."""
        return ArmIK(self.model, self._qpos, self._dof, self.lower, self.upper, self.robot.home, **kwargs)

    @property
    def pads_on_table(self) -> tuple[str, ...]:
        """The place pads the last :meth:`reset` put on the table (none or all of ``scene.PADS``)."""
        with self.lock:
            return tuple(sc.PADS) if self._pads_on_table else ()

    def cube_position(self, colour: str = "red") -> np.ndarray:
        """(3,) centre of the ``colour`` cube, m (world frame)."""
        c = self._cube_adr(colour)
        with self.lock:
            return self.data.qpos[c:c + 3].copy()

    def reset(self, q: Sequence[float] | None = None, cube_xy: Sequence[float] = sc.CUBE_START,
              gripper_width: float | None = None, cube_yaw: float = 0.0,
              green_cube: Sequence[float] | None = None, pads: bool = False) -> None:
        """Arm at rest at ``q`` (default: home; clipped to the model's ranges), gripper open
        (or at ``gripper_width``), the red cube at rest at ``cube_xy`` on the table, turned by
        ``cube_yaw`` rad about z; the green cube at rest on the table at ``green_cube`` = (x m,
        y m, yaw rad), or parked off the table when None; the place pads on the table
        (``scene.PADS``) with ``pads``, else parked; commands dropped, measurements
        restarted. The clock keeps running."""
        with self.lock:
            q = np.asarray(self.robot.home if q is None else q, np.float64)
            if q.shape != (self.robot.dof,) or not np.isfinite(q).all():
                raise ValueError(f"reset q must be {self.robot.dof} finite values, got {q.tolist()}")
            if green_cube is not None and (len(green_cube) != 3 or not np.isfinite(green_cube).all()):
                raise ValueError(f"green_cube must be (x, y, yaw), finite, got {green_cube}")
            q = np.clip(q, self.lower, self.upper)
            t = float(self.data.time)
            mujoco.mj_resetData(self.model, self.data)
            d = self.data
            d.time = t
            d.qpos[self._qpos] = q
            red = (cube_xy[0], cube_xy[1], sc.TABLE_TOP, cube_yaw)  # (x, y, surface z, yaw)
            green = (*sc.PARKED_XY, 0.0, 0.0) if green_cube is None else \
                (green_cube[0], green_cube[1], sc.TABLE_TOP, green_cube[2])
            for colour, (x, y, z, yaw) in (("red", red), ("green", green)):
                c = self._cube_qpos[colour]
                half = 0.5 * float(yaw)
                d.qpos[c:c + 7] = [x, y, z + sc.CUBE_HALF, np.cos(half), 0, 0, np.sin(half)]
            self._on_table = ("red", "green") if green_cube is not None else ("red",)
            for name, g in self._pad_geoms.items():  # a world geom: its model position is its place
                xy = sc.PADS[name] if pads else sc.PARKED_XY
                self.model.geom_pos[g] = [*xy, (sc.TABLE_TOP if pads else 0.0) + sc.PAD_THICK]
            self._pads_on_table = bool(pads)
            self.controller.reset(q)
            d.ctrl[self._act] = q
            width = self.robot.gripper.max_width if gripper_width is None else gripper_width
            self.command_gripper(width)
            m = self.model
            for a in self._grip_act:  # fingers start at their target (joint-driven actuators)
                if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT:
                    j = m.actuator_trnid[a, 0]
                    d.qpos[m.jnt_qposadr[j]] = np.clip(d.ctrl[a], *m.jnt_range[j])
            mujoco.mj_forward(self.model, d)
            self._t0 = t
            self._max_cube = self._cube_height()
            self._contact_steps = 0
            self._contact_bodies: set[str] = set()

    # -- commands ----------------------------------------------------------------------------
    def command_trajectory(self, traj: JointTrajectory) -> CommandResult:
        """joint_trajectory_controller semantics (sim/jtc.py); ``traj.stamp`` on the cell clock."""
        with self.lock:
            return self.controller.command_trajectory(traj, float(self.data.time))

    def command_forward(self, values: Sequence[float]) -> CommandResult:
        """forward_command_controller: ``values`` (N,) rad in :attr:`joint_names` order."""
        with self.lock:
            return self.controller.command_forward(values)

    def command_gripper(self, width: float) -> float:
        """Set the finger opening target, m, clamped to [0, max_width]; returns the target.
        Raises ValueError on a non-finite width."""
        width = float(width)
        if not np.isfinite(width):
            raise ValueError(f"gripper width must be finite, got {width}")
        g = self.robot.gripper
        width = min(max(width, 0.0), g.max_width)
        with self.lock:
            s = width / g.max_width
            self.data.ctrl[self._grip_act] = self._grip_closed + s * (self._grip_open - self._grip_closed)
            self._grip_target = width
        return width

    def gripper_target(self) -> float:
        """The commanded finger opening, m (the last :meth:`command_gripper`, clamped)."""
        with self.lock:
            return self._grip_target

    # -- physics -----------------------------------------------------------------------------
    def step(self, duration: float) -> int:
        """Advance the physics by ``duration`` s (rounded to whole 2 ms steps); returns steps."""
        n = max(0, int(round(duration / self.dt)))
        with self.lock:
            m, d, ctrl = self.model, self.data, self.controller
            for _ in range(n):
                ctrl.sample(float(d.time) + self.dt)
                d.ctrl[self._act] = np.clip(ctrl.desired_q, self.lower, self.upper)
                d.qfrc_applied[self._dof] = self._kv * ctrl.desired_qd  # velocity feed-forward
                mujoco.mj_step(m, d)
                self._measure()
        return n

    def advance_to(self, t: float) -> int:
        """Step until :attr:`time` reaches ``t`` s (to the nearest step); returns steps."""
        with self.lock:
            return self.step(max(0.0, t - float(self.data.time)))

    def _cube_heights(self) -> dict[str, float]:
        """Bottom face of each cube on the table above the table top, m."""
        z = self.data.qpos
        return {c: float(z[self._cube_qpos[c] + 2] - sc.CUBE_HALF - sc.TABLE_TOP) for c in self._on_table}

    def _cube_height(self) -> float:
        return max(self._cube_heights().values())

    def _measure(self) -> None:
        d, m = self.data, self.model
        self._max_cube = max(self._max_cube, self._cube_height())
        touching = False
        for k in range(d.ncon):
            con = d.contact[k]
            if con.geom1 == self._table_geom or con.geom2 == self._table_geom:
                other = con.geom2 if con.geom1 == self._table_geom else con.geom1
                body = int(m.geom_bodyid[other])
                if body in self._robot_bodies:
                    touching = True
                    self._contact_bodies.add(m.body(body).name)
        self._contact_steps += touching

    def metrics(self) -> CellMetrics:
        with self.lock:
            heights = self._cube_heights()
            h = max(heights.values())
            return CellMetrics(
                time=float(self.data.time) - self._t0, cube_height=h, max_cube_height=self._max_cube,
                lifted=h > LIFT_HEIGHT, table_contact=self._contact_steps > 0,
                table_contact_steps=self._contact_steps, table_contact_bodies=tuple(sorted(self._contact_bodies)),
                cube_heights=heights,
            )

    # -- cameras -----------------------------------------------------------------------------
    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(CAMERAS)

    def render(self, camera: str = "scene", size: tuple[int, int] | None = None) -> tuple[float, np.ndarray]:
        """(cell time s of the rendered state, (H, W, 3) uint8 rgb image); ``size`` (W, H) up
        to 640x480 (default: :attr:`image_size`)."""
        if camera not in self._cameras:
            raise ValueError(f"unknown camera {camera!r}; cameras are {list(CAMERAS)}")
        w, h = self.image_size if size is None else (int(size[0]), int(size[1]))
        if not (8 <= w <= max(640, self.image_size[0]) and 8 <= h <= max(480, self.image_size[1])):
            raise ValueError(f"render size must be within 8..640 x 8..480 px, got {size}")
        key = (threading.get_ident(), w, h)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = self._renderers[key] = mujoco.Renderer(self.model, height=h, width=w)
        with self.lock:  # copy the state into the renderer's scene; draw outside the lock
            t = float(self.data.time)
            renderer.update_scene(self.data, camera=self._cameras[camera])
        return t, renderer.render()

    def close(self) -> None:
        """Free the renderers created by the calling thread (others are freed with the cell)."""
        me = threading.get_ident()
        for key in [k for k in self._renderers if k[0] == me]:
            self._renderers.pop(key).close()
