"""Can an exploring episode succeed? How far the exploring poses of a trained ARM agent land from
the demos' keyframes, at the agent's exploration noise and at others.

For each decision of the demos' keyframe chains (no augmentation), the actor is given the crop at
the demo's own pixel (so attention errors are left out) and samples ``--samples`` exploring poses
(``u = mu + scale * std * noise``, as ``ARMAgent.act(explore=True)``). Per decision stage and
noise scale: the greedy pose's distance from the keyframe, the samples' (median), their spread
per axis, and the share within 1 and 2 cm. A grasp that tolerates 0.5 cm (``bench/
keyframe_tolerance.py``) is never hit by samples spread over several cm: the agent then learns
from the demos alone, whatever its own episodes.

One JSON line per (stage, scale).

Examples:
    python bench/exploration_spread.py runs/sw/cells/stack_wine/arm/seed_0 runs/sw/demos
    python bench/exploration_spread.py RUN DEMOS --scales 0.25,0.05,0.02 --checkpoint step_000005000.pt
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np


def emit(**row):
    print(json.dumps(row), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="an ARM run folder (its checkpoints/ and config.json)")
    parser.add_argument("demo_dir", help="the `arm demos` folder of its task: DEMO_DIR/TASK/seed_*")
    parser.add_argument("--checkpoint", default="", help="a file in RUN/checkpoints (default: the newest)")
    parser.add_argument("--scales", default="", help="comma-separated noise scales (default: the agent's)")
    parser.add_argument("--episodes", type=int, default=20, help="demos to read")
    parser.add_argument("--samples", type=int, default=64, help="exploring poses per decision")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from arm_policy.agents import ARMAgent
    from arm_policy.checkpoints import latest_checkpoint, load_checkpoint
    from arm_policy.demo_dataset import load_demos
    from arm_policy.networks import crop
    from arm_policy.run_log import read_json

    run = Path(args.run)
    path = run / "checkpoints" / args.checkpoint if args.checkpoint else latest_checkpoint(run)
    if path is None or not path.exists():
        parser.error(f"no checkpoint {args.checkpoint or ''} in {run / 'checkpoints'}")
    state = load_checkpoint(path)
    if state.get("agent") != "arm":
        parser.error(f"{path} is a {state.get('agent')!r} checkpoint; this looks at ARM's actor")
    agent = ARMAgent.from_state_dict(state, "cpu")
    task = read_json(run / "config.json")["config"]["train"]["task"]
    scales = [float(s) for s in args.scales.split(",") if s] or [agent.cfg.exploration_noise_scale]
    transitions = load_demos(args.demo_dir, task, augmentation_every=0, max_episodes=args.episodes)
    if not transitions:
        parser.error(f"no usable {task} demos under {args.demo_dir}")

    torch.manual_seed(args.seed)
    stats: dict = {}
    last, stage = None, 0
    for t in transitions:
        stage = stage + 1 if t.episode == last else 0
        last = t.episode
        x = agent._obs(t.rgb[None], t.point_cloud[None])
        crops = crop(x, torch.as_tensor(t.pixel)[None], agent.cfg.crop_size).repeat(args.samples, 1, 1, 1)
        low_dim = torch.as_tensor(t.low_dim)[None].repeat(args.samples, 1)
        target = torch.as_tensor(t.action[:3])
        for scale in scales:
            with torch.no_grad():
                sample, _, mean = agent.actor(crops, low_dim, deterministic=False, noise_scale=scale)
            error = 100 * (sample[:, :3] - target).norm(dim=1)
            cell = stats.setdefault((stage, scale), {"greedy": [], "sample": [], "spread": [], "1": [], "2": []})
            cell["greedy"].append(float(100 * (mean[0, :3] - target).norm()))
            cell["sample"].append(float(error.median()))
            cell["spread"].append((100 * sample[:, :3].std(dim=0)).numpy())
            cell["1"].append(float((error < 1).float().mean()))
            cell["2"].append(float((error < 2).float().mean()))
    for (stage, scale), cell in sorted(stats.items()):
        emit(task=task, checkpoint=path.name, stage=stage, scale=scale, decisions=len(cell["greedy"]),
             greedy_error_cm=round(float(np.median(cell["greedy"])), 2),
             sample_error_cm=round(float(np.median(cell["sample"])), 2),
             sample_spread_xyz_cm=[round(float(v), 2) for v in np.median(np.array(cell["spread"]), axis=0)],
             within_1cm=round(float(np.mean(cell["1"])), 3), within_2cm=round(float(np.mean(cell["2"])), 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
