"""numpy <-> rclpy message conversions: round trips, layouts, RealSense resize, malformed input."""

import array

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from arm_perception.camera import depth_to_points, world_to_pixel  # noqa: E402
from arm_perception.ros_conversions import (  # noqa: E402
    camera_info_to_intrinsics,
    image_to_numpy,
    intrinsics_to_camera_info,
    matrix_to_pose,
    numpy_to_image,
    pointcloud2_to_numpy,
    points_to_pointcloud2,
    pose_to_matrix,
    resize_to,
    seconds_to_stamp,
    stamp_to_nanoseconds,
    stamp_to_seconds,
)

RNG = np.random.default_rng(0)


def wire(msg):
    """Serialise and deserialise through rclpy's C layer, as a subscriber in another process sees it."""
    return deserialize_message(serialize_message(msg), type(msg))


def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize("seconds", [0.0, 1.5, 1_700_000_000.123456789, 12.999999999, -0.25])
def test_stamp_round_trip(seconds):
    stamp = seconds_to_stamp(seconds)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert stamp_to_seconds(stamp) == pytest.approx(seconds, abs=1e-9)
    assert stamp_to_nanoseconds(stamp) == round(seconds * 1e9)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("encoding,shape,dtype", [
    ("rgb8", (5, 7, 3), np.uint8),
    ("bgr8", (5, 7, 3), np.uint8),
    ("rgba8", (5, 7, 4), np.uint8),
    ("bgra8", (5, 7, 4), np.uint8),
    ("mono8", (5, 7), np.uint8),
    ("32FC1", (5, 7), np.float32),
])
def test_image_round_trip(encoding, shape, dtype):
    if dtype == np.uint8:
        arr = RNG.integers(0, 256, shape, dtype=np.uint8)
    else:
        arr = RNG.uniform(0.1, 5.0, shape).astype(dtype)
        arr[0, 0] = np.nan
    msg = numpy_to_image(arr, encoding, 12.5, "cam")
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    assert len(msg.data) == msg.step * msg.height == arr.nbytes
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (5, 7, encoding, "cam")
    assert stamp_to_seconds(msg.header.stamp) == 12.5
    for m in (msg, wire(msg)):
        out = image_to_numpy(m)
        assert out.dtype == arr.dtype and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr)


def test_message_owns_its_data():
    """The message holds a copy: changing the source array afterwards does not change it."""
    arr = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    msg = numpy_to_image(arr, "rgb8")
    before = bytes(msg.data)
    arr[:] = 0
    assert bytes(msg.data) == before


def test_bgr_is_reordered_on_the_wire():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # red
    msg = numpy_to_image(rgb, "bgr8")
    assert np.frombuffer(msg.data, np.uint8).reshape(2, 2, 3)[0, 0].tolist() == [0, 0, 200]
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 9, np.uint8)], axis=-1)
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(rgba, "bgra8"), kind="color"), rgb)


def test_16uc1_millimetres_to_metres():
    mm = np.array([[0, 1], [1500, 65535]], dtype=np.uint16)
    msg = numpy_to_image(mm, "16UC1")
    depth = image_to_numpy(msg, kind="depth")
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth, mm * 0.001, rtol=1e-6)
    np.testing.assert_allclose(image_to_numpy(msg, depth_unit=0.0001), mm * 0.0001, rtol=1e-6)
    # float metres in: rounded to the unit, no return (NaN, <= 0) -> 0
    metres = np.array([[np.nan, -1.0], [0.0004, 1.2345]], dtype=np.float32)
    np.testing.assert_array_equal(np.frombuffer(numpy_to_image(metres, "16UC1").data, np.uint16),
                                  [0, 0, 0, 1234])


def test_row_padding_and_big_endian_are_honoured():
    h, w = 3, 4
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    padded = np.zeros((h, w * 3 + 5), np.uint8)
    padded[:, : w * 3] = rgb.reshape(h, -1)
    msg = Image(height=h, width=w, encoding="rgb8", step=w * 3 + 5, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)
    padded[:, : w * 3] = rgb[..., ::-1].reshape(h, -1)
    msg = Image(height=h, width=w, encoding="bgr8", step=w * 3 + 5, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)
    rgba = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
    padded4 = np.zeros((h, w * 4 + 4), np.uint8)
    padded4[:, : w * 4] = rgba[..., [2, 1, 0, 3]].reshape(h, -1)
    msg = Image(height=h, width=w, encoding="bgra8", step=w * 4 + 4, data=padded4.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), rgba)
    np.testing.assert_array_equal(image_to_numpy(msg, kind="color"), rgba[..., :3])

    depth = RNG.uniform(0.5, 2, (h, w)).astype(np.float32)
    rows = np.zeros((h, w * 4 + 8), np.uint8)
    rows[:, : w * 4] = depth.astype(">f4").view(np.uint8).reshape(h, -1)
    msg = Image(height=h, width=w, encoding="32FC1", is_bigendian=1, step=w * 4 + 8, data=rows.tobytes())
    out = image_to_numpy(msg, kind="depth")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, depth)

    mm = RNG.integers(0, 4000, (h, w)).astype(np.uint16)
    msg = Image(height=h, width=w, encoding="16UC1", is_bigendian=1, step=w * 2,
                data=mm.astype(">u2").tobytes())
    np.testing.assert_allclose(image_to_numpy(msg), mm * 0.001, rtol=1e-6)


