"""What every agent offers the trainers, the nodes and the evaluation: the one seam between an
algorithm and the rest of the stack (no ROS here).

An agent acts on one observation, learns from one replay batch, computes the Bellman targets of
a batch on their own (so a separate process can label batches), and saves and restores itself;
its checkpoints carry its ``name`` and config, and ``agents.from_checkpoint`` rebuilds the right
class from them.
"""
from __future__ import annotations

import abc
import contextlib
import copy
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn as nn

__all__ = ["Agent", "NumericalError", "PolicyOutput", "autocast", "check_amp", "frozen_copy",
           "native_cpu_bf16", "resolve_amp", "resolve_device", "soft_update"]


class PolicyOutput(NamedTuple):
    """What an agent's ``act`` returns for one observation. ``pixel`` and ``q_map`` are ARM's
    (Q-attention's argmax (row, col) and its map); an agent without attention (QT-Opt) leaves them
    None. (A rollout's ``rollout.Decision`` is this plus the observation and where it ran.)"""

    pixel: np.ndarray | None
    action: np.ndarray
    q_map: np.ndarray | None = None


class NumericalError(RuntimeError):
    """A loss, gradient or parameter of the agent became NaN/inf."""


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``cpu``, ``cuda`` (``cuda:N``) or ``auto``/None (CUDA when present) -> a torch device;
    asking for CUDA where there is none is a clear error, not a crash deep inside torch."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(name)!r} asked for, but this PyTorch "
                           f"({torch.__version__}) sees no CUDA GPU; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(name)!r}: choose cpu, cuda or auto")
    return device


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX). Without, oneDNN emulates
    it: bf16 autocast measured ~9x slower per ARM update than fp32 on an AVX2-only AMD EPYC."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def resolve_amp(amp: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where ``device`` computes bfloat16 natively (a CUDA GPU that
    supports it, a CPU with AVX-512 BF16 or AMX), else ``"off"``; other values pass through."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "off"
    return "bf16" if native_cpu_bf16() else "off"


def check_amp(amp: str, device: torch.device) -> None:
    """Refuse ``amp='bf16'`` on a CPU PyTorch without oneDNN; warn where it would be emulated."""
    if amp != "bf16" or device.type != "cpu":
        return
    if not torch.backends.mkldnn.is_available():
        raise RuntimeError("amp='bf16' on the CPU needs PyTorch built with oneDNN")
    if not native_cpu_bf16():
        warnings.warn(f"amp='bf16' on a CPU without native bfloat16 ({torch.backends.cpu.get_cpu_capability()}, "
                      "no AVX-512 BF16 or AMX) is emulated and much slower than fp32 (measured ~9x "
                      "per update on an AVX2 CPU): use amp='off' here", RuntimeWarning, stacklevel=3)


def autocast(amp: str, device: torch.device):
    """bfloat16 autocast of the forward passes when ``amp == 'bf16'`` (losses stay fp32)."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def frozen_copy(net: nn.Module) -> nn.Module:
    """A target network: a copy of ``net`` that no optimiser moves."""
    target = copy.deepcopy(net)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) target + tau net."""
    for p, tp in zip(net.parameters(), target.parameters()):
        tp.lerp_(p, tau)


class Agent(abc.ABC):
    """The interface; see the module docstring. Subclasses set ``cfg``, ``device`` and
    ``updates`` (gradient steps taken so far)."""

    cfg: Any
    device: torch.device
    updates: int
    #: whether its own episodes go into the replay (BC learns from the demos only)
    learns_online: bool = True
    #: how plots and reports name it
    label: str = ""
    #: the tasks it learns (None: the eight keyframe tasks of arm_sim.tasks)
    tasks: tuple[str, ...] | None = None

    @classmethod
    def preset_config(cls, preset: str) -> Any:
        """The config of the named preset (``cpu``: sized for this CPU; ``paper``: the authors')."""
        raise NotImplementedError(f"{cls.__name__} has no presets")

    @classmethod
    def configure(cls, config: Any) -> Any:
        """This agent's form of a preset's config (the SAC baseline drops Q-attention)."""
        return config

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The registry name, saved in checkpoints."""

    @abc.abstractmethod
    def act(self, obs: dict[str, Any], explore: bool) -> PolicyOutput:
        """One observation -> its :class:`PolicyOutput` (a tuple: ``pixel, action, q_map = ...``)."""

    @abc.abstractmethod
    def update(self, batch: dict[str, np.ndarray], weights=None) -> dict[str, Any]:
        """One gradient step on a replay batch -> float metrics + ``priorities`` (np.ndarray (B,))."""

    @abc.abstractmethod
    def replay_fields(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        """What one of its transitions holds: field name -> (shape, numpy dtype)."""

    @abc.abstractmethod
    def targets(self, t: dict[str, torch.Tensor]):
        """The Bellman targets of a batch of tensors, from the target networks only."""

    # what the distributed trainer (arm_distributed) needs besides; agents without it train in one process
    def target_state(self) -> dict[str, Any]:
        """The networks (CPU tensors), the config and the update count that acting and
        :meth:`targets` need, published to collectors and Bellman updaters in other processes."""
        raise NotImplementedError(f"{type(self).__name__} does not publish its networks")

    def load_target_state(self, state: dict[str, Any]) -> None:
        """Take the networks of a :meth:`target_state`."""
        raise NotImplementedError(f"{type(self).__name__} does not publish its networks")

    @classmethod
    def from_target_state(cls, state: dict[str, Any], device=None, seed: int | None = None) -> "Agent":
        """A new agent that acts and labels like the one that published ``state``."""
        raise NotImplementedError(f"{cls.__name__} does not publish its networks")

    def bellman_labels(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`targets` of a replay batch as arrays to attach to it; :meth:`update` trains on
        those instead of computing its own (a Bellman updater's labelled batch)."""
        raise NotImplementedError(f"{type(self).__name__} takes no targets from elsewhere")

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, with ``agent`` (the name) and ``config``."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @classmethod
    @abc.abstractmethod
    def from_demos(cls, config: Any, demos, device=None, seed: int | None = None) -> "Agent":
        """A new agent for ``config`` whose action bounds cover the demo transitions."""

    @classmethod
    @abc.abstractmethod
    def from_state_dict(cls, state: dict[str, Any], device=None) -> "Agent":
        """A new agent of this class restored from ``state``."""
