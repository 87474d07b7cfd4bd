"""The camera-ray offset frame of the relative actor: the camera's centre measured from organised
point clouds, the frame itself, and an actor whose offsets live in it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from arm_perception.camera import depth_to_points, intrinsics_from_fovy
from arm_policy.agents import ARMAgent
from arm_policy.camera_ray import camera_centre, ray_frame
from arm_policy.config import ARMConfig
from arm_policy.networks import Actor

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
    reloaded = ARMAgent.from_state_dict(agent.state_dict(), "cpu")
    assert torch.allclose(reloaded.actor.camera_position, torch.as_tensor(CAMERA, dtype=torch.float32))


def test_the_camera_ray_frame_needs_the_relative_actor_and_a_camera():
    with pytest.raises(ValueError, match="needs actor_relative_xyz True"):
        ARMConfig(actor_offset_frame="camera_ray")
    with pytest.raises(ValueError, match="must be 'world' or 'camera_ray'"):
        ARMConfig(actor_relative_xyz=True, actor_offset_frame="camera")
    with pytest.raises(ValueError, match="needs the camera's position"):
        Actor(RAY_TINY, BOUNDS)
