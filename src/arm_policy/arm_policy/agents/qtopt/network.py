"""QT-Opt's Q-network: a small CNN on the image, merged with the state and the action.

As the paper's (Fig. 6 there, at 472x472 with 7 conv layers before the merge): the image goes
through convolutions alone; [state, action] goes through an MLP whose output is added to every
cell of the image's feature map; more convolutions and an MLP then give one logit, and
Q(s, a) = sigmoid(logit) in [0, 1]. Split in two so CEM pays for the image once per state:

    features = net.encode(image)                        # (B, C, h, w), once per state
    logits = net.head(features, state, action)          # any number of (state, action) rows
    logits = net.score(features, state, actions)        # (B, S) for actions (B, S, 7), for CEM

No batch normalisation: CEM scores one state's 64 samples together, and batch statistics would
make a sample's Q depend on the others.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import ACTION_SIZE, STATE_SIZE, QTOptConfig

__all__ = ["HEIGHT_SCALE", "QNetwork", "image_tensor", "random_shift"]

#: metres of gripper height that map to 1 when inputs are normalised (the bin's start height)
HEIGHT_SCALE = 0.25


def image_tensor(rgb: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float in [-0.5, 0.5]."""
    return rgb.permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def random_shift(image: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) images each shifted by up to ``pad`` pixels in x and y (edge pixels
    repeated), independently per image: the random-crop augmentation of the paper (472 crops
    of 512 images) and of DrQ, against a Q-function memorising its few hundred scenes."""
    if pad <= 0:
        return image
    b, _, h, w = image.shape
    padded = nn.functional.pad(image, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=image.device)
    return torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(offsets.tolist())])


class QNetwork(nn.Module):
    """See the module docstring; ``forward(image, state, action)`` -> logits (B,)."""

    def __init__(self, cfg: QTOptConfig):
        super().__init__()
        layers, c_in = [], 3
        for i, c in enumerate(cfg.conv_channels):
            k = 5 if i == 0 else 3
            layers += [nn.Conv2d(c_in, c, k, stride=2, padding=k // 2), nn.ReLU(inplace=True)]
            c_in = c
        self.image = nn.Sequential(*layers)
        # [state, action] scaled to about unit range before the MLP when cfg.normalize_inputs:
        # height / HEIGHT_SCALE, dx dy dz / max_displacement (the rest is in [-1, 1] already)
        scale = torch.ones(STATE_SIZE + ACTION_SIZE)
        if cfg.normalize_inputs:
            scale[1] = 1.0 / HEIGHT_SCALE
            scale[STATE_SIZE:STATE_SIZE + 3] = 1.0 / cfg.max_displacement
        self.register_buffer("input_scale", scale, persistent=False)
        self.embed = nn.Sequential(nn.Linear(STATE_SIZE + ACTION_SIZE, cfg.embed_hidden),
                                   nn.ReLU(inplace=True), nn.Linear(cfg.embed_hidden, c_in))
        cells = (cfg.image_size // 2 ** (len(cfg.conv_channels) + 1)) ** 2
        self.merged = nn.Sequential(
            nn.Conv2d(c_in, cfg.head_channels, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(cfg.head_channels * cells, cfg.head_hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.head_hidden, 1))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float image (:func:`image_tensor`) -> (B, C, h, w) features."""
        return self.image(image)

    def head(self, features: torch.Tensor, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) features, (N, 2) state, (N, 7) action -> (N,) logits."""
        merged = features + self.embed(torch.cat([state, action], dim=1) * self.input_scale)[:, :, None, None]
        return self.merged(torch.relu(merged)).squeeze(1)

    def score(self, features: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) features, (B, 2) state, (B, S, 7) actions -> (B, S) logits, each state's
        features shared by its S actions."""
        b, s = actions.shape[:2]
        feats = features[:, None].expand(b, s, *features.shape[1:]).reshape(b * s, *features.shape[1:])
        states = state[:, None].expand(b, s, state.shape[1]).reshape(b * s, -1)
        return self.head(feats, states, actions.reshape(b * s, -1)).view(b, s)

    def forward(self, image: torch.Tensor, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(image), state, action)
