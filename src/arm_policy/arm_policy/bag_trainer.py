"""Training from bags on disk: the training node's logic, without ROS.

    trainer = BagTrainer(BagTrainerSettings(run_dir="runs/sim_train", task="reach_target"))
    trainer.start()                              # demos -> replay; resume or checkpoint 0
    trainer.add_episode(bag, read_agent_episode(bag))
    while trainer.updates_allowed() != 0:
        trainer.update()                         # one update; checkpoints when due
    trainer.close()

The learning itself (replay, update cap, NaN guard, checkpoints, loss log) is the
:class:`~arm_policy.learner.Learner` that ``arm train --inprocess`` uses too; this module reads
the demo bags, checks the agent-episode bags fit the agent, and reports status. The cap
``updates_per_step`` counts over the whole run (``updates <= updates_per_step * agent
transitions``), so a resumed run that already made its updates waits for new episodes.

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

from .agents import AGENTS, Agent, agent_class, agent_config
from .config import ARMConfig
from .demo_dataset import AUGMENTATION_EVERY, DEFAULT_EPISODE_LENGTH, Transition, load_demos
from .episode_dataset import list_bags
from .learner import Learner, LearnerSettings, TrainingFailed, captured_warnings
from .replay import PrioritizedReplay
from .run_log import write_config

__all__ = ["BagTrainer", "BagTrainerSettings", "TRAINING_SUBDIR", "TrainingFailed"]

#: where the learner's config.json, metrics.csv and tensorboard/ go inside run_dir.
TRAINING_SUBDIR = "training"


@dataclass
class BagTrainerSettings:
    """What the training node passes on (its parameters of the same names)."""

    run_dir: str
    task: str = "reach_target"
    agent: str = "arm"  # a registered agent (arm_policy.agents.AGENTS) for a new run
    preset: str = "cpu"
    agent_overrides: dict = field(default_factory=dict)  # ARMConfig fields changed from the preset
    demos_dir: str = ""  # '' = run_dir/demos; demos are read from demos_dir/task
    episodes_dir: str = ""  # '' = run_dir/bags/train
    episode_length: int = DEFAULT_EPISODE_LENGTH  # agent steps per episode (time feature)
    augmentation_every: int = AUGMENTATION_EVERY
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
        if agent_class(self.agent).tasks is not None:  # QT-Opt: its bin has no ROS driver yet
            raise ValueError(f"agent {self.agent!r} trains in process only (arm train --inprocess "
                             f"--method {self.agent}); the ROS graph trains the keyframe agents")
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
    def demos_root(self) -> Path:
        return Path(self.demos_dir) if self.demos_dir else Path(self.run_dir) / "demos"

    @property
    def episodes_root(self) -> Path:
        return Path(self.episodes_dir) if self.episodes_dir else Path(self.run_dir) / "bags" / "train"

    def agent_config(self) -> ARMConfig:
        """The preset with the overrides, in the agent's form; ValueError naming a bad one."""
        return agent_config(self.preset, self.agent_overrides, self.agent)


class BagTrainer:
    """Demo bags + agent-episode bags -> the :class:`~arm_policy.learner.Learner`."""

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
    def demo_bags(self) -> list[Path]:
        """Closed demo bags of the task (what ``start`` will read)."""
        return list_bags(self.settings.demos_root / self.settings.task)

    def start(self) -> None:
        """Load the demos, start the learner (resumed from the newest valid checkpoint, or a new
        agent and checkpoint 0) and open the run log. Raises RuntimeError/ValueError when it
        cannot."""
        s = self.settings
        demos_task_dir = s.demos_root / s.task
        if not demos_task_dir.is_dir():
            raise RuntimeError(f"no demo folder {demos_task_dir}")
        demos: list[Transition] = captured_warnings(
            self._warn, load_demos, s.demos_root, s.task, augmentation_every=s.augmentation_every,
            episode_length=s.episode_length)
        if not demos:
            raise RuntimeError(f"no usable demos under {demos_task_dir} (all bags unreadable or "
                               "unsuccessful)")
        self.training_dir.mkdir(parents=True, exist_ok=True)
        self.learner = Learner.start(
            s.agent, self.config, demos, self.run_dir,
            LearnerSettings(s.updates_per_step, s.checkpoint_every, s.keep_checkpoints, s.log_every),
            device=s.device or None, seed=s.seed, log_dir=self.training_dir,
            extra_state=lambda: {"trainer": {"task": s.task}}, warn=self._warn)
        self.config = self.agent.cfg
        self.demo_transitions = len(demos)
        self.demo_episodes = len({t.episode for t in demos})
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
    def add_episode(self, path: Path | str, transitions: Sequence[Transition]) -> int:
        """Put one agent episode's transitions into the replay -> how many were added (0 with a
        warning when its images do not fit the agent)."""
        if self.learner is None:
            raise RuntimeError("add_episode before start()")
        size = self.config.image_size
        bad = [t for t in transitions if t.rgb.shape[:2] != (size, size)]
        if bad:
            self._warn(f"skipping agent episode {path}: its images are "
                       f"{bad[0].rgb.shape[0]}x{bad[0].rgb.shape[1]}, the agent expects "
                       f"{size}x{size}")
            return 0
        # an episode bag is closed: its outcome is its last reward (> 0 only on success)
        self.learner.add_episode(transitions, success=bool(transitions) and transitions[-1].reward > 0)
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
