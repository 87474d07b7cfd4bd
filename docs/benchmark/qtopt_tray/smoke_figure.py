"""docs/figures/qtopt_smoke_test.png: the learning smoke test's run (one_box_low tray, 48 px,
2,000 env steps) without the image shift (the test's) and with the default 4-pixel shift: the mean
of seeds 0-2 at each evaluation (x: their mean env steps), beside the scripted grasps' success.

    python docs/benchmark/qtopt_tray/smoke_figure.py docs/benchmark/qtopt_tray docs/figures/qtopt_smoke_test.png
"""
import json
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])


def rows(name):
    lines = [json.loads(line) for line in (root / name).read_text().splitlines()]
    return [{"env_steps": d["env_steps"], "eval_success": d["value"]} for d in lines if d["name"] == "held_out_success"]


def mean_of_seeds(shift):
    runs = [rows(f"smoke_shift{shift}_seed{s}.jsonl") for s in (0, 1, 2)]
    return [{"env_steps": sum(r[i]["env_steps"] for r in runs) / 3, "eval_success": sum(r[i]["eval_success"] for r in runs) / 3}
            for i in range(len(runs[0]))]


scripted = json.loads((root / "smoke_shift0_seed0.jsonl").read_text().splitlines()[0])["value"]
compare = {"image_shift=4 (the default), mean of seeds 0-2": mean_of_seeds(4),
           "scripted grasps (the offline data)": [{"env_steps": x, "eval_success": scripted} for x in (0, 2000)]}
plot_learning_curve(mean_of_seeds(0), sys.argv[2], x="env_steps", label="image_shift=0 (the test's), mean of seeds 0-2",
                    compare=compare, title="QT-Opt smoke test: one_box_low tray, 48 px",
                    ylabel="held-out success (20 scenes)")
