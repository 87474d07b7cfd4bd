"""One task's ARM cells of several `arm benchmark --out` folders, each the mean over its seeds with
the spread shaded (the benchmark's own curves.png draws one folder's methods, not folders).

    python docs/benchmark/position_scale/figure.py take_lid_off_saucepan docs/figures/take_lid_position_scale_seeds.png \
        "metres (cpu preset now)=docs/benchmark/position_scale/take_lid" \
        "squashed units (cpu preset before)=docs/benchmark/position_scale/take_lid_cpu"
"""
import sys
from pathlib import Path

from arm_policy.benchmark_report import _curves, _mean_and_spread
from arm_policy.plots import _write_png, learning_curve_image

task, out, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
curves, bands = {}, {}
for label, folder in (s.split("=", 1) for s in specs):
    runs = _curves(Path(folder), task, "arm")
    xs, mean, lo, hi = _mean_and_spread(runs)
    label = f"{label}, {len(runs)} seeds"
    curves[label] = [{"env_steps": x, "eval_success": y} for x, y in zip(xs, mean)]
    bands[label] = (xs, lo, hi)
(first, rows), *rest = curves.items()
_write_png(out, learning_curve_image(rows, label=first, compare=dict(rest), bands=bands,
                                     title=f"ARM, {task}: mean over seeds, min-max shaded",
                                     ylabel="success (25 evaluation scenes)"))
