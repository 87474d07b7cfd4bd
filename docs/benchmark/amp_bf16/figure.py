"""ARM, fp32 against amp=bf16 on one task: two 40-minute cells with the same seed, demos and
scenes, held-out success against training minutes.

    python docs/benchmark/amp_bf16/figure.py docs/benchmark/amp_bf16 take_lid_off_saucepan docs/figures/amp_bf16_take_lid.png
    python docs/benchmark/amp_bf16/figure.py docs/benchmark/amp_bf16 pick_up_cup docs/figures/amp_bf16_pick_up_cup.png
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root, task, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]


def rows(mode):
    lines = list(csv.DictReader((root / mode / f"cells/{task}/arm/seed_0/metrics.csv").open()))
    start = float(lines[0]["wall_time"])
    return [{"minutes": (float(r["wall_time"]) - start) / 60, "eval_success": float(r["eval_success"])}
            for r in lines if r.get("eval_success")]


plot_learning_curve(rows("fp32"), out, x="minutes", label="fp32", compare={"amp=bf16": rows("bf16")},
                    title=f"ARM, {task}: fp32 vs amp=bf16",
                    ylabel="success (25 evaluation scenes)")
