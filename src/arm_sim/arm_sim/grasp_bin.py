"""QT-Opt's bin grasping task (`grasp_bin`) in MuJoCo: closed-loop Cartesian steps, friction grasps.

A tray holds 5 to 10 procedural objects (bin_objects: boxes, cylinders, capsules, ellipsoids,
random convex hulls; a held-out set of shapes never drawn in training). An over-the-shoulder RGB
camera looks at it. The Panda starts above the tray, gripper open and pointing down. Each step is

    step(displacement_xyz, yaw_delta, close_gripper, terminate) -> (obs, done, success)

a short executed move: the tool centre point goes by the displacement (clipped to +-MAX_DISPLACEMENT
per axis, then to the tray's workspace) and the gripper turns by yaw_delta about the vertical
(clipped to +-MAX_YAW_DELTA, the yaw itself to +-YAW_LIMIT), through IK and MOVE_PERIODS + SETTLE_PERIODS
control periods of real physics; the fingers open or close at the same time. Grasping is by friction only:
real MuJoCo contacts between the Panda's finger pads and the object, no weld or other equality
constraint (the scene has none). `terminate` (or the MAX_STEPS-th step) lifts the gripper to
LIFT_HEIGHT and ends the episode; it succeeds when an object's centre is SUCCESS_HEIGHT above the
tray floor and both fingers touch it. The agent side turns that into QT-Opt's rewards (1 at a
successful end, -0.05 per step).

Scenes are seeded: reset(seed, held_out) draws from a seed stream of its split, so a training
scene and a held-out scene never coincide, and held-out scenes hold only held-out shapes.

    env = GraspBinEnv(image_size=(64, 64))
    obs = env.reset(seed=0)
    obs, done, success = env.step([0.0, 0.0, -0.05], 0.0, close_gripper=False, terminate=False)

`Environment().get_task("grasp_bin")` returns a GraspBinEnv. The tray, the camera and the seeded
scenes are in bin_scene (re-exported here); the scripted data policy is in grasp_bin_scripted.
GraspBinDriver is the same scene for a robot driver (sim_node): the arm is moved by joint
targets from outside instead of by step().
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arm_control import panda
from arm_control.kinematics import Kinematics
from arm_control.transforms import top_down_quat
from arm_perception.camera import intrinsics_from_fovy

from .bin_camera import BinCamera
from .bin_objects import FAMILIES, Shape, local_points
from .bin_scene import (CAMERA_FOVY, CAMERA_LOOKAT, CAMERA_NAME, CAMERA_POS, FLOOR_Z, MAX_OBJECTS, MIN_OBJECTS,
                        SCENE_STREAM, TRAY_CENTER, TRAY_FLOOR, TRAY_HALF, TRAY_WALL, TRAY_WALL_HEIGHT, BinScene,
                        bin_bodies_xml, sample_scene, scene_rng)
from .sim import CONTROL_HZ, PandaSim, mujoco

GRASP_BIN = "grasp_bin"

MAX_STEPS = 20
MAX_DISPLACEMENT = 0.05  # metres per axis per step
MAX_YAW_DELTA = np.pi / 4  # radians per step
YAW_LIMIT = np.pi / 2  # the gripper is symmetric under a half turn: +-90 deg reaches every grasp
MOVE_PERIODS, SETTLE_PERIODS = 4, 1  # control periods (50 ms each) per step: moving, then settling
HOME_HEIGHT = 0.25  # the tool centre point above the tray floor at reset
MIN_TCP_HEIGHT, MAX_TCP_HEIGHT = 0.006, 0.30  # the TCP sits 7 mm above the fingertips
LIFT_HEIGHT = 0.25  # where `terminate` lifts the TCP (above the floor)
LIFT_PERIODS, HOLD_PERIODS = 12, 4
SETTLE_MIN_PERIODS, SETTLE_MAX_PERIODS, SETTLE_SPEED = 12, 40, 0.05  # at reset: 0.6 s to 2 s
RAMP_SUBSTEPS = 5  # physics steps between arm target updates during a move (10 ms)
SUCCESS_HEIGHT = 0.10  # a held object's centre above the floor after the lift
#: named trays, GraspBinEnv(tray=NAME): ``full`` the paper's bin of 5-10 objects of every family;
#: ``one_box`` a single box dropped right below the gripper's start (any size and yaw of the
#: split), the simplest grasp there is (descend, turn, close, lift); ``one_box_low`` the same box
#: under a gripper that starts HOME_HEIGHT_LOW above the floor, two steps from a grasp instead of
#: five: the learning smoke test's tray, learnable in the minutes a test suite can spend
HOME_HEIGHT_LOW = 0.10
MIN_HOME_HEIGHT = 0.08  # a start with the fingertips above the tallest box (6 cm) of a one-box tray
TRAYS: dict[str, dict] = {"full": {}, "one_box": {"objects": 1, "family": "box", "spread": 0.0},
                          "one_box_low": {"objects": 1, "family": "box", "spread": 0.0,
                                          "home_height": HOME_HEIGHT_LOW}}


@dataclass
class BinObservation:
    rgb: np.ndarray  # (H, W, 3) uint8, over-the-shoulder camera
    gripper_open: bool  # measured (panda.gripper_is_open), not commanded
    gripper_height: float  # TCP height above the tray floor, metres
    gripper_aperture: float  # measured finger opening, 0 closed .. 1 fully open
    gripper_position: np.ndarray  # (3,) TCP xyz in the world
    gripper_yaw: float  # radians, 0 = fingers closing along the world y axis
    step: int  # steps taken in this episode
    depth: np.ndarray | None = None  # (H, W) float32 metres when the env renders depth

    def state(self) -> np.ndarray:
        """QT-Opt's proprioceptive state: gripper open (1/0) and height above the tray bottom."""
        return np.array([float(self.gripper_open), self.gripper_height], dtype=np.float32)


