"""docs/figures/qtopt_one_box_inprocess_vs_ray.png: QT-Opt on the one-box tray without the image
shift, in process against Ray (2 collectors, 1 Bellman updater), seeds 0 and 1, held-out success
against env steps (the same grasps bought the same updates in both: one per env step).

    python docs/benchmark/qtopt_one_box_inprocess_vs_ray/figure.py docs/benchmark/qtopt_one_box_inprocess_vs_ray \
        docs/figures/qtopt_one_box_inprocess_vs_ray.png
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])


def rows(seed, mode):
    return [{"env_steps": int(r["step"]), "eval_success": float(r["eval_success"])}
            for r in csv.DictReader((root / f"seed_{seed}" / mode / "metrics.csv").open()) if r.get("eval_success")]


plot_learning_curve(rows(0, "inprocess"), sys.argv[2], x="env_steps", label="in process, seed 0",
                    compare={"Ray, seed 0": rows(0, "ray"), "in process, seed 1": rows(1, "inprocess"),
                             "Ray, seed 1": rows(1, "ray")},
                    title="QT-Opt, one-box tray: in process vs Ray",
                    ylabel="success (25 held-out scenes)")
