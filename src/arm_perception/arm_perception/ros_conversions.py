"""numpy <-> rclpy message conversions for camera data, poses and point clouds.

Everything here is vectorised: no Python loop touches a pixel or a point.

Large arrays (``Image.data``, ``PointCloud2.data``) are written into the message in one copy.
rclpy's generated messages store ``uint8[]`` fields as ``array.array('B')``; the ``data`` setter
of a message built the default way (``check_fields`` off, the rclpy default) re-wraps whatever it
is given with ``array.array('B', value)``, which is a *second* full copy for bytes/arrays and an
element-by-element Python loop for a numpy array or memoryview (about 30 ms for a 128x128 cloud).
A message built with ``check_fields=True`` keeps an ``array.array('B')`` it is given as is, so we
fill an ``array.array`` straight from the numpy buffer (``frombytes``, one ``memcpy``) and hand it
over. ``bench/bench_ros.py --only fill`` measures the alternatives.

Received messages are read without copying where the layout allows (``np.frombuffer`` on the
message's ``array.array``): the arrays returned by :func:`image_to_numpy` for rgb8 / rgba8 /
mono8 / native-endian 32FC1 share memory with ``msg.data``. Image decoding itself lives in
:mod:`arm_perception.images` (ROS-free, shared with the bag reader) and is re-exported here.

Conventions (see :mod:`arm_perception.camera`): K is the 3x3 pinhole matrix with pixel centres at
integer coordinates (ROS CameraInfo / OpenCV); poses are 4x4 homogeneous matrices; quaternions
are xyzw with w >= 0; depth images come out as float32 metres with invalid pixels as they were
(0 for 16UC1 "no return", 0/NaN for 32FC1), which :func:`~arm_perception.camera.depth_to_points`
turns into NaN points.
"""

from __future__ import annotations

import array
import sys
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from arm_control.transforms import mat_to_quat_xyzw, quat_xyzw_to_mat

from .images import COLOR_ENCODINGS, COLOR_LAYOUTS, DEPTH_ENCODINGS, IMAGE_ENCODINGS, LAYOUTS
from .images import image_to_numpy  # re-exported: decoding is shared with the bag reader

__all__ = [
    "COLOR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "camera_info_to_intrinsics",
    "image_to_numpy",
    "intrinsics_to_camera_info",
    "matrix_to_pose",
    "numpy_to_image",
    "pointcloud2_to_numpy",
    "points_to_pointcloud2",
    "pose_to_matrix",
    "resize_to",
    "seconds_to_stamp",
    "stamp_to_nanoseconds",
    "stamp_to_seconds",
]

_BIG_ENDIAN_HOST = sys.byteorder == "big"


# --------------------------------------------------------------------------- time


