"""What differs between the algorithms a distributed run trains; the actors (:mod:`.actors`) and
the driver (:mod:`.train`) are the same for all.

* :class:`Grasping` (``qtopt``): closed-loop grasps on the bin (arm_sim.grasp_bin). The offline
  data are scripted grasps in a replay server of their own (``replay-offline``), the agent's
  grasps go to ``replay-online``, and a batch mixes the two at ``replay_demo_fraction``; uniform
  sampling, as the paper's replay buffers.
* :class:`Keyframes` (``arm``, and its ``sac`` baseline): next-best-pose episodes on an arm_sim
  task. As in process (and the authors' YARR), the demos and the agent's own episodes share one
  prioritised replay (``replay-online``, the demos flagged); the learner's new priorities go back
  to it after every update.

Each says how to make its simulator, play one exploring episode, store an episode as a bag and
read it back, fill a new replay, and evaluate. Imports are local: a replay server of QT-Opt
never imports torch.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = ["Grasping", "Keyframes", "algorithm"]

#: the replay servers' actor names (in the run's Ray namespace)
OFFLINE, ONLINE = "replay-offline", "replay-online"


def algorithm(method: str, cfg_dict: dict, run: dict):
    """The algorithm of ``method`` with the agent config ``cfg_dict`` and the run's ``task``,
    ``episode_length``, ``demo_dir`` and ``demos`` (plain values: it travels to every actor)."""
    if method == "qtopt":
        return Grasping(cfg_dict, run)
    if method in Keyframes.METHODS:
        return Keyframes(method, cfg_dict, run)
    raise ValueError(f"arm train --distributed trains qtopt, {' or '.join(Keyframes.METHODS)}; not {method!r}")


class Grasping:
    method = "qtopt"
    replays = (OFFLINE, ONLINE)
    #: the learner's priorities go back to the replay (uniform here, as the paper's buffers)
    prioritised = False
    offline_replay = OFFLINE

    def __init__(self, cfg_dict: dict, run: dict):
        # the config as plain values: the rewards and sizes are all the replay needs, without torch
        self.cfg_dict, self.cfg, self.run = cfg_dict, SimpleNamespace(**cfg_dict), run

    def env(self):
        from arm_sim.grasp_bin import GraspBinEnv

        size = self.cfg.image_size
        return GraspBinEnv(image_size=(size, size), max_steps=self.cfg.max_steps, tray=self.run.get("tray", "full"))

    def play(self, env, agent, seed: int) -> tuple[Any, int, bool]:
        """One exploring grasp (CEM, epsilon-greedy) -> (its frames, env steps, success)."""
        from arm_policy.grasp_episodes import agent_observation, play_episode

        frames = play_episode(env, seed, lambda obs: agent.act(agent_observation(obs), True).action)
        return frames, len(frames) - 1, bool(frames[-2].success)

    def write(self, path: Path, episode) -> None:
        from arm_policy.grasp_episodes import write_grasp_episode

        write_grasp_episode(path, episode)

    def transitions(self, episode) -> tuple[list, bool]:
        from arm_policy.grasp_episodes import transitions_of

        return transitions_of(episode, self.cfg), bool(episode[-2].success)

    def read(self, bag: Path) -> tuple[list, bool]:
        from arm_policy.grasp_episodes import read_grasp_episode

        transitions = read_grasp_episode(bag, self.cfg)
        return transitions, bool(transitions and transitions[-1]["reward"] > 0)

    def new_replay(self, kind: str, seed: int):
        """An empty replay for ``kind`` (offline or online), and the transitions it starts with."""
        from arm_policy.replay import PrioritizedReplay

        return PrioritizedReplay(self.cfg.replay_capacity, alpha=0.0, seed=seed), []

    def learner_demos(self) -> list:
        """What the learner's agent is built from: QT-Opt needs no demos, only their image size."""
        import numpy as np

        size = self.cfg.image_size
        return [{"rgb": np.zeros((size, size, 3), np.uint8)}]

    def evaluate(self, env, agent, episodes: int, on_first_decision=None) -> dict[str, float]:
        from arm_policy.train_qtopt import evaluate_grasps

        return evaluate_grasps(env, agent, episodes)

    def close(self, env) -> None:
        env.close()


class Keyframes:
    METHODS = ("arm", "sac")
    replays = (ONLINE,)
    prioritised = True
    offline_replay = ONLINE  # the demos are in the one replay

    def __init__(self, method: str, cfg_dict: dict, run: dict):
        from arm_policy.config import ARMConfig  # a dataclass module: no torch

        self.method, self.cfg_dict, self.cfg, self.run = method, cfg_dict, ARMConfig.from_dict(cfg_dict), run

    def env(self):
        from arm_sim.environment import Environment

        size = self.cfg.image_size
        return Environment(image_size=(size, size), collision_checking=self.run.get(
            "collision_checking", True)).get_task(self.run["task"])

    def play(self, env, agent, seed: int) -> tuple[Any, int, bool]:
        """One exploring episode of next-best poses -> (its transitions, env steps, success)."""
        from arm_policy.rollout import SimRollout, run_episode

        transitions: list[dict] = []
        length = self.run["episode_length"]
        result = run_episode(SimRollout(env, agent, length), seed, True, length, on_transition=transitions.append)
        return (transitions, result.success), len(transitions), bool(result.success)

    def write(self, path: Path, episode) -> None:
        from arm_policy.episode_dataset import write_rollout_episode

        write_rollout_episode(path, episode[0])

    def transitions(self, episode) -> tuple[list, bool]:
        return episode

    def read(self, bag: Path) -> tuple[list, bool]:
        from arm_policy.episode_dataset import read_agent_episode

        transitions = read_agent_episode(bag)
        return transitions, bool(transitions and transitions[-1].reward > 0)

    def demos(self) -> list:
        from arm_policy.demo_dataset import load_demos

        return load_demos(self.run["demo_dir"], self.run["task"], episode_length=self.run["episode_length"],
                          max_episodes=self.run["demos"])

    def new_replay(self, kind: str, seed: int):
        """The prioritised replay of the run, and the demo transitions it starts with."""
        from arm_policy.agents.arm import arm_replay_fields
        from arm_policy.replay import PrioritizedReplay

        replay = PrioritizedReplay.from_config(self.cfg, seed=seed,
                                               fields=arm_replay_fields(self.cfg.image_size, self.cfg.low_dim_size))
        return replay, self.demos()

    def learner_demos(self) -> list:
        """The demo transitions: the agent's action bounds cover them."""
        return self.demos()

    def evaluate(self, env, agent, episodes: int, on_first_decision=None) -> dict[str, float]:
        from arm_policy.rollout import SimRollout, evaluate

        length = self.run["episode_length"]
        return evaluate(SimRollout(env, agent, length), episodes, length, on_first_decision=on_first_decision)

    def close(self, env) -> None:
        env.close()
