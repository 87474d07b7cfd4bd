"""The tray of QT-Opt's bin (grasp_bin) and what a reset puts in it, before any physics: its
geometry, the over-the-shoulder camera, the seeded scenes (which shapes of bin_objects, dropped
where) and the MJCF bodies they become. grasp_bin re-exports every name; use it from there.

    scene = sample_scene(seed=3, held_out=True)          # the same seed gives the same scene
    xml = bin_bodies_xml(scene.shapes, scene.positions, scene.quats)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bin_objects import Shape, sample_shapes, spawn_quat
from .sim import TABLE_HEIGHT, _look_at_xyaxes

TRAY_CENTER = np.array([0.48, 0.0])
TRAY_HALF = np.array([0.13, 0.19])  # inner half sizes of the tray
TRAY_WALL, TRAY_WALL_HEIGHT, TRAY_FLOOR = 0.01, 0.045, 0.01  # thickness, height above the floor, floor thickness
FLOOR_Z = TABLE_HEIGHT + TRAY_FLOOR  # the tray's floor (the paper's "bottom of the tray")
# over the robot's right shoulder (the robot faces +x), looking down into the tray
# (closer than first built: at 64x64 the tray then fills ~70% of the width instead of ~40%, so
# an object is 5-8 pixels across, and the gripper stays in view while it descends)
CAMERA_POS = np.array([0.15, -0.30, TABLE_HEIGHT + 0.70])
CAMERA_LOOKAT = np.array([0.50, 0.0, TABLE_HEIGHT])
CAMERA_FOVY = 40.0
CAMERA_NAME = "shoulder"

MIN_OBJECTS, MAX_OBJECTS = 5, 10
SCENE_STREAM = 0x0B1_5CE7  # seed-stream tag of the scenes; the split is the next entry of the key


def scene_rng(seed: int, held_out: bool) -> np.random.Generator:
    """Train and held-out scenes come from disjoint seed streams (the key's second entry)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng((SCENE_STREAM, int(bool(held_out)), int(seed)))


def _place(shapes: list[Shape], rng, spread: float = 1.0) -> list[np.ndarray]:
    """Seeded positions in the tray: objects apart from each other on the floor where they fit,
    the rest in layers above, dropped into the clutter when the scene settles. ``spread`` scales
    how far from the tray's centre they may be (1: anywhere they fit, 0: at the centre)."""
    placed: list[tuple[np.ndarray, float, int]] = []
    out = []
    for s in shapes:
        r = s.radius
        for layer in range(4):
            z = FLOOR_Z + r + 0.003 + 0.1 * layer
            for _ in range(60):
                xy = TRAY_CENTER + rng.uniform(-1, 1, size=2) * (TRAY_HALF - r - 0.003) * spread
                if all(lay != layer or np.linalg.norm(xy - p[:2]) > r + q for p, q, lay in placed):
                    break
            else:
                continue
            break
        p = np.array([*xy, z])
        placed.append((p, r, layer))
        out.append(p)
    return out


@dataclass(frozen=True)
class BinScene:
    """What a reset builds, before any physics: the objects and their drop poses."""

    seed: int
    held_out: bool
    shapes: tuple[Shape, ...]
    positions: tuple[np.ndarray, ...]
    quats: tuple[np.ndarray, ...]  # wxyz


def sample_scene(seed: int, held_out: bool = False, family: str | None = None,
                 objects: int | None = None, spread: float = 1.0) -> BinScene:
    """The seeded scene: 5-10 shapes of the split (or exactly ``objects``; optionally all of one
    family), where they drop from (within ``spread`` of the tray's half-size around its centre)."""
    rng = scene_rng(seed, held_out)
    n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))  # drawn either way: the full trays stay as they were
    if objects is not None:
        if isinstance(objects, bool) or not isinstance(objects, (int, np.integer)) or not 1 <= objects <= MAX_OBJECTS:
            raise ValueError(f"objects must be an integer in 1..{MAX_OBJECTS}, got {objects!r}")
        n = int(objects)
    shapes = sample_shapes(rng, n, held_out=held_out, family=family)
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread must be in [0, 1], got {spread!r}")
    positions = _place(shapes, rng, spread)
    quats = [spawn_quat(s, rng) for s in shapes]
    return BinScene(int(seed), bool(held_out), tuple(shapes), tuple(positions), tuple(quats))


def bin_bodies_xml(shapes: list[Shape], positions, quats) -> str:
    """The tray, the camera and the objects (the hull meshes' <asset> block rides along)."""
    cx, cy = TRAY_CENTER
    hx, hy = TRAY_HALF
    t, h, f = TRAY_WALL, TRAY_WALL_HEIGHT, TRAY_FLOOR
    col = 'rgba="0.25 0.32 0.4 1"'
    tray = (f'<body name="tray" pos="{cx} {cy} {TABLE_HEIGHT}">'
            f'<geom name="tray_floor" class="world" type="box" size="{hx + 2 * t} {hy + 2 * t} {f / 2}" pos="0 0 {f / 2}" rgba="0.55 0.6 0.65 1"/>'
            f'<geom class="world" type="box" size="{t} {hy + 2 * t} {h / 2}" pos="{hx + t} 0 {f + h / 2}" {col}/>'
            f'<geom class="world" type="box" size="{t} {hy + 2 * t} {h / 2}" pos="{-hx - t} 0 {f + h / 2}" {col}/>'
            f'<geom class="world" type="box" size="{hx} {t} {h / 2}" pos="0 {hy + t} {f + h / 2}" {col}/>'
            f'<geom class="world" type="box" size="{hx} {t} {h / 2}" pos="0 {-hy - t} {f + h / 2}" {col}/></body>')
    xy = " ".join(f"{v:.6f}" for v in _look_at_xyaxes(CAMERA_POS.copy(), CAMERA_LOOKAT))
    pos = " ".join(f"{v:.4f}" for v in CAMERA_POS)
    camera = f'<camera name="{CAMERA_NAME}" pos="{pos}" xyaxes="{xy}" fovy="{CAMERA_FOVY}"/>'
    objects = "".join(
        f'<body name="obj{i}" pos="{p[0]:.5f} {p[1]:.5f} {p[2]:.5f}" quat="{" ".join(f"{v:.6f}" for v in q)}">'
        f'<freejoint name="obj{i}_joint"/>{s.geom_xml(f"obj{i}_geom", "bin")}</body>'
        for i, (s, p, q) in enumerate(zip(shapes, positions, quats)))
    assets = "".join(s.asset_xml("bin") for s in shapes)
    # extra bodies go inside <worldbody>: close it, add the meshes, and reopen it (MJCF allows both)
    mesh_block = f"</worldbody><asset>{assets}</asset><worldbody>" if assets else ""
    return tray + camera + objects + mesh_block


__all__ = ["CAMERA_FOVY", "CAMERA_LOOKAT", "CAMERA_NAME", "CAMERA_POS", "FLOOR_Z", "MAX_OBJECTS", "MIN_OBJECTS",
           "SCENE_STREAM", "TRAY_CENTER", "TRAY_FLOOR", "TRAY_HALF", "TRAY_WALL", "TRAY_WALL_HEIGHT", "BinScene",
           "bin_bodies_xml", "sample_scene", "scene_rng"]