def stamp_to_nanoseconds(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact; use it as a dictionary key)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Float seconds -> builtin_interfaces/Time (rounded to the nanosecond; nanosec in [0, 1e9))."""
    ns = int(round(float(seconds) * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _as_stamp(stamp: Time | float | int | None) -> Time:
    if stamp is None:
        return Time()
    if isinstance(stamp, Time):
        return stamp
    return seconds_to_stamp(stamp)


def _header(stamp: Time | float | None, frame_id: str) -> Header:
    return Header(stamp=_as_stamp(stamp), frame_id=str(frame_id))


def _to_message_bytes(flat_u8: np.ndarray) -> array.array:
    """One memcpy from a contiguous uint8 numpy buffer into a new array.array('B')."""
    buf = array.array("B")
    buf.frombytes(flat_u8)
    return buf


def _zeroed_bytes(n: int) -> array.array:
    """A zero-filled array.array('B') of n bytes (sequence repeat: a fast C fill, no copy loop)."""
    return array.array("B", b"\0") * n


# --------------------------------------------------------------------------- images


def numpy_to_image(
    array_: np.ndarray,
    encoding: str,
    stamp: Time | float | None = None,
    frame_id: str = "",
    depth_unit: float = 0.001,
) -> Image:
    """numpy array -> sensor_msgs/Image, data filled in one copy.

    The array is in the layout :func:`image_to_numpy` returns, so the two round-trip:
    colour arrays are RGB(A) uint8 whatever the encoding (``bgr8``/``bgra8`` reorder the channels
    on the wire); ``32FC1`` takes any float array (metres); ``16UC1`` takes a uint16 array of raw
    sensor units, or a float array in metres that is converted to units of ``depth_unit``
    (non-finite or <= 0 -> 0, "no return"). ``stamp`` is a builtin_interfaces/Time or float
    seconds.
    """
    if encoding not in LAYOUTS:
        raise ValueError(f"unsupported image encoding {encoding!r} "
                         f"(expected one of {', '.join(IMAGE_ENCODINGS)})")
    arr = np.asarray(array_)
    dtype, channels = LAYOUTS[encoding]
    want = "(H, W)" if channels == 1 else f"(H, W, {channels})"
    if (channels == 1 and arr.ndim != 2) or (channels > 1 and (arr.ndim != 3 or arr.shape[2] != channels)):
        raise ValueError(f"{encoding} image needs an array of shape {want}, got {arr.shape}")
    if encoding in COLOR_LAYOUTS or encoding == "mono8":
        if arr.dtype != np.uint8:
            raise ValueError(f"{encoding} image needs a uint8 array, got {arr.dtype}")
        if encoding in COLOR_LAYOUTS and COLOR_LAYOUTS[encoding][1]:
            arr = cv2.cvtColor(np.ascontiguousarray(arr),
                               cv2.COLOR_RGBA2BGRA if channels == 4 else cv2.COLOR_RGB2BGR)
    elif encoding == "32FC1":
        if arr.dtype.kind != "f":
            raise ValueError(f"32FC1 image needs a float array (metres), got {arr.dtype}")
        arr = arr.astype(np.float32, copy=False)
    else:  # 16UC1
        if arr.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                units = np.where(np.isfinite(arr) & (arr > 0), np.rint(arr / depth_unit), 0)
            arr = np.clip(units, 0, 65535).astype(np.uint16)
        elif arr.dtype != np.uint16:
            raise ValueError(f"16UC1 image needs a uint16 array (or float metres), got {arr.dtype}")
    arr = np.ascontiguousarray(arr)  # no-op for the usual contiguous input
    h, w = arr.shape[:2]
    msg = Image(check_fields=True)  # keeps the array.array we assign: no second copy
    msg.header = _header(stamp, frame_id)
    msg.height, msg.width = int(h), int(w)
    msg.encoding = encoding
    msg.is_bigendian = int(_BIG_ENDIAN_HOST)
    msg.step = int(w * channels * np.dtype(dtype).itemsize)
    msg.data = _to_message_bytes(arr.reshape(-1).view(np.uint8))
    return msg


# --------------------------------------------------------------------------- camera model


def camera_info_to_intrinsics(msg: CameraInfo) -> tuple[np.ndarray, tuple[int, int]]:
    """sensor_msgs/CameraInfo -> (K (3, 3) float64, (height, width)).

    Uses ``k`` (the raw image's camera matrix; distortion is ignored: the simulator has none and
    a RealSense's aligned colour stream has close to none). Raises ValueError for an
    uncalibrated (all-zero) or non-finite K, non-positive focal lengths or an empty size.
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3).copy()
    h, w = int(msg.height), int(msg.width)
    if h <= 0 or w <= 0:
        raise ValueError(f"camera_info has image size {w}x{h}")
    if not np.all(np.isfinite(K)):
        raise ValueError("camera_info K contains NaN or inf")
    if not np.any(K):
        raise ValueError("camera_info K is all zeros (uncalibrated camera)")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] == 0:
        raise ValueError(f"camera_info K is not a pinhole matrix: fx={K[0, 0]}, fy={K[1, 1]}, K[2,2]={K[2, 2]}")
    return K / K[2, 2], (h, w)


def intrinsics_to_camera_info(
    K: np.ndarray, height: int, width: int, stamp: Time | float | None = None, frame_id: str = ""
) -> CameraInfo:
    """K, size -> sensor_msgs/CameraInfo (plumb_bob, zero distortion, R = I, P = [K | 0])."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got shape {K.shape}")
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(
        header=_header(stamp, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=K.reshape(-1).tolist(),
        r=np.eye(3).reshape(-1).tolist(),
        p=P.reshape(-1).tolist(),
    )


def pose_to_matrix(pose: Any) -> np.ndarray:
    """geometry_msgs/Pose (or a PoseStamped) -> 4x4 homogeneous matrix.

    The quaternion is normalised; a zero or non-finite pose raises ValueError.
    """
    pose = getattr(pose, "pose", pose)
    p, o = pose.position, pose.orientation
    t = np.array([p.x, p.y, p.z], dtype=np.float64)
    q = np.array([o.x, o.y, o.z, o.w], dtype=np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise ValueError("pose contains NaN or inf")
    if np.linalg.norm(q) < 1e-9:
        raise ValueError("pose orientation is a zero quaternion")
    T = np.eye(4)
    T[:3, :3] = quat_xyzw_to_mat(q)
    T[:3, 3] = t
    return T


def matrix_to_pose(T: np.ndarray) -> Pose:
    """4x4 homogeneous matrix -> geometry_msgs/Pose (quaternion xyzw, w >= 0)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"pose matrix must be 4x4, got shape {T.shape}")
    x, y, z, w = (float(v) for v in mat_to_quat_xyzw(T[:3, :3]))
    px, py, pz = (float(v) for v in T[:3, 3])
    return Pose(position=Point(x=px, y=py, z=pz), orientation=Quaternion(x=x, y=y, z=z, w=w))


