"""`bench/actor_fit.py`: how precisely the actor alone learns a task's keyframe poses from demos,
with the crop's points in world coordinates or about the anchor (docs/results/arm.md)."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import actor_fit  # noqa: E402


def test_the_grasp_is_each_episodes_first_keyframe_that_closes_the_hand():
    t = lambda episode, index, gripper: SimpleNamespace(episode=episode, index=index, action=np.r_[np.zeros(7), gripper])
    transitions = [t("a", 30, 0.0), t("a", 10, 1.0), t("a", 20, 0.0), t("b", 5, 1.0), t("b", 9, 0.0)]
    assert actor_fit.grasp_mask(transitions).tolist() == [False, False, True, False, True]


def test_both_variants_fit_demos_and_report_held_out_errors_in_cm(tmp_path):
    demos = tmp_path / "demos"
    subprocess.run([sys.executable, "-m", "arm_bringup.cli", "demos", "--task", "pick_up_cup", "--episodes", "3",
                    "--seed", "0", "--out", str(demos), "--image-size", "32"], check=True, capture_output=True)
    out = subprocess.run([sys.executable, str(BENCH / "actor_fit.py"), str(demos), "pick_up_cup",
                          "--held-out", "1", "--steps", "5"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["variant"] for r in rows] == ["world", "anchor"]
    for r in rows:
        assert r["image_size"] == 32 and r["steps"] == 5 and r["train_transitions"] > r["held_out_transitions"] > 0
        for key in ("px", "row+1", "row-1", "col+1", "col-1", "grasp"):
            median, p90 = r[f"error_cm_{key}"]
            assert 0 <= median <= p90 < 200


def test_too_few_demos_or_a_wrong_folder_is_a_clear_error(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, str(BENCH / "actor_fit.py"), *a], capture_output=True, text=True)
    out = run(str(tmp_path), "pick_up_cup")
    assert out.returncode == 2 and "no usable demos" in out.stderr
    out = run(str(tmp_path), "pick_up_cup", "--variants", "pixels")
    assert out.returncode == 2 and "--variants takes world and/or anchor" in out.stderr
