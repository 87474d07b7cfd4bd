"""How precisely can Q-attention learn a task's keyframe pixels from demos alone, stage by stage?

Behaviour cloning of Q-attention only (the BC baseline's loss: each head's Q map as logits of a
classification over pixels, the demo's pixel the label) on the keyframe transitions of the first
demos, for --steps steps at the preset's batch size and attention learning rate; then, on the fit
demos and on the held-out ones, the distance of the argmax pixel (the smaller head, as the agent
acts) from the demo's, per keyframe stage (stage k: an episode's k-th keyframe decision). Once per
--variant: a label and the agent config fields it changes from the preset (FIELD=VALUE, VALUE in
JSON), for example a deeper U-Net or the authors' 5x5 kernels.

One JSON line per variant: per stage, [median px, 90th percentile px, share within 1.5 px] on
`fit` and `held_out`, the seconds and the milliseconds per step (forward + backward + Adam at the
preset's batch size, one torch thread by default). No simulator runs; demos come from `arm demos`
or a run folder's demos/.

Examples:
    arm demos --task stack_wine --episodes 100 --seed 0 --out runs/demos64 --image-size 64
    python bench/attention_fit.py runs/demos64 stack_wine --minutes 12 \\
        --variant cpu --variant deeper 'unet_filters=[16,16,16]' --variant kernels5 unet_kernel=5 unet_stem_kernel=5
    python bench/attention_fit.py runs/cup/demos pick_up_cup --steps 500 --held-out 20
"""
import json
import sys
import time

import numpy as np

import demo_fit
from demo_fit import stages


def summary(error: np.ndarray, stage: np.ndarray) -> dict:
    """Per stage: [median, 90th percentile, share within 1.5 px] of the pixel errors."""
    return {f"stage{s}": [round(float(np.median(error[stage == s])), 1),
                          round(float(np.quantile(error[stage == s], 0.9)), 1),
                          round(float(np.mean(error[stage == s] <= 1.5)), 2)]
            for s in sorted(set(stage.tolist()))}


def fit(train, held_out, preset: str, label: str, overrides: dict, *, steps: int | None,
        minutes: float | None, seed: int = 0) -> dict:
    """One variant: fit on ``train`` for ``steps`` (or ``minutes``), measure on both sets -> the JSON row."""
    import torch
    import torch.nn.functional as F

    from arm_policy.agents.bc import BCAgent
    from arm_policy.config import preset as arm_preset
    from arm_policy.networks import QAttention

    cfg = arm_preset(preset, **{"amp": "off", "image_size": train[0].rgb.shape[0], **overrides})
    agent = BCAgent.from_demos(cfg, train, "cpu", seed=seed)

    def arrays(ts):
        obs = agent._obs(np.stack([t.rgb for t in ts]), np.stack([t.point_cloud for t in ts]))
        return obs, agent._t(np.stack([t.low_dim for t in ts])), torch.as_tensor(np.stack([t.pixel for t in ts]))

    obs, low_dim, pixels = arrays(train)
    width = obs.shape[-1]
    g = torch.Generator().manual_seed(seed)
    t0, done = time.perf_counter(), 0
    while (done < steps) if steps else (time.perf_counter() - t0 < 60 * minutes):
        i = torch.randint(len(train), (cfg.batch_size,), generator=g)
        q_map = agent.attention(obs[i], low_dim[i])  # (B, 2, H, W)
        label_pixel = (pixels[i][:, 0] * width + pixels[i][:, 1])[:, None].expand(len(i), 2)
        loss = F.cross_entropy(q_map.flatten(2).transpose(1, 2), label_pixel)
        agent.attention_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.attention_opt.step()
        done += 1
    seconds = time.perf_counter() - t0
    row = {"variant": label, "overrides": overrides, "preset": preset, "image_size": cfg.image_size,
           "steps": done, "fit_seconds": round(seconds, 1), "ms_per_step": round(1000 * seconds / done, 1),
           "fit_demos": len({t.episode for t in train}), "held_out_demos": len({t.episode for t in held_out}),
           "final_loss": round(loss.item(), 4)}
    with torch.no_grad():
        for name, data in (("fit", train), ("held_out", held_out)):
            obs, low_dim, pixels = arrays(data)
            chosen = torch.cat([QAttention.argmax_pixel(agent.attention(obs[j:j + 64], low_dim[j:j + 64])
                                                        .min(dim=1).values) for j in range(0, len(data), 64)])
            error = (chosen - pixels).float().norm(dim=1).numpy()
            row[name] = summary(error, stages(data))
    return row


def main(argv=None) -> int:
    p = demo_fit.parser(__doc__)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="behaviour-cloning steps per variant (default 1000)")
    budget.add_argument("--minutes", type=float, help="wall-clock minutes per variant instead of --steps")
    args = p.parse_args(argv)
    steps = None if args.minutes else (args.steps or 1000)
    if (steps is not None and steps < 1) or (args.minutes is not None and args.minutes <= 0):
        p.error("--steps, --minutes and --held-out must be positive")
    variants = demo_fit.variants(p, args)
    split = demo_fit.split_demos(args, "attention_fit")
    if split is None:
        return 2
    train, held_out = split
    for label, overrides in variants:
        try:
            row = fit(train, held_out, args.preset, label, overrides, steps=steps, minutes=args.minutes)
        except (TypeError, ValueError) as e:  # an unknown field or a value the config refuses
            print(f"attention_fit: variant {label!r}: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"task": args.task, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
