"""Inverse kinematics of a cell's arm on its MuJoCo model: damped least squares on the grip
site's pose (position, and optionally orientation), with a null-space pull towards a rest
posture and the model's joint limits enforced every iteration. Pure numpy + mujoco; it works
on a private MjData, so the cell's physics is untouched.

Frames and units: world frame (``cells/scene.py``), m and rad. Orientation is a 3x3 rotation
matrix whose columns are the grip site's axes in the world; its error is the rotation vector
of ``R_target R^T``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

GRIP_SITE = "robot/gripper/grip_site"


def rotation_error(r_target: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(3,) rotation vector (rad, world frame) taking ``r`` to ``r_target``."""
    e = r_target @ r.T
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, e.reshape(-1))
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


def gripper_yaw(rotation: np.ndarray) -> float:
    """The yaw of a grip site's rotation (3, 3), rad: that of its closing (x) axis, 0 along
    world y (``cells.expert.DOWN``; at yaw g the axis is rot_z(g) (0, 1, 0) = (-sin g, cos g, 0))."""
    x = np.asarray(rotation)[:, 0]
    return float(np.arctan2(-x[0], x[1]))


def grasp_yaw(cube_yaw: float) -> float:
    """The gripper yaw for a cube turned by ``cube_yaw``: folded into [-pi/4, pi/4] (a cube
    looks the same every quarter turn). Folding a gripper's yaw minus a cube's gives how far
    the gripper is turned against the cube's faces."""
    return float((cube_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class IKResult:
    q: np.ndarray  # (N,) rad, within the joint limits
    position_error: float  # m
    orientation_error: float  # rad (0 when no orientation was asked)
    iterations: int

    def converged(self, pos_tol: float = 2e-3, rot_tol: float = 0.02) -> bool:
        return self.position_error <= pos_tol and self.orientation_error <= rot_tol


class ArmIK:
    """Damped-least-squares IK of the grip site for the arm joints ``qpos_adr``/``dof_adr``.

    Args:
        model: the cell's compiled model (read only).
        qpos_adr, dof_adr: (N,) qpos / dof addresses of the arm joints, driver order.
        lower, upper: (N,) joint limits, rad (inf where unlimited).
        rest: (N,) posture the null space is pulled towards (redundant arms), rad.
        site: the controlled site.
        damping: lambda of (J J^T + lambda^2 I)^-1.
        limit_margin: rad kept inside each finite limit.
    """

    def __init__(self, model: mujoco.MjModel, qpos_adr: Sequence[int], dof_adr: Sequence[int],
                 lower: Sequence[float], upper: Sequence[float], rest: Sequence[float], *,
                 site: str = GRIP_SITE, damping: float = 0.05, limit_margin: float = 0.02,
                 max_step: float = 0.2, nullspace_gain: float = 0.1) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.qpos_adr = np.asarray(qpos_adr, int)
        self.dof_adr = np.asarray(dof_adr, int)
        self.lower = np.asarray(lower, np.float64) + limit_margin
        self.upper = np.asarray(upper, np.float64) - limit_margin
        self.rest = np.clip(np.asarray(rest, np.float64), self.lower, self.upper)
        self.site = model.site(site).id
        self.damping = float(damping)
        self.max_step = float(max_step)
        self.nullspace_gain = float(nullspace_gain)
        self._jp = np.zeros((3, model.nv))
        self._jr = np.zeros((3, model.nv))

    def _fk(self, q: np.ndarray) -> None:
        self.data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def pose(self, q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Grip site (position (3,) m, rotation (3, 3)) at arm configuration ``q``."""
        self._fk(np.asarray(q, np.float64))
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(self, position: Sequence[float], q0: Sequence[float], rotation: np.ndarray | None = None,
              *, max_iters: int = 100, pos_tol: float = 5e-4, rot_tol: float = 5e-3,
              rot_weight: float = 0.3) -> IKResult:
        """Joint positions putting the site at ``position`` (and ``rotation``), from ``q0``.

        Never raises for an unreachable target: the result carries the residual errors (check
        :meth:`IKResult.converged`)."""
        target = np.asarray(position, np.float64)
        q = np.clip(np.asarray(q0, np.float64), self.lower, self.upper)
        n = q.size
        lam2 = self.damping**2
        pe = re = np.inf
        it = 0
        for it in range(1, max_iters + 1):
            self._fk(q)
            x = self.data.site_xpos[self.site]
            err_p = target - x
            pe = float(np.linalg.norm(err_p))
            mujoco.mj_jacSite(self.model, self.data, self._jp, self._jr, self.site)
            if rotation is not None:
                err_r = rotation_error(rotation, self.data.site_xmat[self.site].reshape(3, 3))
                re = float(np.linalg.norm(err_r))
                jac = np.vstack([self._jp[:, self.dof_adr], rot_weight * self._jr[:, self.dof_adr]])
                err = np.concatenate([err_p, rot_weight * err_r])
            else:
                re = 0.0
                jac, err = self._jp[:, self.dof_adr], err_p
            if pe <= pos_tol and re <= rot_tol:
                break
            jjt = jac @ jac.T + lam2 * np.eye(jac.shape[0])
            pinv = jac.T @ np.linalg.solve(jjt, np.eye(jac.shape[0]))
            dq = pinv @ err
            if n > jac.shape[0]:  # redundant: pull towards the rest posture in the null space
                # (the exact projector: a damped one would leak the pull into the task, ~1 mm)
                exact = np.linalg.pinv(jac, rcond=1e-4)
                dq += (np.eye(n) - exact @ jac) @ (self.nullspace_gain * (self.rest - q))
            step = np.abs(dq).max()
            if step > self.max_step:
                dq *= self.max_step / step
            q = np.clip(q + dq, self.lower, self.upper)
        else:
            self._fk(q)
            pe = float(np.linalg.norm(target - self.data.site_xpos[self.site]))
            if rotation is not None:
                re = float(np.linalg.norm(rotation_error(rotation, self.data.site_xmat[self.site].reshape(3, 3))))
        return IKResult(q, pe, re, it)
