"""QT-Opt agent (Kalashnikov et al. 2018, seed 001): one Q(s, a) in [0, 1], no actor; CEM
maximises it to act and inside the Bellman targets. No ROS.

Networks: theta (learned), theta_1 (Polyak average of theta), theta_2 (theta_1 lagged by
``lag_updates`` updates). ``update`` on one replay batch reads like the paper, with b = 0 where
the episode really ended (a timeout is no end: it bootstraps):

1. targets (:meth:`targets`, its own function so Bellman-updater processes can run it):
   a* = CEM argmax_a' Q_theta1(s', a'),  V(s') = min_{i=1,2} Q_theta_i(s', a*),
   y = clamp(r + gamma b V(s'), 0, 1)   (r = -0.05 per step, +1 at a successful end; a target
   below 0 (a failing end's -0.05) is clamped: the cross-entropy needs a label in [0, 1])
2. L = mean_batch w_is CE(Q_theta(s, a), y),  CE(q, y) = -y log q - (1 - y) log(1 - q)
   (+ alpha mean_j Q_theta(s, a_j), a_j uniformly random, with ``conservative_weight`` alpha > 0:
   a pull towards 0 on actions the data never tried, where the data's own actions hold Q up)
3. theta_1 <- polyak theta_1 + (1 - polyak) theta
4. theta_2 <- theta_1 of ``lag_updates`` updates ago (a ring of snapshots of theta_1)

The policy is pi(s) = CEM argmax_a Q_theta1(s, a) (the paper's), epsilon-greedy with ``explore``.

Action (7,): [dx, dy, dz, sin(yaw), cos(yaw), close_gripper, terminate]. dx, dy, dz in
[-max_displacement, max_displacement] m and yaw in [-max_yaw, max_yaw] rad are displacements of
the gripper per step (yaw about the vertical axis, given to Q as sin and cos as in the paper);
close_gripper: 1 close, 0 open (the gripper state wanted after the step); terminate: 1 ends the
episode. CEM searches [dx, dy, dz, yaw] in the box and the two binary choices as categorical
dimensions (``cem.py`` says why). State (2,): [gripper_open (1 open, 0 closed), gripper_height (m)],
or with ``state_aperture`` [gripper_aperture (measured, 0 closed .. 1 open), gripper_height (m)].

Any non-finite batch value, loss, gradient or parameter raises :class:`NumericalError` naming it,
before the optimiser step that would spread it; a non-finite observation in ``act`` is a
ValueError naming the field.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ..base import Agent, NumericalError, PolicyOutput, frozen_copy, resolve_device, soft_update
from .cem import maximize
from .config import ACTION_SIZE, STATE_SIZE, QTOptConfig
from .network import QNetwork, image_tensor, random_shift

__all__ = ["QTOptAgent", "action_vector", "search_vector", "qtopt_replay_fields"]

#: CEM's discrete dimensions after [dx, dy, dz, yaw]: close_gripper (2 choices), terminate (2)
DISCRETE = (2, 2)


def action_vector(x: torch.Tensor) -> torch.Tensor:
    """CEM's search vector (..., 6) [dx, dy, dz, yaw, close, terminate] -> the action (..., 7)."""
    yaw = x[..., 3:4]
    return torch.cat([x[..., :3], torch.sin(yaw), torch.cos(yaw), x[..., 4:6]], dim=-1)


