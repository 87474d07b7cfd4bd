"""Episodes as rosbag2 (MCAP) directories: one bag per episode, standard ROS 2 messages.

This module is the format's contract: topics, message types, frame ids, joint names, the
staging suffix, the format version, the errors and the :class:`Episode` a reader returns. It
imports neither ROS nor ``rosbags``. The rest of the format lives in
:mod:`~arm_perception.bag_codec` (messages), :mod:`~arm_perception.bag_writer` (crash-safe
writers) and :mod:`~arm_perception.bag_reader` (reading); :mod:`arm_perception.bags`
re-exports the main public names of all four.

Both recording paths produce the same format: demonstrations recorded by the in-process
simulator (through :class:`~arm_perception.bag_writer.EpisodeWriter`) and episodes recorded
from the live ROS graph (``ros2 bag record`` or the recorder node) carry the topics below with
the message types the live system publishes, so one reader
(:func:`~arm_perception.bag_reader.read_episode`, :func:`~arm_perception.bag_reader.iter_episodes`)
serves both.

No ROS import: messages are (de)serialised by ``rosbags`` with its ROS 2 Kilted type store,
whose message definitions and type hashes match the ones the live system uses, so the bags
open in ``ros2 bag`` and Foxglove.

Layout of one frame (every message of a frame carries the same time: ``header.stamp`` where
the type has a header, and the bag log time for all of them, both = the frame's simulation time):

===============================================  ============================  =================
topic                                            type                          frame_id
===============================================  ============================  =================
``/camera/front/color/image_raw``                sensor_msgs/msg/Image rgb8    camera optical
``/camera/front/aligned_depth_to_color/...``     sensor_msgs/msg/Image 32FC1   camera optical
``/camera/front/color/camera_info``              sensor_msgs/msg/CameraInfo    camera optical
``/camera/front/pose`` (first frame only,        geometry_msgs/msg/PoseStamped world
transient-local)
``/joint_states``                                sensor_msgs/msg/JointState    world
``/arm/ee_pose``                                 geometry_msgs/msg/PoseStamped world
``/arm/gripper_open``                            std_msgs/msg/Bool             -
``/arm/task/reward``                             std_msgs/msg/Float32          -
``/arm/task/success``                            std_msgs/msg/Bool             -
===============================================  ============================  =================

The topic names are the live graph's (:mod:`arm_control.topics`), the joint names the Panda's
(:mod:`arm_control.panda`).

Conventions: depth in metres; ``camera_extrinsics`` is the 4x4 pose of the camera *optical*
frame in the world (maps optical-frame points to world points), carried as the PoseStamped on
``/camera/front/pose``; quaternions are xyzw.

Crash safety: the writers write inside ``<path>.partial`` and rename the bag to ``<path>`` only
on a clean close, so a bag under its final name is always a complete episode.

Reading: :func:`~arm_perception.bag_reader.read_episode` returns per-step numpy arrays aligned
on the colour frames and raises :class:`BagError` (naming the bag, its storage file and the
problem, or the missing topic) for anything it cannot read;
:func:`~arm_perception.bag_reader.iter_episodes` walks a directory tree of bags and skips
unreadable ones with a :class:`BagWarning`. Bags in sqlite3 storage (the ``ros2 bag`` default
before Iron) are read too; a storage that does not match metadata.yaml is a BagError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arm_control import panda, topics
from arm_control.topics import (
    TOPIC_CAMERA_INFO,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR,
    TOPIC_DEPTH,
    TOPIC_EE_POSE,
    TOPIC_GRIPPER_OPEN,
    TOPIC_JOINT_STATES,
    TOPIC_REWARD,
    TOPIC_SUCCESS,
    QosSpec,
)

__all__ = [
    "ALL_TOPICS",
    "ARM_JOINT_NAMES",
    "BagError",
    "BagWarning",
    "CAMERA_FRAME_ID",
    "EPISODE_FORMAT_KEY",
    "EPISODE_FORMAT_VERSION",
    "Episode",
    "FINGER_JOINT_NAMES",
    "JOINT_NAMES",
    "OFFERED_QOS_SPECS",
    "PARTIAL_SUFFIX",
    "PER_STEP_TOPICS",
    "TOPIC_CAMERA_INFO",
    "TOPIC_CAMERA_POSE",
    "TOPIC_COLOR",
    "TOPIC_DEPTH",
    "TOPIC_EE_POSE",
    "TOPIC_GRIPPER_OPEN",
    "TOPIC_JOINT_STATES",
    "TOPIC_REWARD",
    "TOPIC_SUCCESS",
    "TOPIC_TYPES",
    "WORLD_FRAME_ID",
]

# --------------------------------------------------------------------------- message types

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
JOINT_STATE = "sensor_msgs/msg/JointState"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
BOOL = "std_msgs/msg/Bool"
FLOAT32 = "std_msgs/msg/Float32"
STRING = "std_msgs/msg/String"
FLOAT32_MULTI_ARRAY = "std_msgs/msg/Float32MultiArray"

# --------------------------------------------------------------------------- topics

#: topic -> ROS 2 message type, in the order connections are added to a bag.
TOPIC_TYPES: dict[str, str] = {
    TOPIC_COLOR: IMAGE,
    TOPIC_DEPTH: IMAGE,
    TOPIC_CAMERA_INFO: CAMERA_INFO,
    TOPIC_CAMERA_POSE: POSE_STAMPED,
    TOPIC_JOINT_STATES: JOINT_STATE,
    TOPIC_EE_POSE: POSE_STAMPED,
    TOPIC_GRIPPER_OPEN: BOOL,
    TOPIC_REWARD: FLOAT32,
    TOPIC_SUCCESS: BOOL,
}
ALL_TOPICS: tuple[str, ...] = tuple(TOPIC_TYPES)
#: Topics with a value per step, aligned on the colour frames by the reader (the camera info
#: and pose are read once).
PER_STEP_TOPICS: tuple[str, ...] = (TOPIC_DEPTH, TOPIC_JOINT_STATES, TOPIC_EE_POSE,
                                    TOPIC_GRIPPER_OPEN, TOPIC_REWARD, TOPIC_SUCCESS)

#: Offered QoS recorded in the bag (``ros2 bag play`` re-offers it). Only the camera pose has one:
#: it is published once per episode, so it is latched (transient local) for late subscribers.
#: The other topics record none, so playback uses rosbag2's default (reliable, volatile), which
#: matches both sensor-data (best effort) and reliable subscribers; a best-effort profile here
#: would leave reliable subscribers unmatched. (Each recorded profile also costs ~5 ms of pure
#: Python YAML per topic on every write and read.)
OFFERED_QOS_SPECS: dict[str, QosSpec] = {TOPIC_CAMERA_POSE: topics.QOS_LATCHED}

CAMERA_FRAME_ID = "front_camera_optical_frame"
WORLD_FRAME_ID = "world"

ARM_JOINT_NAMES: tuple[str, ...] = tuple(panda.ARM_JOINTS)
FINGER_JOINT_NAMES: tuple[str, ...] = tuple(panda.FINGER_JOINTS)
JOINT_NAMES: tuple[str, ...] = ARM_JOINT_NAMES + FINGER_JOINT_NAMES

#: A bag being written lives in ``<path>.partial``; readers never list such directories.
PARTIAL_SUFFIX = ".partial"
#: metadata.yaml custom_data key and value written by the episode writers.
EPISODE_FORMAT_KEY = "arm.episode_format"
EPISODE_FORMAT_VERSION = "1"


# --------------------------------------------------------------------------- errors


class BagError(Exception):
    """A bag is missing, corrupt, truncated, of an unsupported storage, or lacks a topic.

    ``path`` is the bag directory (or file) concerned; ``topic`` the topic, where one is at fault.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None,
                 topic: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.topic = topic


class BagWarning(UserWarning):
    """An unreadable bag was skipped by :func:`~arm_perception.bag_reader.iter_episodes`."""


# --------------------------------------------------------------------------- what a reader returns


@dataclass
class Episode:
    """One episode as per-step arrays, all aligned to the colour image frames (length T)."""

    path: Path
    stamps: np.ndarray  # (T,) float64 seconds: header.stamp of the colour images
    front_rgb: np.ndarray  # (T,H,W,3) uint8
    front_depth: np.ndarray  # (T,H,W) float32, metres
    joint_positions: np.ndarray  # (T,7) float64
    joint_velocities: np.ndarray  # (T,7) float64
    gripper_joint_positions: np.ndarray  # (T,2) float64
    gripper_open: np.ndarray  # (T,) bool
    gripper_pose: np.ndarray  # (T,7) float64, xyz + quaternion xyzw
    reward: np.ndarray  # (T,) float32
    success: np.ndarray  # (T,) bool
    camera_intrinsics: np.ndarray  # (3,3) float64
    camera_extrinsics: np.ndarray  # (4,4) float64, camera optical frame -> world

    def __len__(self) -> int:
        return int(self.stamps.shape[0])
