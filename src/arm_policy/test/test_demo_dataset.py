"""Specification of demo episodes -> ARM transitions (arm_policy.demo_dataset)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import pytest

from arm_perception.bag_format import BagWarning, Episode
from arm_perception.bag_reader import read_episode
from arm_perception.bag_writer import write_episode
from arm_perception.camera import intrinsics_from_fovy, world_to_pixel
from arm_policy.demo_dataset import (
    LOW_DIM_SIZE,
    DemoWarning,
    Transition,
    action_bounds,
    canonical_quaternion,
    episode_keyframes,
    episode_transitions,
    hold_out_episodes,
    load_demos,
    relative_xyz_range,
    low_dim_state,
    target_pixel,
    time_feature,
    transition_starts,
)

H, W = 24, 32
TABLE_Z = 0.5
CAM_HEIGHT = 2.0
K = intrinsics_from_fovy(60.0, H, W)
# camera 2 m above the origin looking straight down: optical x = world x, y = -world y, z = -world z
E = np.eye(4)
E[:3, :3] = np.diag([1.0, -1.0, -1.0])
E[:3, 3] = [0.0, 0.0, CAM_HEIGHT]
DEPTH = CAM_HEIGHT - TABLE_Z


def on_table(row: float, col: float) -> np.ndarray:
    """The table point seen at pixel (row, col)."""
    return np.array([(col - K[0, 2]) * DEPTH / K[0, 0], -(row - K[1, 2]) * DEPTH / K[1, 1], TABLE_Z])


# Synthetic demo: move, stop at frame 10; move, stop and close the gripper at 20; move until 29.
SPEEDS = [0.5] * 8 + [0.06, 0.02, 0.0, 0.03, 0.07] + [0.5] * 5 + [0.05, 0.01, 0.0, 0.0, 0.0, 0.04] + [0.5] * 6
T = len(SPEEDS)
KEYFRAMES = [10, 20, 29]
KEY_PIXELS = {10: (5, 7), 20: (18, 25), 29: (12, 16)}
Q_W_NEGATIVE = np.array([0.1, 0.2, 0.3, -0.9]) / np.linalg.norm([0.1, 0.2, 0.3, -0.9])
Q_TOP_DOWN = np.array([-1.0, 0.0, 0.0, 1e-4])  # w ~ 0: every top-down grasp


def synthetic_episode(path="synthetic", keys=None) -> Episode:
    keys = dict(KEY_PIXELS if keys is None else keys)
    start = on_table(H / 2, W / 2) + [0.0, 0.0, 0.3]
    anchors = {0: start, **{k: on_table(*px) for k, px in keys.items()}}
    frames = sorted(anchors)
    pos = np.stack([np.array([np.interp(t, frames, [anchors[f][i] for f in frames]) for i in range(3)])
                    for t in range(T)])
    quat = np.tile(Q_W_NEGATIVE, (T, 1))
    quat[15:] = Q_TOP_DOWN
    gripper_open = np.ones(T, dtype=bool)
    gripper_open[20:] = False
    vel = np.asarray(SPEEDS)[:, None] * np.linspace(-1.0, 1.0, 7)
    reward = np.zeros(T, np.float32)
    reward[-1] = 1.0
    rng = np.random.default_rng(0)
    return Episode(
        path=Path(path),
        stamps=np.arange(T) * 0.05,
        front_rgb=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        front_depth=np.full((T, H, W), DEPTH, np.float32),
        joint_positions=np.cumsum(vel, axis=0) * 0.05,
        joint_velocities=vel,
        gripper_joint_positions=np.where(gripper_open[:, None], 0.04, 0.02) * np.ones((T, 2)),
        gripper_open=gripper_open,
        gripper_pose=np.concatenate([pos, quat], axis=1),
        reward=reward,
        success=reward > 0,
        camera_intrinsics=K.copy(),
        camera_extrinsics=E.copy(),
    )


def write_bag(path: Path, ep: Episode) -> Path:
    frames = []
    for t in range(len(ep)):
        obs = SimpleNamespace(
            front_rgb=ep.front_rgb[t], front_depth=ep.front_depth[t],
            camera_intrinsics=ep.camera_intrinsics, camera_extrinsics=ep.camera_extrinsics,
            joint_positions=ep.joint_positions[t], joint_velocities=ep.joint_velocities[t],
            gripper_open=bool(ep.gripper_open[t]), gripper_pose=ep.gripper_pose[t],
            gripper_joint_positions=ep.gripper_joint_positions[t],
        )
        frames.append((float(ep.stamps[t]) + 1.0, obs, float(ep.reward[t]), bool(ep.success[t])))
    return write_episode(path, frames)


@pytest.fixture(scope="module")
def episode() -> Episode:
    return synthetic_episode()


# --------------------------------------------------------------------------- transitions


def test_synthetic_episode_keyframes(episode):
    assert episode_keyframes(episode) == KEYFRAMES


def test_keyframe_chain_and_augmentation_starts(episode):
    """Each augmented frame t gives t -> next keyframe, then the rest of the keyframe chain from
    that keyframe on (as the authors' code), flagged augmented."""
    trs = episode_transitions(episode, augmentation_every=4)
    got = [(t.index, t.next_index, t.augmented) for t in trs]
    chain = [(0, 10, False), (10, 20, False), (20, 29, False)]
    rest = {10: [(10, 20, True), (20, 29, True)], 20: [(20, 29, True)], 29: []}
    aug = [(4, 10, True), *rest[10], (8, 10, True), *rest[10],
           (12, 20, True), *rest[20], (16, 20, True), *rest[20],
           (24, 29, True), *rest[29], (28, 29, True), *rest[29]]
    assert got == chain + aug


def test_augmented_chain_copies_equal_the_chain_and_share_its_observations(episode):
    trs = episode_transitions(episode, augmentation_every=4)
    chain = {t.index: t for t in trs[:3]}
    copies = [t for t in trs[3:] if t.index in chain]
    assert len(copies) == 6 and all(t.augmented for t in copies)
    for c in copies:
        original = chain[c.index]
        for f in dataclasses.fields(Transition):
            if f.name == "augmented":
                continue
            a, b = getattr(c, f.name), getattr(original, f.name)
            if isinstance(a, np.ndarray):
                assert a is b, f.name  # the same arrays, not copies of them
            else:
                assert a == b, f.name


def remaining_chain(t: int) -> int:
    """Transitions an augmented frame t adds: t -> its next keyframe, then one per later keyframe
    (k_i -> k_i+1 ... -> last frame): as many as there are keyframes after t."""
    return sum(k > t for k in KEYFRAMES)


@pytest.mark.parametrize(
    "every, expected",
    [(0, []), (10, []), (4, [4, 8, 12, 16, 24, 28]), (5, [5, 15, 25]), (1, sorted(set(range(29)) - {0, 10, 20}))],
)
def test_augmentation_counts(episode, every, expected):
    chain, aug = transition_starts(KEYFRAMES, T, every)
    assert chain == [0, 10, 20] and aug == expected
    trs = episode_transitions(episode, augmentation_every=every)
    n_aug = sum(remaining_chain(t) for t in expected)
    # by hand: M=4: 4, 8 -> 3 each; 12, 16 -> 2 each; 24, 28 -> 1 each. M=5: 3 + 2 + 1.
    # M=1: frames 1-9 -> 3 each, 11-19 -> 2 each, 21-28 -> 1 each.
    assert n_aug == {0: 0, 10: 0, 4: 12, 5: 6, 1: 9 * 3 + 9 * 2 + 8 * 1}[every]
    assert len(trs) == 3 + n_aug
    assert sum(t.augmented for t in trs) == n_aug
    assert [t.index for t in trs if t.augmented and t.index not in chain] == expected


def test_next_pixel_is_the_decision_at_the_next_keyframe(episode):
    """next_pixel: the keyframe after the next one, projected into the next keyframe's image (the
    pixel the demo's next transition attends to); a terminal transition repeats its own pixel."""
    trs = episode_transitions(episode, augmentation_every=4)
    chain = {t.index: t for t in trs if not t.augmented}
    after = {10: 20, 20: 29}
    for tr in trs:
        assert tr.next_pixel.shape == (2,) and tr.next_pixel.dtype == np.int64
        assert not tr.timeout  # a demo runs to its end
        if tr.terminal:
            assert tr.next_index == 29
            np.testing.assert_array_equal(tr.next_pixel, tr.pixel)
        else:
            assert tuple(tr.next_pixel) == KEY_PIXELS[after[tr.next_index]]
            np.testing.assert_array_equal(tr.next_pixel, chain[tr.next_index].pixel)
            assert tuple(tr.next_pixel) != tuple(tr.pixel)  # not the current decision
        # and it round-trips: the next observation's point there is that keyframe's TCP
        k = after.get(tr.next_index, tr.next_index)
        np.testing.assert_allclose(tr.next_point_cloud[tuple(tr.next_pixel)], episode.gripper_pose[k, :3],
                                   atol=1e-5)


def test_target_pixel_is_the_next_keyframe_projected_and_round_trips_through_the_point_cloud(episode):
    for tr in episode_transitions(episode, augmentation_every=4):
        k = tr.next_index
        assert tuple(tr.pixel) == KEY_PIXELS[k]
        proj = world_to_pixel(episode.gripper_pose[k, :3][None], K, E)[0]
        np.testing.assert_allclose(proj, KEY_PIXELS[k], atol=1e-9)
        # pixel -> the frame's organised point cloud -> world = the keyframe's TCP position
        np.testing.assert_allclose(tr.point_cloud[tuple(tr.pixel)], episode.gripper_pose[k, :3], atol=1e-5)


def test_target_pixel_is_clipped_into_the_image():
    far = {10: (-40.0, 7), 20: (18, 500.0), 29: (12, 16)}  # off the top and off the right edge
    ep = synthetic_episode(keys=far)
    trs = {t.index: t for t in episode_transitions(ep, augmentation_every=0)}
    assert tuple(trs[0].pixel) == (0, 7)
    assert tuple(trs[10].pixel) == (18, W - 1)
    assert target_pixel(on_table(3.4, 5.6), K, E, (H, W)).tolist() == [3, 6]
    assert target_pixel(np.stack([on_table(3.4, 5.6), on_table(99, -9)]), K, E, (H, W)).tolist() == [[3, 6], [H - 1, 0]]
    with pytest.raises(ValueError, match="behind the camera"):
        target_pixel([0.0, 0.0, CAM_HEIGHT + 1.0], K, E, (H, W))


def test_action_reward_terminal(episode):
    trs = {t.index: t for t in episode_transitions(episode, augmentation_every=4)}
    a = trs[0].action  # -> keyframe 10: quaternion with w < 0 comes back with w >= 0, gripper open
    assert a.dtype == np.float32 and a.shape == (8,)
    np.testing.assert_allclose(a[:3], episode.gripper_pose[10, :3], atol=1e-6)
    np.testing.assert_allclose(a[3:7], -Q_W_NEGATIVE, atol=1e-6)
    assert a[7] == 1.0
    a = trs[10].action  # -> keyframe 20: the gripper closes there; top-down quaternion, x >= 0
    np.testing.assert_allclose(a[3:7], [1.0, 0.0, 0.0, -1e-4], atol=1e-6)
    assert a[7] == 0.0
    for t, tr in trs.items():
        assert tr.reward == (1.0 if tr.next_index == 29 else 0.0)
        assert tr.terminal == (tr.next_index == 29)
        assert tr.action[7] == float(episode.gripper_open[tr.next_index])


def test_observations_and_low_dim_state(episode):
    trs = episode_transitions(episode, augmentation_every=4)
    by_index = {t.index: t for t in trs}
    for tr in trs:
        assert tr.rgb.dtype == np.uint8 and tr.rgb.shape == (H, W, 3)
        np.testing.assert_array_equal(tr.rgb, episode.front_rgb[tr.index])
        assert tr.point_cloud.dtype == np.float32 and tr.point_cloud.shape == (H, W, 3)
        assert tr.low_dim.dtype == np.float32 and tr.low_dim.shape == (LOW_DIM_SIZE,)
        assert tr.episode == "synthetic"
        # steps taken so far = keyframes at or before the frame
        steps = sum(k <= tr.index for k in KEYFRAMES)
        assert tr.low_dim[-1] == pytest.approx(1.0 - 2.0 * steps / 9)
        assert tr.next_low_dim[-1] == pytest.approx(1.0 - 2.0 * sum(k <= tr.next_index for k in KEYFRAMES) / 9)
        np.testing.assert_array_equal(tr.next_rgb, episode.front_rgb[tr.next_index])
    # the next observation of a chain transition is the observation the next one starts from
    assert by_index[0].next_rgb is by_index[10].rgb and by_index[0].next_low_dim is by_index[10].low_dim
    assert by_index[4].next_point_cloud is by_index[10].point_cloud
    # layout: [open, xyz, quat, fingers, time]
    ld = by_index[20].low_dim
    assert ld[0] == 0.0
    np.testing.assert_allclose(ld[1:4], episode.gripper_pose[20, :3], atol=1e-6)
    np.testing.assert_allclose(ld[4:8], [1.0, 0.0, 0.0, -1e-4], atol=1e-6)
    np.testing.assert_allclose(ld[8:10], [0.02, 0.02])


def test_low_dim_state_helpers():
    x = low_dim_state(True, [1, 2, 3, 0, 0, 0, -1], [0.04, 0.03], 0)
    np.testing.assert_allclose(x, [1, 1, 2, 3, 0, 0, 0, 1, 0.04, 0.03, 1.0])
    assert time_feature(9, 10) == -1.0 and time_feature(20, 10) == -1.0
    assert time_feature(3, 4) == pytest.approx(-1.0) and time_feature(1, 3) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        time_feature(0, 1)


def test_canonical_quaternion():
    np.testing.assert_allclose(canonical_quaternion([0, 0, 0, -2]), [0, 0, 0, 1])
    np.testing.assert_allclose(canonical_quaternion([1, 2, 2, -4]), [-0.2, -0.4, -0.4, 0.8])
    # on the w ~ 0 circle the sign follows x (then y, z), so top-down grasps do not flip on noise
    for w in (1e-4, -1e-4, 0.0):
        assert canonical_quaternion([-1, 0, 0, w])[0] == pytest.approx(1.0)
    assert canonical_quaternion([0, -1, 0, 0])[1] == 1.0
    np.testing.assert_allclose(canonical_quaternion([-1, 0, 0, 1e-4], tie_eps=0), [-1, 0, 0, 1e-4])
    batch = canonical_quaternion(np.array([[0, 0, 0, -1], [-0.8, 0.6, 0, 0.001]]))
    np.testing.assert_allclose(batch, [[0, 0, 0, 1], [0.8, -0.6, 0, -0.001]], atol=1e-6)
    with pytest.raises(ValueError):
        canonical_quaternion([0, 0, 0, 0])


def test_action_bounds_widen_by_a_fraction_of_the_range():
    def tr(xyz):
        return SimpleNamespace(action=np.array([*xyz, 0, 0, 0, 1, 1], np.float32))

    b = action_bounds([tr([0.0, 1.0, 0.5]), tr([1.0, 3.0, 0.5]), tr([0.5, 2.0, 0.5])], widen=0.2)
    np.testing.assert_allclose(b, [[-0.2, 0.6, 0.49], [1.2, 3.4, 0.51]], atol=1e-6)  # flat z: min margin
    b = action_bounds([tr([0.0, 0.0, 0.0]), tr([1.0, 1.0, 1.0])], widen=0.5)
    np.testing.assert_allclose(b, [[-0.5] * 3, [1.5] * 3])
    with pytest.raises(ValueError):
        action_bounds([])


def test_bad_episodes_raise():
    ep = synthetic_episode()
    with pytest.raises(ValueError, match="keyframes"):
        episode_transitions(ep, keyframes=[10, 20])
    ep.gripper_pose[10, :3] = [0.0, 0.0, CAM_HEIGHT + 0.5]  # behind the camera
    with pytest.raises(ValueError, match="behind the camera"):
        episode_transitions(ep)


# --------------------------------------------------------------------------- bags on disk


def test_load_demos_skips_corrupt_and_unsuccessful_bags_with_warnings(tmp_path):
    root = tmp_path / "demos"
    write_bag(root / "task" / "seed_000000", synthetic_episode())
    write_bag(root / "task" / "seed_000001", synthetic_episode())
    bad = write_bag(root / "task" / "seed_000002", synthetic_episode())
    mcap = bad / "seed_000002.mcap"
    mcap.write_bytes(mcap.read_bytes()[:2000])
    failed = synthetic_episode()
    failed.reward[:] = 0.0
    failed.success[:] = False
    write_bag(root / "task" / "seed_000003", failed)

    with pytest.warns(UserWarning) as record:
        trs = load_demos(root, "task", augmentation_every=4)

    messages = [(w.category, str(w.message)) for w in record]
    assert any(c is BagWarning and "seed_000002.mcap" in m for c, m in messages)
    assert any(c is DemoWarning and "seed_000003" in m for c, m in messages)
    # per episode: 3 chain transitions + 12 augmented at M=4 (frames 4 and 8 add 3 each, 12 and
    # 16 add 2 each, 24 and 28 add 1 each)
    assert len(trs) == 2 * (3 + 12)
    assert sum(t.augmented for t in trs) == 2 * 12
    assert sorted({Path(t.episode).name for t in trs}) == ["seed_000000", "seed_000001"]
    ep = read_episode(root / "task" / "seed_000000")
    assert episode_keyframes(ep) == KEYFRAMES
    assert [tuple(t.pixel) for t in trs[:3]] == [KEY_PIXELS[10], KEY_PIXELS[20], KEY_PIXELS[29]]
    # unsuccessful demos are kept when asked
    with pytest.warns(BagWarning):
        assert len(load_demos(root, "task", augmentation_every=0, require_success=False)) == 3 * 3
    with pytest.raises(FileNotFoundError):
        load_demos(root, "no_such_task")


def test_real_pick_up_cup_demo(tmp_path):
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32)).get_task("pick_up_cup")
    try:
        frames, ok = task.run_expert(0)
    finally:
        task.close()
    assert ok
    write_episode(tmp_path / "pick_up_cup" / "seed_000000",
                  [(obs.misc["stamp"], obs, r, s) for obs, r, s in frames])

    ep = read_episode(tmp_path / "pick_up_cup" / "seed_000000")
    kfs = episode_keyframes(ep)
    grasp = int(np.flatnonzero(~ep.gripper_open)[0])  # the frame where the gripper closes
    assert grasp in kfs and kfs[-1] == len(ep) - 1
    assert len(kfs) == 3  # the expert's three waypoints: above the cup, grasp (+close), lift

    trs = load_demos(tmp_path, "pick_up_cup")
    chain = [t for t in trs if not t.augmented]
    assert [(t.index, t.next_index) for t in chain] == list(zip([0] + kfs[:-1], kfs))
    to_grasp = next(t for t in chain if t.next_index == grasp)
    assert to_grasp.action[7] == 0.0 and not to_grasp.terminal
    assert chain[-1].terminal and chain[-1].reward == 1.0
    for t in trs:
        assert isinstance(t, Transition)
        assert np.all((0 < t.pixel) & (t.pixel < 31))  # the TCP is in view, not clipped
        assert np.linalg.norm(t.action[3:7]) == pytest.approx(1.0) and t.action[6] > -0.05

    # the pre-grasp keyframe hangs 12 cm above the cup: its pixel's point is on the table behind,
    # out of a 10 cm reach; the measured reach covers every demo action from its anchor
    reach = relative_xyz_range(trs, minimum=0.1)
    assert reach.shape == (3,) and np.all(reach >= 0.1) and reach.max() > 0.15
    for t in trs:
        anchor = t.point_cloud[t.pixel[0], t.pixel[1]]
        if np.all(np.isfinite(anchor)):
            assert np.all(np.abs(t.action[:3] - anchor) <= reach)

    # the camera is where the simulator put it, and every keyframe lies on (within a pixel's width
    # of) its pixel's ray: across the ray the reach stays at its least, along it covers the rest
    from arm_policy.camera_ray import camera_centre, ray_frame
    from arm_sim.sim import FRONT_CAMERA_POS

    camera = camera_centre(t.point_cloud for t in trs)
    np.testing.assert_allclose(camera, FRONT_CAMERA_POS, atol=1e-3)
    ray_reach = relative_xyz_range(trs, minimum=0.1, camera=camera, lateral_minimum=0.03)
    np.testing.assert_allclose(ray_reach[:2], 0.03)
    assert ray_reach[2] > reach.min()
    chain_anchors = np.stack([t.point_cloud[t.pixel[0], t.pixel[1]] for t in chain])
    frames = ray_frame(torch.as_tensor(chain_anchors, dtype=torch.float64), torch.as_tensor(camera)).numpy()
    offsets = np.einsum("nij,nj->ni", frames, np.stack([t.action[:3] for t in chain]) - chain_anchors)
    assert np.abs(offsets[:, :2]).max() < 0.03  # a pixel is ~3 cm of the scene at 32 x 32


