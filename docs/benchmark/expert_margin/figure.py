"""docs/figures/expert_margin_pick_up_cup.png: ARM on pick_up_cup, seed 0, fp32, learning from the
demos whose grasp leaves room on both sides (GRASP_MARGIN, this folder's cell) against the cells
that learned from the old demos (the 2-hour benchmark cell, the 40-minute fp32 and bf16 cells),
held-out success against env steps, up to where the new cell stopped.

    python docs/benchmark/expert_margin/figure.py docs/benchmark docs/figures/expert_margin_pick_up_cup.png
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])
CELL = "cells/pick_up_cup/arm/seed_0/metrics.csv"


def rows(folder, up_to=None):
    out = [{"env_steps": int(float(r["step"])), "eval_success": float(r["eval_success"])}
           for r in csv.DictReader((root / folder / CELL).open()) if r.get("eval_success")]
    return [r for r in out if up_to is None or r["env_steps"] <= up_to]


new = rows("expert_margin")
top = new[-1]["env_steps"]
plot_learning_curve(new, sys.argv[2], x="env_steps", label="grasp with margin (80 min)",
                    compare={"old demos, 2 h cell": rows(".", top),
                             "old demos, 40 min fp32": rows("amp_bf16/fp32", top),
                             "old demos, 40 min bf16": rows("amp_bf16/bf16", top)},
                    title="ARM, pick_up_cup, seed 0: demos with grasp margin",
                    ylabel="success (25 evaluation scenes)")
