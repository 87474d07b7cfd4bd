"""Training from bags on disk: the training node's logic, without ROS.

    trainer = BagTrainer(BagTrainerSettings(run_dir="runs/sim_train", task="reach_target"))
    trainer.start()                              # demos -> replay; resume or checkpoint 0
    trainer.add_episode(bag, trainer.read_episode(bag))
    while trainer.updates_allowed() != 0:
        trainer.update()                         # one update; checkpoints when due
    trainer.close()

Two kinds of agent, two kinds of bag:

* **Keyframe agents** (arm, sac, bc) on the eight tasks: demo bags (``arm demos``) become
  keyframe transitions (:func:`~arm_policy.demo_dataset.load_demos`, only successful demos), the
  recorder's agent-episode bags decision transitions
  (:func:`~arm_policy.episode_dataset.read_agent_episode`).
* **QT-Opt** (agent ``qtopt``, task ``grasp_bin``): the offline bags (scripted grasps, failed
  ones too, as ``train_qtopt.record_offline`` writes them where ``offline_bag_folder`` says:
  ``demos_dir/grasp_bin_random0.15_terminate0.5`` for the default config's exploring grasps,
  ``demos_dir/grasp_bin`` for plain ones) and the recorder's online ones are both grasp-episode
  bags (:func:`~arm_policy.grasp_episodes.read_grasp_frames`), rewarded by the config
  (:func:`~arm_policy.grasp_episodes.grasp_transitions`): the offline ones, read before the agent
  exists, by the asked-for one (as ``arm train --inprocess`` does), the online ones by the agent's
  (a resumed run's is its checkpoint's).

The learning itself (replay, update cap, NaN guard, checkpoints, loss log) is the
:class:`~arm_policy.learner.Learner` that ``arm train --inprocess`` uses too; this module reads
the demo bags, checks the agent-episode bags fit the agent, and reports status. The demos (QT-Opt:
the offline grasps) are the replay's ``demo`` items, the agent's episodes the rest, so a batch
takes the config's ``replay_demo_fraction`` of demos once there are episodes (QT-Opt: half and
half, as ``arm train --inprocess --method qtopt``; before that, every item is a demo). The cap
``updates_per_step`` counts over the whole run (``updates <= updates_per_step * agent
transitions``), so a resumed run that already made its updates waits for new episodes
(``updates_per_step`` 0 with no episodes is QT-Opt's offline-only training).

Run folder (shared with the policy node and the episode runner)::

    run_dir/checkpoints/step_*.pt   atomic, the newest ``keep_checkpoints`` kept; the first at
                                    update 0 as soon as the demos are loaded
    run_dir/training/config.json    settings + agent config + git commit + command line
    run_dir/training/metrics.csv    losses every ``log_every`` updates (+ tensorboard/)

The runner owns ``run_dir/metrics.csv``, ``summary.json`` and ``learning_curve.png``; nothing
here writes them.

Resume (:meth:`Learner.start`): the newest checkpoint that loads gives the agent; the replay is
refilled from every demo and episode bag; a folder of only unreadable checkpoints is refused.
A NumericalError fails the run and nothing is checkpointed after it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from arm_perception.bag_format import BagError

from .agents import AGENTS, Agent, agent_class, agent_config
from .config import ARMConfig
from .demo_dataset import AUGMENTATION_EVERY, DEFAULT_EPISODE_LENGTH, Transition, load_demos
from .episode_dataset import list_bags, read_agent_episode
from .grasp_episodes import GraspFrame, grasp_transitions, read_grasp_frames
from .learner import Learner, LearnerSettings, TrainingFailed, captured_warnings
from .replay import PrioritizedReplay
from .run_log import write_config
from .settings import check_task
from .train_qtopt import offline_bag_folder

__all__ = ["BagTrainer", "BagTrainerSettings", "TRAINING_SUBDIR", "TrainingFailed"]

#: where the learner's config.json, metrics.csv and tensorboard/ go inside run_dir.
TRAINING_SUBDIR = "training"


@dataclass
class BagTrainerSettings:
    """What the training node passes on (its parameters of the same names)."""

    run_dir: str
    task: str = "reach_target"  # a task the agent learns (qtopt: grasp_bin)
    tray: str = "full"  # grasp_bin's tray (arm_sim.grasp_bin.TRAYS): its offline grasps have their own folder
    agent: str = "arm"  # a registered agent (arm_policy.agents.AGENTS) for a new run
    preset: str = "cpu"
    agent_overrides: dict = field(default_factory=dict)  # agent config fields changed from the preset
    demos_dir: str = ""  # '' = run_dir/demos; demos are read from demos_dir/task (qtopt: BagTrainer.demos_folder)
    episodes_dir: str = ""  # '' = run_dir/bags/train
    episode_length: int = DEFAULT_EPISODE_LENGTH  # agent steps per episode (time feature; keyframe agents)
    augmentation_every: int = AUGMENTATION_EVERY  # keyframe agents' demo augmentation
    updates_per_step: int = 4  # cap on updates per agent transition; 0 = no cap
    checkpoint_every: int = 100  # updates
    keep_checkpoints: int = 5
    log_every: int = 10  # updates between metrics.csv rows
    seed: int = 0
    device: str = ""  # '' = cuda if available, else cpu

    def __post_init__(self) -> None:
        if not str(self.run_dir):
            raise ValueError("run_dir must name the run folder")
        if self.agent not in AGENTS:
            raise ValueError(f"unknown agent {self.agent!r}; choose from {', '.join(AGENTS)}")
        check_task(self.task, self.agent)
        from arm_sim.grasp_bin import check_tray

        check_tray(self.tray, self.task)
        for name, low in (("updates_per_step", 0), ("checkpoint_every", 1),
                          ("keep_checkpoints", 1), ("log_every", 1), ("episode_length", 2),
                          ("augmentation_every", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.agent_overrides, dict):
            raise ValueError(f"agent_overrides must be a dict of ARMConfig fields, got "
                             f"{self.agent_overrides!r}")

    @property
    def grasping(self) -> bool:
        """The agent learns the bin's closed-loop grasps (an agent with tasks of its own: QT-Opt)
        from grasp-episode bags, not keyframes from demos and agent-episode bags."""
        return agent_class(self.agent).tasks is not None

    @property
    def demos_root(self) -> Path:
        return Path(self.demos_dir) if self.demos_dir else Path(self.run_dir) / "demos"

    @property
    def episodes_root(self) -> Path:
        return Path(self.episodes_dir) if self.episodes_dir else Path(self.run_dir) / "bags" / "train"

    def agent_config(self) -> ARMConfig:
        """The preset with the overrides, in the agent's form; ValueError naming a bad one."""
        return agent_config(self.preset, self.agent_overrides, self.agent)


