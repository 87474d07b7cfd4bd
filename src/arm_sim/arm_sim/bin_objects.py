"""Procedural objects for QT-Opt's bin grasping (`grasp_bin`): seeded shapes and the held-out split.

Every object comes from an integer *shape id* in [0, N_SHAPES): its family is `shape_id % 5`
(box, cylinder, capsule, ellipsoid, random convex hull) and all of its parameters (sizes,
density, friction, colour, the hull's points) come from `np.random.default_rng((SHAPE_STREAM,
shape_id))`, so a shape id always means the same object.

The train / held-out split (the paper trains on 1000 objects and tests on unseen ones) is a rule
on shape ids, explicit and testable:

    is_held_out(shape_id)  <=>  (shape_id // len(FAMILIES)) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1

i.e. every fifth object *of each family* is held out: 800 training shapes, 200 held-out shapes
(40 per family, hull point sets included, so held-out hulls are geometry never seen in training).
Training scenes draw only from TRAIN_SHAPE_IDS, evaluation scenes only from HELD_OUT_SHAPE_IDS;
scene seeds are split as well (grasp_bin draws train and held-out scenes from different seed
streams). Everything fits the Panda's 8 cm grip across at least one horizontal axis.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILIES = ("box", "cylinder", "capsule", "ellipsoid", "hull")
N_SHAPES = 1000
HELD_OUT_EVERY = 5
SHAPE_STREAM = 0x5EED_0B1  # seed-stream tag: shape parameters never share a stream with scenes


def family_of(shape_id: int) -> str:
    return FAMILIES[int(shape_id) % len(FAMILIES)]


def is_held_out(shape_id: int) -> bool:
    """The split rule (module docstring): every fifth shape of each family is held out."""
    return (int(shape_id) // len(FAMILIES)) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1


ALL_SHAPE_IDS = np.arange(N_SHAPES)
HELD_OUT_SHAPE_IDS = np.array([i for i in ALL_SHAPE_IDS if is_held_out(i)])
TRAIN_SHAPE_IDS = np.array([i for i in ALL_SHAPE_IDS if not is_held_out(i)])


def shape_ids(held_out: bool, family: str | None = None) -> np.ndarray:
    """The shape ids a split may draw from (optionally one family only)."""
    ids = HELD_OUT_SHAPE_IDS if held_out else TRAIN_SHAPE_IDS
    if family is not None:
        if family not in FAMILIES:
            raise ValueError(f"unknown shape family {family!r}; families: {', '.join(FAMILIES)}")
        ids = ids[ids % len(FAMILIES) == FAMILIES.index(family)]
    return ids


@dataclass(frozen=True)
class Shape:
    """One procedural object. `size` is MuJoCo's geom size for primitives (half sizes / radius,
    half length); for hulls it is the bounding half extents and `vertices` holds the points."""

    shape_id: int
    family: str
    size: tuple[float, ...]
    density: float  # kg/m^3
    friction: float  # sliding friction coefficient (the fingers' own is higher; MuJoCo takes the max)
    rgba: tuple[float, float, float, float]
    vertices: tuple[tuple[float, float, float], ...] = ()

    @property
    def held_out(self) -> bool:
        return is_held_out(self.shape_id)

    @property
    def radius(self) -> float:
        """Bounding-sphere radius about the body origin (for spacing and drop heights)."""
        s = np.asarray(self.size, dtype=float)
        if self.family == "box":
            return float(np.linalg.norm(s))
        if self.family == "cylinder":
            return float(np.hypot(s[0], s[1]))
        if self.family == "capsule":
            return float(s[0] + s[1])
        if self.family == "ellipsoid":
            return float(s.max())
        return float(np.linalg.norm(np.asarray(self.vertices), axis=1).max())

    def mesh_name(self, prefix: str) -> str:
        return f"{prefix}_hull{self.shape_id}"

    def asset_xml(self, prefix: str) -> str:
        """The <mesh> asset of a hull (MuJoCo collides meshes by their convex hull); '' otherwise."""
        if self.family != "hull":
            return ""
        verts = " ".join(f"{v:.5f}" for p in self.vertices for v in p)
        return f'<mesh name="{self.mesh_name(prefix)}" vertex="{verts}"/>'

    def geom_xml(self, name: str, prefix: str) -> str:
        rgba = " ".join(f"{c:.3f}" for c in self.rgba)
        common = (f'name="{name}" class="world" rgba="{rgba}" density="{self.density:.1f}" '
                  f'friction="{self.friction:.3f} 0.005 0.004" condim="6"')
        if self.family == "hull":
            return f'<geom {common} type="mesh" mesh="{self.mesh_name(prefix)}"/>'
        size = " ".join(f"{v:.5f}" for v in self.size)
        return f'<geom {common} type="{self.family}" size="{size}"/>'


def make_shape(shape_id: int) -> Shape:
    """The object with this id; the same id always gives the same object."""
    shape_id = int(shape_id)
    if not 0 <= shape_id < N_SHAPES:
        raise ValueError(f"shape id {shape_id} outside [0, {N_SHAPES})")
    rng = np.random.default_rng((SHAPE_STREAM, shape_id))
    family = family_of(shape_id)
    vertices: tuple = ()
    if family == "box":
        # half sizes: the narrower horizontal side fits between the fingers
        size = (rng.uniform(0.012, 0.032), rng.uniform(0.012, 0.026), rng.uniform(0.012, 0.03))
    elif family == "cylinder":
        size = (rng.uniform(0.013, 0.026), rng.uniform(0.015, 0.04))  # radius, half height
    elif family == "capsule":
        size = (rng.uniform(0.012, 0.02), rng.uniform(0.01, 0.035))  # radius, half length
    elif family == "ellipsoid":
        size = (rng.uniform(0.018, 0.034), rng.uniform(0.014, 0.024), rng.uniform(0.014, 0.03))
    else:  # random convex hull of 8-16 points spread inside a random ellipsoid
        n = int(rng.integers(8, 17))
        axes = np.array([rng.uniform(0.018, 0.034), rng.uniform(0.014, 0.024), rng.uniform(0.014, 0.03)])
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pts = d * rng.uniform(0.65, 1.0, size=(n, 1)) * axes
        # the six extreme points keep the hull full-dimensional (never flat or degenerate)
        pts = np.vstack([pts, np.diag(axes) * 0.9, -np.diag(axes) * 0.9])
        pts -= pts.mean(axis=0)
        vertices = tuple(tuple(float(v) for v in p) for p in pts)
        size = tuple(float(v) for v in np.abs(pts).max(axis=0))
    rgb = rng.uniform(0.1, 0.95, size=3)
    return Shape(shape_id=shape_id, family=family, size=tuple(float(v) for v in size),
                 density=float(rng.uniform(300.0, 900.0)), friction=float(rng.uniform(0.7, 1.2)),
                 rgba=(*(float(c) for c in rgb), 1.0), vertices=vertices)


def sample_shapes(rng: np.random.Generator, n: int, held_out: bool = False, family: str | None = None) -> list[Shape]:
    """n distinct shapes from one split (and optionally one family)."""
    ids = shape_ids(held_out, family)
    return [make_shape(i) for i in rng.choice(ids, size=n, replace=False)]


def local_points(shape: Shape) -> np.ndarray:
    """Points on the object's surface in its geom frame (primitives: analytic samples; hulls: the
    input points, a superset of the hull's vertices). For footprints and grasp heights."""
    s = np.asarray(shape.size, dtype=float)
    if shape.family == "box":
        return np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float) * s
    a = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
    if shape.family == "cylinder":
        return np.vstack([ring * s[0] + [0, 0, z] for z in (-s[1], s[1])])
    if shape.family == "capsule":
        u = _sphere_points()
        return np.vstack([u * s[0] + [0, 0, z] for z in (-s[1], s[1])])
    if shape.family == "ellipsoid":
        return _sphere_points() * s
    return np.asarray(shape.vertices, dtype=float)


def _sphere_points(n: int = 64) -> np.ndarray:
    """Fibonacci points on the unit sphere (deterministic)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def _yaw_quat(yaw):
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def _quat_mul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def spawn_quat(shape: Shape, rng) -> np.ndarray:
    """Random resting-ish orientation: any yaw; cylinders and capsules lie down half the time;
    ellipsoids and hulls are dropped in any orientation."""
    yaw = _yaw_quat(rng.uniform(-np.pi, np.pi))
    if shape.family in ("cylinder", "capsule") and rng.random() < 0.5:
        return _quat_mul(yaw, np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0]))
    if shape.family in ("ellipsoid", "hull"):
        q = rng.normal(size=4)
        return q / np.linalg.norm(q)
    return yaw
