"""Episodes as rosbag2 (MCAP) directories: one bag per episode, standard ROS 2 messages.

Both recording paths produce the same format: demonstrations recorded by the in-process
simulator (through :class:`EpisodeWriter`) and episodes recorded from the live ROS graph
(``ros2 bag record`` or the recorder node) carry the topics below with the message types the
live system publishes, so one reader (:func:`read_episode`, :func:`iter_episodes`) serves both.

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

Conventions: depth in metres; ``camera_extrinsics`` is the 4x4 pose of the camera *optical*
frame in the world (maps optical-frame points to world points), carried as the PoseStamped on
``/camera/front/pose``; quaternions are xyzw.

Crash safety: :class:`EpisodeWriter` writes inside ``<path>.partial`` and renames the bag to
``<path>`` only on a clean close, so a bag under its final name is always a complete episode.

Reading: :func:`read_episode` returns per-step numpy arrays aligned on the colour frames and
raises :class:`BagError` (naming the bag, its storage file and the problem, or the missing
topic) for anything it cannot read; :func:`iter_episodes` walks a directory tree of bags and
skips unreadable ones with a :class:`BagWarning`. Bags in sqlite3 storage (the ``ros2 bag``
default before Iron) are read too; a storage that does not match metadata.yaml is a BagError.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore

__all__ = [
    "ALL_TOPICS",
    "ARM_JOINT_NAMES",
    "BagError",
    "BagWarning",
    "CAMERA_FRAME_ID",
    "EPISODE_FORMAT_VERSION",
    "Episode",
    "EpisodeWriter",
    "FINGER_JOINT_NAMES",
    "JOINT_NAMES",
    "LATCHED_QOS",
    "OFFERED_QOS",
    "PARTIAL_SUFFIX",
    "RawEpisodeWriter",
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
    "TYPESTORE",
    "WORLD_FRAME_ID",
    "is_bag_dir",
    "iter_episodes",
    "read_episode",
    "write_episode",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- topics (one source)

TOPIC_COLOR = "/camera/front/color/image_raw"
TOPIC_DEPTH = "/camera/front/aligned_depth_to_color/image_raw"
TOPIC_CAMERA_INFO = "/camera/front/color/camera_info"
TOPIC_CAMERA_POSE = "/camera/front/pose"
TOPIC_JOINT_STATES = "/joint_states"
TOPIC_EE_POSE = "/arm/ee_pose"
TOPIC_GRIPPER_OPEN = "/arm/gripper_open"
TOPIC_REWARD = "/arm/task/reward"
TOPIC_SUCCESS = "/arm/task/success"

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
BOOL = "std_msgs/msg/Bool"
FLOAT32 = "std_msgs/msg/Float32"

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

CAMERA_FRAME_ID = "front_camera_optical_frame"
WORLD_FRAME_ID = "world"

ARM_JOINT_NAMES: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINT_NAMES: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")
JOINT_NAMES: tuple[str, ...] = ARM_JOINT_NAMES + FINGER_JOINT_NAMES

PARTIAL_SUFFIX = ".partial"
#: Written into metadata.yaml custom_data ("arm.episode_format") by :class:`EpisodeWriter`.
EPISODE_FORMAT_VERSION = "1"

#: Type store used for (de)serialisation and for the message definitions written into bags.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
_T = TYPESTORE.types


def _qos(reliability: QosReliability, durability: QosDurability, depth: int) -> Qos:
    # Zero durations = "unspecified" (the RMW default: infinite), as rosbag2 accepts.
    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        reliability,
        durability,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


#: Offered QoS recorded in the bag (``ros2 bag play`` re-offers it). Only the camera pose has one:
#: it is published once per episode, so it is latched (transient local) for late subscribers.
#: The other topics record none, so playback uses rosbag2's default (reliable, volatile), which
#: matches both sensor-data (best effort) and reliable subscribers; a best-effort profile here
#: would leave reliable subscribers unmatched. (Each recorded profile also costs ~5 ms of pure
#: Python YAML per topic on every write and read.)
LATCHED_QOS = _qos(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)
OFFERED_QOS: dict[str, Qos] = {TOPIC_CAMERA_POSE: LATCHED_QOS}


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
    """An unreadable bag was skipped by :func:`iter_episodes`."""


# --------------------------------------------------------------------------- small conversions


def _ns(stamp_seconds: float) -> int:
    return int(round(float(stamp_seconds) * 1e9))


def _time_msg(ns: int) -> Any:
    return _T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(ns: int, frame_id: str) -> Any:
    return _T["std_msgs/msg/Header"](stamp=_time_msg(ns), frame_id=frame_id)


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion xyzw with w >= 0 (Shepperd's method)."""
    m = np.asarray(rot, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0.0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    quat = np.asarray(q, dtype=np.float64)
    quat /= np.linalg.norm(quat)
    return -quat if quat[3] < 0 else quat


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _pose_stamped(ns: int, frame_id: str, xyz: np.ndarray, quat_xyzw: np.ndarray) -> Any:
    x, y, z = (float(v) for v in xyz)
    qx, qy, qz, qw = (float(v) for v in quat_xyzw)
    return _T[POSE_STAMPED](
        header=_header(ns, frame_id),
        pose=_T["geometry_msgs/msg/Pose"](
            position=_T["geometry_msgs/msg/Point"](x=x, y=y, z=z),
            orientation=_T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
        ),
    )


def _pose7(msg: Any) -> np.ndarray:
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w], dtype=np.float64)


