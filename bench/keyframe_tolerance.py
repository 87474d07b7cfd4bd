"""How precise must each keyframe be? The scripted expert of a task, on fixed scenes, with one of
its keyframes moved off the expert's pose, collision-checked as the benchmark runs: the success
rate for each offset. A learned agent's pose error (the benchmark's results.md) reads against these
windows: a task whose grasp tolerates +-5 mm is not learned by an agent whose poses are 2 cm off.

One JSON object per line: per (task, keyframe, axis, offset) the success rate and how the
episodes ended; then per (task, keyframe, axis) the window, the largest offsets on either side
up to which every tried offset kept at least half the expert's success.
Axes are the gripper's: ``across`` (the fingers' closing direction), ``along`` (the pads' width),
``height`` (world z), and ``yaw`` (a turn about world z, in degrees).

Examples:
    python bench/keyframe_tolerance.py --tasks stack_wine
    python bench/keyframe_tolerance.py --tasks all --seeds 8 --offsets 0.5,1,2 --yaw-offsets 5,10,20
    python bench/keyframe_tolerance.py --tasks phone_on_base --keyframes 1 --axes height
"""
import argparse
import json
import sys
from collections import Counter

import numpy as np

AXES = ("across", "along", "height", "yaw")
SCENE_SEED = 50_000  # scenes of their own: not the demos' (0..) nor the evaluation's


def emit(**row):
    print(json.dumps(row), flush=True)


def moved(pose: np.ndarray, axis: str, offset: float) -> np.ndarray:
    """``pose`` (xyz, quaternion xyzw) moved by ``offset`` (metres; degrees for yaw) along the
    gripper's ``axis``."""
    from arm_control.transforms import ACROSS_FINGERS, ALONG_PADS, mat_to_quat_xyzw, quat_xyzw_to_mat

    pose = np.array(pose, dtype=float)
    rotation = quat_xyzw_to_mat(pose[3:])
    if axis == "yaw":
        a = np.radians(offset)
        turn = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        pose[3:] = mat_to_quat_xyzw(turn @ rotation)
    elif axis == "height":
        pose[2] += offset
    else:
        pose[:3] += offset * rotation[:, ACROSS_FINGERS if axis == "across" else ALONG_PADS]
    return pose


def run(task_env, seed: int, keyframe: int | None = None, axis: str = "", offset: float = 0.0) -> str:
    """One expert episode on scene ``seed``, keyframe ``keyframe`` moved -> how it ended:
    success, failed (every pose reached, task not done) or why a pose was not executed."""
    task_env.reset(seed)
    waypoints = task_env.task.expert(task_env.sim)
    if keyframe is not None:
        if keyframe >= len(waypoints):
            raise SystemExit(f"{task_env.name} has {len(waypoints)} keyframes (0..{len(waypoints) - 1}), "
                             f"not {keyframe}")
        waypoints[keyframe].pose = moved(waypoints[keyframe].pose, axis, offset)
    for wp in waypoints:
        result = task_env.execute(wp.pose, wp.gripper)
        if result.outcome != "reached":
            return result.outcome
        if task_env.success():
            return "success"
    return "success" if task_env.success() else "failed"


def window(rates: dict[float, float], floor: float) -> tuple[float, float]:
    """(lowest, highest) offset reached from 0 through offsets whose rate stays >= floor."""
    lo = hi = 0.0
    for o in sorted(o for o in rates if o > 0):
        if rates[o] < floor:
            break
        hi = o
    for o in sorted((o for o in rates if o < 0), reverse=True):
        if rates[o] < floor:
            break
        lo = o
    return lo, hi


def main(argv=None) -> int:
    from arm_sim.environment import Environment
    from arm_sim.tasks import TASK_NAMES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="stack_wine,phone_on_base,pick_and_lift",
                   help="task names, or all (the ARM tasks)")
    p.add_argument("--seeds", type=int, default=8, help="scenes per offset")
    p.add_argument("--offsets", default="0.5,1,1.5,2,3", help="cm, each tried on both sides")
    p.add_argument("--yaw-offsets", default="5,10,20,40", help="degrees, each tried on both sides")
    p.add_argument("--axes", default=",".join(AXES), help=f"of {', '.join(AXES)}")
    p.add_argument("--keyframes", default="all", help="indices into the expert's keyframes, or all")
    p.add_argument("--image-size", type=int, default=32, help="rendering is not what is measured")
    args = p.parse_args(argv)

    tasks = [t for t in TASK_NAMES if t != "reach_target"] if args.tasks == "all" else args.tasks.split(",")
    axes = args.axes.split(",")
    unknown = [t for t in tasks if t not in TASK_NAMES] + [a for a in axes if a not in AXES]
    if unknown:
        p.error(f"unknown {', '.join(unknown)}: tasks are {', '.join(TASK_NAMES)}; axes {', '.join(AXES)}")
    env = Environment(image_size=args.image_size, collision_checking=True)
    seeds = range(SCENE_SEED, SCENE_SEED + args.seeds)
    for name in tasks:
        task_env = env.get_task(name)
        expert = Counter(run(task_env, s) for s in seeds)
        base = expert["success"] / args.seeds
        task_env.reset(seeds[0])
        count = len(task_env.task.expert(task_env.sim))
        emit(task=name, keyframe=None, axis=None, offset=0.0, success=base, outcomes=dict(expert),
             keyframes=count)
        keyframes = range(count) if args.keyframes == "all" else [int(k) for k in args.keyframes.split(",")]
        for k in keyframes:
            for axis in axes:
                steps = args.yaw_offsets if axis == "yaw" else args.offsets
                unit, scale = ("deg", 1.0) if axis == "yaw" else ("cm", 0.01)
                rates = {0.0: base}
                for o in sorted({s * float(v) for v in steps.split(",") for s in (-1, 1)}):
                    ends = Counter(run(task_env, s, k, axis, o * scale) for s in seeds)
                    rates[o] = ends["success"] / args.seeds
                    emit(task=name, keyframe=k, axis=axis, offset=o, unit=unit, success=rates[o],
                         outcomes=dict(ends))
                lo, hi = window(rates, 0.5 * base)
                emit(task=name, keyframe=k, axis=axis, unit=unit, window=[lo, hi], expert_success=base,
                     seeds=args.seeds)
        task_env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
