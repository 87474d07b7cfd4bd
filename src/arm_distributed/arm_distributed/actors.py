"""The four kinds of actor of a distributed QT-Opt run (the paper's Fig. 3, seed 001), as plain
classes; :mod:`arm_distributed.train` makes them Ray actors and wires them.

* :class:`ReplayServer` (two: offline, online) keeps transitions for sampling and persists every
  closed episode as a bag in the run folder, read back when it (re)starts: a restart loses nothing.
* :class:`Collector` plays episodes on its own in-process simulator with the newest weights the
  learner published (scripted ones for the offline data) and hands each closed episode to a replay
  server. A collector that dies mid-episode loses that episode only: nothing of it was sent.
* :class:`BellmanUpdater` labels a sampled batch with the agent's ``targets()`` (theta_1, theta_2).
* :class:`LearnerWorker` trains on labelled batches (or labels them itself with no updaters),
  checkpoints atomically, evaluates on the held-out scenes and publishes theta_1 and theta_2. A
  restarted learner resumes from its newest checkpoint.

Every actor uses one torch thread: the actors share the machine's cores.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

__all__ = ["BellmanUpdater", "Collector", "LearnerWorker", "OFFLINE", "ONLINE", "ReplayServer", "concat_batches"]

#: the replay servers' actor names (in the run's Ray namespace)
OFFLINE, ONLINE = "replay-offline", "replay-online"


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _agent(cfg_dict: dict, seed: int):
    _one_thread()
    from arm_policy.agents.qtopt import QTOptAgent, QTOptConfig

    return QTOptAgent(QTOptConfig.from_dict(cfg_dict), device="cpu", seed=seed)


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
    """Transitions of one kind (``offline`` or ``online``) in a uniform replay, each episode also a
    bag ``folder/<name>`` written before it is sampled; existing bags are loaded at start."""

    def __init__(self, kind: str, folder: str, cfg_dict: dict, seed: int):
        from arm_perception.bag_format import PARTIAL_SUFFIX
        from arm_policy.replay import PrioritizedReplay

        self.kind, self.folder = kind, Path(folder)
        # the config as plain values: the rewards and sizes are all it needs, and no torch import
        # (QTOptConfig's package imports it) keeps its start fast; the first transition sets the
        # replay's fields (rgb stays uint8)
        self.cfg = SimpleNamespace(**cfg_dict)
        self.replay = PrioritizedReplay(self.cfg.replay_capacity, alpha=0.0, seed=seed)
        self.successes: dict[str, bool] = {}
        self.transitions = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self.skipped: list[str] = []
        for bag in sorted(self.folder.glob("episode_*")):
            if bag.name.endswith(PARTIAL_SUFFIX):  # a write cut short: the episode never closed
                continue
            try:
                self._add(bag.name, self._read(bag))
            except Exception as err:  # a truncated or foreign bag: reported, not fatal
                self.skipped.append(f"{bag.name}: {err}")

    def _read(self, bag: Path) -> list[dict]:
        from arm_policy.grasp_episodes import read_grasp_episode

        return read_grasp_episode(bag, self.cfg)

    def _add(self, name: str, transitions: list[dict]) -> None:
        self.replay.extend(transitions, demo=self.kind == "offline")
        self.transitions += len(transitions)
        self.successes[name] = bool(transitions and transitions[-1]["reward"] > 0)

    def add_episode(self, name: str, frames: list) -> int:
        """A closed episode: its bag, then its transitions -> how many (0 if ``name`` is there:
        an episode handed in twice is kept once)."""
        from arm_policy.grasp_episodes import transitions_of, write_grasp_episode

        if name in self.successes:
            return 0
        path = self.folder / name
        if not path.exists():
            write_grasp_episode(path, frames)
        transitions = transitions_of(frames, self.cfg)
        self._add(name, transitions)
        return len(transitions)

    def sample(self, n: int) -> dict[str, np.ndarray] | None:
        """``n`` transitions drawn uniformly (None while empty)."""
        if n <= 0 or not len(self.replay):
            return None
        return self.replay.sample(n)[0]

    def stats(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Episodes, transitions and the success rate (of ``names`` only, if given)."""
        wins = [self.successes[n] for n in (names if names is not None else self.successes) if n in self.successes]
        return {"episodes": len(self.successes), "transitions": self.transitions,
                "success_rate": float(np.mean(wins)) if wins else 0.0, "skipped": list(self.skipped)}

    def names(self) -> list[str]:
        """The episodes it holds."""
        return sorted(self.successes)