@pytest.mark.parametrize("make,kind,match", [
    (lambda: Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)), None,
     "unsupported image encoding 'yuv422'"),
    (lambda: Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16)), "color",
     "unsupported color image encoding '32FC1'"),
    (lambda: Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)), "depth",
     "unsupported depth image encoding 'rgb8'"),
    (lambda: Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)), None,
     r"data size mismatch: 11 bytes, expected height \* step = 2 \* 6 = 12"),
    (lambda: Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(100)), "depth",
     "data size mismatch: 100 bytes"),
    (lambda: Image(height=2, width=4, encoding="rgb8", step=6, data=bytes(12)), None,
     "step 6 is smaller than width"),
    (lambda: Image(height=0, width=2, encoding="rgb8", step=6, data=b""), None, "empty image"),
])
def test_malformed_images_raise_naming_the_problem(make, kind, match):
    with pytest.raises(ValueError, match=match):
        image_to_numpy(make(), kind=kind)


def test_numpy_to_image_rejects_wrong_arrays():
    with pytest.raises(ValueError, match="unsupported image encoding 'jpeg'"):
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), "jpeg")
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        numpy_to_image(np.zeros((2, 2)), "rgb8")
    with pytest.raises(ValueError, match="uint8"):
        numpy_to_image(np.zeros((2, 2, 3), np.float32), "rgb8")
    with pytest.raises(ValueError, match="float array"):
        numpy_to_image(np.zeros((2, 2), np.uint16), "32FC1")


# --------------------------------------------------------------------------- camera info, poses


def test_camera_info_round_trip():
    K = np.array([[615.2, 0.0, 322.1], [0.0, 614.8, 241.3], [0.0, 0.0, 1.0]])
    msg = intrinsics_to_camera_info(K, 480, 640, 3.0, "cam")
    assert (msg.height, msg.width, msg.distortion_model, msg.header.frame_id) == (480, 640, "plumb_bob", "cam")
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], K)
    K2, size = camera_info_to_intrinsics(wire(msg))
    np.testing.assert_array_equal(K2, K)
    assert size == (480, 640)


def test_malformed_camera_info():
    with pytest.raises(ValueError, match="all zeros"):
        camera_info_to_intrinsics(CameraInfo(height=4, width=4))
    with pytest.raises(ValueError, match="image size 0x4"):
        camera_info_to_intrinsics(intrinsics_to_camera_info(np.eye(3), 4, 0))
    K = np.eye(3)
    K[0, 0] = -1
    with pytest.raises(ValueError, match="fx=-1"):
        camera_info_to_intrinsics(intrinsics_to_camera_info(K, 4, 4))


def test_pose_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        T = np.eye(4)
        T[:3, :3] = random_rotation(rng)
        T[:3, 3] = rng.normal(size=3)
        pose = matrix_to_pose(T)
        assert pose.orientation.w >= 0
        np.testing.assert_allclose(pose_to_matrix(pose), T, atol=1e-12)
        stamped = PoseStamped(header=Header(frame_id="world"), pose=pose)
        np.testing.assert_allclose(pose_to_matrix(wire(stamped)), T, atol=1e-12)


def test_malformed_pose():
    pose = matrix_to_pose(np.eye(4))
    pose.orientation.w = 0.0
    with pytest.raises(ValueError, match="zero quaternion"):
        pose_to_matrix(pose)
    pose.position.x = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pose_to_matrix(pose)
    with pytest.raises(ValueError, match="4x4"):
        matrix_to_pose(np.eye(3))


# --------------------------------------------------------------------------- point clouds


@pytest.mark.parametrize("with_rgb", [False, True])
def test_pointcloud_round_trip(with_rgb):
    h, w = 6, 9
    points = RNG.normal(size=(h, w, 3)).astype(np.float32)
    points[2, 3] = np.nan
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8) if with_rgb else None
    msg = points_to_pointcloud2(points, 4.25, "world", rgb=rgb)
    assert (msg.height, msg.width, msg.is_dense, msg.header.frame_id) == (h, w, False, "world")
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1)
    ] + ([("rgb", 12, PointField.FLOAT32, 1)] if with_rgb else [])
    assert msg.point_step == (16 if with_rgb else 12) and msg.row_step == msg.point_step * w
    assert isinstance(msg.data, array.array) and len(msg.data) == msg.row_step * h
    for m in (msg, wire(msg)):
        if with_rgb:
            out, colours = pointcloud2_to_numpy(m, with_rgb=True)
            np.testing.assert_array_equal(colours, rgb)
        else:
            out = pointcloud2_to_numpy(m)
        assert out.shape == (h, w, 3) and out.dtype == np.float32
        np.testing.assert_array_equal(out, points)  # NaN == NaN for assert_array_equal


