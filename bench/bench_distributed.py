"""Distributed QT-Opt on this machine against in-process training, measured in the same run.
One JSON object per line: name, value, unit (+ context).

Examples:
    python bench/bench_distributed.py                          # 60 s per configuration, full sizes
    python bench/bench_distributed.py --seconds 30 --configs 1x0,2x1
    python bench/bench_distributed.py --image-size 32 --seconds 20   # a quick look
    python bench/bench_distributed.py --startup-only --seconds 20    # start-up to the first collected step only

Each configuration is a real `arm train` run (a subprocess) on the same scripted grasps (recorded
once into a shared folder) for ``--seconds`` of training, with evaluation kept to the untrained
and final ones (``--eval-episodes`` each). Figures per run, from its summary.json:

    env_steps_per_s   collected env steps per second of the run's clock (both trainers' clock
                      starts after the offline data and ends after the final evaluation)
    updates_per_s     learner updates per second of the same clock
    targets_per_s     Bellman targets per second (distributed, with updaters)
    startup_s         command start to the first collected episode (distributed; with the
                      offline data already recorded, so the first episode is one of the policy's)

``inprocess`` is `arm train --inprocess` (collect, then ``updates_per_step`` updates per step,
in turn); ``ray CxU`` is `arm train --distributed` with C collectors and U Bellman updaters,
held to the same updates per step (a collector waits when it is an episode ahead).

Ray's own cost is read on collection alone, where both sides do the same work per step (a 64x64
render, a CEM decision with exploration, an executed move): ``collect_inprocess`` plays episodes
in this process on one torch thread for ``--seconds``; ``ray_1x0_free`` is the distributed run
with ``--updates-per-step 0`` (collector and learner both run free, each on its own core): its
collector's env steps over the time it spent playing them, the hand-over of each episode to the
replay server included (``collector_env_steps_per_second`` in its summary). ``ray_overhead`` = 1 - ray_1x0_free / collect_inprocess (target:
at most 0.20). Two cores: the configurations run one after the other, never side by side.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def emit(name, value, unit, **extra):
    value = None if value is None else round(float(value), 4)
    print(json.dumps({"name": name, "value": value, "unit": unit, **extra}), flush=True)


def run_arm(args: list[str], log: Path) -> dict:
    """`arm train ...` -> its summary (the last stdout line); its stderr goes to ``log``."""
    with open(log, "w") as err:
        out = subprocess.run([sys.executable, "-m", "arm_bringup.cli", "train", *args], stdout=subprocess.PIPE,
                             stderr=err, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"arm train {' '.join(args)} failed ({out.returncode}); see {log}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def collect_inprocess(seconds: float, image_size: int) -> float:
    """Env steps/s of exploring QT-Opt episodes in this process (one torch thread)."""
    import torch

    from arm_policy.agents.qtopt import QTOptAgent, QTOptConfig
    from arm_policy.grasp_episodes import agent_observation, play_episode
    from arm_policy.rollout import train_seed
    from arm_sim.grasp_bin import GraspBinEnv

    torch.set_num_threads(1)
    cfg = QTOptConfig(image_size=image_size)
    agent = QTOptAgent(cfg, device="cpu", seed=0)
    env = GraspBinEnv(image_size=(image_size, image_size), max_steps=cfg.max_steps)
    play_episode(env, train_seed(0, 0), lambda obs: agent.act(agent_observation(obs), True).action)  # warm-up
    steps, k, began = 0, 1, time.monotonic()
    while time.monotonic() - began < seconds:
        steps += len(play_episode(env, train_seed(0, k), lambda obs: agent.act(agent_observation(obs), True).action)) - 1
        k += 1
    rate = steps / (time.monotonic() - began)
    env.close()
    return rate


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="training time per configuration (default 60)")
    p.add_argument("--configs", default="1x0,1x1,1x2,2x0,2x1,2x2",
                   help="COLLECTORSxUPDATERS, comma-separated (default 1x0,1x1,1x2,2x0,2x1,2x2)")
    p.add_argument("--demos", type=int, default=50, help="scripted grasps of the offline data (default 50)")
    p.add_argument("--image-size", type=int, default=64, help="camera image size (default 64, the cpu preset's)")
    p.add_argument("--updates-per-step", type=int, default=4, help="as arm train's (default 4)")
    p.add_argument("--eval-episodes", type=int, default=3, help="episodes of the first and last evaluation")
    p.add_argument("--out", default="", help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--worker-niceness", type=int, default=15, help="the Ray actors' nice value (Ray's default 15)")
    p.add_argument("--startup-only", action="store_true",
                   help="only the distributed configurations' start-up (after a warm-up run records the offline data)")
    a = p.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="bench_distributed-"))
    root.mkdir(parents=True, exist_ok=True)
    common = ["--algo", "qtopt", "--task", "grasp_bin", "--demos", str(a.demos), "--minutes", str(a.seconds / 60),
              "--eval-every", "1000000", "--eval-episodes", str(a.eval_episodes), "--checkpoint-every", "1000000",
              "--updates-per-step", str(a.updates_per_step), "--demo-dir", str(root / "demos"),
              "--agent-overrides", f"image_size={a.image_size}"]
    context = {"seconds": a.seconds, "image_size": a.image_size, "updates_per_step": a.updates_per_step,
               "cpus": os.cpu_count()}

    context["worker_niceness"] = a.worker_niceness
    began = time.monotonic()
    if a.startup_only:
        run_arm(["--distributed", *common, "--collectors", "1", "--bellman-updaters", "0", "--out",
                 str(root / "warm_up")], root / "warm_up.log")  # records the offline data, not reported
        for config in a.configs.split(","):
            collectors, updaters = (int(x) for x in config.split("x"))
            name = f"ray_{collectors}x{updaters}"
            s = run_arm(["--distributed", *common, "--collectors", str(collectors), "--bellman-updaters",
                         str(updaters), "--worker-niceness", str(a.worker_niceness), "--out", str(root / name)],
                        root / f"{name}.log")
            emit(f"{name}_startup_s", s["startup_seconds"], "s", target=15.0, **context, collectors=collectors,
                 bellman_updaters=updaters)
        emit("bench_wall", time.monotonic() - began, "s", folder=str(root))
        return 0
    collect = collect_inprocess(a.seconds, a.image_size)
    emit("collect_inprocess_env_steps_per_s", collect, "steps/s", **context)
    free = run_arm(["--distributed", *[x if x != str(a.updates_per_step) else "0" for x in common],
                    "--collectors", "1", "--bellman-updaters", "0", "--out", str(root / "ray_1x0_free")],
                   root / "ray_1x0_free.log")
    free_rate = free["collector_env_steps_per_second"]
    emit("ray_1x0_free_env_steps_per_s", free_rate, "steps/s", **context, collectors=1, bellman_updaters=0,
         updates_per_s_meanwhile=round(free["updates"] / free["wall_seconds"], 2))
    emit("ray_overhead", 1 - free_rate / collect, "fraction of in-process collection env steps/s", target=0.20,
         **context)
    ref = run_arm(["--inprocess", *common, "--out", str(root / "inprocess")], root / "inprocess.log")
    ref_rate = ref["env_steps"] / ref["wall_seconds"]
    emit("inprocess_env_steps_per_s", ref_rate, "steps/s", **context)
    emit("inprocess_updates_per_s", ref["updates"] / ref["wall_seconds"], "updates/s", **context)
    for config in a.configs.split(","):
        collectors, updaters = (int(x) for x in config.split("x"))
        name = f"ray_{collectors}x{updaters}"
        s = run_arm(["--distributed", *common, "--collectors", str(collectors), "--bellman-updaters", str(updaters),
                     "--out", str(root / name)], root / f"{name}.log")
        rate = s["env_steps"] / s["wall_seconds"]
        extra = dict(context, collectors=collectors, bellman_updaters=updaters)
        emit(f"{name}_env_steps_per_s", rate, "steps/s", ratio_to_inprocess=round(rate / ref_rate, 3), **extra)
        emit(f"{name}_updates_per_s", s["updates"] / s["wall_seconds"], "updates/s", **extra)
        emit(f"{name}_targets_per_s", s["bellman_targets"] / s["wall_seconds"], "targets/s", **extra)
        emit(f"{name}_startup_s", s["startup_seconds"], "s", **extra)
    emit("bench_wall", time.monotonic() - began, "s", folder=str(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
