"""docs/figures/amp_bf16_take_lid.png: ARM on take_lid_off_saucepan, fp32 against amp=bf16, two
40-minute cells side by side (one core each), held-out success against training minutes.

    python docs/benchmark/amp_bf16/figure.py docs/benchmark/amp_bf16 docs/figures/amp_bf16_take_lid.png
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])


def rows(mode):
    lines = list(csv.DictReader((root / mode / "cells/take_lid_off_saucepan/arm/seed_0/metrics.csv").open()))
    start = float(lines[0]["wall_time"])
    return [{"minutes": (float(r["wall_time"]) - start) / 60, "eval_success": float(r["eval_success"])}
            for r in lines if r.get("eval_success")]


plot_learning_curve(rows("fp32"), sys.argv[2], x="minutes", label="fp32", compare={"amp=bf16": rows("bf16")},
                    title="ARM, take_lid_off_saucepan: fp32 vs amp=bf16",
                    ylabel="success (25 evaluation scenes)")
