"""QT-Opt in one process on the bin (arm_sim.grasp_bin): the scripted grasps first, as episode
bags, then Q-learning on them and, unless offline only, on the agent's own grasps (CEM with
epsilon-greedy), evaluated on held-out objects never seen in training.

    arm train --inprocess --method qtopt --task grasp_bin --minutes 60 --out runs/qt
    arm train --inprocess --method qtopt --task grasp_bin --offline-only --minutes 60 --out runs/qt_off
    arm train --inprocess --method qtopt --task grasp_bin --demos 50 --agent-overrides image_size=32 --out runs/qt_small

``--demos N`` scripted episodes (``arm_sim.grasp_bin_scripted``: a noisy top-down grasp at a
random object, each step random with ``scripted_random_action_prob``) are recorded into
``RUN/demos/grasp_bin_random0.15_terminate0.5/episode_NNNNNN`` (:func:`offline_folder`; or under
``--demo-dir``) once;
their success rate is the floor the learned policy is read against (``scripted_success``). Batches
mix the offline data and the agent's own at ``replay_demo_fraction`` (the paper: half and half
once online). Offline only: no grasps of its own; ``updates_per_step`` x ``eval_every`` updates
between evaluations. The first evaluation is the untrained agent's. The run folder is the same as
ARM's: config.json, checkpoints/, metrics.csv, training/, learning_curve.png, summary.json.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from .agents import agent_config
from .grasp_episodes import (agent_observation, grasp_transitions, play_episode, play_scripted,
                             read_grasp_frames, transitions_of, write_grasp_episode)
from .learner import Learner, LearnerSettings
from .plots import plot_learning_curve
from .rollout import eval_seed, train_seed
from .run_log import RunLogger, write_config
from .settings import TrainSettings
from .training_run import TrainingRun

__all__ = ["evaluate_grasps", "offline_bag_folder", "offline_folder", "record_evaluation", "record_offline", "record_scripted",
           "scripted_frames", "scripted_name", "train_qtopt", "transitions_into"]

PROGRESS_SECONDS = 30.0
#: noise of the scripted offline grasps (arm_sim.grasp_bin_scripted; 1 = 8 mm, 5 mm, 0.2 rad):
#: at 1 they succeed 92% of the time, at 2 about 66% (250 scenes each); the paper's early
#: scripted policies succeeded 15-30%, so the offline data is drawn at 2, the noisier end
SCRIPTED_NOISE = 2.0
SCRIPTED_STREAM = 0x5C_4197  # seed-stream tag of the scripted policy's noise (one stream per episode)


def scripted_frames(env, seed: int, cfg) -> list:
    """The scripted grasp of training scene ``seed``, with ``cfg``'s random steps. Its noise has a
    seed stream of its own per episode, so any process playing any share of the scenes makes the
    same data."""
    return play_scripted(env, seed, np.random.default_rng([SCRIPTED_STREAM, seed]), SCRIPTED_NOISE,
                         cfg.scripted_random_action_prob, cfg.scripted_random_terminate_prob,
                         cfg.scripted_sticky_close)


def scripted_name(seed: int) -> str:
    """The bag name of scene ``seed``'s scripted grasp."""
    return f"episode_{seed:06d}"


def record_scripted(env, folder: Path, seed: int, cfg) -> list:
    """The scripted episode on scene ``seed`` as the bag ``folder/episode_<seed>`` (kept if it is
    there already) -> its frames (the last but one says whether it succeeded)."""
    path = folder / scripted_name(seed)
    if path.exists():  # read back, not replayed: 1,000 grasps are minutes of physics
        return read_grasp_frames(path)
    frames = scripted_frames(env, seed, cfg)
    write_grasp_episode(path, frames)
    return frames


def offline_folder(settings: TrainSettings, cfg) -> Path:
    """Where a run's offline bags are (recorded there if missing), DEMOS = DEMO_DIR or OUT/demos:
    DEMOS/TASK for the plain scripted grasps, and DEMOS/TASK_random<p>_terminate<q> for exploring
    ones (``scripted_random_action_prob`` p > 0; ``_sticky`` appended with
    ``scripted_sticky_close``), so bags of one kind are never read as the other."""
    return offline_bag_folder(Path(settings.demo_dir) if settings.demo_dir else Path(settings.out) / "demos",
                              settings.task, cfg, settings.tray)


