"""Which robot model stands in for which real arm: model files (robosuite 1.5.2's MJCF assets),
joint names of the model and of the real driver, start pose, servo gains, gripper.

The names on the ROS side are the real drivers' (``config/robots/<preset>.yaml``
``controller_joints``); the model's names never leave ``cells/``. Units: rad, m, N m/rad.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GripperSpec:
    """A robosuite gripper model and the real driver's gripper joint.

    The cell's gripper channel is a width w in [0, max_width] m. Actuator targets are linear in
    w: ``ctrl_closed + (ctrl_open - ctrl_closed) * w / max_width``; the measured width is
    ``width_offset + sum(width_coefs * q[width_joints])``, clipped to [0, max_width]. On the ROS
    side the gripper is one joint, ``joint``, whose position is ``joint_offset + joint_scale * w``
    in the driver's units (Franka: one finger's travel in m; Robotiq 2F-85: knuckle angle, rad).
    """

    xml: str  # under robosuite/models/assets/grippers/
    root_body: str
    actuators: tuple[str, ...]
    ctrl_open: tuple[float, ...]
    ctrl_closed: tuple[float, ...]
    max_width: float
    width_joints: tuple[str, ...]
    width_coefs: tuple[float, ...]
    width_offset: float
    joint: str
    joint_offset: float
    joint_scale: float
    # Servo overrides (None: the model's own): kp N m/rad, kv N m s/rad, and armature / damping
    # added to every gripper joint.
    kp: float | None = None
    kv: float = 0.0
    joint_armature: float = 0.0
    joint_damping: float = 0.0
    # m, grip site above the centre of a 4 cm cube at a top grasp (scripted expert, cells/expert.py)
    grasp_offset: float = 0.0
    # m, the wrist camera's position in the arm's hand frame (None: robosuite's eye_in_hand,
    # 5 cm off the flange axis at the flange). A long gripper needs it nearer the fingertips.
    wrist_camera_pos: tuple[float, float, float] | None = None

    def joint_from_width(self, width: float) -> float:
        return self.joint_offset + self.joint_scale * width

    def width_from_joint(self, value: float) -> float:
        return (value - self.joint_offset) / self.joint_scale


@dataclass(frozen=True)
class RobotSpec:
    """One arm model. ``model_joints[i]`` is the real driver's ``driver_joints[i]``."""

    name: str
    preset: str  # config/robots/<preset>.yaml
    robot_dir: str  # under robosuite/models/assets/robots/
    model_joints: tuple[str, ...]
    driver_joints: tuple[str, ...]
    home: tuple[float, ...]  # rad, driver joint order (robosuite's init_qpos)
    kp: tuple[float, ...]  # N m / rad
    kv: tuple[float, ...]  # N m s / rad
    gripper: GripperSpec
    armature: float = 0.1  # kg m^2 added to each arm joint (reflected rotor inertia; keeps stiff PD stable)

    @property
    def dof(self) -> int:
        return len(self.driver_joints)


FRANKA_HAND = GripperSpec(
    xml="panda_gripper.xml", root_body="right_gripper",
    actuators=("gripper_finger_joint1", "gripper_finger_joint2"),
    ctrl_open=(0.04, -0.04), ctrl_closed=(0.0, 0.0), max_width=0.08,
    width_joints=("finger_joint1", "finger_joint2"), width_coefs=(1.0, -1.0), width_offset=0.0,
    joint="fr3_finger_joint1", joint_offset=0.0, joint_scale=0.5,  # franka_gripper: one finger, m
)

ROBOTIQ_85 = GripperSpec(
    xml="robotiq_gripper_85.xml", root_body="robotiq_85_adapter_link",
    actuators=("finger_1", "finger_2"),
    ctrl_open=(0.0, 0.0), ctrl_closed=(0.8, 0.8), max_width=0.085,
    width_joints=("finger_joint",), width_coefs=(-0.085 / 0.8,), width_offset=0.085,
    # ros2_robotiq_gripper: robotiq_85_left_knuckle_joint, 0 (open) .. 0.8 rad (closed)
    joint="robotiq_85_left_knuckle_joint", joint_offset=0.8, joint_scale=-0.8 / 0.085,
    # robosuite's kp 20 stalls the linkage half open (0.045 m); kp 60 alone goes unstable at
    # 2 ms steps: with a little armature and damping it closes to ~0.024 m and stays stable.
    kp=60.0, kv=1.0, joint_armature=0.005, joint_damping=0.05,
    # At the flange (robosuite's eye_in_hand) the 2F-85's knuckles fill the lower third of the
    # view and the cube stays a few pixels wide until the last centimetres (the UR5e Lift policy
    # learned from it ignored where the cube was). 4 cm down the tool and 8 cm off its axis, as a
    # camera on a wrist mount sits, the fingertips frame the cube (the Franka Hand is 5 cm shorter).
    wrist_camera_pos=(0.08, 0.0, 0.04),
    # The pads sit 1.8 cm above the grip site and rise as the linkage closes: at the site's
    # height they slide over a 4 cm cube's top; 1.2 cm lower they close on its sides.
    grasp_offset=-0.012,
)