def search_vector(action: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`action_vector` (yaw = atan2(sin, cos))."""
    yaw = torch.atan2(action[..., 3:4], action[..., 4:5])
    return torch.cat([action[..., :3], yaw, action[..., 5:7]], dim=-1)


def qtopt_replay_fields(image_size: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """What a QT-Opt transition stores: RGB uint8, state [gripper_open, gripper_height], the
    7-D action, the reward, whether the episode ended there and whether that end was a timeout,
    and the next RGB and state."""
    image, state, flag = ((image_size, image_size, 3), np.uint8), ((STATE_SIZE,), np.float32), ((), np.bool_)
    return {"rgb": image, "state": state, "action": ((ACTION_SIZE,), np.float32),
            "reward": ((), np.float32), "terminal": flag, "timeout": flag,
            "next_rgb": image, "next_state": state}


class QTOptAgent(Agent):
    """See the module docstring. ``seed`` seeds the initial weights and the agent's own random
    generator (CEM samples, exploration) for a repeatable run."""

    name = "qtopt"
    label = "QT-Opt"
    tasks = ("grasp_bin",)
    learns_online = True

    def __init__(self, config: QTOptConfig, device: str | torch.device | None = None,
                 seed: int | None = None):
        if not isinstance(config, QTOptConfig):
            raise TypeError(f"QTOptAgent needs a QTOptConfig, got {type(config).__name__}")
        if seed is not None:
            torch.manual_seed(seed)
        self.cfg, self.device = config, resolve_device(device)
        self.q = QNetwork(config).to(self.device)
        self.target_1 = frozen_copy(self.q)  # theta_1: Polyak average of theta
        self.target_2 = frozen_copy(self.q)  # theta_2: theta_1 lagged
        self._optimizer: torch.optim.Optimizer | None = None  # made on first use (:attr:`optimizer`)
        self.updates = 0
        self.generator = torch.Generator(device=self.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        b, yaw = config.max_displacement, config.max_yaw
        self._high = torch.tensor([b, b, b, yaw], device=self.device)
        self._low = -self._high
        #: (update count, theta_1 as one vector): theta_1 at those updates, oldest first
        self._lag: deque[tuple[int, torch.Tensor]] = deque([(0, self._theta_1_vector())])

    @classmethod
    def preset_config(cls, preset: str) -> QTOptConfig:
        """``cpu``: target networks scaled to a CPU run's updates; ``paper``: the paper's."""
        presets = {"cpu": QTOptConfig, "paper": QTOptConfig.paper}
        if preset not in presets:
            raise KeyError(f"unknown preset {preset!r}; choose from {sorted(presets)}")
        return presets[preset]()

    @classmethod
    def configure(cls, config: Any) -> QTOptConfig:
        """The config unchanged. QT-Opt has its own (:class:`QTOptConfig`): an ARM preset is
        refused with a ValueError (what ``agents.agent_config`` raises for a bad choice)."""
        if not isinstance(config, QTOptConfig):
            raise ValueError(f"QT-Opt takes a QTOptConfig, not a {type(config).__name__}: the ARM "
                             "presets do not describe it")
        return config

    @classmethod
    def from_demos(cls, config: QTOptConfig, demos, device=None, seed: int | None = None) -> "QTOptAgent":
        """A new agent; the demos are not needed (the action is a bounded displacement)."""
        return cls(config, device, seed)

    def replay_fields(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        return qtopt_replay_fields(self.cfg.image_size)

    # ------------------------------------------------------------------ helpers
    def _t(self, x, dtype=torch.float32) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x), dtype=dtype)
        return x.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else x

    def _images(self, rgb) -> torch.Tensor:
        rgb = np.asarray(rgb)
        s = self.cfg.image_size
        if rgb.ndim != 4 or rgb.shape[1:] != (s, s, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"images must be (B, {s}, {s}, 3) uint8, got {rgb.shape} {rgb.dtype}")
        return image_tensor(self._t(rgb, torch.uint8))

    @staticmethod
    def _check(name: str, value: torch.Tensor) -> None:
        if not bool(torch.isfinite(value).all()):
            raise NumericalError(f"non-finite {name}: {value.detach().flatten()[:4].tolist()}")

    def _cem(self, net: QNetwork, features: torch.Tensor, state: torch.Tensor):
        """CEM argmax of ``net`` for each state -> (actions (B, 7), their logits (B,))."""
        cfg = self.cfg
        x, logit = maximize(lambda x: net.score(features, state, action_vector(x)), self._low,
                            self._high, cfg.cem_iterations, cfg.cem_samples, cfg.cem_elites,
                            generator=self.generator, discrete=DISCRETE, batch_size=features.shape[0])
        return action_vector(x), logit

    @staticmethod
    def q_value(net: QNetwork, image: torch.Tensor, state: torch.Tensor,
                action: torch.Tensor) -> torch.Tensor:
        """Q_net(s, a) = sigmoid(logit) in [0, 1], (B,)."""
        return torch.sigmoid(net.head(net.encode(image), state, action).float())

    def _theta_1_vector(self) -> torch.Tensor:
        return parameters_to_vector(self.target_1.parameters()).detach().clone()

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: dict[str, Any], explore: bool) -> PolicyOutput:
        """One observation (``rgb`` (H, W, 3) uint8, ``gripper_open`` (1 open, 0 closed) and
        ``gripper_height`` (m) floats; ``gripper_aperture`` (0..1) instead of ``gripper_open``
        with ``state_aperture``) -> PolicyOutput with the action (7,) float32; QT-Opt has neither
        an attended pixel nor a map, so both are None. The action is CEM's argmax of Q_theta1; with ``explore`` a uniformly random one with probability
        ``epsilon`` (terminate with probability ``random_terminate_prob``)."""
        first = "gripper_aperture" if self.cfg.state_aperture else "gripper_open"
        state = np.array([obs[first], obs["gripper_height"]], dtype=np.float64)
        for name, value in zip((first, "gripper_height"), state):
            if not np.isfinite(value):
                raise ValueError(f"observation {name!r} is not finite: {value}")
        image = self._images(np.asarray(obs["rgb"])[None])
        g, dev = self.generator, self.device
        if explore and float(torch.rand((), generator=g, device=dev)) < self.cfg.epsilon:
            u = torch.rand(6, generator=g, device=dev)
            x = torch.cat([self._low + (self._high - self._low) * u[:4], (u[4:5] < 0.5).float(),
                           (u[5:6] < self.cfg.random_terminate_prob).float()])
            action = action_vector(x)
        else:
            state_t = self._t(state)[None]
            action = self._cem(self.target_1, self.target_1.encode(image), state_t)[0][0]
        return PolicyOutput(None, action.float().cpu().numpy())

    # ------------------------------------------------------------------ learning
    def batch_tensors(self, batch: dict[str, np.ndarray], weights=None) -> dict[str, torch.Tensor]:
        """A replay batch as tensors (images as floats, ``bootstrap`` = 0 where the episode
        really ended, ``w_is`` importance weights); a non-finite value raises NumericalError."""
        t = {"image": self._images(batch["rgb"]), "next_image": self._images(batch["next_rgb"])}
        floats = ("state", "next_state", "action", "reward") + (("target",) if "target" in batch else ())
        for key in floats:
            t[key] = self._t(batch[key])
            self._check(f"batch field {key!r}", t[key])
        terminal = self._t(batch["terminal"])
        timeout = self._t(batch["timeout"]) if "timeout" in batch else torch.zeros_like(terminal)
        t["bootstrap"] = 1.0 - terminal * (1.0 - timeout)
        t["w_is"] = torch.ones_like(t["reward"]) if weights is None else self._t(weights)
        return t

    @torch.no_grad()
    def targets(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """The Bellman targets y (B,) of a batch (:meth:`batch_tensors`), from theta_1 and theta_2
        only: a* = CEM argmax Q_theta1(s', .), y = clamp(r + gamma b min_i Q_theta_i(s', a*), 0, 1)."""
        next_image, next_state = t["next_image"], t["next_state"]
        a_star, _ = self._cem(self.target_1, self.target_1.encode(next_image), next_state)
        value = torch.minimum(self.q_value(self.target_1, next_image, next_state, a_star),
                              self.q_value(self.target_2, next_image, next_state, a_star))
        return (t["reward"] + self.cfg.gamma * t["bootstrap"] * value).clamp(0.0, 1.0)

    def update(self, batch: dict[str, np.ndarray], weights=None) -> dict[str, Any]:
        """One gradient step on a replay batch -> metrics (floats) + ``priorities`` (np.ndarray
        (B,): |Q - y|). A batch already labelled by a Bellman updater carries ``target`` (B,)."""
        t = self.batch_tensors(batch, weights)
        if self.cfg.image_shift > 0:  # augmentation: each image of the batch shifted on its own
            for key in ("image", "next_image"):
                t[key] = random_shift(t[key], self.cfg.image_shift, self.generator)
        y = t["target"] if "target" in t else self.targets(t)  # before any network moves
        loss, logits, penalty = self._q_loss(t, y)
        self._step(loss)
        self._polyak()
        self.updates += 1
        self._advance_lag()
        q = torch.sigmoid(logits.detach())
        td = (q - y).abs()
        metrics = {"q_loss": loss, "q_mean": q.mean(), "target_mean": y.mean(), "td": td.mean(),
                   "q_accuracy": ((q > 0.5) == (y > 0.5)).float().mean()}
        if penalty is not None:
            metrics["conservative_penalty"] = penalty
        out: dict[str, Any] = {k: float(v.detach()) for k, v in metrics.items()}
        out["priorities"] = td.cpu().numpy().astype(np.float64)
        return out

    def _q_loss(self, t, y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """L = mean_batch w_is CE(sigmoid(logit), y) (+ the conservative penalty) -> (loss,
        logits (B,), the penalty or None)."""
        features = self.q.encode(t["image"])
        logits = self.q.head(features, t["state"], t["action"]).float()
        ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        loss = (t["w_is"] * ce).mean()
        if self.cfg.conservative_weight <= 0:
            return loss, logits, None
        untried = torch.sigmoid(self.q.score(features, t["state"], self._random_actions(len(logits))).float())
        penalty = untried.mean()
        return loss + self.cfg.conservative_weight * penalty, logits, penalty.detach()

    def _random_actions(self, b: int) -> torch.Tensor:
        """(b, conservative_samples, 7) actions uniform over the box and the two binary choices."""
        u = torch.rand(b, self.cfg.conservative_samples, 6, generator=self.generator, device=self.device)
        x = torch.cat([self._low + (self._high - self._low) * u[..., :4], (u[..., 4:] < 0.5).float()], dim=-1)
        return action_vector(x)

    def _step(self, loss: torch.Tensor) -> None:
        self._check("Q loss", loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        self._check("Q gradient norm", nn.utils.clip_grad_norm_(self.q.parameters(), clip))
        self.optimizer.step()

    def _polyak(self) -> None:
        """theta_1 <- polyak theta_1 + (1 - polyak) theta."""
        soft_update(self.q, self.target_1, 1.0 - self.cfg.polyak)

    @torch.no_grad()
    def _advance_lag(self) -> None:
        """After update k: snapshot theta_1 if k is a multiple of ``lag_snapshot_every``; theta_2
        <- the newest snapshot taken at or before update k - ``lag_updates``. Before update
        ``lag_updates`` theta_2 keeps the initial weights (theta_1's at update 0)."""
        k, cfg = self.updates, self.cfg
        if k % cfg.lag_snapshot_every == 0:
            self._lag.append((k, self._theta_1_vector()))
        due = k - cfg.lag_updates
        while len(self._lag) > 1 and self._lag[1][0] <= due:
            self._lag.popleft()
        step, vector = self._lag[0]
        if step <= due:
            vector_to_parameters(vector, self.target_2.parameters())

    @property
    def lag_of_theta_2(self) -> int:
        """Which update's theta_1 theta_2 holds (0: the initial weights)."""
        step = self._lag[0][0]
        return step if step <= self.updates - self.cfg.lag_updates else 0

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """Adam on theta, made when training (or a checkpoint) first needs it: an agent that only
        acts or labels (a collector, a Bellman updater, the policy node) never builds one, and
        the first optimizer of a process imports torch._dynamo, over a second of start-up."""
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(self.q.parameters(), lr=self.cfg.lr)
        return self._optimizer

    # ------------------------------------------------------------------ target networks elsewhere
    def target_state(self) -> dict[str, Any]:
        """theta_1 and theta_2 (CPU tensors) and the update count: all that acting
        (:meth:`act`) and labelling (:meth:`targets`) need, for collectors and Bellman updaters
        in other processes."""
        return {"agent": self.name, "updates": self.updates, "config": self.cfg.to_dict(),
                **{name: {k: v.detach().cpu() for k, v in getattr(self, name).state_dict().items()}
                   for name in ("target_1", "target_2")}}

    def load_target_state(self, state: dict[str, Any]) -> None:
        """Take theta_1 and theta_2 from :meth:`target_state` (theta itself is not needed)."""
        for name in ("target_1", "target_2"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])

    @classmethod
    def from_target_state(cls, state: dict[str, Any], device=None, seed: int | None = None) -> "QTOptAgent":
        """An agent that acts and labels like the one that published ``state``."""
        agent = cls(QTOptConfig.from_dict(state["config"]), device, seed)
        agent.load_target_state(state)
        return agent

    def bellman_labels(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch's targets as an array to attach to it (a Bellman updater's work): ``target`` (B,)."""
        return {"target": self.targets(self.batch_tensors(batch)).cpu().numpy().astype(np.float32)}

    # ------------------------------------------------------------------ checkpoints
    _NETS = ("q", "target_1", "target_2", "optimizer")

    def check_parameters(self) -> None:
        """NumericalError if any parameter of theta, theta_1 or theta_2 is non-finite."""
        for name in ("q", "target_1", "target_2"):
            for pname, p in getattr(self, name).named_parameters():
                self._check(f"{name} parameter {pname}", p)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the three networks, the optimiser, the lag's snapshots,
        the random generator, the update count and the config."""
        self.check_parameters()
        state: dict[str, Any] = {"agent": self.name, "config": self.cfg.to_dict(),
                                 "updates": self.updates,
                                 "lag_steps": [k for k, _ in self._lag],
                                 "lag_snapshots": torch.stack([v for _, v in self._lag]).cpu(),
                                 "generator": self.generator.get_state()}
        for key in self._NETS:
            state[key] = getattr(self, key).state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._NETS:
            getattr(self, key).load_state_dict(state[key])
        self.updates = int(state.get("updates", 0))
        snapshots = state["lag_snapshots"].to(self.device)
        self._lag = deque((int(k), snapshots[i].clone()) for i, k in enumerate(state["lag_steps"]))
        self.generator.set_state(state["generator"])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device=None) -> "QTOptAgent":
        agent = cls(QTOptConfig.from_dict(state["config"]), device)
        agent.load_state_dict(state)
        return agent
