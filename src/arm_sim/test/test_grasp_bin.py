"""QT-Opt's grasp_bin: procedural objects and their held-out split, seeded scenes, friction grasps,
the scripted data policy's success per shape family, and refused actions."""
import numpy as np
import pytest

from arm_sim.bin_objects import (FAMILIES, HELD_OUT_SHAPE_IDS, N_SHAPES, TRAIN_SHAPE_IDS, family_of, is_held_out,
                                 local_points, make_shape)
from arm_sim.environment import Environment
from arm_sim.grasp_bin import (FLOOR_Z, HOME_HEIGHT, HOME_HEIGHT_LOW, MAX_DISPLACEMENT, MAX_OBJECTS, MAX_STEPS, MIN_OBJECTS,
                               SUCCESS_HEIGHT, GraspBinEnv, sample_scene)
from arm_sim.grasp_bin_scripted import scripted_grasp
from arm_sim.sim import mujoco
from arm_sim.tasks import TASK_NAMES, make_task

# The scripted policy (noise=1.0) must grasp at least this often per training shape family in the
# test below (6 seeded one-family scenes each). Measured over 250 mixed scenes: 85-96% per family.
MIN_SCRIPTED_SUCCESS = 4 / 6


@pytest.fixture(scope="module")
def env():
    e = GraspBinEnv(image_size=(32, 32))
    yield e
    e.close()


def test_registered_beside_the_eight_without_joining_them():
    e = Environment(image_size=(32, 32)).get_task("grasp_bin")
    assert isinstance(e, GraspBinEnv) and e.image_size == (32, 32)
    assert "grasp_bin" not in TASK_NAMES and len(TASK_NAMES) == 8
    with pytest.raises(ValueError, match="get_task"):
        make_task("grasp_bin")
    e.close()


def test_the_split_rule_is_disjoint_complete_and_covers_every_family():
    assert len(TRAIN_SHAPE_IDS) + len(HELD_OUT_SHAPE_IDS) == N_SHAPES
    assert not set(TRAIN_SHAPE_IDS) & set(HELD_OUT_SHAPE_IDS)
    assert all(is_held_out(i) for i in HELD_OUT_SHAPE_IDS) and not any(is_held_out(i) for i in TRAIN_SHAPE_IDS)
    for f in FAMILIES:
        assert sum(family_of(i) == f for i in HELD_OUT_SHAPE_IDS) == len(HELD_OUT_SHAPE_IDS) // len(FAMILIES)
    # held-out hulls are point sets never seen in training
    train_hulls = {make_shape(i).vertices for i in TRAIN_SHAPE_IDS if family_of(i) == "hull"}
    assert not train_hulls & {make_shape(i).vertices for i in HELD_OUT_SHAPE_IDS if family_of(i) == "hull"}


def test_shapes_are_seeded_fit_the_gripper_and_every_hull_compiles():
    assert make_shape(17) == make_shape(17) and make_shape(17) != make_shape(22)
    hulls = []
    for i in range(N_SHAPES):
        s = make_shape(i)
        extent = np.ptp(local_points(s), axis=0)
        assert extent.min() < 0.065, f"shape {i} ({s.family}) is too wide for the 8 cm gripper"
        if s.family == "hull":
            hulls.append(s)
    xml = '<mujoco><default><default class="world"/></default><asset>{}</asset><worldbody>{}</worldbody></mujoco>'.format(
        "".join(s.asset_xml("t") for s in hulls),
        "".join(f'<body><freejoint/>{s.geom_xml(f"g{s.shape_id}", "t")}</body>' for s in hulls))
    model = mujoco.MjModel.from_xml_string(xml)
    assert model.nmesh == len(hulls) == N_SHAPES // len(FAMILIES)
    assert np.all(model.body_mass[1:] > 0.002)  # grams to ~100 g, like the paper's household objects


def test_scenes_hold_5_to_10_objects_and_training_never_samples_held_out_shapes():
    counts, train_ids, held_ids = set(), set(), set()
    for seed in range(1500):
        train, held = sample_scene(seed, held_out=False), sample_scene(seed, held_out=True)
        for scene in (train, held):
            assert MIN_OBJECTS <= len(scene.shapes) <= MAX_OBJECTS
            assert len({s.shape_id for s in scene.shapes}) == len(scene.shapes)
            counts.add(len(scene.shapes))
        train_ids |= {s.shape_id for s in train.shapes}
        held_ids |= {s.shape_id for s in held.shapes}
        assert [s.shape_id for s in train.shapes] != [s.shape_id for s in held.shapes]
    assert counts == set(range(MIN_OBJECTS, MAX_OBJECTS + 1))
    assert not any(is_held_out(i) for i in train_ids), "a training scene drew a held-out shape"
    assert all(is_held_out(i) for i in held_ids)
    assert len(train_ids) > 0.9 * len(TRAIN_SHAPE_IDS) and held_ids == set(HELD_OUT_SHAPE_IDS)
    for f in FAMILIES:  # one-family scenes keep to the split too
        assert all(s.family == f and not s.held_out for s in sample_scene(3, family=f).shapes)


