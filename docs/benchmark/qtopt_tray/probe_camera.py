"""Shared by the probes that read the image where an action takes the gripper (probe_glimpse.py,
probe_point.py): their own command-line options, the bin camera's calibration as buffers of the
Q-network, the projection of a grid of world points around an x, y onto the image, and the hand-off
to bench/bench_qtopt_tray.py with the remaining arguments."""
import runpy
import sys
from pathlib import Path

import numpy as np
import torch

from arm_sim import grasp_bin as gb
from arm_sim.bin_scene import FLOOR_Z

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_qtopt_tray.py"
PLANE_Z = FLOOR_Z + 0.02  # the height the reads are projected at: about a box's middle
IMAGE = int(sys.argv[sys.argv.index("--image-size") + 1]) if "--image-size" in sys.argv else 64


def option(name, default, kind):
    """A probe's own option, taken out of sys.argv so the bench never sees it."""
    if name not in sys.argv:
        return default
    i = sys.argv.index(name)
    value = kind(sys.argv[i + 1])
    del sys.argv[i:i + 2]
    return value


def calibration():
    """The fixed bin camera's intrinsics and camera-to-world transform at IMAGE pixels."""
    driver = gb.GraspBinDriver(image_size=(IMAGE, IMAGE), tray="one_box_low")
    driver.reset(0)
    K, camera_to_world = driver.intrinsics.copy(), driver.camera_extrinsics()
    driver.close()
    return K, camera_to_world


K, CAMERA_TO_WORLD = calibration()


def register_camera(net, cells, spacing):
    """Give ``net`` the calibration and a ``cells`` x ``cells`` grid of x, y offsets ``spacing`` apart."""
    world_to_camera = np.linalg.inv(CAMERA_TO_WORLD)
    net.register_buffer("rotation", torch.tensor(world_to_camera[:3, :3], dtype=torch.float32), persistent=False)
    net.register_buffer("translation", torch.tensor(world_to_camera[:3, 3], dtype=torch.float32), persistent=False)
    net.register_buffer("camera", torch.tensor(K, dtype=torch.float32), persistent=False)
    ticks = (torch.arange(cells, dtype=torch.float32) - (cells - 1) / 2) * spacing
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    net.register_buffer("offsets", torch.stack([gx, gy], dim=-1).reshape(-1, 2), persistent=False)


def pixels(net, xy):
    """(..., 2) world x, y of grid centres -> (..., cells * cells, 2) pixel u, v of the grid's
    points on the plane PLANE_Z."""
    points = xy[..., None, :] + net.offsets
    world = torch.cat([points, torch.full_like(points[..., :1], PLANE_Z)], dim=-1)
    cam = world @ net.rotation.T + net.translation
    return cam[..., :2] / cam[..., 2:3] * net.camera[[0, 1], [0, 1]] + net.camera[[0, 1], [2, 2]]


def run_bench():
    sys.argv[0] = str(BENCH)
    runpy.run_path(sys.argv[0], run_name="__main__")
