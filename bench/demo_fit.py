"""What bench/attention_fit.py and bench/actor_fit.py share: one part of the agent fitted to a
task's demos alone, once per --variant (a label and the config fields it changes), measured on
held-out demos stage by stage."""
from __future__ import annotations

import argparse
import sys

import numpy as np


def stages(transitions) -> np.ndarray:
    """Each keyframe transition's stage: its rank by frame index within its episode."""
    order = sorted(range(len(transitions)), key=lambda k: (transitions[k].episode, transitions[k].index))
    stage = np.zeros(len(transitions), int)
    previous, rank = None, 0
    for k in order:
        rank = rank + 1 if transitions[k].episode == previous else 0
        previous = transitions[k].episode
        stage[k] = rank
    return stage


def parser(doc: str) -> argparse.ArgumentParser:
    """The arguments both tools take: demos, task, --held-out, --preset, --variant, --threads."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("demos", help="folder holding TASK/seed_* demo bags (arm demos --out, or RUN/demos)")
    p.add_argument("task")
    p.add_argument("--held-out", type=int, default=20, help="last demos kept out of the fit")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--variant", nargs="+", action="append", metavar=("LABEL", "FIELD=VALUE"),
                   help="a label and the config fields it changes (repeatable; default: the preset as is)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p


def variants(p: argparse.ArgumentParser, args) -> list[tuple[str, dict]]:
    """(label, {field: value}) per --variant (the preset alone without one); a malformed item
    is the parser's error."""
    from arm_policy.settings_cli import parse_items

    if args.held_out < 1:
        p.error("--held-out must be positive")
    try:
        return [(v[0], parse_items(v[1:], f"--variant {v[0]}")) for v in (args.variant or [[args.preset]])]
    except ValueError as e:
        p.error(str(e))


def split_demos(args, tool: str):
    """(fit, held_out) keyframe transitions of args.task under args.demos, with torch on
    args.threads; None after a clear message when there are none or too few."""
    import torch

    from arm_policy.demo_dataset import hold_out_episodes, load_demos

    torch.set_num_threads(args.threads)
    try:
        return hold_out_episodes(load_demos(args.demos, args.task), args.held_out)
    except (FileNotFoundError, ValueError) as e:  # no such folder, or too few demos in it
        print(f"{tool}: no usable demos of {args.task}: {e}", file=sys.stderr)
        return None
