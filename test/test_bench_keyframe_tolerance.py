"""`bench/keyframe_tolerance.py` measures how far each keyframe of a task's expert may be off
before the task fails: the windows docs/results/arm.md sets the agent's pose errors against."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import keyframe_tolerance as kt  # noqa: E402


def test_a_grasp_far_into_the_table_fails_and_the_window_stops_short_of_it():
    out = subprocess.run([sys.executable, str(BENCH / "keyframe_tolerance.py"), "--tasks", "pick_up_cup",
                          "--keyframes", "1", "--axes", "height", "--offsets", "0.5,10", "--seeds", "2"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    expert = rows[0]
    assert expert["keyframe"] is None and expert["success"] == 1.0 and expert["keyframes"] >= 3
    by_offset = {r["offset"]: r for r in rows if "offset" in r and r["keyframe"] == 1}
    assert sorted(by_offset) == [-10.0, -0.5, 0.5, 10.0]
    assert by_offset[-10.0]["success"] == 0.0 and "success" not in by_offset[-10.0]["outcomes"]
    assert by_offset[10.0]["success"] == 0.0  # closing 10 cm above the cup grasps nothing
    window = rows[-1]
    assert (window["axis"], window["unit"]) == ("height", "cm")
    assert -10.0 < window["window"][0] <= 0.0 <= window["window"][1] < 10.0


def test_the_window_is_what_stays_above_the_floor_from_zero_outward():
    rates = {0.0: 1.0, 0.5: 1.0, 1.0: 0.25, 2.0: 1.0, -0.5: 0.5, -1.0: 0.0}
    assert kt.window(rates, 0.5) == (-0.5, 0.5)  # 2 cm succeeding again does not widen it


@pytest.mark.parametrize("yaw", [0.0, 0.7])
def test_offsets_follow_the_gripper_axes(yaw):
    from arm_control.transforms import quat_xyzw_to_mat, top_down_quat

    pose = np.concatenate([[0.4, 0.1, 0.2], top_down_quat(yaw)])
    rotation = quat_xyzw_to_mat(pose[3:])
    across = kt.moved(pose, "across", 0.01)
    assert np.allclose(across[:3] - pose[:3], 0.01 * rotation[:, 1]) and np.allclose(across[3:], pose[3:])
    assert np.isclose(abs(np.dot(across[:3] - pose[:3], [np.cos(yaw), np.sin(yaw), 0.0])), 0.0, atol=1e-9)
    assert np.allclose(kt.moved(pose, "height", -0.02)[:3], [0.4, 0.1, 0.18])
    turned = quat_xyzw_to_mat(kt.moved(pose, "yaw", 90.0)[3:])
    assert np.allclose(turned[:, 2], rotation[:, 2])  # still pointing down
    assert np.allclose(turned[:, 0], [-rotation[1, 0], rotation[0, 0], 0.0])  # turned a quarter about z
