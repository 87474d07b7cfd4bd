"""The eight tasks: names, seeded resets, success detectors, and the experts that solve them."""
import numpy as np
import pytest

from arm_sim.environment import Environment, ExpertNoise, InvalidActionError, grasp_noised, place_noised
from arm_sim.tasks import TASK_NAMES, UnknownTaskError, make_task

RLBENCH_NAMES = {"reach_target", "pick_up_cup", "take_umbrella_out_of_umbrella_stand", "take_lid_off_saucepan",
                 "pick_and_lift", "phone_on_base", "stack_wine", "put_rubbish_in_bin"}


@pytest.fixture(scope="module")
def env():
    return Environment(image_size=(32, 32))


def test_the_eight_tasks_carry_rlbench_names():
    assert set(TASK_NAMES) == RLBENCH_NAMES


def test_an_unknown_task_name_lists_the_valid_ones():
    with pytest.raises(UnknownTaskError, match="valid tasks: reach_target"):
        make_task("reach_targte")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_same_seed_same_scene_other_seed_other_scene(env, name):
    task = env.get_task(name)
    _, a = task.reset(seed=3)
    qa = task.sim.data.qpos.copy()
    _, b = task.reset(seed=3)
    qb = task.sim.data.qpos.copy()
    _, c = task.reset(seed=4)
    qc = task.sim.data.qpos.copy()
    mocap_c = task.sim.data.mocap_pos.copy()
    task.reset(seed=3)
    np.testing.assert_array_equal(qa, qb)
    np.testing.assert_array_equal(a.front_rgb, b.front_rgb)
    assert not (np.allclose(qa, qc) and np.allclose(task.sim.data.mocap_pos, mocap_c))
    task.close()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_success_detector_false_at_reset_true_after_the_expert(env, name):
    task = env.get_task(name)
    task.reset(seed=1)
    assert not task.success(), "a fresh scene must not count as solved"
    frames, ok = task.run_expert(seed=1)
    assert ok, f"{name}: expert failed on seed 1"
    assert frames[-1][2] or task.success()
    rewards = [r for _, r, _ in frames]
    assert rewards[0] == 0.0 and max(rewards) == 1.0, "sparse reward: 0 until success, then 1"
    task.close()


def test_place_noise_moves_only_the_carrys_end_and_the_expert_still_places_from_there(env):
    """Demos for a learner whose carry ends a centimetre or two off: the pose before each
    release is moved in x and y (seeded by the scene), the release stays on the expert's."""
    task = env.get_task("stack_wine")
    task.reset(seed=5)
    exact = task.task.expert(task.sim)
    moved = place_noised(exact, 0.015, seed=5)
    release = next(k for k in range(1, len(exact)) if exact[k].gripper > 0.5 and exact[k - 1].gripper <= 0.5)
    shift = moved[release - 1].pose - exact[release - 1].pose
    assert 0 < np.linalg.norm(shift[:2]) <= np.hypot(0.03, 0.03) and np.all(shift[2:] == 0)
    for k in set(range(len(exact))) - {release - 1}:
        np.testing.assert_array_equal(moved[k].pose, exact[k].pose)
    np.testing.assert_array_equal(place_noised(exact, 0.015, seed=5)[release - 1].pose, moved[release - 1].pose)
    assert not np.array_equal(place_noised(exact, 0.015, seed=6)[release - 1].pose, moved[release - 1].pose)
    assert place_noised(exact, 0.0, seed=5) is exact
    with pytest.raises(ValueError, match="place noise"):
        place_noised(exact, float("nan"), seed=5)
    ok = [task.run_expert(seed, ExpertNoise(place_m=0.015))[1] for seed in range(4)]
    assert sum(ok) >= 3, ok
    task.close()


def test_reach_target_fails_when_the_gripper_goes_elsewhere(env):
    task = env.get_task("reach_target")
    _, obs = task.reset(seed=2)
    target = task.sim.body_pos("target")
    away = np.r_[target[0], -np.sign(target[1]) * 0.25 if abs(target[1]) > 0.05 else 0.25, target[2], obs.gripper_pose[3:], 1.0]
    obs, reward, terminate = task.step(away)
    assert reward == 0.0 and not terminate
    task.close()


