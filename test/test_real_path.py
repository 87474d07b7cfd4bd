"""The real-hardware path: `arm launch real` against a stand-in for a Franka + RealSense cell.

The stand-in is our simulator driver configured to speak exactly what the real drivers speak:
RealSense topic names (/camera/camera/...), 640x480 colour, 16UC1 depth in millimetres, no camera
pose topic (extrinsics come from the parameter file), FR3 joint names and a ros2_control
JointTrajectoryController topic. The perception and control nodes run unchanged.
"""
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from graph_helpers import ControlClient, Listener, node_processes, stop

DOMAIN = "74"
TASK, SEED = "pick_up_cup", 5
FR3 = [f"fr3_joint{i}" for i in range(1, 8)]
CONTROLLER = "/fr3_arm_controller/joint_trajectory"


def _env():
    return {**os.environ, "ROS_DOMAIN_ID": DOMAIN, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """(ground-truth scene, stand-in driver process, `arm launch real` process)."""
    from arm_sim.environment import Environment

    truth = Environment(image_size=(480, 640)).get_task(TASK)
    _, obs = truth.reset(seed=SEED)
    extrinsics = obs.camera_extrinsics
    logs = tmp_path_factory.mktemp("real")
    install = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(shutil.which("arm")))))
    sim_node = os.path.join(install, "arm_sim", "lib", "arm_sim", "sim_node")
    driver_cmd = [
        sim_node, "--ros-args", "-r", "__node:=franka_and_realsense_standin",
        "-p", f"task:={TASK}", "-p", f"seed:={SEED}", "-p", "image_width:=640", "-p", "image_height:=480",
        "-p", "depth_encoding:=16UC1", "-p", "publish_camera_pose:=false",
        "-p", f"joint_names:=[{','.join(FR3)}]", "-p", f"trajectory_topic:={CONTROLLER}",
        "-r", "/camera/front/color/image_raw:=/camera/camera/color/image_raw",
        "-r", "/camera/front/aligned_depth_to_color/image_raw:=/camera/camera/aligned_depth_to_color/image_raw",
        "-r", "/camera/front/color/camera_info:=/camera/camera/color/camera_info",
    ]
    with open(logs / "driver.log", "w") as out:
        driver = subprocess.Popen(driver_cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    flat = "[" + ",".join(f"{v:.6f}" for v in extrinsics.ravel()) + "]"
    launch_cmd = [shutil.which("arm"), "launch", "real", f"perception_node.camera_extrinsics:={flat}",
                  f"control_node.joint_names:=[{','.join(FR3)}]", f"control_node.trajectory_topic:={CONTROLLER}"]
    with open(logs / "launch.log", "w") as out:
        launch = subprocess.Popen(launch_cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    yield truth, driver, launch, logs
    stop(launch)
    stop(driver)
    truth.close()


@pytest.fixture(scope="module")
def ros():
    os.environ["ROS_DOMAIN_ID"] = DOMAIN
    import rclpy

    rclpy.init()
    node = rclpy.create_node("real_path_test")
    yield rclpy, node
    node.destroy_node()
    rclpy.shutdown()


def test_perception_turns_realsense_topics_into_a_128_cloud_that_matches_the_scene(ros, cell):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    from arm_perception.camera import world_to_pixel
    from arm_perception.ros_conversions import pointcloud2_to_numpy

    truth, _, launch, logs = cell
    try:
        msg = Listener(ros, PointCloud2, "/arm/perception/points", qos_profile_sensor_data).wait(timeout=60)[-1]
    except TimeoutError:
        pytest.fail("no cloud; launch log:\n" + (logs / "launch.log").read_text()[-3000:])
    assert (msg.height, msg.width) == (128, 128)
    cloud = pointcloud2_to_numpy(msg)
    cup = truth.sim.body_pos("cup")
    top = cup + [0, 0, 0.045]
    # every cloud point that projects near the cup's top centre must lie on the cup's top face
    obs = truth.sim.observe()
    (row, col), = world_to_pixel(top[None], obs.camera_intrinsics, obs.camera_extrinsics)
    # 640x480 -> centre crop 480x480 -> 128x128
    r128, c128 = row * 128 / 480, (col - 80) * 128 / 480
    point = cloud[int(round(r128)), int(round(c128))]
    assert abs(point[2] - top[2]) < 0.005, f"cloud point {point} not on the cup top at z={top[2]:.3f}"
    assert np.hypot(*(point[:2] - cup[:2])) < 0.028 + 0.005


def test_control_drives_the_fr3_controller_topic_to_the_goal(ros, cell):
    control = ControlClient(ros)
    goal = np.array([0.5, -0.15, 0.98])
    text = control.send(goal)
    assert text.startswith("reached"), text
    assert np.linalg.norm(np.subtract(control.ee_position(), goal)) < 0.01


def test_no_process_survives_the_launcher(cell):
    _, driver, launch, logs = cell
    assert launch.poll() is None, (logs / "launch.log").read_text()[-3000:]
    stop(launch)
    stop(driver)
    end = time.monotonic() + 10
    while node_processes(DOMAIN) and time.monotonic() < end:
        time.sleep(0.2)
    assert node_processes(DOMAIN) == []
