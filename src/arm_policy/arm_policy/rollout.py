"""One episode loop and one evaluation for every way of running an agent (no ROS here).

    env = SimRollout(task, agent, episode_length=10)              # the in-process simulator
    result = run_episode(env, seed=train_seed(0, 7), explore=True, episode_length=10)
    print(summarise([run_episode(env, eval_seed(i), False, 10) for i in range(25)]))

A :class:`Rollout` is the small interface the loop needs: reset a scene by seed (and say where
the scripted expert's keyframes are in it), ask the policy for a decision, execute it, and hear
about each step. :class:`SimRollout` is the in-process one (``arm train --inprocess``);
``arm_bringup.episode_runner.GraphRollout`` is the ROS one (services and topics of the graph).
Both run :func:`run_episode`, so the seeds, the reward rule (:mod:`arm_policy.rewards`) and the
diagnosis of an evaluation (:func:`summarise`) are the same on both paths.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from arm_control.transforms import gripper_offsets

from .rewards import step_reward

__all__ = ["EVAL_SEED_BASE", "TRAIN_SEED_OFFSET", "KEYFRAME_TOLERANCE_M", "ATTENTION_TOLERANCE_PX", "Decision",
           "Execution", "Scene", "Step", "Rollout", "SimRollout", "EpisodeResult", "LEFT_PATH_CAUSES", "UNEXECUTABLE_CAUSES", "evaluate",
           "expert_scene", "ExpertPath", "run_episode", "trace_line", "sim_observation", "summarise",
           "eval_seed", "train_seed"]

#: Evaluation scenes: seeds EVAL_SEED_BASE + i, never a demo's or a training episode's.
EVAL_SEED_BASE = 1_000_000
#: Training episode i of a run whose demos start at ``seed`` runs on ``seed + 10_000 + i``.
TRAIN_SEED_OFFSET = 10_000
KEYFRAME_TOLERANCE_M = 0.03  # a pose this close to the expert's next keyframe (same gripper) matches it
#: an attended pixel this close to the expert keyframe's pixel is on it, in pixels of a 64-px wide
#: image: 1/32 of the width at every size (4 px at 128), so diagnoses at 64 and 128 px compare
ATTENTION_TOLERANCE_PX = 2.0


def train_seed(seed: int, episode: int) -> int:
    """Scene seed of training episode ``episode`` (0-based) of a run whose demos start at ``seed``."""
    return int(seed) + TRAIN_SEED_OFFSET + int(episode)


def eval_seed(index: int) -> int:
    """Scene seed of the ``index``-th episode of every evaluation."""
    return EVAL_SEED_BASE + int(index)


@dataclass
class Scene:
    """The scene just reset, as the scripted expert would solve it: its keyframes (each with
    ``.pose`` (7,) and ``.gripper``), its first keyframe's position, and each keyframe's image
    pixel (``pixels`` (K, 2), row, col; the camera is fixed, so they hold for the whole episode)."""

    keyframes: Sequence[Any]
    first_xyz: np.ndarray
    pixels: np.ndarray
    image_width: int = 64

    def on_pixel(self, pixel, keyframe: int) -> bool:
        """Whether ``pixel`` is within the attention tolerance of keyframe ``keyframe``'s pixel."""
        distance = np.linalg.norm(np.asarray(pixel, dtype=np.float64) - self.pixels[keyframe])
        return bool(distance <= ATTENTION_TOLERANCE_PX * self.image_width / 64.0)

    @property
    def first_pixel(self) -> np.ndarray:
        return self.pixels[0]


@dataclass
class Decision:
    """One next-best pose: the attended ``pixel`` (row, col) and ``action`` (xyz, quaternion
    xyzw, gripper). The in-process rollout adds the observation it was taken on and the
    attention map; the graph's adds the decision's stamp and the checkpoint that took it."""

    pixel: np.ndarray
    action: np.ndarray
    obs: dict | None = None
    q_map: np.ndarray | None = None
    stamp_ns: int = 0
    checkpoint_step: int = -1


@dataclass
class Execution:
    """How executing a decision went: ``outcome`` is ``reached`` or why not (``ik_failed``, ...),
    ``success`` the task's state after it, ``obs`` the next observation (in-process only)."""

    outcome: str
    success: bool
    obs: dict | None = None


