"""The camera-ray offset frame of the relative actor: the camera's centre measured from organised
point clouds, the frame itself, and an actor whose offsets live in it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from arm_perception.camera import depth_to_points, intrinsics_from_fovy
from arm_policy.agents import ARMAgent
from arm_policy.camera_ray import camera_centre, ray_frame, ray_reaches_box
from arm_policy.config import ARMConfig
from arm_policy.networks import Actor, obs_tensor

from test_agent import BOUNDS, TINY

CAMERA = np.array([1.1, 0.05, 1.65])
RAY_TINY = TINY.replace(actor_relative_xyz=True, actor_offset_frame="camera_ray")


def looking_at(position, target):
    """Optical frame (x right, y down, z forward) -> world, at ``position`` facing ``target``."""
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    T = np.eye(4)
    T[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    T[:3, 3] = position
    return T


def table_cloud(rng, size=32):
    """An organised cloud of a bumpy table seen from CAMERA, with holes (NaN) as a real one has."""
    depth = 1.2 + 0.1 * rng.random((size, size))
    depth[rng.random((size, size)) < 0.2] = 0.0
    return depth_to_points(depth, intrinsics_from_fovy(50.0, size, size),
                           looking_at(CAMERA, np.array([0.4, 0.0, 0.85])))


def test_the_camera_centre_is_measured_from_organised_point_clouds():
    rng = np.random.default_rng(0)
    centre = camera_centre([table_cloud(rng), table_cloud(rng)])
    np.testing.assert_allclose(centre, CAMERA, atol=1e-4)


def test_clouds_that_no_pinhole_camera_took_are_refused_with_the_reason():
    rng = np.random.default_rng(1)
    shuffled = table_cloud(rng).reshape(-1, 3)[rng.permutation(32 * 32)].reshape(32, 32, 3)
    with pytest.raises(ValueError, match="do not fit one pinhole camera"):
        camera_centre([shuffled])
    with pytest.raises(ValueError, match="at least 12 points"):
        camera_centre([np.full((8, 8, 3), np.nan)])


def test_the_ray_frame_is_a_rotation_whose_third_axis_runs_from_the_camera_through_the_anchor():
    camera = torch.tensor(CAMERA, dtype=torch.float64)
    anchors = torch.tensor([[0.3, 0.1, 0.8], [0.6, -0.3, 0.9], [1.1, 0.05, 0.7]], dtype=torch.float64)
    R = ray_frame(anchors, camera)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(R), torch.ones(3, dtype=torch.float64))
    ray = (anchors - camera) / (anchors - camera).norm(dim=1, keepdim=True)
    assert torch.allclose(R[:, 2], ray)
    assert torch.allclose(R[:2, 0, 2], torch.zeros(2, dtype=torch.float64))  # the first axis is level
    assert torch.allclose(R[2, 0], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))  # straight down


def test_a_camera_ray_actor_reaches_far_along_the_ray_and_little_across_it():
    reach = np.array([0.02, 0.02, 0.5], np.float32)
    agent = ARMAgent(RAY_TINY, BOUNDS, "cpu", relative_range=reach, camera_position=CAMERA)
    anchor = torch.tensor([0.3, 0.0, 0.9])
    x = torch.zeros(256, 7, 8, 8)
    x[:, 3:6, 4, 4] = anchor
    x[:, 6, 4, 4] = 1.0
    a, _, _ = agent.actor(x, torch.randn(256, 11))
    offset = a[:, :3] - anchor
    ray = torch.as_tensor(anchor.numpy() - CAMERA, dtype=torch.float32)
    ray = ray / ray.norm()
    along = offset @ ray
    across = (offset - along[:, None] * ray).norm(dim=1)
    inside = (a[:, :3] > torch.as_tensor(BOUNDS[0]) + 1e-4).all(1) & (a[:, :3] < torch.as_tensor(BOUNDS[1]) - 1e-4).all(1)
    assert torch.all(across[inside] <= 0.02 * np.sqrt(2) + 1e-5)
    assert along[inside].abs().max() > 0.1  # along the ray it goes further than across
    # the pose error is measured in the frame's units: 2 cm across the ray = 1 reach
    pose = torch.tensor([[0.3, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0, 1.0]])
    moved = pose.clone()
    moved[0, :3] += 0.02 * ray_frame(anchor[None], agent.actor.camera_position)[0, 0]
    assert torch.isclose(agent.actor.pose_error(pose, moved, anchor[None]), torch.tensor(1.0), atol=1e-5)
    along_ray = pose.clone()
    along_ray[0, :3] += 0.02 * ray_frame(anchor[None], agent.actor.camera_position)[0, 2]
    assert agent.actor.pose_error(pose, along_ray, anchor[None]) < 0.01  # 2 cm of a 50 cm reach
    reloaded = ARMAgent.from_state_dict(agent.state_dict(), "cpu")
    assert torch.allclose(reloaded.actor.camera_position, torch.as_tensor(CAMERA, dtype=torch.float32))


def test_the_camera_ray_frame_needs_the_relative_actor_and_a_camera():
    with pytest.raises(ValueError, match="needs actor_relative_xyz True"):
        ARMConfig(actor_offset_frame="camera_ray")
    with pytest.raises(ValueError, match="must be 'world' or 'camera_ray'"):
        ARMConfig(actor_relative_xyz=True, actor_offset_frame="camera")
    with pytest.raises(ValueError, match="needs the camera's position"):
        Actor(RAY_TINY, BOUNDS)


def test_a_point_is_in_the_workspace_when_its_ray_passes_through_the_bounds_within_reach():
    """The camera-ray form's attention workspace: a point on the table 40 cm behind a free-space
    box along the camera's ray is attendable with 50 cm of reach along the ray, not with 30 cm;
    one as far to the side (across the ray) is not, whatever the reach along it."""
    low, high = torch.tensor([0.4, -0.1, 1.0]), torch.tensor([0.5, 0.1, 1.1])
    camera = torch.tensor([1.1, 0.0, 1.65])
    ray = torch.tensor([0.45, 0.0, 1.05]) - camera
    ray = ray / ray.norm()
    behind = torch.tensor([0.45, 0.0, 1.05]) + 0.4 * ray
    aside = behind + torch.tensor([0.0, 0.4, 0.0])
    points = torch.stack([behind, aside, torch.tensor([0.45, 0.0, 1.05])], dim=1)[None, :, None, :]
    assert ray_reaches_box(points, camera, 0.5, low, high)[0, 0].tolist() == [True, False, True]
    assert ray_reaches_box(points, camera, 0.3, low, high)[0, 0].tolist() == [False, False, True]
    # an agent's mask in that form: the far point behind the box keeps its (best) Q
    bounds = torch.stack([low, high]).numpy()
    pc = np.full((1, 16, 16, 3), 5.0, np.float32)
    pc[0, 5, 5], pc[0, 12, 12] = behind.numpy(), aside.numpy()
    obs = obs_tensor(torch.zeros(1, 16, 16, 3, dtype=torch.uint8), torch.as_tensor(pc))
    q = torch.zeros(1, 16, 16)
    q[0, 12, 12], q[0, 5, 5] = 20.0, 10.0
    cfg = RAY_TINY.replace(attention_workspace_margin=0.05)
    for along, attended in ((0.5, (5, 5)), (0.2, None)):
        agent = ARMAgent(cfg, bounds, "cpu", relative_range=[0.03, 0.03, along],
                         camera_position=camera.numpy())
        masked = agent._in_workspace(q.clone(), obs)
        if attended is None:  # no pixel qualifies: the map is left as it is
            assert torch.equal(masked, q)
        else:
            assert tuple(divmod(int(masked.flatten().argmax()), 16)) == attended
            assert torch.isinf(masked[0, 12, 12])


def test_a_metric_position_error_weighs_a_centimetre_alike_along_and_across_the_ray():
    reach = np.array([0.02, 0.02, 0.5], np.float32)
    agent = ARMAgent(RAY_TINY.replace(position_error_scale=0.02), BOUNDS, "cpu", relative_range=reach,
                     camera_position=CAMERA)
    anchor = torch.tensor([[0.3, 0.0, 0.9]])
    pose = torch.tensor([[0.3, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0, 1.0]])
    axes = ray_frame(anchor, agent.actor.camera_position)[0]
    for axis in range(3):  # 2 cm on any axis of the frame = 1 scale
        moved = pose.clone()
        moved[0, :3] += 0.02 * axes[axis]
        assert torch.isclose(agent.actor.pose_error(pose, moved, anchor), torch.tensor(1.0), atol=1e-5)
    with pytest.raises(ValueError, match="position_error_scale"):
        RAY_TINY.replace(position_error_scale=-0.01)
