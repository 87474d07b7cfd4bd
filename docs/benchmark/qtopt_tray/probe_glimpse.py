"""A diagnostic probe (2026-12-07, twenty-fifth sitting), kept with its JSON lines: the paper's
Q-network plus an action-conditioned glimpse, on the box-anywhere tray. Where the action would take
the gripper (its x, y plus the action's dx, dy) is projected through the calibrated camera onto
the tray floor, and a top-down grid of points around it (``--glimpse-cells`` squared, every
``--glimpse-spacing`` metres; default 14 x 14 at 2 cm) is sampled bilinearly from a full-resolution
feature map of the image (one 5x5 convolution). A small CNN and MLP turn that glimpse, the state
and the action into a second logit, added to the paper network's (``--glimpse-only``: Q is that
logit alone; the paper network's image stack still runs, unused, so its update time is an upper
bound). It is the geometric part of ARM's Q-attention (a Q read at the place an action goes) given
to QT-Opt; the gripper's x, y (from the robot's joints) and the camera's calibration are what a
real robot has, nothing privileged. Does Q learn where the box is once the image meets the action
where the action goes?

It patches the agent, the network, the bin and the grasp-episode helpers in memory (nothing in the
repository changes) and runs bench/bench_qtopt_tray.py with the other arguments.

    python docs/benchmark/qtopt_tray/probe_glimpse.py --online --spread 1 --tray one_box_low \\
        --image-size 48 --grasps 200 --updates 6000 --points 6 --seed 0 --agent-overrides image_shift=0
    python docs/benchmark/qtopt_tray/probe_glimpse.py --glimpse-only --glimpse-spacing 0.025 --online --spread 1 \
        --tray one_box_low --image-size 48 --grasps 200 --updates 16000 --points 8 --seed 0 \
        --agent-overrides image_shift=0
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from arm_policy.agents.qtopt import network as qn
from probe_camera import IMAGE, option, pixels, register_camera, run_bench
from probe_state import extend_state

CELLS = option("--glimpse-cells", 14, int)
SPACING = option("--glimpse-spacing", 0.02, float)
ONLY = "--glimpse-only" in sys.argv  # Q from the glimpse alone: the paper network's logit left out
if ONLY:
    sys.argv.remove("--glimpse-only")

net_init, net_encode, net_head = qn.QNetwork.__init__, qn.QNetwork.encode, qn.QNetwork.head


def init(self, cfg):
    net_init(self, cfg)
    self.local = nn.Sequential(nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(inplace=True))
    side = (CELLS + 1) // 2
    self.glimpse = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                                 nn.Linear(32 * side * side, 64), nn.ReLU(inplace=True))
    self.glimpse_head = nn.Sequential(nn.Linear(64 + 2 + 7, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))
    register_camera(self, CELLS, SPACING)


def encode(self, image):
    features = net_encode(self, image)
    features.local = self.local(image)  # travels with the paper's features to head and score
    return features


def grid(self, xy):
    """(..., 2) world x, y of glimpse centres -> (..., CELLS * CELLS, 2) grid_sample coordinates."""
    return pixels(self, xy) / (IMAGE - 1) * 2 - 1


def glimpse_logit(self, glimpses, state, action):
    """(N, 16, CELLS, CELLS) glimpses, (N, 2) state, (N, 7) action -> (N,) logits."""
    x = torch.cat([self.glimpse(glimpses), torch.cat([state, action], dim=1) * self.input_scale], dim=1)
    return self.glimpse_head(x).squeeze(1)


def head(self, features, state, action):
    n = len(action)
    g = grid(self, state[:, 2:4] + action[:, :2]).view(n, CELLS, CELLS, 2)
    glimpses = F.grid_sample(features.local, g, align_corners=True)
    local = glimpse_logit(self, glimpses, state[:, :2], action)
    return local if ONLY else net_head(self, features, state[:, :2], action) + local


def score(self, features, state, actions):
    b, s = actions.shape[:2]
    g = grid(self, state[:, None, 2:4] + actions[..., :2]).view(b, s * CELLS, CELLS, 2)
    glimpses = F.grid_sample(features.local, g, align_corners=True)  # (B, 16, S * CELLS, CELLS)
    glimpses = glimpses.view(b, -1, s, CELLS, CELLS).transpose(1, 2).reshape(b * s, -1, CELLS, CELLS)
    states = state[:, None, :2].expand(b, s, 2).reshape(b * s, 2)
    flat = actions.reshape(b * s, -1)
    local = glimpse_logit(self, glimpses, states, flat)
    if ONLY:
        return local.view(b, s)
    # QNetwork.score's expansion, written out: the original calls self.head, which is patched here
    feats = features[:, None].expand(b, s, *features.shape[1:]).reshape(b * s, *features.shape[1:])
    return (net_head(self, feats, states, flat) + local).view(b, s)


extend_state("gripper_xy", lambda obs: obs.gripper_position[:2])
qn.QNetwork.__init__, qn.QNetwork.encode, qn.QNetwork.head, qn.QNetwork.score = init, encode, head, score
run_bench()