class Collector(_Process):
    """One simulator plus the policy; hands closed episodes to the replay servers."""

    def __init__(self, index: int, cfg_dict: dict, seed: int):
        import ray
        from arm_sim.grasp_bin import GraspBinEnv

        self.index, self.cfg_dict, self.seed = index, cfg_dict, seed + 1000 * (index + 1)
        # by name, not as arguments: a restarted actor must not depend on objects of its first life
        self.offline, self.online = ray.get_actor(OFFLINE), ray.get_actor(ONLINE)
        size = cfg_dict["image_size"]
        self.env = GraspBinEnv(image_size=(size, size), max_steps=cfg_dict["max_steps"])
        self.agent = None  # made at the first episode of its own: scripted grasps need no torch
        self.version: int | None = None

    def scripted(self, seed: int) -> dict[str, Any]:
        """The scripted grasp of training scene ``seed``, into the offline replay."""
        import ray
        from arm_policy.train_qtopt import scripted_frames, scripted_name

        began = time.time()
        frames = scripted_frames(self.env, seed, SimpleNamespace(**self.cfg_dict))
        ray.get(self.offline.add_episode.remote(scripted_name(seed), frames))
        return {"steps": len(frames) - 1, "success": bool(frames[-2].success), "began": began}

    def episode(self, weights: dict, name: str, seed: int) -> dict[str, Any]:
        """One exploring episode (CEM, epsilon-greedy) on training scene ``seed`` with the
        published ``weights``, into the online replay as ``name``."""
        import ray
        from arm_policy.grasp_episodes import agent_observation, play_episode

        if self.agent is None:
            self.agent = _agent(self.cfg_dict, self.seed)
        if weights["updates"] != self.version:
            self.agent.load_target_state(weights)
            self.version = weights["updates"]
        began = time.time()
        frames = play_episode(self.env, seed, lambda obs: self.agent.act(agent_observation(obs), True)[1])
        added = ray.get(self.online.add_episode.remote(name, frames))
        return {"steps": added, "success": bool(frames[-2].success), "began": began,
                "seconds": time.time() - began,  # the hand-over to the replay server included
                "collector": self.index, "weights": self.version}


class BellmanUpdater(_Process):
    """Labels batches with Bellman targets from the published theta_1 and theta_2."""

    def __init__(self, index: int, cfg_dict: dict, seed: int):
        self.index = index
        self.agent = _agent(cfg_dict, seed + 100_000 * (index + 1))
        self.version: int | None = None

    def label(self, weights: dict, *parts: dict | None) -> dict[str, np.ndarray]:
        """The batch (its parts joined) with ``target`` (B,) and ``targets_from`` (the update
        count of the weights used)."""
        if weights["updates"] != self.version:
            self.agent.load_target_state(weights)
            self.version = weights["updates"]
        batch = concat_batches(parts)
        batch["target"] = self.agent.targets(self.agent.batch_tensors(batch)).cpu().numpy().astype(np.float32)
        batch["targets_from"] = np.int64(self.version)
        return batch


class LearnerWorker(_Process):
    """The one learner (arm_policy.learner.Learner without a replay of its own)."""

    def __init__(self, run: str, cfg_dict: dict, settings: dict, labelled: bool):
        _one_thread()
        from arm_policy.agents.qtopt import QTOptConfig
        from arm_policy.learner import Learner, LearnerSettings

        self.run, self.labelled = Path(run), labelled
        self.progress: dict = {}
        # QT-Opt's agent is not built from demos; the learner only checks a demo's image size,
        # which the collectors' images have by the same config
        size = cfg_dict["image_size"]
        first = {"rgb": np.zeros((size, size, 3), np.uint8)}
        self.learner = Learner.start(
            "qtopt", QTOptConfig.from_dict(cfg_dict), [first], self.run,
            LearnerSettings(0, settings["checkpoint_every"], settings["keep_checkpoints"]),
            device=settings["device"], seed=settings["seed"], log_dir=self.run / "training",
            extra_state=lambda: {"progress": dict(self.progress)}, warn=print, replay=False)
        self.env = None

    def resumed(self) -> dict | None:
        """The checkpoint it started from: its update count and the run's progress then."""
        r = self.learner.resumed
        return None if r is None else {"updates": self.learner.updates, "progress": r.state.get("progress", {})}

    def set_progress(self, progress: dict) -> None:
        """The driver's counters, saved with the next checkpoint (for a resumed run)."""
        self.progress = progress

    def update(self, *parts: dict | None) -> dict[str, float]:
        """One update -> its scalar metrics. Labelled mode takes one labelled batch and refuses
        a batch without targets (none is trained without its Bellman updater's target)."""
        batch = concat_batches(parts)
        if self.labelled and "target" not in batch:
            raise ValueError("a batch reached the learner without its Bellman targets")
        batch.pop("targets_from", None)
        metrics = self.learner.update_on(batch)
        return {k: float(v) for k, v in metrics.items() if np.isscalar(v)} | {"updates": self.learner.updates}

    def weights(self) -> dict:
        return self.learner.agent.target_state()

    def evaluate(self, episodes: int) -> dict[str, float]:
        """Greedy grasps on the held-out scenes (arm_policy.train_qtopt.evaluate_grasps)."""
        from arm_policy.train_qtopt import evaluate_grasps
        from arm_sim.grasp_bin import GraspBinEnv

        if self.env is None:
            s = self.learner.agent.cfg.image_size
            self.env = GraspBinEnv(image_size=(s, s), max_steps=self.learner.agent.cfg.max_steps)
        return evaluate_grasps(self.env, self.learner.agent, episodes) | {"updates": self.learner.updates}

    def close(self) -> str | None:
        """The final checkpoint -> its path."""
        path = self.learner.close()
        if self.env is not None:
            self.env.close()
        return str(path) if path else None
