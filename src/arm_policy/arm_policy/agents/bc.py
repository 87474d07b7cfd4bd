"""The paper's behaviour-cloning baseline on ARM's networks."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..networks import QAttention, crop
from .arm import ARMAgent

__all__ = ["BCAgent"]


class BCAgent(ARMAgent):
    """The paper's behaviour-cloning baseline: ARM's networks trained on the demo transitions
    only, by supervised learning. Q-attention is a classification over pixels (cross-entropy of
    each head's Q map as logits against the demo's next-keyframe pixel); the actor's mean pose
    regresses the demo action (``Actor.pose_error``, on the crop at the demo pixel). The critic
    is not trained. It acts like ARM (argmax pixel, mean pose)."""

    name = "bc"
    label = "BC (demos only)"
    learns_online = False

    def __init__(self, config, *args, **kwargs):
        if config.greedy_refine_samples > 1:
            raise ValueError("greedy_refine_samples needs a learned critic; behaviour cloning does "
                             "not train one (set it to 0 for BC)")
        super().__init__(config, *args, **kwargs)

    def update(self, batch: dict[str, np.ndarray], weights=None) -> dict[str, Any]:
        t = self.batch_tensors(batch)  # uniform: the demos are all there is, no priorities
        b = t["obs"].shape[0]
        q_map = self.attention(t["obs"], t["low_dim"])  # (B, 2, H, W)
        w = q_map.shape[-1]
        flat_pixel = (t["pixel"][:, 0] * w + t["pixel"][:, 1])[:, None].expand(b, 2)
        attention_loss = F.cross_entropy(q_map.flatten(2).transpose(1, 2), flat_pixel)
        self._step("q_attention", attention_loss, self.attention_opt, self._attention_params)
        crop_obs = crop(t["obs"], t["pixel"], self.cfg.crop_size)
        _, _, mean_action = self.actor(crop_obs, t["low_dim"], deterministic=True)
        actor_loss = self.actor.pose_error(mean_action, t["action"], self.actor.anchor(crop_obs)).mean()
        self._step("actor", actor_loss, self.actor_opt, self._actor_params)
        self._average_actor()
        self.updates += 1
        on_pixel = (QAttention.argmax_pixel(q_map.detach().min(dim=1).values) == t["pixel"]).all(1)
        return self._metrics({"bc_attention_loss": attention_loss, "bc_actor_loss": actor_loss,
                              "bc_attention_accuracy": on_pixel.float().mean()},
                             torch.ones(b, device=self.device))
