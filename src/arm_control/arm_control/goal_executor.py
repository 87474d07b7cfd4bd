"""One pose goal at a time, from plan to result, as a clock-driven state machine (no ROS).

The control node feeds it goals, joint states and the time; it answers with what to send (a
trajectory, a gripper command) and, once per goal, a Result. Move the arm, then the gripper
(RLBench's MoveArmThenGripper). Outcomes: reached, unreachable, collision, timeout, invalid.

``gripper_when_blocked``: a move that times out (the arm pushed against something and could
not settle at the goal) still actuates the gripper before its ``timeout`` result: QT-Opt's short
closed-loop steps close the fingers where the arm stopped, on the object it touched. Off (the
default), a timed-out move leaves the gripper alone, as RLBench's next-best poses do.

``stopped_short_is_reached``: the ARM authors' action mode (RLBench's
``ABS_EE_POSE_PLAN_WORLD_FRAME``, used with a MotionPlanner made with
``collision_checking=False``): a move ends where the arm stopped, the gripper acts there, and
the result is ``reached`` with the distance it stopped short in its message.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import panda
from .motion import MotionPlanner, MotionPlan
from .trajectory import Trajectory


@dataclass
class Goal:
    pose: np.ndarray  # (7,) xyz + xyzw in the world frame
    gripper: float | None = None  # open amount in [0, 1]; None leaves the gripper as it is
    key: object = None  # caller's tag (the stamp), echoed in the result


@dataclass
class Result:
    outcome: str
    key: object
    message: str
    plan_seconds: float = 0.0
    execution_seconds: float = 0.0

    def text(self) -> str:
        """The one-line report the control node publishes; it starts with the outcome."""
        message = self.message if self.message.startswith(self.outcome) else f"{self.outcome}: {self.message}"
        return (f"{message} (plan {self.plan_seconds * 1000:.1f} ms, "
                f"execution {self.execution_seconds:.2f} s)")


@dataclass
class Commands:
    """What the executor asks the caller to send now."""

    trajectory: Trajectory | None = None
    gripper_open: float | None = None
    results: list[Result] = field(default_factory=list)


class GoalExecutor:
    def __init__(self, motion: MotionPlanner, position_tolerance: float = 0.01,
                 settle_velocity: float = 0.02, timeout_margin: float = 3.0, gripper_seconds: float = 1.5,
                 gripper_when_blocked: bool = False, stopped_short_is_reached: bool = False):
        self.motion = motion
        self.gripper_when_blocked = gripper_when_blocked or stopped_short_is_reached
        self.stopped_short_is_reached = stopped_short_is_reached
        self._blocked: str | None = None  # why the arm phase of the active goal timed out
        self.position_tolerance = position_tolerance
        self.settle_velocity = settle_velocity
        self.timeout_margin = timeout_margin
        self.gripper_seconds = gripper_seconds
        self.queue: deque[Goal] = deque()
        self.active: Goal | None = None
        self.phase = "idle"  # idle -> moving -> gripper -> idle
        self.plan: MotionPlan | None = None
        self.started = self.deadline = 0.0
        self._fingers_before: np.ndarray | None = None
        self._fingers_still_since = None

    @property
    def busy(self) -> bool:
        return self.phase != "idle" or bool(self.queue)

    def submit(self, goal: Goal):
        self.queue.append(goal)

    def update(self, now: float, q: np.ndarray | None, dq: np.ndarray | None, fingers: np.ndarray | None,
               scene_qpos: np.ndarray | None = None) -> Commands:
        """Advance with the latest joint state (q, dq: arm; fingers: finger positions)."""
        out = Commands()
        if self.phase == "idle" and self.queue and q is not None:
            self._start(self.queue.popleft(), now, q, scene_qpos, out)
        elif self.phase == "moving":
            self._check_arrival(now, q, dq, out)
        elif self.phase == "gripper":
            self._check_gripper(now, fingers, out)
        return out

    def _finish(self, outcome, message, now, out: Commands):
        plan_s = 0.0 if self.plan is None else self.plan.ik_seconds + self.plan.plan_seconds
        out.results.append(Result(outcome, self.active.key, message, plan_s, max(0.0, now - self.started)))
        self.active, self.plan, self.phase, self._blocked = None, None, "idle", None

    def _start(self, goal: Goal, now, q, scene_qpos, out: Commands):
        self.active, self.started = goal, now
        if scene_qpos is None:
            scene_qpos = self.motion.collision.data.qpos.copy()
        self.plan = self.motion.plan(scene_qpos, q, goal.pose)
        if not self.plan.ok:
            self._finish(self.plan.outcome, self.plan.message, now, out)
            return
        out.trajectory = self.plan.trajectory
        self.phase = "moving"
        self.deadline = now + self.plan.trajectory.duration + self.timeout_margin

    def _check_arrival(self, now, q, dq, out: Commands):
        error = np.linalg.norm(self.motion.kinematics.fk(q)[:3] - self.active.pose[:3])
        still = dq is None or np.max(np.abs(dq)) < self.settle_velocity
        arrived = error < self.position_tolerance and still
        if not arrived and now > self.deadline:
            speed = 0.0 if dq is None else float(np.max(np.abs(dq)))
            self._blocked = (f"arm did not settle at the goal: position error {error * 1000:.1f} mm, "
                             f"joint speed {speed:.3f} rad/s")
            if not (self.gripper_when_blocked and self.active.gripper is not None):
                self._finish(self._blocked_outcome, self._blocked, now, out)
                return
        if arrived or self._blocked is not None:
            if self.active.gripper is None:
                self._finish("reached", f"position error {error * 1000:.1f} mm", now, out)
                return
            out.gripper_open = self.active.gripper
            self.phase, self._fingers_before, self._fingers_still_since = "gripper", None, None
            self.deadline = now + self.gripper_seconds

    @property
    def _blocked_outcome(self) -> str:
        return "reached" if self.stopped_short_is_reached else "timeout"

    def _check_gripper(self, now, fingers, out: Commands):
        target = self.active.gripper * panda.FINGER_OPEN
        if fingers is not None:
            if self._fingers_before is not None and np.max(np.abs(fingers - self._fingers_before)) < 2e-4:
                self._fingers_still_since = self._fingers_still_since or now
            else:
                self._fingers_still_since = None
            self._fingers_before = np.asarray(fingers).copy()
            at_target = np.max(np.abs(fingers - target)) < 2e-3
            blocked = self._fingers_still_since is not None and now - self._fingers_still_since > 0.2
            if at_target or blocked:  # blocked: closed on an object
                gripper = f"gripper {'at target' if at_target else 'closed on an object'}"
                if self._blocked is not None:
                    self._finish(self._blocked_outcome, f"{self._blocked}; {gripper}", now, out)
                else:
                    self._finish("reached", gripper, now, out)
                return
        if now > self.deadline:
            self._finish("timeout", (f"{self._blocked}; " if self._blocked else "") + "gripper did not settle",
                         now, out)
