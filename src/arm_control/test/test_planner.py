"""Specification of arm_control.planner: OMPL joint-space planning with a caller's validity check.

The obstacles here are boxes in joint space, so the tests need no simulator and run in
milliseconds; the control node passes a MuJoCo collision check instead.
"""
import numpy as np
import pytest

from arm_control import panda
from arm_control.planner import (
    DEFAULT_RESOLUTION, LIMIT_TOLERANCE, PLANNERS, START_LIMIT_TOLERANCE, VERIFY_STEP, PlanResult,
    interpolate_path, plan_joint_path)

# Largest joint-space distance between two consecutive validity checks on an edge.
CHECK_STEP = DEFAULT_RESOLUTION * np.linalg.norm(panda.UPPER - panda.LOWER)

START = panda.NEUTRAL + np.array([-1.2, 0, 0, 0, 0, 0, 0])
GOAL = panda.NEUTRAL + np.array([1.2, 0, 0, 0, 0, 0, 0])

# A 7-D box around the middle of the straight START -> GOAL line: joint 1 must swing past
# joint 0 = 0 with the shoulder raised (joint 1 < -1.0) or the elbow / wrist moved out of it.
BOX_LO = np.array([-0.3, -1.0, -0.8, -3.0, -1.0, 0.8, -0.5])
BOX_HI = np.array([0.3, 1.8, 0.8, -1.0, 1.0, 2.5, 2.0])


def in_box(q, lo=BOX_LO, hi=BOX_HI, margin=0.0):
    return bool(np.all(q > lo - margin) and np.all(q < hi + margin))


def box_checker(margin):
    calls = []

    def is_valid(q):
        assert isinstance(q, np.ndarray) and q.shape == (7,) and q.dtype == float
        calls.append(q)
        return not in_box(q, margin=margin)

    is_valid.calls = calls
    return is_valid


def always_valid(q):
    return True


def assert_valid_path(path, start, goal, is_valid):
    assert path.ndim == 2 and path.shape[1] == 7 and len(path) >= 2
    np.testing.assert_array_equal(path[0], start)
    np.testing.assert_array_equal(path[-1], goal)
    assert np.all(path >= panda.LOWER) and np.all(path <= panda.UPPER)
    dense = interpolate_path(path, 0.002)
    bad = [q for q in dense if not is_valid(q)]
    assert not bad, f"{len(bad)} of {len(dense)} interpolated states are invalid, e.g. {bad[0]}"


def test_free_straight_move_is_returned_as_two_waypoints():
    r = plan_joint_path(START, GOAL, always_valid)
    assert isinstance(r, PlanResult)
    assert r.outcome == "ok" and r.ok
    assert r.path.shape == (2, 7)
    np.testing.assert_array_equal(r.path, np.stack([START, GOAL]))
    assert r.seconds < 0.5


def test_straight_move_is_checked_at_the_resolution():
    """The direct move is checked every <= CHECK_STEP rad, so a slab thicker than that on the
    line is never missed, and the checks are not much denser than needed; then once more every
    VERIFY_STEP rad per joint (the final check of every path)."""
    slab = 2 * CHECK_STEP

    def not_in_slab(q):
        return not (0.1 < q[0] < 0.1 + slab)

    r = plan_joint_path(START, GOAL, not_in_slab, timeout=0.2)
    assert r.outcome != "ok" or len(r.path) > 2  # never the straight line through the slab
    count = []
    r = plan_joint_path(START, GOAL, lambda q: count.append(1) or True)
    length = np.linalg.norm(GOAL - START)
    dense = len(interpolate_path(np.stack([START, GOAL]), VERIFY_STEP))
    assert length / CHECK_STEP + dense <= len(count) <= 2 * length / CHECK_STEP + 3 + dense
    assert 0.012 <= CHECK_STEP <= 0.02  # ~1-2 cm of TCP motion between checks


