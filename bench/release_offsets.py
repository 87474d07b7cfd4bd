"""Where a trained agent lets go: how far a released object lands from where the expert's release
would put it, split into the hand's placement error and the object's offset in the hand.

For each evaluation scene (the scenes of ``arm evaluate``, no exploration) and each decision that
opens the gripper on a held object:

- ``hand_error_cm``: the tool centre point's horizontal distance from the scripted expert's release
  keyframe of the same scene (the first keyframe that opens after a closed one);
- ``in_hand_offset_cm``: the held object's origin, horizontally, from below the tool centre point
  just before the release, and ``tilt_deg``, how far its vertical axis leans: an off-centre grasp
  pushes a tall object over before both fingers touch, and the grasp keeps that lean (the expert's
  centred grasp keeps both near 0, as ``--expert`` measures; ``--grasp-shift-cm`` moves its grasp
  across the fingers, and the object's origin then stays that far from below the hand);
- ``landing_cm``: the object's origin after the release, horizontally, from the point below the
  expert's release keyframe (where an upright object held centred would land).

One JSON line per release and one summary line per outcome (success or not), each with medians:
which part of a miss is the hand's and which the grasp's.

Examples:
    python bench/release_offsets.py runs/sw_noise/cells/stack_wine/arm/seed_1
    python bench/release_offsets.py RUN --episodes 10 --expert    # also the expert on the same scenes
    python bench/release_offsets.py --task stack_wine --grasp-shift-cm 1   # the expert alone, grasping 1 cm off
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np


def emit(**row):
    print(json.dumps(row), flush=True)


def release_keyframe(keyframes):
    """Index of the expert's first keyframe that opens the gripper after a closed one, or None."""
    closed = False
    for i, k in enumerate(keyframes):
        if k.gripper <= 0.5:
            closed = True
        elif closed:
            return i
    return None


def held_state(sim):
    """(object name, its origin's xy offset from the TCP (m), its tilt (deg)) of the held object,
    or None when the hand holds nothing."""
    name = sim.attached
    if name is None:
        return None
    offset = sim.body_pos(name)[:2] - sim.tcp_pose()[:2]
    tilt = np.degrees(np.arccos(np.clip(sim.body_mat(name)[2, 2], -1.0, 1.0)))
    return name, offset, float(tilt)


def release_row(sim, before, expert_release) -> dict:
    """What a release did: ``before`` is :func:`held_state` just before it, ``expert_release`` the
    expert's release keyframe (xyz) of the scene."""
    name, offset, tilt = before
    horizontal = lambda a, b: 100 * float(np.linalg.norm(np.asarray(a)[:2] - np.asarray(b)[:2]))  # noqa: E731
    return {"object": name, "hand_error_cm": horizontal(sim.tcp_pose(), expert_release),
            "in_hand_offset_cm": 100 * float(np.linalg.norm(offset)), "tilt_deg": tilt,
            "landing_cm": horizontal(sim.body_pos(name), expert_release)}


def expert_releases(task_env, seeds, grasp_shift_m: float = 0.0) -> list[dict]:
    """The scripted expert on scenes ``seeds``, its grasp (every keyframe up to the first that
    closes) moved ``grasp_shift_m`` across the fingers: one :func:`release_row` per release, with
    ``scene`` and ``success``."""
    from keyframe_tolerance import moved

    rows = []
    for i, seed in enumerate(seeds):
        task_env.reset(seed)
        keyframes = task_env.task.expert(task_env.sim)
        release = release_keyframe(keyframes)
        if release is None:
            raise SystemExit(f"{task_env.name}'s expert never lets go of what it grasps: no release to measure")
        closing = next(k for k, w in enumerate(keyframes) if w.gripper <= 0.5)
        for k, w in enumerate(keyframes):
            pose = moved(w.pose, "across", grasp_shift_m) if k <= closing else w.pose
            before = held_state(task_env.sim)
            _, _, success = task_env.step(np.r_[pose, float(w.gripper > 0.5)])
            if before is not None and task_env.sim.attached is None:
                rows.append({"scene": i, "success": bool(success),
                             **release_row(task_env.sim, before, keyframes[release].pose[:3])})
    return rows


