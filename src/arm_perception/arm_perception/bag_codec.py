"""Episode bag messages: the ``rosbags`` type store, building messages and decoding them.

No ROS import: messages are ``rosbags`` objects of its ROS 2 Kilted type store
(:data:`TYPESTORE`), whose definitions and type hashes match the live system's, serialised to
the same CDR bytes rclpy publishes. The format itself (topics, types, frame ids) is
:mod:`arm_perception.bag_format`; rotations come from :mod:`arm_control.transforms` and image
payloads are decoded by :mod:`arm_perception.images`, the code the live nodes use.

Decoders raise :class:`~arm_perception.bag_format.BagError` naming the bag and the topic.
"""

from __future__ import annotations

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
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore

from arm_control import topics
from arm_control.topics import QosSpec
from arm_control.transforms import mat_to_quat_xyzw

from .bag_format import (
    BOOL,
    CAMERA_FRAME_ID,
    CAMERA_INFO,
    FLOAT32,
    IMAGE,
    JOINT_NAMES,
    JOINT_STATE,
    OFFERED_QOS_SPECS,
    POSE_STAMPED,
    TOPIC_CAMERA_INFO,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR,
    TOPIC_DEPTH,
    TOPIC_EE_POSE,
    TOPIC_GRIPPER_OPEN,
    TOPIC_JOINT_STATES,
    TOPIC_REWARD,
    TOPIC_SUCCESS,
    WORLD_FRAME_ID,
    BagError,
)
from .images import image_to_numpy

__all__ = [
    "LATCHED_QOS",
    "OFFERED_QOS",
    "TYPESTORE",
    "camera_info_msg",
    "decode_depth",
    "decode_joints",
    "decode_message",
    "decode_rgb",
    "deserialize",
    "frame_messages",
    "header",
    "image_msg",
    "pose7",
    "pose_stamped",
    "rosbags_qos",
    "seconds_to_ns",
    "stamp_ns",
]

#: Type store used for (de)serialisation and for the message definitions written into bags.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
_T = TYPESTORE.types

# --------------------------------------------------------------------------- QoS

_RELIABILITY = {topics.RELIABLE: QosReliability.RELIABLE,
                topics.BEST_EFFORT: QosReliability.BEST_EFFORT}
_DURABILITY = {topics.VOLATILE: QosDurability.VOLATILE,
               topics.TRANSIENT_LOCAL: QosDurability.TRANSIENT_LOCAL}


def rosbags_qos(spec: QosSpec) -> Qos:
    """An offered QoS profile for a bag's metadata, from a :class:`~arm_control.topics.QosSpec`."""
    # Zero durations = "unspecified" (the RMW default: infinite), as rosbag2 accepts.
    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        int(spec.depth),
        _RELIABILITY[spec.reliability],
        _DURABILITY[spec.durability],
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


#: Latched (reliable, transient local, depth 1): the offered QoS of topics published once.
LATCHED_QOS = rosbags_qos(topics.QOS_LATCHED)
#: topic -> offered QoS recorded in an episode bag (see bag_format.OFFERED_QOS_SPECS).
OFFERED_QOS: dict[str, Qos] = {t: rosbags_qos(s) for t, s in OFFERED_QOS_SPECS.items()}

# --------------------------------------------------------------------------- stamps


def seconds_to_ns(stamp_seconds: float) -> int:
    return int(round(float(stamp_seconds) * 1e9))


def time_msg(ns: int) -> Any:
    return _T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def header(ns: int, frame_id: str) -> Any:
    return _T["std_msgs/msg/Header"](stamp=time_msg(ns), frame_id=frame_id)


def stamp_ns(msg_header: Any) -> int:
    return int(msg_header.stamp.sec) * 1_000_000_000 + int(msg_header.stamp.nanosec)


# --------------------------------------------------------------------------- building messages


def pose_stamped(ns: int, frame_id: str, xyz: np.ndarray, quat_xyzw: np.ndarray) -> Any:
    x, y, z = (float(v) for v in xyz)
    qx, qy, qz, qw = (float(v) for v in quat_xyzw)
    return _T[POSE_STAMPED](
        header=header(ns, frame_id),
        pose=_T["geometry_msgs/msg/Pose"](
            position=_T["geometry_msgs/msg/Point"](x=x, y=y, z=z),
            orientation=_T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
        ),
    )


def image_msg(ns: int, array: np.ndarray, encoding: str, frame_id: str = CAMERA_FRAME_ID) -> Any:
    """Image message whose data is a flat uint8 *view* of ``array`` (serialisation copies once).

    ``array`` must be C-contiguous, in the layout of ``encoding``.
    """
    h = array.shape[0]
    flat = array.reshape(-1).view(np.uint8)  # contiguous: a view, no copy
    return _T[IMAGE](
        header=header(ns, frame_id),
        height=h,
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=flat.size // h,
        data=flat,
    )


