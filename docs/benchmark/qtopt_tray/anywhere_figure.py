"""docs/figures/qtopt_box_anywhere.png: where QT-Opt stops learning. One box at the tray's centre,
below the gripper (learned), against one box anywhere in the tray (--spread 1: not learned, at 64
px, at 48 px with the gripper 10 cm up, or from 2,000 scripted grasps instead of 200). Seed 0, no
image shift, held-out success against env steps.

    python docs/benchmark/qtopt_tray/anywhere_figure.py docs/benchmark/qtopt_tray docs/figures/qtopt_box_anywhere.png
"""
import json
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])


def rows(name):
    lines = [json.loads(line) for line in (root / name).read_text().splitlines()]
    return [{"env_steps": d["env_steps"], "eval_success": d["value"]} for d in lines if d["name"] == "held_out_success"]


plot_learning_curve(rows("online_shift0_seed0.jsonl"), sys.argv[2], x="env_steps",
                    label="box at the centre, 64 px, 200 grasps",
                    compare={"box anywhere, 64 px, 200 grasps": rows("anywhere_64px_shift0_seed0.jsonl"),
                             "box anywhere, 48 px, low start, 200 grasps": rows("anywhere_low_48px_shift0_seed0.jsonl"),
                             "box anywhere, 48 px, low start, 2,000 grasps": rows("anywhere_low_48px_2000grasps_seed0.jsonl")},
                    title="QT-Opt: one box at the centre vs anywhere",
                    ylabel="success (20 held-out scenes)")
