"""Jerk-limited time parameterisation of a joint-space waypoint path with ruckig (no ROS).

``time_parameterise(waypoints)`` turns the (N, 7) waypoints of ``planner.plan_joint_path``
into a trajectory sampled every ``dt`` seconds that the driver can execute.

Design choices:

- **Segment by segment, rest to rest.** The community edition of ruckig has no intermediate
  waypoints (that is a Ruckig Pro feature), so each straight segment is its own rest-to-rest
  motion and the arm stops at every waypoint. The planner's shortcutting leaves only a few
  corners (typically 1-3), and stopping at them is also the only way to follow a polyline with
  corners exactly; blending past corners would leave the straight segments that the planner
  collision-checked.
- **Straight lines in joint space.** Each segment is parameterised as q(t) = a + s(t) (b - a)
  with a 1-DoF ruckig profile for s in [0, 1], whose velocity/acceleration/jerk limits are the
  tightest of the per-joint limits divided by |b_i - a_i|. That is ruckig's phase
  synchronisation done exactly: every joint stays within its limits and the arm never leaves
  the checked segment. (A 7-DoF ruckig call with time synchronisation bends the segment by up
  to ~1 cm-rad; with phase synchronisation it silently falls back to time synchronisation when
  different joints limit velocity and acceleration.)
- **Durations are multiples of dt** (ruckig's discrete duration mode), so every waypoint is
  exactly a sample, reached with zero velocity and acceleration; a driver interpolating
  between samples therefore passes through every waypoint and never cuts a corner. This costs
  < dt of extra time per segment.
- ``velocity_scaling`` and ``acceleration_scaling`` scale the joint velocity and acceleration
  limits (as MoveIt's scaling factors do); jerk limits are not scaled.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional

import numpy as np
from ruckig import DurationDiscretization, InputParameter, Result, Ruckig
from ruckig import Trajectory as _RuckigTrajectory

from . import panda

MIN_SEGMENT = 1e-9
"""rad; consecutive waypoints closer than this (in every joint) are treated as one."""


@dataclass
class Trajectory:
    """A joint trajectory sampled at a fixed period.

    times: (K,) seconds from the start: 0, dt, 2 dt, ..., duration.
    positions, velocities, accelerations: (K, D).
    waypoint_indices: (N,) sample index at which each input waypoint is reached (at rest), or
        None when not built by ``time_parameterise``.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    waypoint_indices: Optional[np.ndarray] = None

    @property
    def duration(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0

    def __len__(self) -> int:
        return len(self.times)


def _limit_vector(name, value, dim):
    v = np.asarray(value, dtype=float)
    if v.shape != (dim,):
        raise ValueError(f"{name} has shape {v.shape}, expected ({dim},) to match the waypoints")
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be finite and > 0 in every joint, got {v.tolist()}")
    return v


def _scaling(name, value):
    if not isinstance(value, numbers.Real) or not (0 < value <= 1):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def _checked_inputs(waypoints, min_points, dt, velocity_scaling, acceleration_scaling,
                    max_velocity, max_acceleration, max_jerk):
    """(waypoints (N, D), dt, scaled v_max, scaled a_max, j_max), or ValueError naming the problem."""
    try:
        wp = np.array(waypoints, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"waypoints are not a numeric array: {exc}") from None
    if wp.ndim != 2 or wp.shape[0] < min_points or wp.shape[1] < 1:
        raise ValueError(f"waypoints must be an (N, D) array with N >= {min_points}, got shape {wp.shape}")
    if not np.all(np.isfinite(wp)):
        rows = sorted(set(np.argwhere(~np.isfinite(wp))[:, 0].tolist()))
        raise ValueError(f"waypoints contain NaN/inf (rows {rows})")
    if not (isinstance(dt, numbers.Real) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    dim = wp.shape[1]
    v_max = _limit_vector("max_velocity", max_velocity, dim) * _scaling("velocity_scaling", velocity_scaling)
    a_max = (_limit_vector("max_acceleration", max_acceleration, dim)
             * _scaling("acceleration_scaling", acceleration_scaling))
    j_max = _limit_vector("max_jerk", max_jerk, dim)
    return wp, float(dt), v_max, a_max, j_max


def _rest_to_rest(dt: float, target: float):
    """A 1-DoF ruckig problem from 0 to `target`, at rest at both ends, durations multiples of dt."""
    otg = Ruckig(1, dt)
    inp = InputParameter(1)
    inp.duration_discretization = DurationDiscretization.Discrete
    inp.current_position, inp.current_velocity, inp.current_acceleration = [0.0], [0.0], [0.0]
    inp.target_position, inp.target_velocity, inp.target_acceleration = [float(target)], [0.0], [0.0]
    return otg, inp, _RuckigTrajectory(1)


def time_parameterise(
    waypoints,
    dt: float = 0.05,
    velocity_scaling: float = 0.5,
    acceleration_scaling: float = 0.5,
    max_velocity=panda.MAX_VELOCITY,
    max_acceleration=panda.MAX_ACCELERATION,
    max_jerk=panda.MAX_JERK,
) -> Trajectory:
    """Time-parameterise a joint-space polyline: jerk-limited, rest to rest at every waypoint.

    Args:
        waypoints: (N, D) joint positions, N >= 1 (D = 7 for the Panda).
        dt: sample period in seconds (> 0); every segment lasts a whole number of periods.
        velocity_scaling, acceleration_scaling: fractions in (0, 1] of the velocity and
            acceleration limits to use.
        max_velocity, max_acceleration, max_jerk: (D,) positive joint limits.

    Returns:
        Trajectory sampled at 0, dt, 2 dt, ..., duration. The first and last samples are
        exactly the first and last waypoints at rest; every waypoint is a sample at rest.

    Raises:
        ValueError: NaN/inf, wrong shapes, non-positive limits, dt <= 0, or a scaling outside
            (0, 1]; the message names the problem.
    """
    wp, dt, v_max, a_max, j_max = _checked_inputs(
        waypoints, 1, dt, velocity_scaling, acceleration_scaling, max_velocity, max_acceleration, max_jerk)
    dim = wp.shape[1]
    otg, inp, profile = _rest_to_rest(dt, 1.0)

    positions = [wp[:1]]
    velocities = [np.zeros((1, dim))]
    accelerations = [np.zeros((1, dim))]
    waypoint_indices = [0]
    count = 1  # samples so far; the last one is the current waypoint, at rest
    for a, b in zip(wp[:-1], wp[1:]):
        delta = b - a
        moving = np.abs(delta) > MIN_SEGMENT
        if not moving.any():
            waypoint_indices.append(count - 1)
            continue
        span = np.abs(delta[moving])
        inp.max_velocity = [float(np.min(v_max[moving] / span))]
        inp.max_acceleration = [float(np.min(a_max[moving] / span))]
        inp.max_jerk = [float(np.min(j_max[moving] / span))]
        result = otg.calculate(inp, profile)
        if result not in (Result.Working, Result.Finished):
            raise RuntimeError(f"ruckig failed on segment {len(waypoint_indices) - 1}: {result}")
        n = max(1, int(round(profile.duration / dt)))
        s = np.empty(n + 1)
        sd = np.empty(n + 1)
        sdd = np.empty(n + 1)
        for k in range(1, n):
            (s[k],), (sd[k],), (sdd[k],) = profile.at_time(k * dt)
        s[0], sd[0], sdd[0] = 0.0, 0.0, 0.0
        s[n], sd[n], sdd[n] = 1.0, 0.0, 0.0
        seg_p = a + s[1:, None] * delta
        seg_p[-1] = b  # exactly the waypoint
        positions.append(seg_p)
        velocities.append(sd[1:, None] * delta)
        accelerations.append(sdd[1:, None] * delta)
        count += n
        waypoint_indices.append(count - 1)

    return Trajectory(
        times=np.arange(count) * dt,
        positions=np.concatenate(positions),
        velocities=np.concatenate(velocities),
        accelerations=np.concatenate(accelerations),
        waypoint_indices=np.array(waypoint_indices, dtype=int),
    )


def time_parameterise_dense(
    path,
    dt: float = 0.05,
    velocity_scaling: float = 0.5,
    acceleration_scaling: float = 0.5,
    max_velocity=panda.MAX_VELOCITY,
    max_acceleration=panda.MAX_ACCELERATION,
    max_jerk=panda.MAX_JERK,
) -> Trajectory:
    """One jerk-limited motion along a dense, smooth path (a Cartesian straight line's IK
    solutions), without stopping at its many vertices.

    The path is parameterised by u, the time it would take at full speed: each segment adds
    max_j |dq_j| / v_max_j. With |du/dt| <= 1 every joint is within its velocity limit; the
    acceleration and jerk limits on u are the tightest a_max_j / v_max_j and j_max_j / v_max_j,
    which bound the joints' too while the path's curvature is small (dense straight-line IK).
    """
    wp, dt, v_max, a_max, j_max = _checked_inputs(
        path, 2, dt, velocity_scaling, acceleration_scaling, max_velocity, max_acceleration, max_jerk)
    dim = wp.shape[1]
    u = np.concatenate([[0.0], np.cumsum(np.max(np.abs(np.diff(wp, axis=0)) / v_max, axis=1))])
    if u[-1] <= MIN_SEGMENT:
        return time_parameterise(wp[:1], dt=dt)
    otg, inp, profile = _rest_to_rest(dt, u[-1])
    inp.max_velocity = [1.0]
    inp.max_acceleration = [float(np.min(a_max / v_max))]
    inp.max_jerk = [float(np.min(j_max / v_max))]
    result = otg.calculate(inp, profile)
    if result not in (Result.Working, Result.Finished):
        raise RuntimeError(f"ruckig failed on the dense path: {result}")
    n = max(1, int(round(profile.duration / dt)))
    s = np.array([profile.at_time(k * dt)[0][0] for k in range(n + 1)])
    s[0], s[-1] = 0.0, u[-1]
    positions = np.stack([np.interp(s, u, wp[:, j]) for j in range(dim)], axis=1)
    positions[-1] = wp[-1]
    velocities = np.gradient(positions, dt, axis=0)
    velocities[0] = velocities[-1] = 0.0
    accelerations = np.gradient(velocities, dt, axis=0)
    return Trajectory(times=np.arange(n + 1) * dt, positions=positions, velocities=velocities,
                      accelerations=accelerations, waypoint_indices=np.array([0, n]))