def _image_msg(ns: int, array: np.ndarray, encoding: str) -> Any:
    """Image message whose data is a flat uint8 *view* of ``array`` (serialisation copies once)."""
    h, w = array.shape[:2]
    flat = array.reshape(-1).view(np.uint8)  # contiguous: a view, no copy
    return _T[IMAGE](
        header=_header(ns, CAMERA_FRAME_ID),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=flat.size // h,
        data=flat,
    )


def _camera_info_msg(ns: int, intrinsics: np.ndarray, width: int, height: int) -> Any:
    k = np.asarray(intrinsics, dtype=np.float64)
    p = np.zeros((3, 4))
    p[:, :3] = k
    return _T[CAMERA_INFO](
        header=_header(ns, CAMERA_FRAME_ID),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(-1).copy(),
        r=np.eye(3).reshape(-1),
        p=p.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=_T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def _vector(obs: Any, name: str, n: int) -> np.ndarray:
    value = np.asarray(getattr(obs, name), dtype=np.float64).reshape(-1)
    if value.shape != (n,):
        raise ValueError(f"obs.{name} must have {n} elements, got shape {value.shape}")
    return value


# --------------------------------------------------------------------------- writing


class _StagedBagWriter:
    """One rosbag2 (MCAP) directory, staged in ``<path>.partial`` and renamed into place on close.

    The crash-safety machinery shared by :class:`EpisodeWriter` (typed frames from the
    in-process simulator) and :class:`RawEpisodeWriter` (serialized messages from the live
    graph, the recorder node): see :class:`EpisodeWriter` for the semantics. Subclasses add
    their connections in :meth:`_on_open` and count what they write in ``self._count``.
    """

    _EMPTY = "messages"  # what an empty bag lacks, for the close() error

    def __init__(self, path: str | os.PathLike[str], *, compress: bool = True) -> None:
        self.path = Path(path)
        if not self.path.name:
            raise ValueError(f"bad bag path {str(path)!r}")
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self._staged_path = self.partial_path / self.path.name
        self.compress = compress
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} already exists; refusing to overwrite it")
        self._writer: Writer | None = None
        self._conns: dict[str, Any] = {}
        self._count = 0
        self._custom_data: dict[str, str] = {}
        self.closed = False

    # context manager -------------------------------------------------------------------
    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def set_custom_data(self, key: str, value: str) -> None:
        """A string pair for metadata.yaml ``custom_data`` (any time before :meth:`close`)."""
        if not isinstance(value, str):
            raise TypeError(f"custom_data values must be strings, got {value!r}")
        self._custom_data[key] = value
        if self._writer is not None:
            self._writer.set_custom_data(key, value)

    def open(self) -> None:
        if self._writer is not None or self.closed:
            raise RuntimeError(f"{type(self).__name__} for {self.path} is already open or closed")
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} already exists; refusing to overwrite it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial_path.exists():  # left behind by a crashed writer of this same episode
            log.warning("removing stale partial bag %s", self.partial_path)
            shutil.rmtree(self.partial_path)
        self.partial_path.mkdir()
        writer = Writer(
            self._staged_path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP
        )
        if self.compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        writer.set_custom_data("arm.episode_format", EPISODE_FORMAT_VERSION)
        for key, value in self._custom_data.items():
            writer.set_custom_data(key, value)
        writer.open()
        self._writer = writer
        try:
            self._on_open(writer)
        except BaseException:
            self.abort()
            raise

    def _on_open(self, writer: Writer) -> None:
        """Add the connections known up front (hook)."""

    def close(self) -> Path:
        """Finish the bag and move it to its final name; returns that path."""
        writer = self._writer
        if writer is None:
            raise RuntimeError(f"{type(self).__name__} for {self.path} is not open")
        if self._count == 0:
            self.abort()
            raise ValueError(f"no {self._EMPTY} written; not creating an empty bag at {self.path}")
        try:
            writer.close()
            self._writer = None
            _fsync_tree(self._staged_path)
            if self.path.exists():
                raise FileExistsError(f"bag {self.path} appeared while writing; not overwriting it")
            os.rename(self._staged_path, self.path)
            fsync_dir(self.path.parent)
            self.partial_path.rmdir()
        except BaseException:
            self.abort()
            raise
        self.closed = True
        return self.path

    def abort(self) -> None:
        """Drop the episode: close the storage without finishing it and delete the partial bag."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - best effort, the directory is removed next
                pass
        shutil.rmtree(self.partial_path, ignore_errors=True)
        self.closed = True


class EpisodeWriter(_StagedBagWriter):
    """Write one episode as a rosbag2 directory with MCAP storage.

    Use as a context manager::

        with EpisodeWriter("bags/reach_target/ep_0000") as w:
            for t, obs, reward, success in steps:
                w.write(t, obs, reward, success)

    Messages go to the bag ``<path>.partial/<name>`` (the inner directory carries the final
    name because rosbags names the storage file after its directory: ``<name>.mcap``); a clean
    exit closes the bag, flushes it to disk, renames it to ``<path>`` in one atomic rename and
    removes the empty ``<path>.partial``. An exception inside the block (or a crash) leaves
    nothing under ``<path>``: the partial directory is removed (after a hard crash it stays
    as ``*.partial``, which :func:`iter_episodes` ignores and the next writer of the same path
    replaces). An existing ``path`` is never overwritten (:class:`FileExistsError`); closing
    an episode without frames is a ValueError (no empty bags). Stamps must increase strictly.

    ``compress=True`` (default) stores MCAP chunks zstd-compressed: standard MCAP chunk
    compression, read transparently by ``ros2 bag``, Foxglove and the ``mcap`` library; in
    metadata.yaml the bag is a plain rosbag2 (compression_mode ''). Rendered 128x128 scenes
    shrink ~2.4x for ~1000 instead of ~1450 frames/s written (~1300 vs ~2600 read) on one
    CPU core; ``compress=False`` writes raw chunks.
    """

    _EMPTY = "frames"

    def __init__(self, path: str | os.PathLike[str], *, compress: bool = True) -> None:
        super().__init__(path, compress=compress)
        self._last_ns: int | None = None
        self._shape: tuple[int, int] | None = None

    def __enter__(self) -> EpisodeWriter:
        self.open()
        return self

    @property
    def frame_count(self) -> int:
        return self._count

    def _on_open(self, writer: Writer) -> None:
        for topic, msgtype in TOPIC_TYPES.items():
            self._conns[topic] = writer.add_connection(
                topic,
                msgtype,
                typestore=TYPESTORE,
                offered_qos_profiles=[OFFERED_QOS[topic]] if topic in OFFERED_QOS else [],
            )

    def write(self, stamp_seconds: float, obs: Any, reward: float, success: bool) -> None:
        """Write one frame; every message gets header.stamp = log time = ``stamp_seconds``."""
        writer = self._writer
        if writer is None:
            raise RuntimeError("EpisodeWriter.write() outside its `with` block (not open)")
        ns = _ns(stamp_seconds)
        if ns < 0:
            raise ValueError(f"stamp must be >= 0 s, got {stamp_seconds}")
        if self._last_ns is not None and ns <= self._last_ns:
            raise ValueError(
                f"stamps must increase strictly: {stamp_seconds} s after {self._last_ns / 1e9} s"
            )

        rgb = np.ascontiguousarray(obs.front_rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"obs.front_rgb must be (H,W,3) uint8, got {rgb.shape} {rgb.dtype}")
        depth = np.ascontiguousarray(obs.front_depth, dtype="<f4")
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"obs.front_depth must be {rgb.shape[:2]}, got {depth.shape}")
        if self._shape is None:
            self._shape = depth.shape
        elif depth.shape != self._shape:
            raise ValueError(
                f"image size changed within an episode: {self._shape} -> {depth.shape}"
            )
        h, w = depth.shape
        intrinsics = np.asarray(obs.camera_intrinsics, dtype=np.float64)
        if intrinsics.shape != (3, 3):
            raise ValueError(f"obs.camera_intrinsics must be 3x3, got {intrinsics.shape}")
        q = _vector(obs, "joint_positions", 7)
        dq = _vector(obs, "joint_velocities", 7)
        fingers = _vector(obs, "gripper_joint_positions", 2)
        finger_vel = (
            _vector(obs, "gripper_joint_velocities", 2)
            if getattr(obs, "gripper_joint_velocities", None) is not None
            else np.zeros(2)
        )
        ee = _vector(obs, "gripper_pose", 7)

        msgs: list[tuple[str, Any]] = []
        if self._count == 0:
            extr = np.asarray(obs.camera_extrinsics, dtype=np.float64)
            if extr.shape != (4, 4):
                raise ValueError(f"obs.camera_extrinsics must be 4x4, got {extr.shape}")
            rot = extr[:3, :3]
            if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5) or np.linalg.det(rot) < 0:
                raise ValueError("obs.camera_extrinsics rotation is not a proper rotation")
            msgs.append(
                (TOPIC_CAMERA_POSE,
                 _pose_stamped(ns, WORLD_FRAME_ID, extr[:3, 3], _matrix_to_quat(rot)))
            )
        msgs += [
            (TOPIC_CAMERA_INFO, _camera_info_msg(ns, intrinsics, w, h)),
            (TOPIC_COLOR, _image_msg(ns, rgb, "rgb8")),
            (TOPIC_DEPTH, _image_msg(ns, depth, "32FC1")),
            (
                TOPIC_JOINT_STATES,
                _T[JOINT_STATE](
                    header=_header(ns, WORLD_FRAME_ID),
                    name=list(JOINT_NAMES),
                    position=np.concatenate([q, fingers]),
                    velocity=np.concatenate([dq, finger_vel]),
                    effort=np.zeros(0),
                ),
            ),
            (TOPIC_EE_POSE, _pose_stamped(ns, WORLD_FRAME_ID, ee[:3], ee[3:])),
            (TOPIC_GRIPPER_OPEN, _T[BOOL](data=bool(obs.gripper_open))),
            (TOPIC_REWARD, _T[FLOAT32](data=float(reward))),
            (TOPIC_SUCCESS, _T[BOOL](data=bool(success))),
        ]
        # Serialise everything first so a bad value cannot leave half a frame in the bag.
        raws = [(topic, TYPESTORE.serialize_cdr(m, TOPIC_TYPES[topic])) for topic, m in msgs]
        for topic, raw in raws:
            writer.write(self._conns[topic], ns, raw)
        self._count += 1
        self._last_ns = ns


class RawEpisodeWriter(_StagedBagWriter):
    """Write already-serialized (CDR) messages of any topics as one episode bag.

    The recorder node's writer: the bytes an rclpy ``raw=True`` subscription hands out go
    into the bag unchanged (like ``ros2 bag record``), so nothing is deserialized on the way.
    Same staging, atomic rename, no-overwrite and crash semantics as :class:`EpisodeWriter`;
    closing a bag without messages is a ValueError. Usage::

        with RawEpisodeWriter("bags/ep_0003") as w:
            w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
            w.write("/joint_states", cdr_bytes, log_time_ns)

    ``add_topic`` may be called before :meth:`open` (the connection is added on open) or any
    time while open; the message definition comes from :data:`TYPESTORE` (ROS 2 Kilted), so
    the type must be one it knows (all standard message packages are). ``qos`` is the offered
    QoS to record (None: rosbag2's default on playback; :data:`LATCHED_QOS` for latched topics).
    Log times need not be ordered.
    """

    def __init__(self, path: str | os.PathLike[str], *, compress: bool = True) -> None:
        super().__init__(path, compress=compress)
        self._topics: dict[str, tuple[str, Qos | None]] = {}
        self._per_topic: dict[str, int] = {}

    def __enter__(self) -> RawEpisodeWriter:
        self.open()
        return self

    @property
    def message_count(self) -> int:
        return self._count

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type of the topics added so far."""
        return {topic: msgtype for topic, (msgtype, _) in self._topics.items()}

    def counts(self) -> dict[str, int]:
        """topic -> messages written so far."""
        return dict(self._per_topic)

    def add_topic(self, topic: str, msgtype: str, qos: Qos | None = None) -> None:
        """Declare a topic; adding the same topic with the same type again is a no-op."""
        known = self._topics.get(topic)
        if known is not None:
            if known[0] != msgtype:
                raise ValueError(
                    f"topic {topic} already added with type {known[0]}, not {msgtype}"
                )
            return
        try:
            TYPESTORE.get_msgdef(msgtype)
        except Exception as err:  # noqa: BLE001 - rosbags raises TypesysError
            raise ValueError(f"message type {msgtype} of {topic} is unknown to the ROS 2 "
                             f"type store: {err}") from err
        self._topics[topic] = (msgtype, qos)
        self._per_topic[topic] = 0
        if self._writer is not None:
            self._add_connection(self._writer, topic)

    def _add_connection(self, writer: Writer, topic: str) -> None:
        msgtype, qos = self._topics[topic]
        self._conns[topic] = writer.add_connection(
            topic, msgtype, typestore=TYPESTORE,
            offered_qos_profiles=[qos] if qos is not None else [],
        )

    def _on_open(self, writer: Writer) -> None:
        for topic in self._topics:
            self._add_connection(writer, topic)

    def write(self, topic: str, data: bytes | memoryview, log_time_ns: int) -> None:
        """Write one serialized message (CDR with its 4-byte encapsulation header)."""
        writer = self._writer
        if writer is None:
            raise RuntimeError(f"RawEpisodeWriter for {self.path} is not open")
        conn = self._conns.get(topic)
        if conn is None:
            raise KeyError(f"topic {topic} was not added (add_topic) to {self.path}")
        if log_time_ns < 0:
            raise ValueError(f"log time must be >= 0 ns, got {log_time_ns}")
        writer.write(conn, int(log_time_ns), data)
        self._count += 1
        self._per_topic[topic] += 1


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for child in path.iterdir():
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(path)


def write_episode(
    path: str | os.PathLike[str],
    frames: Iterable[tuple[float, Any, float, bool]],
    *,
    compress: bool = True,
) -> Path:
    """Write ``(stamp_seconds, obs, reward, success)`` frames as one bag; returns its path."""
    with EpisodeWriter(path, compress=compress) as writer:
        for stamp, obs, reward, success in frames:
            writer.write(stamp, obs, reward, success)
    return writer.path


# --------------------------------------------------------------------------- reading


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


def _describe_files(path: Path) -> str:
    try:
        names = sorted(p.name for p in path.iterdir() if p.is_file())
    except OSError:
        return str(path)
    storage = [n for n in names if n != "metadata.yaml"]
    return f"{path} ({', '.join(storage) if storage else 'no storage files'})"


def read_episode(path: str | os.PathLike[str]) -> Episode:
    """Read one episode bag into aligned numpy arrays.

    Alignment (so bags recorded from a live graph read too, where a topic may miss a message
    in some frames): one step per message on the colour image topic; for every other per-step
    topic the step takes the latest message whose bag log time is at or before the colour
    image's log time. Leading colour frames that precede the first message of some per-step
    topic are dropped. Log time is used for alignment because every message has one (std_msgs
    Bool/Float32 have no header); in bags written by :class:`EpisodeWriter` it equals every
    header.stamp. ``stamps`` are the colour images' header stamps. Camera intrinsics and
    extrinsics come from the first ``camera_info`` and camera ``pose`` messages.

    Accepts colour encodings rgb8/bgr8/rgba8/bgra8 and depth 32FC1 (metres) or 16UC1 (mm).
    Raises :class:`BagError` naming the bag (and topic) for anything unreadable or missing.
    """
    path = Path(path)
    try:
        return _read_episode(path)
    except BagError:
        raise
    except Exception as err:  # noqa: BLE001 - rosbags raises ReaderError, but on damaged
        # input also TypeError/struct.error/IndexError/zstd errors from deep inside: wrap all.
        raise BagError(
            f"cannot read bag {_describe_files(path)}: {type(err).__name__}: {err}", path
        ) from err


def _read_episode(path: Path) -> Episode:
    if not path.exists():
        raise BagError(f"bag {path} does not exist", path)
    if not path.is_dir():
        raise BagError(f"bag {path} is not a rosbag2 directory", path)
    if not (path / "metadata.yaml").is_file():
        raise BagError(f"bag {_describe_files(path)} has no metadata.yaml", path)

    raw: dict[str, list[tuple[int, bytes]]] = {t: [] for t in ALL_TOPICS}
    with Reader(path) as reader:
        wanted = []
        for conn in reader.connections:
            if conn.topic not in raw:
                continue
            if conn.msgtype != TOPIC_TYPES[conn.topic]:
                raise BagError(
                    f"bag {path}: topic {conn.topic} has type {conn.msgtype}, "
                    f"expected {TOPIC_TYPES[conn.topic]}",
                    path,
                    conn.topic,
                )
            wanted.append(conn)
        present = {c.topic for c in wanted}
        for topic in ALL_TOPICS:
            if topic not in present:
                raise BagError(f"bag {path} has no topic {topic}", path, topic)
        for conn, log_ns, data in reader.messages(connections=wanted):
            raw[conn.topic].append((log_ns, data))
    for topic, msgs in raw.items():
        if not msgs:
            raise BagError(f"bag {path} has no messages on topic {topic}", path, topic)
        msgs.sort(key=lambda m: m[0])  # stable: equal log times keep bag order

    def decode(topic: str, index: int) -> Any:
        try:
            return _deserialize(raw[topic][index][1], TOPIC_TYPES[topic])
        except Exception as err:  # noqa: BLE001 - corrupt payload
            raise BagError(
                f"bag {path}: cannot decode message {index} on {topic}: {err}", path, topic
            ) from err

    color_t = np.array([m[0] for m in raw[TOPIC_COLOR]], dtype=np.int64)
    per_step = (TOPIC_DEPTH, TOPIC_JOINT_STATES, TOPIC_EE_POSE, TOPIC_GRIPPER_OPEN,
                TOPIC_REWARD, TOPIC_SUCCESS)
    index: dict[str, np.ndarray] = {}
    for topic in per_step:
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
    stamps_ns = np.empty(T, dtype=np.int64)
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
        stamps_ns[row] = _stamp_ns(img.header)
        rgb_list.append(_decode_rgb(img, path))
        depth_list.append(_decode_depth(decode(TOPIC_DEPTH, index[TOPIC_DEPTH][i]), path))
        j = int(index[TOPIC_JOINT_STATES][i])
        if j not in joint_cache:
            joint_cache[j] = _decode_joints(decode(TOPIC_JOINT_STATES, j), path)
        q[row], dq[row], fingers[row] = joint_cache[j]
        ee[row] = _pose7(decode(TOPIC_EE_POSE, index[TOPIC_EE_POSE][i]))
        gopen[row] = decode(TOPIC_GRIPPER_OPEN, index[TOPIC_GRIPPER_OPEN][i]).data
        reward[row] = decode(TOPIC_REWARD, index[TOPIC_REWARD][i]).data
        success[row] = decode(TOPIC_SUCCESS, index[TOPIC_SUCCESS][i]).data

    shapes = {a.shape for a in rgb_list} | {a.shape + (3,) for a in depth_list}
    if len(shapes) != 1:
        raise BagError(f"bag {path}: image sizes differ between frames or topics: {shapes}", path)

    info = decode(TOPIC_CAMERA_INFO, 0)
    intrinsics = np.asarray(info.k, dtype=np.float64).reshape(3, 3).copy()
    cam = _pose7(decode(TOPIC_CAMERA_POSE, 0))
    extrinsics = np.eye(4)
    extrinsics[:3, :3] = _quat_to_matrix(cam[3:])
    extrinsics[:3, 3] = cam[:3]

    return Episode(
        path=path,
        stamps=stamps_ns / 1e9,
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


def _deserialize(data: bytes, msgtype: str) -> Any:
    """CDR -> message, tolerating trailing bytes after the message.

    rmw_fastrtps (rclpy/rclcpp publishers, hence ``ros2 bag record``) can hand out buffers
    longer than the message: e.g. a JointState with an empty ``velocity`` or ``effort`` comes
    with 4-8 bytes of junk after its end (Fast-CDR reserves alignment it then does not use).
    rosbags' ``deserialize_cdr`` rejects more than 3 trailing bytes ("CDR message size
    mismatch"); the layout itself is the same, so decode with its per-type function and
    ignore the tail.
    """
    try:
        return TYPESTORE.deserialize_cdr(data, msgtype)
    except SerdeError as err:
        if "size mismatch" not in str(err):
            raise
    msgdef = TYPESTORE.get_msgdef(msgtype)
    func = msgdef.deserialize_cdr_le if data[1] else msgdef.deserialize_cdr_be
    message, _ = func(memoryview(data)[4:], 0, msgdef.cls, TYPESTORE)
    return message


def _rows(msg: Any, bytes_per_row: int, path: Path, topic: str) -> np.ndarray:
    """(H, W*bpp) uint8 view of an Image's data, honouring row padding (step)."""
    h, step = int(msg.height), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if step < bytes_per_row or data.size < h * step:
        raise BagError(
            f"bag {path}: {topic} image {msg.width}x{h} {msg.encoding} has step {step} and "
            f"{data.size} bytes",
            path,
            topic,
        )
    return data[: h * step].reshape(h, step)[:, :bytes_per_row]


_COLOR_CHANNELS = {"rgb8": (3, False), "bgr8": (3, True), "rgba8": (4, False), "bgra8": (4, True)}


def _decode_rgb(msg: Any, path: Path) -> np.ndarray:
    enc = msg.encoding.lower()
    if enc not in _COLOR_CHANNELS:
        raise BagError(
            f"bag {path}: unsupported colour encoding {msg.encoding!r}", path, TOPIC_COLOR
        )
    channels, bgr = _COLOR_CHANNELS[enc]
    w = int(msg.width)
    img = _rows(msg, w * channels, path, TOPIC_COLOR).reshape(int(msg.height), w, channels)
    img = img[..., 2::-1] if bgr else img[..., :3]
    return np.ascontiguousarray(img)


def _decode_depth(msg: Any, path: Path) -> np.ndarray:
    enc = msg.encoding.upper()
    order = ">" if msg.is_bigendian else "<"
    w, h = int(msg.width), int(msg.height)
    if enc == "32FC1":
        rows = _rows(msg, w * 4, path, TOPIC_DEPTH)
        return np.ascontiguousarray(rows).view(order + "f4").reshape(h, w).astype(np.float32)
    if enc in ("16UC1", "MONO16"):  # RealSense-style millimetres
        rows = _rows(msg, w * 2, path, TOPIC_DEPTH)
        mm = np.ascontiguousarray(rows).view(order + "u2").reshape(h, w)
        return mm.astype(np.float32) * np.float32(0.001)
    raise BagError(f"bag {path}: unsupported depth encoding {msg.encoding!r}", path, TOPIC_DEPTH)


def _decode_joints(msg: Any, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = list(msg.name)
    missing = [n for n in JOINT_NAMES if n not in names]
    if missing:
        raise BagError(
            f"bag {path}: {TOPIC_JOINT_STATES} lacks joints {missing}", path, TOPIC_JOINT_STATES
        )
    order = [names.index(n) for n in JOINT_NAMES]
    pos = np.asarray(msg.position, dtype=np.float64)
    vel = np.asarray(msg.velocity, dtype=np.float64)
    if pos.size != len(names):
        raise BagError(
            f"bag {path}: {TOPIC_JOINT_STATES} has {len(names)} names and {pos.size} positions",
            path,
            TOPIC_JOINT_STATES,
        )
    vel = vel if vel.size == len(names) else np.zeros(len(names))  # velocity is optional
    p, v = pos[order], vel[order]
    return p[:7], v[:7], p[7:]


# --------------------------------------------------------------------------- many episodes


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


def iter_episodes(root: str | os.PathLike[str]) -> Iterator[tuple[Path, Episode]]:
    """Yield ``(path, Episode)`` for every bag directory under ``root``, sorted by path.

    Unreadable bags are skipped with a :class:`BagWarning` naming the bag and the problem
    (training must not stop on one corrupt bag). ``*.partial`` directories (episodes being
    written, or left by a crash) are ignored, and so is everything inside a bag directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"episode root {root} is not a directory")
    if is_bag_dir(root):
        candidates = [root]
    else:
        candidates = []
        for dirpath, dirnames, _ in os.walk(root):
            here = Path(dirpath)
            keep = []
            for name in sorted(dirnames):
                if name.endswith(PARTIAL_SUFFIX):
                    continue
                if is_bag_dir(here / name):
                    candidates.append(here / name)  # a bag: do not descend into it
                else:
                    keep.append(name)
            dirnames[:] = keep
        candidates.sort()
    for bag in candidates:
        try:
            episode = read_episode(bag)
        except BagError as err:
            warnings.warn(f"skipping unreadable bag {bag}: {err}", BagWarning, stacklevel=2)
            continue
        yield bag, episode