@dataclass
class BinObject:
    name: str
    body_id: int
    geom_id: int
    shape: Shape

    @property
    def family(self) -> str:
        return self.shape.family


def tray_options(name: str) -> dict:
    """GraspBinEnv's tray options of the named tray (TRAYS); a ValueError lists the names."""
    if name not in TRAYS:
        raise ValueError(f"unknown tray {name!r}; choose from {', '.join(TRAYS)}")
    return dict(TRAYS[name])


def check_tray(tray: str, task: str) -> None:
    """ValueError for an unknown tray (naming the trays), or for a tray other than the full bin
    on a task with a scene of its own (the eight keyframe tasks)."""
    tray_options(tray)
    if tray != "full" and task != GRASP_BIN:
        raise ValueError(f"tray {tray!r} is a grasp_bin tray; {task!r} has its own scene")


def step_target(position, yaw: float, displacement, yaw_delta: float) -> tuple[np.ndarray, float]:
    """Where one step sends the tool from ``position`` (xyz) and ``yaw``: the displacement clipped
    to +-MAX_DISPLACEMENT per axis and the sum to the workspace above the tray, the yaw change to
    +-MAX_YAW_DELTA and the sum to +-YAW_LIMIT. One rule for the in-process step and for the
    ROS graph's (``arm_policy.grasp_episodes.step_goal``)."""
    d = np.clip(np.asarray(displacement, dtype=np.float64), -MAX_DISPLACEMENT, MAX_DISPLACEMENT)
    turn = float(np.clip(yaw_delta, -MAX_YAW_DELTA, MAX_YAW_DELTA))
    lo = np.r_[TRAY_CENTER - TRAY_HALF, FLOOR_Z + MIN_TCP_HEIGHT]
    hi = np.r_[TRAY_CENTER + TRAY_HALF, FLOOR_Z + MAX_TCP_HEIGHT]
    return np.clip(np.asarray(position, dtype=np.float64) + d, lo, hi), float(np.clip(yaw + turn, -YAW_LIMIT, YAW_LIMIT))


