"""From a goal pose to a collision-free, time-parameterised joint trajectory.

validate_pose -> a Cartesian straight line if it is collision-free (RLBench's linear path: it
keeps a held bottle or umbrella upright through a slot) -> otherwise IK (collision-free
solution, several seeds) and an OMPL joint-space plan -> ruckig trajectory.
Every failure is an outcome with a message, never an exception: callers (the control node, the
simulator's action step, experts) report it and carry on.

Outcomes: "planned" (a trajectory is ready), "unreachable" (no IK solution within joint limits),
"collision" (the goal or every path to it collides), "invalid" (malformed goal).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import panda
from .collision import CollisionChecker
from .kinematics import Kinematics
from .planner import plan_joint_path
from .trajectory import Trajectory, time_parameterise, time_parameterise_dense
from .planner import VERIFY_STEP, interpolate_path
from .transforms import quat_xyzw_to_mat, rotation_error, slerp_xyzw

# Shoulder to TCP at full stretch: 0.316 + 0.384 (+ offsets) + 0.107 flange + 0.1034 TCP < 1.0 m
MAX_REACH = 1.0
OUTCOMES = ("planned", "reached", "unreachable", "collision", "timeout", "invalid")


class InvalidPose(ValueError):
    """A goal pose that cannot mean anything: NaN/inf, wrong length, zero quaternion."""


def validate_pose(pose) -> np.ndarray:
    """Return a clean (7,) pose (xyz + unit quaternion xyzw, w >= 0) or raise InvalidPose."""
    try:
        pose = np.asarray(pose, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise InvalidPose(f"pose is not numeric: {e}") from None
    if pose.shape != (7,):
        raise InvalidPose(f"pose must have 7 values (x y z qx qy qz qw), got {pose.shape[0]}")
    bad = [n for n, v in zip(("x", "y", "z", "qx", "qy", "qz", "qw"), pose) if not np.isfinite(v)]
    if bad:
        raise InvalidPose(f"pose has NaN/inf in {', '.join(bad)}")
    norm = np.linalg.norm(pose[3:])
    if norm < 1e-6:
        raise InvalidPose(f"quaternion {pose[3:].tolist()} has norm {norm:.2g} and cannot be normalised")
    q = pose[3:] / norm
    return np.concatenate([pose[:3], -q if q[3] < 0 else q])


@dataclass
class MotionPlan:
    outcome: str
    message: str = ""
    trajectory: Trajectory | None = None
    goal_q: np.ndarray | None = None
    ik_seconds: float = 0.0
    plan_seconds: float = 0.0
    timings: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "planned"


class MotionPlanner:
    """IK + OMPL + ruckig for the Panda in one MuJoCo scene model.

    planner: an OMPL geometric planner name (RRTConnect, as MoveIt's default).
    velocity_scaling/acceleration_scaling: fractions of the official Panda limits, like
    MoveIt's scaling factors; trajectories are sampled at `dt` (the control period).
    """

    def __init__(self, model, planner: str = "RRTConnect", planning_timeout: float = 1.0,
                 velocity_scaling: float = 0.5, acceleration_scaling: float = 0.5, dt: float = 0.05,
                 ik_attempts: int = 10, seed: int = 0, collision_checking: bool = True):
        self.kinematics = Kinematics(model)
        self.collision = CollisionChecker(model)
        # False: IK solutions and paths may cut through the scene (only self-collisions count)
        self.collision.scene_collisions = collision_checking
        self.planner = planner
        self.planning_timeout = planning_timeout
        self.velocity_scaling = velocity_scaling
        self.acceleration_scaling = acceleration_scaling
        self.dt = dt
        self.ik_attempts = ik_attempts
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random IK seeds (attempts past the first two) from ``seed``: an episode
        that reseeds with its scene's seed plans the same whatever ran before it."""
        self.rng = np.random.default_rng(seed)

    def solve_ik(self, pose, start_q) -> tuple[np.ndarray | None, str]:
        """A collision-free IK solution and "ok", or None and why not (a sentence)."""
        base = self.kinematics.model.body("panda_link0").pos  # a child of the world body
        if np.linalg.norm(np.asarray(pose[:3]) - (base + [0, 0, 0.333])) > MAX_REACH:
            return None, f"unreachable: more than {MAX_REACH} m from the shoulder"
        hits = None
        seeds = [start_q, panda.NEUTRAL]
        for i in range(self.ik_attempts):
            seed = seeds[i] if i < len(seeds) else np.clip(
                panda.NEUTRAL + self.rng.normal(0.0, 0.8, 7), panda.LOWER, panda.UPPER)
            q = self.kinematics.ik(pose, seed)
            if q is None:
                continue
            hits = self.collision.contacts(q)
            if not hits:
                return q, "ok"
        if hits is None:
            return None, "unreachable: no IK solution within joint limits"
        return None, "collision: every IK solution collides (" + ", ".join(f"{a}-{b}" for a, b, _ in hits[:3]) + ")"

    def cartesian_path(self, start_q, goal_pose, step: float = 0.01, max_joint_step: float = 0.15):
        """Joint positions following the straight TCP line to goal_pose (1 cm steps, orientation
        slerped), or None if IK breaks off, the arm would jump, or any state collides."""
        start = self.kinematics.fk(start_q)
        distance = np.linalg.norm(goal_pose[:3] - start[:3])
        angle = np.linalg.norm(rotation_error(quat_xyzw_to_mat(goal_pose[3:]), quat_xyzw_to_mat(start[3:])))
        n = max(1, int(np.ceil(max(distance / step, angle / 0.05))))
        qs = [np.asarray(start_q, dtype=np.float64)]
        for i in range(1, n + 1):
            t = i / n
            pose = np.concatenate([start[:3] + t * (goal_pose[:3] - start[:3]), slerp_xyzw(start[3:], goal_pose[3:], t)])
            q = self.kinematics.ik(pose, qs[-1], max_iters=50)
            if q is None or np.max(np.abs(q - qs[-1])) > max_joint_step:
                return None
            qs.append(q)
        path = np.array(qs)
        for q in interpolate_path(path, VERIFY_STEP):  # as densely as a planned path
            if not self.collision.is_valid(q):
                return None
        return path

    def plan(self, qpos, start_q, goal_pose, held=None, ignore_bodies=(), mocap=None) -> MotionPlan:
        """Plan from arm configuration start_q to goal_pose in the scene state (qpos, and mocap
        = (positions, quaternions) of static props); see CollisionChecker.set_scene."""
        try:
            goal_pose = validate_pose(goal_pose)
        except InvalidPose as e:
            return MotionPlan("invalid", str(e))
        self.collision.set_scene(qpos, held=held, ignore_bodies=ignore_bodies, mocap=mocap)
        t0 = time.perf_counter()
        line = self.cartesian_path(start_q, goal_pose)
        if line is not None:
            traj = time_parameterise_dense(line, dt=self.dt, velocity_scaling=self.velocity_scaling,
                                           acceleration_scaling=self.acceleration_scaling)
            return MotionPlan("planned", f"Cartesian line, {len(line)} IK steps, {traj.duration:.2f} s",
                              trajectory=traj, goal_q=line[-1], plan_seconds=time.perf_counter() - t0)
        goal_q, why = self.solve_ik(goal_pose, start_q)
        t1 = time.perf_counter()
        if goal_q is None:
            return MotionPlan(why.split(":")[0], f"{why} for pose {np.round(goal_pose, 3).tolist()}",
                              ik_seconds=t1 - t0)
        result = plan_joint_path(start_q, goal_q, self.collision.is_valid, planner=self.planner,
                                 timeout=self.planning_timeout)
        t2 = time.perf_counter()
        if result.outcome != "ok":
            outcome = {"no_path": "collision", "invalid_goal": "collision",
                       "invalid_start": "collision"}.get(result.outcome, "invalid")
            return MotionPlan(outcome, f"{outcome}: {result.message}", goal_q=goal_q,
                              ik_seconds=t1 - t0, plan_seconds=t2 - t1)
        traj = time_parameterise(result.path, dt=self.dt, velocity_scaling=self.velocity_scaling,
                                 acceleration_scaling=self.acceleration_scaling)
        return MotionPlan("planned", f"planned {len(result.path)} waypoints, {traj.duration:.2f} s",
                          trajectory=traj, goal_q=goal_q, ik_seconds=t1 - t0, plan_seconds=t2 - t1)
