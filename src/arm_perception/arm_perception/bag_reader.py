"""Reading episode bags: one bag into aligned numpy arrays, or every bag under a directory.

The format is :mod:`arm_perception.bag_format`; messages are decoded by
:mod:`arm_perception.bag_codec`. The helpers for finding bags (:func:`find_bags`), reading the
messages of chosen topics (:func:`read_topics`) and turning any failure into a
:class:`~arm_perception.bag_format.BagError` (:func:`bag_errors`) serve other bag readers too
(:mod:`arm_policy.episode_dataset`). No ROS import.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from arm_control.transforms import pose_to_matrix

from .bag_codec import decode_depth, decode_joints, decode_message, decode_rgb, pose7, stamp_ns
from .bag_format import (
    ALL_TOPICS,
    PARTIAL_SUFFIX,
    PER_STEP_TOPICS,
    TOPIC_CAMERA_INFO,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR,
    TOPIC_DEPTH,
    TOPIC_EE_POSE,
    TOPIC_GRIPPER_OPEN,
    TOPIC_JOINT_STATES,
    TOPIC_REWARD,
    TOPIC_SUCCESS,
    TOPIC_TYPES,
    BagError,
    BagWarning,
    Episode,
)

__all__ = [
    "bag_errors",
    "describe_bag",
    "find_bags",
    "is_bag_dir",
    "iter_episodes",
    "read_episode",
    "read_topics",
]

# --------------------------------------------------------------------------- finding bags


def is_bag_dir(path: str | os.PathLike[str]) -> bool:
    """A rosbag2 directory, or what is left of one: has metadata.yaml or a storage file."""
    path = Path(path)
    if not path.is_dir() or path.name.endswith(PARTIAL_SUFFIX):
        return False
    try:
        return any(
            p.name == "metadata.yaml" or p.suffix in (".mcap", ".db3") for p in path.iterdir()
        )
    except OSError:
        return False


def find_bags(root: str | os.PathLike[str], skip_names: Sequence[str] = ()) -> list[Path]:
    """Bag directories under ``root`` (or ``root`` itself if it is one), sorted by path.

    ``*.partial`` directories (a bag being written, or left by a crash) are never listed, nor
    anything under a directory named in ``skip_names``, nor anything inside a bag. A ``root``
    that is not a directory gives [].
    """
    root = Path(root)
    if not root.is_dir():
        return []
    if is_bag_dir(root):
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            if name.endswith(PARTIAL_SUFFIX) or name in skip_names:
                continue
            if is_bag_dir(here / name):
                found.append(here / name)  # a bag: do not descend into it
            else:
                keep.append(name)
        dirnames[:] = keep
    return sorted(found)


# --------------------------------------------------------------------------- reading messages


def describe_bag(path: Path) -> str:
    """``path (its storage files)``, for error messages."""
    try:
        names = sorted(p.name for p in path.iterdir() if p.is_file())
    except OSError:
        return str(path)
    storage = [n for n in names if n != "metadata.yaml"]
    return f"{path} ({', '.join(storage) if storage else 'no storage files'})"


@contextmanager
def bag_errors(path: Path) -> Iterator[None]:
    """Re-raise anything but a BagError from the block as a BagError naming the bag's files."""
    try:
        yield
    except BagError:
        raise
    except Exception as err:  # noqa: BLE001 - rosbags raises ReaderError, but on damaged
        # input also TypeError/struct.error/IndexError/zstd errors from deep inside: wrap all.
        raise BagError(
            f"cannot read bag {describe_bag(path)}: {type(err).__name__}: {err}", path
        ) from err


def read_topics(path: Path, topic_types: Mapping[str, str], required: Sequence[str],
                kind: str = "an episode") -> dict[str, list[tuple[int, bytes]]]:
    """Serialized messages of ``topic_types`` in one bag: topic -> [(log time ns, CDR bytes)].

    Each list is sorted by log time (stable: equal log times keep bag order). Raises BagError
    for a missing bag or metadata.yaml, a topic of another type than ``topic_types`` says, or
    a ``required`` topic the bag lacks (the message says the bag is not ``kind``).
    """
    if not path.exists():
        raise BagError(f"bag {path} does not exist", path)
    if not path.is_dir():
        raise BagError(f"bag {path} is not a rosbag2 directory", path)
    if not (path / "metadata.yaml").is_file():
        raise BagError(f"bag {describe_bag(path)} has no metadata.yaml", path)
    raw: dict[str, list[tuple[int, bytes]]] = {t: [] for t in topic_types}
    with Reader(path) as reader:
        wanted = []
        for conn in reader.connections:
            if conn.topic not in raw:
                continue
            if conn.msgtype != topic_types[conn.topic]:
                raise BagError(f"bag {path}: topic {conn.topic} has type {conn.msgtype}, "
                               f"expected {topic_types[conn.topic]}", path, conn.topic)
            wanted.append(conn)
        present = {c.topic for c in wanted}
        missing = [t for t in required if t not in present]
        if missing:
            raise BagError(f"bag {path} is not {kind}: no topic(s) {', '.join(missing)}", path,
                           missing[0])
        for conn, log_ns, data in reader.messages(connections=wanted):
            raw[conn.topic].append((log_ns, bytes(data)))
    for msgs in raw.values():
        msgs.sort(key=lambda m: m[0])
    return raw


