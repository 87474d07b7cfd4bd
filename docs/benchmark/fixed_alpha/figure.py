"""docs/figures/pick_and_lift_fixed_alpha.png: ARM on pick_and_lift, the cpu preset's auto-tuned
SAC temperature (the benchmark's cell, docs/benchmark/cells) against the authors' fixed alpha 0.05
(this folder's cell), 110 minutes each, seed 0, held-out success against env steps.

    python docs/benchmark/fixed_alpha/figure.py docs/benchmark docs/figures/pick_and_lift_fixed_alpha.png
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])


def rows(folder):
    path = folder / "cells/pick_and_lift/arm/seed_0/metrics.csv"
    return [{"env_steps": int(r["step"]), "eval_success": float(r["eval_success"])}
            for r in csv.DictReader(path.open()) if r.get("eval_success")]


plot_learning_curve(rows(root), sys.argv[2], x="env_steps", label="alpha auto-tuned (cpu preset)",
                    compare={"alpha fixed at 0.05 (the authors')": rows(root / "fixed_alpha")},
                    title="ARM, pick_and_lift: auto-tuned vs fixed alpha",
                    ylabel="success (25 evaluation scenes)")