class Rollout(abc.ABC):
    """What :func:`run_episode` drives. Methods may raise to abort an episode (the graph's
    rollout does when a service does not answer); the caller decides what that means."""

    @abc.abstractmethod
    def reset(self, seed: int, name: str = "") -> Scene:
        """Reset to the scene of ``seed``; ``name`` labels the episode (the recorder's bag)."""

    @abc.abstractmethod
    def decide(self, step: int, explore: bool) -> Decision: ...

    @abc.abstractmethod
    def execute(self, decision: Decision) -> Execution: ...

    def attend(self, obs: dict) -> np.ndarray:
        """The pixel the policy would attend to at ``obs`` (the bootstrap of a cut episode's
        last transition); only rollouts that hand out transitions need it."""
        raise NotImplementedError(f"{type(self).__name__} hands out no transitions")

    def on_step(self, step: int, reward: float, terminal: bool, outcome: str, success: bool,
                decision: Decision) -> None:
        """Told after every step (the graph's rollout publishes it for the recorder)."""

    def end(self) -> None:
        """The episode ended normally."""

    def abort(self, error: BaseException) -> None:
        """The episode was broken off by ``error``, raised by one of the methods above."""


@dataclass
class Step:
    """One decision of an episode, as :func:`run_episode` tells ``on_step`` after executing it:
    ``keyframe`` is the expert keyframe the agent should make next (the first not yet matched;
    None once all are), ``on_path`` whether every earlier pose matched its keyframe."""

    step: int
    decision: Decision
    execution: Execution
    keyframe: int | None
    keyframe_pixel: np.ndarray | None
    on_path: bool
    keyframe_xyz: np.ndarray | None = None


@dataclass
class EpisodeResult:
    """How one episode went, and at its first decision how far each part of the agent was from
    the scripted expert's first keyframe (the next-best pose a demo of this scene would take)."""

    success: bool
    outcome: str  # "success", "out of steps" or the unexecutable pose's outcome ("ik_failed", ...)
    attention_error_px: float  # attended pixel -> expert keyframe's pixel (Q-attention's error)
    pose_error_m: float  # chosen xyz -> expert keyframe's xyz (the next-best-pose agent's error)
    #: how far along the expert's path it went: the expert's keyframes matched one after the other
    #: from the first by executed poses (within KEYFRAME_TOLERANCE_M, same gripper state; a pose
    #: that misses the next keyframe does not end the count, the next pose may still match it)
    keyframes_matched: int = 0
    keyframes: int = 1
    steps: int = 0
    episode_return: float = 0.0
    checkpoint_step: int = -1  # of the last decision (graph rollouts)
    #: the first pose that closes the gripper against the expert's first closing keyframe, in cm
    #: across the fingers, along the pads and in height (where most tasks are tightest); None
    #: when the agent never closed or the task has no grasp
    grasp_error_cm: tuple[float, float, float] | None = None
    #: the decisions after the first taken on the expert's path (every earlier pose matched its
    #: keyframe), and how many of them attended within ATTENTION_TOLERANCE_PX of the next
    #: keyframe's pixel: where a multi-step task's later stages lose Q-attention
    later_decisions: int = 0
    later_on_keyframe: int = 0
    #: where the episode left the expert's path (:class:`ExpertPath`, which forgives a via pose
    #: taken elsewhere): the keyframe it missed and why (LEFT_PATH_CAUSES); None and "" when it
    #: never did
    left_path_at: int | None = None
    left_path_by: str = ""
    attention_on_keyframe: bool = False  # the first attended pixel on the first keyframe's (Scene.on_pixel)


def _grasp_error_cm(action: np.ndarray, keyframes: Sequence[Any]) -> tuple[float, float, float] | None:
    """(across, along, height) cm from the expert's first closing keyframe to ``action``'s xyz."""
    grasp = next((k for k in keyframes if k.gripper <= 0.5), None)
    if grasp is None:
        return None
    return tuple(float(v) for v in 100 * gripper_offsets(action[:3] - grasp.pose[:3], grasp.pose[3:7]))


#: why a pose left the expert's path (:class:`ExpertPath`)
LEFT_PATH_CAUSES = ("attention", "pose", "refused")


