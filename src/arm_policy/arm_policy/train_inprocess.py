"""In-process ARM training for experiments: the same agent and replay as the ROS training node, on
the in-process simulator (no DDS), with periodic evaluation and a run folder.

    arm train --inprocess --task pick_up_cup --minutes 30 --out runs/cup
    arm train --inprocess --task pick_up_cup --method bc --minutes 10 --out runs/cup_bc
    arm train --inprocess --task reach_target --method sac --demos 10 --out runs/reach_sac

Methods: ``arm`` (Q-attention + next-best-pose agent), ``sac`` (the paper's baseline: the same
pose agent on the whole image) and ``bc`` (the same networks, supervised on the demos only).
The first evaluation runs before any update: ``untrained_success`` in summary.json is the floor
the final success is read against, on the same scenes.

RUN/ holds config.json, demos/ (the recorded demo bags), checkpoints/, metrics.csv, tensorboard/,
learning_curve.png, attention/ (snapshots) and summary.json. Run the same command on a run folder
without summary.json to resume it from its newest checkpoint (its replay restarts from the demos;
the budget counts the time already spent).
"""
from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .agents import Agent, NumericalError, from_checkpoint
from .config import agent_config
from .demo_dataset import agent_observation, load_demos
from .learner import Learner, LearnerSettings, TrainingFailed
from .plots import attention_snapshot, plot_learning_curve
from .rewards import step_reward
from .run_log import RunLogger, write_config, write_summary

EVAL_SEED_BASE = 1_000_000  # evaluation scenes never overlap the demo or training seeds
KEYFRAME_TOLERANCE_M = 0.03  # a pose this close to the expert's next keyframe (same gripper) matches it
PROGRESS_SECONDS = 30.0  # between progress lines while training (evaluations always print one)
#: method -> how it is named on plots
METHODS = {"arm": "ARM", "sac": "SAC (no Q-attention)", "bc": "BC (demos only)"}
LAST_EVALUATIONS = 3  # summary.json's eval_success_last_mean: the mean of the last ones


@dataclass
class TrainSettings:
    """What `arm train --inprocess` takes; saved in config.json next to the agent's config."""

    task: str = "reach_target"
    preset: str = "cpu"
    method: str = "arm"  # arm, sac (no Q-attention) or bc (behaviour cloning on the demos)
    demos: int = 100  # the paper gives every method 100
    minutes: float = 30.0
    out: str = "runs/train"
    seed: int = 0
    episode_length: int = 10  # agent steps (next-best poses) before an episode is cut
    updates_per_step: int = 4  # gradient updates per environment step
    eval_every: int = 100  # environment steps between evaluations
    eval_episodes: int = 25
    checkpoint_every: int = 500  # updates
    keep_checkpoints: int = 5
    agent_overrides: dict = field(default_factory=dict)  # ARMConfig fields changed from the preset
    demo_dir: str = ""  # where the demo bags are (recorded there if missing); default OUT/demos
    device: str = "auto"  # cpu, cuda or auto (CUDA when present); the simulator stays on the CPU

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.demos < 1:
            raise ValueError(f"demos must be at least 1, got {self.demos}")


def sim_observation(obs, step: int, episode_length: int) -> dict:
    """What the agent sees of an arm_sim Observation (the policy node builds the same dict)."""
    return agent_observation(obs.front_rgb, obs.front_point_cloud, obs.gripper_open, obs.gripper_pose,
                             obs.gripper_joint_positions, step, episode_length)


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


def _expert_keyframe(task, obs, waypoints=None) -> tuple[np.ndarray, np.ndarray]:
    """(xyz, pixel) of the scripted expert's first waypoint in the scene just reset
    (``waypoints``: the expert's, if the caller has them already)."""
    from .demo_dataset import target_pixel

    waypoints = task.task.expert(task.sim) if waypoints is None else waypoints
    xyz = np.asarray(waypoints[0].pose[:3], dtype=np.float64)
    return xyz, target_pixel(xyz, obs.camera_intrinsics, obs.camera_extrinsics, obs.front_rgb.shape)


