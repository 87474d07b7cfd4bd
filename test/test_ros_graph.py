"""The sim graph as real processes over real DDS: `arm launch sim` and what it must do.

Every test here runs in its own ROS_DOMAIN_ID and stops every process it starts.
"""
import math
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from graph_helpers import ControlClient, Listener, node_processes, pose_msg, reliable, stop, wait_for_subscribers

DOMAIN = "73"
TASK, SEED = "pick_up_cup", 3


def _env():
    return {**os.environ, "ROS_DOMAIN_ID": DOMAIN, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def ros():
    os.environ["ROS_DOMAIN_ID"] = DOMAIN
    import rclpy

    rclpy.init()
    node = rclpy.create_node("graph_test")
    yield rclpy, node
    node.destroy_node()
    rclpy.shutdown()


@pytest.fixture(scope="module")
def graph(ros, tmp_path_factory):
    run = tmp_path_factory.mktemp("launch")
    log = run / "launch.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([shutil.which("arm"), "launch", "sim", f"task:={TASK}", f"seed:={SEED}",
                                 "record:=true", f"bag_dir:={run / 'bags'}"],
                                stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    yield proc, log
    stop(proc)


@pytest.fixture(scope="module")
def control(ros, graph):
    return ControlClient(ros)


def test_the_sim_graph_publishes_an_organised_world_frame_cloud_matching_ground_truth(ros, graph):
    from sensor_msgs.msg import PointCloud2
    from rclpy.qos import qos_profile_sensor_data

    from arm_perception.camera import world_to_pixel
    from arm_perception.ros_conversions import pointcloud2_to_numpy
    from arm_sim.environment import Environment

    cloud_msg = Listener(ros, PointCloud2, "/arm/perception/points", qos_profile_sensor_data).wait(timeout=60)[-1]
    assert (cloud_msg.height, cloud_msg.width) == (128, 128) and cloud_msg.header.frame_id == "world"
    cloud = pointcloud2_to_numpy(cloud_msg)
    # Ground truth: the same task and seed in-process gives the same scene (seeded resets).
    task = Environment(image_size=(128, 128)).get_task(TASK)
    _, obs = task.reset(seed=SEED)
    cup = task.sim.body_pos("cup")
    task.close()
    top = cup + [0, 0, 0.045]  # centre of the cup's top face
    (row, col), = world_to_pixel(top[None], obs.camera_intrinsics, obs.camera_extrinsics)
    point = cloud[int(round(row)), int(round(col))]
    assert abs(point[2] - top[2]) < 0.005, f"cloud point {point} is not on the cup's top (z={top[2]:.3f})"
    assert np.hypot(*(point[:2] - cup[:2])) < 0.028 + 0.005
    # and the cloud is the simulator's own back-projection of the same frame
    finite = np.isfinite(cloud).all(axis=-1) & np.isfinite(obs.front_point_cloud).all(axis=-1)
    assert finite.mean() > 0.9
    np.testing.assert_allclose(cloud[finite], obs.front_point_cloud[finite], atol=0.005)


def test_a_pose_goal_moves_the_gripper_there_and_an_unreachable_one_is_reported(control):
    goal = np.array([0.45, 0.12, 1.0])
    assert control.send(goal).startswith("reached")
    assert np.linalg.norm(np.subtract(control.ee_position(), goal)) < 0.01
    assert control.send([1.8, 0.0, 1.0]).startswith("unreachable")
    assert control.send([0.5, -0.1, 0.95]).startswith("reached")


def test_the_graph_survives_100_invalid_goals_and_still_executes_the_next_valid_one(ros, control):
    rclpy, node = ros
    n = len(control.results.msgs)
    for i in range(100):  # NaN positions and zero quaternions
        control.pub.publish(pose_msg(node, [0.4, 0.0, math.nan] if i % 2 else [0.4, 0.0, 1.0], (0.0, 0.0, 0.0, 0.0)))
    got = control.results.wait(lambda m: len(m) >= n + 100, timeout=60)[n:n + 100]
    assert all(m.data.startswith("invalid") for m in got)
    assert control.send([0.45, 0.0, 1.05]).startswith("reached")


def test_topic_echo_once_prints_the_next_best_pose(ros, control):
    rclpy, node = ros
    echo = subprocess.Popen([shutil.which("arm"), "topic", "echo", "/arm/next_best_pose", "--once"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        end = time.monotonic() + 30
        while echo.poll() is None and time.monotonic() < end:
            control.pub.publish(pose_msg(node, [0.456, 0.0, 2.5]))  # unreachable: the arm stays put
            rclpy.spin_once(node, timeout_sec=0.2)
        out, err = echo.communicate(timeout=10)
    finally:
        if echo.poll() is None:
            echo.kill()
    assert echo.returncode == 0, err
    assert "x: 0.456" in out and "frame_id: world" in out


def test_the_recorder_writes_one_bag_per_episode_readable_by_rosbags_and_mcap(ros, graph):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from std_msgs.msg import String

    from arm_control.topics import TOPIC_COLOR, TOPIC_EPISODE
    from arm_perception.bag_codec import stamp_ns
    from arm_perception.bag_format import PER_STEP_TOPICS
    from arm_perception.bag_reader import read_episode

    rclpy, node = ros
    proc, log = graph
    pub = node.create_publisher(String, TOPIC_EPISODE, reliable(10))
    wait_for_subscribers(ros, pub, timeout=30)
    pub.publish(String(data="start episode_0"))
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    pub.publish(String(data="end"))
    bag = log.parent / "bags" / "episode_0"
    end = time.monotonic() + 20
    while not (bag / "metadata.yaml").exists() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    episode = read_episode(bag)
    assert len(episode.stamps) >= 20, "about 2 s of 20 Hz camera frames"
    assert episode.front_rgb.shape[1:] == (128, 128, 3)
    (mcap_file,) = bag.rglob("*.mcap")
    colour, first_log_ns = [], {}
    with open(mcap_file, "rb") as f:
        for _, ch, raw, m in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            first_log_ns.setdefault(ch.topic, raw.log_time)
            if ch.topic == TOPIC_COLOR:
                colour.append((raw.log_time, m))
    # read_episode drops exactly the leading colour frames logged before some per-step
    # topic's first message (how many depends on start-up timing), and keeps every later one
    slowest_start = max(first_log_ns[t] for t in PER_STEP_TOPICS)
    dropped = sum(log_ns < slowest_start for log_ns, _ in colour)
    kept_s = np.array([stamp_ns(m.header) for _, m in colour[dropped:]]) * 1e-9
    assert len(episode.stamps) == len(kept_s) and np.allclose(episode.stamps, kept_s, rtol=0, atol=1e-6)
    assert colour[0][1].encoding == "rgb8"


def test_stopping_the_launcher_leaves_no_process_behind(graph):
    proc, log = graph
    assert proc.poll() is None, "the graph died early:\n" + log.read_text()[-3000:]
    assert node_processes(DOMAIN), "the nodes should be running before the stop"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    end = time.monotonic() + 10
    while node_processes(DOMAIN) and time.monotonic() < end:
        time.sleep(0.2)
    assert node_processes(DOMAIN) == []
    text = log.read_text()
    assert "[sim_node]" in text and "[control_node]" in text and "[perception_node]" in text
