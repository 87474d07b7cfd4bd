"""Simulator, planning and demo benchmarks. One JSON object per line: name, value, unit (+ context).

Examples:
    python bench/bench_sim.py                 # everything, full sizes (about 2-3 minutes)
    python bench/bench_sim.py --only plan     # one group: physics, render, plan, demos
    python bench/bench_sim.py --poses 200 --demo-seeds 3
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def emit(name, value, unit, **extra):
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit, **extra}), flush=True)


def bench_physics(seconds=3.0):
    import mujoco

    from arm_sim.environment import Environment

    task = Environment(image_size=(128, 128)).get_task("pick_up_cup")
    task.reset(seed=0)
    m, d = task.sim.model, task.sim.data
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        mujoco.mj_step(m, d, nstep=500)
        n += 500
    emit("physics_steps_per_second", n / (time.perf_counter() - t0), "steps/s",
         scene="pick_up_cup", timestep=m.opt.timestep, target=">= 20000")


def bench_render(frames=200, size=128):
    from arm_sim.environment import Environment

    task = Environment(image_size=(size, size)).get_task("pick_up_cup")
    task.reset(seed=0)
    task.sim.observe()  # GL context creation is not part of the per-frame cost
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        task.sim.observe()
        times.append(time.perf_counter() - t0)
    times = np.array(times) * 1000
    emit("rgbd_observation_ms", np.median(times), "ms", p95=round(float(np.percentile(times, 95)), 3),
         size=f"{size}x{size}", includes="rgb + depth render + world point cloud", target="<= 30")
    emit("rgbd_observations_per_second", 1000 / np.mean(times), "obs/s", size=f"{size}x{size}")


def reachable_poses(task, n, seed=0):
    """TCP poses of random collision-free arm configurations over the table: reachable by
    construction, spread over the workspace the tasks use."""
    from arm_control import panda

    rng = np.random.default_rng(seed)
    motion, poses = task.motion, []
    motion.collision.set_scene(task.sim.data.qpos.copy(), mocap=(task.sim.data.mocap_pos, task.sim.data.mocap_quat))
    while len(poses) < n:
        q = np.clip(panda.NEUTRAL + rng.uniform(-1.0, 1.0, 7), panda.LOWER, panda.UPPER)
        pose = motion.kinematics.fk(q)
        x, y, z = pose[:3]
        if 0.3 <= x <= 0.65 and abs(y) <= 0.3 and 0.8 <= z <= 1.25 and motion.collision.is_valid(q):
            poses.append(pose)
    return poses


def bench_plan(n_poses=100):
    from arm_control import panda
    from arm_sim.environment import Environment

    task = Environment(image_size=(64, 64)).get_task("pick_up_cup")
    task.reset(seed=0)
    poses = reachable_poses(task, n_poses)
    qpos = task.sim.data.qpos.copy()
    mocap = (task.sim.data.mocap_pos.copy(), task.sim.data.mocap_quat.copy())
    times, ok, outcomes = [], 0, {}
    for pose in poses:
        t0 = time.perf_counter()
        plan = task.motion.plan(qpos, panda.NEUTRAL, pose, mocap=mocap)
        times.append(time.perf_counter() - t0)
        ok += plan.ok
        outcomes[plan.outcome] = outcomes.get(plan.outcome, 0) + 1
    times = np.array(times) * 1000
    emit("ik_plus_plan_ms_median", np.median(times), "ms", p95=round(float(np.percentile(times, 95)), 2),
         poses=n_poses, planner=task.motion.planner, includes="IK + OMPL + ruckig", target="<= 50")
    emit("ik_plus_plan_success_rate", ok / n_poses, "fraction", outcomes=outcomes, target=">= 0.99")


def bench_plan_around_obstacle(n=30):
    """Moves from one side of a wall to the other: the straight line collides, OMPL must plan."""
    from arm_control import panda
    from arm_control.motion import MotionPlanner
    from arm_control.transforms import top_down_quat
    from arm_sim.sim import TABLE_HEIGHT, PandaSim

    wall = (f'<body name="wall" pos="0.5 0 {TABLE_HEIGHT + 0.15}">'
            '<geom class="world" type="box" size="0.08 0.01 0.15"/></body>')
    sim = PandaSim(wall, image_size=(32, 32))
    sim.reset_robot()
    motion = MotionPlanner(sim.model)
    rng = np.random.default_rng(0)
    times, ok = [], 0
    for _ in range(n):
        side = rng.choice([-1, 1])
        start = np.r_[rng.uniform(0.4, 0.6), side * rng.uniform(0.1, 0.25), TABLE_HEIGHT + rng.uniform(0.05, 0.2),
                      top_down_quat(np.pi / 2)]
        goal = np.r_[rng.uniform(0.4, 0.6), -side * rng.uniform(0.1, 0.25), TABLE_HEIGHT + rng.uniform(0.05, 0.2),
                     top_down_quat(np.pi / 2)]
        motion.collision.set_scene(sim.data.qpos.copy())
        start_q, _ = motion.solve_ik(start, panda.NEUTRAL)
        t0 = time.perf_counter()
        plan = motion.plan(sim.data.qpos.copy(), start_q, goal)
        times.append(time.perf_counter() - t0)
        ok += plan.ok
    times = np.array(times) * 1000
    emit("ik_plus_plan_ms_around_obstacle", np.median(times), "ms", p95=round(float(np.percentile(times, 95)), 2),
         success_rate=ok / n, moves=n, planner=motion.planner)


def bench_demos(seeds=1, size=128):
    from arm_perception.bag_writer import EpisodeWriter
    from arm_sim.environment import Environment
    from arm_sim.tasks import TASK_NAMES

    env = Environment(image_size=(size, size))
    with tempfile.TemporaryDirectory() as tmp:
        for name in TASK_NAMES:
            task = env.get_task(name)
            walls, successes, frames_n = [], 0, 0
            for s in range(seeds):
                t0 = time.perf_counter()
                frames, ok = task.run_expert(s)
                with EpisodeWriter(Path(tmp) / name / f"seed_{s}") as bag:
                    for obs, reward, success in frames:
                        bag.write(obs.misc["stamp"], obs, reward, success)
                walls.append(time.perf_counter() - t0)
                successes += ok
                frames_n += len(frames)
            task.close()
            emit(f"demo_wall_seconds/{name}", np.max(walls), "s", mean=round(float(np.mean(walls)), 2),
                 seeds=seeds, successes=successes, frames_per_demo=frames_n / seeds, size=f"{size}x{size}",
                 includes="reset + expert + rendering + MCAP bag", target="<= 10")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["physics", "render", "plan", "demos"])
    parser.add_argument("--poses", type=int, default=100)
    parser.add_argument("--demo-seeds", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    groups = {"physics": bench_physics, "render": bench_render, "plan": lambda: (bench_plan(args.poses), bench_plan_around_obstacle()),
              "demos": lambda: bench_demos(args.demo_seeds)}
    for name, fn in groups.items():
        if args.only in (None, name):
            fn()
    return 0


if __name__ == "__main__":
    sys.exit(main())
