"""perception_node: camera RGB-D -> policy-sized RGB + organised world-frame point cloud.

Subscribes (camera QoS = sensor data: best effort, keep last 5; matches reliable and
best-effort drivers alike):

- ``color_topic`` (sensor_msgs/Image rgb8 / bgr8 / rgba8 / bgra8)
- ``depth_topic`` (sensor_msgs/Image 32FC1 metres or 16UC1 in ``depth_unit``, aligned to colour)
- ``camera_info_topic`` (sensor_msgs/CameraInfo of the colour stream: the one with the frame's
  stamp, else the newest one whose size fits; a frame waits a few messages for one that fits)
- ``camera_pose_topic`` (geometry_msgs/PoseStamped of the camera optical frame in world;
  reliable + transient local, depth 1, so a pose latched before this node started arrives)

Colour and depth are paired by identical ``header.stamp`` (a few unpaired frames are buffered).

Publishes, with the colour frame's stamp (reliable, keep last 5: a reliable offer matches both
reliable and sensor-data subscribers):

- ``/arm/perception/rgb`` sensor_msgs/Image rgb8, ``image_size`` square, frame_id of the camera
- ``/arm/perception/points`` sensor_msgs/PointCloud2, organised (height = width = image_size),
  x y z float32 (+ PCL-packed rgb if ``publish_rgb_in_cloud``), frame_id ``world``, NaN points
  where depth is invalid (is_dense False)
- ``/arm/perception/camera_info`` sensor_msgs/CameraInfo of the output images (K after the
  crop/resize), frame_id of the camera

Malformed input (wrong encoding, size mismatch, missing camera_info or pose, ...) drops the frame
and is logged once per kind of problem, naming what was wrong; the node keeps running.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from arm_control.graph import LATCHED, SENSOR, STREAM
from arm_control.node_main import declare, run_node
from arm_control.topics import (
    TOPIC_CAMERA_INFO,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR,
    TOPIC_DEPTH,
    TOPIC_PERCEPTION_CAMERA_INFO,
    TOPIC_PERCEPTION_POINTS,
    TOPIC_PERCEPTION_RGB,
)

from .bag_format import WORLD_FRAME_ID
from .camera import depth_to_points
from .ros_conversions import (
    camera_info_to_intrinsics,
    image_to_numpy,
    intrinsics_to_camera_info,
    numpy_to_image,
    points_to_pointcloud2,
    pose_to_matrix,
    resize_to,
    stamp_to_nanoseconds,
)

#: Colour or depth frames waiting for their partner (by stamp) before the oldest is dropped.
PAIR_BUFFER = 4

Intrinsics = tuple[np.ndarray, tuple[int, int]]  # (K, (height, width)) of a camera_info


class DroppedFrame(Exception):
    """A frame cannot be processed; ``kind`` groups problems for log-once."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class PerceptionNode(Node):
    def __init__(self, **kwargs) -> None:
        """``kwargs`` go to rclpy's Node (context, parameter_overrides, cli_args, ...)."""
        super().__init__("perception_node", **kwargs)
        size = declare(self, "image_size", 128, "Side of the square output images (the policy's "
                       "input size); other camera sizes are centre-cropped and resized.", read_only=True)
        self._topics: dict[str, str] = {}
        for name, default, what in (
            ("color_topic", TOPIC_COLOR, "colour image (rgb8/bgr8/rgba8/bgra8)"),
            ("depth_topic", TOPIC_DEPTH, "depth image aligned to colour (32FC1 metres or 16UC1)"),
            ("camera_info_topic", TOPIC_CAMERA_INFO, "CameraInfo of the colour stream"),
            ("camera_pose_topic", TOPIC_CAMERA_POSE,
             "latched PoseStamped of the camera optical frame in world; '' to use camera_extrinsics only"),
        ):
            self._topics[name] = declare(self, name, default, f"Topic: {what}.", read_only=True)
        extrinsics = declare(self, "camera_extrinsics", None, "Optional 4x4 pose of the camera "
                             "optical frame in world, 16 numbers row-major; used until (or unless) "
                             "a pose arrives on camera_pose_topic (for real cameras).",
                             dynamic_typing=True, read_only=True)
        with_rgb = declare(self, "publish_rgb_in_cloud", False,
                           "Add a PCL-packed rgb field to the point cloud.", read_only=True)
        depth_unit = declare(self, "depth_unit", 0.001, "Metres per unit of 16UC1 depth images "
                             "(RealSense default: 0.001).", read_only=True)

        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"parameter image_size must be a positive integer, got {size!r}")
        self._size = size
        self._with_rgb = bool(with_rgb)
        self._depth_unit = float(depth_unit)
        self._param_extrinsics = _extrinsics(extrinsics)

        self._pending: OrderedDict[int, list] = OrderedDict()  # stamp ns -> [colour, depth]
        self._intrinsics: Intrinsics | None = None  # newest valid camera_info
        self._info_by_stamp: OrderedDict[int, Intrinsics] = OrderedDict()
        self._pose: np.ndarray | None = None
        self._warned: set[str] = set()
        self.frames_published = 0
        self.frames_dropped = 0

        self._rgb_pub = self.create_publisher(Image, TOPIC_PERCEPTION_RGB, STREAM)
        self._points_pub = self.create_publisher(PointCloud2, TOPIC_PERCEPTION_POINTS, STREAM)
        self._info_pub = self.create_publisher(CameraInfo, TOPIC_PERCEPTION_CAMERA_INFO, STREAM)
        self.create_subscription(Image, self._topics["color_topic"], self._on_color, SENSOR)
        self.create_subscription(Image, self._topics["depth_topic"], self._on_depth, SENSOR)
        self.create_subscription(CameraInfo, self._topics["camera_info_topic"], self._on_camera_info, SENSOR)
        if self._topics["camera_pose_topic"]:
            self.create_subscription(PoseStamped, self._topics["camera_pose_topic"], self._on_pose, LATCHED)
        self.get_logger().info(
            f"{self._topics['color_topic']} + {self._topics['depth_topic']} -> {self._rgb_pub.topic_name}, "
            f"{self._points_pub.topic_name} at {size}x{size}"
            + (" (extrinsics from parameter)" if self._param_extrinsics is not None else ""))

    # ------------------------------------------------------------------ inputs

    def _on_color(self, msg: Image) -> None:
        self._add(msg, 0)

    def _on_depth(self, msg: Image) -> None:
        self._add(msg, 1)

    def _add(self, msg: Image, slot: int) -> None:
        key = stamp_to_nanoseconds(msg.header.stamp)
        pair = self._pending.get(key)
        if pair is None:
            pair = self._pending[key] = [None, None]
        pair[slot] = msg
        self._try_pair(key)
        self._evict()

    def _try_pair(self, key: int) -> None:
        """Process the frame at ``key`` if colour, depth, a camera_info that fits and a pose are here.

        A camera_info with the frame's own stamp is used if it came; otherwise the newest one,
        if its size fits. A complete pair without a fitting camera_info or without a camera pose
        waits in the buffer (they can be a message behind, as at start-up or after a resolution
        change) and is dropped with a warning when it falls out of it.
        """
        color, depth = self._pending.get(key, (None, None))
        if color is None or depth is None:
            return
        if self._pose is None and self._param_extrinsics is None:
            return  # the latched pose may arrive just after the first frames
        info = self._info_by_stamp.get(key)
        if info is None:
            latest = self._intrinsics
            if latest is None or latest[1] != (int(color.height), int(color.width)):
                return
            info = latest
        del self._pending[key]
        self._handle(color, depth, info)

    def _evict(self) -> None:
        while len(self._pending) > PAIR_BUFFER:
            stamp, (color, depth) = self._pending.popitem(last=False)
            if color is not None and depth is not None:  # complete, but no camera_info fitted
                self._handle(color, depth, self._info_by_stamp.get(stamp, self._intrinsics))
                continue
            missing = "depth" if color is not None else "colour"
            self._drop(DroppedFrame(
                "unpaired",
                f"dropped a frame (stamp {stamp * 1e-9:.9f} s): no {missing} image with the identical "
                f"header stamp arrived within {PAIR_BUFFER} frames (lost message, or colour and depth "
                "are not stamped identically)"))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            info = camera_info_to_intrinsics(msg)
        except ValueError as err:
            self._warn_once("camera_info", f"ignoring CameraInfo on {self._topics['camera_info_topic']}: {err}")
            return
        key = stamp_to_nanoseconds(msg.header.stamp)
        self._intrinsics = info
        self._info_by_stamp[key] = info
        while len(self._info_by_stamp) > 2 * PAIR_BUFFER:
            self._info_by_stamp.popitem(last=False)
        self._try_pair(key)

    def _on_pose(self, msg: PoseStamped) -> None:
        try:
            self._pose = pose_to_matrix(msg.pose)
        except ValueError as err:
            self._warn_once("camera_pose", f"ignoring camera pose on {self._topics['camera_pose_topic']}: {err}")
            return
        if msg.header.frame_id not in ("", WORLD_FRAME_ID):
            self._warn_once("pose_frame", f"camera pose on {self._topics['camera_pose_topic']} is in frame "
                            f"{msg.header.frame_id!r}, not {WORLD_FRAME_ID!r}; using it as the world frame")
        for key in list(self._pending):  # frames that waited for the pose
            self._try_pair(key)

    # ------------------------------------------------------------------ processing

    def _handle(self, color: Image, depth: Image, info: Intrinsics | None) -> None:
        try:
            self._process(color, depth, info)
        except DroppedFrame as err:
            self._drop(err)
        except ValueError as err:
            self._drop(DroppedFrame(_kind_of(str(err)), f"dropped a frame: {err}"))
        except Exception as err:  # noqa: BLE001 - never let one frame stop the node
            self._drop(DroppedFrame(f"error:{type(err).__name__}",
                                    f"dropped a frame: unexpected {type(err).__name__}: {err}"))

    def _process(self, color: Image, depth: Image, info: Intrinsics | None) -> None:
        try:
            rgb = image_to_numpy(color, kind="color")
        except ValueError as err:
            raise DroppedFrame("color", f"dropped a frame: colour image on {self._topics['color_topic']}: {err}")
        try:
            depth_m = image_to_numpy(depth, kind="depth", depth_unit=self._depth_unit)
        except ValueError as err:
            raise DroppedFrame("depth", f"dropped a frame: depth image on {self._topics['depth_topic']}: {err}")
        if info is None:
            raise DroppedFrame("no_camera_info", "dropped a frame: no valid CameraInfo received yet on "
                               f"{self._topics['camera_info_topic']}")
        K, (h, w) = info
        if rgb.shape[:2] != (h, w) or depth_m.shape != (h, w):
            raise DroppedFrame(
                "size", f"dropped a frame: size mismatch: colour {rgb.shape[1]}x{rgb.shape[0]}, depth "
                f"{depth_m.shape[1]}x{depth_m.shape[0]}, camera_info {w}x{h}")
        extrinsics = self._pose if self._pose is not None else self._param_extrinsics
        if extrinsics is None:
            raise DroppedFrame("no_camera_pose", "dropped a frame: no camera pose yet (nothing latched on "
                               f"{self._topics['camera_pose_topic'] or '(no topic)'} and no camera_extrinsics "
                               "parameter)")
        rgb, depth_m, K = resize_to(rgb, depth_m, K, self._size)
        points = depth_to_points(depth_m, K, extrinsics)

        stamp = color.header.stamp
        camera_frame = color.header.frame_id
        self._rgb_pub.publish(numpy_to_image(rgb, "rgb8", stamp, camera_frame))
        self._points_pub.publish(
            points_to_pointcloud2(points, stamp, WORLD_FRAME_ID, rgb=rgb if self._with_rgb else None))
        self._info_pub.publish(intrinsics_to_camera_info(K, self._size, self._size, stamp, camera_frame))
        self.frames_published += 1

    def _drop(self, err: DroppedFrame) -> None:
        self.frames_dropped += 1
        self._warn_once(err.kind, str(err))

    def _warn_once(self, kind: str, message: str) -> None:
        if kind in self._warned:
            self.get_logger().debug(message)
            return
        self._warned.add(kind)
        self.get_logger().warning(message + " (logged once for this kind of problem)")


def _extrinsics(value) -> np.ndarray | None:
    """The camera_extrinsics parameter as a 4x4 matrix; None when it is unset or empty."""
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        return None
    try:
        T = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        T = np.empty(0)
    if T.shape != (16,) or not np.all(np.isfinite(T)):
        raise ValueError(f"parameter camera_extrinsics must be 16 finite numbers (row-major 4x4), got {value!r}")
    return T.reshape(4, 4)


def _kind_of(message: str) -> str:
    """Group ValueErrors from the camera math by their text up to the first digit."""
    head = message.split(":")[0]
    return "value:" + "".join(c for c in head if not c.isdigit())[:60]


def main(args=None) -> None:
    run_node(PerceptionNode, "perception_node", args)


if __name__ == "__main__":
    main()
