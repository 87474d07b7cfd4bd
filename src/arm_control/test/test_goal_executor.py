"""The control node's goal state machine, driven by a simulated clock and an ideal arm."""
import mujoco
import numpy as np
import pytest

from arm_control import panda
from arm_control.goal_executor import Goal, GoalExecutor
from arm_control.motion import MotionPlanner
from arm_control.robot_model import workcell_xml
from arm_control.transforms import top_down_quat


@pytest.fixture(scope="module")
def motion():
    return MotionPlanner(mujoco.MjModel.from_xml_string(workcell_xml()))


def run(executor, q, fingers=None, follow=True, finger_target=None, seconds=10.0, dt=0.05):
    """Drive the executor like the node does; the 'arm' plays trajectories back exactly."""
    fingers = np.full(2, panda.FINGER_OPEN) if fingers is None else fingers
    traj, start, results, sent_gripper = None, 0.0, [], []
    for k in range(int(seconds / dt)):
        now = k * dt
        dq = np.zeros(7)
        if traj is not None and follow:
            i = min(int(round((now - start) / dt)), len(traj.positions) - 1)
            q, dq = traj.positions[i], traj.velocities[i]
        if sent_gripper:
            target = sent_gripper[-1] * panda.FINGER_OPEN if finger_target is None else finger_target
            fingers = fingers + np.clip(target - fingers, -0.004, 0.004)
        out = executor.update(now, q, dq, fingers)
        if out.trajectory is not None:
            traj, start = out.trajectory, now
        if out.gripper_open is not None:
            sent_gripper.append(out.gripper_open)
        results += out.results
        if results and not executor.busy:
            break
    return results, sent_gripper, q


def test_a_reachable_goal_is_reached_then_the_gripper_acts(motion):
    ex = GoalExecutor(motion)
    goal = np.r_[0.45, 0.1, 0.95, top_down_quat()]
    ex.submit(Goal(goal, gripper=0.0, key=7))
    results, gripper, q = run(ex, panda.NEUTRAL.copy())
    assert [r.outcome for r in results] == ["reached"] and results[0].key == 7
    assert gripper == [0.0], "the gripper is commanded only after the arm arrived"
    assert np.linalg.norm(motion.kinematics.fk(q)[:3] - goal[:3]) < 0.01
    assert results[0].text().startswith("reached: ") and "plan" in results[0].text()


def test_no_gripper_goal_leaves_the_gripper_alone(motion):
    ex = GoalExecutor(motion)
    ex.submit(Goal(np.r_[0.4, -0.1, 1.0, top_down_quat()]))
    results, gripper, _ = run(ex, panda.NEUTRAL.copy())
    assert [r.outcome for r in results] == ["reached"] and gripper == []


def test_a_gripper_closing_on_an_object_counts_as_reached(motion):
    ex = GoalExecutor(motion)
    ex.submit(Goal(np.r_[0.45, 0.0, 0.95, top_down_quat()], gripper=0.0))
    results, _, _ = run(ex, panda.NEUTRAL.copy(), finger_target=0.02)  # an object 4 cm wide
    assert results[0].outcome == "reached" and "object" in results[0].message


def test_unreachable_and_colliding_goals_get_their_outcome_and_the_next_goal_still_works(motion):
    ex = GoalExecutor(motion)
    ex.submit(Goal(np.r_[2.0, 0.0, 1.0, top_down_quat()], key="far"))
    ex.submit(Goal(np.r_[0.45, 0.0, 0.60, top_down_quat()], key="in the table"))
    ex.submit(Goal(np.r_[0.45, 0.0, 1.0, top_down_quat()], key="fine"))
    results = []
    q = panda.NEUTRAL.copy()
    for _ in range(3):
        r, _, q = run(ex, q)
        results += r
    assert [(r.key, r.outcome) for r in results] == [
        ("far", "unreachable"), ("in the table", "collision"), ("fine", "reached")]


def test_an_arm_that_never_moves_times_out(motion):
    ex = GoalExecutor(motion, timeout_margin=0.5)
    ex.submit(Goal(np.r_[0.45, 0.2, 1.0, top_down_quat()]))
    results, _, _ = run(ex, panda.NEUTRAL.copy(), follow=False)
    assert results[0].outcome == "timeout" and "did not settle" in results[0].message


OPEN, SHUT, ON_CUP = np.full(2, panda.FINGER_OPEN), np.zeros(2), np.full(2, 0.028)


def test_gripper_open_is_measured_off_the_fingers_as_rlbench():
    assert panda.gripper_is_open(OPEN) is True
    assert panda.gripper_is_open(SHUT) is False
    assert panda.gripper_is_open(ON_CUP) is False  # resting on a grasped object: closed
    assert panda.gripper_is_open([panda.FINGER_OPEN, 0.5 * panda.FINGER_OPEN]) is False  # moving


@pytest.mark.parametrize("gripper_when_blocked", [False, True])
def test_a_blocked_move_closes_the_gripper_only_in_closed_loop_mode(motion, gripper_when_blocked):
    # QT-Opt's short steps: the fingers hit an object before the goal; the grasp must still close
    ex = GoalExecutor(motion, timeout_margin=0.5, gripper_when_blocked=gripper_when_blocked)
    ex.submit(Goal(np.r_[0.45, 0.1, 0.95, top_down_quat()], gripper=0.0, key=3))
    results, gripper, _ = run(ex, panda.NEUTRAL.copy(), follow=False)
    assert [r.outcome for r in results] == ["timeout"] and results[0].key == 3
    assert "did not settle" in results[0].message
    if gripper_when_blocked:
        assert gripper == [0.0] and "gripper at target" in results[0].message
    else:
        assert gripper == [], "RLBench's next-best poses leave the gripper alone after a failed move"


def test_without_collision_checking_a_move_stopped_short_is_reached_where_it_stopped():
    """The ARM authors' RLBench action mode: the planner ignores the table, the arm stops on it,
    the gripper closes there and the episode goes on (reached, with how far short it stopped)."""
    free = MotionPlanner(mujoco.MjModel.from_xml_string(workcell_xml()), collision_checking=False)
    ex = GoalExecutor(free, timeout_margin=0.5, stopped_short_is_reached=True)
    ex.submit(Goal(np.r_[0.45, 0.0, 0.60, top_down_quat()], gripper=0.0, key="in the table"))
    results, gripper, _ = run(ex, panda.NEUTRAL.copy(), follow=False)  # the table holds the arm
    assert [(r.key, r.outcome) for r in results] == [("in the table", "reached")]
    assert "did not settle" in results[0].message and gripper == [0.0]