class ExpertPath:
    """Follows an episode's executed decisions along the scripted expert's keyframes and says
    where, and why, the agent left them (``left``: (keyframe, cause) or None).

    Agents that succeed often take a via pose (a pre-grasp, a lift) somewhere else than the
    expert, or not at all. So a decision holds the path when it is reached and on the next
    keyframe or the one after it (within KEYFRAME_TOLERANCE_M, same gripper state); a reached
    decision that misses is forgiven when the decision after it takes the keyframe after the
    missed one (or the one after that). Otherwise the first miss is where it left. Why, for the
    keyframe it meant (the one its pose is on, else the one whose pixel it attended nearer):
    "refused", a pose on the keyframe the arm could not execute; "attention", the attended pixel
    more than ATTENTION_TOLERANCE_PX off the keyframe's; else "pose", on the pixel but not on the
    keyframe. The expert's last release places the object and ends its episode (its demos stop
    there): a release on that keyframe that does not finish the task left the path there, by
    the pose (the keyframe's tolerance is looser than where the task holds, stack_wine's 2 cm
    seat); without it such scenes would be blamed on the decision after, which has no keyframe
    left to follow."""

    def __init__(self, scene: Scene):
        self.scene, self.next = scene, 0
        self._missed: tuple[int, str] | None = None  # a miss the next decision may forgive
        self._left: tuple[int, str] | None = None
        opens = [k.gripper > 0.5 for k in scene.keyframes]
        self._placing = max((k for k in range(1, len(opens)) if opens[k] and not opens[k - 1]),
                            default=None)  # the expert's last release

    @property
    def left(self) -> tuple[int, str] | None:
        return self._left or self._missed

    def step(self, decision: Decision, outcome: str, success: bool = False) -> None:
        keyframes = self.scene.keyframes
        if self._left is not None or self.next >= len(keyframes):
            return
        candidates = [k for k in (self.next, self.next + 1) if k < len(keyframes)]
        action = np.asarray(decision.action)
        on_pose = [k for k in candidates if _matches(action, keyframes[k])]
        if on_pose and outcome == "reached":
            self.next, self._missed = on_pose[0] + 1, None
            if on_pose[0] == self._placing and not success:
                self._left = (self._placing, "pose")
            return
        if on_pose:
            miss = (on_pose[0], "refused")
        else:
            pixel = np.asarray(decision.pixel, dtype=np.float64)
            meant = min(candidates, key=lambda k: np.linalg.norm(pixel - self.scene.pixels[k]))
            miss = (meant, "pose" if self.scene.on_pixel(pixel, meant) else "attention")
        if self._missed is None and outcome == "reached" and self.next + 1 < len(keyframes):
            self._missed, self.next = miss, self.next + 1  # forgiven if the next decision holds
        else:
            self._left = self._missed or miss


def _matches(action: np.ndarray, keyframe) -> bool:
    return bool(np.linalg.norm(action[:3] - keyframe.pose[:3]) < KEYFRAME_TOLERANCE_M
                and (action[7] > 0.5) == (keyframe.gripper > 0.5))


def run_episode(env: Rollout, seed: int, explore: bool, episode_length: int, name: str = "",
                on_transition: Callable[[dict], None] | None = None,
                on_first_decision: Callable[[Decision], None] | None = None,
                on_step: Callable[[Step], None] | None = None) -> EpisodeResult:
    """One episode: reset, then next-best poses until success, an unexecutable pose or
    ``episode_length`` poses (rewards: :func:`arm_policy.rewards.step_reward`).

    ``on_transition`` receives each transition once the next decision is known: its
    ``next_pixel`` is the pixel the agent chose at the next observation (the critic's next crop);
    after a time-limit cut, the attention's choice at the last observation (bootstrapped).
    ``on_step`` receives each executed decision against the expert's path (:class:`Step`).
    """
    try:
        return _episode(env, seed, explore, episode_length, name, on_transition, on_first_decision,
                        on_step)
    except BaseException as error:
        env.abort(error)
        raise


