"""Camera model: projection round trips, and back-projection against simulator ground truth."""
import numpy as np
import pytest

from arm_perception.camera import depth_to_points, intrinsics_from_fovy, world_to_pixel


def _camera():
    K = intrinsics_from_fovy(50.0, 64, 64)
    T = np.eye(4)
    # optical frame looking along world -x from x=1 (z forward = -x, x right = +y, y down = -z)
    T[:3, :3] = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float)
    T[:3, 3] = [1.0, 0.0, 0.5]
    return K, T


def test_pixel_to_world_to_pixel_round_trip():
    K, T = _camera()
    depth = np.random.default_rng(0).uniform(0.5, 2.0, size=(64, 64)).astype(np.float32)
    points = depth_to_points(depth, K, T)
    pixels = world_to_pixel(points.reshape(-1, 3), K, T)
    rows, cols = np.mgrid[0:64, 0:64]
    np.testing.assert_allclose(pixels[:, 0], rows.ravel(), atol=1e-3)
    np.testing.assert_allclose(pixels[:, 1], cols.ravel(), atol=1e-3)


def test_optical_convention_x_right_y_down_z_forward():
    K, T = _camera()
    # a point straight ahead projects to the principal point; one above it has a smaller row
    ahead = np.array([[0.0, 0.0, 0.5]])
    above = np.array([[0.0, 0.0, 0.6]])
    right_in_image = np.array([[0.0, 0.1, 0.5]])  # camera x = world +y
    (r0, c0), (r1, _), (_, c2) = world_to_pixel(np.vstack([ahead, above, right_in_image]), K, T)
    assert (r0, c0) == pytest.approx((31.5, 31.5))
    assert r1 < r0 and c2 > c0


def test_invalid_depth_becomes_nan_and_points_behind_camera_do_not_project():
    K, T = _camera()
    depth = np.ones((4, 4), np.float32)
    depth[0, 0], depth[1, 1] = 0.0, np.inf
    pts = depth_to_points(depth, K, T)
    assert np.isnan(pts[0, 0]).all() and np.isnan(pts[1, 1]).all() and np.isfinite(pts[2, 2]).all()
    assert np.isnan(world_to_pixel(np.array([[2.0, 0.0, 0.5]]), K, T)).all()


def test_malformed_inputs_are_rejected_with_a_message():
    K, T = _camera()
    with pytest.raises(ValueError, match="intrinsics must be 3x3"):
        depth_to_points(np.ones((4, 4)), np.eye(4), T)
    with pytest.raises(ValueError, match=r"points must be \(N, 3\)"):
        world_to_pixel(np.ones((3,)), K, T)
    with pytest.raises(ValueError, match="depth must be"):
        depth_to_points(np.ones((4, 4, 1)), K, T)


def test_back_projected_pixel_lands_on_the_true_object_surface_in_the_simulator():
    from arm_sim.sim import TABLE_HEIGHT, PandaSim

    size = 0.03
    box = (f'<body name="box" pos="0.45 0.05 {TABLE_HEIGHT + size}">'
           f'<geom type="box" size="{size} {size} {size}" rgba="1 0 0 1"/></body>')
    sim = PandaSim(box, image_size=(128, 128))
    sim.reset_robot()
    obs = sim.observe()
    sim.close()
    centre = np.array([0.45, 0.05, TABLE_HEIGHT + size])
    # the top face centre is visible from the front camera, which looks down on the table
    top = centre + [0, 0, size]
    (row, col), = world_to_pixel(top[None], obs.camera_intrinsics, obs.camera_extrinsics)
    point = obs.front_point_cloud[int(round(row)), int(round(col))]
    # the pixel's point must lie on the box surface: on the top face, within the face
    assert abs(point[2] - top[2]) < 0.005
    assert np.all(np.abs(point[:2] - centre[:2]) < size + 0.005)
    # and every red pixel back-projects onto the box surface within 5 mm
    red = (obs.front_rgb[..., 0] > 150) & (obs.front_rgb[..., 1] < 80)
    pts = obs.front_point_cloud[red]
    assert len(pts) > 20
    outside = np.max(np.abs(pts - centre), axis=1) - size  # distance outside the cube (L-inf)
    assert np.all(outside < 0.005) and np.all(outside > -0.005)
