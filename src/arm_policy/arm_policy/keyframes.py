"""Keyframe discovery on demonstration trajectories (ARM, section 4.4).

A frame is a keyframe when

1. the gripper opens or closes: the frame where ``gripper_open`` differs from the frame before;
2. the arm stops: every joint velocity is below ``stopped_velocity`` (rad/s) in absolute value,
   the arm has moved since the previous stop or gripper keyframe (so a stop counts once however
   long it lasts, and the rest before the first motion is no stop), and at least
   ``stop_buffer`` frames have passed since that keyframe; motion inside those frames does not
   count as having moved (velocity noise around the threshold cannot count one stop twice);
3. it is the last frame.

Frame 0 is never a keyframe (it is the start state, not a goal). Then one keyframe per stop,
so that each expert waypoint ("move, stop, then maybe act with the gripper") gives one:

* a stop keyframe sits on the *slowest* frame of its stop (the run of stopped frames it
  starts), not on the first frame under the threshold, where the arm still creeps (2-3 mm
  from where it settles in our demos): its TCP pose becomes the next-best-pose action target;
* a stop that ends in a gripper change or in the last frame, with no motion in between, is
  represented by that later keyframe alone: same pose, and the later frame carries the
  gripper's new state, which is what the environment's action does ("move to the pose, then
  set the gripper");
* likewise a gripper change after which the arm rests until the end is represented by the
  last frame (same pose, same gripper state).

Differences from the authors' code (``_keypoint_discovery`` in stepjam/ARM: threshold 0.1 via
``np.allclose(joint_velocities, 0, atol=0.1)``, buffer 4): it has no "has moved" condition, so
a stop longer than the buffer gives a keyframe every 5 frames, the decelerating and the
accelerating end of one stop both count, and frame 1 counts when the demo starts at rest. On
our demos it finds 2-3x as many keyframes as the expert has waypoints (e.g. pick_up_cup
[2, 27, 32, 44, 48, 50, 67, 70] where this module finds [31, 48, 70]).

Thresholds, for our 20 Hz demos (ruckig rest-to-rest profiles at 0.5 of the Panda's limits; the
executor settles until every joint is under 0.02 rad/s before the gripper acts): motions peak
at 0.3-0.8 rad/s and end through ~0.16, 0.10, 0.06, 0.03, 0.02 rad/s; 0.1 rad/s (the authors'
value) finds every arrival and nothing else, and the keyframes are the same anywhere in
0.05-0.2 rad/s and with buffers 0-4 (all 8 tasks, 10 seeds each). A stop lasts
3-6 frames between two motions and 5-10 frames around a gripper action; the buffer of 4 frames
(the authors' value, 0.2 s) is for real arms, whose joint velocity noise at rest must stay
well under ``stopped_velocity``.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "STOPPED_VELOCITY",
    "STOP_BUFFER",
    "discover_keyframes",
    "next_keyframe_indices",
    "stopped_frames",
]

#: rad/s: a frame is "stopped" when every arm joint is slower than this (authors' code: 0.1).
STOPPED_VELOCITY = 0.1
#: frames after a stop or gripper keyframe during which no stop keyframe is taken (authors: 4).
STOP_BUFFER = 4


def _check(gripper_open, joint_velocities):
    gripper_open = np.asarray(gripper_open).reshape(-1).astype(bool)
    vel = np.asarray(joint_velocities, dtype=np.float64)
    if vel.ndim == 1:
        vel = vel[:, None]
    if vel.ndim != 2 or vel.shape[0] != gripper_open.shape[0]:
        raise ValueError(
            f"joint_velocities must be (T, n) with T = len(gripper_open) = "
            f"{gripper_open.shape[0]}, got shape {vel.shape}"
        )
    return gripper_open, vel


def stopped_frames(joint_velocities, stopped_velocity: float = STOPPED_VELOCITY) -> np.ndarray:
    """(T,) bool: every joint's |velocity| < ``stopped_velocity``; NaN counts as moving."""
    vel = np.asarray(joint_velocities, dtype=np.float64)
    if vel.ndim == 1:
        vel = vel[:, None]
    with np.errstate(invalid="ignore"):
        return np.all(np.abs(vel) < stopped_velocity, axis=1)


def discover_keyframes(
    gripper_open,
    joint_velocities,
    stopped_velocity: float = STOPPED_VELOCITY,
    stop_buffer: int = STOP_BUFFER,
) -> list[int]:
    """Keyframe indices of one trajectory: sorted, unique, never 0, always the last frame.

    ``gripper_open``: (T,) bool (or 0/1); ``joint_velocities``: (T, n_joints) rad/s. See the
    module docstring for the rules. A trajectory of one frame has no keyframes.
    """
    if stopped_velocity <= 0:
        raise ValueError(f"stopped_velocity must be > 0, got {stopped_velocity}")
    if stop_buffer < 0:
        raise ValueError(f"stop_buffer must be >= 0, got {stop_buffer}")
    gripper_open, vel = _check(gripper_open, joint_velocities)
    T = gripper_open.shape[0]
    if T < 2:
        return []
    stopped = stopped_frames(vel, stopped_velocity)

    # Pass 1: the conditions, frame by frame (the shape of the authors' loop).
    keys: list[tuple[int, str]] = []  # (frame, "stop" | "gripper" | "last")
    moved = not stopped[0]
    buffer = 0
    for i in range(1, T):
        if not stopped[i] and buffer <= 0:
            moved = True  # motion inside the buffer is noise around the threshold, not a move
        change = bool(gripper_open[i] != gripper_open[i - 1])
        is_stop = bool(stopped[i]) and moved and buffer <= 0
        if change:
            keys.append((i, "gripper"))
        elif i == T - 1:
            keys.append((i, "last"))
        elif is_stop:
            keys.append((i, "stop"))
        if change or is_stop:
            moved = False
            buffer = stop_buffer
        else:
            buffer -= 1

    # Pass 2: one keyframe per stop. Keyframes a < b belong to the same stop when the arm does
    # not move in (a, b].
    def same_stop(a: int, b: int) -> bool:
        return bool(np.all(stopped[a + 1:b + 1]))

    speed = np.where(np.isfinite(vel), np.abs(vel), np.inf).max(axis=1)
    out: list[int] = []
    for n, (i, kind) in enumerate(keys):
        nxt, nxt_kind = keys[n + 1] if n + 1 < len(keys) else (T, "")
        if kind == "stop":
            if nxt < T and same_stop(i, nxt):
                continue  # the gripper change (or the last frame) of this stop stands for it
            j = i
            while j + 1 < nxt and stopped[j + 1]:
                j += 1
            out.append(i + int(np.argmin(speed[i:j + 1])))  # the slowest frame of the stop
        elif kind == "gripper" and nxt_kind == "last" and same_stop(i, nxt):
            continue  # the arm rests after its last gripper action: the last frame stands for it
        else:
            out.append(i)
    return out


def next_keyframe_indices(keyframes, length: int) -> np.ndarray:
    """(T,) int: for each frame t, the first keyframe strictly after t (the last frame maps to
    itself). ``keyframes`` must be sorted and end at ``length - 1``."""
    keyframes = np.asarray(sorted(keyframes), dtype=np.int64)
    if keyframes.size == 0 or keyframes[-1] != length - 1:
        raise ValueError("keyframes must be non-empty and end at the last frame")
    t = np.arange(length)
    idx = np.searchsorted(keyframes, t, side="right")
    return keyframes[np.minimum(idx, keyframes.size - 1)]
