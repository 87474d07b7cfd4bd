"""The scripted grasping policy that makes grasp_bin's offline data, as QT-Opt's early data did.

A noisy top-down grasp at a random object: pick an object in the tray, move above it, turn the
fingers across its narrowest horizontal axis, descend, close, lift (terminate). It reads the
object's pose from the simulator (privileged, like the paper's scripted policies), and noise on
the grasp position, height and yaw makes it fail often enough to teach a Q-function what does not
work. It drives the env only through its public step(), so its episodes are ordinary transitions.

    python -m arm_sim.grasp_bin_scripted --episodes 250 [--held-out] [--noise 1.0]

prints the success rate per shape family and overall, and the env's steps per second.

Measured (250 mixed scenes each, seeds 0-249, 64x64; family = the object it went for):

    noise  split     box   cylinder capsule ellipsoid hull  | overall
    0      train     100%  96%      100%    98%       98%   | 98.4%
    0      held-out  100%  100%     100%    93%       96%   | 97.6%
    1      train     95%   85%      96%     94%       87%   | 91.6%   (default)
    1      held-out  92%   84%      92%     90%       85%   | 88.8%
    2      train     75%   71%      72%     59%       52%   | 66.0%
    2      held-out  72%   61%      60%     55%       57%   | 60.8%
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np

from .bin_objects import FAMILIES
from .grasp_bin import FLOOR_Z, MAX_DISPLACEMENT, MAX_YAW_DELTA, TRAY_CENTER, TRAY_HALF, TRAY_WALL_HEIGHT, BinObject, GraspBinEnv

# noise=1.0: standard deviations of the grasp's error (the paper's scripted data was noisy)
POSITION_NOISE = 0.008  # metres, x and y
HEIGHT_NOISE = 0.005  # metres
YAW_NOISE = 0.2  # radians
APPROACH = 0.08  # metres above the grasp height before descending


@dataclass
class ScriptedEpisode:
    success: bool
    steps: int
    target: str  # body name of the object it went for
    family: str
    shape_id: int
    transitions: list = field(default_factory=list)  # (obs, action dict, done, success) when recorded


FINGER_SPAN = 0.04  # an open finger's inner face from the TCP, along the closing axis
FINGER_OUTER = 0.056  # and its outer face
FINGERTIP_BELOW_TCP = 0.007


def grasp_pose(env: GraspBinEnv, obj: BinObject) -> tuple[np.ndarray, float]:
    """Where a top-down grasp of obj goes (TCP xyz) and its yaw, from the object's geometry:
    the fingers close across the footprint's minor axis (or its major axis, when the minor one
    would drive a finger into the tray's wall and the object fits that way), at the object's
    middle (3 cm below its top for tall ones), fingertips clear of the floor. Near a wall the
    grasp centre shifts inward as far as the object still sits between the open fingers."""
    pts = env.object_points(obj)
    centre = env.sim.data.xpos[obj.body_id][:2].copy()
    xy = pts[:, :2] - centre
    w, v = np.linalg.eigh(xy.T @ xy)
    major = v[:, np.argmax(w)]
    top, bottom = pts[:, 2].max(), pts[:, 2].min()
    z = max(top - 0.03, 0.5 * (top + bottom), FLOOR_Z + 0.01)
    low = z - FINGERTIP_BELOW_TCP < FLOOR_Z + TRAY_WALL_HEIGHT  # the fingers go below the walls' top
    options = []
    for turn in (0.0, np.pi / 2):
        yaw = float(np.arctan2(major[1], major[0])) + turn  # tool x along `major`: fingers across it
        axis = np.array([np.sin(yaw), -np.cos(yaw)])  # the fingers' closing axis
        half_width = np.abs(xy @ axis).max()
        slack = FINGER_SPAN - half_width - 0.004  # how far the centre may move with the object inside
        shift = np.zeros(2)
        if low:
            for sign in (1.0, -1.0):  # push each finger's outer face back inside the walls
                outer = centre + sign * FINGER_OUTER * axis
                over = np.abs(outer - TRAY_CENTER) - TRAY_HALF
                if np.any(over > 0):
                    k = np.argmax(over / np.maximum(np.abs(axis), 1e-6))
                    shift -= sign * axis * over[k] / max(abs(axis[k]), 1e-6)
        fits = slack > 0 and np.linalg.norm(shift) <= slack
        options.append((not fits, turn, np.r_[centre + shift, z], (yaw + np.pi / 2) % np.pi - np.pi / 2))
    best = min(options, key=lambda o: (o[0], o[1]))
    return best[2], best[3]


def _wrap_half_turn(a: float) -> float:
    return (a + np.pi / 2) % np.pi - np.pi / 2


def scripted_grasp(env: GraspBinEnv, rng: np.random.Generator, noise: float = 1.0, target: BinObject | None = None,
                   record: bool = False, random_action_prob: float = 0.0,
                   random_terminate_prob: float = 0.5, sticky_close: bool = False) -> ScriptedEpisode:
    """Run one episode from the env's current (freshly reset) state; returns how it went.

    ``random_action_prob``: each step is replaced, with this probability, by a uniformly random
    one (displacement and yaw in the bin's bounds, close with probability 1/2, terminate with
    ``random_terminate_prob``): exploration in the data, as in the paper's data collection, so a
    Q-function learned from it sees what closing and terminating anywhere else does (the policy
    is closed loop and resumes its grasp after a random step). 0 (default): no random draws at
    all, the episodes are those of before.

    ``sticky_close``: a random step's gripper command holds until the next random step (the
    scripted steps keep the gripper closed after a random close), so the data also shows what
    descending closed and grasping with a closed hand do; without it a random close is undone at
    the next step and closing early looks harmless."""
    candidates = env.objects_in_tray() or env.objects
    obj = target if target is not None else candidates[int(rng.integers(len(candidates)))]
    offset = np.r_[rng.normal(0.0, POSITION_NOISE * noise, 2), rng.normal(0.0, HEIGHT_NOISE * noise)]
    yaw_offset = rng.normal(0.0, YAW_NOISE * noise)

    def aim():  # closed loop on the object's pose (it may roll), with this episode's fixed error
        goal, yaw = grasp_pose(env, obj)
        goal = goal + offset
        goal[2] = max(goal[2], FLOOR_Z + 0.008)
        return goal, _wrap_half_turn(yaw + yaw_offset)

    transitions = []
    state = {"obs": None, "done": False, "success": False, "held_closed": False}

    def act(d, dyaw=0.0, close=False, terminate=False):
        if random_action_prob > 0 and rng.random() < random_action_prob:
            d = rng.uniform(-MAX_DISPLACEMENT, MAX_DISPLACEMENT, 3)
            dyaw = float(rng.uniform(-MAX_YAW_DELTA, MAX_YAW_DELTA))
            close, terminate = bool(rng.random() < 0.5), bool(rng.random() < random_terminate_prob)
            state["held_closed"] = sticky_close and close
        close = close or state["held_closed"]
        obs, done, success = env.step(d, dyaw, close, terminate)
        if record:
            transitions.append((obs, {"displacement": np.asarray(d, dtype=float), "yaw_delta": float(dyaw),
                                      "close_gripper": close, "terminate": terminate}, done, success))
        state.update(obs=obs, done=done, success=success)
        return obs

    budget = env.max_steps - 2  # keep two steps to close and to terminate
    tcp, cur_yaw = env.observe().gripper_position, env.observe().gripper_yaw
    # above the object, turning on the way
    while env.steps < budget and not state["done"]:
        goal, yaw = aim()
        d = goal + [0.0, 0.0, APPROACH] - tcp
        dyaw = _wrap_half_turn(yaw - cur_yaw)
        if np.max(np.abs(d)) < 0.005 and abs(dyaw) < 0.05:
            break
        obs = act(d, dyaw)
        tcp, cur_yaw = obs.gripper_position, obs.gripper_yaw
    # straight down until there or blocked
    while env.steps < budget and not state["done"]:
        goal, yaw = aim()
        d = goal - tcp
        if abs(d[2]) < 0.004:
            break
        obs = act(np.r_[d[:2], max(d[2], -MAX_DISPLACEMENT)], _wrap_half_turn(yaw - cur_yaw))
        moved = tcp[2] - obs.gripper_position[2]
        tcp, cur_yaw = obs.gripper_position, obs.gripper_yaw
        if moved < 0.002:  # resting on something: grasp from here
            break
    if not state["done"]:
        act([0.0, 0.0, 0.0], 0.0, close=True)
    if not state["done"]:
        act([0.0, 0.0, 0.0], 0.0, close=True, terminate=True)
    return ScriptedEpisode(bool(state["success"]), env.steps, obj.name, obj.family, obj.shape.shape_id, transitions)


def evaluate(episodes: int, held_out: bool = False, noise: float = 1.0, seed: int = 0, image_size=(64, 64),
             family: str | None = None) -> dict:
    """Success rates of the scripted policy per family of the object it went for, and steps/s."""
    env = GraspBinEnv(image_size=image_size)
    rng = np.random.default_rng(seed)
    wins = {f: [0, 0] for f in FAMILIES}
    steps, step_time, t_all = 0, 0.0, time.perf_counter()
    for ep in range(episodes):
        env.reset(seed=seed + ep, held_out=held_out, family=family)
        t = time.perf_counter()
        e = scripted_grasp(env, rng, noise)
        step_time += time.perf_counter() - t
        steps += e.steps
        wins[e.family][0] += e.success
        wins[e.family][1] += 1
    env.close()
    total = sum(w for w, _ in wins.values())
    return {"per_family": {f: (w / n if n else float("nan"), n) for f, (w, n) in wins.items()},
            "overall": total / max(episodes, 1), "episodes": episodes, "steps": steps,
            "steps_per_s": steps / step_time if step_time else float("nan"),
            "episodes_per_s": episodes / (time.perf_counter() - t_all)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=250)
    ap.add_argument("--held-out", action="store_true")
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family", choices=FAMILIES, default=None)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    r = evaluate(args.episodes, args.held_out, args.noise, args.seed, (args.size, args.size), args.family)
    split = "held-out" if args.held_out else "train"
    for f, (rate, n) in r["per_family"].items():
        print(f"{split} {f:10s} success {rate:6.1%} of {n}")
    print(f"{split} overall    success {r['overall']:6.1%} of {r['episodes']} "
          f"({r['steps'] / max(r['episodes'], 1):.1f} steps/episode)")
    print(f"env steps/s (incl. a {args.size}x{args.size} render per step): {r['steps_per_s']:.1f}; "
          f"episodes/s incl. resets: {r['episodes_per_s']:.2f}")


if __name__ == "__main__":
    main()