def test_an_unreachable_action_raises_invalid_action_with_its_outcome(env):
    task = env.get_task("reach_target")
    _, obs = task.reset(seed=0)
    with pytest.raises(InvalidActionError) as e:
        task.step(np.r_[2.5, 0.0, 1.0, obs.gripper_pose[3:], 1.0])
    assert e.value.outcome == "unreachable"
    with pytest.raises(InvalidActionError) as e:
        task.step(np.r_[0.4, 0.0, np.nan, obs.gripper_pose[3:], 1.0])
    assert e.value.outcome == "invalid" and "NaN" in str(e.value)
    # a pose inside the table collides
    with pytest.raises(InvalidActionError) as e:
        task.step(np.r_[0.45, 0.0, 0.70, obs.gripper_pose[3:], 1.0])
    assert e.value.outcome in ("collision", "unreachable")
    # and the next valid action still works
    obs, _, _ = task.step(np.r_[0.45, 0.1, 1.0, obs.gripper_pose[3:], 1.0])
    assert np.linalg.norm(obs.gripper_pose[:3] - [0.45, 0.1, 1.0]) < 0.01
    task.close()


def test_without_collision_checking_a_pose_into_the_table_stops_on_it_as_the_authors_rlbench_did():
    """RLBench's ABS_EE_POSE_PLAN_WORLD_FRAME (what ARM trained with) plans with
    ignore_collisions=True: fingertips sent 1 cm into the table stop on it, the gripper still
    acts, and the episode goes on. Collision checking (the default) refuses the same pose."""
    pose_into_table = lambda obs, z: np.r_[0.45, 0.05, z, obs.gripper_pose[3:], 0.0]  # noqa: E731
    checked = Environment(image_size=(32, 32)).get_task("reach_target")
    _, obs = checked.reset(seed=0)
    with pytest.raises(InvalidActionError) as e:
        checked.step(pose_into_table(obs, 0.74))
    assert e.value.outcome in ("collision", "unreachable")
    checked.close()

    task = Environment(image_size=(32, 32), collision_checking=False).get_task("reach_target")
    _, obs = task.reset(seed=0)
    obs, reward, _ = task.step(pose_into_table(obs, 0.74))
    assert task.last_result.outcome == "timeout" and "position error" in task.last_result.message
    tcp = obs.gripper_pose[:3]
    assert np.linalg.norm(tcp[:2] - [0.45, 0.05]) < 0.01 and 0.74 < tcp[2] < 0.76, tcp  # on the table
    assert task.sim.gripper_target == 0.0  # the gripper command went out where the arm stopped
    obs, _, _ = task.step(np.r_[0.45, 0.1, 1.0, obs.gripper_pose[3:], 1.0])  # and the arm moves on
    assert np.linalg.norm(obs.gripper_pose[:3] - [0.45, 0.1, 1.0]) < 0.01
    with pytest.raises(InvalidActionError) as e:  # out of reach still ends the episode
        task.step(np.r_[2.5, 0.0, 1.0, obs.gripper_pose[3:], 1.0])
    assert e.value.outcome == "unreachable"
    task.close()


def test_observation_fields_match_rlbench_names_and_shapes(env):
    task = env.get_task("pick_up_cup")
    _, obs = task.reset(seed=0)
    assert obs.front_rgb.shape == (32, 32, 3) and obs.front_rgb.dtype == np.uint8
    assert obs.front_depth.shape == (32, 32) and obs.front_depth.dtype == np.float32
    assert obs.front_point_cloud.shape == (32, 32, 3)
    assert obs.camera_intrinsics.shape == (3, 3) and obs.camera_extrinsics.shape == (4, 4)
    assert obs.joint_positions.shape == (7,) and obs.joint_velocities.shape == (7,)
    assert obs.gripper_pose.shape == (7,) and obs.gripper_joint_positions.shape == (2,)
    assert obs.gripper_open is True
    assert abs(np.linalg.norm(obs.gripper_pose[3:]) - 1) < 1e-6
    task.close()