def run_episode(task, agent: Agent, seed: int, explore: bool, episode_length: int,
                on_transition: Callable[[dict], None] | None = None,
                snapshot: Callable | None = None) -> EpisodeResult:
    """One episode: reset, then next-best poses until success, an unexecutable pose or
    episode_length poses (rewards: :func:`arm_policy.rewards.step_reward`).

    ``on_transition`` receives each transition once the next decision is known: its
    ``next_pixel`` is the pixel the agent chose at the next observation (the critic's next crop);
    after a time-limit cut, the Q-attention's choice at the last observation (bootstrapped).
    """
    from arm_sim.environment import InvalidActionError

    _, obs = task.reset(seed=seed)
    waypoints = task.task.expert(task.sim)
    expert_xyz, expert_pixel = _expert_keyframe(task, obs, waypoints)
    matched = 0
    attention_error = pose_error = float("nan")
    outcome, reward, pending = "out of steps", 0.0, None
    for step in range(episode_length):
        o = sim_observation(obs, step, episode_length)
        pixel, action, q_map = agent.act(o, explore=explore)
        if pending is not None:
            on_transition({**pending, "next_pixel": pixel})
            pending = None
        if step == 0:
            attention_error = float(np.linalg.norm(pixel - expert_pixel))
            pose_error = float(np.linalg.norm(action[:3] - expert_xyz))
            if snapshot is not None:
                snapshot(o["rgb"], q_map, pixel)
        try:
            next_obs, _, success = task.step(np.r_[action[:7], float(action[7] > 0.5)])
            result = "reached"
            if matched < len(waypoints) and _matches(action, waypoints[matched]):
                matched += 1
        except InvalidActionError as e:
            next_obs, success, result = obs, False, e.outcome
            outcome = e.outcome
        reward, terminal, timeout = step_reward(result, success, step, episode_length)
        if on_transition is not None:
            n = sim_observation(next_obs, step + 1, episode_length)
            pending = {"rgb": o["rgb"], "point_cloud": o["point_cloud"], "low_dim": o["low_dim"],
                       "pixel": pixel, "action": action, "reward": reward, "terminal": terminal,
                       "timeout": timeout, "next_rgb": n["rgb"], "next_point_cloud": n["point_cloud"],
                       "next_low_dim": n["low_dim"]}
        obs = next_obs
        if terminal:
            break
    if pending is not None:
        # after a cut the target bootstraps at the decision the agent would take next; after a
        # real end it is not read (the pixel of the last decision stands in)
        next_pixel = agent.act(n, explore=False)[0] if pending["timeout"] else pending["pixel"]
        on_transition({**pending, "next_pixel": next_pixel})
    success = reward > 0
    return EpisodeResult(success, "success" if success else outcome, attention_error, pose_error,
                         matched, len(waypoints))


def _matches(action: np.ndarray, waypoint) -> bool:
    return bool(np.linalg.norm(action[:3] - waypoint.pose[:3]) < KEYFRAME_TOLERANCE_M
                and (action[7] > 0.5) == (waypoint.gripper > 0.5))


def summarise(results: list[EpisodeResult]) -> dict[str, float]:
    """Success rate and why the rest failed: ``attention_on_keyframe`` (first attended pixel within
    2 px of the expert's keyframe), median first-decision errors, the fraction of episodes ended by
    an unexecutable pose, and ``keyframes_matched``: the mean share of the expert's keyframes the
    executed poses matched in order (where a multi-step task stalls)."""
    attention = np.array([r.attention_error_px for r in results])
    return {"eval_success": float(np.mean([r.success for r in results])),
            "eval_attention_on_keyframe": float(np.mean(attention <= 2.0)),
            "eval_attention_error_px": float(np.median(attention)),
            "eval_pose_error_cm": float(np.median([100 * r.pose_error_m for r in results])),
            "eval_unexecutable": float(np.mean([r.outcome not in ("success", "out of steps")
                                                for r in results])),
            "eval_keyframes_matched": float(np.mean([r.keyframes_matched / r.keyframes for r in results]))}


def evaluate(task, agent, episodes: int, episode_length: int, snapshot=None,
             on_episode: Callable[[int, EpisodeResult], None] | None = None) -> dict[str, float]:
    """:func:`summarise` of ``episodes`` evaluation scenes (fixed seeds), without exploration."""
    results = []
    for i in range(episodes):
        results.append(run_episode(task, agent, EVAL_SEED_BASE + i, False, episode_length,
                                   snapshot=snapshot if i == 0 else None))
        if on_episode is not None:
            on_episode(i, results[-1])
    return summarise(results)


def _keep_metrics_until(run: Path, env_steps: int) -> None:
    """Drop metrics.csv rows logged after ``env_steps`` (an interrupted attempt past the checkpoint
    it resumes from; -1: a fresh start), so the curve has each evaluation once."""
    path = run / "metrics.csv"
    if not path.exists():
        return
    if env_steps < 0:
        path.unlink()
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    col = rows[0].index("step") if "step" in rows[0] else None  # RunLogger's step: env steps
    kept = [rows[0]] + [r for r in rows[1:] if col is None or (len(r) > col and r[col]
                                                               and float(r[col]) <= env_steps)]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


def summarise_curve(curve: list[dict]) -> dict:
    """summary.json's success figures from the evaluations in order: the untrained agent's (the
    first, before any update), the final one, the best (a maximum over repeated evaluations of
    the same scenes, which flatters) and the mean of the last ``LAST_EVALUATIONS``."""
    success = [float(r["eval_success"]) for r in curve]
    return {"untrained_success": success[0], "eval_success": success[-1],
            "best_success": max(success),
            "eval_success_last_mean": float(np.mean(success[-LAST_EVALUATIONS:])),
            **{k: v for k, v in curve[-1].items() if k.startswith("eval_") and k != "eval_success"}}


