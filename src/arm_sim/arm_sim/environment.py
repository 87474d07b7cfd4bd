"""RLBench-shaped in-process environment: Environment -> get_task -> reset / step / get_demos.

The action is ARM's: a tool-centre-point pose (xyz + quaternion xyzw) and a gripper open amount
in [0, 1]. It goes through the same path as the ROS control node: validate -> IK -> OMPL ->
ruckig -> execute at the control rate, then the gripper acts (RLBench's MoveArmThenGripper).
A pose that cannot be reached raises InvalidActionError with the planner's outcome, as RLBench
does; ARM turns that into reward 0 and the end of the episode (the authors' rule, arm_policy.rewards).

``collision_checking=False`` is the action mode the ARM authors trained with (RLBench's
``ABS_EE_POSE_PLAN_WORLD_FRAME``, which plans with ``ignore_collisions=True`` and ends the step
when the path has been played, wherever the arm stopped): the planner ignores the scene, the
arm meets it physically, and a move that stops short of its goal (fingers on the table) is not
an error. Only a pose without an IK solution, or out of reach, still ends the episode.

    env = Environment(image_size=(128, 128))
    task = env.get_task("reach_target")
    descriptions, obs = task.reset(seed=0)
    obs, reward, terminate = task.step(np.r_[obs.gripper_pose, 1.0])
    demos = task.get_demos(2, seed=0)   # lists of Observations at 20 Hz
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from arm_control.motion import InvalidPose, MotionPlanner, validate_pose

from .sim import CONTROL_HZ, Observation, PandaSim
from .tasks import QTOPT_TASK_NAMES, Task, make_task

Recorder = Callable[[Observation, float, bool], None]


class InvalidActionError(RuntimeError):
    """The action could not be executed; `outcome` is unreachable / collision / invalid / timeout."""

    def __init__(self, outcome: str, message: str):
        super().__init__(message)
        self.outcome = outcome


@dataclass
class StepResult:
    outcome: str
    message: str = ""
    plan_seconds: float = 0.0
    execution_seconds: float = 0.0  # simulated seconds
    timings: dict = field(default_factory=dict)


class Environment:
    def __init__(self, image_size=(128, 128), planner: str = "RRTConnect", shadows: bool = False,
                 velocity_scaling: float = 0.5, collision_checking: bool = True):
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(image_size)
        self.planner = planner
        self.shadows = shadows
        self.velocity_scaling = velocity_scaling
        self.collision_checking = collision_checking

    def get_task(self, name: str) -> "TaskEnvironment":
        """The task's environment; "grasp_bin" (QT-Opt) returns an arm_sim.grasp_bin.GraspBinEnv,
        whose reset/step are QT-Opt's (closed-loop Cartesian steps), not a TaskEnvironment."""
        if name in QTOPT_TASK_NAMES:
            from .grasp_bin import GraspBinEnv
            return GraspBinEnv(image_size=self.image_size, shadows=self.shadows)
        return TaskEnvironment(make_task(name), self)


