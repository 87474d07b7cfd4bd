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


def thin_object_crops(size=8):
    """One crop whose centre pixel sees the table 30 cm behind a bottle's neck that fills the
    pixel beside it; the camera is above and in front."""
    x = torch.zeros(1, 7, size, size)
    x[:, 3:6] = torch.tensor([0.6, 0.0, 0.75])[None, :, None, None]  # the table behind
    x[:, 6] = 1.0
    c = size // 2
    x[0, 3:6, :, c + 1] = torch.tensor([0.3, 0.0, 0.9])[:, None]  # the neck, one column over
    x[0, 3:6, c - 1, c - 1], x[0, 6, c - 1, c - 1] = 0.0, 0.0  # a pixel without depth
    return x


CAMERA = torch.tensor([0.0, 0.0, 1.5])


def test_a_wider_anchor_window_takes_the_thin_object_beside_the_pixel_not_the_table_behind():
    """Attention one pixel off a bottle's neck sees the table behind it: the centre's point moves
    the anchor 30 cm; the point nearest the camera in a 3x3 window stays on the neck."""
    x = thin_object_crops()
    centre = Actor(RELATIVE, BOUNDS).anchor(x)
    window = Actor(RELATIVE.replace(anchor_window=3), BOUNDS, camera_position=CAMERA).anchor(x)
    assert torch.allclose(centre, torch.tensor([[0.6, 0.0, 0.75]]))
    assert torch.allclose(window, torch.tensor([[0.3, 0.0, 0.9]]))
    # an agent restored from its checkpoint anchors the same way (the camera travels with it)
    from arm_policy.agents import ARMAgent

    agent = ARMAgent(RELATIVE.replace(anchor_window=3), BOUNDS, "cpu", camera_position=CAMERA)
    assert torch.allclose(ARMAgent.from_state_dict(agent.state_dict(), "cpu").actor.anchor(x), window)


def test_the_demos_anchor_rule_is_the_actors():
    """The relative reach is measured from the demos' anchors: the same rule as the actor's."""
    import numpy as np

    from arm_policy.demo_dataset import anchor_point

    x = thin_object_crops()
    cloud = x[0, 3:6].permute(1, 2, 0).numpy().copy()
    cloud[x[0, 6].numpy() < 0.5] = np.nan
    c = x.shape[-1] // 2
    for window in (1, 3, 5):
        actor = Actor(RELATIVE.replace(anchor_window=window), BOUNDS, camera_position=CAMERA)
        expected = actor.anchor(x)[0].numpy()
        assert np.allclose(anchor_point(cloud, (c, c), window, CAMERA.numpy()), expected, atol=1e-6)
    empty = np.full_like(cloud, np.nan)
    assert np.isnan(anchor_point(empty, (c, c), 3, CAMERA.numpy())).all()
    # no depth anywhere in the window: the middle of the bounds, as for the centre rule
    assert torch.allclose(Actor(RELATIVE.replace(anchor_window=3), BOUNDS, camera_position=CAMERA).anchor(
        torch.zeros(1, 7, 8, 8)), torch.as_tensor(BOUNDS, dtype=torch.float32).mean(0, keepdim=True))


@pytest.mark.parametrize("bad, match", [({"anchor_window": 2}, "must be odd"), ({"anchor_window": 0}, "must be odd"),
                                        ({"anchor_window": 3, "actor_relative_xyz": False}, "needs actor_relative_xyz")])
def test_an_anchor_window_must_be_odd_and_needs_the_relative_actor(bad, match):
    with pytest.raises(ValueError, match=match):
        RELATIVE.replace(**bad)
    with pytest.raises(ValueError, match="anchor_window 3 needs the camera's position"):
        Actor(RELATIVE.replace(anchor_window=3), BOUNDS)
