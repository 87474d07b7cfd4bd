"""Collision checking of arm configurations against the robot itself, the table and the scene.

Uses MuJoCo's collision detector on a private MjData that mirrors the scene (objects where the
simulator, or a perception system, says they are). A held object moves with the hand and counts
as part of the robot. Contacts shallower than `tolerance` are ignored, so resting contact (an
object sitting on the table while held, fingers brushing a handle) is not a collision.

``scene_collisions = False`` checks the robot against itself only (RLBench's
``ABS_EE_POSE_PLAN_WORLD_FRAME``, whose planner ignores the scene; physics settles the rest).
"""
from __future__ import annotations

import mujoco
import numpy as np

from . import panda
from .robot_model import HAND_BODY, ROBOT_GEOM_PREFIX


class CollisionChecker:
    def __init__(self, model: mujoco.MjModel, tolerance: float = 0.002):
        self.model = model
        self.data = mujoco.MjData(model)
        self.tolerance = tolerance
        self.qadr = np.array([model.jnt_qposadr[model.joint(n).id] for n in panda.ARM_JOINTS])
        self.robot_bodies = {b for b in range(model.nbody) if model.body(b).name.startswith(ROBOT_GEOM_PREFIX)}
        self.hand = model.body(HAND_BODY).id
        self._robot_geom = np.isin(model.geom_bodyid, list(self.robot_bodies))
        self._held_body = -1
        self._held_adr = None
        self._held_rel = None
        self._ignored = np.zeros(model.nbody, dtype=bool)
        self.scene_collisions = True
        self.checks = 0

    def set_scene(self, qpos: np.ndarray, held: tuple[str, np.ndarray] | None = None,
                  ignore_bodies: tuple[str, ...] = (), mocap: tuple[np.ndarray, np.ndarray] | None = None):
        """Mirror a scene state: full qpos, static props' poses (mocap positions and wxyz
        quaternions), an optional held object (name, 4x4 pose in the hand frame) and bodies
        whose contacts with the robot are allowed (MoveIt's allowed collisions)."""
        self.data.qpos[:] = qpos
        if mocap is not None:
            self.data.mocap_pos[:], self.data.mocap_quat[:] = mocap
        self._ignored[:] = False
        for b in ignore_bodies:
            self._ignored[self.model.body(b).id] = True
        if held is None:
            self._held_body, self._held_adr, self._held_rel = -1, None, None
        else:
            name, rel = held
            self._held_body = self.model.body(name).id
            self._held_adr = self.model.jnt_qposadr[self.model.body_jntadr[self._held_body]]
            self._held_rel = np.asarray(rel)

    def _place_held_object(self):
        hand = np.eye(4)
        hand[:3, :3] = self.data.xmat[self.hand].reshape(3, 3)
        hand[:3, 3] = self.data.xpos[self.hand]
        T = hand @ self._held_rel
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, T[:3, :3].ravel())
        self.data.qpos[self._held_adr:self._held_adr + 3] = T[:3, 3]
        self.data.qpos[self._held_adr + 3:self._held_adr + 7] = quat
        mujoco.mj_kinematics(self.model, self.data)

    def _colliding(self, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Geom pairs and penetrations that count as collisions at arm configuration q."""
        self.checks += 1
        d, m = self.data, self.model
        d.qpos[self.qadr] = q
        mujoco.mj_kinematics(m, d)
        if self._held_body >= 0:
            self._place_held_object()
        mujoco.mj_collision(m, d)
        if d.ncon == 0:
            return (np.empty(0, int),) * 2 + (np.empty(0),)
        con = d.contact
        g1, g2, dist = con.geom1, con.geom2, con.dist
        b1, b2 = m.geom_bodyid[g1], m.geom_bodyid[g2]
        held1, held2 = b1 == self._held_body, b2 == self._held_body
        r1 = self._robot_geom[g1] | held1
        r2 = self._robot_geom[g2] | held2
        deep = dist < -self.tolerance
        # robot against scene, unless the scene body is allowed to touch
        against_scene = (r1 ^ r2) & ~self._ignored[b1] & ~self._ignored[b2]
        # robot against robot comes only from the explicit self-collision pairs; a held object
        # touching the hand that holds it is expected
        self_pair = r1 & r2 & ~held1 & ~held2
        hit = deep & ((against_scene & self.scene_collisions) | self_pair)
        return g1[hit], g2[hit], -dist[hit]

    def contacts(self, q) -> list[tuple[str, str, float]]:
        """Colliding (body, body, penetration) triples at arm configuration q, for messages."""
        m = self.model
        g1, g2, depth = self._colliding(q)
        return [(m.body(m.geom_bodyid[a]).name, m.body(m.geom_bodyid[b]).name, float(p))
                for a, b, p in zip(g1, g2, depth)]

    def is_valid(self, q) -> bool:
        return len(self._colliding(q)[0]) == 0
