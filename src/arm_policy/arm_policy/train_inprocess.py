"""In-process ARM training for experiments: the same agent and replay as the ROS training node, on
the in-process simulator (no DDS), with periodic evaluation and a run folder.

    arm train --inprocess --task pick_up_cup --minutes 30 --out runs/cup
    arm train --inprocess --task pick_up_cup --method bc --minutes 10 --out runs/cup_bc
    arm train --inprocess --task reach_target --method sac --demos 10 --out runs/reach_sac
    arm train --inprocess --task stack_wine --minutes 120 --final-eval-episodes 200 --out runs/wine

Methods: ``arm`` (Q-attention + next-best-pose agent), ``sac`` (the paper's baseline: the same
pose agent on the whole image) and ``bc`` (the same networks, supervised on the demos only).
The first evaluation runs before any update: ``untrained_success`` in summary.json is the floor
the final success is read against, on the same scenes. ``--final-eval-episodes N`` evaluates the
final agent once more, after the budget, on N scenes (summary.json's ``final_eval``).

RUN/ holds config.json, demos/ (the recorded demo bags), checkpoints/, metrics.csv, tensorboard/,
learning_curve.png, attention/ (snapshots) and summary.json. Run the same command on a run folder
without summary.json to resume it from its newest checkpoint, with the replay it had then (RUN/replay/
holds the agent's transitions until the run is over); the budget counts the time already spent.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from .agents import agent_class, agent_config, from_checkpoint
from .demo_dataset import load_demos
from .learner import Learner, LearnerSettings
from .plots import attention_snapshot, plot_learning_curve
from .rollout import SimRollout, evaluate, run_episode, trace_line, train_seed
from .run_log import RunLogger, write_config
from .settings import TrainSettings, expert_noise
from .training_run import TrainingRun

PROGRESS_SECONDS = 30.0  # between progress lines while training (evaluations always print one)


def train(settings: TrainSettings, log: Callable[[str], None] = print) -> dict:
    if settings.method == "qtopt":  # closed-loop grasping: its own loop (train_qtopt)
        from .train_qtopt import train_qtopt

        return train_qtopt(settings, log)
    from arm_sim.demos import check_recorded_noise, record_demos
    from arm_sim.environment import Environment

    run = Path(settings.out)
    run.mkdir(parents=True, exist_ok=True)
    cfg = agent_config(settings.preset, settings.agent_overrides, settings.method)
    write_config(run, {"train": asdict(settings), "agent": cfg.to_dict()})
    demo_dir = Path(settings.demo_dir) if settings.demo_dir else run / "demos"
    if not (demo_dir / settings.task).exists():
        log(f"recording {settings.demos} demos of {settings.task} at {cfg.image_size}x{cfg.image_size}")
        record_demos(settings.task, settings.demos, settings.seed, demo_dir, cfg.image_size, progress=log,
                     noise=expert_noise(settings))
    else:
        check_recorded_noise(demo_dir / settings.task, expert_noise(settings),
                             "pass those --place-noise-cm / --grasp-noise-cm or another --demo-dir")
    transitions = load_demos(demo_dir, settings.task, episode_length=settings.episode_length,
                             max_episodes=settings.demos)
    if not transitions:
        raise RuntimeError(f"no usable demos under {demo_dir / settings.task}")

    p = TrainingRun(run, settings.minutes)
    learner = Learner.start(
        settings.method, cfg, transitions, run,
        LearnerSettings(settings.updates_per_step, settings.checkpoint_every, settings.keep_checkpoints),
        device=settings.device, seed=settings.seed, log_dir=run / "training", extra_state=p.state,
        warn=log, keep_replay=True)
    agent = learner.agent
    if p.resume(learner):
        log(f"resuming {run} from {learner.resumed.path.name}: {agent.updates} updates, {p.env_steps} "
            f"env steps, {p.elapsed() / 60:.1f} of {settings.minutes:g} min spent ({learner.replay_note()})")
    log(f"{settings.method}: {len(transitions)} demo transitions from {settings.demos} demos; "
        f"agent on {agent.device}")

    task = Environment(image_size=(cfg.image_size, cfg.image_size),
                       collision_checking=settings.collision_checking).get_task(settings.task)
    logger = RunLogger(run)
    attends = agent.attends
    (run / "attention").mkdir(exist_ok=True)
    env = SimRollout(task, agent, settings.episode_length)

    def snapshot(decision):
        attention_snapshot(decision.obs["rgb"], decision.q_map, decision.pixel, cfg.crop_size,
                           run / "attention" / f"env_step_{p.env_steps:07d}.png")

    def learn(transition):
        learner.observe(transition)
        p.env_steps += 1
        learner.train()

    eval_seconds = 0.0  # the last evaluation's duration: the final one must fit in the budget

    def do_eval():
        nonlocal eval_seconds
        began = time.monotonic()
        result = evaluate(env, settings.eval_episodes, settings.episode_length,
                          on_first_decision=snapshot if attends else None)
        record_evaluation(p, logger, result, agent.updates, learner.last_metrics, settings, log)
        eval_seconds = time.monotonic() - began

    next_eval = (p.curve[-1]["env_steps"] + settings.eval_every) if p.curve else 0
    last_progress, recent = time.monotonic(), []
    episode_seconds = 0.0  # the last training episode's (with its updates): one more must fit too
    explore = agent.learns_online  # BC acts as it was taught: its episodes teach it nothing
    final_eval = None
    with p.training(learner, log, logger.close, task.close):
        while p.left() > 1.2 * eval_seconds + episode_seconds:
            if p.env_steps >= next_eval:
                do_eval()
                next_eval = p.env_steps + settings.eval_every
            began = time.monotonic()
            success = run_episode(env, train_seed(settings.seed, p.episodes), explore,
                                  settings.episode_length, on_transition=learn).success
            learner.end_episode(success)
            recent = (recent + [success])[-20:]
            episode_seconds = time.monotonic() - began
            p.episodes += 1
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                log(f"[{p.elapsed() / 60:5.1f} min] env steps {p.env_steps}  episodes {p.episodes}  "
                    f"updates {agent.updates}  {'exploring ' if explore else ''}success "
                    f"(last {len(recent)}) {np.mean(recent):.2f}  next eval at {next_eval} env steps")
        if not p.curve or p.curve[-1]["env_steps"] != p.env_steps:
            do_eval()
        if settings.final_eval_episodes:
            final_eval = final_evaluation(env, settings, p.curve[-1]["eval_success"], log)
    return p.finish({"task": settings.task, "preset": settings.preset, "method": settings.method,
                     "demos": settings.demos, "seed": settings.seed,
                     **({"final_eval": final_eval} if final_eval else {})}, agent.updates)


def final_evaluation(env: SimRollout, settings: TrainSettings, curve_final: float,
                     log: Callable[[str], None]) -> dict:
    """The final agent on ``final_eval_episodes`` fixed scenes (the curve's ``eval_episodes`` are
    the first of them), a progress line every 25: a final success that the noise of 25 scenes
    does not decide. :func:`evaluate`'s figures; it runs after the budget, not counted against
    it (summary.json's ``wall_seconds`` includes it)."""
    began, successes = time.monotonic(), []

    def progress(i, result):
        successes.append(result.success)
        if len(successes) % 25 == 0 and len(successes) < settings.final_eval_episodes:
            log(f"final evaluation: {len(successes)} of {settings.final_eval_episodes} scenes, "
                f"success {np.mean(successes):.2f}")

    result = evaluate(env, settings.final_eval_episodes, settings.episode_length, on_episode=progress)
    log(f"final evaluation on {result['eval_episodes']} scenes: success {result['eval_success']:.2f} "
        f"(the curve's last, on its {settings.eval_episodes}: {curve_final:.2f}; "
        f"{time.monotonic() - began:.0f} s)")
    return result


def record_evaluation(p: TrainingRun, logger: RunLogger, result: dict, updates: int, metrics: dict,
                      settings: TrainSettings, log: Callable[[str], None], how: str = "",
                      x: int | None = None) -> None:
    """One evaluation of a keyframe agent's run (in process or distributed, ``how`` says which):
    on the curve at ``x`` (default: the run's env steps; distributed: when it was asked for), in
    metrics.csv with the learner's ``metrics``, on the console and in learning_curve.png beside
    the attention's and the poses' diagnosis."""
    attends, name = agent_class(settings.method).attends, agent_class(settings.method).label
    x = p.env_steps if x is None else x
    p.curve.append({"env_steps": x, **result})
    logger.log(x, **result, updates=updates, episodes=p.episodes,
               **{k: v for k, v in metrics.items() if np.isscalar(v)})
    log(f"[{p.elapsed() / 60:5.1f} min] {settings.task} {settings.method}  env steps "
        f"{x}  episodes {p.episodes}  updates {updates}  eval success "
        f"{result['eval_success']:.2f}"
        + ("  (untrained)" if updates == 0 else f"  (untrained {p.curve[0]['eval_success']:.2f})")
        + "  (" + (f"attention on the keyframe {result['eval_attention_on_keyframe']:.2f}"
                   + (f", later {result['eval_attention_on_later_keyframes']:.2f}"
                      if "eval_attention_on_later_keyframes" in result else "") + ", "
                   if attends else "")
        + f"median pose error {result['eval_pose_error_cm']:.1f} cm, unexecutable "
        f"{result['eval_unexecutable']:.2f}, expert keyframes matched "
        f"{result['eval_keyframes_matched']:.2f})  "
        + "  ".join(f"{k} {v:.3g}" for k, v in metrics.items() if np.isscalar(v)))

    # beside success: how often Q-attention alone was right (the first decision's pixel) and
    # how far through the expert's keyframes the poses got (where a multi-step task stalls)
    def beside(key):
        return [{"env_steps": r["env_steps"], "eval_success": r[key]} for r in p.curve]

    compare = {"expert keyframes matched (share)": beside("eval_keyframes_matched")}
    if attends:
        compare["attention on the expert keyframe (within 1/32 of the width)"] = beside("eval_attention_on_keyframe")
    plot_learning_curve(p.curve, p.run / "learning_curve.png", label=f"{name} success",
                        title=f"{name} on {settings.task} ({how}{settings.preset}, {settings.demos} demos)",
                        compare=compare, ylabel=f"share of the {settings.eval_episodes} evaluation episodes")


def evaluate_checkpoints(run_dir, episodes: int = 25, every_checkpoint: bool = False,
                         log: Callable[[str], None] = print,
                         collision_checking: bool | None = None, trace: bool = False,
                         greedy_refine: tuple[int, float] | None = None) -> list[dict]:
    """Evaluate a run folder's newest (or every) checkpoint on the evaluation scenes, in-process.

    Works for `arm train --inprocess` and `arm launch sim_train` runs alike (the task and the
    episode length come from RUN/config.json). Returns one dict per checkpoint: ``updates`` and
    what :func:`evaluate` reports; logs one line per episode saying which part went wrong.
    ``collision_checking``: the action mode to evaluate in (default: the run's own; runs made
    before the option planned around the scene). ``trace``: also one line per decision.
    ``greedy_refine``: (samples, cm) decide with ``ARMConfig.greedy_refine_samples`` and
    ``greedy_refine_cm`` instead of the run's own (ARM and SAC, whose critic was learned).
    """
    from arm_sim.environment import Environment

    from .checkpoints import CheckpointError, list_checkpoints, load_checkpoint
    from .run_log import read_json

    run = Path(run_dir)
    config = read_json(run / "config.json")["config"]
    section = (config.get("train") or config.get("nodes", {}).get("episode_runner")
               or config.get("episode_runner"))  # in-process, `arm launch sim_train`, older runs
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
        if greedy_refine is not None:
            if not agent.learns_online or not hasattr(agent.cfg, "greedy_refine_samples"):
                raise ValueError(f"--greedy-refine needs an ARM or SAC run, whose critic was learned; "
                                 f"{path} holds a {agent.name} agent")
            agent.cfg = agent.cfg.replace(greedy_refine_samples=greedy_refine[0],
                                          greedy_refine_cm=greedy_refine[1])
        if task is None:
            size = agent.cfg.image_size
            if collision_checking is None:
                collision_checking = section.get("collision_checking", True)
            task = Environment(image_size=(size, size),
                               collision_checking=collision_checking).get_task(task_name)

        def report(i, r, name=path.name):
            grasp = ("" if r.grasp_error_cm is None else ", first grasp {:+.1f} / {:+.1f} / {:+.1f} cm "
                     "(across / along / height) from the expert's".format(*r.grasp_error_cm))
            later = (f", later attention on the keyframe {r.later_on_keyframe}/{r.later_decisions}"
                     if r.later_decisions else "")
            left = ("" if r.left_path_at is None else
                    f", left the expert's path at keyframe {r.left_path_at} ({r.left_path_by})")
            log(f"{name} scene {i:2d}: {r.outcome:12s} attention {r.attention_error_px:5.1f} px "
                f"from the expert keyframe, first pose {100 * r.pose_error_m:5.1f} cm from it, "
                f"{r.keyframes_matched}/{r.keyframes} expert keyframes matched{left}{later}{grasp}")

        def step_line(i, s, name=path.name):
            log(f"{name} scene {i:2d} {trace_line(s)}")

        result = {"checkpoint": str(path), "updates": agent.updates,
                  **evaluate(SimRollout(task, agent, episode_length), episodes, episode_length,
                             on_episode=report, warn=log, on_step=step_line if trace else None)}
        results.append(result)
    if task is not None:
        task.close()
    return results
