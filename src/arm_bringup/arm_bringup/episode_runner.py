r"""episode_runner: drives the episodes of `arm launch sim_train` (the actor side of the loop).

Examples::

    arm launch sim_train task:=pick_up_cup minutes:=30 run_dir:=runs/cup
    ros2 run arm_bringup episode_runner --ros-args -p task:=pick_up_cup -p run_dir:=runs/cup \
        -p minutes:=5.0 -p eval_every:=50 -p eval_episodes:=5

At start it records the missing expert demos into ``run_dir/demos/TASK`` (in-process, the same
bags as ``arm demos``), waits for the recorder and for the policy's first checkpoint, then runs
training episodes (explore) and, every ``eval_every`` env steps, evaluation episodes (no
exploration, fixed scenes) until the budget is spent; then a final evaluation, ``summary.json``
and exit 0, which ends the launch.

Each episode is :func:`arm_policy.rollout.run_episode` over the graph
(:class:`arm_bringup.graph_rollout.GraphRollout`: sim reset by seed, /arm/policy/act, the
control result, /arm/episode/step for the recorder), the loop, seeds, reward rule and evaluation
diagnosis of ``arm train --inprocess``. An episode the graph cannot finish (the policy refuses or
does not answer, no control result) is aborted (``/arm/episode abort``: the recorder drops its
bag) and not counted; ``max_aborts`` in a row end the run with exit code 1 and the reason.
Stopped by Ctrl-C or the launcher, it still writes ``summary.json``.

It writes to the run folder: ``config.json`` (its parameters; the trainer's are in
``training/config.json``), ``metrics.csv`` (one row per evaluation: env_steps, eval_success,
eval_return, the diagnosis (eval_attention_on_keyframe, eval_pose_error_cm,
eval_keyframes_matched, eval_unexecutable), episodes, updates, checkpoint_step, train_success, ...), ``learning_curve.png``,
``attention/env_step_NNNNNNN.png`` (the /arm/attention heat map of the first decision of each
evaluation) and ``summary.json`` (eval_success of the last evaluation, best_eval_success,
env_steps, episodes, updates, checkpoint_step, wall_seconds, ...). Restarted on the same run
folder it continues the episode numbers, env steps and metrics where the bags and metrics.csv
end. The bookkeeping is ROS-free in ``arm_bringup.episodes``; this node only talks to the graph.

With ``algo:=qtopt`` (``arm launch sim_train algo:=qtopt task:=grasp_bin``) it runs QT-Opt's
closed-loop grasping instead (:mod:`arm_bringup.grasp_rollout`): the offline data first (``demos``
scripted grasps recorded in process into ``run_dir/demos/grasp_bin_random...``, where the
training node reads them, as ``arm train --inprocess --algo qtopt`` does), then training
episodes of at most ``episode_length`` (20) steps on training scenes and, every ``eval_every``
env steps, greedy episodes on held-out objects (``eval_seed(i)``, sim_node ``held_out``). Its
metrics.csv rows carry eval_success, eval_steps_mean, eval_return and the scripted policy's
``scripted_success``, the floor the learned grasps are read against.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from rclpy.node import Node
from std_msgs.msg import String

from arm_bringup import episodes as ep
from arm_bringup.graph_rollout import EpisodeAborted, GraphRollout
from arm_bringup.grasp_rollout import GraspRollout
from arm_control import graph, topics
from arm_control.node_main import declare, run_node

#: Topics a recorder must be subscribed to before the first episode: the decision topics of the
#: contract and the step messages; without them the training node would get empty bags.
RECORDED = [topics.TOPIC_EPISODE, topics.TOPIC_EPISODE_STEP, topics.TOPIC_DECISION,
            topics.TOPIC_OBSERVATION_RGB, topics.TOPIC_OBSERVATION_POINTS, topics.TOPIC_OBSERVATION_LOW_DIM]
#: ... and of a QT-Opt run (what ``arm_policy.grasp_episodes.read_grasp_episode`` reads)
RECORDED_QTOPT = [topics.TOPIC_EPISODE, topics.TOPIC_EPISODE_STEP, topics.TOPIC_QTOPT_RGB,
                  topics.TOPIC_QTOPT_STATE, topics.TOPIC_QTOPT_ACTION]
ALGOS = ("arm", "qtopt")


class EpisodeRunner(Node):
    def __init__(self) -> None:
        super().__init__("episode_runner")
        task = declare(self, "task", "reach_target", "task name (see `arm tasks`)")
        algo = declare(self, "algo", "arm", "arm: next-best-pose episodes (the checkpoints of arm, "
                       "sac or bc); qtopt: QT-Opt's closed-loop grasping (task grasp_bin)")
        run_dir = declare(self, "run_dir", "runs/sim_train",
                          "run folder shared with training_node and policy_node")
        bag_dir = declare(self, "bag_dir", "", "the recorder's output folder (empty: RUN_DIR/bags)")
        seed = declare(self, "seed", 0, "first demo seed; training episode i uses seed+10000+i")
        preset = declare(self, "preset", "cpu", "agent preset; image_size must fit it ('': no "
                         "check, e.g. when training_node.agent_overrides sets image_size)")
        tray = declare(self, "tray", "full", "grasp_bin's tray: full, one_box or one_box_low (a one-box tray's "
                       "scripted grasps are recorded in its scenes, into a folder of their own)")
        image_size = declare(self, "image_size", 64, "camera size of the demos it records (must "
                             "match sim_node and the agent preset)")
        episode_length = declare(self, "episode_length", 10,
                                 "agent steps (next-best poses) per episode")
        minutes = declare(self, "minutes", 30.0, "wall-clock budget of this launch, final "
                          "evaluation included (0: no limit, stop after `episodes`)")
        episodes = declare(self, "episodes", 0, "training episodes of the run (0: no limit)")
        eval_every = declare(self, "eval_every", 250, "training env steps between evaluations "
                             "(0: only the final one)")
        eval_episodes = declare(self, "eval_episodes", 10,
                                "episodes per evaluation (no exploration)")
        eval_at_start = declare(self, "eval_at_start", True, "evaluate the untrained agent first "
                                "(summary.json: untrained_success; costs one evaluation)")
        demos = declare(self, "demos", 100, "expert demos the run folder must hold (the paper: 100)")
        place_noise_cm = declare(self, "place_noise_cm", 0.0, "demos: the expert's carry ends this far off "
                                 "in x and y (normal std), its release the exact expert's (arm demos --help; 0: exact)")
        grasp_noise_cm = declare(self, "grasp_noise_cm", 0.0, "demos: the expert's grasp this far off across "
                                 "the fingers, its release placing the object (arm demos --help; 0: exact)")
        action_timeout = declare(self, "action_timeout", 15.0, "seconds to wait for /arm/policy/act")
        result_timeout = declare(self, "result_timeout", 30.0,
                                 "seconds to wait for /arm/control/result")
        checkpoint_timeout = declare(self, "checkpoint_timeout", 600.0, "seconds to wait for the "
                                     "first checkpoint before giving up")
        sim_node = declare(self, "sim_node", "sim_node", "name of the simulator node (its seed "
                           "parameter is set before each reset)")
        require_subscribers = declare(self, "require_subscribers", [""], "topics a recorder must "
                                      "subscribe to before the first episode ([''] : the algo's "
                                      "recorded topics; [] or ['none']: no recorder)")
        success_window = declare(self, "success_window", 20, "training episodes in the success rate")
        max_aborts = declare(self, "max_aborts", 5, "episodes in a row the graph may fail before "
                             "the runner gives up with the reason (exit 1)")
        self.settings = {name: param.value for name, param in
                         sorted(self.get_parameters_by_prefix("").items())
                         if name != "use_sim_time"}  # for config.json

        from arm_sim.tasks import QTOPT_TASK_NAMES, TASK_NAMES

        self.task, self.algo = task, algo
        tasks = {"arm": TASK_NAMES, "qtopt": QTOPT_TASK_NAMES}
        if self.algo not in tasks:
            raise ValueError(f"unknown algo {self.algo!r}; choose from {', '.join(ALGOS)}")
        if self.task not in tasks[self.algo]:
            raise ValueError(f"task {self.task!r} is not one of algo {self.algo}'s: "
                             f"{', '.join(tasks[self.algo])}")
        from arm_sim.grasp_bin import check_tray

        check_tray(tray, self.task)
        self.tray = tray
        self.image_size = int(image_size)
        self.qtopt_config = ep.check_preset(preset, self.image_size, self.algo)
        self.run_dir = Path(run_dir).expanduser()
        self.bag_dir = Path(bag_dir).expanduser() if bag_dir else self.run_dir / "bags"
        self.seed = int(seed)
        self.episode_length = int(episode_length)
        self.eval_every = int(eval_every)
        self.eval_episodes = int(eval_episodes)
        self.eval_at_start = bool(eval_at_start)
        self.demos = int(demos)
        from arm_sim.environment import ExpertNoise

        self.demo_noise = ExpertNoise(place_m=float(place_noise_cm) / 100, grasp_m=float(grasp_noise_cm) / 100)
        self.checkpoint_timeout = float(checkpoint_timeout)
        if list(require_subscribers) == [""]:
            require_subscribers = RECORDED_QTOPT if self.algo == "qtopt" else RECORDED
        self.required = [t for t in require_subscribers if t and t != "none"]
        for name, value, low in (("episode_length", self.episode_length, 1),
                                 ("eval_episodes", self.eval_episodes, 1),
                                 ("demos", self.demos, 0), ("eval_every", self.eval_every, 0)):
            if value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}")
        self.budget = ep.Budget(float(minutes), int(episodes))  # ValueError if neither
        self.window = int(success_window)

        self.counter = ep.EpisodeCounter(window=self.window)
        self.last_eval_env_steps: int | None = None
        self.eval_names: set[str] = set()
        self.evals: list[dict[str, Any]] = []  # this launch's evaluations
        self.previous_evals: list[dict[str, Any]] = []  # metrics.csv rows of earlier launches
        self.episode_seconds: deque[float] = deque(maxlen=20)  # recent training episodes
        self.eval_seconds: float | None = None
        self.checkpoint_step: int | None = None
        self.logger_ = None  # RunLogger, opened in run()
        self.status: dict[str, Any] = {}
        # transient local: training_node latches its status, so we get it at once
        self.create_subscription(String, topics.TOPIC_TRAINING_STATUS, self._on_status, graph.LATCHED)
        graph_args = dict(sim_node=sim_node, action_timeout=float(action_timeout),
                          result_timeout=float(result_timeout), max_aborts=int(max_aborts),
                          required=self.required)
        if self.algo == "qtopt":
            cfg = self.qtopt_config
            self.rollout = GraspRollout(self, self.image_size, max_steps=self.episode_length,
                                        step_reward=cfg.step_reward, success_reward=cfg.success_reward,
                                        **graph_args)
        else:
            self.rollout = GraphRollout(self, self.task, self.image_size, **graph_args)
        self.scripted_success: float | None = None  # QT-Opt: the offline data's success rate

    # ------------------------------------------------------------------ callbacks
    def _on_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(status, dict):
            self.status = status

    def wait_for_checkpoint(self) -> None:
        """The policy answers act with success=False until training_node's first checkpoint."""
        folder = self.run_dir / "checkpoints"
        start = time.monotonic()
        last_line = 0.0
        while not any(folder.glob("step_*.pt")):
            now = time.monotonic()
            if now - start > self.checkpoint_timeout or self.budget.left() <= 0:
                raise RuntimeError(f"no checkpoint in {folder} after {now - start:.0f} s; is "
                                   f"training_node running and writing to this run_dir? "
                                   f"({ep.status_line(self.status)})")
            if now - last_line >= 10.0:
                last_line = now
                state = f" ({ep.status_line(self.status)})" if self.status else ""
                self.get_logger().info(f"waiting for the first checkpoint in {folder}: "
                                       f"training_node writes it once the demos are loaded{state}")
            self.rollout.spin_until(lambda: False, 1.0)

    # ------------------------------------------------------------------ start
    def record_missing_demos(self) -> None:
        if self.algo == "qtopt":
            self.record_offline_grasps()
            return
        log = self.get_logger()
        ep.record_missing_demos(self.run_dir / "demos", self.task, self.seed, self.demos, self.image_size,
                                self.demo_noise, log.info, log.warning)

    def record_offline_grasps(self) -> None:
        """QT-Opt's offline data: ``demos`` scripted grasps on training scenes ``seed ..``, in
        process (the bags the training node reads; those there already are kept)."""
        from arm_policy.train_qtopt import offline_bag_folder, record_offline
        from arm_sim.grasp_bin import GraspBinEnv

        folder = offline_bag_folder(self.run_dir / "demos", self.task, self.qtopt_config, self.tray)
        self.get_logger().info(f"offline data: {self.demos} scripted grasps in {folder}")
        env = GraspBinEnv(image_size=(self.image_size, self.image_size), tray=self.tray)
        try:
            self.scripted_success = record_offline(env, folder, self.demos, self.seed,
                                                   self.get_logger().info, self.qtopt_config)
        finally:
            env.close()

    def resume(self) -> None:
        point = ep.scan_run(self.run_dir, self.bag_dir)
        for bag, why in point.skipped:
            self.get_logger().warning(f"skipping bag {bag}: {why}")
        self.counter = ep.EpisodeCounter.resume(point, self.window)
        self.last_eval_env_steps = point.last_eval_env_steps
        self.eval_names = set(point.eval_names)
        if (self.run_dir / "metrics.csv").is_file():
            from arm_policy.run_log import read_metrics

            self.previous_evals = [r for r in read_metrics(self.run_dir) if "eval_success" in r]
        if point.next_episode:
            self.get_logger().info(
                f"resuming {self.run_dir}: {point.episodes} training episodes, {point.env_steps} "
                f"env steps in {self.bag_dir / ep.TRAIN_DIR}; next episode {point.next_episode}"
                + (f", last evaluation at env step {point.last_eval_env_steps}"
                   if point.last_eval_env_steps is not None else ""))

    # ------------------------------------------------------------------ progress
    def updates(self) -> int | None:
        value = self.status.get("updates", self.status.get("step"))
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def progress(self, what: str) -> None:
        c = self.counter
        rate = c.success_rate()
        evals = self.previous_evals + self.evals
        last = f"{evals[-1]['eval_success']:.2f}" if evals else "-"
        self.get_logger().info(
            f"[{self.budget.elapsed() / 60:5.1f} min] {what}  env steps {c.env_steps}  "
            f"episodes {c.episodes}  train success {'-' if math.isnan(rate) else f'{rate:.2f}'}"
            f" (last {len(c.recent)})  eval success {last}  checkpoint {self.checkpoint_step}  "
            + ep.status_line(self.status))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any]:
        """One evaluation (:func:`arm_policy.rollout.evaluate`: the same scenes and diagnosis as
        ``arm train --inprocess``); an aborted episode is retried twice, then left out."""
        from arm_policy.rollout import evaluate

        t0 = time.monotonic()
        env_steps = self.counter.env_steps
        steps, checkpoints = [], []
        if self.algo == "qtopt":
            summary = self.evaluate_grasps(env_steps, steps, checkpoints)
            return self._record_evaluation(t0, env_steps, summary, steps, checkpoints)

        def name(i):
            return ep.eval_episode_name(env_steps, i, self.eval_names)

        def counted(i, result):
            self.eval_names.add(name(i))
            steps.append(result.steps)
            checkpoints.append(result.checkpoint_step)

        snapshot = self.run_dir / "attention" / f"env_step_{env_steps:07d}.png"
        summary = evaluate(self.rollout, self.eval_episodes, self.episode_length, name=name,
                           on_first_decision=lambda d: self.rollout.save_attention(d.stamp_ns, snapshot),
                           on_episode=counted, retry_on=(EpisodeAborted,), attempts=3,
                           warn=self.get_logger().warning)
        return self._record_evaluation(t0, env_steps, summary, steps, checkpoints)

    def evaluate_grasps(self, env_steps: int, steps: list, checkpoints: list) -> dict[str, Any]:
        """QT-Opt's evaluation: greedy grasps on the held-out scenes ``eval_seed(0 ..)`` (the
        in-process ``evaluate_grasps``); an aborted episode is retried twice, then left out."""
        from arm_policy.rollout import eval_seed

        wins, returns = 0, []
        for i in range(self.eval_episodes):
            for attempt in range(3):
                name = ep.eval_episode_name(env_steps, i, self.eval_names)
                try:
                    result = self.rollout.play(eval_seed(i), True, False, name)
                    break
                except EpisodeAborted as err:
                    self.get_logger().warning(f"evaluation episode {i} aborted ({err})"
                                              + ("; retrying" if attempt < 2 else "; left out"))
            else:
                continue
            self.eval_names.add(name)
            wins += result.success
            steps.append(result.steps)
            returns.append(result.episode_return)
            checkpoints.append(result.checkpoint_step)
        n = len(steps)
        return {"eval_success": wins / n if n else math.nan, "eval_episodes": n,
                "eval_steps_mean": sum(steps) / n if n else math.nan,
                "eval_return": sum(returns) / n if n else math.nan,
                **({"scripted_success": self.scripted_success} if self.scripted_success is not None else {})}

    def _record_evaluation(self, t0: float, env_steps: int, summary: dict, steps: list,
                           checkpoints: list) -> dict[str, Any]:
        self.eval_seconds = time.monotonic() - t0
        self.last_eval_env_steps = env_steps
        self.checkpoint_step = min(checkpoints) if checkpoints else self.checkpoint_step
        row = {"env_steps": env_steps, **summary, "eval_steps": sum(steps),
               "episodes": self.counter.episodes,
               "checkpoint_step": self.checkpoint_step if self.checkpoint_step is not None else -1,
               "eval_seconds": round(self.eval_seconds, 1)}
        rate_train = self.counter.success_rate()
        if not math.isnan(rate_train):
            row["train_success"] = rate_train
        if self.updates() is not None:
            row["updates"] = self.updates()
        self.evals.append(row)
        self.logger_.log(env_steps, **row)
        self.plot()
        rate = summary["eval_success"]
        if self.algo == "qtopt":
            scripted = summary.get("scripted_success")
            self.progress(f"EVAL {'-' if math.isnan(rate) else f'{rate:.2f}'} held-out success of "
                          f"{summary['eval_episodes']} ({self.eval_seconds:.0f} s; scripted policy "
                          f"{'-' if scripted is None else f'{scripted:.2f}'}, mean steps "
                          f"{summary['eval_steps_mean']:.1f})")
            return row
        self.progress(f"EVAL {'-' if math.isnan(rate) else f'{rate:.2f}'} success of "
                      f"{summary['eval_episodes']} ({self.eval_seconds:.0f} s; attention on the "
                      f"keyframe {summary.get('eval_attention_on_keyframe', math.nan):.2f}, median "
                      f"pose error {summary.get('eval_pose_error_cm', math.nan):.1f} cm, expert "
                      f"keyframes matched {summary.get('eval_keyframes_matched', math.nan):.2f})")
        return row

    def plot(self) -> None:
        from arm_policy.plots import plot_learning_curve
        from arm_policy.run_log import read_metrics

        rows = [r for r in read_metrics(self.run_dir) if "eval_success" in r]
        if self.algo == "qtopt":
            scripted = [{"env_steps": r["env_steps"], "eval_success": r["scripted_success"]}
                        for r in rows if "scripted_success" in r]
            plot_learning_curve(rows, self.run_dir / "learning_curve.png",
                                label="QT-Opt held-out success",
                                compare={"scripted policy (the offline data)": scripted} if scripted else None,
                                title=f"QT-Opt on {self.task} over ROS 2 (sim_train algo:=qtopt)",
                                ylabel=f"share of the {self.eval_episodes} held-out episodes")
            return
        plot_learning_curve(rows, self.run_dir / "learning_curve.png",
                            title=f"ARM on {self.task} over ROS 2 (sim_train)")

    def eval_estimate(self) -> float:
        """Seconds an evaluation takes: the last one, else eval_episodes average episodes."""
        if self.eval_seconds is not None:
            return self.eval_seconds
        return self.eval_episodes * self.episode_estimate(mean=True)

    def episode_estimate(self, mean: bool = False) -> float:
        """Seconds of a training episode: the longest (or the mean) of the recent ones; before
        any, 2.5 s per pose (a move at half speed in real time)."""
        recent = self.episode_seconds
        if not recent:
            return self.episode_length * 2.5
        return sum(recent) / len(recent) if mean else max(recent)

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        from arm_policy.run_log import RunLogger, write_config

        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not (self.run_dir / "config.json").exists():
            # run on its own (not by `arm launch`, which writes the run's one configuration):
            # its settings, for `arm evaluate`
            write_config(self.run_dir, {"nodes": {"episode_runner": self.settings}})
        self.record_missing_demos()
        self.resume()
        self.logger_ = RunLogger(self.run_dir, tensorboard=False)
        try:
            self.rollout.wait_for_graph()
            self.wait_for_checkpoint()
            limits = [f"{self.budget.seconds / 60:g} min"] if math.isfinite(self.budget.seconds) \
                else []
            limits += [f"{self.budget.episodes} training episodes"] if self.budget.episodes else []
            self.get_logger().info(
                f"running {self.task}: episodes of up to {self.episode_length} poses, evaluation "
                f"({self.eval_episodes} episodes) every {self.eval_every} env steps; budget "
                + " or ".join(limits))
            self.loop()
            if self.last_eval_env_steps != self.counter.env_steps or not self.evals:
                self.evaluate()
        finally:
            self.finish()
        self.get_logger().info("budget spent; run finished")
        return 0

    def loop(self) -> None:
        from arm_policy.rollout import run_episode

        margin = 10.0  # seconds for the launch to stop every node after we exit
        while True:
            c = self.counter
            reserve = self.eval_estimate() * 1.1 + margin
            if ep.eval_due(c.env_steps, self.last_eval_env_steps, self.eval_every,
                           self.eval_at_start):
                if self.budget.left() < reserve * 2:
                    return  # no time for this one and the final one: the final one it is
                self.evaluate()
                continue
            if self.budget.training_done(c.episodes, reserve + self.episode_estimate()):
                return
            name = ep.train_episode_name(c.next_episode)
            t0 = time.monotonic()
            seed = ep.train_seed(self.seed, c.next_episode)
            try:
                if self.algo == "qtopt":
                    result = self.rollout.play(seed, False, True, name)
                else:
                    result = run_episode(self.rollout, seed, True, self.episode_length, name)
            except EpisodeAborted as err:
                self.get_logger().warning(f"{name} aborted, not counted: {err}")
                c.skip_episode()
                continue
            self.episode_seconds.append(time.monotonic() - t0)
            self.checkpoint_step = result.checkpoint_step
            c.finish_episode(result.steps, result.success)
            self.progress(f"{name} {'SUCCESS' if result.success else 'failure'} in {result.steps} "
                          f"steps (return {result.episode_return:+g})")

    def finish(self) -> None:
        """summary.json from what this launch saw (also when it is stopped early)."""
        from arm_policy.run_log import write_summary

        if self.logger_ is not None:
            self.logger_.close()
        self.rollout.close()
        evals = self.previous_evals + self.evals
        last = evals[-1] if evals else {}
        best = max((e["eval_success"] for e in evals if not math.isnan(e["eval_success"])),
                   default=None)
        eval_success = last.get("eval_success")
        finite = [e["eval_success"] for e in evals if not math.isnan(e["eval_success"])]
        # the first evaluation, at env step 0, is the untrained agent's (eval_at_start); the
        # checkpoint it acted on is named: the trainer runs on while the evaluation does
        first = evals[0] if evals and evals[0]["env_steps"] == 0 else None
        write_summary(
            self.run_dir, task=self.task,
            eval_success=None if eval_success is None or math.isnan(eval_success) else eval_success,
            untrained_success=None if first is None or math.isnan(first["eval_success"])
            else first["eval_success"],
            untrained_checkpoint_step=None if first is None else first.get("checkpoint_step"),
            eval_success_last_mean=float(sum(finite[-3:]) / len(finite[-3:])) if finite else None,
            best_eval_success=best, env_steps=self.counter.env_steps,
            episodes=self.counter.episodes,
            episodes_this_launch=self.counter.episodes - self.counter.resumed_episodes,
            updates=self.updates(), checkpoint_step=self.checkpoint_step,
            eval_episodes=self.eval_episodes, evaluations_this_launch=len(self.evals),
            wall_seconds=round(self.budget.elapsed(), 1), algo=self.algo,
            **({"scripted_success": self.scripted_success} if self.scripted_success is not None else {}))
        line = f"summary: {self.run_dir / 'summary.json'}"
        if self.context.ok():
            self.get_logger().info(line)
        else:  # stopped by Ctrl-C / the launcher: /rosout is gone, stderr still reaches people
            print(f"[episode_runner] {line}", file=sys.stderr, flush=True)


def main(args: list[str] | None = None) -> None:
    run_node(EpisodeRunner, "episode_runner", args, run=EpisodeRunner.run)


if __name__ == "__main__":
    sys.exit(main())
