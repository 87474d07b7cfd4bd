"""The scene a robot driver (sim_node) simulates: one ROS-free interface for the eight ARM tasks
and QT-Opt's `grasp_bin`.

    scene = driver_scene("grasp_bin", image_size=(64, 64))
    scene.reset(seed=3, held_out=False)          # ValueError: bad seed, or held_out for a task without one
    sim = scene.sim                              # PandaSim: set_arm_target / set_gripper / step / joint_positions
    rgb, depth = scene.render()                  # the task's camera, depth in metres (0: no return)
    K, T = scene.intrinsics, scene.camera_extrinsics()  # optical frame (REP-103) -> world
    scene.success(); scene.name; scene.close()

The eight tasks use the front camera; grasp_bin its over-the-shoulder camera and, at each reset,
a new PandaSim (read `scene.sim` every time instead of keeping it).
"""
from __future__ import annotations

import numpy as np

from .environment import Environment
from .tasks import QTOPT_TASK_NAMES


class TaskScene:
    """One of the eight ARM tasks (a TaskEnvironment) seen by a driver: the front camera."""

    supports_held_out = False

    def __init__(self, name: str, image_size=(128, 128)):
        self.env = Environment(image_size=image_size).get_task(name)
        self.held_out = False

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def sim(self):
        return self.env.sim

    @property
    def intrinsics(self) -> np.ndarray:
        return self.env.sim.intrinsics

    def reset(self, seed: int, held_out: bool = False):
        if held_out:
            raise ValueError(f"held_out is only for grasp_bin (QT-Opt's held-out objects); "
                             f"{self.name} has no held-out split: set held_out false")
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.env.reset(seed=int(seed))

    def success(self) -> bool:
        return self.env.success()

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        return self.env.sim.render()

    def camera_extrinsics(self) -> np.ndarray:
        return self.env.sim.camera_extrinsics()

    def close(self):
        self.env.close()


def driver_scene(name: str, image_size=(128, 128), tray: str = "full"):
    """The driver's scene of task `name`: a GraspBinDriver for grasp_bin (with the named `tray`),
    else a TaskScene (ValueError naming the valid tasks for an unknown one, or for a tray other
    than the full bin on one of the eight tasks)."""
    from .grasp_bin import GraspBinDriver, check_tray

    check_tray(tray, name)
    if name in QTOPT_TASK_NAMES:
        return GraspBinDriver(image_size=image_size, tray=tray)
    return TaskScene(name, image_size)


__all__ = ["TaskScene", "driver_scene"]
