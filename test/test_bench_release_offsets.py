"""`bench/release_offsets.py` splits where a released object lands into the hand's error and the
object's offset in the hand: the measurement behind stack_wine's diagnosis in docs/results/arm.md."""
from __future__ import annotations

import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import release_offsets as ro  # noqa: E402


@pytest.fixture(scope="module")
def stack_wine():
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32), collision_checking=False).get_task("stack_wine")
    yield task
    task.close()


def test_the_release_keyframe_is_the_first_that_opens_after_a_closed_one(stack_wine):
    stack_wine.reset(3)
    keyframes = stack_wine.task.expert(stack_wine.sim)
    assert [k.gripper > 0.5 for k in keyframes] == [True, False, False, False, True, True]
    assert ro.release_keyframe(keyframes) == 4
    assert ro.release_keyframe(keyframes[:2]) is None  # a grasp never let go


def test_the_exact_expert_lands_the_bottle_below_its_release(stack_wine):
    rows = ro.expert_releases(stack_wine, [1000, 1001])
    assert [r["scene"] for r in rows] == [0, 1] and all(r["success"] for r in rows)
    for r in rows:
        assert r["object"] == "wine_bottle"
        assert r["hand_error_cm"] < 0.1 and r["in_hand_offset_cm"] < 0.2 and r["landing_cm"] < 0.2


def test_an_off_centre_grasp_carries_its_offset_to_where_the_bottle_lands(stack_wine):
    rows = ro.expert_releases(stack_wine, [1000, 1001], grasp_shift_m=0.009)
    for r in rows:
        assert r["hand_error_cm"] < 0.1  # the hand releases where the expert does ...
        assert r["in_hand_offset_cm"] == pytest.approx(0.9, abs=0.15)  # ... but the bottle hangs off it
        assert r["landing_cm"] == pytest.approx(r["in_hand_offset_cm"], abs=0.15)


def test_nothing_is_held_before_a_grasp(stack_wine):
    stack_wine.reset(3)
    assert ro.held_state(stack_wine.sim) is None


def test_the_command_reports_the_expert_alone_per_release_and_in_a_summary():
    import json
    import subprocess

    out = subprocess.run([sys.executable, str(BENCH / "release_offsets.py"), "--task", "stack_wine",
                          "--episodes", "2", "--grasp-shift-cm", "1"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["scene"] for r in rows if "scene" in r] == [0, 1]
    summary = rows[-1]
    assert (summary["summary"], summary["success"], summary["releases"]) == ("expert", True, 2)
    assert summary["median_landing_cm"] == pytest.approx(1.0, abs=0.15)
    neither = subprocess.run([sys.executable, str(BENCH / "release_offsets.py")], capture_output=True, text=True)
    assert neither.returncode == 2 and "give a RUN folder or --task" in neither.stderr
    no_release = subprocess.run([sys.executable, str(BENCH / "release_offsets.py"), "--task", "reach_target",
                                 "--episodes", "1"], capture_output=True, text=True, timeout=120)
    assert no_release.returncode == 1 and "never lets go" in no_release.stderr
