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
import runpy
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from arm_policy.agents.qtopt import network as qn
from arm_sim import grasp_bin as gb
from arm_sim.bin_scene import FLOOR_Z
from probe_state import extend_state

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_qtopt_tray.py"


def option(name, default, kind):
    if name not in sys.argv:
        return default
    i = sys.argv.index(name)
    value = kind(sys.argv[i + 1])
    del sys.argv[i:i + 2]
    return value


CELLS = option("--glimpse-cells", 14, int)
SPACING = option("--glimpse-spacing", 0.02, float)
ONLY = "--glimpse-only" in sys.argv  # Q from the glimpse alone: the paper network's logit left out
if ONLY:
    sys.argv.remove("--glimpse-only")
PLANE_Z = FLOOR_Z + 0.02  # about a box's middle
IMAGE = int(sys.argv[sys.argv.index("--image-size") + 1]) if "--image-size" in sys.argv else 64

driver = gb.GraspBinDriver(image_size=(IMAGE, IMAGE), tray="one_box_low")  # the fixed camera's calibration
driver.reset(0)
K, CAMERA_TO_WORLD = driver.intrinsics.copy(), driver.camera_extrinsics()
driver.close()

net_init, net_encode, net_head = qn.QNetwork.__init__, qn.QNetwork.encode, qn.QNetwork.head


def init(self, cfg):
    net_init(self, cfg)
    self.local = nn.Sequential(nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(inplace=True))
    side = (CELLS + 1) // 2
    self.glimpse = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                                 nn.Linear(32 * side * side, 64), nn.ReLU(inplace=True))
    self.glimpse_head = nn.Sequential(nn.Linear(64 + 2 + 7, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))
    world_to_camera = np.linalg.inv(CAMERA_TO_WORLD)
    self.register_buffer("rotation", torch.tensor(world_to_camera[:3, :3], dtype=torch.float32), persistent=False)
    self.register_buffer("translation", torch.tensor(world_to_camera[:3, 3], dtype=torch.float32), persistent=False)
    self.register_buffer("camera", torch.tensor(K, dtype=torch.float32), persistent=False)
    ticks = (torch.arange(CELLS, dtype=torch.float32) - (CELLS - 1) / 2) * SPACING
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    self.register_buffer("offsets", torch.stack([gx, gy], dim=-1).reshape(-1, 2), persistent=False)


def encode(self, image):
    features = net_encode(self, image)
    features.local = self.local(image)  # travels with the paper's features to head and score
    return features


def grid(self, xy):
    """(..., 2) world x, y of glimpse centres -> (..., CELLS * CELLS, 2) grid_sample coordinates."""
    points = xy[..., None, :] + self.offsets
    world = torch.cat([points, torch.full_like(points[..., :1], PLANE_Z)], dim=-1)
    cam = world @ self.rotation.T + self.translation
    uv = cam[..., :2] / cam[..., 2:3] * self.camera[[0, 1], [0, 1]] + self.camera[[0, 1], [2, 2]]
    return uv / (IMAGE - 1) * 2 - 1


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
sys.argv[0] = str(BENCH)
runpy.run_path(sys.argv[0], run_name="__main__")
