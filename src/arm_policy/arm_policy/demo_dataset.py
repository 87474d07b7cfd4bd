"""Demonstration episodes -> ARM transitions (keyframe discovery + demo augmentation, ARM 4.4).

For every frame t of an episode, ``next_keyframe(t)`` is the first keyframe after t
(:mod:`arm_policy.keyframes`). A transition from frame t carries

* the observation at t: ``rgb`` (H, W, 3) uint8, ``point_cloud`` (H, W, 3) float32 in the world
  frame (``depth_to_points`` of the depth image; NaN where the camera has no return) and
  ``low_dim`` (see below);
* ``pixel``: the Q-attention target, the TCP position at the next keyframe projected into frame
  t's camera (``world_to_pixel``, rounded to the nearest pixel centre, clipped into the image),
  as (row, col);
* ``action``: the next-best-pose action, the next keyframe's TCP pose, xyz + unit quaternion
  xyzw with w >= 0 (:func:`canonical_quaternion`: with a tie-break where w ~ 0, which is where
  every top-down grasp is), and its gripper open amount (1.0 open, 0.0 closed: the recorded
  command); 8 values, float32. The environment executes it as "move there, then set the gripper";
* ``reward``: the next keyframe's reward; ``terminal``: the next keyframe is the last frame;
* ``index`` (t) and ``next_index`` (the next keyframe), and the next observation
  (``next_rgb``, ``next_point_cloud``, ``next_low_dim``) for the Bellman target, with
  ``next_pixel``: the decision the demo takes there, the keyframe after the next one projected
  into the next keyframe's image (the critic's next crop is cut there, as in the authors' code;
  for a terminal transition it repeats ``pixel``, unused). Observations of one frame are shared
  (not copied) between the transitions that use them.

Which frames start a transition: frame 0 and every keyframe but the last (the keyframe chain:
0 -> k0 -> k1 -> ... -> last frame), plus demo augmentation: every ``augmentation_every``-th frame
(t % M == 0) that is not already in the chain, and from each such frame the whole remaining
chain after it (t -> k_i, then k_i -> k_i+1 -> ... -> last, as the authors' code adds it, so the
later stages of a multi-step task weigh as much as the first). The paper uses M = 5, the
authors' code 10 (our default). ``augmentation_every=0`` turns augmentation off.

Low-dim state (``LOW_DIM_SIZE`` = 11 values, float32), as RLBench/ARM:
``[gripper_open, x, y, z, qx, qy, qz, qw, finger_1, finger_2, time]`` with the quaternion made
canonical as the action's and finger joint positions in metres. ``time`` is the episode-time
feature of the authors' code, ``1 - 2 k / (episode_length - 1)`` clipped to [-1, 1], where k is
the number of agent steps (next-best-pose actions) taken so far and ``episode_length`` the
agent's episode length in steps (default 10, the authors' value): 1 at the start, -1 at the last
step. In a demo, k(t) = the number of keyframes at or before frame t: the agent's step count had
it produced the keyframes as its actions. A frame-based t/T is not used: T (frames) is unknown
while the agent acts, so the feature would differ between demos and the agent's own episodes.
The policy builds its state with :func:`low_dim_state` too.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arm_perception.bag_format import Episode
from arm_perception.camera import depth_to_points, world_to_pixel

from .keyframes import STOP_BUFFER, STOPPED_VELOCITY, discover_keyframes, next_keyframe_indices

__all__ = [
    "AUGMENTATION_EVERY",
    "DEFAULT_EPISODE_LENGTH",
    "DemoWarning",
    "LOW_DIM_SIZE",
    "QUAT_TIE_EPS",
    "STAGE_FEATURES",
    "Transition",
    "action_bounds",
    "agent_observation",
    "anchor_point",
    "canonical_quaternion",
    "episode_keyframes",
    "episode_transitions",
    "hold_out_episodes",
    "load_demos",
    "low_dim_state",
    "relative_xyz_range",
    "target_pixel",
    "time_feature",
    "transition_starts",
]

#: demo augmentation: a transition from every M-th frame (authors' code: 10; paper: 5).
AUGMENTATION_EVERY = 10
#: the agent's episode length in next-best-pose steps, for the time feature (authors: 10).
DEFAULT_EPISODE_LENGTH = 10
#: [gripper_open, pose 7, fingers 2, time]
LOW_DIM_SIZE = 11
#: the low-dim entries that say which stage of a task the agent is in without saying where the
#: hand is: gripper open, the two finger positions, time
STAGE_FEATURES = (0, 8, 9, 10)
#: |w| below which the quaternion's sign is chosen by its xyz part (see canonical_quaternion);
#: top-down poses tilt by a few degrees while moving (|w| up to 0.016 in our demos).
QUAT_TIE_EPS = 0.05


class DemoWarning(UserWarning):
    """A demonstration was skipped (unsuccessful, or unusable: a target behind the camera...)."""


@dataclass
class Transition:
    """One ARM transition from frame ``index`` to the next keyframe ``next_index``."""

    rgb: np.ndarray  # (H, W, 3) uint8, frame index
    point_cloud: np.ndarray  # (H, W, 3) float32, world frame, NaN where no depth
    low_dim: np.ndarray  # (LOW_DIM_SIZE,) float32
    pixel: np.ndarray  # (2,) int64 (row, col): the next keyframe's TCP in this image
    action: np.ndarray  # (8,) float32: xyz, quaternion xyzw (w >= 0), gripper open amount
    reward: float
    terminal: bool
    index: int  # frame t
    next_index: int  # the next keyframe (the next observation's frame)
    next_rgb: np.ndarray
    next_point_cloud: np.ndarray
    next_low_dim: np.ndarray
    next_pixel: np.ndarray  # (2,) int64: the decision at the next observation (see module doc)
    augmented: bool = False  # from demo augmentation (an augmented frame and the chain after it)
    timeout: bool = False  # the episode was cut by its step limit here: terminal but bootstrapped
    episode: str = ""  # where it came from (the bag path)


# --------------------------------------------------------------------------- small pieces


def canonical_quaternion(q, tie_eps: float = QUAT_TIE_EPS) -> np.ndarray:
    """Unit quaternion(s) xyzw, of q and -q (the same rotation) the one with w >= 0. Shape (..., 4).

    Tie-break on the w = 0 great circle: every top-down gripper orientation lies on it
    (yaw psi is (cos psi/2, sin psi/2, 0, 0)), so a bare "w >= 0" flips the sign of the whole
    quaternion on 1e-4 of noise (40% of our demos' action quaternions had x < 0 that way).
    Where |w| < ``tie_eps`` the sign makes the first of x, y, z with magnitude > ``tie_eps``
    positive (x >= 0 for every top-down grasp), so w may be in (-tie_eps, 0) there.
    ``tie_eps=0`` gives the strict w >= 0 form.
    """
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~np.isfinite(norm)) or np.any(norm < 1e-9):
        raise ValueError("quaternion is zero or not finite")
    q = q / norm
    w = q[..., 3:4]
    sign = np.where(w < 0, -1.0, 1.0)
    if tie_eps > 0:
        xyz = q[..., :3]
        big = np.abs(xyz) > tie_eps
        first = np.argmax(big, axis=-1)[..., None]  # first component clear of zero
        lead = np.take_along_axis(xyz, first, axis=-1)
        tie = (np.abs(w) < tie_eps) & np.any(big, axis=-1, keepdims=True)
        sign = np.where(tie, np.where(lead < 0, -1.0, 1.0), sign)
    return q * sign + 0.0  # (+ 0.0: no negative zeros)


def time_feature(step, episode_length: int = DEFAULT_EPISODE_LENGTH):
    """``1 - 2 step / (episode_length - 1)``, clipped to [-1, 1] (1 at step 0)."""
    if episode_length < 2:
        raise ValueError(f"episode_length must be >= 2, got {episode_length}")
    return np.clip(1.0 - 2.0 * np.asarray(step, dtype=np.float64) / (episode_length - 1), -1.0, 1.0)


def low_dim_state(gripper_open, gripper_pose, gripper_joint_positions, step,
                  episode_length: int = DEFAULT_EPISODE_LENGTH) -> np.ndarray:
    """The low-dim state vector(s), (..., LOW_DIM_SIZE) float32; one frame or stacked frames.

    The policy builds its input with this same function (``step`` = actions taken so far).
    """
    gripper_open = np.asarray(gripper_open, dtype=np.float64)
    pose = np.asarray(gripper_pose, dtype=np.float64)
    fingers = np.asarray(gripper_joint_positions, dtype=np.float64)
    t = time_feature(step, episode_length)
    return np.concatenate(
        [
            gripper_open[..., None],
            pose[..., :3],
            canonical_quaternion(pose[..., 3:7]),
            fingers,
            np.broadcast_to(t, gripper_open.shape)[..., None],
        ],
        axis=-1,
    ).astype(np.float32)


def agent_observation(rgb, point_cloud, gripper_open, gripper_pose, gripper_joint_positions, step,
                      episode_length: int = DEFAULT_EPISODE_LENGTH) -> dict:
    """What the agent sees at one decision: ``{"rgb", "point_cloud", "low_dim"}`` for ``ARMAgent.act``.

    ``point_cloud`` (H, W, 3) world frame with NaN where the camera had no depth, kept as NaN as
    in the demo transitions (the networks turn it into a validity channel). The in-process
    trainer and the policy node both build their input here, so the two paths cannot drift apart.
    """
    return {"rgb": np.asarray(rgb), "point_cloud": np.asarray(point_cloud, dtype=np.float32),
            "low_dim": low_dim_state(gripper_open, gripper_pose, gripper_joint_positions, step,
                                     episode_length)}


def target_pixel(position, intrinsics, extrinsics, image_shape) -> np.ndarray:
    """World position(s) (3,) or (N, 3) -> nearest pixel (row, col) int64, clipped into the image.

    Raises ValueError for a point behind the camera (no pixel to clip to).
    """
    pts = np.asarray(position, dtype=np.float64)
    single = pts.ndim == 1
    px = world_to_pixel(pts.reshape(-1, 3), intrinsics, extrinsics)
    if not np.all(np.isfinite(px)):
        bad = pts.reshape(-1, 3)[~np.isfinite(px).all(axis=1)][0]
        raise ValueError(f"target {bad} is behind the camera")
    h, w = int(image_shape[0]), int(image_shape[1])
    px = np.rint(px)
    px[:, 0] = np.clip(px[:, 0], 0, h - 1)
    px[:, 1] = np.clip(px[:, 1], 0, w - 1)
    px = px.astype(np.int64)
    return px[0] if single else px


# --------------------------------------------------------------------------- one episode


def episode_keyframes(episode: Episode, stopped_velocity: float = STOPPED_VELOCITY,
                      stop_buffer: int = STOP_BUFFER) -> list[int]:
    """:func:`discover_keyframes` on an episode's gripper state and joint velocities."""
    return discover_keyframes(episode.gripper_open, episode.joint_velocities,
                              stopped_velocity, stop_buffer)


def transition_starts(keyframes: Sequence[int], length: int,
                      augmentation_every: int = AUGMENTATION_EVERY) -> tuple[list[int], list[int]]:
    """(chain starts, augmented starts): frame 0 and every keyframe but the last; then the
    frames t % M == 0 (M = ``augmentation_every``, 0 = none) before the last frame, not in the
    chain."""
    if augmentation_every < 0:
        raise ValueError(f"augmentation_every must be >= 0, got {augmentation_every}")
    chain = [0] + [int(k) for k in keyframes[:-1]]
    augmented: list[int] = []
    if augmentation_every:
        taken = set(chain)
        augmented = [t for t in range(0, length - 1, augmentation_every) if t not in taken]
    return chain, augmented


def episode_transitions(
    episode: Episode,
    *,
    augmentation_every: int = AUGMENTATION_EVERY,
    episode_length: int = DEFAULT_EPISODE_LENGTH,
    keyframes: Sequence[int] | None = None,
    stopped_velocity: float = STOPPED_VELOCITY,
    stop_buffer: int = STOP_BUFFER,
) -> list[Transition]:
    """ARM transitions of one episode: the keyframe chain first, then each augmented frame's
    transition followed by (shared copies of) the chain transitions after it. ``keyframes`` overrides discovery. Raises ValueError for an unusable episode
    (fewer than 2 frames, a target behind the camera, a zero quaternion)."""
    T = len(episode)
    if T < 2:
        raise ValueError(f"episode {episode.path} has {T} frame(s); a transition needs 2")
    kfs = list(keyframes) if keyframes is not None else episode_keyframes(
        episode, stopped_velocity, stop_buffer)
    if not kfs or kfs[-1] != T - 1 or kfs[0] <= 0 or any(b <= a for a, b in zip(kfs, kfs[1:])):
        raise ValueError(
            f"keyframes {kfs} must be increasing, > 0 and end at the last frame {T - 1}")
    nxt = next_keyframe_indices(kfs, T)
    chain, augmented = transition_starts(kfs, T, augmentation_every)

    K, E = episode.camera_intrinsics, episode.camera_extrinsics
    h, w = episode.front_rgb.shape[1:3]
    steps = np.searchsorted(np.asarray(kfs), np.arange(T), side="right")  # keyframes <= t
    low_dim = low_dim_state(episode.gripper_open, episode.gripper_pose,
                            episode.gripper_joint_positions, steps, episode_length)
    quat = canonical_quaternion(episode.gripper_pose[:, 3:7])

    # Observations of the frames in use, copied out of the episode (so it can be freed) once.
    cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def obs(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if t not in cache:
            rgb = np.array(episode.front_rgb[t], dtype=np.uint8, copy=True)
            points = depth_to_points(episode.front_depth[t], K, E)
            cache[t] = (rgb, points, low_dim[t].copy())
        return cache[t]

    def transition(t: int, is_aug: bool) -> Transition:
        k = int(nxt[t])
        rgb, points, ld = obs(t)
        nrgb, npoints, nld = obs(k)
        pixel = target_pixel(episode.gripper_pose[k, :3], K, E, (h, w))
        next_pixel = pixel if k == T - 1 else target_pixel(episode.gripper_pose[nxt[k], :3], K, E, (h, w))
        action = np.concatenate(
            [episode.gripper_pose[k, :3], quat[k], [float(episode.gripper_open[k])]]
        ).astype(np.float32)
        return Transition(
            rgb=rgb, point_cloud=points, low_dim=ld, pixel=pixel, action=action,
            reward=float(episode.reward[k]), terminal=bool(k == T - 1),
            index=int(t), next_index=k,
            next_rgb=nrgb, next_point_cloud=npoints, next_low_dim=nld, next_pixel=next_pixel,
            augmented=is_aug, episode=str(episode.path),
        )

    out = [transition(t, False) for t in chain]
    for t in augmented:
        first = transition(t, True)
        out.append(first)
        out.extend(dataclasses.replace(c, augmented=True) for c in out[:len(chain)]
                   if c.index >= first.next_index)
    return out


# --------------------------------------------------------------------------- many episodes


def load_demos(
    root: str | os.PathLike[str],
    task: str,
    *,
    augmentation_every: int = AUGMENTATION_EVERY,
    episode_length: int = DEFAULT_EPISODE_LENGTH,
    require_success: bool = True,
    max_episodes: int | None = None,
    stopped_velocity: float = STOPPED_VELOCITY,
    stop_buffer: int = STOP_BUFFER,
) -> list[Transition]:
    """Transitions from every episode bag under ``root/task`` (``arm demos`` layout), in path order.

    Unreadable bags are skipped with a BagWarning naming the bag (:func:`iter_episodes`);
    episodes that did not end in success (``require_success``) or that cannot be turned into
    transitions are skipped with a :class:`DemoWarning` naming the bag. Loading never stops on
    one bad episode. Raises FileNotFoundError when ``root/task`` is not a directory.
    """
    out: list[Transition] = []
    used = 0
    # here, not at the top: the agents import this module's pure functions, and a machine that
    # only trains or benchmarks them (bench/gpu_check.sh) need not have the bag reader's rosbags
    from arm_perception.bag_reader import iter_episodes

    for path, episode in iter_episodes(Path(root) / task):
        if max_episodes is not None and used >= max_episodes:
            break
        if require_success and not (len(episode) and bool(episode.success[-1])):
            warnings.warn(f"skipping demo {path}: it does not end in success", DemoWarning,
                          stacklevel=2)
            continue
        try:
            transitions = episode_transitions(
                episode, augmentation_every=augmentation_every, episode_length=episode_length,
                stopped_velocity=stopped_velocity, stop_buffer=stop_buffer)
        except ValueError as err:
            warnings.warn(f"skipping demo {path}: {err}", DemoWarning, stacklevel=2)
            continue
        out.extend(transitions)
        used += 1
    return out


def hold_out_episodes(transitions: Sequence[Transition], held_out: int) -> tuple[list, list]:
    """The keyframe transitions (augmented copies left out) split by episode into (fit, held out):
    the last ``held_out`` episodes by name are held out. ValueError when there are not more
    episodes than that, so both parts have some."""
    keyframes = [t for t in transitions if not t.augmented]
    episodes = sorted({t.episode for t in keyframes})
    if held_out < 1 or len(episodes) <= held_out:
        raise ValueError(f"{len(episodes)} demo episodes; need more than the {held_out} held out "
                         f"(and at least 1 held out)")
    kept = set(episodes[:-held_out])
    return [t for t in keyframes if t.episode in kept], [t for t in keyframes if t.episode not in kept]


def action_bounds(transitions: Iterable[Transition], widen: float = 0.2,
                  min_margin: float = 0.01) -> np.ndarray:
    """(2, 3) [[x, y, z min], [x, y, z max]] of the demos' translation actions, each side
    widened by ``widen`` of the range on that axis (at least ``min_margin`` metres, so one
    demo or a flat axis still gives a box with volume)."""
    xyz = np.array([np.asarray(t.action[:3], dtype=np.float64) for t in transitions])
    if xyz.size == 0:
        raise ValueError("action_bounds needs at least one transition")
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    margin = np.maximum(widen * (hi - lo), min_margin)
    return np.stack([lo - margin, hi + margin])


def anchor_point(point_cloud: np.ndarray, pixel, window: int = 1, camera=None) -> np.ndarray:
    """(3,) float64: the relative actor's anchor for attention ``pixel`` (row, col) of an organised
    (H, W, 3) cloud: the pixel's point, or with ``window`` > 1 the point nearest ``camera`` (3,)
    of the ``window`` x ``window`` pixels about it (``ARMConfig.anchor_window``; the torch form is
    ``networks.Actor.anchor``). NaN where none of them has depth."""
    row, col = int(pixel[0]), int(pixel[1])
    if window == 1:
        return np.asarray(point_cloud[row, col], dtype=np.float64)
    h = window // 2
    patch = np.asarray(point_cloud[max(row - h, 0):row + h + 1, max(col - h, 0):col + h + 1],
                       dtype=np.float64).reshape(-1, 3)
    patch = patch[np.isfinite(patch).all(axis=1)]
    if not len(patch):
        return np.full(3, np.nan)
    return patch[np.argmin(np.linalg.norm(patch - np.asarray(camera, dtype=np.float64), axis=1))]


def relative_xyz_range(transitions: Iterable[Transition], minimum: float, widen: float = 0.2,
                       camera=None, lateral_minimum: float | None = None, anchor_window: int = 1,
                       anchor_camera=None) -> np.ndarray:
    """(3,) per-axis reach (metres) of the relative actor (``ARMConfig.actor_relative_xyz``): the
    largest offset on each axis of a demo action from the 3-D point at its attention pixel (the
    actor's anchor), times 1 + ``widen`` as the bounds are, and at least ``minimum``.

    Why it is measured: a keyframe in free space projects onto a pixel whose point lies on what
    is behind it. pick_up_cup's pre-grasp pose, 12 cm above the cup, lands on the table 14-15 cm
    away on x and 18 cm on z; take_lid_off_saucepan's 19-20 / 21 cm. A fixed 10 cm reach could not
    express the first keyframe of those tasks at all. Pixels without depth (the actor anchors at
    the middle of the bounds there) are left out.

    With ``camera`` (3,), the camera's centre, the axes are those of :func:`camera_ray.ray_frame`
    (across, across, along the ray through the anchor), and the two across the ray are at least
    ``lateral_minimum``. ``anchor_window`` and ``anchor_camera``: the anchor's rule
    (:func:`anchor_point`).
    """
    anchors, actions = [], []
    for t in transitions:
        point = anchor_point(t.point_cloud, t.pixel, anchor_window, anchor_camera)
        if np.all(np.isfinite(point)):
            anchors.append(point)
            actions.append(np.asarray(t.action[:3], dtype=np.float64))
    least = np.full(3, float(minimum))
    if camera is not None:
        least[:2] = float(minimum if lateral_minimum is None else lateral_minimum)
    if not anchors:
        return least
    offsets = np.asarray(actions) - np.asarray(anchors)
    if camera is not None:
        import torch

        from .camera_ray import ray_frame

        frames = ray_frame(torch.as_tensor(np.asarray(anchors)),
                           torch.as_tensor(np.asarray(camera, dtype=np.float64))).numpy()
        offsets = np.einsum("nij,nj->ni", frames, offsets)
    return np.maximum((1.0 + widen) * np.abs(offsets).max(axis=0), least)
