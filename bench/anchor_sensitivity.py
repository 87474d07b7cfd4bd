"""How far does the actor's anchor jump when Q-attention is one pixel off the demo's pixel?

With relative translation (the ``cpu`` preset's ``actor_relative_xyz``) the pose is the 3-D point
at the attended pixel (the anchor) plus an offset of a few cm. Where the keyframe's pixel lies on
a thin object (a bottle's neck), the pixel beside it sees the table behind: the anchor jumps tens
of cm and the offset cannot bring the pose back. On each task's demo decisions (the keyframe
chain, no augmentation), for every pixel at ``--radius`` from the demo's pixel, this measures

* ``jump_cm``: how far the anchor moves from the one at the demo's pixel;
* ``miss_cm``: how far the anchor is from the keyframe's position (what the offset must cover;
  the ``cpu`` preset's offsets reach about 10 cm per axis);

under two anchor rules (``demo_dataset.anchor_point``): ``centre`` (the point at the pixel, the
actor's with ``anchor_window`` 1) and ``nearest`` (of the ``--window`` x ``--window`` pixels
around it, the point nearest the camera: ``anchor_window`` 3 by default; a pixel beside a thin
object takes the object). One JSON line per (task, decision stage, rule): medians,
90th percentiles, and the share of off-by-one pixels whose anchor jumps more than 5 cm.

Examples:
    python bench/anchor_sensitivity.py runs/sw_noise/demos --tasks stack_wine
    python bench/anchor_sensitivity.py runs/bench/demos --radius 2 --window 5
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

RULES = ("centre", "nearest")
JUMP_CM = 5.0  # an anchor jump beyond what the offsets correct comfortably


def emit(**row):
    print(json.dumps(row), flush=True)


def ring(radius: int) -> list[tuple[int, int]]:
    """The pixel offsets at Chebyshev distance ``radius`` (8 at radius 1)."""
    return [(dr, dc) for dr in range(-radius, radius + 1) for dc in range(-radius, radius + 1)
            if max(abs(dr), abs(dc)) == radius]


def chain_stages(transitions) -> list[tuple[int, object]]:
    """(stage, transition) of each episode's keyframe chain: stage k is its k-th decision."""
    stages, last_episode, k = [], None, 0
    for t in transitions:
        k = k + 1 if t.episode == last_episode else 0
        last_episode = t.episode
        stages.append((k, t))
    return stages


def measure(transitions, radius: int, window: int, camera: np.ndarray) -> dict:
    """{(stage, rule): {"jump": [...], "miss": [...], "miss_on_pixel": [...]}} in cm."""
    from arm_policy.demo_dataset import anchor_point

    sides = {"centre": 1, "nearest": window}
    out: dict = {}
    for stage, t in chain_stages(transitions):
        cloud, (row, col), target = t.point_cloud.astype(np.float64), t.pixel, t.action[:3]
        height, width = cloud.shape[:2]
        for rule in RULES:
            cell = out.setdefault((stage, rule), {"jump": [], "miss": [], "miss_on_pixel": []})
            at_pixel = anchor_point(cloud, (row, col), sides[rule], camera)
            cell["miss_on_pixel"].append(100 * np.linalg.norm(at_pixel - target))
            for dr, dc in ring(radius):
                r, c = row + dr, col + dc
                if not (0 <= r < height and 0 <= c < width):
                    continue
                moved = anchor_point(cloud, (r, c), sides[rule], camera)
                cell["jump"].append(100 * np.linalg.norm(moved - at_pixel))
                cell["miss"].append(100 * np.linalg.norm(moved - target))
    return out


def summary(values) -> dict:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"median": None, "p90": None}
    return {"median": round(float(np.median(v)), 2), "p90": round(float(np.percentile(v, 90)), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo_dir", help="an `arm demos` folder: DEMO_DIR/TASK/seed_*")
    parser.add_argument("--tasks", default="", help="comma-separated (default: every task folder there)")
    parser.add_argument("--radius", type=int, default=1, help="pixels between the demo's pixel and the off ones")
    parser.add_argument("--window", type=int, default=3, help="side of the nearest rule's window (odd)")
    parser.add_argument("--episodes", type=int, default=50, help="demos per task to read")
    args = parser.parse_args(argv)
    if args.window < 1 or args.window % 2 == 0:
        parser.error(f"--window must be a positive odd number, not {args.window}")
    if args.radius < 1:
        parser.error(f"--radius must be >= 1, not {args.radius}")
    root = Path(args.demo_dir)
    tasks = [t for t in args.tasks.split(",") if t] or sorted(p.name for p in root.iterdir() if p.is_dir())
    if not tasks:
        parser.error(f"no task folders under {root}")

    from arm_policy.camera_ray import camera_centre
    from arm_policy.demo_dataset import load_demos

    for task in tasks:
        if not (root / task).is_dir():
            parser.error(f"no demos of {task!r} under {root} (record them with `arm demos --task {task}`)")
        transitions = load_demos(root, task, augmentation_every=0, max_episodes=args.episodes)
        if not transitions:
            print(f"{task}: no usable demos under {root / task}", file=sys.stderr)
            return 1
        camera = camera_centre(t.point_cloud for t in transitions[:8])
        for (stage, rule), cell in sorted(measure(transitions, args.radius, args.window, camera).items()):
            jump = np.asarray(cell["jump"], dtype=float)
            emit(task=task, stage=stage, rule=rule, decisions=len(cell["miss_on_pixel"]),
                 radius=args.radius, window=args.window if rule == "nearest" else 1,
                 jump_cm=summary(jump), jumps_over_5cm=round(float(np.mean(jump[np.isfinite(jump)] > JUMP_CM)), 3),
                 miss_cm=summary(cell["miss"]), miss_on_pixel_cm=summary(cell["miss_on_pixel"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