def test_relative_reach_is_the_largest_demo_offset_widened_and_never_below_the_minimum():
    cloud = np.zeros((4, 4, 3), np.float32)
    cloud[0, 0] = np.nan  # no depth: left out

    def tr(xyz, pixel=(1, 1)):
        return SimpleNamespace(action=np.array([*xyz, 0, 0, 0, 1, 1], np.float32), point_cloud=cloud,
                               pixel=np.array(pixel))

    np.testing.assert_allclose(relative_xyz_range([tr([0.3, -0.05, 0.0]), tr([0.0, 0.0, 0.02]),
                                                   tr([9.0, 9.0, 9.0], pixel=(0, 0))], minimum=0.1),
                               [0.36, 0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(relative_xyz_range([], minimum=0.1), [0.1] * 3)


def test_hold_out_episodes_keeps_the_last_episodes_apart_and_leaves_augmented_copies_out():
    t = lambda episode, augmented=False: SimpleNamespace(episode=episode, augmented=augmented)
    transitions = [t("b"), t("a"), t("c"), t("a", augmented=True), t("c"), t("b", augmented=True)]
    fit, held_out = hold_out_episodes(transitions, 1)
    assert [x.episode for x in fit] == ["b", "a"] and [x.episode for x in held_out] == ["c", "c"]
    with pytest.raises(ValueError, match="3 demo episodes; need more than the 3 held out"):
        hold_out_episodes(transitions, 3)
