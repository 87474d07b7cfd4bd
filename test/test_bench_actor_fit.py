"""`bench/actor_fit.py`: how precisely the actor alone learns a task's keyframe poses from demos,
once per config variant (docs/results/arm.md)."""
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


def test_each_variant_fits_demos_and_reports_held_out_errors_in_cm_per_stage(tmp_path):
    demos = tmp_path / "demos"
    subprocess.run([sys.executable, "-m", "arm_bringup.cli", "demos", "--task", "pick_up_cup", "--episodes", "3",
                    "--seed", "0", "--out", str(demos), "--image-size", "32"], check=True, capture_output=True)
    out = subprocess.run([sys.executable, str(BENCH / "actor_fit.py"), str(demos), "pick_up_cup",
                          "--held-out", "1", "--steps", "5", "--variant", "cpu",
                          "--variant", "ray", "actor_offset_frame=camera_ray", "position_error_scale=0.03"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["variant"], r["overrides"]) for r in rows] == [
        ("cpu", {}), ("ray", {"actor_offset_frame": "camera_ray", "position_error_scale": 0.03})]
    for r in rows:
        assert r["image_size"] == 32 and r["steps"] == 5 and r["train_transitions"] > r["held_out_transitions"] > 0
        for key in ("px", "row+1", "row-1", "col+1", "col-1", "grasp"):
            median, p90 = r[f"error_cm_{key}"]
            assert 0 <= median <= p90 < 200
        assert set(r["stages"]) >= {"stage0", "stage1"}
        for stage in r["stages"].values():
            assert len(stage["mean_cm"]) == 3 and stage["error_cm"][0] >= 0
            # per world axis: |error on one axis| <= |error|, so its median is at most the error's
            assert len(stage["median_abs_cm"]) == 3 and min(stage["median_abs_cm"]) >= 0
            assert max(stage["median_abs_cm"]) <= stage["error_cm"][0] + 0.01  # both rounded to 0.01
            # the bias along the ray is reported only where the offsets are in the ray's frame
            assert ("mean_along_ray_cm" in stage) == (r["variant"] == "ray")


def test_too_few_demos_or_a_wrong_folder_or_field_is_a_clear_error(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, str(BENCH / "actor_fit.py"), *a], capture_output=True, text=True)
    out = run(str(tmp_path), "pick_up_cup")
    assert out.returncode == 2 and "no usable demos" in out.stderr
    out = run(str(tmp_path), "pick_up_cup", "--variant", "x", "offset_frame")
    assert out.returncode == 2 and "--variant x" in out.stderr
