"""ARM agent: Q-attention (Eq. 5) -> crop -> next-best-pose SAC with a confidence-aware critic (Eq. 6).

``update`` reads top to bottom like the paper, on one prioritised batch:

1. Q-attention: y = r + gamma (1 - d) min_k Q'_k(s', argmax min_k Q_k(s', .))   (double DQN)
   L = w_is * [sum_k (Q_k(s, pixel) - y)^2 + lambda * 0.5 * sum_k sum_pixels Q_k(s)^2]
2. Critic on crops at the demo/stored pixel (next crop at the Q-attention's choice on s'):
   y = r + gamma (1 - d) (min_k Q'_k(s', a') - alpha log pi(a'|s')), a' ~ pi(s'),
   Q'_k taken at twin k's most confident pixel;
   L = w_is * sum_k mean_pixels[(Q_k,ij - y)^2 c_k,ij - w log c_k,ij]
3. Actor: L = w_is * (alpha log pi(a|s) - min_k Q_k(s, a)), Q at the most confident pixel;
   temperature: L_alpha = -log_alpha (log pi + target_entropy)
4. Polyak averaging of both target networks (tau).

Rewards are multiplied by ``reward_scale`` here (the replay holds raw rewards). New priorities
are the mean |TD| of the Q-attention and the critic (the replay applies alpha).
Any non-finite loss, gradient or parameter raises :class:`NumericalError` naming it, before the
optimiser step that would spread it.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ARMConfig
from .networks import Actor, ConfidenceCritic, QAttention, crop, obs_tensor

__all__ = ["ARMAgent", "NumericalError"]


class NumericalError(RuntimeError):
    """A loss, gradient or parameter of the agent became NaN/inf."""


def _soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, tau)


def _frozen_copy(net: nn.Module) -> nn.Module:
    target = copy.deepcopy(net)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


class ARMAgent:
    """Q-attention + next-best-pose agent. ``action_bounds``: (2, 3) xyz min/max from the demos."""

    def __init__(self, config: ARMConfig, action_bounds, device: str | torch.device | None = None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.cfg = config
        self.device = torch.device(device)
        self.action_bounds = np.asarray(action_bounds, dtype=np.float32).reshape(2, 3)
        cfg, dev = config, self.device

        self.attention = QAttention(cfg).to(dev)
        self.attention_target = _frozen_copy(self.attention)
        self.critic = ConfidenceCritic(cfg).to(dev)
        self.critic_target = _frozen_copy(self.critic)
        self.actor = Actor(cfg, self.action_bounds).to(dev)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=dev, requires_grad=True)

        self.attention_opt = torch.optim.Adam(self.attention.parameters(), lr=cfg.attention_lr,
                                              weight_decay=cfg.weight_decay)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr,
                                           weight_decay=cfg.weight_decay)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr,
                                          weight_decay=cfg.weight_decay)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # ------------------------------------------------------------------ helpers
    def _obs(self, rgb, point_cloud) -> torch.Tensor:
        rgb = torch.as_tensor(np.asarray(rgb), device=self.device)
        pc = torch.as_tensor(np.asarray(point_cloud), device=self.device)
        h, w = rgb.shape[1:3]
        if h != self.cfg.image_size or w != self.cfg.image_size:
            raise ValueError(f"images are {h}x{w}; this config expects "
                             f"{self.cfg.image_size}x{self.cfg.image_size}")
        return obs_tensor(rgb, pc)

    def _t(self, x, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

    @staticmethod
    def _check(name: str, value: torch.Tensor) -> None:
        if not bool(torch.isfinite(value).all()):
            raise NumericalError(f"non-finite {name}: {value.detach().flatten()[:4].tolist()}")

    def _step(self, name: str, loss: torch.Tensor, opt: torch.optim.Optimizer,
              params: list[torch.Tensor]) -> None:
        self._check(f"{name} loss", loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self._check(f"{name} gradient norm", grad_norm)
        opt.step()

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: dict[str, Any], explore: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One observation (``rgb`` (H, W, 3) uint8, ``point_cloud`` (H, W, 3), ``low_dim``) ->
        (pixel (2,) int64 (row, col), action (8,) float32, q_map (H, W) float32 = min of heads).

        The pixel is the Q-attention argmax; the pose is sampled (``explore``) or the policy mean.
        """
        x = self._obs(np.asarray(obs["rgb"])[None], np.asarray(obs["point_cloud"])[None])
        low_dim = self._t(obs["low_dim"])[None]
        q_map = self.attention(x, low_dim).min(dim=1).values
        pixel = QAttention.argmax_pixel(q_map)
        sample, _, mean = self.actor(crop(x, pixel, self.cfg.crop_size), low_dim,
                                     deterministic=not explore)
        action = sample if explore else mean
        return (pixel[0].cpu().numpy(), action[0].float().cpu().numpy(),
                q_map[0].float().cpu().numpy())

    # ------------------------------------------------------------------ learning
    def update(self, batch: dict[str, np.ndarray], weights=None) -> dict[str, Any]:
        """One gradient step of every part on a replay batch -> metrics (floats) + ``priorities``
        (np.ndarray (B,), mean |TD| of Q-attention and critic, for ``update_priorities``)."""
        cfg = self.cfg
        obs = self._obs(batch["rgb"], batch["point_cloud"])
        next_obs = self._obs(batch["next_rgb"], batch["next_point_cloud"])
        low_dim, next_low_dim = self._t(batch["low_dim"]), self._t(batch["next_low_dim"])
        pixel = self._t(batch["pixel"], torch.long)
        action = self._t(batch["action"])
        reward = cfg.reward_scale * self._t(batch["reward"])
        not_done = 1.0 - self._t(batch["terminal"])
        b = reward.shape[0]
        w_is = torch.ones(b, device=self.device) if weights is None else self._t(weights)

        # 1. Q-attention (double DQN on the next observation, Q regularisation) -------------
        with torch.no_grad():
            next_pixel = QAttention.argmax_pixel(self.attention(next_obs, next_low_dim).min(1).values)
            q_next = QAttention.at_pixel(self.attention_target(next_obs, next_low_dim),
                                         next_pixel).min(dim=1).values
            y_att = (reward + cfg.gamma * not_done * q_next).clamp(-cfg.q_clamp, cfg.q_clamp)
        q_map = self.attention(obs, low_dim)  # (B, 2, H, W)
        td_att = QAttention.at_pixel(q_map, pixel) - y_att[:, None]  # (B, 2)
        q_reg = cfg.q_reg_weight * 0.5 * q_map.pow(2).sum(dim=(1, 2, 3))
        attention_loss = (w_is * (td_att.pow(2).sum(1) + q_reg)).mean()
        self._step("q_attention", attention_loss, self.attention_opt,
                   list(self.attention.parameters()))

        # 2. confidence-aware critic on the crops ------------------------------------------
        crop_obs = crop(obs, pixel, cfg.crop_size)
        next_crop = crop(next_obs, next_pixel, cfg.crop_size)
        alpha = self.alpha.detach()
        with torch.no_grad():
            next_action, next_log_pi, _ = self.actor(next_crop, next_low_dim)
            q_t, c_t = self.critic_target(next_crop, next_low_dim, next_action)
            q_next_pose = ConfidenceCritic.best(q_t, c_t).min(dim=1).values
            y = reward + cfg.gamma * not_done * (q_next_pose - alpha * next_log_pi)
            y = y.clamp(-cfg.q_clamp, cfg.q_clamp)
        q, conf_logit = self.critic(crop_obs, low_dim, action)  # (B, 2, s, s) each
        bellman = (q - y[:, None, None, None]).pow(2)
        per_pixel = bellman * torch.sigmoid(conf_logit) - cfg.confidence_weight * F.logsigmoid(conf_logit)
        critic_loss = (w_is * per_pixel.mean(dim=(2, 3)).sum(dim=1)).mean()
        td_critic = ConfidenceCritic.best(q.detach(), conf_logit.detach()) - y[:, None]
        self._step("critic", critic_loss, self.critic_opt, list(self.critic.parameters()))

        # 3. actor (SAC) and temperature ------------------------------------------------------
        self.critic.requires_grad_(False)
        pi_action, log_pi, _ = self.actor(crop_obs, low_dim)
        q_pi = ConfidenceCritic.best(*self.critic(crop_obs, low_dim, pi_action)).min(dim=1).values
        actor_loss = (w_is * (alpha * log_pi - q_pi)).mean()
        self._step("actor", actor_loss, self.actor_opt, list(self.actor.parameters()))
        self.critic.requires_grad_(True)
        alpha_loss = -(self.log_alpha * (log_pi.detach() + cfg.target_entropy)).mean()
        self._step("alpha", alpha_loss, self.alpha_opt, [self.log_alpha])

        # 4. target networks -----------------------------------------------------------------
        _soft_update(self.attention, self.attention_target, cfg.tau)
        _soft_update(self.critic, self.critic_target, cfg.tau)
        self.updates += 1

        priorities = 0.5 * (td_att.detach().abs().mean(1) + td_critic.abs().mean(1))
        stats = torch.stack([attention_loss.detach(), critic_loss.detach(), actor_loss.detach(),
                             alpha_loss.detach(), self.alpha.detach(), q_reg.mean().detach(),
                             td_att.detach().abs().mean(), td_critic.abs().mean(),
                             torch.sigmoid(conf_logit.detach()).mean(), log_pi.detach().mean()])
        stats = stats.cpu().numpy()
        names = ("q_attention_loss", "critic_loss", "actor_loss", "alpha_loss", "alpha",
                 "q_reg", "q_attention_td", "critic_td", "confidence", "log_pi")
        metrics: dict[str, Any] = {k: float(v) for k, v in zip(names, stats)}
        metrics["priorities"] = priorities.cpu().numpy().astype(np.float64)
        return metrics

    def check_parameters(self) -> None:
        """Raise NumericalError if any parameter is non-finite (call before saving)."""
        for name, net in (("q_attention", self.attention), ("critic", self.critic),
                          ("actor", self.actor)):
            for pname, p in net.named_parameters():
                self._check(f"{name} parameter {pname}", p)
        self._check("log_alpha", self.log_alpha)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (nets, targets, optimisers, temperature, config)."""
        self.check_parameters()
        return {
            "config": self.cfg.to_dict(),
            "action_bounds": self.action_bounds.tolist(),
            "updates": self.updates,
            "attention": self.attention.state_dict(),
            "attention_target": self.attention_target.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor": self.actor.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "attention_opt": self.attention_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("attention", "attention_target", "critic", "critic_target", "actor"):
            getattr(self, key).load_state_dict(state[key])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"].to(self.device))
        for key in ("attention_opt", "critic_opt", "actor_opt", "alpha_opt"):
            getattr(self, key).load_state_dict(state[key])
        self.updates = int(state.get("updates", 0))

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device=None) -> "ARMAgent":
        agent = cls(ARMConfig.from_dict(state["config"]), state["action_bounds"], device)
        agent.load_state_dict(state)
        return agent
