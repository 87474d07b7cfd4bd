"""Pinhole camera model in the ROS optical convention (REP-103: z forward, x right, y down).

`intrinsics` is the 3x3 K matrix with pixel centres at integer coordinates (OpenCV / ROS
CameraInfo). `extrinsics` is the 4x4 pose of the camera optical frame in the world frame, so a
point p_cam maps to the world as extrinsics @ [p_cam, 1]. Pixels are indexed (row, col).
"""
import numpy as np


def intrinsics_from_fovy(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """K of an ideal camera with square pixels and vertical field of view `fovy_deg`."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _check(intrinsics, extrinsics):
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    extrinsics = np.asarray(extrinsics, dtype=np.float64)
    if intrinsics.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got shape {intrinsics.shape}")
    if extrinsics.shape != (4, 4):
        raise ValueError(f"extrinsics must be 4x4, got shape {extrinsics.shape}")
    if not (np.all(np.isfinite(intrinsics)) and np.all(np.isfinite(extrinsics))):
        raise ValueError("camera intrinsics/extrinsics contain NaN or inf")
    return intrinsics, extrinsics


def depth_to_points(depth: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """Organised point cloud (H, W, 3) float32 in the world frame from a depth image in metres.

    Pixels with depth <= 0 or non-finite depth (no return) become NaN, as in a ROS
    PointCloud2 with is_dense=False.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    K, T = _check(intrinsics, extrinsics)
    h, w = depth.shape
    rows, cols = np.mgrid[0:h, 0:w]
    z = depth.astype(np.float64)
    z[~(np.isfinite(z) & (z > 0))] = np.nan
    cam = np.stack([(cols - K[0, 2]) * z / K[0, 0], (rows - K[1, 2]) * z / K[1, 1], z], axis=-1)
    world = cam @ T[:3, :3].T + T[:3, 3]
    return world.astype(np.float32)


def world_to_pixel(points: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """Project world points (N, 3) to (N, 2) float pixel coordinates as (row, col).

    Points behind the camera get NaN. Coordinates may fall outside the image; callers clip.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got shape {points.shape}")
    K, T = _check(intrinsics, extrinsics)
    R, t = T[:3, :3], T[:3, 3]
    cam = (points - t) @ R  # world -> camera: R^T (p - t)
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        col = K[0, 0] * cam[:, 0] / z + K[0, 2]
        row = K[1, 1] * cam[:, 1] / z + K[1, 2]
    out = np.stack([row, col], axis=-1)
    out[~(z > 1e-9)] = np.nan
    return out