def _episode(env, seed, explore, episode_length, name, on_transition, on_first_decision, on_step):
    scene = env.reset(seed, name)
    matched, total, later_decisions, later_on_keyframe = 0, 0.0, 0, 0
    attention_error = pose_error = float("nan")
    attention_on_keyframe = False
    grasp_error, closed = None, False
    path = ExpertPath(scene)
    outcome, reward, pending, decision = "out of steps", 0.0, None, None
    for step in range(episode_length):
        decision = env.decide(step, explore)
        if pending is not None:
            on_transition({**pending, "next_pixel": decision.pixel})
            pending = None
        if step == 0:
            attention_error = float(np.linalg.norm(np.asarray(decision.pixel) - scene.first_pixel))
            attention_on_keyframe = scene.on_pixel(decision.pixel, 0)
            pose_error = float(np.linalg.norm(np.asarray(decision.action[:3]) - scene.first_xyz))
            if on_first_decision is not None:
                on_first_decision(decision)
        if not closed and decision.action[7] <= 0.5:  # the first pose that closes the hand
            closed, grasp_error = True, _grasp_error_cm(np.asarray(decision.action), scene.keyframes)
        keyframe = matched if matched < len(scene.keyframes) else None
        on_path = matched == step
        if step > 0 and on_path and keyframe is not None:
            later_decisions += 1
            later_on_keyframe += scene.on_pixel(decision.pixel, keyframe)
        done = env.execute(decision)
        if on_step is not None:
            on_step(Step(step, decision, done, keyframe,
                         None if keyframe is None else scene.pixels[keyframe], on_path,
                         None if keyframe is None else np.asarray(scene.keyframes[keyframe].pose[:3])))
        if done.outcome == "reached" and keyframe is not None \
                and _matches(np.asarray(decision.action), scene.keyframes[keyframe]):
            matched += 1
        path.step(decision, done.outcome, done.success)
        if done.outcome != "reached":
            outcome = done.outcome
        reward, terminal, timeout = step_reward(done.outcome, done.success, step, episode_length)
        total += reward
        env.on_step(step, reward, terminal, done.outcome, done.success and reward > 0, decision)
        if on_transition is not None:
            o, n = decision.obs, done.obs
            pending = {"rgb": o["rgb"], "point_cloud": o["point_cloud"], "low_dim": o["low_dim"],
                       "pixel": decision.pixel, "action": decision.action, "reward": reward,
                       "terminal": terminal, "timeout": timeout, "next_rgb": n["rgb"],
                       "next_point_cloud": n["point_cloud"], "next_low_dim": n["low_dim"]}
        if terminal:
            break
    if pending is not None:
        # after a cut the target bootstraps at the decision the agent would take next; after a
        # real end it is not read (the pixel of the last decision stands in)
        next_pixel = env.attend(done.obs) if pending["timeout"] else pending["pixel"]
        on_transition({**pending, "next_pixel": next_pixel})
    env.end()
    success = reward > 0
    return EpisodeResult(success, "success" if success else outcome, attention_error, pose_error,
                         matched, len(scene.keyframes), step + 1, total,
                         decision.checkpoint_step if decision is not None else -1, grasp_error,
                         later_decisions, later_on_keyframe, *(path.left or (None, "")),
                         attention_on_keyframe)


def trace_line(s: Step) -> str:
    """One decision in words: where it attended (the pixel's 3-D point and its Q where the rollout
    keeps them) against the expert's next keyframe, the pose, and how executing it went."""
    d = s.decision
    row, col = (int(v) for v in d.pixel)
    where = ""
    if d.obs is not None:
        point = np.asarray(d.obs["point_cloud"][row, col], dtype=np.float64)
        where = " at " + ("no depth" if not np.all(np.isfinite(point)) else
                          "({:.3f}, {:.3f}, {:.3f}) m".format(*point))
    q = "" if d.q_map is None else f", Q {float(d.q_map[row, col]):.1f}"
    expert = ("the expert's keyframes all matched" if s.keyframe is None else
              "expert keyframe {} at ({}, {}){}".format(s.keyframe, *(int(v) for v in s.keyframe_pixel),
                                                        "" if s.on_path else ", off its path"))
    x, y, z = (float(v) for v in d.action[:3])
    off = ""
    if s.keyframe_xyz is not None:  # the pose against the keyframe's, where a task's seat is tight
        delta = 100 * (np.asarray(d.action[:3], dtype=np.float64) - s.keyframe_xyz)
        off = " ({:.1f} cm from the keyframe's: {:+.1f}, {:+.1f}, {:+.1f})".format(np.linalg.norm(delta), *delta)
    hand = "open" if d.action[7] > 0.5 else "close"
    return (f"step {s.step}: attended ({row}, {col}){where}{q} [{expert}] -> pose ({x:.3f}, {y:.3f}, "
            f"{z:.3f}) m{off}, {hand}: {s.execution.outcome}{', success' if s.execution.success else ''}")


