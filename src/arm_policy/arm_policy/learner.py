"""The learner both trainers share: one agent, one prioritised replay, one update loop (no ROS).

    learner = Learner.start("arm", cfg, demos, run_dir="runs/cup", settings=LearnerSettings())
    learner.observe(transition)          # one environment step the agent took
    learner.end_episode(success=True)    # its transitions are flagged as a successful episode
    learner.train()                      # the updates the cap allows: sample -> update -> priorities
    learner.close()

``arm train --inprocess`` (:mod:`arm_policy.train_inprocess`) feeds it transitions as the
in-process simulator makes them; the ROS training node (:mod:`arm_policy.bag_trainer`) feeds it
whole episodes read back from bags. Everything else is here, once:

* **Start or resume.** The newest checkpoint that loads gives the agent (its own config, its
  optimisers, its update count); a run folder whose checkpoints are all unreadable is refused,
  since a new checkpoint 0 beside them would silently start over. Otherwise a new agent of the
  asked-for kind is built from the demos (its action bounds cover them).
* **The update cap.** ``updates <= updates_per_step * env_steps`` over the whole run (0: no cap),
  so a resumed run that already made its updates waits for new experience.
* **NaN guard.** A :class:`~arm_policy.agents.NumericalError` from an update, or from the
  parameter check before a save, fails the learner: it re-raises, every later update or save
  raises :class:`TrainingFailed`, and the newest checkpoint on disk stays the last good one.
* **Checkpoints** every ``checkpoint_every`` updates (atomic, the newest ``keep_checkpoints``
  kept), with the learner's counters and whatever the caller's ``extra_state`` adds.
* **The replay across a resume** (``keep_replay``, the in-process trainers): each checkpoint
  also writes the agent's transitions since the last one under ``run_dir/replay/``
  (:mod:`arm_policy.replay_files`) and carries the replay's bookkeeping (kinds, success flags,
  priorities), so a resumed run samples from the buffer it had. Without them (an older
  checkpoint, a changed demo set, a file that cannot be read) the replay restarts from the
  demos, and the log says so. The ROS trainer reads its bags again instead.
* **Run log.** Losses every ``log_every`` updates into ``log_dir/metrics.csv`` (+ tensorboard).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .agents import Agent, NumericalError, agent_class, from_checkpoint
from .checkpoints import LoadedCheckpoint, list_checkpoints, load_latest_valid, save_checkpoint
from .config import ARMConfig
from .replay import PrioritizedReplay
from .replay_files import ReplayFiles
from .run_log import RunLogger

__all__ = ["Learner", "LearnerSettings", "TrainingFailed"]


class TrainingFailed(RuntimeError):
    """Training cannot go on (after a NumericalError); nothing more is checkpointed."""


@dataclass
class LearnerSettings:
    """How the learner trains and saves; the trainers' settings of the same names."""

    updates_per_step: int = 4  # cap on updates per environment step collected; 0 = no cap
    checkpoint_every: int = 500  # updates
    keep_checkpoints: int = 5
    log_every: int = 10  # updates between loss rows in log_dir/metrics.csv

    def __post_init__(self) -> None:
        for name, low in (("updates_per_step", 0), ("checkpoint_every", 1), ("keep_checkpoints", 1),
                          ("log_every", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def captured_warnings(warn: Callable[[str], None], fn, *args, **kwargs):
    """Call ``fn``; its warnings (skipped bags, unreadable checkpoints) go to ``warn``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    for w in caught:
        warn(str(w.message))
    return result


def demo_replay(agent: Agent, demos: Sequence, seed: int | None) -> PrioritizedReplay:
    """A new replay of the agent's fields holding the demos."""
    buffer = PrioritizedReplay.from_config(agent.cfg, seed=seed, fields=agent.replay_fields())
    buffer.extend(demos, demo=True)
    return buffer


class Learner:
    """See the module docstring. ``env_steps`` counts the transitions the agent collected (stored
    or not: BC learns from the demos only but its steps still pace the updates)."""

    def __init__(self, agent: Agent, replay: PrioritizedReplay | None, run_dir: Path | str,
                 settings: LearnerSettings | None = None, log_dir: Path | str | None = None,
                 extra_state: Callable[[], dict] | None = None,
                 resumed: LoadedCheckpoint | None = None):
        self.agent, self.replay = agent, replay
        self.run_dir = Path(run_dir)
        self.settings = settings or LearnerSettings()
        self.extra_state = extra_state
        self.resumed = resumed
        self.env_steps = 0
        self.episodes = 0
        self.failed: str | None = None
        self.last_metrics: dict[str, float] = {}
        self.checkpoint_step: int | None = resumed.step if resumed is not None else None
        self._episode_slots: list[int] = []
        self.replay_files: ReplayFiles | None = None
        self._unsaved: list[int] = []  # add indices of agent transitions not in replay_files yet
        self._demos_added = replay.added if replay is not None else 0
        self._added_at: dict[int, int] = {}  # checkpoint step -> the replay's adds by then
        #: after a resume: the agent transitions the replay got back (None: it restarted from
        #: the demos)
        self.restored_transitions: int | None = None
        self._logger = RunLogger(log_dir) if log_dir is not None else None
        self._rate = (time.monotonic(), agent.updates)

    @classmethod
    def start(cls, agent_name: str, cfg: ARMConfig, demos: Sequence, run_dir: Path | str,
              settings: LearnerSettings | None = None, device=None, seed: int | None = None,
              log_dir: Path | str | None = None, extra_state: Callable[[], dict] | None = None,
              warn: Callable[[str], None] = print, replay: bool = True,
              keep_replay: bool = False) -> "Learner":
        """Resume from ``run_dir``'s newest valid checkpoint, or a new ``agent_name`` agent built
        from ``demos`` (see the module docstring); the replay holds the demos either way, and
        with ``keep_replay`` the agent's transitions saved with that checkpoint too. With
        ``replay=False`` there is none: the batches come from elsewhere (:meth:`update_on`; the
        distributed learner's replay servers)."""
        run_dir = Path(run_dir)
        if not demos:
            raise RuntimeError("no demo transitions to start from")
        found = list_checkpoints(run_dir)
        loaded = captured_warnings(warn, load_latest_valid, run_dir) if found else None
        if found and loaded is None:
            raise RuntimeError(f"all {len(found)} checkpoints in {found[0].parent} are unreadable; "
                               "move them away to start over, or fix the run folder")
        if loaded is not None:
            agent = from_checkpoint(loaded.state, device)
            if agent.name != agent_name:
                raise RuntimeError(f"{found[0].parent} holds a {agent.name!r} agent's checkpoints, "
                                   f"not {agent_name!r}: use another run folder")
            changed = sorted(k for k, v in agent.cfg.to_dict().items() if cfg.to_dict().get(k) != v)
            if changed:
                warn(f"resuming with the checkpoint's agent config; it differs from the asked-for "
                     f"one in {changed}")
        else:
            agent = agent_class(agent_name).from_demos(cfg, demos, device=device, seed=seed)
        size = agent.cfg.image_size
        first = demos[0]
        shape = np.shape(first["rgb"] if isinstance(first, dict) else first.rgb)[:2]
        if shape != (size, size):
            raise ValueError(f"the demos are {shape[0]}x{shape[1]} but the agent expects "
                             f"{size}x{size}: record demos at that size (arm demos --image-size "
                             f"{size}) or set image_size in the agent overrides")
        buffer = demo_replay(agent, demos, seed) if replay else None
        learner = cls(agent, buffer, run_dir, settings, log_dir, extra_state, loaded)
        if buffer is not None and keep_replay:
            learner.replay_files = ReplayFiles(run_dir)
        if loaded is not None and buffer is not None:
            counters = loaded.state.get("learner", loaded.state.get("trainer", {}))
            buffer.samples_drawn = int(counters.get("replay_samples_drawn", 0))
            if learner.replay_files is not None:
                learner._restore_replay(counters.get("replay"), demos, seed, warn)
        elif learner.replay_files is not None:
            learner.replay_files.drop_from(0)  # a fresh run: nothing of an earlier one's
        return learner

    def _restore_replay(self, saved: dict | None, demos: Sequence, seed: int | None,
                        warn: Callable[[str], None]) -> None:
        """Put back the agent's transitions and the replay's bookkeeping a checkpoint names;
        if they cannot all come back, the replay stays the demos alone (with a warning)."""
        files = self.replay_files
        if saved is None:  # a checkpoint written without them
            files.drop_from(0)
            return
        added = int(saved["added"])
        files.drop_from(added)  # written after this checkpoint: they would be numbered again
        reason = None
        if int(saved["demos"]) != self._demos_added:
            reason = f"it started from {int(saved['demos'])} demo transitions, not {self._demos_added}"
        else:
            try:
                self.replay.restore_bookkeeping({k: v.numpy() if hasattr(v, "numpy") else v
                                                 for k, v in saved.items()})
                expected = int((~np.asarray(saved["demo"], np.bool_)).sum())
                restored = sum(self.replay.put_rows(idx, rows) for idx, rows in files.read(added))
                if restored != expected:
                    reason = f"{restored} of its {expected} agent transitions are on disk"
            except (ValueError, KeyError) as err:
                reason = str(err)
        if reason is None:
            self.restored_transitions, self._added_at = restored, {self.agent.updates: added}
            return
        warn(f"the replay restarts from the demos: {reason}")
        files.drop_from(0)
        self.replay = demo_replay(self.agent, demos, seed)
        self.replay.samples_drawn = int(saved.get("samples_drawn", 0))

    def replay_note(self) -> str:
        """What a resumed run's replay holds, for its resume line."""
        if self.restored_transitions is None:
            return "the replay restarts from the demos"
        return f"the replay has its {self.restored_transitions} agent transitions back"

    @property
    def updates(self) -> int:
        return self.agent.updates

    # ------------------------------------------------------------------ experience
    def observe(self, transition) -> None:
        """One environment step of the running episode (stored unless the agent learns from its
        demos only)."""
        if self.agent.learns_online:
            self._episode_slots.append(self.replay.add(transition, demo=False))
            if self.replay_files is not None:
                self._unsaved.append(self.replay.added - 1)
                if len(self._unsaved) >= self.replay.capacity:  # the ring would overwrite them
                    self._save_replay()
        self.env_steps += 1

    def end_episode(self, success: bool) -> None:
        """The running episode is over; a successful one's transitions are flagged as such."""
        if success and self._episode_slots:
            self.replay.mark_success(self._episode_slots)
        self._episode_slots = []
        self.episodes += 1

    def add_episode(self, transitions: Sequence, success: bool) -> None:
        """A whole closed episode at once (read back from a bag)."""
        for t in transitions:
            self.observe(t)
        self.end_episode(success)

    # ------------------------------------------------------------------ learning
    def updates_allowed(self) -> int | None:
        """Updates that may be made now: None = no cap, 0 = wait for more experience."""
        if self.failed:
            return 0
        if self.settings.updates_per_step == 0:
            return None
        return max(0, self.settings.updates_per_step * self.env_steps - self.agent.updates)

    def update(self) -> dict[str, float]:
        """One update on a prioritised batch; logs and checkpoints when due. NumericalError fails
        the learner (and re-raises); TrainingFailed if it failed before."""
        if self.failed:
            raise TrainingFailed(self.failed)
        batch, idx, weights = self.replay.sample(self.agent.cfg.batch_size)
        metrics = self.update_on(batch, weights)
        self.replay.update_priorities(idx, metrics.pop("priorities"))
        return metrics

    def update_on(self, batch: dict[str, np.ndarray], weights=None) -> dict:
        """One update on a batch drawn elsewhere (the distributed learner's replay servers; a
        batch a Bellman updater labelled carries ``target``) -> the agent's metrics, its
        ``priorities`` included; the NaN guard, the loss log and the checkpoints as in
        :meth:`update`."""
        if self.failed:
            raise TrainingFailed(self.failed)
        try:
            metrics = self.agent.update(batch, weights)
        except NumericalError as err:
            self.failed = f"update {self.agent.updates + 1}: {err}"
            raise
        self.last_metrics = {k: v for k, v in metrics.items() if k != "priorities"}
        n = self.agent.updates
        if n % self.settings.log_every == 0:
            self._log_metrics()
        if n % self.settings.checkpoint_every == 0:
            self.save_checkpoint()
        return metrics

    def train(self) -> int:
        """Every update the cap allows now (with no cap: one) -> how many were made."""
        allowed = self.updates_allowed()
        n = 1 if allowed is None else allowed
        for _ in range(n):
            self.update()
        return n

    def _log_metrics(self) -> None:
        now, n = time.monotonic(), self.agent.updates
        t0, n0 = self._rate
        rate = (n - n0) / (now - t0) if now > t0 else 0.0
        self._rate = (now, n)
        if self._logger is not None:
            sizes = {} if self.replay is None else {"replay_size": len(self.replay)}
            self._logger.log(n, **{k: v for k, v in self.last_metrics.items() if np.isscalar(v)},
                             **sizes, env_steps=self.env_steps,
                             episodes=self.episodes, updates_per_second=rate)

    # ------------------------------------------------------------------ saving
    def save_checkpoint(self, rewrite: bool = False) -> Path | None:
        """Checkpoint the agent at its update count (None if that one exists already, unless
        ``rewrite``: then it is written again, with today's ``extra_state``). Raises
        TrainingFailed after a failure, NumericalError if a parameter is non-finite."""
        if self.failed:
            raise TrainingFailed(f"not checkpointing a failed run: {self.failed}")
        if self.checkpoint_step == self.agent.updates and not rewrite:
            return None
        try:
            state = self.agent.state_dict()  # checks every parameter first
        except NumericalError as err:
            self.failed = f"before checkpoint {self.agent.updates}: {err}"
            raise
        drawn = 0 if self.replay is None else int(self.replay.samples_drawn)
        state["learner"] = {"replay_samples_drawn": drawn, "env_steps": int(self.env_steps),
                            "episodes": int(self.episodes)}
        if self.replay_files is not None:
            state["learner"]["replay"] = self._save_replay()
        if self.extra_state is not None:
            state.update(self.extra_state())
        path = save_checkpoint(self.run_dir, self.agent.updates, state,
                               keep_last=self.settings.keep_checkpoints)
        self.checkpoint_step = self.agent.updates
        return path

    def _save_replay(self) -> dict:
        """The agent's transitions since the last call into replay_files, the files the ring
        has overwritten since deleted -> the bookkeeping a checkpoint carries beside them."""
        if self._unsaved:
            index = np.asarray(self._unsaved, dtype=np.int64)
            self.replay_files.write(index, self.replay.rows(index % self.replay.capacity))
            self._unsaved = []
        book = self.replay.bookkeeping()
        # only what the ring had overwritten by the oldest kept checkpoint: any of them resumes
        self._added_at[self.agent.updates] = int(book["added"])
        kept = sorted(self._added_at)[-self.settings.keep_checkpoints:]
        self._added_at = {step: self._added_at[step] for step in kept}
        self.replay_files.drop_overwritten(min(self._added_at.values()), self.replay.capacity)
        return {"added": int(book["added"]), "size": int(book["size"]), "demos": self._demos_added,
                "max_priority": float(book["max_priority"]), "samples_drawn": int(book["samples_drawn"]),
                **{k: torch.from_numpy(np.ascontiguousarray(book[k])) for k in ("priorities", "demo", "success")}}

    def close(self, final_checkpoint: bool = True, keep_replay: bool = True) -> Path | None:
        """A last checkpoint (unless failed), then the run log closed. It is written even when
        the update count has one: the run's progress since (the final evaluation) is what a
        resumed run restores its evaluations up to. Without ``keep_replay`` (a run that is
        over, not interrupted) the saved replay files are deleted."""
        path = None
        try:
            if final_checkpoint and not self.failed:
                path = self.save_checkpoint(rewrite=True)
        finally:
            if self._logger is not None:
                self._logger.close()
                self._logger = None
            if self.replay_files is not None and not keep_replay:
                self.replay_files.remove()
        return path
