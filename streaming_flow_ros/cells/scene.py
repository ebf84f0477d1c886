"""The cell's MuJoCo model, composed with MjSpec: floor, table, two cubes (red and green), a
robosuite arm on a pedestal at the table's edge, its gripper at the flange, a scene camera and
the arm's wrist camera.

Every cell has both cubes, because the model is built before a task is chosen (``ros/
cell_loop.py`` makes the cell, then the task). A task that needs fewer cubes parks the others
on the floor under the table top (:data:`PARKED_XY`), where the table hides them from both
cameras and the arm cannot reach them. That spot is also the parked cube's model position,
inside the bounding box of the rest of the model, so the model's extent, and with it the
cameras' near clipping plane (a fraction of the extent), is what it was with one cube: Lift
renders byte for byte as it did before the second cube existed (its physics differs by
rounding, ~1e-16 m, from the solver's scaling by the mean inertia).

The two place pads (PlaceEither) are parked the same way, flat on the floor under the table.

Frame (m): world z up, table top centred at (0, 0, TABLE_TOP); the arm base at
(BASE_X, 0, BASE_Z), facing +x (robosuite's Lift layout). Model element names: the arm's under
``robot/``, the gripper's under ``robot/gripper/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import mujoco

from .robots import RobotSpec, assets_root

TABLE_HALF = (0.4, 0.4, 0.025)  # m, half sizes of the table top (robosuite: 0.8 x 0.8 x 0.05)
TABLE_TOP = 0.8  # m
BASE_X, BASE_Z = -0.56, 0.912  # m, arm base (robosuite's table offset and mount height)
CUBE_HALF = 0.02  # m
CUBE_START = (0.0, 0.0)  # m, on the table
# Cube colours (rgba), distinct for the cameras. The first is the one cube of a one-cube task.
CUBE_COLORS = {"red": (0.85, 0.1, 0.1, 1.0), "green": (0.1, 0.65, 0.15, 1.0)}
PARKED_XY = (0.0, 0.0)  # m, on the floor (z = 0) under the table top: a cube out of play
# Place pads (PlaceEither's two targets): flat squares drawn on the table top, seen by the
# cameras, touched by nothing (no collision). Centres in the table frame, m; a task that does
# not use them leaves them parked under the table, like a cube out of play.
PAD_HALF = 0.05  # m, half the side of a pad
PAD_THICK = 0.0005  # m, half its thickness
PADS = {"left": (0.0, 0.22), "right": (0.0, -0.22)}  # seen from the arm (+y is its left)
PAD_RGBA = (0.15, 0.3, 0.85, 1.0)
PHYSICS_DT = 0.002  # s: 500 Hz, the ros2_control update rate of most arm drivers


def cube_name(colour: str) -> str:
    """The model name of the ``colour`` cube's body and geom (its free joint: + ``_joint``)."""
    if colour not in CUBE_COLORS:
        raise ValueError(f"unknown cube colour {colour!r}; cubes are {list(CUBE_COLORS)}")
    return f"cube_{colour}"


def pad_name(name: str) -> str:
    """The model name of the place pad ``name`` (a key of :data:`PADS`)."""
    if name not in PADS:
        raise ValueError(f"unknown pad {name!r}; pads are {list(PADS)}")
    return f"pad_{name}"


def _absolute_assets(spec: mujoco.MjSpec, xml: Path) -> None:
    """Rewrite relative mesh/texture paths to absolute ones, so the spec survives attachment."""
    base = xml.parent / (spec.meshdir or "")
    for mesh in spec.meshes:
        if mesh.file and not os.path.isabs(mesh.file):
            mesh.file = str((base / mesh.file).resolve())
    for tex in spec.textures:
        if tex.file and not os.path.isabs(tex.file):
            tex.file = str((xml.parent / (spec.texturedir or "") / tex.file).resolve())
    spec.meshdir, spec.texturedir = "", ""


def _load(xml: Path) -> mujoco.MjSpec:
    """A robosuite MJCF file as an MjSpec. robosuite pre-processes its files before MuJoCo sees
    them; the two flaws that matter here are fixed the same way: a ``group`` attribute on a
    ``<default>`` (xArm gripper; not MJCF) is dropped, and a repeated mesh name (Robotiq 2F-85:
    collision and visual base link) keeps its first definition."""
    text = re.sub(r'(<default\s+class="[^"]*")\s+group="[^"]*"', r"\1", xml.read_text())
    spec = mujoco.MjSpec.from_string(text)
    spec.compiler.degree = False  # robosuite merges every file into one model with angle="radian"
    _absolute_assets(spec, xml)
    seen = set()
    for mesh in list(spec.meshes):
        if mesh.name in seen:
            spec.delete(mesh)
        seen.add(mesh.name)
    return spec