class BagTrainer:
    """Demo bags + agent-episode bags (QT-Opt: offline + online grasp-episode bags) -> the
    :class:`~arm_policy.learner.Learner`."""

    def __init__(self, settings: BagTrainerSettings, log: Callable[[str], None] = print,
                 warn: Callable[[str], None] | None = None):
        self.settings = settings
        self.config = settings.agent_config()  # checked now: a bad override stops the node early
        self.run_dir = Path(settings.run_dir)
        self.training_dir = self.run_dir / TRAINING_SUBDIR
        self._log = log
        self._warn = warn or log
        self.learner: Learner | None = None
        self.demo_transitions = 0
        self.demo_episodes = 0

    # ------------------------------------------------------------------ set-up
    @property
    def demos_folder(self) -> Path:
        """Where the demos are: ``demos_root/TASK``; QT-Opt's offline grasps where
        :func:`~arm_policy.train_qtopt.offline_bag_folder` puts them for the asked-for config, as
        the episode runner and ``arm train --inprocess`` record them (``demos_root/grasp_bin``,
        or ``demos_root/grasp_bin_random<p>_terminate<q>`` for exploring scripted grasps, the
        default)."""
        s = self.settings
        return offline_bag_folder(s.demos_root, s.task, self.config, s.tray) if s.grasping else s.demos_root / s.task

    def demo_bags(self) -> list[Path]:
        """Closed demo bags of the task (QT-Opt: offline grasps; what ``start`` will read)."""
        return list_bags(self.demos_folder)

    def _load_demos(self) -> tuple[list, int]:
        """The demo transitions (the replay's ``demo`` items) and how many episodes gave them;
        an unreadable bag is skipped with a warning naming it."""
        s = self.settings
        if not s.grasping:
            demos: list[Transition] = captured_warnings(
                self._warn, load_demos, s.demos_root, s.task,
                augmentation_every=s.augmentation_every, episode_length=s.episode_length)
            return demos, len({t.episode for t in demos})
        demos, episodes = [], 0
        for bag in self.demo_bags():
            try:  # with the asked-for config, as arm train --inprocess --method qtopt reads them
                demos += grasp_transitions(bag, read_grasp_frames(bag), self.config)
            except BagError as err:
                self._warn(f"skipping unreadable offline grasp episode {bag}: {err}")
                continue
            episodes += 1
        return demos, episodes

    def start(self) -> None:
        """Load the demos, start the learner (resumed from the newest valid checkpoint, or a new
        agent and checkpoint 0) and open the run log. Raises RuntimeError/ValueError when it
        cannot."""
        s = self.settings
        demos_task_dir = self.demos_folder
        if not demos_task_dir.is_dir():
            raise RuntimeError(f"no demo folder {demos_task_dir}")
        demos, demo_episodes = self._load_demos()
        if not demos:
            raise RuntimeError(f"no usable demos under {demos_task_dir} (all bags unreadable"
                               + (")" if s.grasping else " or unsuccessful)"))
        self.training_dir.mkdir(parents=True, exist_ok=True)
        self.learner = Learner.start(
            s.agent, self.config, demos, self.run_dir,
            LearnerSettings(s.updates_per_step, s.checkpoint_every, s.keep_checkpoints, s.log_every),
            device=s.device or None, seed=s.seed, log_dir=self.training_dir,
            extra_state=lambda: {"trainer": {"task": s.task}}, warn=self._warn)
        self.config = self.agent.cfg
        self.demo_transitions = len(demos)
        self.demo_episodes = demo_episodes
        resumed = self.learner.resumed
        write_config(self.training_dir, {
            "training_node": dataclasses.asdict(s), "agent": self.config.to_dict(),
            "resumed_from_checkpoint": resumed.step if resumed is not None else None})
        where = f"{self.demo_transitions} demo transitions from {self.demo_episodes} demos"
        if resumed is None:
            self.learner.save_checkpoint()
            self._log(f"{where}; new {self.agent.name} agent on {self.agent.device}; checkpoint 0 written")
        else:
            self._log(f"{where}; resumed from checkpoint {resumed.path} (update {self.agent.updates}) "
                      f"on {self.agent.device}")

    # ------------------------------------------------------------------ data
    def read_episode(self, path: Path | str) -> Sequence[Transition] | list[GraspFrame] | None:
        """One closed episode bag decoded, for :meth:`add_episode` (any thread, before
        :meth:`start` too): its transitions, or QT-Opt's frames (rewarded when added, by the
        agent's config, which a resumed run only knows once started). None, with a warning
        naming the bag, when it cannot be read (truncated, corrupt, foreign): it never stops
        training."""
        try:
            return read_grasp_frames(path) if self.settings.grasping else read_agent_episode(path)
        except BagError as err:
            self._warn(f"skipping unreadable agent episode {path}: {err}")
            return None

    def add_episode(self, path: Path | str, episode: Sequence[Transition] | list[GraspFrame]) -> int:
        """Put one agent episode (:meth:`read_episode`) into the replay -> how many transitions
        were added (0 with a warning when it does not fit the agent: image size, QT-Opt state)."""
        if self.learner is None:
            raise RuntimeError("add_episode before start()")
        if self.settings.grasping:
            try:
                transitions = grasp_transitions(path, episode, self.config)
            except BagError as err:
                self._warn(f"skipping agent episode {path}: {err}")
                return 0
            success = bool(episode[-2].success)  # the frame whose action ended the episode
        else:
            transitions = episode
            # an episode bag is closed: its outcome is its last reward (> 0 only on success)
            success = bool(transitions) and transitions[-1].reward > 0
        size = self.config.image_size
        shapes = [np.shape(t["rgb"] if isinstance(t, dict) else t.rgb)[:2] for t in transitions]
        bad = [shape for shape in shapes if shape != (size, size)]
        if bad:
            self._warn(f"skipping agent episode {path}: its images are {bad[0][0]}x{bad[0][1]}, "
                       f"the agent expects {size}x{size}")
            return 0
        self.learner.add_episode(transitions, success=success)
        return len(transitions)

    # ------------------------------------------------------------------ learning
    @property
    def agent(self) -> Agent | None:
        return self.learner.agent if self.learner is not None else None

    @property
    def replay(self) -> PrioritizedReplay | None:
        return self.learner.replay if self.learner is not None else None

    @property
    def updates(self) -> int:
        return self.learner.updates if self.learner is not None else 0

    @property
    def agent_transitions(self) -> int:
        return self.learner.env_steps if self.learner is not None else 0

    @property
    def episodes(self) -> int:
        return self.learner.episodes if self.learner is not None else 0

    @property
    def checkpoint_step(self) -> int | None:
        return self.learner.checkpoint_step if self.learner is not None else None

    @property
    def failed(self) -> str | None:
        return self.learner.failed if self.learner is not None else None

    def updates_allowed(self) -> int | None:
        """Updates that may be made now: None = no cap, 0 = wait for more agent transitions."""
        return self.learner.updates_allowed() if self.learner is not None else 0

    def update(self) -> dict[str, float]:
        """One update (:meth:`Learner.update`: NumericalError fails the run)."""
        if self.learner is None:
            raise RuntimeError("update before start()")
        return self.learner.update()

    def save_checkpoint(self) -> Path | None:
        return self.learner.save_checkpoint() if self.learner is not None else None

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        """What the node publishes on /arm/training/status."""
        learner = self.learner
        resumed = learner.resumed if learner is not None else None
        return {
            "state": ("failed" if self.failed else "waiting_for_demos" if learner is None
                      else "training" if self.updates_allowed() != 0 else "waiting_for_episodes"),
            "updates": self.updates,
            "transitions": len(self.replay) if learner is not None else 0,
            "demo_transitions": self.demo_transitions,
            "agent_transitions": self.agent_transitions,
            "episodes": self.episodes,
            "losses": {k: v for k, v in (learner.last_metrics if learner else {}).items()
                       if k.endswith("_loss") and np.isfinite(v)},
            "checkpoint_step": self.checkpoint_step,
            "resumed_from": resumed.step if resumed is not None else None,
            "error": self.failed,
        }

    def close(self, final_checkpoint: bool = True) -> Path | None:
        """Write a last checkpoint (unless failed or already there) and close the run log."""
        return self.learner.close(final_checkpoint) if self.learner is not None else None