def camera_info_msg(ns: int, intrinsics: np.ndarray, width: int, height: int) -> Any:
    k = np.asarray(intrinsics, dtype=np.float64)
    p = np.zeros((3, 4))
    p[:, :3] = k
    return _T[CAMERA_INFO](
        header=header(ns, CAMERA_FRAME_ID),
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


def frame_messages(ns: int, obs: Any, reward: float, success: bool, *, camera_pose: bool
                   ) -> list[tuple[str, Any]]:
    """The ``(topic, message)`` pairs of one episode frame, all stamped ``ns``.

    ``obs`` is an RLBench-style observation (``front_rgb``, ``front_depth``, ``camera_intrinsics``,
    ``camera_extrinsics``, joint and gripper fields); ``camera_pose`` adds the camera pose
    message (the first frame of an episode). Raises ValueError naming a malformed field.
    """
    rgb = np.ascontiguousarray(obs.front_rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"obs.front_rgb must be (H,W,3) uint8, got {rgb.shape} {rgb.dtype}")
    depth = np.ascontiguousarray(obs.front_depth, dtype="<f4")
    if depth.shape != rgb.shape[:2]:
        raise ValueError(f"obs.front_depth must be {rgb.shape[:2]}, got {depth.shape}")
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
    if camera_pose:
        extr = np.asarray(obs.camera_extrinsics, dtype=np.float64)
        if extr.shape != (4, 4):
            raise ValueError(f"obs.camera_extrinsics must be 4x4, got {extr.shape}")
        rot = extr[:3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5) or np.linalg.det(rot) < 0:
            raise ValueError("obs.camera_extrinsics rotation is not a proper rotation")
        pose = pose_stamped(ns, WORLD_FRAME_ID, extr[:3, 3], mat_to_quat_xyzw(rot))
        msgs.append((TOPIC_CAMERA_POSE, pose))
    msgs += [
        (TOPIC_CAMERA_INFO, camera_info_msg(ns, intrinsics, w, h)),
        (TOPIC_COLOR, image_msg(ns, rgb, "rgb8")),
        (TOPIC_DEPTH, image_msg(ns, depth, "32FC1")),
        (
            TOPIC_JOINT_STATES,
            _T[JOINT_STATE](
                header=header(ns, WORLD_FRAME_ID),
                name=list(JOINT_NAMES),
                position=np.concatenate([q, fingers]),
                velocity=np.concatenate([dq, finger_vel]),
                effort=np.zeros(0),
            ),
        ),
        (TOPIC_EE_POSE, pose_stamped(ns, WORLD_FRAME_ID, ee[:3], ee[3:])),
        (TOPIC_GRIPPER_OPEN, _T[BOOL](data=bool(obs.gripper_open))),
        (TOPIC_REWARD, _T[FLOAT32](data=float(reward))),
        (TOPIC_SUCCESS, _T[BOOL](data=bool(success))),
    ]
    return msgs


# --------------------------------------------------------------------------- decoding


def deserialize(data: bytes, msgtype: str) -> Any:
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


def decode_message(data: bytes, msgtype: str, path: Path, topic: str) -> Any:
    """:func:`deserialize`, with a corrupt payload as a BagError naming the bag and topic."""
    try:
        return deserialize(data, msgtype)
    except Exception as err:  # noqa: BLE001 - corrupt payload: rosbags raises many kinds
        raise BagError(f"bag {path}: cannot decode a message on {topic}: {err}", path,
                       topic) from err


def pose7(msg: Any) -> np.ndarray:
    """PoseStamped -> (7,) float64 xyz + quaternion xyzw."""
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w], dtype=np.float64)


def _image(msg: Any, kind: str, path: Path, topic: str) -> np.ndarray:
    try:
        return image_to_numpy(msg, kind)
    except ValueError as err:
        raise BagError(f"bag {path}: {topic}: {err}", path, topic) from None


def decode_rgb(msg: Any, path: Path, topic: str = TOPIC_COLOR) -> np.ndarray:
    """Image rgb8 / bgr8 / rgba8 / bgra8 -> (H, W, 3) uint8 RGB."""
    return _image(msg, "color", path, topic)


def decode_depth(msg: Any, path: Path, topic: str = TOPIC_DEPTH) -> np.ndarray:
    """Image 32FC1 (metres) or 16UC1 (millimetres) -> (H, W) float32 metres."""
    return _image(msg, "depth", path, topic)


def decode_joints(msg: Any, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """JointState -> (arm positions (7,), arm velocities (7,), finger positions (2,)).

    Joints are found by name (:data:`~arm_perception.bag_format.JOINT_NAMES`), in any order;
    a missing ``velocity`` reads as zeros.
    """
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
