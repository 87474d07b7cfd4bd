"""The four kinds of actor of a distributed run (QT-Opt's Fig. 3, seed 001; the authors' ARM ran
its actors and learner apart too), as plain classes; :mod:`arm_distributed.train` makes them Ray
actors and wires them. What differs by algorithm is in :mod:`.algorithms`.

* :class:`ReplayServer` keeps transitions for sampling and persists every closed episode as a bag
  in the run folder, read back when it (re)starts: a restart loses nothing. QT-Opt has two
  (offline, online); ARM one, which also holds the demos.
* :class:`Collector` plays episodes on its own in-process simulator with the newest weights the
  learner published (scripted ones for QT-Opt's offline data) and hands each closed episode to a
  replay server. A collector that dies mid-episode loses that episode only: nothing of it was sent.
* :class:`BellmanUpdater` labels a sampled batch with the agent's targets from the published
  target networks (``Agent.bellman_labels``).
* :class:`LearnerWorker` trains on labelled batches (or labels them itself with no updaters),
  checkpoints atomically, evaluates on the held-out scenes and publishes the networks acting and
  labelling need. A restarted learner resumes from its newest checkpoint.

Every actor uses one torch thread: the actors share the machine's cores.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from .algorithms import OFFLINE, ONLINE, algorithm

__all__ = ["BellmanUpdater", "Collector", "LearnerWorker", "OFFLINE", "ONLINE", "ReplayServer", "concat_batches"]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _agent(weights: dict, seed: int):
    """An agent acting and labelling with the learner's published ``weights``."""
    _one_thread()
    from arm_policy.agents import agent_class

    return agent_class(weights["agent"]).from_target_state(weights, device="cpu", seed=seed)


class _Process:
    """What every actor tells about itself: its process, and where that runs."""

    def pid(self) -> int:
        return os.getpid()

    def where(self) -> str:
        import ray

        return f"{ray.util.get_node_ip_address()} pid {os.getpid()}"


def concat_batches(parts: Sequence[dict | None]) -> dict[str, np.ndarray]:
    """Batches (dicts of arrays; None for an empty replay) -> one batch."""
    parts = [p for p in parts if p is not None]  # arrays from the object store are read-only: copied
    return {k: np.concatenate([np.atleast_1d(p[k]) for p in parts]) if np.ndim(parts[0][k]) else parts[0][k]
            for k in parts[0]}


