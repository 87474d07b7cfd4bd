"""How precisely can the pose agent (the actor) learn a task's keyframe poses from demos alone?

Behaviour cloning of the actor only, on the keyframe transitions of the first demos (the crop at
each demo's own pixel, optionally jittered by up to --jitter pixels, as attention a pixel over),
for --steps steps at the preset's batch size and actor learning rate; then the distance of its
mean pose from the demo's on the held-out demos' transitions, at the demo pixel, one pixel off in
each direction, and at each episode's grasp (its first keyframe that closes the hand). Once per
variant (--variants): `world` (the crop's points in world coordinates, the `cpu` preset) and
`anchor` (the points as offsets from the crop centre's: `actor_points_from_anchor`).

One JSON line per variant: median and 90th percentile in cm of every measure, and the seconds.
No simulator runs; demos come from `arm demos` or a run folder's demos/.

Examples:
    arm demos --task stack_wine --episodes 100 --seed 0 --out runs/demos64 --image-size 64
    python bench/actor_fit.py runs/demos64 stack_wine --steps 1500 --jitter 1
    python bench/actor_fit.py runs/cup/demos pick_up_cup --held-out 20 --variants anchor
"""
import argparse
import json
import sys
import time

import numpy as np

SHIFTS = {"px": (0, 0), "row+1": (1, 0), "row-1": (-1, 0), "col+1": (0, 1), "col-1": (0, -1)}


def grasp_mask(transitions) -> np.ndarray:
    """True at each episode's first keyframe transition whose action closes the hand."""
    first: dict[str, int] = {}
    for k, t in enumerate(transitions):
        if t.action[7] < 0.5 and (t.episode not in first or t.index < transitions[first[t.episode]].index):
            first[t.episode] = k
    mask = np.zeros(len(transitions), bool)
    mask[list(first.values())] = True
    return mask


def fit(train, held_out, preset: str, from_anchor: bool, steps: int, jitter: int, seed: int = 0) -> dict:
    """One variant: fit on ``train``, measure on ``held_out`` -> the JSON row."""
    import torch

    from arm_policy.agents import ARMAgent
    from arm_policy.config import preset as arm_preset
    from arm_policy.networks import crop

    cfg = arm_preset(preset, amp="off", image_size=train[0].rgb.shape[0],
                     actor_points_from_anchor=from_anchor)
    agent = ARMAgent.from_demos(cfg, train, "cpu", seed=seed)
    actor = agent.actor

    def arrays(ts):
        obs = agent._obs(np.stack([t.rgb for t in ts]), np.stack([t.point_cloud for t in ts]))
        return (obs, torch.as_tensor(np.stack([t.pixel for t in ts])),
                agent._t(np.stack([t.low_dim for t in ts])), agent._t(np.stack([t.action for t in ts])))

    def crops(obs, pixels):
        return crop(obs, pixels.clamp(0, obs.shape[-1] - 1), cfg.crop_size)

    obs, pixels, low_dim, actions = arrays(train)
    opt = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        i = torch.randint(len(train), (cfg.batch_size,), generator=g)
        shift = torch.randint(-jitter, jitter + 1, (len(i), 2), generator=g) if jitter else 0
        x = crops(obs[i], pixels[i] + shift)
        _, _, mean = actor(x, low_dim[i])
        loss = actor.pose_error(mean, actions[i], actor.anchor(x)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    row = {"variant": "anchor" if from_anchor else "world", "preset": preset,
           "image_size": cfg.image_size, "steps": steps, "jitter": jitter,
           "train_transitions": len(train), "held_out_transitions": len(held_out),
           "fit_seconds": round(time.perf_counter() - t0, 1), "final_loss": round(float(loss), 5)}
    obs, pixels, low_dim, actions = arrays(held_out)
    grasp = torch.as_tensor(grasp_mask(held_out))
    with torch.no_grad():
        for name, shift in SHIFTS.items():
            error = 100 * (actor(crops(obs, pixels + torch.tensor(shift)), low_dim)[2][:, :3]
                           - actions[:, :3]).norm(dim=1)
            row[f"error_cm_{name}"] = [round(float(error.median()), 2), round(float(error.quantile(0.9)), 2)]
            if name == "px" and grasp.any():
                row["error_cm_grasp"] = [round(float(error[grasp].median()), 2),
                                         round(float(error[grasp].quantile(0.9)), 2)]
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("demos", help="folder holding TASK/seed_* demo bags (arm demos --out, or RUN/demos)")
    p.add_argument("task")
    p.add_argument("--held-out", type=int, default=20, help="last demos kept out of the fit")
    p.add_argument("--steps", type=int, default=1500, help="behaviour-cloning steps")
    p.add_argument("--jitter", type=int, default=1, help="crop pixels moved by up to this many pixels in the fit")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--variants", default="world,anchor", help="world, anchor or both")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args(argv)
    variants = args.variants.split(",")
    if not set(variants) <= {"world", "anchor"} or args.steps < 1 or args.held_out < 1:
        p.error("--variants takes world and/or anchor; --steps and --held-out must be >= 1")

    import torch

    from arm_policy.demo_dataset import hold_out_episodes, load_demos

    torch.set_num_threads(args.threads)
    try:
        train, held_out = hold_out_episodes(load_demos(args.demos, args.task), args.held_out)
    except (FileNotFoundError, ValueError) as e:  # no such folder, or too few demos in it
        print(f"actor_fit: no usable demos of {args.task}: {e}", file=sys.stderr)
        return 2
    for variant in variants:
        print(json.dumps({"task": args.task, **fit(train, held_out, args.preset, variant == "anchor",
                                                      args.steps, args.jitter)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
