"""What the relative actor sees of its crop's points: world coordinates, or offsets from the anchor
(``actor_points_from_anchor``), where the same scene about the anchor gives the same offset."""
from __future__ import annotations

import pytest
import torch

from arm_policy.config import ARMConfig
from arm_policy.networks import Actor, points_about

from test_agent import BOUNDS, TINY

RELATIVE = TINY.replace(actor_relative_xyz=True, relative_xyz_range=0.1)


def crops(n=16, size=8, seed=0):
    """Crops of a scene around (0.1, 0.0, 1.0), every pixel with depth but one."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, 7, size, size)
    x[:, :3] = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    x[:, 3:6] = torch.tensor([0.1, 0.0, 1.0])[None, :, None, None] + 0.05 * torch.randn(n, 3, size, size, generator=g)
    x[:, 6] = 1.0
    x[:, 3:6, 0, 0], x[:, 6, 0, 0] = 0.0, 0.0  # no depth there
    return x


def shifted(x, d):
    """The same crops with the whole scene moved by d (metres)."""
    y = x.clone()
    y[:, 3:6] += d[None, :, None, None] * y[:, 6:7]
    return y


@pytest.mark.parametrize("from_anchor", [True, False])
def test_a_scene_moved_by_d_moves_the_pose_by_d_only_when_the_actor_sees_points_about_the_anchor(from_anchor):
    torch.manual_seed(0)
    actor = Actor(RELATIVE.replace(actor_points_from_anchor=from_anchor), BOUNDS)
    x, low_dim, d = crops(), torch.randn(16, 11), torch.tensor([0.02, -0.015, 0.03])
    with torch.no_grad():
        before, after = actor(x, low_dim)[2], actor(shifted(x, d), low_dim)[2]
    moved_with_the_scene = torch.allclose(after[:, :3] - before[:, :3], d.expand(16, 3), atol=1e-5)
    assert moved_with_the_scene == from_anchor
    if from_anchor:  # rotation and gripper see the same crop
        assert torch.allclose(after[:, 3:], before[:, 3:], atol=1e-6)


def test_points_about_the_anchor_are_zero_where_the_camera_had_no_depth():
    x = crops()
    about = points_about(x, torch.tensor([0.1, 0.0, 1.0]).expand(16, 3))
    assert torch.equal(about[:, 3:6, 0, 0], torch.zeros(16, 3))
    assert torch.allclose(about[:, 3:6, 1:, 1:], x[:, 3:6, 1:, 1:] - torch.tensor([0.1, 0.0, 1.0])[None, :, None, None])
    assert torch.equal(about[:, :3], x[:, :3]) and torch.equal(about[:, 6], x[:, 6])


def test_points_about_the_anchor_need_the_relative_actor():
    with pytest.raises(ValueError, match="needs actor_relative_xyz True"):
        ARMConfig(actor_points_from_anchor=True)