def evaluate(env: Rollout, episodes: int, episode_length: int,
             name: Callable[[int], str] = lambda i: "",
             on_first_decision: Callable[[Decision], None] | None = None,
             on_episode: Callable[[int, EpisodeResult], None] | None = None,
             retry_on: tuple[type[BaseException], ...] = (), attempts: int = 1,
             warn: Callable[[str], None] = print,
             on_step: Callable[[int, Step], None] | None = None) -> dict[str, float]:
    """:func:`summarise` of the evaluation scenes ``eval_seed(0 .. episodes-1)``, no exploration
    (``on_first_decision``: the first episode's first decision, for a snapshot; ``on_step``: every
    executed decision of every scene, with the scene's index). An episode that
    raises one of ``retry_on`` is run again, up to ``attempts`` times, then left out (with a line
    to ``warn``); ``eval_episodes`` says how many count."""
    results = []
    for i in range(episodes):
        for attempt in range(attempts):
            try:
                result = run_episode(env, eval_seed(i), False, episode_length, name(i),
                                     on_first_decision=on_first_decision if i == 0 else None,
                                     on_step=None if on_step is None else (lambda s, i=i: on_step(i, s)))
                break
            except retry_on as err:
                warn(f"evaluation episode {i} aborted ({err})"
                     + ("; retrying" if attempt + 1 < attempts else f"; left out after {attempts} tries"))
        else:
            continue
        results.append(result)
        if on_episode is not None:
            on_episode(i, result)
    return {**summarise(results), "eval_episodes": len(results)}


#: why a pose was unexecutable (the control agent's outcomes, arm_control.motion): each has its
#: share of the evaluation's episodes, ``eval_unexecutable_<cause>``; other outcomes count as "other"
UNEXECUTABLE_CAUSES = ("unreachable", "collision", "timeout", "invalid")


def summarise(results: list[EpisodeResult]) -> dict[str, float]:
    """Success rate and why the rest failed: ``attention_on_keyframe`` (first attended pixel within
    the attention tolerance, 2 px at 64 px, of the expert's keyframe), ``attention_on_later_keyframes``
    (the share of later decisions taken on the expert's path whose pixel is within it of the next
    keyframe's; absent when no
    episode got past its first pose on the path), median first-decision errors, the fraction of episodes ended by
    an unexecutable pose and by which cause (``eval_unexecutable_unreachable``: no IK solution;
    ``_collision``: the goal or every path to it collides; ``_timeout``: the arm did not settle
    there; ``_invalid``; ``_other``), ``keyframes_matched``: the mean share of the expert's
    keyframes the executed poses matched in order (where a multi-step task stalls), and where the
    agent closed the hand on a task with a grasp, the median distance of its first grasp from the
    expert's across the fingers, along the pads and in height (``eval_grasp_error_*_cm``, absolute)
    and the median signed height error (``eval_grasp_height_bias_cm``: > 0 above the expert's).

    The failed scenes by where and why they left the expert's path (:class:`ExpertPath`; shares of
    all scenes, summing to 1 - ``eval_success``): ``eval_failed_attention``, ``_pose``,
    ``_refused`` and ``eval_failed_on_path``, failed with every pose on its keyframe.
    An unexecutable pose ends an episode but is often not where it went wrong: an agent that has
    left the path wanders until a pose collides."""
    if not results:
        return {"eval_success": float("nan")}
    attention = np.array([r.attention_error_px for r in results])
    ended = [r.outcome for r in results if r.outcome not in ("success", "out of steps")]
    causes = {f"eval_unexecutable_{cause}": sum(o == cause for o in ended) / len(results)
              for cause in UNEXECUTABLE_CAUSES}
    causes["eval_unexecutable_other"] = sum(o not in UNEXECUTABLE_CAUSES for o in ended) / len(results)
    return {"eval_success": float(np.mean([r.success for r in results])),
            "eval_return": float(np.mean([r.episode_return for r in results])),
            "eval_attention_on_keyframe": float(np.mean([r.attention_on_keyframe for r in results])),
            **_later_attention(results),
            "eval_attention_error_px": float(np.median(attention)),
            "eval_pose_error_cm": float(np.median([100 * r.pose_error_m for r in results])),
            "eval_unexecutable": float(np.mean([r.outcome not in ("success", "out of steps")
                                                for r in results])),
            **causes,
            "eval_keyframes_matched": float(np.mean([r.keyframes_matched / r.keyframes for r in results])),
            **_failures(results),
            **_grasp_summary([r.grasp_error_cm for r in results if r.grasp_error_cm is not None])}


