"""Joint-space motion planning for the Panda with OMPL (no ROS).

``plan_joint_path(start, goal, is_state_valid)`` returns a collision-free joint path as a few
waypoints. The caller supplies collision checking as a plain Python predicate on a (7,) joint
vector (the control node wraps MuJoCo); this module knows nothing about geometry.

How a query runs:

1. Inputs are checked (shape, NaN/inf, joint limits, planner name, timeout, resolution); any
   problem gives outcome ``"invalid"`` with a message naming it. Values that lie outside a
   joint limit by at most ``LIMIT_TOLERANCE`` (a simulated or real joint sitting on its soft
   limit) are clamped onto the limit; the returned path starts/ends at the clamped values. The
   start is the arm's measured state, so it gets the wider ``START_LIMIT_TOLERANCE``: an arm
   pushed a little past a limit must still be able to plan its way back.
2. Start, then goal, are checked with ``is_state_valid`` -> ``"invalid_start"`` /
   ``"invalid_goal"`` (callers report an invalid goal as a collision).
3. The straight joint-space line start -> goal is checked at the planning resolution (OMPL's
   own discrete motion validator, so exactly the same checks a planner edge gets). If it is
   free, ``[start, goal]`` comes back at once: most short moves cost ~1 ms.
4. Otherwise the named OMPL geometric planner runs for at most ``timeout`` seconds, and the
   path is shortcut (rope shortcutting + vertex reduction, no B-spline smoothing, so the
   result stays a handful of waypoints; every new edge is checked at the same resolution).
5. The path that would come back is checked once more, densely: every state at most
   ``VERIFY_STEP`` rad apart in every joint. A check step of OMPL's (~1.5 cm of TCP motion) can
   step over a graze: CI once got a path whose finger went 0.2 mm deeper into a wall than the
   collision tolerance between two checked states. A straight line that fails goes to the
   planner; a planned path that fails is planned again at a fifth of the resolution, and if
   that one fails too the outcome is ``"no_path"``.

Every edge of a returned path has been validated at ``VERIFY_STEP``; callers that want to
check it themselves can use ``interpolate_path``.

Validity checking resolution
----------------------------
OMPL checks an edge at states at most ``resolution * extent`` apart (Euclidean norm in joint
space), where ``extent`` is the diagonal of the joint-limit box: 13.04 rad for the Panda. The
largest spectral norm of the Panda's position Jacobian at the TCP (flange + 0.1034 m) over the
whole joint range is ~1.15 m/rad (sampled), so a joint step of norm d moves the TCP (and every
point of the arm closer to the base) by at most ~1.15 * d. ``DEFAULT_RESOLUTION = 0.001`` gives
d = 0.013 rad between checks, i.e. at most ~1.5 cm of TCP motion (typically ~1 cm) between two
collision checks: thin obstacles such as a 2 cm shelf edge cannot be tunnelled through.
OMPL's own default (0.01) would allow ~15 cm; 0.005 would allow ~7.5 cm.

OMPL 2.0.1 Python API notes (nanobind bindings, no ``ScopedState``):

- ``SpaceInformation.setStateValidityChecker`` takes a plain callable ``f(state) -> bool``;
  the state passed in is an ``ompl.base.RealVectorStateType`` read with ``state[i]``. It is
  only valid during the call, so it is copied into a fresh numpy array.
- States are allocated with ``SpaceInformation.allocState()`` (Python owns and frees them;
  ``StateSpace.allocState()`` leaks, and ``SpaceInformation.freeState`` on a Python-owned
  state double-frees and segfaults). ``copyFromReals`` segfaults on a space built with
  ``addDimension``, and ``copyToReals`` does not write back into a Python list; so values are
  set/read element-wise.
- Per-joint bounds: ``RealVectorStateSpace(0)`` + ``addDimension(low, high)``.
- The default OMPL log level is DEBUG; this module sets it to WARN on import.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from ompl import base as ob
from ompl import geometric as og
from ompl import util as ou

from . import panda

ou.setLogLevel(ou.LogLevel.LOG_WARN)

OK = "ok"
INVALID_START = "invalid_start"
INVALID_GOAL = "invalid_goal"
NO_PATH = "no_path"
INVALID = "invalid"
OUTCOMES = (OK, INVALID_START, INVALID_GOAL, NO_PATH, INVALID)

DEFAULT_RESOLUTION = 0.001
"""Validity checking resolution, fraction of the joint-box diagonal (see module docstring)."""

VERIFY_STEP = 0.002
"""rad per joint between the states of a returned path's final check (step 5 of the module
docstring): ~2 mm of TCP motion, finer than the 5 mm the scene tests re-check at; ~6.5 us per
MuJoCo check, so ~3 ms for a 1-rad move."""

REPLAN_REFINEMENT = 5
"""A planned path that fails the final check is planned again at resolution / this."""

LIMIT_TOLERANCE = 1e-3
"""rad; goal values this close outside a joint limit are clamped onto it."""

START_LIMIT_TOLERANCE = 0.05
"""rad; start values this close outside a joint limit are clamped onto it, as MoveIt's
FixStartStateBounds adapter does (the Panda and FR3 MoveIt configs allow 0.1). An arm pressed
against the scene, as the authors' action mode allows, was measured 0.0105 rad past joint 6's
upper limit; refusing to plan from there strands it."""

PLANNER_RANGE = 1.0
"""rad; longest tree extension for planners that have one (RRTConnect, RRT, RRTstar, KPIECE1,
...). OMPL's default, 0.2 x the joint-box diagonal = 2.6 rad, wastes many validity checks on
long extensions that end in an obstacle: 1.0 rad needed ~30% fewer checks and gave ~15%
shorter paths on the synthetic Panda benchmark."""

ROPE_DELTA = 1.0
"""rad; anchor spacing for rope shortcutting (finer = shorter paths, quadratically more checks)."""

# Every OMPL geometric planner that these bindings expose, by class name.
PLANNERS = {
    name: getattr(og, name)
    for name in sorted(dir(og))
    if isinstance(getattr(og, name), type) and issubclass(getattr(og, name), ob.Planner)
}


@dataclass(frozen=True)
class PlanResult:
    """Outcome of one planning query.

    outcome: one of ``OUTCOMES``: "ok", "invalid_start", "invalid_goal" (goal in collision),
        "no_path" (nothing found within the timeout) or "invalid" (bad input).
    path: (N, 7) waypoints, first = start and last = goal, N >= 2; None unless outcome is "ok".
    message: human-readable detail (names the problem when not ok).
    seconds: wall time spent in ``plan_joint_path``.
    checks: number of calls made to ``is_state_valid`` (benchmarking aid).
    """

    outcome: str
    path: Optional[np.ndarray]
    message: str = ""
    seconds: float = 0.0
    checks: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == OK


class _ValidityChecker:
    """Adapts a numpy predicate to OMPL's callback; counts calls and captures exceptions.

    An exception must not propagate through OMPL's C++ stack, so it is stored, every later
    state is reported invalid (which ends the search quickly) and the caller re-raises.
    """

    def __init__(self, fn: Callable[[np.ndarray], bool], dim: int):
        self.fn = fn
        self.dim = dim
        self.count = 0
        self.error: Optional[BaseException] = None

    def check(self, q: np.ndarray) -> bool:
        if self.error is not None:
            return False
        self.count += 1
        try:
            return bool(self.fn(q))
        except BaseException as exc:  # noqa: BLE001 - re-raised by plan_joint_path
            self.error = exc
            return False

    def __call__(self, state) -> bool:
        return self.check(np.array([state[i] for i in range(self.dim)], dtype=float))


def _result(outcome, t0, checker=None, path=None, message=""):
    return PlanResult(outcome, path, message, time.perf_counter() - t0,
                      checker.count if checker is not None else 0)


def _as_vector(name, value, dim):
    """(dim,) finite float array, or an error message."""
    try:
        q = np.array(value, dtype=float)
    except (TypeError, ValueError):
        return None, f"{name} is not a numeric array"
    if q.shape != (dim,):
        return None, f"{name} has shape {q.shape}, expected ({dim},)"
    if not np.all(np.isfinite(q)):
        bad = np.flatnonzero(~np.isfinite(q)).tolist()
        return None, f"{name} has NaN/inf in joint(s) {bad}"
    return q, None


def _within_limits(name, q, lower, upper, tolerance):
    """Clamp q into [lower, upper] if it is within ``tolerance`` of it, else an error message."""
    below = q < lower - tolerance
    above = q > upper + tolerance
    if below.any() or above.any():
        parts = [f"joint {i} = {q[i]:.4f} < {lower[i]:.4f}" for i in np.flatnonzero(below)]
        parts += [f"joint {i} = {q[i]:.4f} > {upper[i]:.4f}" for i in np.flatnonzero(above)]
        return None, f"{name} outside joint limits: " + ", ".join(parts)
    return np.clip(q, lower, upper), None


def _path_to_array(path: og.PathGeometric, dim: int) -> np.ndarray:
    states = path.getStates()
    return np.array([[s[i] for i in range(dim)] for s in states], dtype=float)


def _shortcut(si, path: og.PathGeometric) -> None:
    """Shorten ``path`` in place: rope shortcutting, then drop every vertex that can go.

    ``ropeShortcutPath`` (new in OMPL 2.0) densifies the path to anchors ROPE_DELTA apart and
    connects each anchor to the farthest one it can reach in a straight line. On a synthetic
    Panda benchmark it gave paths ~45% shorter (joint-space length) than the raw RRTConnect
    path and ~35% shorter than a reduceVertices/shortcut loop, for ~800 validity checks.
    ``reduceVertices`` with range ratio 1 then removes the anchors that are not corners.
    Deliberately no ``smoothBSpline`` (which ``PathSimplifier.simplify`` runs, at ~5x the
    checks): it subdivides the path into many close waypoints; the trajectory generator does
    the smoothing in time instead.
    """
    ps = og.PathSimplifier(si)
    ps.ropeShortcutPath(path, ROPE_DELTA)
    ps.reduceVertices(path, 0, 0, 1.0)


def plan_joint_path(
    start,
    goal,
    is_state_valid: Callable[[np.ndarray], bool],
    lower=panda.LOWER,
    upper=panda.UPPER,
    planner: str = "RRTConnect",
    timeout: float = 1.0,
    resolution: float = DEFAULT_RESOLUTION,
    simplify: bool = True,
) -> PlanResult:
    """Plan a collision-free joint-space path from ``start`` to ``goal``.

    Args:
        start, goal: (D,) joint positions (rad), D = 7 for the Panda.
        is_state_valid: predicate on a fresh (D,) float array; True = collision-free. Every
            planner here calls it on the calling thread (checked). If it raises, planning
            stops and the exception propagates.
        lower, upper: (D,) joint limits; the planner samples inside this box.
        planner: OMPL geometric planner class name, one of ``PLANNERS`` (e.g. "RRTConnect",
            "RRT", "PRM", "KPIECE1", "BKPIECE1", "LBKPIECE1", "RRTstar", "BITstar").
            Asymptotically optimal planners (RRTstar, PRMstar, BITstar, AORRTC, ...) use the
            whole timeout to improve the path. FMT/BFMT are bounded by a sample count (1000),
            not by time, and often end in "no_path" on narrow passages.
        timeout: seconds the planner may search (shortcutting comes on top; it is bounded by
            the path length, typically a few hundred validity checks).
        resolution: validity checking resolution as a fraction of the joint-box diagonal;
            see the module docstring for why the default is 0.001 (~1.5 cm of TCP motion).
        simplify: shortcut the planner's path (recommended; a raw RRT path zig-zags).

    Returns:
        PlanResult; ``path`` is an (N, D) array with path[0] == start, path[-1] == goal.
    """
    t0 = time.perf_counter()

    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    if lower.ndim != 1 or lower.shape != upper.shape or lower.size == 0:
        return _result(INVALID, t0, message=f"lower/upper limits have shapes {lower.shape} and "
                       f"{upper.shape}, expected two equal (D,) vectors")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower < upper)):
        return _result(INVALID, t0, message="joint limits must be finite with lower < upper")
    dim = lower.size

    q_start, err = _as_vector("start", start, dim)
    if err is None:
        q_start, err = _within_limits("start", q_start, lower, upper, START_LIMIT_TOLERANCE)
    if err is None:
        q_goal, err = _as_vector("goal", goal, dim)
    if err is None:
        q_goal, err = _within_limits("goal", q_goal, lower, upper, LIMIT_TOLERANCE)
    if err is None and planner not in PLANNERS:
        err = f"unknown planner {planner!r}; valid planners: {', '.join(PLANNERS)}"
    if err is None and not (isinstance(timeout, numbers.Real) and math.isfinite(timeout)
                            and timeout > 0):
        err = f"timeout must be a finite number > 0 s, got {timeout!r}"
    if err is None and not (isinstance(resolution, numbers.Real) and 0 < resolution <= 1):
        err = f"resolution must be in (0, 1], got {resolution!r}"
    if err is None and not callable(is_state_valid):
        err = "is_state_valid is not callable"
    if err is not None:
        return _result(INVALID, t0, message=err)

    checker = _ValidityChecker(is_state_valid, dim)
    if not checker.check(q_start.copy()):
        if checker.error is not None:
            raise checker.error
        return _result(INVALID_START, t0, checker, message="start state is in collision / invalid")
    if not checker.check(q_goal.copy()):
        if checker.error is not None:
            raise checker.error
        return _result(INVALID_GOAL, t0, checker, message="goal state is in collision / invalid")

    si = _space_information(lower, upper, checker, resolution)
    direct = np.stack([q_start, q_goal])
    if _free(si, direct, checker) and _verified(direct, checker):
        return _result(OK, t0, checker, direct, "direct joint-space motion")
    for attempt, res in enumerate((resolution, resolution / REPLAN_REFINEMENT)):
        if attempt:
            si = _space_information(lower, upper, checker, res)
        remaining = max(timeout - (time.perf_counter() - t0), 1e-3)
        path, msg = _solve(si, q_start, q_goal, planner, remaining, simplify, checker)
        if path is None:
            return _result(NO_PATH, t0, checker, message=msg)
        if _verified(path, checker):
            if attempt:
                msg += f"; planned again at resolution {res:g}: the first path grazed an obstacle between checks"
            return _result(OK, t0, checker, path, msg)
    return _result(NO_PATH, t0, checker, message=f"{planner}: every path found grazed an obstacle between "
                   f"its checked states, also at resolution {res:g}")


def _space_information(lower, upper, checker: _ValidityChecker, resolution: float) -> ob.SpaceInformation:
    """OMPL's space information: the joint box, the validity checker, the checking resolution."""
    space = ob.RealVectorStateSpace(0)
    for lo, hi in zip(lower, upper):
        space.addDimension(float(lo), float(hi))
    si = ob.SpaceInformation(space)
    si.setStateValidityChecker(checker)
    si.setStateValidityCheckingResolution(float(resolution))
    si.setup()
    return si