def offline_bag_folder(demos: Path, task: str, cfg, tray: str = "full") -> Path:
    """The offline bags of ``task`` under the demo root ``demos`` for the agent config ``cfg``
    (:func:`offline_folder`; the ROS graph's episode runner records them there too); a tray
    other than the full bin (``--tray``) has its own folder, ``TASK_<tray>...``."""
    name = task if tray == "full" else f"{task}_{tray}"
    if cfg.scripted_random_action_prob > 0:
        sticky = "_sticky" if cfg.scripted_sticky_close else ""
        return demos / (f"{name}_random{cfg.scripted_random_action_prob:g}"
                        f"_terminate{cfg.scripted_random_terminate_prob:g}{sticky}")
    return demos / name


def record_offline(env, folder: Path, episodes: int, seed: int, log: Callable[[str], None], cfg,
                   on_episode: Callable[[Path, list], None] | None = None) -> float:
    """The scripted episodes ``seed .. seed+episodes-1`` as bags under ``folder`` (the ones there
    already are kept, and read once) -> their success rate. ``on_episode(bag, frames)`` gets each
    episode as it is recorded or read back, so a caller that trains on them needs no second read."""
    from arm_perception.bag_format import PARTIAL_SUFFIX

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"*{PARTIAL_SUFFIX}"):  # an interrupted recording
        import shutil

        shutil.rmtree(stale)
    wins, started = 0, time.monotonic()
    for i in range(episodes):
        frames = record_scripted(env, folder, seed + i, cfg)
        wins += bool(frames[-2].success)
        if on_episode is not None:
            on_episode(folder / scripted_name(seed + i), frames)
        if (i + 1) % 25 == 0 or i + 1 == episodes:
            log(f"offline data: {i + 1}/{episodes} scripted grasps, {wins / (i + 1):.2f} succeeded "
                f"({time.monotonic() - started:.0f} s)")
    return wins / max(episodes, 1)


def transitions_into(transitions: list, cfg) -> Callable[[Path, list], None]:
    """An ``on_episode`` for :func:`record_offline` that appends each episode's transitions."""
    return lambda bag, frames: transitions.extend(grasp_transitions(bag, frames, cfg))


def evaluate_grasps(env, agent, episodes: int) -> dict[str, float]:
    """Greedy grasps on the held-out scenes ``eval_seed(0 .. episodes-1)`` -> success rate, mean
    return and steps."""
    wins, steps = 0, []
    for i in range(episodes):
        frames = play_episode(env, eval_seed(i), lambda obs: agent.act(agent_observation(obs), False).action,
                              held_out=True)
        wins += frames[-2].success
        steps.append(len(frames) - 1)
    cfg = agent.cfg
    rate = wins / max(episodes, 1)
    return {"eval_success": rate, "eval_steps_mean": float(np.mean(steps)),
            "eval_return": float(cfg.step_reward * np.mean(steps) + cfg.success_reward * rate)}


def record_evaluation(p: TrainingRun, logger: RunLogger, result: dict, x: int, updates: int,
                      metrics: dict, scripted: float, settings: TrainSettings,
                      log: Callable[[str], None], how: str = "") -> None:
    """One evaluation of a QT-Opt run (in process or distributed, ``how`` says which): on the
    curve at ``x`` (env steps, or updates offline only), in metrics.csv with the learner's
    ``metrics``, on the console, and in learning_curve.png beside the scripted policy."""
    mode = "offline only" if settings.offline_only else "offline + online"
    tray = "" if settings.tray == "full" else f" ({settings.tray} tray)"
    p.curve.append({"env_steps": x, **result})
    logger.log(x, **result, updates=updates, episodes=p.episodes, scripted_success=scripted,
               **{k: v for k, v in metrics.items() if np.isscalar(v)})
    log(f"[{p.elapsed() / 60:5.1f} min] grasp_bin{tray} qtopt  env steps {p.env_steps}  updates "
        f"{updates}  held-out success {result['eval_success']:.2f}  (untrained "
        f"{p.curve[0]['eval_success']:.2f}, scripted {scripted:.2f})  steps {result['eval_steps_mean']:.1f}")
    plot_learning_curve(p.curve, p.run / "learning_curve.png", label="QT-Opt held-out success",
                        compare={"scripted policy (the offline data)":
                                 [{"env_steps": r["env_steps"], "eval_success": scripted} for r in p.curve]},
                        title=f"QT-Opt on grasp_bin{tray} ({how}{mode}, {settings.demos} scripted grasps"
                              + ("; x: updates)" if settings.offline_only else ")"),
                        ylabel=f"share of the {settings.eval_episodes} held-out episodes")


