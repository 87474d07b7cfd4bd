"""`bench/bench_qtopt_tray.py` asks the learning smoke test's question at bench size: on the
one-box tray, how held-out success moves with offline updates, or with the agent's own exploring
grasps (--online). A tiny offline run says its JSON lines carry what the README quotes; the online mode's are checked
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

