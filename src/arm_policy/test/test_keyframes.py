"""Specification of keyframe discovery (arm_policy.keyframes) on hand-built trajectories."""
from __future__ import annotations

import numpy as np
import pytest

from arm_policy.keyframes import (
    STOP_BUFFER,
    STOPPED_VELOCITY,
    discover_keyframes,
    next_keyframe_indices,
    stopped_frames,
)

MOVE = 0.5  # rad/s, a moving joint


def velocities(speeds) -> np.ndarray:
    """(T, 7) joint velocities whose largest |component| per frame is speeds[t] (signs mixed)."""
    speeds = np.asarray(speeds, dtype=np.float64)
    return speeds[:, None] * np.array([0.3, -1.0, 0.5, 0.2, -0.7, 0.1, 0.9])


def opened(T, closed=()):
    """gripper_open (T,) True except in the half-open frame ranges ``closed`` [(a, b), ...]."""
    g = np.ones(T, dtype=bool)
    for a, b in closed:
        g[a:b] = False
    return g


# --------------------------------------------------------------------------- the three rules


def test_gripper_changes_and_last_frame_while_moving():
    T = 20
    kf = discover_keyframes(opened(T, [(5, 12)]), velocities([MOVE] * T))
    assert kf == [5, 12, 19]


def test_a_stop_is_one_keyframe_on_its_slowest_frame():
    # rest 0-2, move 3-9, stop 10-14 (decelerate, settle, accelerate), move 15-24
    speeds = [0.0] * 3 + [MOVE] * 7 + [0.08, 0.03, 0.01, 0.04, 0.09] + [MOVE] * 10
    kf = discover_keyframes(opened(len(speeds)), velocities(speeds))
    assert kf == [12, 24]


def test_the_rest_before_the_first_motion_is_not_a_stop_and_frame_0_never_a_keyframe():
    T = 15
    assert discover_keyframes(opened(T), np.zeros((T, 7))) == [T - 1]
    speeds = [0.0] * 6 + [MOVE] * 9
    assert discover_keyframes(opened(T), velocities(speeds)) == [T - 1]
    # a gripper change at frame 1 is a keyframe; frame 0 is not, even if the arm moves there
    assert discover_keyframes(opened(T, [(1, T)]), velocities([MOVE] * T)) == [1, T - 1]


def test_a_long_stop_counts_once():
    speeds = [MOVE] * 10 + [0.0] * 30 + [MOVE] * 10
    assert discover_keyframes(opened(50), velocities(speeds)) == [10, 49]


def test_two_stops_separated_by_motion_are_two_keyframes():
    speeds = [MOVE] * 8 + [0.05, 0.0, 0.05] + [MOVE] * 8 + [0.05, 0.02, 0.06] + [MOVE] * 5
    assert discover_keyframes(opened(len(speeds)), velocities(speeds)) == [9, 20, len(speeds) - 1]


def test_stop_buffer_ignores_a_flicker_above_the_threshold_right_after_a_stop():
    # move 0-9, stop 10-11, one frame at 0.15 (noise), stopped 13-17, move 18-29
    speeds = [MOVE] * 10 + [0.05, 0.02, 0.15, 0.01, 0.0, 0.0, 0.0, 0.05] + [MOVE] * 12
    g, v = opened(30), velocities(speeds)
    assert discover_keyframes(g, v, stop_buffer=4) == [11, 29]
    # without the buffer the flicker counts as motion and the rest after it as a second stop
    assert discover_keyframes(g, v, stop_buffer=0) == [11, 14, 29]


def test_stop_buffer_delays_the_next_stop_after_a_gripper_change():
    # gripper closes while moving at 10; the arm stops 2 frames later for good, then moves on
    speeds = [MOVE] * 12 + [0.0] * 3 + [MOVE] * 10
    g = opened(25, [(10, 25)])
    assert discover_keyframes(g, velocities(speeds), stop_buffer=4) == [10, 24]
    # motion inside the buffer does not count as having moved, so 1 frame is enough here
    assert discover_keyframes(g, velocities(speeds), stop_buffer=1) == [10, 24]
    assert discover_keyframes(g, velocities(speeds), stop_buffer=0) == [10, 12, 24]


def test_noisy_near_zero_velocities_give_one_keyframe_per_stop():
    rng = np.random.default_rng(7)
    noise = lambda n, a: rng.uniform(-a, a, size=(n, 7))  # noqa: E731
    parts = [
        noise(10, 0.03),  # at rest before moving
        MOVE + noise(20, 0.05),  # moving
        noise(15, 0.05),  # stop 1: frames 30-44
        -MOVE + noise(20, 0.05),  # moving
        noise(15, 0.05),  # stop 2 until the end: frames 65-79
    ]
    vel = np.concatenate(parts)
    kf = discover_keyframes(opened(80), vel)
    assert len(kf) == 2 and 30 <= kf[0] <= 44 and kf[1] == 79
    speed = np.abs(vel).max(axis=1)
    assert kf[0] == 30 + int(np.argmin(speed[30:45]))
    # a gripper change inside stop 1 stands for that stop
    assert discover_keyframes(opened(80, [(37, 80)]), vel) == [37, 79]


