"""ARM's networks kept and handed on: the checkpoint (:meth:`state_dict`, everything to resume)
and the target state (:meth:`target_state`, what acting and labelling read, for collectors and
Bellman updaters in other processes). A part of :class:`~arm_policy.agents.arm.ARMAgent` (and so
of its SAC and BC baselines), kept apart from its learning."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..config import ARMConfig

if TYPE_CHECKING:
    from .arm import ARMAgent

__all__ = ["ARMState"]


class ARMState:
    """Saving, restoring and publishing :class:`~arm_policy.agents.arm.ARMAgent`'s networks."""

    # ------------------------------------------------------------------ target networks elsewhere
    #: what acting (:meth:`act`) and labelling (:meth:`targets`) read: the online Q-attention (the
    #: argmax of both), its target, the actor (a' ~ pi) and its average where greedy decisions
    #: use one, the critic's target and the temperature
    _PUBLISHED = ("attention", "attention_target", "actor", "actor_average", "critic_target")

    def target_state(self) -> dict[str, Any]:
        """The networks (CPU tensors) and the update count that acting and labelling need, for
        collectors and Bellman updaters in other processes; with the action bounds, which an
        agent there is built with (:meth:`from_target_state`)."""
        return {"agent": self.name, "updates": self.updates, "config": self.cfg.to_dict(), "action_bounds": self.action_bounds.tolist(),
                "log_alpha": self.log_alpha.detach().cpu().clone(),
                **{name: {k: v.detach().cpu() for k, v in getattr(self, name).state_dict().items()}
                   for name in self._PUBLISHED if getattr(self, name) is not None}}

    def load_target_state(self, state: dict[str, Any]) -> None:
        """Take the published networks of :meth:`target_state` (the optimisers stay)."""
        for name in self._PUBLISHED:
            part = getattr(self, name)
            if part is not None and part.state_dict():  # the SAC baseline's centre crop has none
                part.load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"].to(self.device))
        self.updates = int(state["updates"])

    @classmethod
    def from_target_state(cls, state: dict[str, Any], device=None, seed: int | None = None) -> "ARMAgent":
        """An agent that acts and labels like the one that published ``state``."""
        agent = cls(ARMConfig.from_dict(state["config"]), state["action_bounds"], device, seed)
        agent.load_target_state(state)
        return agent

    _NETS = ("attention", "attention_target", "critic", "critic_target", "actor", "actor_average")
    _OPTIMISERS = ("attention_opt", "critic_opt", "actor_opt", "alpha_opt")

    def check_parameters(self) -> None:
        """Raise NumericalError if any parameter is non-finite (call before saving)."""
        self._deferred_checks = None  # always at once, whatever an interrupted update left
        for name in ("attention", "critic", "actor"):
            for pname, p in getattr(self, name).named_parameters():
                self._check(f"{name} parameter {pname}", p)
        self._check("log_alpha", self.log_alpha)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (nets, targets, optimisers, temperature, config)."""
        self.check_parameters()
        state: dict[str, Any] = {"agent": self.name, "config": self.cfg.to_dict(),
                                 "action_bounds": self.action_bounds.tolist(),
                                 "updates": self.updates, "log_alpha": self.log_alpha.detach().clone()}
        for key in self._NETS + self._OPTIMISERS:
            part = getattr(self, key)
            if part is not None:
                state[key] = part.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._NETS + self._OPTIMISERS:
            part = getattr(self, key)
            if part is not None and part.state_dict():  # a stand-in without state has none saved
                part.load_state_dict(state[key])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"].to(self.device))
        self.updates = int(state.get("updates", 0))

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device=None) -> "ARMAgent":
        agent = cls(ARMConfig.from_dict(state["config"]), state["action_bounds"], device,
                    camera_position=state["actor"].get("camera_position"))
        agent.load_state_dict(state)
        return agent