def test_a_tray_can_be_fixed_to_a_count_and_a_family_and_keeps_its_split():
    one_box = GraspBinEnv(image_size=(32, 32), objects=1, family="box")
    try:
        for held_out in (False, True):
            one_box.reset(seed=4, held_out=held_out)
            [obj] = one_box.objects
            assert obj.shape.family == "box" and obj.shape.held_out == held_out
    finally:
        one_box.close()
    assert sample_scene(7, objects=3).shapes == sample_scene(7, objects=3).shapes  # seeded
    assert len(sample_scene(7, objects=3).shapes) == 3
    for bad in (0, MAX_OBJECTS + 1, 2.5, True):
        with pytest.raises(ValueError, match="objects must be an integer"):
            GraspBinEnv(objects=bad)
    with pytest.raises(ValueError, match="unknown shape family 'sphere'"):
        GraspBinEnv(family="sphere")


def test_the_one_box_tray_is_a_single_box_right_below_the_grippers_start():
    env = GraspBinEnv(image_size=(32, 32), tray="one_box")
    try:
        for seed, held_out in ((0, False), (1, False), (0, True)):
            obs = env.reset(seed=seed, held_out=held_out)
            [obj] = env.objects
            assert obj.family == "box" and obj.shape.held_out == held_out
            offset = env.sim.data.xpos[obj.body_id][:2] - obs.gripper_position[:2]
            assert np.linalg.norm(offset) < 0.01, offset  # dropped at the centre, settled there
    finally:
        env.close()
    full = sample_scene(3)
    assert len(full.shapes) >= 5 and GraspBinEnv(tray="full").tray_objects is None
    anywhere = GraspBinEnv(tray="one_box", spread=1.0)  # a value beside the tray replaces the tray's
    assert (anywhere.tray_objects, anywhere.tray_family, anywhere.tray_spread) == (1, "box", 1.0)
    assert GraspBinEnv(tray="one_box_low", home_height=0.2).home_height == 0.2
    with pytest.raises(ValueError, match="unknown tray 'two_boxes'; choose from full, one_box, one_box_low"):
        GraspBinEnv(tray="two_boxes")


def test_the_low_tray_starts_the_gripper_two_steps_above_the_same_box():
    low, high = GraspBinEnv(image_size=(32, 32), tray="one_box_low"), GraspBinEnv(image_size=(32, 32), tray="one_box")
    try:
        obs = low.reset(seed=2)
        assert obs.gripper_height == pytest.approx(HOME_HEIGHT_LOW, abs=0.003) and obs.gripper_open
        assert low.objects[0].shape == (high.reset(seed=2), high.objects[0])[1].shape
        offset = low.sim.data.xpos[low.objects[0].body_id][:2] - obs.gripper_position[:2]
        assert np.linalg.norm(offset) < 0.01, offset
    finally:
        low.close(), high.close()
    for bad in (0.01, 0.5, float("nan"), "high"):
        with pytest.raises(ValueError, match="home_height must be in"):
            GraspBinEnv(home_height=bad)


def test_same_seed_same_episode_other_seed_other_scene(env):
    def run(seed, held_out=False):
        obs = env.reset(seed=seed, held_out=held_out)
        q0 = env.sim.data.qpos.copy()
        obs2, _, _ = env.step([0.02, -0.03, -0.05], 0.3, False, False)
        return q0, obs.rgb, obs2.rgb, env.sim.data.qpos.copy()

    a, b = run(3), run(3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c, d = run(4), run(3, held_out=True)
    assert a[0].shape != c[0].shape or not np.allclose(a[0], c[0])
    assert a[0].shape != d[0].shape or not np.allclose(a[0], d[0])


def test_observation_and_a_step_moves_the_gripper_by_the_clipped_displacement(env):
    obs = env.reset(seed=5)
    assert obs.rgb.shape == (32, 32, 3) and obs.rgb.dtype == np.uint8 and obs.rgb.std() > 5
    assert obs.gripper_open and obs.gripper_aperture > 0.95 and obs.step == 0
    assert obs.gripper_height == pytest.approx(HOME_HEIGHT, abs=0.003)
    assert obs.state().dtype == np.float32 and obs.state().tolist() == pytest.approx([1.0, HOME_HEIGHT], abs=0.003)
    assert len(env.objects) == len(env.objects_in_tray())  # everything settled inside the tray
    p0 = obs.gripper_position
    obs, done, success = env.step([1.0, 0.0, -0.03], 0.0, False, False)  # x clipped to MAX_DISPLACEMENT
    assert not done and not success and obs.step == 1
    np.testing.assert_allclose(obs.gripper_position - p0, [MAX_DISPLACEMENT, 0.0, -0.03], atol=0.003)
    obs, _, _ = env.step([0.0, 0.0, 0.0], 0.5, True, False)
    assert not obs.gripper_open and obs.gripper_yaw == pytest.approx(0.5, abs=0.02)


def test_the_episode_ends_at_max_steps_with_a_lift(env):
    env.reset(seed=6)
    for i in range(MAX_STEPS):
        obs, done, success = env.step([0.0, 0.0, 0.01], 0.0, False, False)
        assert done == (i == MAX_STEPS - 1)
    assert not success and obs.gripper_height > 0.2
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0.0, 0.0, 0.0])


