"""The MuJoCo Panda scene: physics, the front RGB-D camera, the gripper and grasp attachment.

No ROS in here: the ROS driver node and the in-process environment both wrap this class.

Grasping follows RLBench: when the fingers close on a graspable object and both fingers touch
it, the object is welded to the hand until the gripper opens again. That keeps scripted demos
reliable without a finely tuned friction model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
import mujoco  # noqa: E402  (the GL backend must be chosen before the import)

from arm_control import panda  # noqa: E402
from arm_control.robot_model import (  # noqa: E402, F401  (TABLE_HEIGHT: re-exported for the tasks)
    FINGER_BODIES, HAND_BODY, TABLE_HEIGHT, TCP_SITE, workcell_xml)
from arm_control.transforms import mat_to_quat_xyzw  # noqa: E402
from arm_perception.camera import intrinsics_from_fovy  # noqa: E402

CONTROL_HZ = 20  # RLBench's control rate
PHYSICS_DT = 0.002
# RLBench's front camera looks at the workspace from across the table, facing the robot.
FRONT_CAMERA_POS = np.array([1.10, 0.0, 1.65])
FRONT_CAMERA_LOOKAT = np.array([0.40, 0.0, 0.85])
FRONT_CAMERA_FOVY = 50.0


@dataclass
class Observation:
    """One time step, named like RLBench's Observation (front camera only)."""

    front_rgb: np.ndarray  # (H, W, 3) uint8
    front_depth: np.ndarray  # (H, W) float32, metres along the optical axis
    front_point_cloud: np.ndarray  # (H, W, 3) float32, world frame, NaN where no return
    camera_intrinsics: np.ndarray  # (3, 3)
    camera_extrinsics: np.ndarray  # (4, 4), optical frame -> world (REP-103 optical)
    joint_positions: np.ndarray  # (7,)
    joint_velocities: np.ndarray  # (7,)
    gripper_open: bool
    gripper_pose: np.ndarray  # (7,) xyz + quaternion xyzw of the tool centre point
    gripper_joint_positions: np.ndarray  # (2,)
    misc: dict = field(default_factory=dict)


def _look_at_xyaxes(pos, target):
    """MuJoCo camera xyaxes (camera x right, y up; it looks along its -z) aimed at target."""
    forward = target - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.concatenate([right, up])


def scene_xml(task_bodies: str = "", task_equalities: str = "", graspable: tuple[str, ...] = ()) -> str:
    """The simulated scene: the work cell (table + Panda), the front camera and the task's bodies."""
    xy = " ".join(f"{v:.6f}" for v in _look_at_xyaxes(FRONT_CAMERA_POS, FRONT_CAMERA_LOOKAT))
    cam_pos = " ".join(f"{v:.4f}" for v in FRONT_CAMERA_POS)
    camera = f'<camera name="front" pos="{cam_pos}" xyaxes="{xy}" fovy="{FRONT_CAMERA_FOVY}"/>'
    welds = "".join(
        f'<weld name="grasp_{b}" body1="{HAND_BODY}" body2="{b}" active="false" solref="0.004 1"/>\n'
        for b in graspable)
    return workcell_xml(extra_bodies=camera + task_bodies, extra_equalities=welds + task_equalities,
                        timestep=PHYSICS_DT)