class TaskEnvironment:
    SETTLE_STEPS = 10  # control periods allowed after a trajectory for the servo to settle
    GRIPPER_STEPS = 12  # control periods for the fingers to open or close

    def __init__(self, task: Task, env: Environment):
        self.task = task
        self.sim = PandaSim(task.bodies(), task.graspable, image_size=env.image_size, shadows=env.shadows)
        self.collision_checking = env.collision_checking
        self.motion = MotionPlanner(self.sim.model, planner=env.planner, velocity_scaling=env.velocity_scaling,
                                    acceleration_scaling=env.velocity_scaling, dt=1.0 / CONTROL_HZ,
                                    collision_checking=env.collision_checking)
        self.seed = None
        self.last_result: StepResult | None = None

    @property
    def name(self) -> str:
        return self.task.name

    def reset(self, seed: int | None = None) -> tuple[list[str], Observation]:
        """New random scene; the same seed gives the same scene, and the same random IK restarts
        (so an evaluation episode runs the same in training as in `arm evaluate`)."""
        self.seed = seed
        self.motion.reseed(seed)
        rng = np.random.default_rng(seed)
        self.sim.data.time = 0.0
        self.sim.reset_robot()
        self.task.randomise(self.sim, rng)
        self.sim.forward()
        self.sim.step(5)  # let free objects settle on the table
        self.sim.data.time = 0.0
        return [self.task.description], self.sim.observe()

    def success(self) -> bool:
        return bool(self.task.success(self.sim))

    def _record(self, recorder: Recorder | None):
        if recorder is not None:
            success = self.success()
            recorder(self.sim.observe(), float(success), success)

    def step(self, action, recorder: Recorder | None = None) -> tuple[Observation, float, bool]:
        """Move to action[:7] (TCP pose), then set the gripper to action[7].

        recorder, when given, receives (observation, reward, success) at every control step,
        which is how demos and episode bags get their 20 Hz frames.
        """
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (8,):
            raise InvalidActionError("invalid", f"action must have 8 values (pose 7 + gripper), got {action.shape[0]}")
        try:
            pose = validate_pose(action[:7])
        except InvalidPose as e:
            raise InvalidActionError("invalid", str(e)) from None
        if not np.isfinite(action[7]):
            raise InvalidActionError("invalid", "gripper open amount is NaN/inf")
        result = self.execute(pose, float(np.clip(action[7], 0.0, 1.0)), recorder)
        stopped_short = result.outcome == "timeout" and not self.collision_checking
        if result.outcome != "reached" and not stopped_short:
            raise InvalidActionError(result.outcome, result.message)
        success = self.success()
        return self.sim.observe(), float(success), success

    def execute(self, pose, gripper: float, recorder: Recorder | None = None) -> StepResult:
        """Plan and execute one pose goal in the simulator; never raises for a bad goal."""
        sim = self.sim
        plan = self.motion.plan(sim.data.qpos.copy(), sim.joint_positions(), pose,
                                held=sim.attached_relative_pose(),
                                mocap=(sim.data.mocap_pos.copy(), sim.data.mocap_quat.copy()))
        if not plan.ok:
            self.last_result = StepResult(plan.outcome, plan.message, plan.ik_seconds + plan.plan_seconds)
            return self.last_result
        t0 = sim.time
        for q in plan.trajectory.positions[1:]:
            sim.set_arm_target(q)
            sim.step()
            self._record(recorder)
        for _ in range(self.SETTLE_STEPS):
            if np.max(np.abs(sim.joint_velocities())) < 0.02:
                break
            sim.step()
            self._record(recorder)
        if abs(gripper - sim.gripper_target) > 1e-3:
            sim.set_gripper(gripper)
            for _ in range(self.GRIPPER_STEPS):
                before = sim.finger_positions()
                sim.step()
                self._record(recorder)
                if np.max(np.abs(sim.finger_positions() - before)) < 2e-4:
                    break
        error = np.linalg.norm(sim.tcp_pose()[:3] - pose[:3])
        outcome = "reached" if error < 0.01 else "timeout"
        self.last_result = StepResult(outcome, f"{outcome}: position error {error * 1000:.1f} mm",
                                      plan.ik_seconds + plan.plan_seconds, sim.time - t0)
        return self.last_result

    def get_demos(self, amount: int, seed: int = 0, recorder_factory=None) -> list[list[Observation]]:
        """`amount` expert demonstrations from seeds seed, seed+1, ... (failed ones are retried
        with the next seed, as RLBench re-samples a variation). Each demo is its 20 Hz frames."""
        demos, s = [], seed
        while len(demos) < amount:
            frames, ok = self.run_expert(s)
            s += 1
            if ok:
                demos.append([f for f, _, _ in frames])
            if s - seed > 3 * amount + 10:
                raise RuntimeError(f"{self.name}: expert failed too often ({len(demos)}/{amount} after {s - seed} seeds)")
        return demos

    def run_expert(self, seed: int, noise: "ExpertNoise | None" = None) -> tuple[list[tuple[Observation, float, bool]], bool]:
        """Reset to seed and run the scripted expert; returns the 20 Hz frames and success.

        ``noise`` (default: none, RLBench's exact expert) makes demos of a learner whose poses are
        a centimetre or two off, seeded by ``seed``: ``place_m`` moves the pose before each
        release (the carry's end) off in x and y, the release itself where the exact expert's
        is, so the demos show a release that puts the object where it belongs from wherever the
        carry ended; ``grasp_m`` moves the grasp (every keyframe up to the first that closes)
        across the fingers, and the release then puts the *object*, not the hand, where the
        exact expert's would land it: a grasp 1 cm off the object's axis holds it 1 cm off, and a
        release above the seat would set it down 1 cm off (bench/release_offsets.py). The correction is for the first release
        after the first grasp (every task's expert grasps once), and takes the exact grasp's
        offset in the world frame: right for grasps at the object's origin (every task's) or a
        hand that keeps its yaw until the release."""
        noise = noise or ExpertNoise()
        _, obs = self.reset(seed)
        frames = [(obs, 0.0, False)]
        record = lambda o, r, s: frames.append((o, r, s))  # noqa: E731
        exact = self.task.expert(self.sim)
        # where each graspable object sits from below the exact expert's grasp: what it will be in the hand
        grasp = next((w.pose for w in exact if w.gripper <= 0.5), None)
        held_as = {} if grasp is None else {
            name: self.sim.body_pos(name)[:2] - np.asarray(grasp[:2]) for name in self.task.graspable}
        waypoints = grasp_noised(place_noised(exact, noise.place_m, seed), noise.grasp_m, seed)
        for k, wp in enumerate(waypoints):
            held = self.sim.attached
            if (noise.grasp_m > 0 and held in held_as and k > 0 and wp.gripper > 0.5
                    and waypoints[k - 1].gripper <= 0.5):
                in_hand = self.sim.body_pos(held)[:2] - self.sim.tcp_pose()[:2]
                pose = np.array(wp.pose, dtype=float)
                pose[:2] += held_as[held] - in_hand
                wp = dataclasses.replace(wp, pose=pose)
                held_as = {}  # the first release only
            result = self.execute(wp.pose, wp.gripper, record)
            if result.outcome != "reached":
                return frames, False
            if self.success():
                break
        return frames, self.success()

    def close(self):
        self.sim.close()


