"""The camera-ray frame of the relative actor (``ARMConfig.actor_offset_frame = "camera_ray"``).

A next-best pose in free space (a pre-grasp above a bottle, a phone held over its base) projects
onto a pixel whose 3-D point lies behind it, on the same ray from the camera. Seen from that
point the pose is far away along the ray and almost nowhere across it (the demos of stack_wine
and phone_on_base: within 1.1 cm, a pixel's width). Offsets expressed in the frame of that ray
separate the large, near-constant part (along) from the small one the actor must get exactly
right (across).

The camera's position is not an input of the agent: :func:`camera_centre` measures it from the
demos' organised point clouds (each pixel's 3-D point and its image position are a camera
calibration's correspondences), so a real robot's calibration reaches it the same way.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["camera_centre", "ray_frame", "ray_reaches_box"]


def camera_centre(point_clouds: Iterable[np.ndarray], points_per_cloud: int = 400,
                  seed: int = 0) -> np.ndarray:
    """(3,) the optical centre of the camera that took these organised (H, W, 3) world-frame
    point clouds (NaN where no depth), by the direct linear transform: the 3x4 projection
    matrix that maps every sampled point onto its pixel, whose null vector is the centre.

    ValueError if the clouds hold fewer than 12 valid points or the points do not come from
    one pinhole camera (their reprojection error exceeds half a pixel)."""
    rng = np.random.default_rng(seed)
    world, pixels = [], []
    for cloud in point_clouds:
        cloud = np.asarray(cloud, dtype=np.float64)
        rows, cols = np.nonzero(np.isfinite(cloud).all(axis=-1))
        if rows.size == 0:
            continue
        pick = rng.choice(rows.size, size=min(points_per_cloud, rows.size), replace=False)
        world.append(cloud[rows[pick], cols[pick]])
        pixels.append(np.stack([cols[pick], rows[pick]], axis=1).astype(np.float64))
    if not world or sum(len(w) for w in world) < 12:
        raise ValueError("camera_centre needs at least 12 points with depth in the point clouds")
    X, uv = np.concatenate(world), np.concatenate(pixels)
    # Hartley's normalisation: the system is badly conditioned in metres against pixels
    X_mean, X_scale = X.mean(0), np.sqrt(3) / np.linalg.norm(X - X.mean(0), axis=1).mean()
    uv_mean, uv_scale = uv.mean(0), np.sqrt(2) / np.linalg.norm(uv - uv.mean(0), axis=1).mean()
    Xn = np.c_[(X - X_mean) * X_scale, np.ones(len(X))]
    un = (uv - uv_mean) * uv_scale
    A = np.zeros((2 * len(X), 12))
    A[0::2, 0:4], A[0::2, 8:12] = Xn, -un[:, :1] * Xn
    A[1::2, 4:8], A[1::2, 8:12] = Xn, -un[:, 1:] * Xn
    P = np.linalg.svd(A)[2][-1].reshape(3, 4)
    projected = Xn @ P.T
    error = np.linalg.norm(projected[:, :2] / projected[:, 2:] - un, axis=1) / uv_scale
    if np.median(error) > 0.5:
        raise ValueError(f"the point clouds do not fit one pinhole camera (median reprojection "
                         f"error {np.median(error):.2f} px): a moving camera or clouds not organised "
                         "by pixel")
    centre = np.linalg.svd(P)[2][-1]
    return centre[:3] / centre[3] / X_scale + X_mean


def ray_frame(anchor: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations whose rows are the frame's axes in world coordinates: across the ray
    and level (perpendicular to world z), across the ray and the other way, and along the ray
    from ``camera`` (3,) through ``anchor`` (B, 3). Offsets map world -> frame as ``R @ d`` and
    back as ``R^T @ e``. A ray straight down takes world x as its level axis."""
    along = anchor - camera
    along = along / along.norm(dim=1, keepdim=True).clamp_min(1e-9)
    up = torch.zeros_like(along)
    up[:, 2] = 1.0
    level = torch.linalg.cross(up, along, dim=1)
    vertical_ray = level.norm(dim=1, keepdim=True) < 1e-6
    x_axis = torch.zeros_like(along)
    x_axis[:, 0] = 1.0
    level = torch.where(vertical_ray, x_axis, level)
    level = level / level.norm(dim=1, keepdim=True)
    other = torch.linalg.cross(along, level, dim=1)
    return torch.stack([level, other, along], dim=1)


def ray_reaches_box(points: torch.Tensor, camera: torch.Tensor, along: torch.Tensor | float,
                    low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: whether the segment of the camera's ray through each point (B, 3, H, W)
    that lies within ``along`` metres of it, on either side, meets the box [low, high] (3,) (the
    slab test). In the camera-ray frame these are the poses an anchor at that point can reach."""
    direction = points - camera[None, :, None, None]
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-9)
    lo, hi = low[None, :, None, None], high[None, :, None, None]
    parallel = direction.abs() < 1e-9
    safe = torch.where(parallel, torch.ones_like(direction), direction)
    t1, t2 = (lo - points) / safe, (hi - points) / safe
    inside_slab = (points >= lo) & (points <= hi)
    # an axis the ray runs parallel to: all t if the point is inside its slab, none otherwise
    t_min = torch.where(parallel, torch.where(inside_slab, -torch.inf, torch.inf), torch.minimum(t1, t2))
    t_max = torch.where(parallel, torch.where(inside_slab, torch.inf, -torch.inf), torch.maximum(t1, t2))
    along = torch.as_tensor(along, dtype=points.dtype, device=points.device)
    enter = torch.maximum(t_min.amax(dim=1), -along)
    leave = torch.minimum(t_max.amin(dim=1), along)
    return enter <= leave
