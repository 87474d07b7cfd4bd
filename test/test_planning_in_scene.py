"""Planning in a real task scene: every state the arm will pass through is collision-free."""
import numpy as np

from arm_control import panda
from arm_control.planner import interpolate_path
from arm_control.transforms import top_down_quat
from arm_sim.environment import Environment
from arm_sim.sim import TABLE_HEIGHT as TABLE_Z


def _scene_with_wall():
    from arm_control.motion import MotionPlanner
    from arm_sim.sim import PandaSim

    wall = (f'<body name="wall" pos="0.5 0 {TABLE_Z + 0.15}">'
            f'<geom class="world" type="box" size="0.08 0.01 0.15" rgba="0.5 0.5 0.5 1"/></body>')
    sim = PandaSim(wall, image_size=(32, 32))
    sim.reset_robot()
    return sim, MotionPlanner(sim.model, dt=0.05)


def _assert_collision_free(motion, path):
    dense = interpolate_path(path, 0.005)
    bad = [q for q in dense if not motion.collision.is_valid(q)]
    assert not bad, f"{len(bad)} of {len(dense)} interpolated states collide: {motion.collision.contacts(bad[0])}"


def test_a_move_around_a_wall_is_planned_and_collision_free_at_every_interpolated_state():
    sim, motion = _scene_with_wall()
    start_pose = np.r_[0.5, -0.15, TABLE_Z + 0.1, top_down_quat(np.pi / 2)]
    goal_pose = np.r_[0.5, 0.15, TABLE_Z + 0.1, top_down_quat(np.pi / 2)]
    motion.collision.set_scene(sim.data.qpos.copy())
    start_q, why = motion.solve_ik(start_pose, panda.NEUTRAL)
    assert start_q is not None, why
    plan = motion.plan(sim.data.qpos.copy(), start_q, goal_pose)
    assert plan.ok, plan.message
    # the straight line goes through the wall, so this plan must have gone around it
    line = np.linspace(start_q, plan.goal_q, 50)
    assert not all(motion.collision.is_valid(q) for q in line)
    _assert_collision_free(motion, plan.trajectory.positions)
    np.testing.assert_allclose(motion.kinematics.fk(plan.trajectory.positions[-1])[:3], goal_pose[:3], atol=1e-3)
    assert np.all(np.abs(np.diff(plan.trajectory.positions, axis=0)) / 0.05 <= panda.MAX_VELOCITY + 1e-6)


def test_a_goal_inside_an_obstacle_is_reported_as_collision():
    sim, motion = _scene_with_wall()
    plan = motion.plan(sim.data.qpos.copy(), panda.NEUTRAL, np.r_[0.5, 0.0, TABLE_Z + 0.2, top_down_quat()])
    assert plan.outcome == "collision" and "wall" in plan.message


def test_expert_trajectories_with_held_objects_are_collision_free():
    env = Environment(image_size=(16, 16))
    for name in ("pick_up_cup", "put_rubbish_in_bin"):
        task = env.get_task(name)
        task.reset(seed=5)
        for wp in task.task.expert(task.sim):
            sim = task.sim
            plan = task.motion.plan(sim.data.qpos.copy(), sim.joint_positions(), wp.pose,
                                    held=sim.attached_relative_pose(),
                                    mocap=(sim.data.mocap_pos.copy(), sim.data.mocap_quat.copy()))
            assert plan.ok, plan.message
            _assert_collision_free(task.motion, plan.trajectory.positions)
            assert task.execute(wp.pose, wp.gripper).outcome == "reached"
        assert task.success()

