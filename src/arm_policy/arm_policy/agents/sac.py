"""The paper's SAC baseline: ARM's next-best-pose agent (actor, confidence-aware critic) on the
whole image, with no Q-attention. Its stand-in for Q-attention always "attends" to the image
centre, and the crop it cuts there is the whole image (``config.without_attention``)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..config import ARMConfig, without_attention
from .arm import ARMAgent

__all__ = ["CentreCrop", "SACAgent"]


class CentreCrop(nn.Module):
    """No parameters, no Q map: the chosen pixel is the image centre."""

    def forward(self, obs: torch.Tensor, low_dim: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = obs.shape
        return torch.tensor([h // 2, w // 2], device=obs.device).expand(b, 2)


class SACAgent(ARMAgent):
    name = "sac"
    label = "SAC (no Q-attention)"
    attends = False

    @classmethod
    def configure(cls, config: ARMConfig) -> ARMConfig:
        return without_attention(config)

    def _build_attention(self, cfg: ARMConfig) -> nn.Module:
        return CentreCrop()

    def _attend(self, obs, low_dim):
        """-> (an all-zero "Q map" (B, 1, H, W): nothing is valued, the centre pixels)."""
        return obs.new_zeros(obs.shape[0], 1, *obs.shape[-2:]), self.attention(obs)

    def _stored_pixels(self, batch: dict[str, np.ndarray], obs: torch.Tensor):
        centre = self.attention(obs)  # whatever pixel the transition stored
        return centre, centre

    def _attention_targets(self, t):
        return None

    def _learn_attention(self, t, y_att, metrics):
        return None
