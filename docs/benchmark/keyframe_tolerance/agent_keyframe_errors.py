"""A trained agent's grasp and release poses against the expert's, along the gripper's axes,
on the evaluation scenes: how often are they inside the tolerance windows?
(The probe behind docs/results/arm.md, "How precise each keyframe must be".)
usage: python docs/benchmark/keyframe_tolerance/agent_keyframe_errors.py CHECKPOINT TASK EPISODES COLLISION_CHECKING(0/1)"""
import sys, numpy as np, torch
from arm_sim.environment import Environment
from arm_control.transforms import quat_xyzw_to_mat
from arm_policy.checkpoints import load_checkpoint
from arm_policy.agents import from_checkpoint
from arm_policy.rollout import SimRollout, run_episode, eval_seed
torch.set_num_threads(1)
ckpt, task_name, n, cc = sys.argv[1], sys.argv[2], int(sys.argv[3]), bool(int(sys.argv[4]))
agent = from_checkpoint(load_checkpoint(ckpt), device="cpu")
task = Environment(image_size=agent.cfg.image_size, collision_checking=cc).get_task(task_name)
roll = SimRollout(task, agent, 10)
actions = []
orig = roll.execute
def execute(decision):
    actions.append(np.asarray(decision.action, dtype=float)); return orig(decision)
roll.execute = execute
rows = []
for i in range(n):
    actions.clear()
    _, obs = task.reset(seed=eval_seed(i))
    expert = task.task.expert(task.sim)
    r = run_episode(roll, eval_seed(i), explore=False, episode_length=10)
    kinds = {"grasp": next(k for k, w in enumerate(expert) if w.gripper < 0.5)}
    kinds["release"] = next((k for k, w in enumerate(expert) if k > kinds["grasp"] and w.gripper > 0.5), None)
    closes = [a for a in actions if a[7] <= 0.5]
    row = {"success": r.success, "outcome": r.outcome, "steps": len(actions)}
    for kind, k in kinds.items():
        if k is None: continue
        if kind == "grasp":
            cand = closes[:1]
        else:  # the first open pose after a close
            first_close = next((j for j, a in enumerate(actions) if a[7] <= 0.5), None)
            cand = [a for a in actions[first_close + 1:] if a[7] > 0.5][:1] if first_close is not None else []
        if not cand: continue
        R = quat_xyzw_to_mat(expert[k].pose[3:])
        d = cand[0][:3] - expert[k].pose[:3]
        row[kind] = (100 * d @ R[:, 1], 100 * d @ R[:, 0], 100 * d[2])  # across, along, height in cm
    rows.append(row)
    print(i, row, flush=True)
for kind in ("grasp", "release"):
    e = np.array([r[kind] for r in rows if kind in r])
    if len(e) == 0: continue
    print(f"{kind}: {len(e)} episodes; median |error| across {np.median(abs(e[:,0])):.2f} along {np.median(abs(e[:,1])):.2f} height {np.median(abs(e[:,2])):.2f} cm; "
          f"mean height {e[:,2].mean():+.2f}; within 0.5 cm: across {np.mean(abs(e[:,0])<=0.5):.2f} along {np.mean(abs(e[:,1])<=0.5):.2f} height {np.mean(abs(e[:,2])<=0.5):.2f}; within 1 cm: across {np.mean(abs(e[:,0])<=1):.2f} along {np.mean(abs(e[:,1])<=1):.2f} height {np.mean(abs(e[:,2])<=1):.2f}")
print("success", np.mean([r["success"] for r in rows]))