def test_bad_actions_are_refused(env):
    env.reset(seed=7)
    for bad in ([np.nan, 0.0, 0.0], [0.0, np.inf, 0.0]):
        with pytest.raises(ValueError, match="NaN"):
            env.step(bad, 0.0, False, False)
    with pytest.raises(ValueError, match="NaN"):
        env.step([0.0, 0.0, 0.0], np.nan, False, False)
    with pytest.raises(ValueError, match="close_gripper"):
        env.step([0.0, 0.0, 0.0], 0.0, np.nan, False)
    with pytest.raises(ValueError, match="3 values"):
        env.step([0.0, 0.0], 0.0, False, False)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)
    assert env.steps == 0  # nothing was executed
    obs, done, _ = env.step([0.0, 0.0, -0.01], 0.0, False, False)
    assert not done and obs.step == 1


def test_a_grasp_holds_by_friction_alone_and_opening_drops_the_object(env):
    env.reset(seed=2, family="box")
    rng = np.random.default_rng(0)
    episode = scripted_grasp(env, rng, noise=0.0)
    assert episode.success
    assert env.sim.model.neq == 0 and env.equality_count() == 0  # no weld or other equality anywhere
    assert env.sim.attached is None
    held = env.held_object()
    left, right = env.touching()
    assert held is not None and held.body_id in left and held.body_id in right
    assert env.sim.data.xpos[held.body_id][2] > FLOOR_Z + SUCCESS_HEIGHT
    env.sim.set_gripper(1.0)  # open: nothing but the finger contacts held it up
    env._advance(10)
    assert env.sim.data.xpos[held.body_id][2] < FLOOR_Z + SUCCESS_HEIGHT and env.held_object() is None


@pytest.mark.parametrize("family", FAMILIES)
def test_the_scripted_policy_grasps_each_training_family(env, family):
    rng = np.random.default_rng(1)
    wins = []
    for seed in range(6):
        env.reset(seed=seed, family=family)
        e = scripted_grasp(env, rng, noise=1.0)
        assert e.family == family and not make_shape(e.shape_id).held_out and e.steps <= MAX_STEPS
        wins.append(e.success)
    assert np.mean(wins) >= MIN_SCRIPTED_SUCCESS, f"{family}: {sum(wins)}/6"


def test_depth_is_optional_and_metric():
    e = GraspBinEnv(image_size=(24, 32), depth=True)
    obs = e.reset(seed=0)
    assert obs.rgb.shape == (24, 32, 3) and obs.depth.shape == (24, 32) and obs.depth.dtype == np.float32
    centre = obs.depth[12, 16]
    assert 0.6 < centre < 1.6  # the tray, roughly a metre from the camera
    e.close()


def test_the_scripted_policy_explores_only_when_asked_and_its_random_steps_are_in_bounds(env):
    def run(**kw):
        env.reset(seed=4)
        rng = np.random.default_rng(7)
        e = scripted_grasp(env, rng, noise=1.0, record=True, **kw)
        return e, rng.random()

    plain, after = run()
    same, after_0 = run(random_action_prob=0.0)
    # 0: no extra random draws, the very same episode (bags recorded before stay valid)
    assert after == after_0 and plain.steps == same.steps
    for (_, a, _, _), (_, b, _, _) in zip(plain.transitions, same.transitions):
        np.testing.assert_array_equal(a["displacement"], b["displacement"])
    # 1 with terminate always: the first step is random and ends the episode (a failed grasp)
    wild, _ = run(random_action_prob=1.0, random_terminate_prob=1.0)
    (_, a, done, success), = wild.transitions
    assert done and not success and a["terminate"] and wild.steps == 1
    assert np.all(np.abs(a["displacement"]) <= MAX_DISPLACEMENT)


class _FirstStepRandom:
    """A generator double: no scripted noise, the first step random (a close that does not
    terminate), every later step scripted."""

    def __init__(self):
        self.draws = [0.0, 0.0, 0.99]  # random step? yes; close? yes; terminate? no

    def random(self):
        return self.draws.pop(0) if self.draws else 0.99

    def normal(self, loc=0.0, scale=1.0, size=None):
        return np.zeros(size) if size is not None else 0.0

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.zeros(size) if size is not None else 0.0

    def integers(self, n):
        return 0


@pytest.mark.parametrize("sticky", [False, True])
def test_a_random_close_is_undone_at_once_unless_sticky(env, sticky):
    env.reset(seed=4)
    episode = scripted_grasp(env, _FirstStepRandom(), record=True, random_action_prob=0.5, sticky_close=sticky)
    closes = [a["close_gripper"] for _, a, _, _ in episode.transitions]
    assert closes[0] and len(closes) > 2
    if sticky:  # the data shows descending with a closed hand, and what that grasp is worth
        assert all(closes)
    else:  # the scripted policy reopens at the next step and closes only at the bottom
        assert not closes[1] and closes[-2:] == [True, True]