def _ompl_state(si: ob.SpaceInformation, q: np.ndarray):
    s = si.allocState()  # owned by Python; never si.freeState() it
    for i, v in enumerate(q):
        s[i] = float(v)
    return s


def _free(si: ob.SpaceInformation, line: np.ndarray, checker: _ValidityChecker) -> bool:
    """The straight joint-space line line[0] -> line[1], checked exactly as a planner edge is."""
    a, b = _ompl_state(si, line[0]), _ompl_state(si, line[1])
    ok = si.checkMotion(a, b)
    if checker.error is not None:
        raise checker.error
    return bool(ok)


def _verified(path: np.ndarray, checker: _ValidityChecker) -> bool:
    """Every state of ``path`` at most VERIFY_STEP apart per joint is valid (step 5)."""
    ok = all(checker.check(q) for q in interpolate_path(path, VERIFY_STEP))
    if checker.error is not None:
        raise checker.error
    return ok


def _solve(si, q_start, q_goal, planner: str, timeout: float, simplify: bool,
           checker: _ValidityChecker) -> tuple[Optional[np.ndarray], str]:
    """The named OMPL planner's path (shortcut if ``simplify``), or None and why not."""
    ss = og.SimpleSetup(si)
    start, goal = _ompl_state(si, q_start), _ompl_state(si, q_goal)  # alive while solving
    ss.setStartAndGoalStates(start, goal)
    ompl_planner = PLANNERS[planner](si)
    if hasattr(ompl_planner, "setRange"):
        ompl_planner.setRange(PLANNER_RANGE)
    ss.setPlanner(ompl_planner)
    status = ss.solve(timeout)
    if checker.error is not None:
        raise checker.error
    if status.getStatus() != ob.PlannerStatus.EXACT_SOLUTION or not ss.haveExactSolutionPath():
        return None, f"{planner} found no path within {timeout:g} s ({status})"
    solution = ss.getSolutionPath()
    raw_count = solution.getStateCount()
    if simplify:
        _shortcut(si, solution)
        if checker.error is not None:
            raise checker.error
    path = _path_to_array(solution, q_start.size)
    # OMPL copies states bit for bit, but make the endpoint contract explicit.
    path[0], path[-1] = q_start, q_goal
    return path, (f"{planner}: {raw_count} -> {len(path)} waypoints" if simplify else
                  f"{planner}: {raw_count} waypoints")


def interpolate_path(path, max_step: float) -> np.ndarray:
    """Densify a waypoint path linearly in joint space.

    Returns (M, D) states that include every waypoint, in order, such that consecutive states
    differ by at most ``max_step`` rad in every joint. Use it to re-check a path with a
    validity function or to draw it.
    """
    p = np.asarray(path, dtype=float)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"path must be an (N, D) array with N >= 1, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("path contains NaN/inf")
    if not (math.isfinite(max_step) and max_step > 0):
        raise ValueError(f"max_step must be a finite number > 0, got {max_step!r}")
    out = [p[:1]]
    for a, b in zip(p[:-1], p[1:]):
        n = max(1, int(math.ceil(np.max(np.abs(b - a)) / max_step - 1e-12)))
        s = np.arange(1, n + 1)[:, None] / n
        seg = a + s * (b - a)
        seg[-1] = b
        out.append(seg)
    return np.concatenate(out, axis=0)
