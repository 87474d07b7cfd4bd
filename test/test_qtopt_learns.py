"""QT-Opt's learning smoke test (issue 15): on the trivial one-object tray it raises held-out
success from the untrained agent's 0 within a couple of thousand env steps.

The tray is ``one_box_low``: one box right below a gripper that starts 10 cm above the floor, so
a grasp is two steps down, close, lift. The run is ``bench/bench_qtopt_tray.py --online`` at the
size it learns at in about two minutes on one core (48 px, 200 scripted grasps, one update per
env step, no image shift: at this size the 4-pixel shift of the default config costs more
steps than CI can spend). Every step is the real thing: MuJoCo friction grasps rendered by the
bin's camera, scripted grasps stored as bags and read back, CEM on the Q-network, clipped
double-Q targets and held-out boxes for the evaluations."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_qtopt_tray.py"
SMOKE = ["--online", "--tray", "one_box_low", "--image-size", "48", "--grasps", "200", "--updates", "2000",
         "--points", "4", "--episodes", "20", "--seed", "0", "--agent-overrides", "image_shift=0"]


def test_qtopt_raises_held_out_success_on_the_trivial_tray():
    out = subprocess.run([sys.executable, str(BENCH), *SMOKE], capture_output=True, text=True, timeout=900,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    scripted, untrained, *trained = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    curve = [(p["env_steps"], p["value"]) for p in trained]
    assert scripted["value"] > 0.2 and untrained["value"] <= 0.05, (scripted, untrained)
    assert len(trained) == 4 and trained[-1]["env_steps"] >= 2000 and trained[-1]["updates"] == trained[-1]["env_steps"]
    # seeds 0-5 of this run: 0.35-0.85 here (the seed is fixed, but another CPU's rounding makes
    # it another run); with the default 4-pixel image shift, 0.10-0.45 (seeds 0-2)
    late = max(trained[-2]["value"], trained[-1]["value"])  # at 1,500 and 2,000 env steps
    assert late >= untrained["value"] + 0.25, f"held-out success over env steps: {curve}"
    assert trained[-1]["exploring_success"] > 0.05, trained[-1]  # its own grasps succeed too