XARM_GRIPPER = GripperSpec(
    xml="xarm7_gripper.xml", root_body="xarm_gripper_base_link",
    actuators=("fingers_actuator",), ctrl_open=(0.0,), ctrl_closed=(255.0,), max_width=0.085,
    width_joints=("left_driver_joint",), width_coefs=(-0.085 / 0.85,), width_offset=0.085,
    # xarm_ros2: drive_joint, 0 (open) .. 0.85 rad (closed)
    joint="drive_joint", joint_offset=0.85, joint_scale=-0.85 / 0.085,
    grasp_offset=0.015,  # at the cube centre the fingertips touch the table
)

ROBOTS: dict[str, RobotSpec] = {
    # Panda stands in for the FR3 (franka_fr3 preset): same kinematics, FR3 joint names.
    "panda": RobotSpec(
        name="panda", preset="franka_fr3", robot_dir="panda",
        model_joints=tuple(f"joint{i}" for i in range(1, 8)),
        driver_joints=tuple(f"fr3_joint{i}" for i in range(1, 8)),
        home=(0.0, 0.19635, 0.0, -2.61799, 0.0, 2.94159, 0.78540),
        kp=(600.0, 600.0, 500.0, 500.0, 250.0, 150.0, 50.0),
        kv=(60.0, 60.0, 50.0, 50.0, 20.0, 12.0, 5.0),
        gripper=FRANKA_HAND,
    ),
    "ur5e": RobotSpec(
        name="ur5e", preset="ur", robot_dir="ur5e",
        model_joints=("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
                      "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"),
        driver_joints=("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
                       "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"),
        home=(-0.470, -1.735, 2.480, -2.275, -1.590, -1.991),
        kp=(800.0, 800.0, 600.0, 200.0, 150.0, 50.0),
        kv=(80.0, 80.0, 60.0, 16.0, 12.0, 5.0),
        gripper=ROBOTIQ_85,
    ),
    "gen3": RobotSpec(
        name="gen3", preset="kinova_gen3", robot_dir="kinova3",
        model_joints=tuple(f"Actuator{i}" for i in range(1, 8)),
        driver_joints=tuple(f"joint_{i}" for i in range(1, 8)),
        home=(0.0, 0.650, 0.0, 1.890, 0.0, 0.600, -1.5708),
        kp=(600.0, 600.0, 500.0, 500.0, 200.0, 150.0, 50.0),
        kv=(60.0, 60.0, 50.0, 50.0, 16.0, 12.0, 5.0),
        gripper=ROBOTIQ_85,
    ),
    "xarm7": RobotSpec(
        name="xarm7", preset="xarm7", robot_dir="xarm7",
        model_joints=tuple(f"joint{i}" for i in range(1, 8)),
        driver_joints=tuple(f"joint{i}" for i in range(1, 8)),
        home=(0.0, 0.0, 0.0, 1.22522, 0.0, 1.22522, 0.0),
        kp=(600.0, 600.0, 500.0, 500.0, 200.0, 150.0, 50.0),
        kv=(60.0, 60.0, 50.0, 50.0, 16.0, 12.0, 5.0),
        gripper=XARM_GRIPPER,
    ),
}


def robot_spec(name: str) -> RobotSpec:
    if name not in ROBOTS:
        raise ValueError(f"unknown cell robot {name!r}; known: {sorted(ROBOTS)}")
    return ROBOTS[name]


def assets_root() -> Path:
    """robosuite's ``models/assets`` folder, found without importing robosuite (its Python
    dependencies are not installed: only its model files are used)."""
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("robosuite is not installed: pip install --no-deps robosuite==1.5.2 (model files only)")
    root = Path(next(iter(spec.submodule_search_locations))) / "models" / "assets"
    if not root.is_dir():
        raise ValueError(f"robosuite has no model assets at {root}")
    return root
