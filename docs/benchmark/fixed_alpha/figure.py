"""ARM with the cpu preset's auto-tuned SAC temperature against the authors' fixed alpha 0.05, one
task, seed 0, held-out success against env steps. Each folder is an `arm benchmark --out` folder
holding the task's ARM cell.

    python docs/benchmark/fixed_alpha/figure.py docs/benchmark docs/benchmark/fixed_alpha pick_and_lift \
        docs/figures/pick_and_lift_fixed_alpha.png
    python docs/benchmark/fixed_alpha/figure.py docs/benchmark/no_collision_checking \
        docs/benchmark/fixed_alpha_no_collision_checking phone_on_base docs/figures/phone_on_base_fixed_alpha.png \
        "authors' mode"
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

auto, fixed, task, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
mode = f", {sys.argv[5]}" if len(sys.argv) > 5 else ""


def rows(folder):
    path = folder / "cells" / task / "arm/seed_0/metrics.csv"
    return [{"env_steps": int(r["step"]), "eval_success": float(r["eval_success"])}
            for r in csv.DictReader(path.open()) if r.get("eval_success")]


plot_learning_curve(rows(auto), out, x="env_steps", label="alpha auto-tuned (cpu preset)",
                    compare={"alpha fixed at 0.05 (the authors')": rows(fixed)},
                    title=f"ARM, {task}{mode}: auto vs fixed alpha",
                    ylabel="success (25 evaluation scenes)")