def build_spec(robot: RobotSpec, max_image_size: tuple[int, int] = (640, 480)) -> mujoco.MjSpec:
    """The cell as an MjSpec (compile with ``spec.compile()``). ``max_image_size``: (width,
    height) of the largest camera image to render."""
    root = assets_root()
    world = mujoco.MjSpec()
    world.modelname = f"cell_{robot.name}"
    world.compiler.degree = False
    world.option.timestep = PHYSICS_DT
    world.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    world.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    world.visual.global_.offwidth, world.visual.global_.offheight = max_image_size
    world.visual.headlight.ambient = [0.4, 0.4, 0.4]
    wb = world.worldbody
    wb.add_light(pos=[0, 0, 3.0], dir=[0, 0, -1], diffuse=[0.6, 0.6, 0.6], castshadow=False)
    wb.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1], rgba=[0.35, 0.35, 0.38, 1])
    table = wb.add_body(name="table", pos=[0, 0, TABLE_TOP - TABLE_HALF[2]])
    table.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(TABLE_HALF),
                   rgba=[0.55, 0.42, 0.3, 1], friction=[1.0, 0.005, 0.0001])
    leg_h = (TABLE_TOP - 2 * TABLE_HALF[2]) / 2
    for i, (x, y) in enumerate([(0.35, 0.35), (0.35, -0.35), (-0.35, 0.35), (-0.35, -0.35)]):
        table.add_geom(name=f"table_leg{i}", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.025, leg_h, 0],
                       pos=[x, y, -TABLE_HALF[2] - leg_h], rgba=[0.3, 0.3, 0.3, 1], contype=0, conaffinity=0)
    pedestal_h = BASE_Z / 2
    wb.add_geom(name="pedestal", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.12, pedestal_h, 0],
                pos=[BASE_X, 0, pedestal_h - 0.001], rgba=[0.2, 0.2, 0.22, 1], contype=0, conaffinity=0)
    for i, (colour, rgba) in enumerate(CUBE_COLORS.items()):
        pos = [*CUBE_START, TABLE_TOP + CUBE_HALF] if i == 0 else [*PARKED_XY, CUBE_HALF]
        cube = wb.add_body(name=cube_name(colour), pos=pos)
        cube.add_freejoint(name=f"{cube_name(colour)}_joint")
        cube.add_geom(name=cube_name(colour), type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, rgba=list(rgba),
                      density=500.0, friction=[1.0, 0.005, 0.0001], condim=4)
    for name in PADS:  # parked: Cell.reset(pads=True) moves them onto the table
        wb.add_geom(name=pad_name(name), type=mujoco.mjtGeom.mjGEOM_BOX, size=[PAD_HALF, PAD_HALF, PAD_THICK],
                    pos=[*PARKED_XY, PAD_THICK], rgba=list(PAD_RGBA), contype=0, conaffinity=0)
    # robosuite's "agentview": in front of the table, looking back at the arm
    wb.add_camera(name="scene", pos=[0.5, 0, 1.35], quat=[0.653, 0.271, 0.271, 0.653], fovy=45)

    arm = _load(root / "robots" / robot.robot_dir / "robot.xml")
    if robot.gripper.wrist_camera_pos is not None:
        arm.camera("eye_in_hand").pos = list(robot.gripper.wrist_camera_pos)
    for act in list(arm.actuators):  # robosuite's torque motors: become position servos below
        arm.delete(act)
    for name in robot.model_joints:
        arm.joint(name).armature = robot.armature
    gripper = _load(root / "grippers" / robot.gripper.xml)
    g = robot.gripper
    if g.kp is not None:
        for name in g.actuators:
            gripper.actuator(name).set_to_position(kp=g.kp, kv=g.kv)
    for joint in gripper.joints:
        joint.armature += g.joint_armature
        joint.damping += g.joint_damping
    for body in list(arm.bodies) + list(gripper.bodies):
        body.gravcomp = 1.0  # the driver compensates gravity, as real arm controllers do
    for site in list(arm.sites) + list(gripper.sites):
        site.rgba = [0, 0, 0, 0]  # robosuite's visual aids (grip site, its z-axis "laser"): no camera sees them
    arm.body("right_hand").add_frame().attach_body(gripper.body(robot.gripper.root_body), "gripper/", "")
    wb.add_frame(pos=[BASE_X, 0, BASE_Z]).attach_body(arm.body("base"), "robot/", "")
    for name, kp, kv in zip(robot.model_joints, robot.kp, robot.kv):
        joint = world.joint(f"robot/{name}")
        act = world.add_actuator(name=f"servo/{name}", target=f"robot/{name}",
                                 trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=kp, kv=kv)
        if joint.limited == mujoco.mjtLimited.mjLIMITED_TRUE:
            act.ctrlrange, act.ctrllimited = list(joint.range), mujoco.mjtLimited.mjLIMITED_TRUE
    return world


def build_model(robot: RobotSpec, max_image_size: tuple[int, int] = (640, 480)) -> mujoco.MjModel:
    return build_spec(robot, max_image_size).compile()