def test_rgb_is_packed_as_pcl_does():
    rgb = np.array([[[255, 0, 0], [0, 128, 1]]], dtype=np.uint8)
    msg = points_to_pointcloud2(np.zeros((1, 2, 3), np.float32), rgb=rgb)
    packed = np.frombuffer(msg.data, np.uint32).reshape(2, 4)[:, 3]
    assert [hex(v) for v in packed] == ["0xffff0000", "0xff008001"]  # 0xAARRGGBB, A = 255


def test_unorganised_points_give_height_one():
    pts = RNG.normal(size=(10, 3)).astype(np.float64)
    msg = points_to_pointcloud2(pts)
    assert (msg.height, msg.width) == (1, 10)
    np.testing.assert_allclose(pointcloud2_to_numpy(msg)[0], pts, rtol=1e-6)


def test_pointcloud_reader_handles_padded_foreign_layouts():
    """A PCL-style PointXYZRGB layout (32-byte points, rgb at 16) with row padding, float64 xyz."""
    h, w, point_step, row_step = 2, 3, 32, 32 * 3 + 8
    pts = RNG.normal(size=(h, w, 3))
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    raw = np.zeros((h, row_step), np.uint8)
    rec = np.ndarray((h, w), dtype=np.dtype({"names": ["x", "y", "z", "rgb"],
                                             "formats": ["<f4", "<f4", "<f4", "<u4"],
                                             "offsets": [0, 4, 8, 16], "itemsize": point_step}),
                     buffer=raw, strides=(row_step, point_step))
    for i, c in enumerate("xyz"):
        rec[c] = pts[..., i]
    rec["rgb"] = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    fields = [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
              for n, o in (("x", 0), ("y", 4), ("z", 8), ("rgb", 16))]
    msg = PointCloud2(height=h, width=w, fields=fields, point_step=point_step, row_step=row_step,
                      data=raw.tobytes(), is_dense=True)
    out, colours = pointcloud2_to_numpy(msg, with_rgb=True)
    np.testing.assert_allclose(out, pts, rtol=1e-6)
    np.testing.assert_array_equal(colours, rgb)

    pts64 = RNG.normal(size=(1, 4, 3))
    msg = PointCloud2(height=1, width=4, point_step=24, row_step=96, data=pts64.astype(">f8").tobytes(),
                      is_bigendian=True,
                      fields=[PointField(name=n, offset=8 * i, datatype=PointField.FLOAT64, count=1)
                              for i, n in enumerate("xyz")])
    np.testing.assert_allclose(pointcloud2_to_numpy(msg), pts64.astype(np.float32))


def test_malformed_pointclouds():
    msg = points_to_pointcloud2(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"no field\(s\) \['rgb'\]"):
        pointcloud2_to_numpy(msg, with_rgb=True)
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="data size mismatch: 47 bytes"):
        pointcloud2_to_numpy(msg)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) or \(N, 3\)"):
        points_to_pointcloud2(np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="rgb must be uint8"):
        points_to_pointcloud2(np.zeros((2, 2, 3), np.float32), rgb=np.zeros((2, 3, 3), np.uint8))


# --------------------------------------------------------------------------- RealSense -> policy size