class PandaSim:
    """Physics + rendering of one scene. Control is by joint position targets, like ros2_control."""

    def __init__(self, task_bodies: str = "", graspable: tuple[str, ...] = (), image_size=(128, 128),
                 shadows: bool = False, task_equalities: str = ""):
        self.graspable = tuple(graspable)
        self.model = mujoco.MjModel.from_xml_string(scene_xml(task_bodies, task_equalities, graspable))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arm_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in panda.ARM_JOINTS])
        self.arm_dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in panda.ARM_JOINTS])
        self.finger_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in panda.FINGER_JOINTS])
        self.finger_dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in panda.FINGER_JOINTS])
        self.arm_act = np.array([m.actuator(f"act_{n}").id for n in panda.ARM_JOINTS])
        self.finger_act = np.array([m.actuator(f"act_{n}").id for n in panda.FINGER_JOINTS])
        self.tcp_site = m.site(TCP_SITE).id
        self.hand_body = m.body(HAND_BODY).id
        self.finger_geoms = [set(np.flatnonzero(m.geom_bodyid == m.body(b).id)) for b in FINGER_BODIES]
        self.grasp_eq = {b: m.equality(f"grasp_{b}").id for b in self.graspable}
        self.graspable_ids = {b: m.body(b).id for b in self.graspable}
        self.attached: str | None = None
        self.gripper_target = 1.0
        self.substeps = int(round(1.0 / (CONTROL_HZ * PHYSICS_DT)))
        self.image_size = tuple(image_size)
        self.shadows = shadows
        self._renderer = None
        self.camera_id = m.camera("front").id
        self.intrinsics = intrinsics_from_fovy(m.cam_fovy[self.camera_id], *self.image_size)

    # ----- state -----------------------------------------------------------------------------
    def reset_robot(self, q=panda.NEUTRAL):
        """Robot to q with the gripper open; all physics state (warm starts, welds) cleared so
        that a seeded reset is bit-for-bit repeatable."""
        mujoco.mj_resetData(self.model, self.data)
        self.attached = None
        self.data.qpos[self.arm_qpos] = q
        self.data.qvel[:] = 0.0
        self.data.qpos[self.finger_qpos] = panda.FINGER_OPEN
        self.data.ctrl[self.arm_act] = q
        self.data.ctrl[self.finger_act] = panda.FINGER_OPEN
        self.gripper_target = 1.0
        mujoco.mj_forward(self.model, self.data)

    def set_body_pose(self, body: str, pos, quat_wxyz=(1.0, 0.0, 0.0, 0.0)):
        """Place a free body (task objects at reset)."""
        jnt = self.model.body(body).jntadr[0]
        adr, dof = self.model.jnt_qposadr[jnt], self.model.jnt_dofadr[jnt]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = quat_wxyz
        self.data.qvel[dof:dof + 6] = 0.0

    def body_pos(self, body: str) -> np.ndarray:
        return self.data.xpos[self.model.body(body).id].copy()

    def body_mat(self, body: str) -> np.ndarray:
        return self.data.xmat[self.model.body(body).id].reshape(3, 3).copy()

    def forward(self):
        mujoco.mj_forward(self.model, self.data)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.arm_qpos].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.arm_dof].copy()

    def finger_positions(self) -> np.ndarray:
        return self.data.qpos[self.finger_qpos].copy()

    def tcp_pose(self) -> np.ndarray:
        pos = self.data.site_xpos[self.tcp_site]
        mat = self.data.site_xmat[self.tcp_site].reshape(3, 3)
        return np.concatenate([pos, mat_to_quat_xyzw(mat)])

    # ----- control ---------------------------------------------------------------------------
    def set_arm_target(self, q):
        self.data.ctrl[self.arm_act] = q

    def set_gripper(self, open_amount: float):
        """Open amount in [0, 1]: 1 fully open, 0 closed. Opening releases a held object."""
        self.gripper_target = float(np.clip(open_amount, 0.0, 1.0))
        self.data.ctrl[self.finger_act] = self.gripper_target * panda.FINGER_OPEN
        if self.gripper_target > 0.5:
            self.release()

    def step(self, n_control_steps: int = 1):
        """Advance by whole control periods (1/CONTROL_HZ s each)."""
        for _ in range(n_control_steps):
            mujoco.mj_step(self.model, self.data, nstep=self.substeps)
            if self.gripper_target <= 0.5 and self.attached is None:
                self._try_grasp()

    def _try_grasp(self):
        touching = [set(), set()]
        for c in self.data.contact[: self.data.ncon]:
            for side, geoms in enumerate(self.finger_geoms):
                if c.geom1 in geoms:
                    touching[side].add(self.model.geom_bodyid[c.geom2])
                elif c.geom2 in geoms:
                    touching[side].add(self.model.geom_bodyid[c.geom1])
        for name, bid in self.graspable_ids.items():
            if bid in touching[0] and bid in touching[1]:
                self.attach(name)
                return

    def attach(self, body: str):
        """Weld `body` to the hand where it is now."""
        eq = self.grasp_eq[body]
        hand_p, hand_R = self.data.xpos[self.hand_body], self.data.xmat[self.hand_body].reshape(3, 3)
        bid = self.graspable_ids[body]
        rel_p = hand_R.T @ (self.data.xpos[bid] - hand_p)
        rel_R = hand_R.T @ self.data.xmat[bid].reshape(3, 3)
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, rel_R.ravel())
        self.model.eq_data[eq, 0:3] = 0.0
        self.model.eq_data[eq, 3:6] = rel_p
        self.model.eq_data[eq, 6:10] = q
        self.model.eq_data[eq, 10] = 1.0
        self.data.eq_active[eq] = 1
        self.attached = body

    def release(self):
        if self.attached is not None:
            self.data.eq_active[self.grasp_eq[self.attached]] = 0
            self.attached = None

    def attached_relative_pose(self):
        """(body name, 4x4 pose of the held object in the hand frame) or None."""
        if self.attached is None:
            return None
        bid = self.graspable_ids[self.attached]
        hand = np.eye(4)
        hand[:3, :3] = self.data.xmat[self.hand_body].reshape(3, 3)
        hand[:3, 3] = self.data.xpos[self.hand_body]
        obj = np.eye(4)
        obj[:3, :3] = self.data.xmat[bid].reshape(3, 3)
        obj[:3, 3] = self.data.xpos[bid]
        return self.attached, np.linalg.inv(hand) @ obj

    # ----- camera ----------------------------------------------------------------------------
    @property
    def renderer(self):
        if self._renderer is None:
            h, w = self.image_size
            self._renderer = mujoco.Renderer(self.model, h, w)
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.shadows
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self.shadows
            flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        return self._renderer

    def camera_extrinsics(self) -> np.ndarray:
        """Pose of the camera's optical frame in the world (x right, y down, z forward)."""
        T = np.eye(4)
        # MuJoCo cameras look along their -z with y up; the optical frame flips y and z.
        T[:3, :3] = self.data.cam_xmat[self.camera_id].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        T[:3, 3] = self.data.cam_xpos[self.camera_id]
        return T

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.renderer
        r.update_scene(self.data, camera=self.camera_id)
        rgb = r.render()
        r.enable_depth_rendering()
        try:
            depth = r.render().astype(np.float32)
        finally:
            r.disable_depth_rendering()
        depth[depth >= self.model.vis.map.zfar * self.model.stat.extent * 0.99] = 0.0
        return rgb, depth

    def observe(self) -> Observation:
        from arm_perception.camera import depth_to_points

        rgb, depth = self.render()
        extrinsics = self.camera_extrinsics()
        return Observation(
            front_rgb=rgb,
            front_depth=depth,
            front_point_cloud=depth_to_points(depth, self.intrinsics, extrinsics),
            camera_intrinsics=self.intrinsics.copy(),
            camera_extrinsics=extrinsics,
            joint_positions=self.joint_positions(),
            joint_velocities=self.joint_velocities(),
            gripper_open=panda.gripper_is_open(self.finger_positions()),
            gripper_pose=self.tcp_pose(),
            gripper_joint_positions=self.finger_positions(),
            misc={"stamp": self.time},
        )

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
