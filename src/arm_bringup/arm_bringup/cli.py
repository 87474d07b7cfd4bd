"""The `arm` command: the project's entry point on machines with only the ROS 2 wheels.

Examples:
    arm tasks
    arm demos --task reach_target --episodes 10 --seed 0 --out runs/demos
    arm demos --task pick_up_cup --episodes 5 --out runs/demos --image-size 64
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def _cmd_tasks(args) -> int:
    from arm_sim.tasks import TASK_NAMES

    print("\n".join(TASK_NAMES))
    return 0


def _cmd_demos(args) -> int:
    from pathlib import Path

    from arm_perception.bags import EpisodeWriter
    from arm_sim.environment import Environment
    from arm_sim.tasks import TASK_NAMES

    if args.task not in TASK_NAMES:
        print(f"arm demos: unknown task {args.task!r}. Valid tasks:", file=sys.stderr)
        print("\n".join(f"  {n}" for n in TASK_NAMES), file=sys.stderr)
        return 2
    if args.episodes < 1:
        print("arm demos: --episodes must be at least 1", file=sys.stderr)
        return 2
    out = Path(args.out) / args.task
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    task = Environment(image_size=(args.image_size, args.image_size)).get_task(args.task)
    successes = 0
    for i in range(args.episodes):
        seed = args.seed + i
        path = out / f"seed_{seed:06d}"
        if path.exists():
            print(f"arm demos: {path} already exists; choose another --out or --seed", file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        frames, ok = task.run_expert(seed)
        with EpisodeWriter(path) as bag:
            for obs, reward, success in frames:
                bag.write(obs.misc.get("stamp", 0.0), obs, reward, success)
        successes += ok
        print(f"[{i + 1}/{args.episodes}] {args.task} seed={seed} {'success' if ok else 'FAILED'} "
              f"frames={len(frames)} {time.perf_counter() - t0:.1f}s -> {path}", file=sys.stderr, flush=True)
    task.close()
    print(json.dumps({"task": args.task, "episodes": args.episodes, "successes": successes,
                      "seconds": round(time.perf_counter() - start, 2), "out": str(out)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tasks", help="list the task names, one per line",
                       description="Examples:\n    arm tasks", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=_cmd_tasks)

    p = sub.add_parser("demos", help="record scripted expert demonstrations as rosbag2 (MCAP)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                           "Examples:\n"
                           "    arm demos --task reach_target --episodes 10 --seed 0 --out runs/demos\n"
                           "    arm demos --task stack_wine --episodes 3 --out /tmp/demos --image-size 64\n\n"
                           "Writes OUT/TASK/seed_NNNNNN/ (one rosbag2 MCAP bag per episode, 20 Hz frames), "
                           "progress on stderr, and one JSON line on stdout at the end."))
    p.add_argument("--task", required=True, help="task name (see `arm tasks`)")
    p.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    p.add_argument("--out", required=True, help="output directory; bags go to OUT/TASK/")
    p.add_argument("--image-size", type=int, default=128, help="camera width and height in pixels (default 128)")
    p.set_defaults(func=_cmd_demos)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