def agent_releases(run: Path, episodes: int, log) -> tuple[list[dict], object]:
    """The run's newest checkpoint on the evaluation scenes: one row per release (with ``scene``,
    ``step``, the episode's ``success``), and the task environment it ran in."""
    from arm_policy.agents import from_checkpoint
    from arm_policy.checkpoints import latest_checkpoint, load_checkpoint
    from arm_policy.rollout import SimRollout, evaluate
    from arm_policy.run_log import read_json
    from arm_sim.environment import Environment

    path = latest_checkpoint(run)
    if path is None:
        raise SystemExit(f"no checkpoints under {run / 'checkpoints'}")
    config = read_json(run / "config.json")["config"]
    section = config.get("train") or config.get("nodes", {}).get("episode_runner")
    if section is None:
        raise SystemExit(f"{run / 'config.json'} holds neither an in-process nor a sim_train run")
    agent = from_checkpoint(load_checkpoint(path), device="cpu")
    size = agent.cfg.image_size
    task = Environment(image_size=(size, size),
                       collision_checking=section.get("collision_checking", True)).get_task(section["task"])

    class Probe(SimRollout):
        """The evaluation rollout, noting the held object's state around each release."""

        def reset(self, seed, name=""):
            scene = super().reset(seed, name)
            k = release_keyframe(scene.keyframes)
            self.expert_release = None if k is None else np.asarray(scene.keyframes[k].pose[:3])
            self.episode_releases = []
            return scene

        def execute(self, decision):
            before = held_state(self.task.sim)
            execution = super().execute(decision)
            if before is not None and self.task.sim.attached is None and self.expert_release is not None:
                self.episode_releases.append({"step": self._step, "outcome": execution.outcome,
                                              **release_row(self.task.sim, before, self.expert_release)})
            return execution

    probe, rows = Probe(task, agent, int(section["episode_length"])), []

    def on_episode(i, result):
        rows.extend({"scene": i, "success": result.success, **r} for r in probe.episode_releases)

    summary = evaluate(probe, episodes, int(section["episode_length"]), on_episode=on_episode, warn=log)
    log(f"{path.name}: eval success {summary['eval_success']:.2f} over {summary['eval_episodes']} scenes")
    return rows, task


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="a run folder of `arm train --inprocess` or `arm launch sim_train`")
    parser.add_argument("--task", default="", help="without RUN: the scripted expert alone on this task")
    parser.add_argument("--episodes", type=int, default=25, help="evaluation scenes")
    parser.add_argument("--expert", action="store_true", help="also run the scripted expert on the same scenes")
    parser.add_argument("--grasp-shift-cm", type=float, default=0.0,
                        help="the expert's grasp moved this far across the fingers")
    args = parser.parse_args(argv)
    if bool(args.run) == bool(args.task):
        parser.error("give a RUN folder or --task (the expert alone), not both")
    if args.grasp_shift_cm and args.run and not args.expert:
        parser.error("--grasp-shift-cm moves the expert's grasp: add --expert (or give --task)")

    from arm_policy.rollout import eval_seed

    def log(line):
        print(line, file=sys.stderr, flush=True)

    releases: list[dict] = []
    if args.run:
        rows, task = agent_releases(Path(args.run), args.episodes, log)
        releases += [{"who": "agent", **r} for r in rows]
    else:
        from arm_sim.environment import Environment

        task = Environment(image_size=(64, 64)).get_task(args.task)
    if args.expert or args.task:
        rows = expert_releases(task, [eval_seed(i) for i in range(args.episodes)], args.grasp_shift_cm / 100)
        releases += [{"who": "expert", "grasp_shift_cm": args.grasp_shift_cm, **r} for r in rows]
    task.close()
    for row in releases:
        emit(**row)
    for who in ("agent", "expert"):
        for success in (True, False):
            rows = [r for r in releases if r["who"] == who and r["success"] == success]
            if rows:
                emit(summary=who, success=success, releases=len(rows), scenes=len({r["scene"] for r in rows}),
                     **{f"median_{k}": round(float(np.median([r[k] for r in rows])), 2)
                        for k in ("hand_error_cm", "in_hand_offset_cm", "tilt_deg", "landing_cm")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