def resize_to(
    rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre-crop an aligned RGB-D pair to the target aspect ratio, then resize it.

    ``size`` is an int (square) or (height, width). Colour uses cv2.INTER_AREA (pixel-area
    averaging); depth uses cv2.INTER_NEAREST_EXACT: nearest neighbour, so depth never blends
    across an object edge, with the same half-pixel-centre alignment as INTER_AREA (plain
    INTER_NEAREST samples the top-left source pixel of each block, shifting depth against
    colour and K by up to half an output pixel). Returns ``(rgb, depth, K')`` where ``K'`` is
    the camera matrix of the output images, so depth_to_points(depth, K', T) is right.
    An input already at the target size is returned unchanged (no copy).
    """
    th, tw = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if th <= 0 or tw <= 0:
        raise ValueError(f"target size must be positive, got {th}x{tw} (h x w)")
    rgb, depth = np.asarray(rgb), np.asarray(depth)
    K = np.asarray(K, dtype=np.float64)
    if depth.ndim != 2 or rgb.ndim != 3:
        raise ValueError(f"need rgb (H, W, C) and depth (H, W), got {rgb.shape} and {depth.shape}")
    h, w = depth.shape
    if rgb.shape[:2] != (h, w):
        raise ValueError(
            f"colour {rgb.shape[1]}x{rgb.shape[0]} and depth {w}x{h} sizes differ "
            "(depth must be aligned to colour)"
        )
    if (h, w) == (th, tw):
        return rgb, depth, K.copy()
    # Centre crop to the target aspect ratio.
    if w * th > h * tw:  # too wide
        cw, ch = int(round(h * tw / th)), h
    else:  # too tall (or exact)
        cw, ch = w, int(round(w * th / tw))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    rgb_c = rgb[y0:y0 + ch, x0:x0 + cw]
    depth_c = depth[y0:y0 + ch, x0:x0 + cw]
    sx, sy = tw / cw, th / ch
    rgb_out = cv2.resize(np.ascontiguousarray(rgb_c), (tw, th), interpolation=cv2.INTER_AREA)
    depth_out = cv2.resize(np.ascontiguousarray(depth_c), (tw, th), interpolation=cv2.INTER_NEAREST_EXACT)
    # Pixel centres at integer coordinates: u' = (u - x0 + 0.5) * sx - 0.5.
    K2 = K.copy()
    K2[0, 0] *= sx
    K2[0, 1] *= sx
    K2[0, 2] = (K[0, 2] - x0 + 0.5) * sx - 0.5
    K2[1, 1] *= sy
    K2[1, 2] = (K[1, 2] - y0 + 0.5) * sy - 0.5
    return rgb_out, depth_out, K2


# --------------------------------------------------------------------------- point clouds

_F32 = PointField.FLOAT32
_PF_DTYPES = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) uint32 0xAARRGGBB with A = 255, PCL's PointXYZRGB packing."""
    rgb = rgb.astype(np.uint32)
    return np.uint32(0xFF000000) | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def points_to_pointcloud2(
    points: np.ndarray,
    stamp: Time | float | None = None,
    frame_id: str = "world",
    rgb: np.ndarray | None = None,
) -> PointCloud2:
    """(H, W, 3) points -> organised sensor_msgs/PointCloud2, filled in one copy.

    Fields x, y, z FLOAT32 at offsets 0, 4, 8 (point_step 12), plus ``rgb`` at offset 12
    (point_step 16) when ``rgb`` ((H, W, 3) uint8) is given: PCL's packing, the uint32
    0xAARRGGBB (A = 255) stored in a FLOAT32 field, as pcl::toROSMsg, RViz and Open3D expect.
    height = H, width = W, is_dense False (NaN points mark invalid depth). An (N, 3) array gives
    an unorganised cloud (height 1).
    """
    pts = np.asarray(points)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[2] != 3:
        raise ValueError(f"points must be (H, W, 3) or (N, 3), got shape {np.shape(points)}")
    h, w = pts.shape[:2]
    fields = [
        PointField(name="x", offset=0, datatype=_F32, count=1),
        PointField(name="y", offset=4, datatype=_F32, count=1),
        PointField(name="z", offset=8, datatype=_F32, count=1),
    ]
    if rgb is None:
        point_step = 12
        buf = _to_message_bytes(np.ascontiguousarray(pts, dtype=np.float32).reshape(-1).view(np.uint8))
    else:
        rgb = np.asarray(rgb)
        if rgb.shape[-1] != 3 or rgb.reshape(-1, 3).shape[0] != h * w or rgb.dtype != np.uint8:
            raise ValueError(
                f"rgb must be uint8 with one (r, g, b) per point ({h}x{w}x3), got {rgb.dtype} {rgb.shape}"
            )
        fields.append(PointField(name="rgb", offset=12, datatype=_F32, count=1))
        point_step = 16
        # Write every value once, straight into the message buffer.
        buf = _zeroed_bytes(h * w * point_step)
        view = np.frombuffer(buf, dtype=np.float32).reshape(h, w, 4)
        view[..., :3] = pts
        view.view(np.uint32)[..., 3] = _pack_rgb(rgb.reshape(h, w, 3))
    msg = PointCloud2(check_fields=True)  # keeps the array.array we assign: no second copy
    msg.header = _header(stamp, frame_id)
    msg.height, msg.width = int(h), int(w)
    msg.fields = fields
    msg.is_bigendian = _BIG_ENDIAN_HOST
    msg.point_step = point_step
    msg.row_step = point_step * int(w)
    msg.data = buf
    msg.is_dense = False
    return msg


def pointcloud2_to_numpy(msg: PointCloud2, with_rgb: bool = False):
    """sensor_msgs/PointCloud2 -> (H, W, 3) float32 points, or (points, rgb) if ``with_rgb``.

    Reads any layout with x, y, z fields (float32 or float64, any offsets, ``point_step`` and
    ``row_step`` padding, either endianness). ``rgb`` is (H, W, 3) uint8 from a PCL-packed
    ``rgb`` or ``rgba`` field. Raises ValueError for missing fields or a data size mismatch.
    """
    h, w = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    order = ">" if msg.is_bigendian else "<"
    by_name = {f.name: f for f in msg.fields}
    wanted = ["x", "y", "z"] + (["rgb" if "rgb" in by_name else "rgba"] if with_rgb else [])
    missing = [n for n in wanted if n not in by_name]
    if missing == ["rgba"]:
        missing = ["rgb"]  # neither rgb nor rgba: name the usual one
    if missing:
        raise ValueError(
            f"PointCloud2 has no field(s) {missing} (fields: {[f.name for f in msg.fields]})"
        )
    formats, offsets = [], []
    for name in wanted:
        f = by_name[name]
        if name in ("rgb", "rgba"):
            if f.datatype not in (PointField.FLOAT32, PointField.UINT32, PointField.INT32):
                raise ValueError(f"PointCloud2 field {name} has datatype {f.datatype}, expected a 4-byte type")
            fmt = order + "u4"
        else:
            if f.datatype not in (PointField.FLOAT32, PointField.FLOAT64):
                raise ValueError(f"PointCloud2 field {name} has datatype {f.datatype}, expected FLOAT32/FLOAT64")
            fmt = order + _PF_DTYPES[f.datatype]
        if int(f.offset) + np.dtype(fmt).itemsize > point_step:
            raise ValueError(f"PointCloud2 field {name} at offset {f.offset} lies outside point_step {point_step}")
        formats.append(fmt)
        offsets.append(int(f.offset))
    if point_step * w > row_step:
        raise ValueError(f"PointCloud2 row_step {row_step} < width {w} * point_step {point_step}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != h * row_step:
        raise ValueError(
            f"PointCloud2 {w}x{h}: data size mismatch: {data.size} bytes, expected "
            f"height * row_step = {h * row_step}"
        )
    dtype = np.dtype({"names": wanted, "formats": formats, "offsets": offsets, "itemsize": point_step})
    rec = np.ndarray((h, w), dtype=dtype, buffer=data, strides=(row_step, point_step))
    points = np.empty((h, w, 3), dtype=np.float32)
    for i, name in enumerate("xyz"):
        points[..., i] = rec[name]
    if not with_rgb:
        return points
    packed = rec[wanted[3]].astype(np.uint32)
    rgb = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=-1).astype(np.uint8)
    return points, rgb
