"""Agents and their registry: a checkpoint names its agent, and :func:`from_checkpoint` builds
that agent from it for every trainer, node and evaluation.

    from arm_policy.agents import AGENTS, from_checkpoint
    agent = from_checkpoint(torch.load(path), device="cpu")

Adding an agent: a module here with a subclass of :class:`base.Agent`, and one line in
``AGENTS``. The registry names its classes as ``"module:Class"`` strings, imported on first use,
so the names are known (command-line help, settings checks) without importing torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Agent

__all__ = ["AGENTS", "ARMAgent", "Agent", "BCAgent", "NumericalError", "PolicyOutput", "SACAgent", "agent_class",
           "agent_config", "from_checkpoint", "resolve_device"]

#: registry name -> the agent's class (or "module:Class" under arm_policy.agents, imported on use)
AGENTS: dict[str, Any] = {
    "arm": "arm:ARMAgent",
    "sac": "sac:SACAgent",
    "bc": "bc:BCAgent",
    "qtopt": "qtopt.agent:QTOptAgent",
}

#: re-exported lazily (PEP 562): importing the package does not import torch
_LAZY = {"Agent": "base", "NumericalError": "base", "PolicyOutput": "base", "resolve_device": "base",
         "ARMAgent": "arm", "SACAgent": "sac", "BCAgent": "bc"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def agent_class(name: str):
    """The registered agent class of ``name``; KeyError listing the known ones."""
    if name not in AGENTS:
        raise KeyError(f"unknown agent {name!r}; known: {', '.join(AGENTS)}")
    entry = AGENTS[name]
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = getattr(importlib.import_module(f".{module}", __name__), cls)
    return entry


def agent_config(preset_name: str, overrides: dict[str, Any] | None = None, agent: str = "arm"):
    """The config a run of ``agent`` trains: its preset, the overrides, and the agent's form of
    it. ValueError names an unknown preset or agent, an unknown field or a bad value."""
    import dataclasses

    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; choose from {', '.join(AGENTS)}")
    cls = agent_class(agent)
    try:
        base = cls.preset_config(preset_name)
    except KeyError as err:
        raise ValueError(str(err).strip('"')) from None
    overrides = dict(overrides or {})
    known = sorted(f.name for f in dataclasses.fields(base))
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"agent_overrides: unknown {type(base).__name__} field(s) {unknown}; "
                         f"the fields are {known}")
    try:
        cfg = dataclasses.replace(base, **overrides)
    except (TypeError, ValueError) as err:  # a value of the wrong type or out of range
        raise ValueError(f"agent_overrides {overrides}: {err}") from None
    return cls.configure(cfg)


def from_checkpoint(state: dict[str, Any], device=None) -> "Agent":
    """The agent a checkpoint's state names, restored (checkpoints from before the registry
    say ``method``, or nothing: ARM, or SAC where their config has no Q-attention)."""
    name = state.get("agent", state.get("method"))
    if name is None:
        name = "arm" if state["config"].get("q_attention", True) else "sac"
    return agent_class(name).from_state_dict(state, device)
