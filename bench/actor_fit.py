"""How precisely can the pose agent (the actor) learn a task's keyframe poses from demos alone?

Behaviour cloning of the actor only (the demo term's pose error, `Actor.pose_error`) on the
keyframe transitions of the first demos (the crop at each demo's own pixel, optionally jittered by
up to --jitter pixels, as attention a pixel over), for --steps steps at the preset's batch size
and actor learning rate; then the distance of its mean pose from the demo's on the held-out
demos' transitions: at the demo pixel, one pixel off in each direction, at each episode's grasp
(its first keyframe that closes the hand), and per keyframe stage. Once per --variant: a label and
the agent config fields it changes from the preset (FIELD=VALUE, VALUE in JSON).

One JSON line per variant: median and 90th percentile in cm of every measure; per stage also the
mean error (x, y, z) in cm (a bias the median hides), the median absolute error per world axis
(a grasp may tolerate far less along one axis than the others) and, with camera-ray offsets, the
mean error along the ray (> 0: beyond the demo's pose, away from the camera); the seconds. No
simulator runs; demos come from `arm demos` or a run folder's demos/.

Examples:
    arm demos --task stack_wine --episodes 100 --seed 0 --out runs/demos64 --image-size 64
    python bench/actor_fit.py runs/demos64 stack_wine --steps 1500 --jitter 1
    python bench/actor_fit.py runs/demos64 stack_wine --variant ray actor_offset_frame=camera_ray \\
        --variant ray_squashed actor_offset_frame=camera_ray position_error_scale=0
    python bench/actor_fit.py runs/cup/demos pick_up_cup --held-out 20 --variant world actor_points_from_anchor=false
"""
import json
import sys
import time

import numpy as np

import demo_fit

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


def _spread(error: np.ndarray) -> list[float]:
    return [round(float(np.median(error)), 2), round(float(np.quantile(error, 0.9)), 2)]


def fit(train, held_out, preset: str, label: str, overrides: dict, steps: int, jitter: int, seed: int = 0) -> dict:
    """One variant: fit on ``train``, measure on ``held_out`` -> the JSON row."""
    import torch

    from arm_policy.agents import ARMAgent
    from arm_policy.camera_ray import ray_frame
    from arm_policy.config import preset as arm_preset
    from arm_policy.networks import crop

    cfg = arm_preset(preset, **{"amp": "off", "image_size": train[0].rgb.shape[0], **overrides})
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
    row = {"variant": label, "overrides": overrides, "preset": preset, "image_size": cfg.image_size,
           "steps": steps, "jitter": jitter, "train_transitions": len(train),
           "held_out_transitions": len(held_out), "fit_seconds": round(time.perf_counter() - t0, 1),
           "final_loss": round(float(loss), 5)}
    obs, pixels, low_dim, actions = arrays(held_out)
    grasp = torch.as_tensor(grasp_mask(held_out))
    with torch.no_grad():
        for name, shift in SHIFTS.items():
            x = crops(obs, pixels + torch.tensor(shift))
            delta = 100 * (actor(x, low_dim)[2][:, :3] - actions[:, :3])
            error = delta.norm(dim=1).numpy()
            row[f"error_cm_{name}"] = _spread(error)
            if name != "px":
                continue
            if grasp.any():
                row["error_cm_grasp"] = _spread(error[grasp.numpy()])
            along = None
            if actor.ray_frame:  # the ray's axis at each demo's anchor
                along = (ray_frame(actor.anchor(x), actor.camera_position)[:, 2] * delta).sum(1).numpy()
            stage, per_stage = demo_fit.stages(held_out), {}
            for s in sorted(set(stage.tolist())):
                at = stage == s
                d = delta.numpy()[at]
                per_stage[f"stage{s}"] = {"error_cm": _spread(error[at]),
                                          "mean_cm": [round(float(v), 2) for v in d.mean(0)],
                                          "median_abs_cm": [round(float(v), 2) for v in np.median(np.abs(d), 0)]}
                if along is not None:
                    per_stage[f"stage{s}"]["mean_along_ray_cm"] = round(float(along[at].mean()), 2)
            row["stages"] = per_stage
    return row


def main(argv=None) -> int:
    p = demo_fit.parser(__doc__)
    p.add_argument("--steps", type=int, default=1500, help="behaviour-cloning steps")
    p.add_argument("--jitter", type=int, default=1, help="crop pixels moved by up to this many pixels in the fit")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    variants = demo_fit.variants(p, args)
    split = demo_fit.split_demos(args, "actor_fit")
    if split is None:
        return 2
    train, held_out = split
    for label, overrides in variants:
        try:
            row = fit(train, held_out, args.preset, label, overrides, args.steps, args.jitter)
        except (TypeError, ValueError) as e:  # an unknown field or a value the config refuses
            print(f"actor_fit: variant {label!r}: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"task": args.task, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