def test_an_obstacle_thinner_than_a_check_step_is_caught_by_the_final_check():
    """A wall in joint 0 thinner than OMPL's check step, placed where the straight line's
    checked states step over it: the final dense check refuses the line, and the path that comes
    back goes over the wall (joint 1 raised), valid at every state."""
    wall = (0.1, 0.1 + 0.5 * CHECK_STEP)

    def not_in_wall(q):
        return not (wall[0] < q[0] < wall[1] and q[1] < panda.NEUTRAL[1] + 0.5)

    line_states = np.linspace(START, GOAL, int(np.ceil(np.linalg.norm(GOAL - START) / CHECK_STEP)) + 1)
    assert all(not_in_wall(q) for q in line_states), "the line's checked states must miss the wall"
    assert not all(not_in_wall(q) for q in interpolate_path(np.stack([START, GOAL]), VERIFY_STEP))

    r = plan_joint_path(START, GOAL, not_in_wall, timeout=2.0)

    assert r.outcome == "ok", r.message
    assert len(r.path) > 2
    assert_valid_path(r.path, START, GOAL, not_in_wall)


def test_plans_around_a_box_obstacle_in_joint_space():
    # Plan against the box inflated by more than one check step: then the whole continuous
    # path, not just the checked states, avoids the real box.
    is_valid = box_checker(margin=1.5 * CHECK_STEP)
    straight = interpolate_path(np.stack([START, GOAL]), 0.01)
    assert any(in_box(q) for q in straight), "the box must block the straight line"

    r = plan_joint_path(START, GOAL, is_valid)

    assert r.outcome == "ok", r.message
    assert 3 <= len(r.path) <= 10, "shortcutting leaves a few waypoints"
    assert_valid_path(r.path, START, GOAL, lambda q: not in_box(q))
    assert r.checks == len(is_valid.calls) > 0
    assert r.seconds < 1.5


@pytest.mark.parametrize("name", ["RRT", "PRM", "KPIECE1", "LBKPIECE1"])
def test_other_planners_by_name(name):
    r = plan_joint_path(START, GOAL, box_checker(margin=1.5 * CHECK_STEP), planner=name,
                        timeout=2.0)
    assert r.outcome == "ok", r.message
    assert_valid_path(r.path, START, GOAL, lambda q: not in_box(q))


def test_raw_planner_path_without_simplification_is_still_valid():
    r = plan_joint_path(START, GOAL, box_checker(margin=1.5 * CHECK_STEP), simplify=False)
    assert r.outcome == "ok", r.message
    assert_valid_path(r.path, START, GOAL, lambda q: not in_box(q))


def test_start_in_collision_is_invalid_start():
    r = plan_joint_path(START, GOAL, lambda q: q[0] > -1.0)
    assert r.outcome == "invalid_start" and r.path is None


def test_goal_in_collision_is_invalid_goal():
    r = plan_joint_path(START, GOAL, lambda q: q[0] < 1.0)
    assert r.outcome == "invalid_goal" and r.path is None


def test_unreachable_goal_is_no_path_after_the_timeout():
    # The goal sits in a free pocket sealed off by a shell in joint 0 and joint 1.
    def sealed(q):
        d = np.abs(q[:2] - GOAL[:2]).max()
        return not (0.2 < d < 0.4)

    r = plan_joint_path(START, GOAL, sealed, timeout=0.2)
    assert r.outcome == "no_path" and r.path is None
    assert 0.15 <= r.seconds < 1.0


@pytest.mark.parametrize("goal, words", [
    (np.where(np.arange(7) == 3, np.nan, GOAL), ["goal", "NaN", "3"]),
    (np.where(np.arange(7) == 0, np.inf, GOAL), ["goal", "inf", "0"]),
    (GOAL[:6], ["goal", "shape"]),
    (np.where(np.arange(7) == 3, 0.5, GOAL), ["goal", "limit", "joint 3"]),
    (np.where(np.arange(7) == 0, panda.UPPER[0] + 0.1, GOAL), ["goal", "limit", "joint 0"]),
])
def test_bad_goal_is_invalid_with_a_message_naming_it(goal, words):
    r = plan_joint_path(START, goal, always_valid)
    assert r.outcome == "invalid" and r.path is None
    for w in words:
        assert w in r.message, r.message