def _failures(results: list[EpisodeResult]) -> dict[str, float]:
    failed = [r.left_path_by for r in results if not r.success]
    return {**{f"eval_failed_{cause}": failed.count(cause) / len(results) for cause in LEFT_PATH_CAUSES},
            "eval_failed_on_path": failed.count("") / len(results)}


def _later_attention(results: list[EpisodeResult]) -> dict[str, float]:
    decisions = sum(r.later_decisions for r in results)
    if not decisions:  # no key rather than NaN, as the grasp errors
        return {}
    return {"eval_attention_on_later_keyframes": sum(r.later_on_keyframe for r in results) / decisions}


def _grasp_summary(errors: list[tuple[float, float, float]]) -> dict[str, float]:
    if not errors:  # no key rather than NaN: the reports show "-" for a task without grasps
        return {}
    e = np.asarray(errors)
    return {"eval_grasp_error_across_cm": float(np.median(np.abs(e[:, 0]))),
            "eval_grasp_error_along_cm": float(np.median(np.abs(e[:, 1]))),
            "eval_grasp_error_height_cm": float(np.median(np.abs(e[:, 2]))),
            "eval_grasp_height_bias_cm": float(np.median(e[:, 2]))}


def expert_scene(task, obs) -> Scene:
    """The :class:`Scene` of an arm_sim task just reset to ``obs`` (the expert's keyframes, the
    first one's pixel through the observation's camera)."""
    from .demo_dataset import target_pixel

    keyframes = task.task.expert(task.sim)
    xyz = np.array([k.pose[:3] for k in keyframes], dtype=np.float64)
    pixels = target_pixel(xyz, obs.camera_intrinsics, obs.camera_extrinsics, obs.front_rgb.shape)
    return Scene(keyframes, xyz[0], pixels, int(obs.front_rgb.shape[1]))


def sim_observation(obs, step: int, episode_length: int) -> dict:
    """What the agent sees of an arm_sim Observation (the policy node builds the same dict)."""
    from .demo_dataset import agent_observation

    return agent_observation(obs.front_rgb, obs.front_point_cloud, obs.gripper_open, obs.gripper_pose,
                             obs.gripper_joint_positions, step, episode_length)


class SimRollout(Rollout):
    """The in-process simulator (an arm_sim task) with an agent deciding: what ``arm train
    --inprocess`` and ``arm evaluate`` run."""

    def __init__(self, task, agent, episode_length: int):
        self.task, self.agent, self.episode_length = task, agent, episode_length
        self._obs, self._step = None, 0

    def reset(self, seed: int, name: str = "") -> Scene:
        _, self._obs = self.task.reset(seed=seed)
        return expert_scene(self.task, self._obs)

    def decide(self, step: int, explore: bool) -> Decision:
        o = sim_observation(self._obs, step, self.episode_length)
        pixel, action, q_map = self.agent.act(o, explore=explore)
        self._step = step
        return Decision(pixel, action, obs=o, q_map=q_map)

    def execute(self, decision: Decision) -> Execution:
        from arm_sim.environment import InvalidActionError

        action = decision.action
        try:
            self._obs, _, success = self.task.step(np.r_[action[:7], float(action[7] > 0.5)])
            outcome = "reached"
        except InvalidActionError as e:  # the scene stays as it was
            success, outcome = False, e.outcome
        return Execution(outcome, bool(success),
                         sim_observation(self._obs, self._step + 1, self.episode_length))

    def attend(self, obs: dict) -> np.ndarray:
        return self.agent.act(obs, explore=False).pixel