def test_all_joints_must_be_slow_for_a_stop():
    T = 30
    v = np.zeros((T, 7))
    v[:10] = MOVE
    v[20:] = MOVE
    v[10:20, 6] = 0.3  # one joint still turning
    assert discover_keyframes(opened(T), v) == [T - 1]
    v[10:20, 6] = -0.05
    assert discover_keyframes(opened(T), v) == [10, T - 1]


def test_threshold_decides_what_counts_as_stopped():
    speeds = [MOVE] * 10 + [0.15] * 5 + [MOVE] * 10
    g, v = opened(25), velocities(speeds)
    assert discover_keyframes(g, v) == [24]  # default 0.1: never stopped
    assert discover_keyframes(g, v, stopped_velocity=0.2) == [10, 24]
    assert STOPPED_VELOCITY == 0.1 and STOP_BUFFER == 4


# --------------------------------------------------------------------------- one keyframe per waypoint


def test_stop_then_gripper_action_in_the_same_stop_is_one_keyframe_the_gripper_change():
    # the expert: move, stop (decelerate 10-12, settle), close the gripper at 14, move on at 19
    speeds = [MOVE] * 10 + [0.08, 0.03, 0.01, 0.005, 0.002, 0.001, 0.0, 0.01, 0.05] + [MOVE] * 11
    T = len(speeds)
    kf = discover_keyframes(opened(T, [(14, T)]), velocities(speeds))
    assert kf == [14, T - 1]


def test_a_stop_that_lasts_until_the_end_is_the_last_frame():
    speeds = [MOVE] * 10 + [0.09, 0.05, 0.02, 0.01, 0.0, 0.0, 0.0]
    T = len(speeds)
    assert discover_keyframes(opened(T), velocities(speeds)) == [T - 1]


def test_gripper_action_then_rest_until_the_end_is_the_last_frame():
    # place: arrive (stop at 10-), open at 13, nothing moves any more
    speeds = [MOVE] * 10 + [0.05, 0.01] + [0.0] * 8
    T = len(speeds)
    closed = opened(T, [(0, 13)])
    assert discover_keyframes(closed, velocities(speeds)) == [T - 1]
    # but a gripper change followed by motion keeps its own keyframe
    speeds2 = [MOVE] * 10 + [0.05, 0.01] + [0.0] * 3 + [MOVE] * 5
    assert discover_keyframes(closed, velocities(speeds2)) == [13, T - 1]


def test_pick_shaped_trajectory():
    """approach (stop), down (stop) + close, lift (stop at the end): 3 keyframes."""
    decel = [0.3, 0.16, 0.09, 0.05, 0.03, 0.02, 0.012]
    accel = decel[::-1]
    speeds = (decel[::-1] + [MOVE] * 10 + decel + accel  # approach, then straight on
              + [MOVE] * 8 + decel + [0.005] * 4 + accel  # down, settle, close, go
              + [MOVE] * 8 + decel)  # lift and stay
    T = len(speeds)
    arrive_1 = 7 + 10 + 6  # the slowest frame of the first stop
    close = 7 + 10 + 14 + 8 + 7 + 1
    g = opened(T, [(close, T)])
    assert discover_keyframes(g, velocities(speeds)) == [arrive_1, close, T - 1]


# --------------------------------------------------------------------------- properties and checks


@pytest.mark.parametrize("seed", range(20))
def test_keyframes_sorted_unique_never_zero_and_end_at_the_last_frame(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 120))
    speeds = rng.choice([0.0, 0.05, 0.12, MOVE], size=T, p=[0.3, 0.2, 0.1, 0.4])
    g = np.cumsum(rng.random(T) < 0.05) % 2 == 0
    kf = discover_keyframes(g, velocities(speeds), stop_buffer=int(rng.integers(0, 6)))
    assert kf == sorted(set(kf)) and kf[0] > 0 and kf[-1] == T - 1
    stopped = stopped_frames(velocities(speeds))
    for t in np.flatnonzero(g[1:] != g[:-1]) + 1:  # every gripper change is a keyframe ...
        assert t in kf or stopped[t + 1:].all()  # ... or the arm rests after it until the end


def test_short_trajectories():
    assert discover_keyframes(np.ones(1, bool), np.zeros((1, 7))) == []
    assert discover_keyframes(np.ones(2, bool), np.zeros((2, 7))) == [1]
    assert discover_keyframes([1, 0], np.zeros((2, 7))) == [1]


def test_bad_inputs():
    with pytest.raises(ValueError, match="joint_velocities"):
        discover_keyframes(np.ones(5, bool), np.zeros((4, 7)))
    with pytest.raises(ValueError):
        discover_keyframes(np.ones(5, bool), np.zeros((5, 7)), stopped_velocity=0.0)
    with pytest.raises(ValueError):
        discover_keyframes(np.ones(5, bool), np.zeros((5, 7)), stop_buffer=-1)


def test_nan_velocity_counts_as_moving():
    v = np.zeros((10, 7))
    v[2:5] = np.nan
    assert stopped_frames(v).tolist() == [True, True, False, False, False] + [True] * 5
    v[8:] = MOVE
    assert discover_keyframes(np.ones(10, bool), v) == [5, 9]


def test_next_keyframe_indices():
    assert next_keyframe_indices([3, 7, 9], 10).tolist() == [3, 3, 3, 7, 7, 7, 7, 9, 9, 9]
    with pytest.raises(ValueError):
        next_keyframe_indices([3, 7], 10)