# --------------------------------------------------------------------------- one episode


def read_episode(path: str | os.PathLike[str]) -> Episode:
    """Read one episode bag into aligned numpy arrays.

    Alignment (so bags recorded from a live graph read too, where a topic may miss a message
    in some frames): one step per message on the colour image topic; for every other per-step
    topic the step takes the latest message whose bag log time is at or before the colour
    image's log time. Leading colour frames that precede the first message of some per-step
    topic are dropped. Log time is used for alignment because every message has one (std_msgs
    Bool/Float32 have no header); in bags written by
    :class:`~arm_perception.bag_writer.EpisodeWriter` it equals every header.stamp. ``stamps``
    are the colour images' header stamps. Camera intrinsics and extrinsics come from the first
    ``camera_info`` and camera ``pose`` messages.

    Accepts colour encodings rgb8/bgr8/rgba8/bgra8 and depth 32FC1 (metres) or 16UC1 (mm).
    Raises :class:`~arm_perception.bag_format.BagError` naming the bag (and topic) for anything
    unreadable or missing.
    """
    path = Path(path)
    with bag_errors(path):
        return _read_episode(path)


def _read_episode(path: Path) -> Episode:
    raw = read_topics(path, TOPIC_TYPES, ALL_TOPICS)
    for topic, msgs in raw.items():
        if not msgs:
            raise BagError(f"bag {path} has no messages on topic {topic}", path, topic)

    def decode(topic: str, index: int):
        return decode_message(raw[topic][index][1], TOPIC_TYPES[topic], path, topic)

    color_t = np.array([m[0] for m in raw[TOPIC_COLOR]], dtype=np.int64)
    index: dict[str, np.ndarray] = {}
    for topic in PER_STEP_TOPICS:
        times = np.array([m[0] for m in raw[topic]], dtype=np.int64)
        index[topic] = np.searchsorted(times, color_t, side="right") - 1
    valid = np.ones(color_t.shape, dtype=bool)
    for idx in index.values():
        valid &= idx >= 0
    frames = np.flatnonzero(valid)
    if frames.size == 0:
        raise BagError(
            f"bag {path}: no colour frame has messages on every per-step topic at or before it",
            path,
        )

    T = frames.size
    stamps = np.empty(T, dtype=np.int64)
    rgb_list, depth_list = [], []
    q = np.empty((T, 7))
    dq = np.empty((T, 7))
    fingers = np.empty((T, 2))
    ee = np.empty((T, 7))
    gopen = np.empty(T, dtype=bool)
    reward = np.empty(T, dtype=np.float32)
    success = np.empty(T, dtype=bool)
    joint_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for row, i in enumerate(frames):
        img = decode(TOPIC_COLOR, i)
        stamps[row] = stamp_ns(img.header)
        rgb_list.append(decode_rgb(img, path))
        depth_list.append(decode_depth(decode(TOPIC_DEPTH, index[TOPIC_DEPTH][i]), path))
        j = int(index[TOPIC_JOINT_STATES][i])
        if j not in joint_cache:
            joint_cache[j] = decode_joints(decode(TOPIC_JOINT_STATES, j), path)
        q[row], dq[row], fingers[row] = joint_cache[j]
        ee[row] = pose7(decode(TOPIC_EE_POSE, index[TOPIC_EE_POSE][i]))
        gopen[row] = decode(TOPIC_GRIPPER_OPEN, index[TOPIC_GRIPPER_OPEN][i]).data
        reward[row] = decode(TOPIC_REWARD, index[TOPIC_REWARD][i]).data
        success[row] = decode(TOPIC_SUCCESS, index[TOPIC_SUCCESS][i]).data

    shapes = {a.shape for a in rgb_list} | {a.shape + (3,) for a in depth_list}
    if len(shapes) != 1:
        raise BagError(f"bag {path}: image sizes differ between frames or topics: {shapes}", path)

    info = decode(TOPIC_CAMERA_INFO, 0)
    intrinsics = np.asarray(info.k, dtype=np.float64).reshape(3, 3).copy()
    extrinsics = pose_to_matrix(pose7(decode(TOPIC_CAMERA_POSE, 0)))

    return Episode(
        path=path,
        stamps=stamps / 1e9,
        front_rgb=np.stack(rgb_list),
        front_depth=np.stack(depth_list),
        joint_positions=q,
        joint_velocities=dq,
        gripper_joint_positions=fingers,
        gripper_open=gopen,
        gripper_pose=ee,
        reward=reward,
        success=success,
        camera_intrinsics=intrinsics,
        camera_extrinsics=extrinsics,
    )


# --------------------------------------------------------------------------- many episodes


def iter_episodes(root: str | os.PathLike[str]) -> Iterator[tuple[Path, Episode]]:
    """Yield ``(path, Episode)`` for every bag directory under ``root``, sorted by path.

    Unreadable bags are skipped with a :class:`~arm_perception.bag_format.BagWarning` naming
    the bag and the problem (training must not stop on one corrupt bag). ``*.partial``
    directories (episodes being written, or left by a crash) are ignored, and so is everything
    inside a bag directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"episode root {root} is not a directory")
    for bag in find_bags(root):
        try:
            episode = read_episode(bag)
        except BagError as err:
            warnings.warn(f"skipping unreadable bag {bag}: {err}", BagWarning, stacklevel=2)
            continue
        yield bag, episode
