"""A diagnostic probe (2026-12-08, twenty-sixth sitting), kept with its JSON lines: Q read from a
per-pixel feature map at the point where the action takes the gripper, on the box-anywhere tray.

The glimpse probe (probe_glimpse.py) runs a small CNN on a 14 x 14 patch for every action CEM
scores; here the image goes once through a fully convolutional stack (a 5x5 convolution at full
resolution, a stride-2 3x3, then 3x3 convolutions dilated 1, 2, 4: about 35 pixels of receptive
field, most of the 48-pixel image), and an action costs only a bilinear read of that map at
``--read-cells`` squared points (default 3 x 3, every ``--read-spacing`` metres, 2 cm) around the
projection of where it takes the gripper (its x, y plus the action's dx, dy, through the
calibrated camera onto the tray floor), then an MLP with the state and the action. This is how
ARM's Q-attention reads its Q (per pixel, from one fully convolutional pass); the value of being
at a place is computed once per image and shared by every action that goes there. The paper's
network does not run. Only what a real robot has: the gripper's x, y and the camera calibration.

It patches the agent, the network, the bin and the grasp-episode helpers in memory (nothing in the
repository changes) and runs bench/bench_qtopt_tray.py with the other arguments.

    python docs/benchmark/qtopt_tray/probe_point.py --online --spread 1 --tray one_box_low \\
        --image-size 48 --grasps 200 --updates 16000 --points 8 --seed 0 --agent-overrides image_shift=0
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from arm_policy.agents.qtopt import network as qn
from probe_camera import IMAGE, option, pixels, register_camera, run_bench
from probe_state import extend_state

CELLS = option("--read-cells", 3, int)
SPACING = option("--read-spacing", 0.02, float)
FINE, COARSE = 16, 32  # channels of the full-resolution map and of the half-resolution one

net_init = qn.QNetwork.__init__


class PixelMaps(nn.Module):
    """(B, 3, H, W) image -> a full-resolution and a half-resolution feature map."""

    def __init__(self):
        super().__init__()
        self.fine = nn.Sequential(nn.Conv2d(3, FINE, 5, padding=2), nn.ReLU(inplace=True))
        layers = [nn.Conv2d(FINE, COARSE, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        for dilation in (1, 2, 4):
            layers += [nn.Conv2d(COARSE, COARSE, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
        self.coarse = nn.Sequential(*layers)

    def forward(self, image):
        fine = self.fine(image)
        return fine, self.coarse(fine)


def init(self, cfg):
    net_init(self, cfg)
    self.maps = PixelMaps()
    self.point_head = nn.Sequential(nn.Linear(CELLS * CELLS * (FINE + COARSE) + 2 + 7, 128), nn.ReLU(inplace=True),
                                    nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Linear(128, 1))
    register_camera(self, CELLS, SPACING)


def encode(self, image):
    """Both maps stacked on the channel axis at full resolution would cost an upsampling; the
    coarse map rides along as an attribute of the fine one (the agent only reads .shape[0])."""
    fine, coarse = self.maps(image)
    fine.coarse = coarse
    return fine


def grid(self, xy):
    """(B, S, 2) world x, y of read centres -> (B, S * CELLS * CELLS, 1, 2) grid_sample
    coordinates (align_corners=False: -1 and 1 are the image's edges at any map resolution)."""
    return ((pixels(self, xy) + 0.5) / IMAGE * 2 - 1).reshape(xy.shape[0], -1, 1, 2)


def score(self, features, state, actions):
    """(B, C, H, W) maps, (B, 4) state [aperture, height, gripper x, y], (B, S, 7) actions -> (B, S)."""
    b, s = actions.shape[:2]
    g = grid(self, state[:, None, 2:4] + actions[..., :2])
    reads = [F.grid_sample(m, g, align_corners=False).view(b, m.shape[1], s, CELLS * CELLS)
             for m in (features, features.coarse)]
    reads = torch.cat(reads, dim=1).permute(0, 2, 1, 3).reshape(b * s, -1)  # (B * S, C * CELLS^2)
    inputs = torch.cat([state[:, None, :2].expand(b, s, 2), actions], dim=2).reshape(b * s, -1)
    return self.point_head(torch.cat([reads, inputs * self.input_scale], dim=1)).view(b, s)


def head(self, features, state, action):
    return score(self, features, state, action[:, None]).squeeze(1)


extend_state("gripper_xy", lambda obs: obs.gripper_position[:2])
qn.QNetwork.__init__, qn.QNetwork.encode, qn.QNetwork.head, qn.QNetwork.score = init, encode, head, score
run_bench()