def train_qtopt(settings: TrainSettings, log: Callable[[str], None] = print) -> dict:
    from arm_sim.grasp_bin import GraspBinEnv

    run = Path(settings.out)
    run.mkdir(parents=True, exist_ok=True)
    cfg = agent_config(settings.preset, settings.agent_overrides, "qtopt")
    write_config(run, {"train": asdict(settings), "agent": cfg.to_dict()})
    env = GraspBinEnv(image_size=(cfg.image_size, cfg.image_size), max_steps=cfg.max_steps, tray=settings.tray)
    offline = offline_folder(settings, cfg)
    transitions: list[dict] = []
    scripted = record_offline(env, offline, settings.demos, settings.seed, log, cfg,
                              transitions_into(transitions, cfg))

    p = TrainingRun(run, settings.minutes)
    offline_only = settings.offline_only
    learner = Learner.start("qtopt", cfg, transitions, run,
                            LearnerSettings(0 if offline_only else settings.updates_per_step,
                                            settings.checkpoint_every, settings.keep_checkpoints),
                            device=settings.device, seed=settings.seed, log_dir=run / "training",
                            extra_state=p.state, warn=log, keep_replay=True)
    agent = learner.agent
    if p.resume(learner, by_updates=offline_only):
        log(f"resuming {run} from {learner.resumed.path.name}: {agent.updates} updates, {p.env_steps} "
            f"env steps ({learner.replay_note()})")
    mode = "offline only" if offline_only else "offline + online"
    log(f"qtopt ({mode}): {len(transitions)} offline transitions from {settings.demos} scripted grasps "
        f"(success {scripted:.2f}); agent on {agent.device}")
    logger = RunLogger(run)
    eval_seconds = 0.0

    def x_now():  # the curve's x: env steps, or updates offline only (no env steps are taken)
        return agent.updates if offline_only else p.env_steps

    def do_eval():
        nonlocal eval_seconds
        began = time.monotonic()
        record_evaluation(p, logger, evaluate_grasps(env, agent, settings.eval_episodes), x_now(),
                          agent.updates, learner.last_metrics, scripted, settings, log)
        eval_seconds = time.monotonic() - began

    def explore(obs):
        return agent.act(agent_observation(obs), explore=True).action

    # between evaluations: eval_every env steps, or offline only that many steps' worth of updates
    every = settings.eval_every * max(settings.updates_per_step, 1) if offline_only else settings.eval_every
    next_eval = (p.curve[-1]["env_steps"] + every) if p.curve else 0
    last_progress, recent, episode_seconds = time.monotonic(), [], 0.0
    with p.training(learner, log, logger.close, env.close):
        while p.left() > 1.2 * eval_seconds + episode_seconds:
            if x_now() >= next_eval:
                do_eval()
                next_eval = x_now() + every
            began = time.monotonic()
            if offline_only:
                for _ in range(min(50, max(1, next_eval - agent.updates))):
                    learner.update()
            else:
                frames = play_episode(env, train_seed(settings.seed, p.episodes), explore)
                for t in transitions_of(frames, cfg):
                    learner.observe(t)
                    p.env_steps += 1
                    learner.train()
                learner.end_episode(frames[-2].success)
                p.episodes += 1
                recent = (recent + [frames[-2].success])[-20:]
            episode_seconds = time.monotonic() - began
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                log(f"[{p.elapsed() / 60:5.1f} min] env steps {p.env_steps}  episodes {p.episodes}  "
                    f"updates {agent.updates}" + (f"  exploring success (last {len(recent)}) "
                                                  f"{np.mean(recent):.2f}" if recent else ""))
        if not p.curve or p.curve[-1]["env_steps"] != x_now():
            do_eval()
    return p.finish({"task": settings.task, "preset": settings.preset, "method": "qtopt",
                     "offline_only": offline_only, "tray": settings.tray, "demos": settings.demos, "seed": settings.seed,
                     "scripted_success": scripted, "scripted_noise": SCRIPTED_NOISE}, agent.updates)
