"""ARM agent: Q-attention (Eq. 5) -> crop -> next-best-pose SAC with a confidence-aware critic (Eq. 6).

``update`` reads top to bottom like the paper and the authors' code (stepjam/ARM), on one
prioritised batch; H is the Huber loss, b = 0 where the episode ended (a timeout is no end:
it bootstraps), r the reward x ``reward_scale``:

1. Q-attention: y = clamp(max(r, 0) + gamma b min_k Q'_k(s', argmax min_k Q_k(s', .)), 0, 100)
   L = mean_batch w_is sum_k H(Q_k(s, pixel) - y) + lambda * 0.5 * sum_batch,k,pixels Q_k(s)^2
       + demo_attention_weight * mean_demos sum_k [logsumexp_pixels Q_k(s) - Q_k(s, demo pixel)]
2. Critic on the crop at the stored pixel; the next crop at the stored *next* pixel (the next
   decision's, for a demo the next keyframe's), per-pixel targets:
   y_ij = r + gamma b (min_k Q'_k,ij(s', a') - alpha log pi(a'|s')), a' ~ pi(s')
   L = mean_batch w_is sum_k mean_ij[H(Q_k,ij - y_ij) c_k,ij - w log c_k,ij]
3. Actor: L = w_is * (alpha log pi(a|s) - min_k Q_k(s, a)), Q at each twin's most confident pixel,
   + demo_actor_weight * mean|Q| * mean_demos |mean_pi(s) - a_demo|^2 (normalised action space);
   with ``alpha_auto_tune`` the temperature: L_alpha = -log_alpha (log pi + target_entropy)
4. Polyak averaging of both target networks (tau).

Gradients are clipped by value (``grad_clip``). The demo terms are off in the ``paper`` preset
(see config.CPU_DIFFERENCES for why ``cpu`` uses them); with ``imitate_successes`` "demos" are
the demo transitions and every transition of the agent's successful episodes (the replay's
``success`` flag). The paper's SAC baseline (``agents/sac.py``) replaces Q-attention by a
centred whole-image crop; BC (``agents/bc.py``) trains the same networks by supervision.

Rewards are multiplied by ``reward_scale`` here (the replay holds raw rewards). New priorities
are the mean |TD| of the Q-attention and the critic (the replay applies alpha).
Any non-finite loss, gradient or parameter raises :class:`NumericalError` naming it, before the
optimiser step that would spread it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..camera_ray import camera_centre, ray_reaches_box
from ..config import ARMConfig
from ..demo_dataset import action_bounds, relative_xyz_range
from ..networks import Actor, ConfidenceCritic, QAttention, crop, obs_tensor
from .arm_state import ARMState
from .base import (Agent, NumericalError, PolicyOutput, autocast, check_amp, frozen_copy, resolve_amp,
                   resolve_device, soft_update)

__all__ = ["ARMAgent", "arm_replay_fields"]


_part = torch.profiler.record_function  # a named range in torch.profiler traces, ~free otherwise


def arm_replay_fields(image_size: int, low_dim_size: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """What an ARM transition stores: the observation and the next one (RGB uint8, point cloud
    float16 with NaN where no depth, low-dim state), the attended pixel of each decision, the
    8-D action, the reward and how the step ended."""
    image, cloud = ((image_size, image_size, 3), np.uint8), ((image_size, image_size, 3), np.float16)
    low_dim, pixel, flag = ((low_dim_size,), np.float32), ((2,), np.int64), ((), np.bool_)
    return {"rgb": image, "point_cloud": cloud, "low_dim": low_dim, "pixel": pixel,
            "action": ((8,), np.float32), "reward": ((), np.float32), "terminal": flag,
            "timeout": flag, "next_rgb": image, "next_point_cloud": cloud, "next_low_dim": low_dim,
            "next_pixel": pixel}


class ARMAgent(ARMState, Agent):
    """Q-attention + next-best-pose agent. ``action_bounds``: (2, 3) xyz min/max from the demos;
    ``relative_range``: (3,) the relative actor's reach per axis (default: the config's on every
    axis); ``camera_position`` (3,): for the camera-ray offset frame; :meth:`from_demos` measures
    all three. ``seed`` seeds torch (initial weights, then the exploration noise) for a
    repeatable run."""

    name = "arm"
    label = "ARM"

    def __init__(self, config: ARMConfig, action_bounds, device: str | torch.device | None = None,
                 seed: int | None = None, relative_range=None, camera_position=None):
        if seed is not None:
            torch.manual_seed(seed)
        self.cfg = config
        self.device = resolve_device(device)
        self.action_bounds = np.asarray(action_bounds, dtype=np.float32).reshape(2, 3)
        cfg, dev = config, self.device

        if cfg.q_attention != self.attends:
            raise ValueError(f"{type(self).__name__} needs q_attention={self.attends} in its config"
                             + ("" if self.attends else " (config.without_attention)"))
        self.attention = self._build_attention(cfg).to(dev)
        self.attention_target = frozen_copy(self.attention)
        self.critic = ConfidenceCritic(cfg).to(dev)
        self.critic_target = frozen_copy(self.critic)
        self.actor = Actor(cfg, self.action_bounds, relative_range, camera_position).to(dev)
        #: what greedy decisions use (``actor_average_tau``), or None: the actor itself
        self.actor_average = frozen_copy(self.actor) if cfg.actor_average_tau > 0 else None
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=dev, requires_grad=True)

        self._attention_params = list(self.attention.parameters())
        self._optimisers: dict[str, torch.optim.Optimizer | None] | None = None  # made on first use
        self._critic_params = list(self.critic.parameters())
        self._actor_params = list(self.actor.parameters())
        self.updates = 0
        self._deferred_checks: list[tuple[str, torch.Tensor]] | None = None
        #: the autocast actually used: cfg.amp with "auto" decided for this device
        self.amp = resolve_amp(cfg.amp, self.device)
        check_amp(self.amp, self.device)

    def _optimiser(self, name: str) -> torch.optim.Optimizer | None:
        """The optimisers, made when training (or a checkpoint) first needs one: an agent that
        only acts or labels (a collector, a Bellman updater, the policy node) never builds them,
        and the first optimizer of a process imports torch._dynamo, over a second of start-up."""
        if self._optimisers is None:
            cfg = self.cfg
            self._optimisers = {
                "attention_opt": torch.optim.Adam(self._attention_params, lr=cfg.attention_lr,
                                                  weight_decay=cfg.weight_decay) if self._attention_params else None,
                "critic_opt": torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, weight_decay=cfg.weight_decay),
                "actor_opt": torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.weight_decay),
                "alpha_opt": torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)}
        return self._optimisers[name]

    attention_opt = property(lambda self: self._optimiser("attention_opt"))
    critic_opt = property(lambda self: self._optimiser("critic_opt"))
    actor_opt = property(lambda self: self._optimiser("actor_opt"))
    alpha_opt = property(lambda self: self._optimiser("alpha_opt"))

    def _autocast(self):
        return autocast(self.amp, self.device)

    @classmethod
    def from_demos(cls, config: ARMConfig, demos, device=None, seed: int | None = None) -> "ARMAgent":
        """A new agent whose action bounds and relative reach cover the demo transitions."""
        demos = list(demos)
        ray = config.actor_offset_frame == "camera_ray"
        camera = camera_centre(t.point_cloud for t in demos[:8]) if ray or config.anchor_window > 1 else None
        return cls(config, action_bounds(demos), device, seed, camera_position=camera,
                   relative_range=relative_xyz_range(demos, config.relative_xyz_range,
                                                     camera=camera if ray else None,
                                                     lateral_minimum=config.relative_lateral_range,
                                                     anchor_window=config.anchor_window, anchor_camera=camera))

    def replay_fields(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return arm_replay_fields(self.cfg.image_size, self.cfg.low_dim_size)

    @classmethod
    def preset_config(cls, preset: str) -> ARMConfig:
        from ..config import preset as arm_preset

        return arm_preset(preset)

    @property
    def alpha(self) -> torch.Tensor:
        """The SAC temperature: ``init_alpha`` unless ``alpha_auto_tune`` moves it."""
        return self.log_alpha.exp()

    # ------------------------------------------------------------------ helpers
    def _obs(self, rgb, point_cloud) -> torch.Tensor:
        rgb = self._to_device(torch.as_tensor(np.asarray(rgb)))
        pc = self._to_device(torch.as_tensor(np.asarray(point_cloud)))
        h, w = rgb.shape[1:3]
        if h != self.cfg.image_size or w != self.cfg.image_size:
            raise ValueError(f"images are {h}x{w}; this config expects "
                             f"{self.cfg.image_size}x{self.cfg.image_size}")
        return obs_tensor(rgb, pc)

    def _t(self, x, dtype=torch.float32) -> torch.Tensor:
        return self._to_device(torch.as_tensor(np.asarray(x), dtype=dtype))

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """Host tensor -> the agent's device; to a GPU through pinned memory, without waiting."""
        if self.device.type != "cuda":
            return x
        return x.pin_memory().to(self.device, non_blocking=True)

    #: Q-attention chooses the crop (False: :class:`~arm_policy.agents.sac.SACAgent`)
    attends = True

    def _build_attention(self, cfg: ARMConfig) -> nn.Module:
        return QAttention(cfg)

    def _attend(self, obs: torch.Tensor, low_dim: torch.Tensor):
        """-> (per-pixel Q (B, 2, H, W), chosen pixels (B, 2)): the argmax inside the workspace."""
        q = self.attention(obs, low_dim)
        return q, QAttention.argmax_pixel(self._in_workspace(q.min(dim=1).values, obs))

    def _stored_pixels(self, batch: dict[str, np.ndarray], obs: torch.Tensor):
        """The batch's (pixel, next_pixel) as tensors: where the crop and the next crop are cut."""
        return self._t(batch["pixel"], torch.long), self._t(batch["next_pixel"], torch.long)

    @torch.no_grad()
    def _attention_targets(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q-attention's y (B,): double DQN on s' from the rewards >= 0, clamped to [0, q_clamp]."""
        cfg = self.cfg
        _, next_choice = self._attend(t["next_obs"], t["next_low_dim"])
        q_next = QAttention.at_pixel(self.attention_target(t["next_obs"], t["next_low_dim"]),
                                     next_choice).float().min(dim=1).values
        return (t["reward"].clamp_min(0.0) + cfg.gamma * t["bootstrap"] * q_next).clamp(0.0, cfg.q_clamp)

    def _learn_attention(self, t, y_att, metrics) -> torch.Tensor:
        """One Q-attention step -> its |TD| (B,) for the priorities."""
        with _part("q_attention/forward"), self._autocast():
            attention_loss, td_att = self._attention_loss(t, y_att, metrics)
        with _part("q_attention/backward_step"):
            self._step("q_attention", attention_loss, self.attention_opt, self._attention_params)
        return td_att

    def _in_workspace(self, q: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """(B, H, W) Q with pixels outside the widened action bounds at -inf
        (``attention_workspace_margin``); an image without any such pixel is left as it is.
        Each axis widens to at least the demos' reach (``relative_range``, for either actor form):
        a free-space keyframe's pixel lies on what is behind it, and must stay attendable. In the
        camera-ray frame a pixel qualifies when its ray meets the bounds within the reach along it."""
        margin = self.cfg.attention_workspace_margin
        if margin < 0:
            return q
        reach = self.actor.relative_range.to(obs.device)
        bounds = torch.as_tensor(self.action_bounds, device=obs.device)
        points, valid = obs[:, 3:6], obs[:, 6] > 0  # obs_tensor's layout: rgb, xyz, validity
        if self.actor.ray_frame:  # reach along the pixel's ray, and a little across it
            margin = reach[:2].max().clamp_min(margin)  # tensors: no host sync inside an update
            inside = valid & ray_reaches_box(points, self.actor.camera_position, reach[2],
                                             bounds[0] - margin, bounds[1] + margin)
        else:
            margin = torch.maximum(torch.full((3,), float(margin), device=obs.device), reach)
            lo, hi = (bounds[0] - margin)[None, :, None, None], (bounds[1] + margin)[None, :, None, None]
            inside = valid & ((points >= lo) & (points <= hi)).all(dim=1)
        inside = inside | ~inside.flatten(1).any(dim=1)[:, None, None]
        return q.masked_fill(~inside, float("-inf"))

    def _check(self, name: str, value: torch.Tensor) -> None:
        """NumericalError if ``value`` is not all finite. Inside an update on a GPU the check is
        deferred to the update's one device sync (:meth:`_metrics`): the optimiser steps of that
        update may then already have taken the NaN in, but the error still stops training before
        any checkpoint is written from those weights (``state_dict`` checks every parameter)."""
        if self._deferred_checks is not None:
            self._deferred_checks.append((name, torch.isfinite(value.detach()).all(), value.detach()))
        elif not bool(torch.isfinite(value).all()):
            raise NumericalError(f"non-finite {name}: {value.detach().flatten()[:4].tolist()}")

    def _raise_deferred(self) -> None:
        checks, self._deferred_checks = self._deferred_checks or [], None
        if checks:
            finite = torch.stack([ok for _, ok, _ in checks]).cpu().tolist()
            for (name, _, value), ok in zip(checks, finite):
                if not ok:
                    raise NumericalError(f"non-finite {name}: {value.flatten()[:4].tolist()}")

    def _step(self, name: str, loss: torch.Tensor, opt: torch.optim.Optimizer,
              params: list[torch.Tensor]) -> None:
        self._check(f"{name} loss", loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # the norm (not clipped) only to catch NaN/inf before they reach the weights
        self._check(f"{name} gradient norm", nn.utils.clip_grad_norm_(params, float("inf")))
        nn.utils.clip_grad_value_(params, self.cfg.grad_clip)
        opt.step()

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: dict[str, Any], explore: bool) -> PolicyOutput:
        """One observation (``rgb`` (H, W, 3) uint8, ``point_cloud`` (H, W, 3), ``low_dim``) ->
        PolicyOutput(pixel (2,) int64 (row, col), action (8,) float32, q_map (H, W) float32 = min
        of the heads).

        The pixel is the Q-attention argmax; the pose is sampled (``explore``) or the policy mean
        (of the actor's Polyak average with ``actor_average_tau``).
        """
        x = self._obs(np.asarray(obs["rgb"])[None], np.asarray(obs["point_cloud"])[None])
        low_dim = self._t(obs["low_dim"])[None]
        with self._autocast():
            q, pixel = self._attend(x, low_dim)
        q_map = q.min(dim=1).values[0]
        actor = self.actor if explore or self.actor_average is None else self.actor_average
        with self._autocast():
            sample, _, mean = actor(crop(x, pixel, self.cfg.crop_size), low_dim,
                                         deterministic=not explore,
                                         noise_scale=self.cfg.exploration_noise_scale)
        action = sample if explore else mean
        if not explore and self.cfg.greedy_refine_samples > 1:
            action = self._refined(crop(x, pixel, self.cfg.crop_size), low_dim, mean)
        return PolicyOutput(pixel[0].cpu().numpy(), action[0].float().cpu().numpy(),
                        q_map.float().cpu().numpy())

    def _refined(self, crop_obs: torch.Tensor, low_dim: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """``greedy_refine_samples``: of the actor's mean (1, 8) and poses moved from it across
        xyz by the fixed offsets (inside the action bounds), the one the critic values most."""
        k, cm = self.cfg.greedy_refine_samples, self.cfg.greedy_refine_cm
        offsets = torch.randn(k, 3, generator=torch.Generator().manual_seed(0)) * (cm / 100.0)
        offsets[0] = 0.0  # the mean itself is a candidate
        low, high = (torch.as_tensor(b, device=self.device) for b in self.action_bounds)
        poses = mean.float().repeat(k, 1)
        poses[:, :3] = torch.clamp(poses[:, :3] + offsets.to(self.device), low, high)
        with self._autocast():
            q = ConfidenceCritic.best(*self.critic(crop_obs.expand(k, -1, -1, -1), low_dim.expand(k, -1), poses))
        return poses[q.float().min(dim=1).values.argmax()][None]

    # ------------------------------------------------------------------ learning
    def batch_tensors(self, batch: dict[str, np.ndarray], weights=None) -> dict[str, torch.Tensor]:
        """A replay batch as tensors: observations, pixels (centred without Q-attention), the
        scaled reward, ``bootstrap`` (0 where the episode really ended; a timeout is not an end),
        importance weights and the ``demo`` mask (with ``imitate_successes``: also every
        transition of a successful episode)."""
        obs = self._obs(batch["rgb"], batch["point_cloud"])
        next_obs = self._obs(batch["next_rgb"], batch["next_point_cloud"])
        b = obs.shape[0]
        terminal = self._t(batch["terminal"])
        timeout = self._t(batch["timeout"]) if "timeout" in batch else torch.zeros_like(terminal)
        demo = self._t(batch["demo"]) if "demo" in batch else torch.zeros(b, device=self.device)
        if self.cfg.imitate_successes and "success" in batch:
            demo = torch.maximum(demo, self._t(batch["success"]))
        pixel, next_pixel = self._stored_pixels(batch, obs)
        return {"obs": obs, "next_obs": next_obs, "low_dim": self._t(batch["low_dim"]),
                "next_low_dim": self._t(batch["next_low_dim"]), "pixel": pixel,
                "next_pixel": next_pixel, "action": self._t(batch["action"]),
                "reward": self.cfg.reward_scale * self._t(batch["reward"]),
                "bootstrap": 1.0 - terminal * (1.0 - timeout),
                "w_is": torch.ones(b, device=self.device) if weights is None else self._t(weights),
                "demo": demo}

    @torch.no_grad()
    def targets(self, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The Bellman targets of a batch (:meth:`batch_tensors`), from the target networks:
        (Q-attention's y (B,), see :meth:`_attention_targets`, or None without Q-attention, and the
        critic's per-pixel y (B, s, s)).

        Critic: r + gamma b (min_k Q'_k,ij(s', a') - alpha log pi(a'|s')) on the crop of s' at the
        stored next pixel, a' ~ pi on that crop."""
        cfg, reward, bootstrap = self.cfg, t["reward"], t["bootstrap"]
        with self._autocast():
            y_att = self._attention_targets(t)
            next_crop = crop(t["next_obs"], t["next_pixel"], cfg.crop_size)
            next_action, next_log_pi, _ = self.actor(next_crop, t["next_low_dim"])
            q_t, _ = self.critic_target(next_crop, t["next_low_dim"], next_action)  # (B, 2, s, s)
        next_value = q_t.float().min(dim=1).values - self.alpha * next_log_pi.float()[:, None, None]
        return y_att, reward[:, None, None] + cfg.gamma * bootstrap[:, None, None] * next_value

    def update(self, batch: dict[str, np.ndarray], weights=None) -> dict[str, Any]:
        """One gradient step of every part on a replay batch -> metrics (floats) + ``priorities``
        (np.ndarray (B,), mean |TD| of Q-attention and critic, for ``update_priorities``).
        Each part runs in a ``torch.profiler`` range of its name (``bench_learning --only profile``)."""
        with _part("batch_to_tensors"):
            t = self.batch_tensors(batch, weights)
        # on a GPU no host sync until the metrics are read
        self._deferred_checks = [] if self.device.type == "cuda" else None
        metrics: dict[str, Any] = {}
        with _part("targets"):  # from the target networks, before any part moves
            y_att, y = self._labels(batch) if "target" in batch else self.targets(t)
        td_att = self._learn_attention(t, y_att, metrics)
        with _part("critic/forward"), self._autocast():
            crop_obs = crop(t["obs"], t["pixel"], self.cfg.crop_size)
            critic_loss, td_critic = self._critic_loss(t, crop_obs, y, metrics)
        with _part("critic/backward_step"):
            self._step("critic", critic_loss, self.critic_opt, self._critic_params)
        self.critic.requires_grad_(False)
        with _part("actor/forward"), self._autocast():
            actor_loss, log_pi = self._actor_loss(t, crop_obs, metrics)
        with _part("actor/backward_step"):
            self._step("actor", actor_loss, self.actor_opt, self._actor_params)
            self._average_actor()
        self.critic.requires_grad_(True)
        if self.cfg.alpha_auto_tune:
            with _part("alpha"):
                self._step("alpha", self._alpha_loss(log_pi, metrics), self.alpha_opt, [self.log_alpha])
        with _part("target_networks"):
            soft_update(self.attention, self.attention_target, self.cfg.tau)
            soft_update(self.critic, self.critic_target, self.cfg.tau)
        self.updates += 1
        priorities = td_critic if td_att is None else 0.5 * (td_att + td_critic)
        with _part("metrics_sync"):
            return self._metrics(metrics, priorities)

    def _average_actor(self) -> None:
        """After each actor step: the Polyak average greedy decisions use (``actor_average_tau``)."""
        if self.actor_average is not None:
            soft_update(self.actor, self.actor_average, self.cfg.actor_average_tau)

    def _labels(self, batch: dict[str, np.ndarray]) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The targets a Bellman updater attached (:meth:`bellman_labels`), as tensors."""
        y = self._t(batch["target"])
        self._check("batch field 'target'", y)
        y_att = self._t(batch["target_attention"]) if "target_attention" in batch else None
        if y_att is not None:
            self._check("batch field 'target_attention'", y_att)
        return y_att, y

    def bellman_labels(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch's targets as arrays to attach to it (a Bellman updater's work): ``target``
        (B, s, s), the critic's per-pixel y, and ``target_attention`` (B,) with Q-attention."""
        y_att, y = self.targets(self.batch_tensors(batch))
        out = {"target": y.float().cpu().numpy()}
        if y_att is not None:
            out["target_attention"] = y_att.float().cpu().numpy()
        return out

    def _attention_loss(self, t, y_att, metrics):
        """Eq. 5 with the authors' Huber and Q regularisation (+ the optional demo margin)
        -> (loss, |TD| (B,))."""
        cfg, w_is, demo = self.cfg, t["w_is"], t["demo"]
        q_map = self.attention(t["obs"], t["low_dim"]).float()  # (B, 2, H, W)
        q_pixel = QAttention.at_pixel(q_map, t["pixel"])  # (B, 2)
        bellman = F.smooth_l1_loss(q_pixel, y_att[:, None].expand_as(q_pixel), reduction="none").sum(1)
        q_reg = cfg.q_reg_weight * 0.5 * q_map.pow(2).sum()  # over the batch, as the authors
        loss = (w_is * bellman).mean() + q_reg
        if cfg.demo_attention_weight:
            # the demo pixel must win the softmax over all pixels (both heads)
            margin = (torch.logsumexp(q_map.flatten(2), dim=2) - q_pixel).sum(1)
            attention_demo = (demo * margin).sum() / demo.sum().clamp_min(1.0)
            loss = loss + cfg.demo_attention_weight * attention_demo
            metrics["q_attention_demo"] = attention_demo
        td = (q_pixel.detach() - y_att[:, None]).abs().mean(1)
        metrics.update(q_attention_loss=loss, q_reg=q_reg, q_attention_td=td.mean())
        return loss, td

    def _critic_loss(self, t, crop_obs, y, metrics):
        """Eq. 6: the confidence-aware twin critic on the crop at the stored pixel, per-pixel
        Huber against the per-pixel targets -> (loss, |TD| (B,))."""
        q, conf_logit = self.critic(crop_obs, t["low_dim"], t["action"])  # (B, 2, s, s) each
        q, conf_logit = q.float(), conf_logit.float()
        bellman = F.smooth_l1_loss(q, y[:, None].expand_as(q), reduction="none")
        per_pixel = bellman * torch.sigmoid(conf_logit) - self.cfg.confidence_weight * F.logsigmoid(conf_logit)
        loss = (t["w_is"] * per_pixel.mean(dim=(2, 3)).sum(dim=1)).mean()
        td = (q.detach() - y[:, None]).abs().mean(dim=(1, 2, 3))
        metrics.update(critic_loss=loss, critic_td=td.mean(),
                       confidence=torch.sigmoid(conf_logit.detach()).mean())
        return loss, td

    def _actor_loss(self, t, crop_obs, metrics):
        """SAC's actor loss alpha log pi - min_k Q_k at each twin's most confident pixel (the
        critic frozen) + the optional demo term -> (loss, log pi (B,))."""
        cfg, demo = self.cfg, t["demo"]
        pi_action, log_pi, mean_action = self.actor(crop_obs, t["low_dim"])
        log_pi = log_pi.float()
        q_pi = ConfidenceCritic.best(*self.critic(crop_obs, t["low_dim"], pi_action)).float().min(dim=1).values
        loss = (t["w_is"] * (self.alpha.detach() * log_pi - q_pi)).mean()
        if cfg.demo_actor_weight:
            error = self.actor.pose_error(mean_action.float(), t["action"], self.actor.anchor(crop_obs))
            actor_demo = (demo * error).sum() / demo.sum().clamp_min(1.0)
            loss = loss + cfg.demo_actor_weight * q_pi.detach().abs().mean().clamp_min(1.0) * actor_demo
            metrics["actor_demo"] = actor_demo
        metrics.update(actor_loss=loss, alpha=self.alpha, log_pi=log_pi.mean())
        return loss, log_pi

    def _alpha_loss(self, log_pi, metrics):
        """SAC's temperature loss -log alpha (log pi + target entropy)."""
        loss = -(self.log_alpha * (log_pi.detach() + self.cfg.target_entropy)).mean()
        metrics["alpha_loss"] = loss
        return loss

    def _metrics(self, metrics: dict[str, torch.Tensor], priorities: torch.Tensor) -> dict[str, Any]:
        """Tensors -> floats in one device sync (after the deferred finiteness checks), plus
        ``priorities`` as float64 numpy."""
        self._raise_deferred()
        names = list(metrics)
        values = torch.stack([metrics[k].detach().float() for k in names]).cpu().numpy()
        out: dict[str, Any] = {k: float(v) for k, v in zip(names, values)}
        out["priorities"] = priorities.detach().cpu().numpy().astype(np.float64)
        return out