def realsense_frame():
    """A 640x480 bgr8 + 16UC1 (mm) RealSense-style frame of a tilted plane with colour ramps.

    Colour is a function of the full-resolution pixel (R ramps with the column, G with the row),
    depth a smooth plane in millimetres with a patch of no return (0).
    """
    h, w = 480, 640
    K = np.array([[615.0, 0.0, 322.7], [0.0, 612.0, 237.8], [0.0, 0.0, 1.0]])
    rows, cols = np.mgrid[0:h, 0:w]
    rgb = np.stack([cols * 255 // (w - 1), rows * 255 // (h - 1), np.full_like(rows, 77)], -1).astype(np.uint8)
    depth_mm = np.rint(900 + 0.6 * cols + 0.4 * rows).astype(np.uint16)
    depth_mm[300:340, 200:260] = 0
    T = np.eye(4)
    T[:3, :3] = random_rotation(np.random.default_rng(5))
    T[:3, 3] = [0.4, -0.2, 1.3]
    color_msg = numpy_to_image(rgb, "bgr8", 1.0, "camera_color_optical_frame")
    depth_msg = numpy_to_image(depth_mm, "16UC1", 1.0, "camera_color_optical_frame")
    info = intrinsics_to_camera_info(K, h, w, 1.0, "camera_color_optical_frame")
    return color_msg, depth_msg, info, T, rgb, depth_mm


def test_realsense_640x480_resized_to_128_keeps_geometry():
    color_msg, depth_msg, info, T, rgb_full, depth_mm = realsense_frame()
    K, (h, w) = camera_info_to_intrinsics(info)
    rgb = image_to_numpy(wire(color_msg), kind="color")
    depth = image_to_numpy(wire(depth_msg), kind="depth")
    np.testing.assert_array_equal(rgb, rgb_full)  # bgr8 came back as RGB
    rgb_r, depth_r, K_r = resize_to(rgb, depth, K, 128)
    assert rgb_r.shape == (128, 128, 3) and rgb_r.dtype == np.uint8
    assert depth_r.shape == (128, 128) and depth_r.dtype == np.float32

    # (1) K_r is exact: the ray through output pixel (i, j) hits the full image at the centre of
    # the block it came from, ((i + 0.5) * s - 0.5 + y0, (j + 0.5) * s - 0.5 + x0), s = 480/128.
    s, x0, y0 = 480 / 128, 80, 0
    points = depth_to_points(depth_r, K_r, T)
    valid = ~np.isnan(points).any(-1)
    back = world_to_pixel(points[valid].astype(np.float64), K, T)
    ii, jj = np.nonzero(valid)
    np.testing.assert_allclose(back[:, 0], (ii + 0.5) * s - 0.5 + y0, atol=2e-3)
    np.testing.assert_allclose(back[:, 1], (jj + 0.5) * s - 0.5 + x0, atol=2e-3)

    # (2) Scene content: world points seen in the full frame project (with K_r) onto output
    # pixels with the same colour, depth and world position.
    rng = np.random.default_rng(7)
    rows = rng.integers(10, 470, 200)
    cols = rng.integers(x0 + 10, x0 + 470, 200)
    ok = depth_mm[rows, cols] > 0
    rows, cols = rows[ok], cols[ok]
    world_full = depth_to_points(depth, K, T)[rows, cols]
    pix = np.rint(world_to_pixel(world_full.astype(np.float64), K_r, T)).astype(int)
    assert (pix >= 0).all() and (pix < 128).all()
    r, c = pix[:, 0], pix[:, 1]
    # within one output pixel (3.75 source pixels) of the ramps / plane
    assert np.abs(rgb_r[r, c, 0].astype(int) - rgb_full[rows, cols, 0]).max() <= 4
    assert np.abs(rgb_r[r, c, 1].astype(int) - rgb_full[rows, cols, 1]).max() <= 4
    assert (rgb_r[r, c, 2] == 77).all()
    z_out, z_in = depth_r[r, c], depth[rows, cols]
    near = z_out > 0  # not next to the no-return patch
    assert np.abs(z_out[near] - z_in[near]).max() <= 0.004
    dist = np.linalg.norm(points[r, c] - world_full, axis=-1)
    assert np.nanmax(dist[near]) <= 0.015  # about one output pixel at ~1.2 m

    # (3) No-return pixels stay invalid (NaN), never blended into neighbours.
    # the patch: rows 300-340, cols 200-260 (120-180 after the crop) -> output rows 80-90, cols 32-48
    assert np.isnan(points[81:90, 33:47]).all()
    assert np.isin(depth_r, depth).all()  # every output depth is some input depth: no blending


def test_resize_crops_tall_images_and_keeps_identity():
    rgb = RNG.integers(0, 256, (100, 60, 3), dtype=np.uint8)
    depth = RNG.uniform(0.5, 1, (100, 60)).astype(np.float32)
    K = np.array([[80.0, 0, 29.5], [0, 80.0, 49.5], [0, 0, 1]])
    rgb_r, depth_r, K_r = resize_to(rgb, depth, K, (30, 60))  # wide target: crop rows 35..65
    assert rgb_r.shape == (30, 60, 3) and depth_r.shape == (30, 60)
    np.testing.assert_array_equal(depth_r, depth[35:65])
    np.testing.assert_allclose(K_r, [[80.0, 0, 29.5], [0, 80.0, 14.5], [0, 0, 1]])
    same = resize_to(rgb, depth, K, (100, 60))
    assert same[0] is rgb and same[1] is depth
    np.testing.assert_array_equal(same[2], K)


def test_resize_rejects_unaligned_pairs():
    with pytest.raises(ValueError, match="colour 64x48 and depth 32x24 sizes differ"):
        resize_to(np.zeros((48, 64, 3), np.uint8), np.zeros((24, 32), np.float32), np.eye(3), 16)