def train(settings: TrainSettings, log: Callable[[str], None] = print) -> dict:
    from arm_sim.demos import record_demos
    from arm_sim.environment import Environment

    from .run_log import read_metrics

    run = Path(settings.out)
    run.mkdir(parents=True, exist_ok=True)
    cfg = agent_config(settings.preset, settings.agent_overrides, settings.method)
    write_config(run, {"train": asdict(settings), "agent": cfg.to_dict()})
    demo_dir = Path(settings.demo_dir) if settings.demo_dir else run / "demos"
    if not (demo_dir / settings.task).exists():
        log(f"recording {settings.demos} demos of {settings.task} at {cfg.image_size}x{cfg.image_size}")
        record_demos(settings.task, settings.demos, settings.seed, demo_dir, cfg.image_size, progress=log)
    transitions = load_demos(demo_dir, settings.task, episode_length=settings.episode_length,
                             max_episodes=settings.demos)
    if not transitions:
        raise RuntimeError(f"no usable demos under {demo_dir / settings.task}")

    curve, env_steps, episodes, elapsed = [], 0, 0, 0.0

    def progress():
        return {"progress": {"env_steps": env_steps, "episodes": episodes,
                             "elapsed_seconds": round(time.monotonic() - start, 1)}}

    learner = Learner.start(
        settings.method, cfg, transitions, run,
        LearnerSettings(settings.updates_per_step, settings.checkpoint_every, settings.keep_checkpoints),
        device=settings.device, seed=settings.seed, log_dir=run / "training", extra_state=progress,
        warn=log)
    agent = learner.agent
    if learner.resumed is not None:
        state = learner.resumed.state.get("progress", {})
        env_steps, episodes = int(state.get("env_steps", 0)), int(state.get("episodes", 0))
        elapsed = float(state.get("elapsed_seconds", 0.0))
        learner.env_steps, learner.episodes = env_steps, episodes
        curve = [{"env_steps": row["step"], **{k: v for k, v in row.items() if k.startswith("eval_")}}
                 for row in (read_metrics(run / "metrics.csv") if (run / "metrics.csv").exists() else [])
                 if "eval_success" in row and row["step"] <= env_steps]
        log(f"resuming {run} from {learner.resumed.path.name}: {agent.updates} updates, {env_steps} "
            f"env steps, {elapsed / 60:.1f} of {settings.minutes:g} min spent (the replay restarts "
            "from the demos)")
    _keep_metrics_until(run, env_steps if learner.resumed is not None else -1)
    start = time.monotonic() - elapsed
    deadline = start + settings.minutes * 60
    log(f"{settings.method}: {len(transitions)} demo transitions from {settings.demos} demos; "
        f"agent on {agent.device}")

    task = Environment(image_size=(cfg.image_size, cfg.image_size)).get_task(settings.task)
    logger = RunLogger(run)
    attends = agent.attends
    (run / "attention").mkdir(exist_ok=True)

    def snapshot(rgb, q_map, pixel):
        attention_snapshot(rgb, q_map, pixel, cfg.crop_size, run / "attention" / f"env_step_{env_steps:07d}.png")

    def learn(transition):
        nonlocal env_steps
        learner.observe(transition)
        env_steps += 1
        learner.train()

    eval_seconds = 0.0  # the last evaluation's duration: the final one must fit in the budget

    def do_eval():
        nonlocal eval_seconds
        began = time.monotonic()
        result = evaluate(task, agent, settings.eval_episodes, settings.episode_length,
                          snapshot if attends else None)
        success = result["eval_success"]
        curve.append({"env_steps": env_steps, **result})
        metrics = learner.last_metrics
        updates = agent.updates
        logger.log(env_steps, **result, updates=updates, episodes=episodes,
                   **{k: v for k, v in metrics.items() if np.isscalar(v)})
        log(f"[{(time.monotonic() - start) / 60:5.1f} min] {settings.task} {settings.method}  "
            f"env steps {env_steps}  episodes {episodes}  updates {updates}  eval success {success:.2f}"
            + ("  (untrained)" if updates == 0 else f"  (untrained {curve[0]['eval_success']:.2f})")
            + "  (" + (f"attention on the keyframe {result['eval_attention_on_keyframe']:.2f}, "
                       if attends else "")
            + f"median pose error {result['eval_pose_error_cm']:.1f} cm, unexecutable "
            f"{result['eval_unexecutable']:.2f}, expert keyframes matched "
            f"{result['eval_keyframes_matched']:.2f})  "
            + "  ".join(f"{k} {v:.3g}" for k, v in metrics.items() if np.isscalar(v)))
        name = METHODS[settings.method]
        # beside success: how often Q-attention alone was right (the first decision's pixel) and
        # how far through the expert's keyframes the poses got (where a multi-step task stalls)
        def beside(key):
            return [{"env_steps": r["env_steps"], "eval_success": r[key]} for r in curve]

        compare = {"expert keyframes matched (share)": beside("eval_keyframes_matched")}
        if attends:
            compare["attention within 2 px of the expert keyframe"] = beside("eval_attention_on_keyframe")
        plot_learning_curve(curve, run / "learning_curve.png", label=f"{name} success",
                            title=f"{name} on {settings.task} ({settings.preset}, {settings.demos} demos)",
                            compare=compare,
                            ylabel=f"share of the {settings.eval_episodes} evaluation episodes")
        eval_seconds = time.monotonic() - began
        return success

    next_eval = (curve[-1]["env_steps"] + settings.eval_every) if curve else 0
    last_progress, recent = time.monotonic(), []
    episode_seconds = 0.0  # the last training episode's (with its updates): one more must fit too
    explore = agent.learns_online  # BC acts as it was taught: its episodes teach it nothing
    failure = None
    try:
        while time.monotonic() + 1.2 * eval_seconds + episode_seconds < deadline:
            if env_steps >= next_eval:
                do_eval()
                next_eval = env_steps + settings.eval_every
            began = time.monotonic()
            success = run_episode(task, agent, settings.seed + 10_000 + episodes, explore,
                                  settings.episode_length, learn).success
            learner.end_episode(success)
            recent = (recent + [success])[-20:]
            episode_seconds = time.monotonic() - began
            episodes += 1
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                log(f"[{(last_progress - start) / 60:5.1f} min] env steps {env_steps}  episodes "
                    f"{episodes}  updates {agent.updates}  {'exploring ' if explore else ''}success "
                    f"(last {len(recent)}) {np.mean(recent):.2f}  next eval at {next_eval} env steps")
        if not curve or curve[-1]["env_steps"] != env_steps:
            do_eval()
    except NumericalError as err:
        failure = f"{err}; the newest checkpoint in {run / 'checkpoints'} is the last good one"
        log(f"training stopped: {failure}")
    finally:
        learner.close(final_checkpoint=failure is None)
        logger.close()
        task.close()
    summary = {"task": settings.task, "preset": settings.preset, "method": settings.method,
               "demos": settings.demos, "seed": settings.seed,
               **(summarise_curve(curve) if curve else {}),
               "evaluations": len(curve), "env_steps": env_steps, "episodes": episodes,
               "updates": agent.updates, "wall_seconds": round(time.monotonic() - start, 1),
               **({"error": failure} if failure else {})}
    write_summary(run, **summary)
    if failure:
        raise TrainingFailed(failure)
    return summary


