"""Nodes refuse bad parameters at start-up with a message naming the problem (exit code 2)."""
import os
import shutil
import subprocess

import pytest

INSTALL = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(shutil.which("arm") or "/x/x/x/x"))))


@pytest.mark.parametrize("package, node, param, expect", [
    ("arm_sim", "sim_node", "task:=reach_targte", "valid tasks: reach_target"),
    ("arm_sim", "sim_node", "depth_encoding:=mono8", "depth_encoding must be 32FC1 or 16UC1"),
    ("arm_sim", "sim_node", "tray:=two_boxes", "unknown tray 'two_boxes'; choose from full, one_box"),
    ("arm_control", "control_node", "planner:=SBL", "available: AORRTC"),
    ("arm_control", "control_node", "joint_names:=[a,b]", "must name the 7 arm joints"),
    ("arm_bringup", "episode_runner", "grasp_noise_cm:=9.0", "grasp noise must be within 0..5 cm, got 9 cm"),
])
def test_a_bad_parameter_stops_the_node_with_its_reason(package, node, param, expect):
    exe = os.path.join(INSTALL, package, "lib", package, node)
    r = subprocess.run([exe, "--ros-args", "-p", param], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "ROS_DOMAIN_ID": "75"})
    assert r.returncode == 2
    assert expect in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_trajectories_a_controller_would_reject_are_rejected_with_the_reason():
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from arm_control import panda
    from arm_sim.sim_node import parse_trajectory

    def traj(names, points):
        msg = JointTrajectory(joint_names=names)
        for t, q in points:
            msg.points.append(JointTrajectoryPoint(positions=q, time_from_start=Duration(sec=t)))
        return msg

    names = list(panda.ARM_JOINTS)
    q = list(panda.NEUTRAL)
    times, positions = parse_trajectory(traj(names[::-1], [(1, q[::-1])]), names)
    assert positions[0].tolist() == q, "joints are matched by name, not order"
    for msg, reason in [
        (traj(names[:6], [(1, q[:6])]), "lacks joints"),
        (traj(names, []), "no points"),
        (traj(names, [(1, q[:5])]), "has 5 positions"),
        (traj(names, [(1, q), (1, q)]), "strictly increase"),
        (traj(names, [(1, [float("nan")] + q[1:])]), "NaN"),
        (traj(names, [(1, [5.0] + q[1:])]), "outside the joint limits of ['panda_joint1']"),
    ]:
        with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
            parse_trajectory(msg, names)