class GraspBinEnv:
    """QT-Opt's grasping episode. Not thread-safe; one env per process or thread."""

    name = GRASP_BIN
    description = "grasp any object from the tray and lift it"

    def __init__(self, image_size=(64, 64), depth: bool = False, shadows: bool = False, max_steps: int = MAX_STEPS,
                 objects: int | None = None, family: str | None = None, spread: float | None = None,
                 home_height: float | None = None, tray: str | None = None):
        """``objects``, ``family`` and ``spread`` fix every reset's tray (a count instead of 5-10,
        one shape family, how far from the centre: default 1, anywhere), ``home_height`` where the
        TCP starts above the floor (default HOME_HEIGHT); ``tray`` names a set of them (TRAYS):
        ``GraspBinEnv(tray="one_box")`` is the trivial tray, one box right below the gripper's
        start. A value given beside ``tray`` replaces the tray's: ``GraspBinEnv(tray="one_box",
        spread=1.0)`` is one box anywhere."""
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        given = {"objects": objects, "family": family, "spread": spread, "home_height": home_height}
        options = {"spread": 1.0, "home_height": HOME_HEIGHT} | (tray_options(tray) if tray is not None else {})
        options |= {k: v for k, v in given.items() if v is not None}
        objects, family, spread, home_height = (options.get(k) for k in given)
        sample_scene(0, family=family, objects=objects, spread=spread)  # bad values fail here, not at a reset
        if not (isinstance(home_height, (int, float)) and MIN_HOME_HEIGHT <= home_height <= MAX_TCP_HEIGHT):
            raise ValueError(f"home_height must be in [{MIN_HOME_HEIGHT}, {MAX_TCP_HEIGHT}] m above the floor, "
                             f"got {home_height!r}")
        self.home_height = float(home_height)
        self.tray_objects, self.tray_family, self.tray_spread = objects, family, spread
        self.image_size = tuple(int(v) for v in image_size)
        self.depth = depth
        self.max_steps = int(max_steps)
        self.camera = BinCamera(*self.image_size, shadows=shadows)
        self.sim: PandaSim | None = None
        self.kin: Kinematics | None = None
        self.objects: list[BinObject] = []
        self.seed: int | None = None
        self.held_out = False
        self.steps = 0
        self.done = False
        self._q_home = None
        self._target_pos = None
        self._target_yaw = 0.0

    # ----- episode ---------------------------------------------------------------------------
    def reset(self, seed: int, held_out: bool = False, family: str | None = None) -> BinObservation:
        """A new tray of 5-10 objects; the same (seed, held_out, family) gives the same scene.
        `family` restricts the scene to one shape family (per-family evaluation)."""
        scene = sample_scene(seed, held_out, family or self.tray_family, self.tray_objects, self.tray_spread)
        shapes = scene.shapes
        if self.sim is not None:
            self.sim.close()
        self.sim = sim = PandaSim(bin_bodies_xml(shapes, scene.positions, scene.quats), (), image_size=self.image_size)
        self.kin = Kinematics(sim.model)
        m = sim.model
        self.objects = [BinObject(f"obj{i}", m.body(f"obj{i}").id, m.geom(f"obj{i}_geom").id, s)
                        for i, s in enumerate(shapes)]
        self._finger_geoms = [np.array(sorted(g)) for g in sim.finger_geoms]
        self.camera.bind(m, CAMERA_NAME)
        if self._q_home is None:
            home = np.r_[TRAY_CENTER, FLOOR_Z + self.home_height, top_down_quat(0.0)]
            self._q_home = self.kin.ik(home, panda.NEUTRAL)
        sim.reset_robot(self._q_home)  # also puts the objects at their spawn poses (qpos0)
        self._q_cmd = self._q_home.copy()
        gain, bias = m.actuator_gainprm[sim.arm_act, 0], m.actuator_biasprm[sim.arm_act, 2]
        self._lag = -bias / gain  # kv / kp per arm joint: a position servo's velocity lag
        self._settle()
        sim.data.time = 0.0
        self.seed, self.held_out, self.steps, self.done = seed, held_out, 0, False
        self._target_pos = self._tcp()
        self._target_yaw = 0.0
        return self.observe()

    def step(self, displacement_xyz, yaw_delta=0.0, close_gripper=False, terminate=False):
        """One executed move; returns (observation, done, success). success is only ever True at
        the end of an episode (after the lift)."""
        if self.sim is None:
            raise RuntimeError("grasp_bin: call reset() before step()")
        if self.done:
            raise RuntimeError("grasp_bin: the episode is over; call reset()")
        d = np.asarray(displacement_xyz, dtype=np.float64).reshape(-1)
        if d.shape != (3,):
            raise ValueError(f"grasp_bin: displacement must have 3 values (x, y, z), got {d.shape[0]}")
        yaw = np.asarray(yaw_delta, dtype=np.float64)
        if yaw.size != 1:
            raise ValueError("grasp_bin: yaw_delta must be one number")
        yaw = float(yaw.reshape(-1)[0])
        if not (np.all(np.isfinite(d)) and np.isfinite(yaw)):
            raise ValueError(f"grasp_bin: action has NaN/inf (displacement {d.tolist()}, yaw_delta {yaw})")
        close = _flag(close_gripper, "close_gripper")
        terminate = _flag(terminate, "terminate")

        self.sim.set_gripper(0.0 if close else 1.0)
        # the target integrates commands while the arm keeps up (sub-mm here), and restarts from
        # where the arm is when something blocked it
        tcp = self._tcp()
        base = self._target_pos if np.linalg.norm(self._target_pos - tcp) < 0.02 else tcp
        yaw0 = self._target_yaw if abs(self._target_yaw - self._yaw()) < 0.1 else self._yaw()
        self._move_to(*step_target(base, yaw0, d, yaw), MOVE_PERIODS, settle=SETTLE_PERIODS)
        self.steps += 1
        success = False
        if terminate or self.steps >= self.max_steps:
            success = self._lift_and_check()
            self.done = True
        return self.observe(), self.done, success

    def _settle(self):
        """Let the dropped objects come to rest: at least SETTLE_MIN_PERIODS, then until every
        object is slower than SETTLE_SPEED (m/s and rad/s), at most SETTLE_MAX_PERIODS."""
        m = self.sim.model
        dofs = np.concatenate([np.arange(m.jnt_dofadr[m.body_jntadr[o.body_id]], m.jnt_dofadr[m.body_jntadr[o.body_id]] + 6)
                               for o in self.objects])
        self._advance(SETTLE_MIN_PERIODS)
        for _ in range(SETTLE_MIN_PERIODS, SETTLE_MAX_PERIODS, 2):
            if np.abs(self.sim.data.qvel[dofs]).max() < SETTLE_SPEED:
                break
            self._advance(2)

    def _lift_and_check(self) -> bool:
        """QT-Opt's end of episode: lift straight up, hold, and see whether an object came along."""
        self._move_to(np.r_[self._tcp()[:2], FLOOR_Z + LIFT_HEIGHT], self._target_yaw, LIFT_PERIODS, settle=HOLD_PERIODS)
        return self.held_object() is not None

    # ----- state -----------------------------------------------------------------------------
    def observe(self) -> BinObservation:
        sim = self.sim
        rgb, depth = self.camera.render(sim.data, depth=self.depth)
        fingers = sim.finger_positions()
        tcp = self._tcp()
        return BinObservation(rgb=rgb, gripper_open=panda.gripper_is_open(fingers),
                              gripper_height=float(tcp[2] - FLOOR_Z),
                              gripper_aperture=float(np.clip(fingers.mean() / panda.FINGER_OPEN, 0.0, 1.0)),
                              gripper_position=tcp, gripper_yaw=self._yaw(), step=self.steps, depth=depth)

    def touching(self) -> list[set[int]]:
        """Body ids touched by the left and by the right finger (from MuJoCo's contacts)."""
        d = self.sim.data
        g1, g2 = d.contact.geom1[: d.ncon], d.contact.geom2[: d.ncon]
        bodies = self.sim.model.geom_bodyid
        out = []
        for geoms in self._finger_geoms:
            a, b = np.isin(g1, geoms), np.isin(g2, geoms)
            out.append(set(bodies[g2[a]].tolist()) | set(bodies[g1[b]].tolist()))
        return out

    def held_object(self) -> BinObject | None:
        """The object touched by both fingers with its centre SUCCESS_HEIGHT above the floor."""
        left, right = self.touching()
        for o in self.objects:
            if o.body_id in left and o.body_id in right and self.sim.data.xpos[o.body_id][2] > FLOOR_Z + SUCCESS_HEIGHT:
                return o
        return None

    def object_points(self, obj: BinObject) -> np.ndarray:
        """The object's surface points in the world (privileged: for scripted policies)."""
        m, d = self.sim.model, self.sim.data
        g = obj.geom_id
        if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH:
            mid = m.geom_dataid[g]
            pts = m.mesh_vert[m.mesh_vertadr[mid]: m.mesh_vertadr[mid] + m.mesh_vertnum[mid]]
        else:
            pts = local_points(obj.shape)
        return d.geom_xpos[g] + pts @ d.geom_xmat[g].reshape(3, 3).T

    def objects_in_tray(self) -> list[BinObject]:
        out = []
        for o in self.objects:
            p = self.sim.data.xpos[o.body_id]
            if np.all(np.abs(p[:2] - TRAY_CENTER) < TRAY_HALF + 0.005) and p[2] < FLOOR_Z + TRAY_WALL_HEIGHT + 0.05:
                out.append(o)
        return out

    def equality_count(self) -> int:
        """Equality constraints in the scene: 0, grasps are friction only."""
        return int(self.sim.model.neq)

    # ----- motion ----------------------------------------------------------------------------
    def _tcp(self) -> np.ndarray:
        return self.sim.data.site_xpos[self.sim.tcp_site].copy()

    def _yaw(self) -> float:
        R = self.sim.data.site_xmat[self.sim.tcp_site].reshape(3, 3)
        return float(np.arctan2(R[1, 0], R[0, 0]))

    def _advance(self, periods: int):
        mujoco.mj_step(self.sim.model, self.sim.data, nstep=self.sim.substeps * periods)

    def _move_to(self, target, yaw: float, periods: int, settle: int):
        """Servo the TCP to `target` (xyz) pointing down at `yaw`: IK, then a smooth joint-space
        ramp over `periods` control periods, then `settle` more periods of holding still."""
        sim = self.sim
        q_now = self._q_cmd
        q_goal = self.kin.ik(np.r_[target, top_down_quat(yaw)], sim.joint_positions(), max_iters=100)
        if q_goal is None:  # out of reach (rare inside the tray): stay put, keep the gripper command
            q_goal, target, yaw = q_now, self._target_pos, self._target_yaw
        # smooth-step ramp with velocity feed-forward (the servos' kv/kp lag), updated every 10 ms
        dq, T = q_goal - q_now, periods / CONTROL_HZ
        n = periods * self.sim.substeps // RAMP_SUBSTEPS
        for k in range(1, n + 1):
            u = k / n
            sim.set_arm_target(q_now + dq * (3 * u * u - 2 * u ** 3) + self._lag * dq * (6 * u * (1 - u) / T))
            mujoco.mj_step(sim.model, sim.data, nstep=RAMP_SUBSTEPS)
        self._q_cmd = q_goal
        sim.set_arm_target(q_goal)
        self._advance(settle)
        self._target_pos, self._target_yaw = np.asarray(target, dtype=np.float64), yaw

    def close(self):
        if self.sim is not None:
            self.sim.close()
            self.sim = None
        self.camera.close()