def evaluate_checkpoints(run_dir, episodes: int = 25, every_checkpoint: bool = False,
                         log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate a run folder's newest (or every) checkpoint on the evaluation scenes, in-process.

    Works for `arm train --inprocess` and `arm launch sim_train` runs alike (the task and the
    episode length come from RUN/config.json). Returns one dict per checkpoint: ``updates`` and
    what :func:`evaluate` reports; logs one line per episode saying which part went wrong.
    """
    from arm_sim.environment import Environment

    from .checkpoints import CheckpointError, list_checkpoints, load_checkpoint
    from .run_log import read_json

    run = Path(run_dir)
    config = read_json(run / "config.json")["config"]
    section = config.get("train") or config.get("episode_runner")
    if section is None:
        raise ValueError(f"{run / 'config.json'} holds neither an in-process nor a sim_train run")
    task_name, episode_length = section["task"], int(section["episode_length"])
    paths = list_checkpoints(run)
    if not paths:
        raise FileNotFoundError(f"no checkpoints under {run / 'checkpoints'}")
    results, task = [], None
    for path in paths if every_checkpoint else paths[-1:]:
        try:
            agent = from_checkpoint(load_checkpoint(path), device="cpu")
        except CheckpointError as e:
            log(f"skipping {path}: {e}")
            continue
        if task is None:
            size = agent.cfg.image_size
            task = Environment(image_size=(size, size)).get_task(task_name)

        def report(i, r, name=path.name):
            log(f"{name} scene {i:2d}: {r.outcome:12s} attention {r.attention_error_px:5.1f} px "
                f"from the expert keyframe, first pose {100 * r.pose_error_m:5.1f} cm from it, "
                f"{r.keyframes_matched}/{r.keyframes} expert keyframes matched")

        result = {"checkpoint": str(path), "updates": agent.updates,
                  **evaluate(task, agent, episodes, episode_length, on_episode=report)}
        results.append(result)
    if task is not None:
        task.close()
    return results