def test_bad_start_is_invalid():
    r = plan_joint_path(np.full(7, np.nan), GOAL, always_valid)
    assert r.outcome == "invalid" and "start" in r.message


def test_unknown_planner_is_invalid_and_lists_the_valid_names():
    r = plan_joint_path(START, GOAL, always_valid, planner="SBLX")
    assert r.outcome == "invalid"
    assert "SBLX" in r.message and "RRTConnect" in r.message and "PRM" in r.message
    assert {"RRTConnect", "RRT", "RRTstar", "PRM", "KPIECE1", "BKPIECE1", "LBKPIECE1"} <= set(PLANNERS)


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": float("nan")},
                                    {"resolution": 0}, {"resolution": 2.0}])
def test_bad_settings_are_invalid(kwargs):
    r = plan_joint_path(START, GOAL, always_valid, **kwargs)
    assert r.outcome == "invalid"
    assert next(iter(kwargs)) in r.message


def test_joint_values_just_past_a_limit_are_clamped_onto_it():
    start = START.copy()
    start[3] = panda.UPPER[3] + 0.5 * LIMIT_TOLERANCE  # e.g. a joint pressed on its soft limit
    r = plan_joint_path(start, GOAL, always_valid)
    assert r.outcome == "ok"
    assert r.path[0, 3] == panda.UPPER[3]


def test_an_arm_pushed_past_a_limit_can_still_plan_its_way_back():
    start = START.copy()
    start[5] = panda.UPPER[5] + 0.0105  # measured: the hand pressed on the table, authors' mode
    r = plan_joint_path(start, GOAL, always_valid)
    assert r.outcome == "ok" and r.path[0, 5] == panda.UPPER[5]
    start[5] = panda.UPPER[5] + 2 * START_LIMIT_TOLERANCE  # further out is a bad state, not noise
    r = plan_joint_path(start, GOAL, always_valid)
    assert r.outcome == "invalid" and "start outside joint limits: joint 5" in r.message


def test_a_goal_past_a_limit_by_more_than_noise_is_invalid():
    goal = GOAL.copy()
    goal[5] = panda.UPPER[5] + 0.0105
    r = plan_joint_path(START, goal, always_valid)
    assert r.outcome == "invalid" and "goal outside joint limits: joint 5" in r.message


def test_validity_function_errors_propagate():
    def broken(q):
        if q[0] > 0:
            raise ZeroDivisionError("boom")
        return True

    with pytest.raises(ZeroDivisionError):
        plan_joint_path(START, GOAL, broken)


def test_many_calls_are_stable():
    """Each call builds and frees its OMPL objects; repeated use must neither crash nor grow."""
    is_valid = box_checker(margin=1.5 * CHECK_STEP)
    near = START + 0.2
    for _ in range(30):
        assert plan_joint_path(START, GOAL, is_valid, timeout=1.0).ok
        assert len(plan_joint_path(START, near, always_valid).path) == 2
        assert plan_joint_path(START, GOAL, is_valid, planner="?").outcome == "invalid"


def test_interpolate_path_bounds_every_joint_step_and_keeps_waypoints():
    path = np.array([np.zeros(7), np.full(7, 0.1), np.array([0.1, 0.1, 0.1, -0.5, 0.1, 0.1, 0.3])])
    dense = interpolate_path(path, 0.03)
    assert np.max(np.abs(np.diff(dense, axis=0))) <= 0.03 + 1e-12
    for w in path:
        assert any(np.array_equal(w, q) for q in dense)
    np.testing.assert_array_equal(dense[0], path[0])
    np.testing.assert_array_equal(dense[-1], path[-1])
    assert interpolate_path(path[:1], 0.1).shape == (1, 7)
    with pytest.raises(ValueError):
        interpolate_path(path, 0.0)


def test_goal_equal_to_start_is_a_trivial_path():
    r = plan_joint_path(START, START, always_valid)
    assert r.outcome == "ok" and r.path.shape == (2, 7)
    np.testing.assert_array_equal(r.path[0], r.path[1])
