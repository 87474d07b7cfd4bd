"""Does Q-attention's choice at a later decision hold when the hand is where the agent put it, and
not exactly where the expert's demos always put it? On evaluation scenes, two copies of the scene:
one plays the scripted expert's first K keyframes, the other the agent's own first K decisions.
At decision K, Q-attention's value at the expert's next keyframe pixel (and its own best pixel) is
read on four inputs: each copy's image with its own low-dim state, and crossed (the agent's image
with the expert's low-dim state, and the expert's image with the agent's). A value that falls only
where the low-dim state is the agent's is keyed on the hand's exact pose, not on what it sees.

One JSON object per scene, then one summary (medians over the scenes, and the share of scenes
whose best pixel is within the attention tolerance, 2 px at 64 px, of the keyframe's on the agent's
own input).

Examples:
    python bench/attention_sensitivity.py runs/cup/cells/pick_up_cup/arm/seed_0
    python bench/attention_sensitivity.py RUN --checkpoint step_000007000.pt --scenes 8 --step 1
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: the four inputs: (image, low-dim state) taken after the expert's (e) or the agent's (a) poses
INPUTS = {"expert": ("e", "e"), "agent": ("a", "a"), "agent_image_expert_state": ("a", "e"),
          "expert_image_agent_state": ("e", "a")}


def emit(**row):
    print(json.dumps(row), flush=True)


def _play(task, actions, obs):
    """Executes (8,) actions from the scene's current state -> ("reached" or why one was not,
    the observation after them)."""
    from arm_sim.environment import InvalidActionError

    for action in actions:
        try:
            obs, _, _ = task.step(np.r_[action[:7], float(action[7] > 0.5)])
        except InvalidActionError as e:
            return e.outcome, obs
    return "reached", obs


def scene_sensitivity(task, agent, seed: int, step: int, episode_length: int) -> dict:
    """One scene: Q-attention at decision ``step`` after the expert's and after the agent's own
    first ``step`` poses, on the four :data:`INPUTS`."""
    from arm_policy.rollout import expert_scene, sim_observation

    _, first = task.reset(seed=seed)
    scene = expert_scene(task, first)
    if step >= len(scene.keyframes):
        raise SystemExit(f"{task.name} has {len(scene.keyframes)} keyframes; --step must be below that")
    expert_actions = [np.r_[k.pose, k.gripper] for k in scene.keyframes[:step]]
    outcome, obs = _play(task, expert_actions, first)
    if outcome != "reached":
        return {"seed": seed, "skipped": f"the expert's own pose was {outcome}"}
    e = sim_observation(obs, step, episode_length)

    _, obs = task.reset(seed=seed)
    agent_actions = []
    for k in range(step):
        o = sim_observation(obs, k, episode_length)
        agent_actions.append(agent.act(o, explore=False).action)
        outcome, obs = _play(task, agent_actions[-1:], obs)
        if outcome != "reached":
            return {"seed": seed, "skipped": f"the agent's pose {k} was {outcome}"}
    a = sim_observation(obs, step, episode_length)

    target = scene.pixels[step]
    row = {"seed": seed, "keyframe_pixel": [int(v) for v in target],
           "agent_pose_off_cm": round(100 * float(np.linalg.norm(agent_actions[-1][:3] - expert_actions[-1][:3])), 2)}
    for name, (image, state) in INPUTS.items():
        src = {"e": e, "a": a}
        o = {**src[image], "low_dim": src[state]["low_dim"]}
        out = agent.act(o, explore=False)
        best = [int(v) for v in out.pixel]
        row[name] = {"q_at_keyframe": round(float(out.q_map[target[0], target[1]]), 2),
                     "best_q": round(float(np.max(out.q_map)), 2), "best_pixel": best,
                     "on_keyframe": scene.on_pixel(best, step)}
    return row


def summary(rows: list[dict]) -> dict:
    kept = [r for r in rows if "skipped" not in r]
    out = {"scenes": len(rows), "skipped": len(rows) - len(kept)}
    if kept:
        for name in INPUTS:
            out[f"{name}_q_at_keyframe"] = round(float(np.median([r[name]["q_at_keyframe"] for r in kept])), 2)
        out["agent_on_keyframe"] = float(np.mean([r["agent"]["on_keyframe"] for r in kept]))
        out["expert_on_keyframe"] = float(np.mean([r["expert"]["on_keyframe"] for r in kept]))
        out["agent_pose_off_cm"] = round(float(np.median([r["agent_pose_off_cm"] for r in kept])), 2)
    return out


def main(argv=None) -> int:
    from arm_policy.agents import from_checkpoint
    from arm_policy.checkpoints import list_checkpoints, load_checkpoint
    from arm_policy.rollout import eval_seed
    from arm_policy.run_log import read_json
    from arm_sim.environment import Environment

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder of `arm train --inprocess` or a benchmark cell")
    p.add_argument("--checkpoint", help="a file name under RUN/checkpoints (default: the newest)")
    p.add_argument("--scenes", type=int, default=8, help="evaluation scenes (the first N)")
    p.add_argument("--step", type=int, default=1, help="the decision to look at (1: the second)")
    args = p.parse_args(argv)

    run = Path(args.run)
    if not (run / "config.json").exists():
        p.error(f"{run} has no config.json: not a run folder")
    section = read_json(run / "config.json")["config"]["train"]
    paths = list_checkpoints(run)
    path = run / "checkpoints" / args.checkpoint if args.checkpoint else (paths[-1] if paths else None)
    if path is None or not path.exists():
        p.error(f"no checkpoint {args.checkpoint or ''} under {run / 'checkpoints'}")
    if args.step < 1:
        p.error("--step must be at least 1 (the first decision has no earlier pose)")
    agent = from_checkpoint(load_checkpoint(path), device="cpu")
    size = agent.cfg.image_size
    task = Environment(image_size=(size, size), collision_checking=section.get("collision_checking", True)
                       ).get_task(section["task"])
    rows = []
    for i in range(args.scenes):
        rows.append(scene_sensitivity(task, agent, eval_seed(i), args.step, int(section["episode_length"])))
        emit(scene=i, **rows[-1])
    task.close()
    emit(summary=True, checkpoint=str(path), task=section["task"], step=args.step, **summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
