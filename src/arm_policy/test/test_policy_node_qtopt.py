"""policy_node acting for QT-Opt: one short move per request, and what the recorder keeps of it.

ROS_DOMAIN_ID 82 (this file only), localhost discovery; the node is stopped at the end. A tiny
QT-Opt agent (32x32 images) is checkpointed by the test. The harness (perception and control
outputs in, policy outputs out) is test_policy_node's.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from arm_control import panda, topics  # noqa: E402
from arm_control.graph import RECORD  # noqa: E402
from arm_control.transforms import quat_xyzw_to_mat, top_down_quat  # noqa: E402
from arm_perception.ros_conversions import image_to_numpy, stamp_to_nanoseconds  # noqa: E402
from arm_policy.checkpoints import save_checkpoint  # noqa: E402
from arm_policy.grasp_episodes import TOPIC_TYPES, read_grasp_episode, step_goal  # noqa: E402
from arm_sim.grasp_bin import FLOOR_Z, MAX_DISPLACEMENT  # noqa: E402
from test_policy_node import FINGERS, Harness, scene  # noqa: E402

DOMAIN = 82
SIZE = 32
YAW = 0.3
TOOL = np.r_[0.45, 0.02, FLOOR_Z + 0.12, top_down_quat(YAW)]  # above the tray, pointing down
TOPIC_TYPES_MSG = {topics.TOPIC_QTOPT_RGB: Image, topics.TOPIC_QTOPT_STATE: Float32MultiArray,
                   topics.TOPIC_QTOPT_ACTION: Float32MultiArray}


def tiny_qtopt(seed: int):
    from arm_policy.agents.qtopt.agent import QTOptAgent
    from arm_policy.agents.qtopt.config import QTOptConfig

    return QTOptAgent(QTOptConfig(image_size=SIZE), "cpu", seed)


def test_a_qtopt_checkpoint_makes_one_short_move_per_request_and_records_a_grasp_episode(monkeypatch, tmp_path):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    save_checkpoint(tmp_path, 0, tiny_qtopt(0).state_dict())
    log = tmp_path / "policy_node.log"
    env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "arm_policy.policy_node", "--ros-args",
                                 "-p", f"run_dir:={tmp_path}", "-p", "observation_timeout:=1.0",
                                 "-p", "device:=cpu"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    h = Harness(DOMAIN)
    try:
        for key, topic in (("q_rgb", topics.TOPIC_QTOPT_RGB), ("q_state", topics.TOPIC_QTOPT_STATE),
                           ("q_action", topics.TOPIC_QTOPT_ACTION)):
            h.got[key] = []
            h.node.create_subscription(TOPIC_TYPES_MSG[topic], topic, h.got[key].append, RECORD)
        observe = h.node.create_client(Trigger, topics.SERVICE_POLICY_OBSERVE)
        assert h.spin_until(lambda: h.act_client.service_is_ready() and observe.service_is_ready()
                            and h.ee_pub.get_subscription_count() > 0, 60, proc), log.read_text()
        rgb, points = scene()
        frames = (rgb, points)
        h.publish_state(TOOL)
        h.spin_until(lambda: False, 0.3)

        decisions = []
        for explore in (False, True, True):
            answer = h.call(h.act_client, SetBool.Request(data=explore), frames)
            assert answer.success, answer.message
            decisions.append(json.loads(answer.message))
        d = decisions[0]
        assert d["checkpoint_step"] == 0 and d["step"] == 0 and d["explore"] is False
        action = np.asarray(d["action"])
        assert action.shape == (7,) and isinstance(d["terminate"], bool)

        # the move: the tool pose plus the clipped displacement, pointing down at the new yaw
        assert h.spin_until(lambda: len(h.got["pose"]) >= 3 and len(h.got["q_action"]) >= 3, 10, proc)
        pose, gripper = h.got["pose"][0], h.got["gripper"][0]
        assert stamp_to_nanoseconds(pose.header.stamp) == stamp_to_nanoseconds(gripper.header.stamp) == d["stamp_ns"]
        xyz, yaw, close, terminate = step_goal(TOOL[:3], YAW, action)
        p, o = pose.pose.position, pose.pose.orientation
        np.testing.assert_allclose([p.x, p.y, p.z], xyz, atol=1e-6)
        assert np.all(np.abs(xyz - TOOL[:3]) <= MAX_DISPLACEMENT + 1e-9)
        R = quat_xyzw_to_mat([o.x, o.y, o.z, o.w])
        np.testing.assert_allclose(R[:, 2], [0, 0, -1], atol=1e-6)  # pointing down
        assert np.isclose(np.arctan2(R[1, 0], R[0, 0]), yaw) and np.isclose(d["goal"][3], yaw)
        assert list(gripper.position) == [0.0 if close else 1.0] and d["terminate"] == terminate

        # what the agent saw and did, for the recorder: the image, [open, height, aperture], the action
        np.testing.assert_array_equal(image_to_numpy(h.got["q_rgb"][0], kind="color"), rgb)
        np.testing.assert_allclose(h.got["q_state"][0].data,
                                   [1.0, TOOL[2] - FLOOR_Z, FINGERS.mean() / panda.FINGER_OPEN], atol=1e-6)
        np.testing.assert_allclose(h.got["q_action"][0].data, action, atol=1e-6)

        # the episode's last frame: the observation alone
        answer = h.call(observe, Trigger.Request(), frames)
        assert answer.success, answer.message
        assert h.spin_until(lambda: len(h.got["q_rgb"]) == 4 and len(h.got["q_state"]) == 4, 10, proc)
        assert len(h.got["q_action"]) == 3

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        h.close()

    # the recorder's bag of these messages is a grasp episode the QT-Opt trainer reads
    bag = record_grasp_episode(tmp_path / "bags" / "train" / "episode_000000", h.got, decisions)
    from arm_policy.agents.qtopt.config import QTOptConfig

    transitions = read_grasp_episode(bag, QTOptConfig(image_size=SIZE))
    assert len(transitions) == 3
    for t, d in zip(transitions, decisions):
        np.testing.assert_allclose(t["action"], d["action"], atol=1e-6)
    assert transitions[-1]["terminal"] and not transitions[0]["terminal"]


def record_grasp_episode(path, got, decisions):
    """The node's messages as the recorder stores them (CDR from rclpy), with the runner's step
    messages (the last one terminal)."""
    from rclpy.serialization import serialize_message

    from arm_perception.bag_writer import RawEpisodeWriter

    with RawEpisodeWriter(path) as writer:
        for topic, msgtype in TOPIC_TYPES.items():
            writer.add_topic(topic, msgtype)
        ns = 1
        for k in range(len(got["q_rgb"])):
            writer.write(topics.TOPIC_QTOPT_RGB, serialize_message(got["q_rgb"][k]), ns)
            writer.write(topics.TOPIC_QTOPT_STATE, serialize_message(got["q_state"][k]), ns + 1)
            if k < len(decisions):
                writer.write(topics.TOPIC_QTOPT_ACTION, serialize_message(got["q_action"][k]), ns + 2)
                last = k == len(decisions) - 1
                step = String(data=json.dumps({"step": k, "terminal": last, "success": False,
                                               "reward": -0.05, "outcome": "reached"}))
                writer.write(topics.TOPIC_EPISODE_STEP, serialize_message(step), ns + 3)
            ns += 10
    return writer.path