class GraspBinDriver:
    """grasp_bin as the scene of a robot driver (sim_node), ROS-free.

    The driver moves the arm itself (sim.set_arm_target, sim.set_gripper, sim.step), as it does
    for the eight tasks; this class only builds the scenes and reads them out:

        scene = GraspBinDriver(image_size=(64, 64))
        scene.reset(seed=3, held_out=False)   # the tray settled, the arm at the bin's home
        scene.sim.set_arm_target(q); scene.sim.step()
        rgb, depth = scene.render()           # the over-the-shoulder camera, depth in metres
        scene.intrinsics, scene.camera_extrinsics()  # K; optical frame (REP-103) -> world
        scene.success()                       # an object held by both fingers, lifted

    `sim` is a new PandaSim after every reset (the objects change the model): read it from here
    each time, never keep it.
    """

    name = GRASP_BIN
    supports_held_out = True

    def __init__(self, image_size=(64, 64), shadows: bool = False, tray: str = "full"):
        self.env = GraspBinEnv(image_size=image_size, depth=True, shadows=shadows, tray=tray)
        h, w = self.env.image_size
        self.intrinsics = intrinsics_from_fovy(CAMERA_FOVY, h, w)

    @property
    def sim(self) -> PandaSim:
        if self.env.sim is None:
            raise RuntimeError("grasp_bin: call reset() first")
        return self.env.sim

    @property
    def seed(self) -> int | None:
        return self.env.seed

    @property
    def held_out(self) -> bool:
        return self.env.held_out

    def reset(self, seed: int, held_out: bool = False):
        """A new scene of the split (held_out: QT-Opt's held-out objects); the same (seed,
        held_out) gives the same scene. ValueError for a bad seed or held_out."""
        if not isinstance(held_out, (bool, np.bool_)):
            raise ValueError(f"held_out must be true or false, got {held_out!r}")
        self.env.reset(seed, bool(held_out))

    def success(self) -> bool:
        return self.env.held_object() is not None

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, depth (H, W) float32 metres along the optical axis, 0: no return)."""
        return self.env.camera.render(self.sim.data, depth=True)

    def camera_extrinsics(self) -> np.ndarray:
        """Pose of the camera's optical frame in the world (x right, y down, z forward), as
        PandaSim.camera_extrinsics gives the front camera's."""
        sim = self.sim
        cam = sim.model.camera(CAMERA_NAME).id
        T = np.eye(4)
        T[:3, :3] = sim.data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        T[:3, 3] = sim.data.cam_xpos[cam]
        return T

    def close(self):
        self.env.close()


def _flag(value, name: str) -> bool:
    """A boolean action part; NaN/inf and non-scalars are refused (bool(nan) would be True)."""
    v = np.asarray(value)
    if v.size != 1:
        raise ValueError(f"grasp_bin: {name} must be one boolean, got shape {v.shape}")
    v = v.reshape(-1)[0]
    if v.dtype.kind == "f" and not np.isfinite(v):
        raise ValueError(f"grasp_bin: {name} is NaN/inf")
    return bool(v)


__all__ = ["FAMILIES", "GRASP_BIN", "BinObject", "BinObservation", "BinScene", "GraspBinDriver", "GraspBinEnv",
           "HOME_HEIGHT_LOW", "TRAYS", "check_tray", "sample_scene", "scene_rng", "tray_options", "step_target",
           # the tray's geometry and scenes (bin_scene), re-exported
           "CAMERA_FOVY", "CAMERA_LOOKAT", "CAMERA_NAME", "CAMERA_POS", "FLOOR_Z", "MAX_OBJECTS", "MIN_OBJECTS",
           "SCENE_STREAM", "TRAY_CENTER", "TRAY_FLOOR", "TRAY_HALF", "TRAY_WALL", "TRAY_WALL_HEIGHT",
           "bin_bodies_xml"]
