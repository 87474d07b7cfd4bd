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

__all__ = ["AGENTS", "ARMAgent", "Agent", "BCAgent", "NumericalError", "agent_class",
           "from_checkpoint", "resolve_device"]

#: registry name -> class; ``sac`` is ARM's class without Q-attention (its config says so)
AGENTS: dict[str, type[Agent]] = {"arm": ARMAgent, "sac": ARMAgent, "bc": BCAgent}


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise KeyError(f"unknown agent {name!r}; known: {', '.join(AGENTS)}")
    return AGENTS[name]


def from_checkpoint(state: dict[str, Any], device=None) -> Agent:
    """The agent a checkpoint's state names, restored (checkpoints from before the registry
    say ``method``, or nothing: ARM)."""
    return agent_class(state.get("agent", state.get("method", "arm"))).from_state_dict(state, device)