@dataclass(frozen=True)
class ExpertNoise:
    """How far the scripted expert's demos depart from the exact expert's (RLBench's are exact):
    the std of the normal offset (metres, at most twice it) of the carry's end in x and y
    (``place_m``) and of the grasp across the fingers (``grasp_m``); see
    :meth:`TaskEnvironment.run_expert`."""

    place_m: float = 0.0
    grasp_m: float = 0.0

    def __post_init__(self) -> None:
        for what, value in (("place", self.place_m), ("grasp", self.grasp_m)):
            if not 0.0 <= value <= MAX_EXPERT_NOISE_M:  # also refuses NaN
                raise ValueError(f"{what} noise must be within 0..{100 * MAX_EXPERT_NOISE_M:g} cm, "
                                 f"got {100 * value:g} cm")

    def matches(self, other: "ExpertNoise") -> bool:
        return all(abs(a - b) < 1e-9 for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other)))

    def text(self) -> str:
        return f"place noise {100 * self.place_m:g} cm, grasp noise {100 * self.grasp_m:g} cm"


MAX_EXPERT_NOISE_M = 0.05


def _offset_xy(rng, noise_m: float) -> np.ndarray:
    return np.clip(rng.normal(0.0, noise_m, 2), -2 * noise_m, 2 * noise_m)


def place_noised(waypoints: list, noise_m: float, seed: int) -> list:
    """The expert's waypoints with the one before each release (open after closed) moved off by
    up to ``2 * noise_m`` in x and y (normal, std ``noise_m``); the others as they were."""
    if noise_m <= 0:
        return waypoints
    ExpertNoise(place_m=noise_m)  # the range check
    rng = np.random.default_rng([int(seed), 0x91ACE])
    out = list(waypoints)
    for k in range(1, len(out)):
        if out[k].gripper > 0.5 and out[k - 1].gripper <= 0.5:
            pose = np.array(out[k - 1].pose, dtype=float)
            pose[:2] += _offset_xy(rng, noise_m)
            out[k - 1] = dataclasses.replace(out[k - 1], pose=pose)
    return out


def grasp_noised(waypoints: list, noise_m: float, seed: int) -> list:
    """The expert's waypoints with the grasp (every one up to the first that closes: the approach
    above and the grasp itself) moved across the fingers by one offset of up to ``2 * noise_m``
    (normal, std ``noise_m``); the others as they were. Across, not along the pads: a grasp off
    along the pads by more than half a centimetre misses a bottle's neck (bench/keyframe_tolerance.py),
    one off across the fingers still closes on it, off its axis."""
    from arm_control.transforms import ACROSS_FINGERS, quat_xyzw_to_mat

    if noise_m <= 0:
        return waypoints
    ExpertNoise(grasp_m=noise_m)  # the range check
    closing = next((k for k, w in enumerate(waypoints) if w.gripper <= 0.5), None)
    if closing is None:
        return waypoints
    rng = np.random.default_rng([int(seed), 0x6A5B])
    across = quat_xyzw_to_mat(np.asarray(waypoints[closing].pose[3:], dtype=float))[:, ACROSS_FINGERS]
    offset = float(np.clip(rng.normal(0.0, noise_m), -2 * noise_m, 2 * noise_m)) * across
    out = list(waypoints)
    for k in range(closing + 1):
        pose = np.array(out[k].pose, dtype=float)
        pose[:3] += offset
        out[k] = dataclasses.replace(out[k], pose=pose)
    return out
