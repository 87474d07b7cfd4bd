"""Specification of arm_control.trajectory: jerk-limited, rest-to-rest time parameterisation."""
import numpy as np
import pytest

from arm_control import panda
from arm_control.trajectory import Trajectory, time_parameterise

WAYPOINTS = np.array([
    panda.NEUTRAL,
    panda.NEUTRAL + [1.0, 0.3, 0.0, 0.2, 0.0, 0.0, 1.5],
    panda.NEUTRAL + [1.0, 0.3, 0.0, 0.2, 0.0, 0.0, 1.5],  # duplicate: a zero-length segment
    panda.NEUTRAL + [-0.5, -0.2, 0.4, 0.0, 0.1, -0.3, 0.0],
    panda.NEUTRAL + [-0.5, -0.2, 0.4, 0.0, 0.1, -0.3, 0.001],  # a tiny final correction
])
TOL = 1e-9


def distance_to_segment(q, a, b):
    d = b - a
    s = np.clip((q - a) @ d / max(d @ d, 1e-300), 0.0, 1.0)
    return np.linalg.norm(q - (a + s * d))


@pytest.mark.parametrize("vs, acs", [(0.5, 0.5), (1.0, 1.0), (0.2, 0.7)])
def test_respects_scaled_velocity_and_acceleration_limits(vs, acs):
    tr = time_parameterise(WAYPOINTS, dt=0.004, velocity_scaling=vs, acceleration_scaling=acs)
    assert np.all(np.abs(tr.velocities) <= vs * panda.MAX_VELOCITY * (1 + 1e-6))
    assert np.all(np.abs(tr.accelerations) <= acs * panda.MAX_ACCELERATION * (1 + 1e-6))
    # and actually uses them: some joint gets close to its velocity limit
    assert np.max(np.abs(tr.velocities) / (vs * panda.MAX_VELOCITY)) > 0.9


def test_starts_and_ends_at_rest_exactly_on_the_end_waypoints():
    tr = time_parameterise(WAYPOINTS)
    assert isinstance(tr, Trajectory)
    np.testing.assert_array_equal(tr.positions[0], WAYPOINTS[0])
    np.testing.assert_array_equal(tr.positions[-1], WAYPOINTS[-1])
    for k in (0, -1):
        assert np.all(tr.velocities[k] == 0) and np.all(tr.accelerations[k] == 0)


def test_samples_every_dt_and_the_end_is_a_sample():
    dt = 0.05
    tr = time_parameterise(WAYPOINTS, dt=dt)
    K = len(tr.times)
    assert tr.positions.shape == tr.velocities.shape == tr.accelerations.shape == (K, 7)
    np.testing.assert_array_equal(tr.times, np.arange(K) * dt)
    assert tr.duration == tr.times[-1] > 0


def test_passes_through_every_waypoint_at_rest():
    tr = time_parameterise(WAYPOINTS)
    assert len(tr.waypoint_indices) == len(WAYPOINTS)
    assert np.all(np.diff(tr.waypoint_indices) >= 0)
    for w, k in zip(WAYPOINTS, tr.waypoint_indices):
        np.testing.assert_array_equal(tr.positions[k], w)
        assert np.all(tr.velocities[k] == 0)


def test_stays_on_the_straight_segments_between_waypoints():
    """The planner checked straight joint-space segments; the trajectory must not leave them."""
    tr = time_parameterise(WAYPOINTS, dt=0.01)
    idx = tr.waypoint_indices
    for i in range(len(WAYPOINTS) - 1):
        a, b = WAYPOINTS[i], WAYPOINTS[i + 1]
        for q in tr.positions[idx[i]:idx[i + 1] + 1]:
            assert distance_to_segment(q, a, b) < TOL


def test_velocities_are_consistent_with_positions():
    dt = 0.002
    tr = time_parameterise(WAYPOINTS, dt=dt)
    # trapezoidal integration of the velocity reproduces the position increments
    dq = np.diff(tr.positions, axis=0)
    integrated = 0.5 * (tr.velocities[1:] + tr.velocities[:-1]) * dt
    assert np.max(np.abs(dq - integrated)) < 1e-4


def test_duration_is_close_to_the_limits_minimum():
    """A 1 rad move of joint 0: cruise + ramps, rounded up to a whole sample period."""
    dt = 0.05
    d = 1.0
    v, a, j = 0.5 * panda.MAX_VELOCITY[0], 0.5 * panda.MAX_ACCELERATION[0], panda.MAX_JERK[0]
    q1 = panda.NEUTRAL + np.eye(7)[0] * d
    tr = time_parameterise([panda.NEUTRAL, q1], dt=dt)
    assert d / v + v / a <= tr.duration <= d / v + v / a + a / j + dt + TOL
    assert len(tr.times) == round(tr.duration / dt) + 1


def test_single_waypoint_is_a_single_sample_at_rest():
    tr = time_parameterise(WAYPOINTS[:1])
    assert tr.times.tolist() == [0.0] and tr.duration == 0.0
    np.testing.assert_array_equal(tr.positions, WAYPOINTS[:1])
    assert np.all(tr.velocities == 0)


def test_planned_path_end_to_end_avoids_the_obstacle():
    from arm_control.planner import interpolate_path, plan_joint_path

    lo = np.array([-0.3, -1.0, -0.8, -3.0, -1.0, 0.8, -0.5])
    hi = np.array([0.3, 1.8, 0.8, -1.0, 1.0, 2.5, 2.0])
    start = panda.NEUTRAL + np.eye(7)[0] * -1.2
    goal = panda.NEUTRAL + np.eye(7)[0] * 1.2
    plan = plan_joint_path(start, goal, lambda q: not (np.all(q > lo - 0.02) and np.all(q < hi + 0.02)))
    assert plan.ok, plan.message
    tr = time_parameterise(plan.path, dt=0.01)
    dense = interpolate_path(tr.positions, 0.002)
    assert not any(np.all(q > lo) and np.all(q < hi) for q in dense)
    np.testing.assert_array_equal(tr.positions[-1], goal)


@pytest.mark.parametrize("waypoints, words", [
    (np.where(np.arange(7) == 2, np.nan, WAYPOINTS), ["NaN", "rows"]),
    (np.where(np.arange(7) == 2, np.inf, WAYPOINTS), ["inf"]),
    (WAYPOINTS[:, :6], ["max_velocity", "shape"]),
    (WAYPOINTS[0], ["shape"]),
    (np.zeros((0, 7)), ["N >= 1"]),
    ([["a"] * 7], ["numeric"]),
])
def test_rejects_bad_waypoints(waypoints, words):
    with pytest.raises(ValueError) as err:
        time_parameterise(waypoints)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("kwargs, word", [
    ({"velocity_scaling": 0.0}, "velocity_scaling"),
    ({"velocity_scaling": 1.5}, "velocity_scaling"),
    ({"velocity_scaling": float("nan")}, "velocity_scaling"),
    ({"acceleration_scaling": -0.1}, "acceleration_scaling"),
    ({"dt": 0.0}, "dt"),
    ({"dt": float("inf")}, "dt"),
    ({"max_jerk": np.zeros(7)}, "max_jerk"),
    ({"max_acceleration": np.ones(6)}, "max_acceleration"),
])
def test_rejects_bad_settings(kwargs, word):
    with pytest.raises(ValueError, match=word):
        time_parameterise(WAYPOINTS, **kwargs)
