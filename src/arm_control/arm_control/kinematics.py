"""Panda forward and inverse kinematics on a MuJoCo model of the robot (or of a scene holding it).

IK is damped least squares on the tool-centre-point site with joint-limit clamping and a small
null-space pull toward the neutral posture (keeps the elbow up and away from limits). It works on
a private MjData, so it never disturbs the simulation it was built from.
"""
from __future__ import annotations

import mujoco
import numpy as np

from . import panda
from .robot_model import TCP_SITE
from .transforms import mat_to_quat_xyzw, quat_xyzw_to_mat, rotation_error


class Kinematics:
    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.data = mujoco.MjData(model)
        self.qadr = np.array([model.jnt_qposadr[model.joint(n).id] for n in panda.ARM_JOINTS])
        self.dadr = np.array([model.jnt_dofadr[model.joint(n).id] for n in panda.ARM_JOINTS])
        self.site = model.site(TCP_SITE).id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def _set(self, q):
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)

    def fk(self, q) -> np.ndarray:
        """TCP pose (xyz + quaternion xyzw) at joint positions q."""
        self._set(q)
        return np.concatenate([self.data.site_xpos[self.site],
                               mat_to_quat_xyzw(self.data.site_xmat[self.site].reshape(3, 3))])

    def ik(self, pose, seed, max_iters: int = 200, pos_tol: float = 1e-3, rot_tol: float = 1e-2,
           damping: float = 0.05, nullspace_gain: float = 0.02) -> np.ndarray | None:
        """Joint positions within limits reaching `pose` (xyz + xyzw) from `seed`, or None."""
        target_p = np.asarray(pose[:3], dtype=np.float64)
        target_R = quat_xyzw_to_mat(pose[3:7])
        q = np.clip(np.asarray(seed, dtype=np.float64), panda.LOWER, panda.UPPER)
        eye6 = np.eye(6)
        for it in range(max_iters):
            self._set(q)
            p = self.data.site_xpos[self.site]
            R = self.data.site_xmat[self.site].reshape(3, 3)
            err = np.concatenate([target_p - p, rotation_error(target_R, R)])
            if np.linalg.norm(err[:3]) < pos_tol and np.linalg.norm(err[3:]) < rot_tol:
                return q
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            J = np.vstack([self._jacp[:, self.dadr], self._jacr[:, self.dadr]])
            JJt = J @ J.T + damping**2 * eye6
            dq = J.T @ np.linalg.solve(JJt, err)
            # Null-space pull toward the neutral posture: does not move the TCP to first order.
            # Only in the first half: near the body it can fight convergence.
            if it < max_iters // 2:
                N = np.eye(7) - J.T @ np.linalg.solve(JJt, J)
                dq += nullspace_gain * N @ (panda.NEUTRAL - q)
            step = np.max(np.abs(dq))
            if step > 0.3:
                dq *= 0.3 / step
            q = np.clip(q + dq, panda.LOWER, panda.UPPER)
        return None
