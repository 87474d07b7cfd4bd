"""training_node: demo bags + the recorder's agent-episode bags -> agent updates -> checkpoints.

    ros2 run arm_policy training_node --ros-args -p run_dir:=runs/sim_train -p task:=reach_target
    ros2 run arm_policy training_node --ros-args -p run_dir:=runs/qt -p agent:=qtopt -p task:=grasp_bin

Reads the demos of ``demos_dir/TASK`` (default ``run_dir/demos``) once at least ``min_demos`` of
them are closed bags, then every closed bag that appears under ``episodes_dir`` (default
``run_dir/bags/train``; never ``*.partial``, never an ``eval`` folder) as the agent's own
episodes, trains the agent (``agent``: arm, sac, bc or qtopt) on a prioritised replay of both
and writes atomic checkpoints to ``run_dir/checkpoints`` (the first at update 0, as soon as the
demos are loaded, so the policy node can act; then every ``checkpoint_every`` updates and on
shutdown). On restart it resumes from the newest valid checkpoint and re-reads every bag.

The keyframe agents (arm, sac, bc) read demo bags and the recorder's agent-episode bags
(:mod:`arm_policy.episode_dataset`). QT-Opt (``agent:=qtopt task:=grasp_bin``) reads
grasp-episode bags (:mod:`arm_policy.grasp_episodes`) for both: the scripted offline grasps
where the episode runner records them (``train_qtopt.offline_bag_folder``: by default
``demos_dir/grasp_bin_random0.15_terminate0.5``, exploring grasps; ``demos_dir/grasp_bin`` with
``scripted_random_action_prob=0``) and the recorder's bags of /arm/qtopt/observation/{rgb,state},
/arm/qtopt/action and /arm/episode/step, mixed in each batch at the config's
``replay_demo_fraction`` once online episodes exist, as ``arm train --inprocess --method qtopt``
does (``updates_per_step:=0``: no cap, offline-only training until episodes come). The logic is
:class:`arm_policy.bag_trainer.BagTrainer` (no ROS); this node adds threads, parameters and
the status topic.

Threads: the executor only publishes status and watches the workers; a *bag reader* thread
polls ``episodes_dir`` every ``poll_period`` s and decodes new bags into a queue; a *learner*
thread waits for the demos, then loops: take decoded episodes from the queue into the replay,
make one update if ``updates_per_step`` allows (else wait for the next episode). So an update
never delays noticing a bag, and status keeps flowing during an update.

Publishes ``/arm/training/status`` (std_msgs/String JSON, reliable + transient local, depth 1,
every ``status_period`` s): ``state`` (waiting_for_demos / training / waiting_for_episodes /
failed), ``updates``, ``transitions`` (replay size), ``demo_transitions``,
``agent_transitions``, ``episodes``, ``losses`` (last update), ``checkpoint_step``,
``resumed_from``, ``error``.

Writes ``run_dir/training/{config.json, metrics.csv, tensorboard/}``. A non-finite loss, gradient
or parameter (``NumericalError``) stops the node with exit code 1 and the reason, and no
checkpoint is written after it.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path

import rclpy
import torch
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from arm_control.node_main import declare, run_node

from .bag_trainer import BagTrainer, BagTrainerSettings
from .settings_cli import parse_items
from .demo_dataset import AUGMENTATION_EVERY, DEFAULT_EPISODE_LENGTH
from .episode_dataset import list_bags

TOPIC_TRAINING_STATUS = "/arm/training/status"
#: latched: a late subscriber (arm topic echo, the runner) gets the newest status at once.
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TrainingNode(Node):
    def __init__(self, **kwargs) -> None:
        """``kwargs`` go to rclpy's Node (parameter_overrides, context, ...)."""
        super().__init__("training_node", **kwargs)

        run_dir = declare(self, "run_dir", "", "Run folder: checkpoints/ and training/ are written "
                          "here (required).", read_only=True)
        task = declare(self, "task", "reach_target", "Task name: demos are read from demos_dir/TASK "
                       "(agent qtopt: grasp_bin, its offline grasps from demos_dir/grasp_bin or "
                       "demos_dir/grasp_bin_random<p>_terminate<q>, as the runner records them).",
                       read_only=True)
        tray = declare(self, "tray", "full", "grasp_bin's tray (agent qtopt): full, one_box or one_box_low; its "
                       "offline grasps are read from demos_dir/grasp_bin_<tray>... for the one-box trays.",
                       read_only=True)
        agent = declare(self, "agent", "arm", "Agent of a new run: arm, sac, bc or qtopt "
                        "(arm_policy.agents; a resumed run must be of the same agent).",
                        read_only=True)
        preset_name = declare(self, "preset", "cpu", "Config preset of a new agent: cpu or paper "
                              "(a resumed run keeps its checkpoint's config).", read_only=True)
        override_items = list(declare(
            self, "agent_overrides", Parameter.Type.STRING_ARRAY, "Agent config fields (ARMConfig, "
            "QTOptConfig) changed from the preset of a new agent, as FIELD=VALUE (VALUE in JSON), "
            "e.g. [image_size=128, batch_size=64].", read_only=True, fallback=[]))
        demos_dir = declare(self, "demos_dir", "", "Demo bag root (agent qtopt: the offline "
                            "grasps); '' = run_dir/demos.", read_only=True)
        episodes_dir = declare(self, "episodes_dir", "", "The recorder's training bags; '' = "
                               "run_dir/bags/train. *.partial and eval/ are never read.",
                               read_only=True)
        min_demos = declare(self, "min_demos", 1, "Closed demo bags to wait for before training "
                            "starts.", read_only=True)
        updates_per_step = declare(self, "updates_per_step", 4, "At most this many updates per "
                                   "agent transition collected (as arm train --inprocess); 0 = no "
                                   "cap.", read_only=True)
        checkpoint_every = declare(self, "checkpoint_every", 100, "Updates between checkpoints.",
                                   read_only=True)
        keep_checkpoints = declare(self, "keep_checkpoints", 5, "Newest checkpoints kept on disk.",
                                   read_only=True)
        log_every = declare(self, "log_every", 10, "Updates between rows of training/metrics.csv.",
                            read_only=True)
        episode_length = declare(self, "episode_length", DEFAULT_EPISODE_LENGTH, "Agent steps per "
                                 "episode, for the demos' time feature (must match the policy "
                                 "node's; keyframe agents).", read_only=True)
        augmentation_every = declare(self, "augmentation_every", AUGMENTATION_EVERY, "Demo "
                                     "augmentation: a transition from every M-th frame (0 = off; "
                                     "keyframe agents).", read_only=True)
        seed = declare(self, "seed", 0, "Seed of the initial weights and the replay sampler.",
                       read_only=True)
        device = declare(self, "device", "", "torch device; '' = cuda if available, else cpu.",
                         read_only=True)
        torch_threads = declare(self, "torch_threads", 0, "torch intra-op threads; 0 = torch's "
                                "default.", read_only=True)
        self._poll_period = float(declare(self, "poll_period", 2.0, "Seconds between scans of "
                                          "episodes_dir (and of demos_dir while waiting).",
                                          read_only=True))
        status_period = float(declare(self, "status_period", 1.0, "Seconds between status "
                                      "messages.", read_only=True))
        self._log_period = float(declare(self, "log_period", 10.0, "Seconds between progress log "
                                         "lines.", read_only=True))

        if not run_dir:
            raise ValueError("parameter run_dir must name the run folder, e.g. "
                             "-p run_dir:=runs/sim_train")
        overrides = parse_items(override_items, "parameter agent_overrides")
        if not isinstance(min_demos, int) or min_demos < 1:
            raise ValueError(f"parameter min_demos must be an integer >= 1, got {min_demos!r}")
        for name, value in (("poll_period", self._poll_period), ("status_period", status_period),
                            ("log_period", self._log_period)):
            if not value > 0:
                raise ValueError(f"parameter {name} must be > 0 seconds, got {value}")
        if not isinstance(torch_threads, int) or torch_threads < 0:
            raise ValueError(f"parameter torch_threads must be an integer >= 0, got {torch_threads!r}")
        if torch_threads:
            torch.set_num_threads(torch_threads)
        self._min_demos = min_demos
        settings = BagTrainerSettings(   # ValueError names a bad value
            run_dir=run_dir, task=task, tray=tray, agent=agent, preset=preset_name, agent_overrides=overrides,
            demos_dir=demos_dir, episodes_dir=episodes_dir, episode_length=episode_length,
            augmentation_every=augmentation_every, updates_per_step=updates_per_step,
            checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
            log_every=log_every, seed=seed, device=device)
        log = self.get_logger()
        self.trainer = BagTrainer(settings, log=log.info, warn=log.warning)
        if device:
            try:
                torch.device(device)
            except RuntimeError as err:
                raise ValueError(f"parameter device {device!r}: {err}") from None

        self._episodes: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._failure: str | None = None
        self._status_pub = self.create_publisher(String, TOPIC_TRAINING_STATUS, STATUS_QOS)
        self.create_timer(status_period, self._publish_status)
        self.create_timer(0.1, self._watch_workers)
        self._threads = [threading.Thread(target=self._guard, args=(self._read_bags,),
                                          name="bag_reader", daemon=True),
                         threading.Thread(target=self._guard, args=(self._learn,),
                                          name="learner", daemon=True)]
        for t in self._threads:
            t.start()
        log.info(f"training {agent} on {task} ({preset_name}) into {run_dir}: demos from "
                 f"{self.trainer.demos_folder}, episodes from {settings.episodes_root}, "
                 f"updates_per_step {updates_per_step or 'unlimited'}")

    # ------------------------------------------------------------------ worker threads
    def _guard(self, target) -> None:
        """Run a worker; any error stops the node (the executor thread sees _failure)."""
        try:
            target()
        except Exception as err:  # noqa: BLE001 - every failure must stop the node, named
            self._failure = f"{type(err).__name__}: {err}"
            self._stop.set()

    def _read_bags(self) -> None:
        """Poll episodes_dir; decode each new closed bag once, into the queue."""
        seen: set[Path] = set()
        root = self.trainer.settings.episodes_root
        while not self._stop.is_set():
            for bag in list_bags(root):
                if bag in seen or self._stop.is_set():
                    continue
                seen.add(bag)
                episode = self.trainer.read_episode(bag)  # None (warned) if unreadable
                if episode is not None:
                    self._episodes.put((bag, episode))
            self._stop.wait(self._poll_period)

    def _learn(self) -> None:
        trainer, log = self.trainer, self.get_logger()
        demos_dir = trainer.demos_folder
        waiting_since = None
        while not self._stop.is_set():
            found = len(trainer.demo_bags())
            if found >= self._min_demos:
                break
            if waiting_since is None or time.monotonic() - waiting_since > 30.0:
                log.info(f"waiting for {self._min_demos} demo bag(s) in {demos_dir} ({found} so far)")
                waiting_since = time.monotonic()
            self._stop.wait(self._poll_period)
        if self._stop.is_set():
            return
        trainer.start()
        last_log = time.monotonic()
        logged_updates = trainer.updates
        while not self._stop.is_set():
            allowed = trainer.updates_allowed()
            try:  # take every decoded episode; block only when there is nothing to do
                item = self._episodes.get(timeout=min(self._poll_period, 0.5)) if allowed == 0 \
                    else self._episodes.get_nowait()
                while item is not None:
                    bag, episode = item
                    added = trainer.add_episode(bag, episode)
                    log.info(f"episode {bag.name}: {added} transitions "
                             f"(replay {len(trainer.replay)}, {trainer.episodes} episodes)")
                    item = self._episodes.get_nowait()
            except queue.Empty:
                pass
            if trainer.updates_allowed() != 0 and not self._stop.is_set():
                trainer.update()
            now = time.monotonic()
            if now - last_log >= self._log_period:
                rate = (trainer.updates - logged_updates) / (now - last_log)
                losses = "  ".join(f"{k} {v:.4g}" for k, v in trainer.status()["losses"].items())
                log.info(f"updates {trainer.updates} ({rate:.2f}/s)  replay {len(trainer.replay)} "
                         f"(demo {trainer.demo_transitions}, agent {trainer.agent_transitions} from "
                         f"{trainer.episodes} episodes)  checkpoint {trainer.checkpoint_step}  {losses}")
                last_log, logged_updates = now, trainer.updates

    # ------------------------------------------------------------------ executor side
    def _publish_status(self) -> None:
        status = self.trainer.status()
        if self._failure and not status["error"]:
            status["state"], status["error"] = "failed", self._failure
        self._status_pub.publish(String(data=json.dumps(status)))

    def _watch_workers(self) -> None:
        if self._failure is None:
            return
        self._publish_status()
        self.get_logger().fatal(f"training stopped: {self._failure}; the newest checkpoint in "
                                f"{self.trainer.run_dir / 'checkpoints'} is the last good one")
        raise SystemExit(1)

    def destroy_node(self) -> None:
        """Stop the workers, then write a last checkpoint unless training failed."""
        if not hasattr(self, "_threads"):  # the constructor refused a parameter: nothing runs
            super().destroy_node()
            return
        self._stop.set()
        for t in self._threads:
            t.join()
        trainer = self.trainer
        # After Ctrl-C the context is gone and the node's logger cannot reach /rosout any more.
        log = self.get_logger() if self.context.ok() else rclpy.logging.get_logger(
            f"{self.get_name()}.shutdown")
        if trainer is not None:
            try:
                path = trainer.close(final_checkpoint=self._failure is None)
                if path is not None:
                    log.info(f"final checkpoint {path}")
            except Exception as err:  # noqa: BLE001 - shutting down: report, do not mask
                log.error(f"no final checkpoint: {err}")
        super().destroy_node()


def main(args=None) -> None:
    run_node(TrainingNode, "training_node", args)


if __name__ == "__main__":
    main()