def test_gripper_open_is_measured_from_the_fingers_not_the_command(env):
    task = env.get_task("pick_up_cup")
    _, obs = task.reset(seed=0)
    task.sim.set_gripper(0.0)  # commanded shut, the fingers have not moved yet
    assert task.sim.observe().gripper_open is True
    task.sim.step(30)
    closed = task.sim.observe()
    assert closed.gripper_open is False and closed.gripper_joint_positions.max() < 0.01
    task.close()


def test_a_reset_reseeds_the_planners_random_ik_restarts_with_the_scene_seed(env):
    task = env.get_task("reach_target")
    task.motion.rng.normal(size=10)  # an earlier episode's restarts
    task.reset(seed=3)
    assert task.motion.rng.bit_generator.state == np.random.default_rng(3).bit_generator.state
    task.close()


def test_grasp_noise_moves_the_grasp_and_the_release_puts_the_object_not_the_hand_on_its_place(env):
    """Demos for a learner whose grasp is a centimetre off: the approach and the grasp move across
    the fingers by one seeded offset; the object then hangs that far off in the hand, and the
    release makes up for it."""
    task = env.get_task("stack_wine")
    task.reset(seed=5)
    exact = task.task.expert(task.sim)
    moved = grasp_noised(exact, 0.01, seed=5)
    closing = next(k for k, w in enumerate(exact) if w.gripper <= 0.5)
    offset = moved[0].pose - exact[0].pose
    assert 0 < np.linalg.norm(offset) <= 0.02 and np.all(offset[2:] == 0)
    from arm_control.transforms import ACROSS_FINGERS, quat_xyzw_to_mat

    across = quat_xyzw_to_mat(exact[closing].pose[3:])[:, ACROSS_FINGERS]
    assert abs(np.dot(offset[:3], across)) == pytest.approx(np.linalg.norm(offset))  # across the fingers only
    for k in range(len(exact)):
        np.testing.assert_allclose(moved[k].pose - exact[k].pose, offset if k <= closing else 0.0)
    assert grasp_noised(exact, 0.0, seed=5) is exact
    for wp in moved:  # the same grasp, released where the exact expert releases: the bottle lands off
        task.execute(wp.pose, wp.gripper)
    rack_to_bottle = task.sim.body_pos("wine_bottle")[:2] - task.sim.body_pos("wine_rack")[:2]
    assert np.linalg.norm(rack_to_bottle) == pytest.approx(np.linalg.norm(offset), abs=0.002)
    def grasp_offset(seed):
        task.reset(seed)
        plan = task.task.expert(task.sim)
        return np.linalg.norm(grasp_noised(plan, 0.01, seed)[closing].pose[:2] - plan[closing].pose[:2])

    seeds = [s for s in range(20) if grasp_offset(s) > 0.006][:3]  # grasps the correction has to make up for
    assert len(seeds) == 3
    for seed in seeds:
        frames, ok = task.run_expert(seed, ExpertNoise(grasp_m=0.01))
        assert ok, seed
        rack_to_bottle = task.sim.body_pos("wine_bottle")[:2] - task.sim.body_pos("wine_rack")[:2]
        assert np.linalg.norm(rack_to_bottle) < 0.004, (seed, rack_to_bottle)  # the exact expert's: < 1 mm
    task.close()


def test_expert_noise_is_range_checked_and_says_what_it_is():
    assert ExpertNoise(place_m=0.015).matches(ExpertNoise(place_m=0.015 + 1e-12))
    assert not ExpertNoise(place_m=0.015).matches(ExpertNoise(place_m=0.015, grasp_m=0.005))
    assert ExpertNoise(0.015, 0.005).text() == "place noise 1.5 cm, grasp noise 0.5 cm"
    for bad in (dict(place_m=-0.001), dict(grasp_m=0.06), dict(grasp_m=float("nan"))):
        with pytest.raises(ValueError, match="noise must be within 0..5 cm"):
            ExpertNoise(**bad)
