r"""QT-Opt on a trivial tray: one box right below the gripper's start (``--tray one_box``, or
``one_box_low``, the gripper starting 10 cm above the floor). One JSON object per line:
the scripted data's success, then, every --updates/--points updates, the greedy policy's held-out
success, how far its last step ended from the box (lateral drift, cm) and the share of its lateral
steps that head towards the box (towards_box: about 0.5 for a policy blind to where the box is).

It is the learning smoke test's question (issue 15) asked at a size CI cannot afford: does
QT-Opt learn the simplest grasp there is (descend, close, lift) from scripted grasps (offline),
and from its own exploring grasps beside them (--online: one update per env step, as
``arm train --inprocess --algo qtopt --tray one_box --updates-per-step 1``, but counted in steps,
not minutes)?

Examples:
    python bench/bench_qtopt_tray.py                                  # 100 grasps, 4,000 updates (~3 min)
    python bench/bench_qtopt_tray.py --online --grasps 200 --image-size 64 --updates 6000 --points 12
    python bench/bench_qtopt_tray.py --grasps 200 --spread 1          # the box anywhere in the tray
    python bench/bench_qtopt_tray.py --online --tray one_box_low --image-size 48 --grasps 200 --updates 2000 \
        --points 4 --agent-overrides image_shift=0                    # the learning smoke test (~2 min)
    python bench/bench_qtopt_tray.py --agent-overrides scripted_random_action_prob=0.05 step_reward=0
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def emit(name, value, unit, **extra):
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit, **extra}), flush=True)


def greedy_on_held_out(env, agent, episodes: int) -> tuple[float, float, float | None]:
    """Held-out success, the median lateral distance (m) of the last step from the box, and the
    share of lateral steps (over 5 mm, with the box over 2 cm away) that head towards the box:
    about 0.5 for a policy blind to where the box is (None: no such step)."""
    from arm_policy.grasp_episodes import agent_observation, play_episode
    from arm_policy.train_qtopt import eval_seed

    wins, drift, towards = 0, [], []
    for i in range(episodes):
        gaps = []

        def decide(obs):  # the gap before each step; the last one is where the grasp was tried
            gap = env.sim.data.xpos[env.objects[0].body_id][:2] - obs.gripper_position[:2]
            gaps.append(np.linalg.norm(gap))
            action = agent.act(agent_observation(obs), False).action
            if gaps[-1] > 0.02 and np.linalg.norm(action[:2]) > 0.005:
                towards.append(float(np.dot(gap, action[:2]) > 0))
            return action

        wins += play_episode(env, eval_seed(i), decide, held_out=True)[-2].success
        drift.append(float(gaps[-1]))
    return wins / episodes, float(np.median(drift)), (round(float(np.mean(towards)), 3) if towards else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grasps", type=int, default=100, help="scripted grasps recorded (offline data)")
    parser.add_argument("--updates", type=int, default=4000)
    parser.add_argument("--points", type=int, default=8, help="evaluations after the untrained one")
    parser.add_argument("--episodes", type=int, default=20, help="held-out episodes per evaluation")
    parser.add_argument("--tray", default="one_box", help="a named tray of arm_sim.grasp_bin.TRAYS")
    parser.add_argument("--spread", type=float, default=None,
                        help="instead of the tray's: 0, the box at the tray's centre; 1, anywhere")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--online", action="store_true",
                        help="offline + online: exploring grasps of its own, one update per env step (--updates = env steps)")
    parser.add_argument("--agent-overrides", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()

    from arm_policy.agents import agent_config
    from arm_policy.learner import Learner, LearnerSettings
    from arm_policy.settings_cli import parse_items
    from arm_policy.grasp_episodes import agent_observation, play_episode, transitions_of
    from arm_policy.rollout import train_seed
    from arm_policy.train_qtopt import record_offline, transitions_into
    from arm_sim.grasp_bin import GraspBinEnv

    overrides = {"image_size": args.image_size, **parse_items(args.agent_overrides, "--agent-overrides")}
    cfg = agent_config("cpu", overrides, "qtopt")
    env = GraspBinEnv(image_size=(cfg.image_size,) * 2, tray=args.tray, spread=args.spread)
    context = {"tray": args.tray, "grasps": args.grasps, "spread": env.tray_spread, "seed": args.seed,
               "online": args.online, "overrides": overrides}
    with tempfile.TemporaryDirectory() as tmp:
        transitions = []
        rate = record_offline(env, Path(tmp) / "offline", args.grasps, args.seed, lambda line: None, cfg,
                              transitions_into(transitions, cfg))
        emit("scripted_success", rate, "fraction", transitions=len(transitions), **context)
        learner = Learner.start("qtopt", cfg, transitions, Path(tmp) / "run",
                                LearnerSettings(1 if args.online else 0, 10**9, 1), seed=args.seed,
                                warn=lambda line: None)
        agent, episodes, wins = learner.agent, 0, 0

        def explore(obs):
            return agent.act(agent_observation(obs), explore=True).action

        for point in range(args.points + 1):
            began, start = time.perf_counter(), agent.updates
            goal = point * (args.updates // args.points)
            while (learner.env_steps if args.online else agent.updates) < goal:
                if not args.online:
                    learner.update()
                    continue
                frames = play_episode(env, train_seed(args.seed, episodes), explore)
                for t in transitions_of(frames, cfg):
                    learner.observe(t)
                    learner.train()
                learner.end_episode(frames[-2].success)
                episodes, wins = episodes + 1, wins + frames[-2].success
            seconds = time.perf_counter() - began
            success, drift, towards = greedy_on_held_out(env, agent, args.episodes)
            online = {"env_steps": learner.env_steps, "episodes": episodes,
                      "exploring_success": round(wins / max(episodes, 1), 3)} if args.online else {}
            emit("held_out_success", success, "fraction", updates=agent.updates, **online,
                 lateral_drift_cm=round(100 * drift, 1), towards_box=towards, seconds=round(seconds, 1),
                 update_ms=round(1000 * seconds / max(agent.updates - start, 1), 1), **context)
    env.close()


if __name__ == "__main__":
    main()
