"""ARM training from bags on disk: the training node's logic, without ROS.

    trainer = BagTrainer(BagTrainerSettings(run_dir="runs/sim_train", task="reach_target"))
    trainer.start()                              # demos -> replay; resume or checkpoint 0
    trainer.add_episode(bag, read_agent_episode(bag))
    while trainer.updates_allowed() != 0:
        trainer.update()                         # one ARM update; checkpoints when due
    trainer.close()

What it mirrors from the in-process trainer (``train_inprocess.py``): the agent, the replay
(demo transitions with ``demo=True``, agent transitions with ``demo=False``), one update =
sample -> ``Agent.update`` -> ``update_priorities``, and ``updates_per_step``: at most that
many updates per agent transition collected (0 = no cap). The cap counts over the whole run:
``updates <= updates_per_step * agent transitions``, so a resumed run that already made its
updates waits for new episodes instead of making them again.

Run folder (shared with the policy node and the episode runner)::

    run_dir/checkpoints/step_*.pt   atomic, the newest ``keep_checkpoints`` kept; the first at
                                    update 0 as soon as the demos are loaded
    run_dir/training/config.json    settings + agent config + git commit + command line
    run_dir/training/metrics.csv    losses every ``log_every`` updates (+ tensorboard/)

The runner owns ``run_dir/metrics.csv``, ``summary.json`` and ``learning_curve.png``; nothing
here writes them.

Resume: the newest checkpoint that loads (``load_latest_valid``; unreadable newer ones are
logged) gives the agent, its optimisers, its update count and its action bounds; the replay is
refilled from every demo and episode bag. If checkpoints exist but none loads, ``start`` refuses
(``RuntimeError``): writing a new checkpoint 0 next to them would be silently starting over.

Numerical failure: :class:`~arm_policy.agents.NumericalError` from an update (or from the
parameter check before a save) marks the trainer failed; it re-raises, and no checkpoint is
written from then on, so the newest checkpoint on disk stays the last good one.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .agents import Agent, ARMAgent, NumericalError, from_checkpoint
from .checkpoints import list_checkpoints, load_latest_valid, save_checkpoint
from .config import ARMConfig, preset
from .demo_dataset import AUGMENTATION_EVERY, DEFAULT_EPISODE_LENGTH, Transition, load_demos
from .episode_dataset import list_bags
from .replay import PrioritizedReplay
from .run_log import RunLogger, write_config

__all__ = ["BagTrainer", "BagTrainerSettings", "TRAINING_SUBDIR", "TrainingFailed"]

#: where the training node's own config.json, metrics.csv and tensorboard/ go inside run_dir.
TRAINING_SUBDIR = "training"


class TrainingFailed(RuntimeError):
    """Training cannot go on (e.g. after a NumericalError); nothing more is checkpointed."""


@dataclass
class BagTrainerSettings:
    """What the training node passes on (its parameters of the same names)."""

    run_dir: str
    task: str = "reach_target"
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
        """The preset with the overrides; ValueError naming a bad preset or field."""
        known = sorted(f.name for f in dataclasses.fields(ARMConfig))
        unknown = sorted(set(self.agent_overrides) - set(known))
        if unknown:
            raise ValueError(f"agent_overrides: unknown ARMConfig field(s) {unknown}; the fields "
                             f"are {known}")
        try:
            return preset(self.preset, **self.agent_overrides)
        except KeyError as err:
            raise ValueError(str(err).strip('"')) from None
        except (TypeError, ValueError) as err:  # a value of the wrong type or out of range
            raise ValueError(f"agent_overrides {self.agent_overrides}: {err}") from None


class BagTrainer:
    """Demo + agent-episode transitions -> prioritised replay -> ARM updates -> checkpoints."""

    def __init__(self, settings: BagTrainerSettings, log: Callable[[str], None] = print,
                 warn: Callable[[str], None] | None = None):
        self.settings = settings
        self.config = settings.agent_config()  # checked now: a bad override stops the node early
        self.run_dir = Path(settings.run_dir)
        self.training_dir = self.run_dir / TRAINING_SUBDIR
        self._log = log
        self._warn = warn or log
        self.agent: Agent | None = None
        self.replay: PrioritizedReplay | None = None
        self.logger: RunLogger | None = None
        self.demo_transitions = 0
        self.demo_episodes = 0
        self.agent_transitions = 0
        self.episodes = 0
        self.checkpoint_step: int | None = None  # newest checkpoint written or resumed from
        self.resumed_from: int | None = None
        self.last_metrics: dict[str, float] = {}
        self.failed: str | None = None
        self._rate = (time.monotonic(), 0)  # for updates/s in the metrics

    # ------------------------------------------------------------------ set-up
    def demo_bags(self) -> list[Path]:
        """Closed demo bags of the task (what ``start`` will read)."""
        return list_bags(self.settings.demos_root / self.settings.task)

    def _captured(self, fn, *args, **kwargs):
        """Call ``fn``; its warnings (skipped bags, unreadable checkpoints) go to the log."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(*args, **kwargs)
        for w in caught:
            self._warn(str(w.message))
        return result

    def start(self) -> None:
        """Load the demos, resume from the newest valid checkpoint or create the agent and write
        checkpoint 0, and open the run log. Raises RuntimeError/ValueError when it cannot."""
        s = self.settings
        demos_task_dir = s.demos_root / s.task
        if not demos_task_dir.is_dir():
            raise RuntimeError(f"no demo folder {demos_task_dir}")
        demos: list[Transition] = self._captured(
            load_demos, s.demos_root, s.task, augmentation_every=s.augmentation_every,
            episode_length=s.episode_length)
        if not demos:
            raise RuntimeError(f"no usable demos under {demos_task_dir} (all bags unreadable or "
                               "unsuccessful)")

        found = list_checkpoints(self.run_dir)
        loaded = self._captured(load_latest_valid, self.run_dir) if found else None
        if found and loaded is None:
            raise RuntimeError(
                f"all {len(found)} checkpoints in {found[0].parent} are unreadable; move them "
                "away to start over, or fix the run folder")
        if loaded is not None:
            self.agent = from_checkpoint(loaded.state, s.device or None)
            self.checkpoint_step = self.resumed_from = loaded.step
            changed = {k: (v, self.config.to_dict().get(k))
                       for k, v in self.agent.cfg.to_dict().items()
                       if self.config.to_dict().get(k) != v}
            if changed:
                self._warn(f"resuming with the checkpoint's agent config; it differs from "
                           f"preset {s.preset!r} + overrides in {sorted(changed)}")
            self.config = self.agent.cfg
        else:
            self.agent = ARMAgent.from_demos(self.config, demos, s.device or None, seed=s.seed)

        size = self.config.image_size
        shape = demos[0].rgb.shape[:2]
        if shape != (size, size):
            raise ValueError(f"demos under {demos_task_dir} are {shape[0]}x{shape[1]} but the agent "
                             f"expects {size}x{size}: record demos at that size (arm demos "
                             f"--image-size {size}) or set image_size in agent_overrides")
        self.replay = PrioritizedReplay.from_config(self.config, seed=s.seed)
        self.replay.extend(demos, demo=True)
        self.demo_transitions = len(demos)
        self.demo_episodes = len({t.episode for t in demos})
        if loaded is not None:
            trainer_state = loaded.state.get("trainer", {})
            self.replay.samples_drawn = int(trainer_state.get("replay_samples_drawn", 0))

        self.training_dir.mkdir(parents=True, exist_ok=True)
        write_config(self.training_dir, {
            "training_node": dataclasses.asdict(s), "agent": self.config.to_dict(),
            "resumed_from_checkpoint": self.resumed_from})
        self.logger = RunLogger(self.training_dir)
        self._rate = (time.monotonic(), self.agent.updates)
        if loaded is None:
            self.save_checkpoint()
            self._log(f"{self.demo_transitions} demo transitions from {self.demo_episodes} demos; "
                      f"new agent on {self.agent.device}; checkpoint 0 written")
        else:
            self._log(f"{self.demo_transitions} demo transitions from {self.demo_episodes} demos; "
                      f"resumed from checkpoint {loaded.path} (update {self.agent.updates}) on "
                      f"{self.agent.device}")

    # ------------------------------------------------------------------ data
    def add_episode(self, path: Path | str, transitions: Sequence[Transition]) -> int:
        """Put one agent episode's transitions into the replay -> how many were added (0 with a
        warning when its images do not fit the agent)."""
        if self.replay is None:
            raise RuntimeError("add_episode before start()")
        size = self.config.image_size
        bad = [t for t in transitions if t.rgb.shape[:2] != (size, size)]
        if bad:
            self._warn(f"skipping agent episode {path}: its images are "
                       f"{bad[0].rgb.shape[0]}x{bad[0].rgb.shape[1]}, the agent expects "
                       f"{size}x{size}")
            return 0
        # an episode bag is closed: its outcome is its last reward (> 0 only on success)
        self.replay.extend(transitions, demo=False,
                           success=bool(transitions) and transitions[-1].reward > 0)
        self.agent_transitions += len(transitions)
        self.episodes += 1
        return len(transitions)

    # ------------------------------------------------------------------ learning
    @property
    def updates(self) -> int:
        return self.agent.updates if self.agent is not None else 0

    def updates_allowed(self) -> int | None:
        """Updates that may be made now: None = no cap, 0 = wait for more agent transitions."""
        if self.agent is None or self.failed:
            return 0
        if self.settings.updates_per_step == 0:
            return None
        return max(0, self.settings.updates_per_step * self.agent_transitions - self.agent.updates)

    def update(self) -> dict[str, float]:
        """One ARM update on a prioritised batch; logs and checkpoints when due.

        Raises NumericalError (and the trainer is failed from then on) on a non-finite loss,
        gradient or parameter; TrainingFailed if it failed before."""
        if self.failed:
            raise TrainingFailed(self.failed)
        if self.agent is None or self.replay is None:
            raise RuntimeError("update before start()")
        batch, idx, weights = self.replay.sample(self.config.batch_size)
        try:
            metrics = self.agent.update(batch, weights)
        except NumericalError as err:
            self.failed = f"update {self.agent.updates + 1}: {err}"
            raise
        self.replay.update_priorities(idx, metrics.pop("priorities"))
        self.last_metrics = metrics
        n = self.agent.updates
        if n % self.settings.log_every == 0:
            self._log_metrics()
        if n % self.settings.checkpoint_every == 0:
            self.save_checkpoint()
        return metrics

    def _log_metrics(self) -> None:
        now, n = time.monotonic(), self.agent.updates
        t0, n0 = self._rate
        rate = (n - n0) / (now - t0) if now > t0 else 0.0
        self._rate = (now, n)
        if self.logger is not None:
            self.logger.log(n, **self.last_metrics, replay_size=len(self.replay),
                            agent_transitions=self.agent_transitions, episodes=self.episodes,
                            updates_per_second=rate)

    def save_checkpoint(self) -> Path | None:
        """Checkpoint the agent at its update count (None if that one exists already). Raises
        TrainingFailed after a failure, NumericalError if a parameter is non-finite."""
        if self.failed:
            raise TrainingFailed(f"not checkpointing a failed run: {self.failed}")
        if self.agent is None:
            return None
        if self.checkpoint_step == self.agent.updates:
            return None
        try:
            state = self.agent.state_dict()  # checks every parameter first
        except NumericalError as err:
            self.failed = f"before checkpoint {self.agent.updates}: {err}"
            raise
        state["trainer"] = {"task": self.settings.task,
                            "replay_samples_drawn": int(self.replay.samples_drawn),
                            "agent_transitions": int(self.agent_transitions),
                            "episodes": int(self.episodes)}
        path = save_checkpoint(self.run_dir, self.agent.updates, state,
                               keep_last=self.settings.keep_checkpoints)
        self.checkpoint_step = self.agent.updates
        return path

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        """What the node publishes on /arm/training/status."""
        return {
            "state": ("failed" if self.failed else "waiting_for_demos" if self.agent is None
                      else "training" if self.updates_allowed() != 0 else "waiting_for_episodes"),
            "updates": self.updates,
            "transitions": len(self.replay) if self.replay is not None else 0,
            "demo_transitions": self.demo_transitions,
            "agent_transitions": self.agent_transitions,
            "episodes": self.episodes,
            "losses": {k: v for k, v in self.last_metrics.items()
                       if k.endswith("_loss") and np.isfinite(v)},
            "checkpoint_step": self.checkpoint_step,
            "resumed_from": self.resumed_from,
            "error": self.failed,
        }

    def close(self, final_checkpoint: bool = True) -> Path | None:
        """Write a last checkpoint (unless failed or already there) and close the run log."""
        path = None
        try:
            if final_checkpoint and not self.failed and self.agent is not None:
                path = self.save_checkpoint()
        finally:
            if self.logger is not None:
                self.logger.close()
                self.logger = None
        return path
