"""Held-out success against env steps of several `arm benchmark --out` folders holding one task's
ARM cell (seed 0 unless a folder is given as FOLDER:SEED), one line each. `--title T` (first)
replaces the default title.

    python docs/benchmark/attention_stage/figure.py pick_up_cup docs/figures/attention_stage_pick_up_cup.png \
        "hand pose tiled over Q-attention (cpu preset before)=docs/benchmark/expert_margin" \
        "stage features only=docs/benchmark/attention_stage/stage" \
        "stage features only, actor average=docs/benchmark/attention_stage/stage_actor_average"
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

args = sys.argv[1:]
title = None
if args[:1] == ["--title"]:
    title, args = args[1], args[2:]
task, out, specs = args[0], args[1], args[2:]


def rows(spec):
    folder, _, seed = spec.partition(":")
    path = Path(folder) / "cells" / task / "arm" / f"seed_{seed or 0}" / "metrics.csv"
    return [{"env_steps": int(r["step"]), "eval_success": float(r["eval_success"])}
            for r in csv.DictReader(path.open()) if r.get("eval_success")]


curves = {label: rows(folder) for label, folder in (s.split("=", 1) for s in specs)}
(first, first_rows), *rest = curves.items()
plot_learning_curve(first_rows, out, x="env_steps", label=first, compare=dict(rest),
                    title=title or f"ARM, {task}: what Q-attention reads of the low-dim state",
                    ylabel="success (25 evaluation scenes)")