class ReplayServer(_Process):
    """Transitions of one kind (``offline`` or ``online``) in a replay, each episode also a bag
    ``folder/<name>`` written before it is sampled; existing bags are loaded at start (after what
    the algorithm starts a replay with: ARM's demos)."""

    def __init__(self, kind: str, folder: str, spec: dict, seed: int):
        from arm_perception.bag_format import PARTIAL_SUFFIX

        self.kind, self.folder = kind, Path(folder)
        self.algo = algorithm(**spec)
        self.replay, start = self.algo.new_replay(kind, seed)
        self.replay.extend(start, demo=True)
        self.successes: dict[str, bool] = {}
        self.transitions = 0
        self.priority_updates = 0  # transitions whose priority the learner sent back
        self.folder.mkdir(parents=True, exist_ok=True)
        self.skipped: list[str] = []
        for bag in sorted(self.folder.glob("episode_*")):
            if bag.name.endswith(PARTIAL_SUFFIX):  # a write cut short: the episode never closed
                continue
            try:
                self._add(bag.name, *self.algo.read(bag))
            except Exception as err:  # a truncated or foreign bag: reported, not fatal
                self.skipped.append(f"{bag.name}: {err}")

    def _add(self, name: str, transitions: list, success: bool) -> None:
        self.replay.extend(transitions, demo=self.kind == "offline", success=success)
        self.transitions += len(transitions)
        self.successes[name] = success

    def add_episode(self, name: str, episode) -> int:
        """A closed episode: its bag, then its transitions -> how many (0 if ``name`` is there:
        an episode handed in twice is kept once)."""
        if name in self.successes:
            return 0
        path = self.folder / name
        if not path.exists():
            self.algo.write(path, episode)
        transitions, success = self.algo.transitions(episode)
        self._add(name, transitions, success)
        return len(transitions)

    def sample(self, n: int) -> dict[str, np.ndarray] | None:
        """``n`` transitions (None while empty), with where they are (``replay_index``) and their
        importance weights (``is_weight``) for a prioritised replay."""
        if n <= 0 or not len(self.replay):
            return None
        batch, index, weights = self.replay.sample(n)
        if self.algo.prioritised:
            batch["replay_index"], batch["is_weight"] = index, weights.astype(np.float32)
        return batch

    def update_priorities(self, index: np.ndarray, priorities: np.ndarray) -> None:
        """The learner's new priorities of a batch this replay gave."""
        self.replay.update_priorities(index, priorities)
        self.priority_updates += len(index)

    def stats(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Episodes, transitions and the success rate (of ``names`` only, if given)."""
        wins = [self.successes[n] for n in (names if names is not None else self.successes) if n in self.successes]
        return {"episodes": len(self.successes), "transitions": self.transitions,
                "success_rate": float(np.mean(wins)) if wins else 0.0, "skipped": list(self.skipped),
                "priority_updates": self.priority_updates}

    def names(self) -> list[str]:
        """The episodes it holds."""
        return sorted(self.successes)


class Collector(_Process):
    """One simulator plus the policy; hands closed episodes to the replay servers."""

    def __init__(self, index: int, spec: dict, seed: int):
        import ray

        self.index, self.seed = index, seed + 1000 * (index + 1)
        self.algo = algorithm(**spec)
        # by name, not as arguments: a restarted actor must not depend on objects of its first life
        self.replays = {name: ray.get_actor(name) for name in self.algo.replays}
        self.env = self.algo.env()
        self.agent = None  # made at the first episode of its own: scripted grasps need no torch
        self.version: int | None = None

    def scripted(self, seed: int) -> dict[str, Any]:
        """QT-Opt's scripted grasp of training scene ``seed``, into the offline replay."""
        import ray
        from arm_policy.train_qtopt import scripted_frames, scripted_name

        began = time.time()
        frames = scripted_frames(self.env, seed, SimpleNamespace(**self.algo.cfg_dict))
        ray.get(self.replays[OFFLINE].add_episode.remote(scripted_name(seed), frames))
        return {"steps": len(frames) - 1, "success": bool(frames[-2].success), "began": began}

    def episode(self, weights: dict, name: str, seed: int) -> dict[str, Any]:
        """One exploring episode on training scene ``seed`` with the published ``weights``, into
        the online replay as ``name``."""
        import ray

        if self.agent is None:
            self.agent = _agent(weights, self.seed)
        elif weights["updates"] != self.version:
            self.agent.load_target_state(weights)
        self.version = weights["updates"]
        began = time.time()
        episode, steps, success = self.algo.play(self.env, self.agent, seed)
        added = ray.get(self.replays[ONLINE].add_episode.remote(name, episode))
        return {"steps": added, "success": success, "began": began,
                "seconds": time.time() - began,  # the hand-over to the replay server included
                "collector": self.index, "weights": self.version}


class BellmanUpdater(_Process):
    """Labels batches with Bellman targets from the published target networks."""

    def __init__(self, index: int, seed: int):
        self.index, self.seed = index, seed + 100_000 * (index + 1)
        self.agent = None
        self.version: int | None = None

    def label(self, weights: dict, *parts: dict | None) -> dict[str, np.ndarray]:
        """The batch (its parts joined) with the agent's labels (``target``, ...) and
        ``targets_from`` (the update count of the weights used)."""
        if self.agent is None:
            self.agent = _agent(weights, self.seed)
        elif weights["updates"] != self.version:
            self.agent.load_target_state(weights)
        self.version = weights["updates"]
        batch = concat_batches(parts)
        batch.update(self.agent.bellman_labels(batch))
        batch["targets_from"] = np.int64(self.version)
        return batch


class LearnerWorker(_Process):
    """The one learner (arm_policy.learner.Learner without a replay of its own)."""

    def __init__(self, run: str, spec: dict, settings: dict, labelled: bool):
        _one_thread()
        from arm_policy.agents import agent_class
        from arm_policy.learner import Learner, LearnerSettings

        self.run, self.labelled = Path(run), labelled
        self.algo = algorithm(**spec)
        self.progress: dict = {}
        cfg = type(agent_class(spec["method"]).preset_config("cpu")).from_dict(spec["cfg_dict"])
        self.learner = Learner.start(
            spec["method"], cfg, self.algo.learner_demos(), self.run,
            LearnerSettings(0, settings["checkpoint_every"], settings["keep_checkpoints"]),
            device=settings["device"], seed=settings["seed"], log_dir=self.run / "training",
            extra_state=lambda: {"progress": dict(self.progress)}, warn=print, replay=False)
        self.env = None

    def resumed(self) -> dict | None:
        """The checkpoint it started from: its update count and the run's progress then."""
        r = self.learner.resumed
        return None if r is None else {"updates": self.learner.updates, "progress": r.state.get("progress", {})}

    def set_progress(self, progress: dict) -> None:
        """The driver's counters, saved with the next checkpoint (for a resumed run) and shown in
        the training log (this learner has no replay that would count them)."""
        self.progress = progress
        self.learner.env_steps = int(progress.get("env_steps", self.learner.env_steps))
        self.learner.episodes = int(progress.get("episodes", self.learner.episodes))

    def update(self, *parts: dict | None) -> dict[str, Any]:
        """One update -> its scalar metrics, and for a prioritised replay the batch's
        ``replay_index`` and new ``priorities``. Labelled mode takes one labelled batch and
        refuses a batch without targets (none is trained without its Bellman updater's target)."""
        batch = concat_batches(parts)
        if self.labelled and "target" not in batch:
            raise ValueError("a batch reached the learner without its Bellman targets")
        batch.pop("targets_from", None)
        index, weights = batch.pop("replay_index", None), batch.pop("is_weight", None)
        metrics = self.learner.update_on(batch, weights)
        out = {k: float(v) for k, v in metrics.items() if np.isscalar(v)} | {"updates": self.learner.updates}
        if self.algo.prioritised and index is not None:
            out |= {"replay_index": index, "priorities": metrics["priorities"]}
        return out

    def weights(self) -> dict:
        return self.learner.agent.target_state()

    def evaluate(self, episodes: int, snapshot: str | None = None) -> dict[str, float]:
        """Greedy episodes on the held-out scenes; the first decision's attention saved as the
        PNG ``snapshot`` when the agent attends."""
        from arm_policy.plots import attention_snapshot

        agent = self.learner.agent
        if self.env is None:
            self.env = self.algo.env()

        def on_first(decision):
            attention_snapshot(decision.obs["rgb"], decision.q_map, decision.pixel, agent.cfg.crop_size, snapshot)

        first = on_first if snapshot and getattr(agent, "attends", False) else None
        return self.algo.evaluate(self.env, agent, episodes, first) | {"updates": self.learner.updates}

    def close(self) -> str | None:
        """The final checkpoint -> its path."""
        path = self.learner.close()
        if self.env is not None:
            self.algo.close(self.env)
        return str(path) if path else None
