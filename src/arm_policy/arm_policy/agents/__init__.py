"""Agents and their registry: a checkpoint names its agent, and :func:`from_checkpoint` builds
that agent from it for every trainer, node and evaluation.

    from arm_policy.agents import AGENTS, from_checkpoint
    agent = from_checkpoint(torch.load(path), device="cpu")

Adding an agent: a module here with a subclass of :class:`base.Agent`, and one line in
``AGENTS``.
"""
from __future__ import annotations

from typing import Any

from .arm import ARMAgent
from .base import Agent, NumericalError, resolve_device
from .bc import BCAgent
from .sac import SACAgent

__all__ = ["AGENTS", "ARMAgent", "Agent", "BCAgent", "NumericalError", "SACAgent", "agent_class",
           "from_checkpoint", "resolve_device"]

#: registry name -> class
AGENTS: dict[str, type[Agent]] = {"arm": ARMAgent, "sac": SACAgent, "bc": BCAgent}


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise KeyError(f"unknown agent {name!r}; known: {', '.join(AGENTS)}")
    return AGENTS[name]


def from_checkpoint(state: dict[str, Any], device=None) -> Agent:
    """The agent a checkpoint's state names, restored (checkpoints from before the registry
    say ``method``, or nothing: ARM, or SAC where their config has no Q-attention)."""
    name = state.get("agent", state.get("method"))
    if name is None:
        name = "arm" if state["config"].get("q_attention", True) else "sac"
    return agent_class(name).from_state_dict(state, device)
