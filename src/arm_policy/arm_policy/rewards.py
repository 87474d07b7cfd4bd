"""The reward rule of an ARM episode, one definition for the in-process trainer and the ROS graph.

As the authors' code (stepjam/ARM, YARR): sparse +1 when the task succeeds after a pose, and the
episode ends; a pose the arm cannot execute (unreachable, collision, invalid, timeout) gives 0 and
ends the episode; otherwise 0 and go on, until the ``episode_length``-th pose, where the episode
is cut by its time limit: terminal for the episode, but not for learning (``timeout``: the
Bellman target bootstraps through it).
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["FAILURE_REWARD", "StepReward", "step_reward"]

#: reward of an unexecutable pose (authors: 0; a negative one dragged Q-attention's targets below 0)
FAILURE_REWARD = 0.0


class StepReward(NamedTuple):
    reward: float
    terminal: bool  # the episode ends here
    timeout: bool  # ... only because of its step limit (bootstrapped)


def step_reward(outcome: str, success: bool, step: int, episode_length: int) -> StepReward:
    """The reward of agent step ``step`` (0-based) whose pose ended with ``outcome``
    (``reached`` or why not) and left the task in ``success``."""
    if outcome != "reached":
        return StepReward(FAILURE_REWARD, True, False)
    if success:
        return StepReward(1.0, True, False)
    cut = step >= episode_length - 1
    return StepReward(0.0, cut, cut)
