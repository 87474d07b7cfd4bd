"""`bench/bench_qtopt_tray.py` asks the learning smoke test's question at bench size: on the
one-box tray, how held-out success moves with offline updates, or with the agent's own exploring
grasps (--online). A tiny offline run says its JSON lines carry what docs/results/qtopt.md quotes; the online mode's are checked
by the learning smoke test that runs it (test_qtopt_learns.py)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_qtopt_tray.py"
TINY = ["--grasps", "2", "--image-size", "32", "--points", "1", "--episodes", "1", "--agent-overrides",
        "conv_channels=[8,8]", "embed_hidden=8", "head_channels=8", "head_hidden=8", "batch_size=4"]


def run_bench(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, str(BENCH), *TINY, *args], capture_output=True, text=True,
                         timeout=300, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_offline_lines_count_updates_and_the_untrained_point_comes_first():
    scripted, untrained, trained = run_bench("--updates", "3")
    assert scripted["name"] == "scripted_success" and scripted["transitions"] > 0
    assert (untrained["updates"], trained["updates"]) == (0, 3)
    assert "env_steps" not in trained and 0 <= trained["value"] <= 1 and trained["lateral_drift_cm"] >= 0
    assert trained["towards_box"] is None or 0 <= trained["towards_box"] <= 1



def test_towards_box_tells_a_policy_that_heads_for_the_box_from_one_that_flees_it():
    import importlib.util
    from types import SimpleNamespace

    import numpy as np
    from arm_sim.grasp_bin import GraspBinEnv

    spec = importlib.util.spec_from_file_location("bench_qtopt_tray", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    env = GraspBinEnv(image_size=(16, 16), objects=1, family="box", spread=1.0)

    class Lateral:  # 4 cm a step towards the box (sign 1) or away from it (-1), never down
        def __init__(self, sign):
            self.sign = sign

        def act(self, obs, explore):
            gap = env.sim.data.xpos[env.objects[0].body_id][:2] - env.observe().gripper_position[:2]
            d = self.sign * 0.04 * gap / max(np.linalg.norm(gap), 1e-9)
            return SimpleNamespace(action=np.r_[d, 0.0, 0.0, 1.0, 0.0, float(env.steps >= 2)].astype(np.float32))

    try:
        _, near, towards = bench.greedy_on_held_out(env, Lateral(1), 2)
        _, far, away = bench.greedy_on_held_out(env, Lateral(-1), 2)
    finally:
        env.close()
    assert (towards, away) == (1.0, 0.0) and near < far
