"""policy_node as its own process, driven over ROS 2 like the episode runner drives it.

ROS_DOMAIN_ID 80 (this file only), localhost discovery. The node is stopped with SIGINT (then
killed) at the end. A tiny agent (32x32 images) is checkpointed by the test; the node's answers
are checked against the same agent run in the test process on the same input.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image, JointState, PointCloud2  # noqa: E402
from std_msgs.msg import Bool, Float32MultiArray, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from arm_control import topics  # noqa: E402
from arm_control.graph import RECORD, STATE  # noqa: E402
from arm_perception.ros_conversions import (image_to_numpy, numpy_to_image,  # noqa: E402
                                            points_to_pointcloud2, stamp_to_nanoseconds)
from arm_policy.agents import ARMAgent  # noqa: E402
from arm_policy.checkpoints import checkpoint_path, save_checkpoint  # noqa: E402
from arm_policy.config import preset  # noqa: E402
from arm_policy.demo_dataset import agent_observation  # noqa: E402
from arm_policy.episode_dataset import (AGENT_TOPIC_TYPES, TOPIC_DECISION,  # noqa: E402
                                        TOPIC_EPISODE_STEP, TOPIC_OBSERVATION_LOW_DIM,
                                        TOPIC_OBSERVATION_POINTS, TOPIC_OBSERVATION_RGB,
                                        read_agent_episode, step_message)

DOMAIN = 80
SIZE = 32
BOUNDS = np.array([[0.2, -0.3, 0.8], [0.6, 0.3, 1.2]], np.float32)
EE_POSE = np.array([0.4, 0.0, 1.1, 1.0, 0.0, 0.0, 0.0])
FINGERS = np.array([0.04, 0.04])


def tiny_agent(seed: int) -> ARMAgent:
    import torch

    torch.manual_seed(seed)
    return ARMAgent(preset("cpu", image_size=SIZE), BOUNDS, "cpu")


def scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    points = np.stack([0.2 + rows * 0.4, -0.3 + cols * 0.6, np.full_like(rows, 0.75)], -1)
    points[3, 5] = np.nan  # no depth there
    return rgb, points


class Harness:
    """The rest of the graph: perception + control outputs in, policy outputs out."""

    def __init__(self, domain: int = DOMAIN):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("policy_test_harness", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        n = self.node
        self.rgb_pub = n.create_publisher(Image, topics.TOPIC_PERCEPTION_RGB, STATE)
        self.points_pub = n.create_publisher(PointCloud2, topics.TOPIC_PERCEPTION_POINTS, STATE)
        self.ee_pub = n.create_publisher(PoseStamped, topics.TOPIC_EE_POSE, STATE)
        self.gripper_open_pub = n.create_publisher(Bool, topics.TOPIC_GRIPPER_OPEN, STATE)
        self.joints_pub = n.create_publisher(JointState, topics.TOPIC_JOINT_STATES, STATE)
        self.got = {}
        for key, mtype, topic in (("pose", PoseStamped, topics.TOPIC_NEXT_BEST_POSE),
                                  ("gripper", JointState, topics.TOPIC_GRIPPER_GOAL),
                                  ("attention", Image, topics.TOPIC_ATTENTION),
                                  ("decision", String, TOPIC_DECISION),
                                  ("obs_rgb", Image, TOPIC_OBSERVATION_RGB),
                                  ("obs_points", PointCloud2, TOPIC_OBSERVATION_POINTS),
                                  ("obs_low_dim", Float32MultiArray, TOPIC_OBSERVATION_LOW_DIM)):
            self.got[key] = []
            n.create_subscription(mtype, topic, self.got[key].append, RECORD)
        self.act_client = n.create_client(SetBool, topics.SERVICE_POLICY_ACT)
        self.reset_client = n.create_client(Trigger, topics.SERVICE_POLICY_RESET)
        self.published_stamps: list[int] = []

    def spin_until(self, predicate, timeout: float, proc=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            if proc is not None:
                assert proc.poll() is None, "policy_node exited"
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def publish_state(self, ee_pose=EE_POSE):
        stamp = self.node.get_clock().now().to_msg()
        ee = PoseStamped()
        ee.header.stamp, ee.header.frame_id = stamp, "world"
        ee.pose.position.x, ee.pose.position.y, ee.pose.position.z = (float(v) for v in ee_pose[:3])
        o = ee.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in ee_pose[3:])
        self.ee_pub.publish(ee)
        self.gripper_open_pub.publish(Bool(data=True))
        js = JointState()
        js.header.stamp = stamp
        js.name = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
        js.position = [0.0] * 7 + FINGERS.tolist()
        self.joints_pub.publish(js)

    def publish_frame(self, rgb, points):
        stamp = self.node.get_clock().now().to_msg()
        self.rgb_pub.publish(numpy_to_image(rgb, "rgb8", stamp, "camera"))
        self.points_pub.publish(points_to_pointcloud2(points, stamp, "world"))
        self.published_stamps.append(stamp_to_nanoseconds(stamp))

    def call(self, client, request, frames=None, timeout=15.0):
        """Call a service; while waiting, publish ``frames`` (rgb, points) at ~30 Hz."""
        future = client.call_async(request)
        last = 0.0
        end = time.monotonic() + timeout
        while not future.done() and time.monotonic() < end:
            if frames is not None and time.monotonic() - last > 0.03:
                self.publish_frame(*frames)
                last = time.monotonic()
            self.executor.spin_once(timeout_sec=0.01)
        assert future.done(), f"{client.srv_name}: no answer within {timeout} s"
        return future.result()

    def act(self, explore=False, frames=None):
        return self.call(self.act_client, SetBool.Request(data=explore), frames)

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def ros_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(DOMAIN))
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("policy_run")


@pytest.fixture(scope="module")
def policy(ros_env, run_dir, tmp_path_factory):
    """(Popen, log path) of the policy node on an empty run folder."""
    log = tmp_path_factory.mktemp("policy_log") / "policy_node.log"
    args = [sys.executable, "-m", "arm_policy.policy_node", "--ros-args",
            "-p", f"run_dir:={run_dir}", "-p", "reload_period:=0.2",
            "-p", "observation_timeout:=1.0", "-p", "device:=cpu"]
    env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def harness(ros_env):
    h = Harness()
    try:
        yield h
    finally:
        h.close()


def test_policy_node_acts_reloads_and_survives_a_corrupt_checkpoint(policy, harness, run_dir):
    proc, log = policy
    h = harness
    agent0, agent1 = tiny_agent(0), tiny_agent(1)  # (torch's first optimiser: seconds) while the node starts
    assert h.spin_until(lambda: h.act_client.service_is_ready() and h.reset_client.service_is_ready()
                        and all(p.get_subscription_count() > 0 for p in
                                (h.rgb_pub, h.points_pub, h.ee_pub, h.gripper_open_pub, h.joints_pub)),
                        60, proc), "policy_node services/subscriptions did not come up"
    rgb, points = scene()
    frames = (rgb, points)

    # No checkpoint yet: a clear refusal, not a hang or a crash.
    answer = h.act(frames=frames)
    assert not answer.success and "no checkpoint yet" in answer.message

    save_checkpoint(run_dir, 0, agent0.state_dict())
    # Robot state before the first decision; a missing piece is named.
    h.publish_state()
    h.spin_until(lambda: False, 0.3)

    answer = h.act(explore=False, frames=frames)
    assert answer.success, answer.message
    decision = json.loads(answer.message)
    assert decision["checkpoint_step"] == 0 and decision["step"] == 0 and decision["explore"] is False
    stamp = decision["stamp_ns"]

    # Every output carries the decision's stamp and matches the decision.
    assert h.spin_until(lambda: all(h.got[k] for k in h.got), 10, proc), \
        {k: len(v) for k, v in h.got.items()}
    pose, gripper, attention = h.got["pose"][-1], h.got["gripper"][-1], h.got["attention"][-1]
    for msg in (pose, gripper, attention, h.got["obs_rgb"][-1], h.got["obs_points"][-1]):
        assert stamp_to_nanoseconds(msg.header.stamp) == stamp
    assert json.loads(h.got["decision"][-1].data) == decision
    action = np.asarray(decision["action"])
    p, o = pose.pose.position, pose.pose.orientation
    assert pose.header.frame_id == "world"
    np.testing.assert_allclose([p.x, p.y, p.z], action[:3], atol=1e-6)
    np.testing.assert_allclose([o.x, o.y, o.z, o.w], action[3:7] / np.linalg.norm(action[3:7]),
                               atol=1e-6)
    assert list(gripper.position) == [1.0 if action[7] > 0.5 else 0.0]
    heat = image_to_numpy(attention, kind="color")
    assert heat.shape == (2 * SIZE, 2 * 2 * SIZE + 4, 3)

    # The node fed the agent exactly what it was sent: same pixel and action here.
    assert decision["observation_stamp_ns"] in h.published_stamps
    assert decision["observation_stamp_ns"] <= stamp
    np.testing.assert_array_equal(image_to_numpy(h.got["obs_rgb"][-1], kind="color"), rgb)
    obs = agent_observation(rgb, points, True, EE_POSE, FINGERS, 0)
    np.testing.assert_allclose(h.got["obs_low_dim"][-1].data, obs["low_dim"], atol=1e-6)
    pixel, expected, _ = agent0.act(obs, explore=False)
    assert decision["pixel"] == pixel.tolist()
    np.testing.assert_allclose(action, expected, atol=1e-4)

    # The time feature counts decisions and /arm/policy/reset sets it back.
    assert json.loads(h.act(frames=frames).message)["step"] == 1
    assert h.call(h.reset_client, Trigger.Request()).success
    second = json.loads(h.act(frames=frames).message)
    assert second["step"] == 0 and second["stamp_ns"] > stamp

    # A checkpoint reload_every (100) newer is picked up between decisions.
    save_checkpoint(run_dir, 100, agent1.state_dict())
    deadline = time.monotonic() + 20
    while json.loads(h.act(frames=frames).message)["checkpoint_step"] != 100:
        assert time.monotonic() < deadline, "checkpoint 100 was not loaded"

    # A corrupt newest checkpoint: logged (naming the file), and the last good weights act on.
    bad = checkpoint_path(run_dir, 200)
    bad.write_bytes(b"PK\x03\x04" + os.urandom(3000))
    h.spin_until(lambda: bad.name in log.read_text(), 10, proc)
    answer = h.act(frames=frames)
    assert answer.success and json.loads(answer.message)["checkpoint_step"] == 100
    assert bad.name in log.read_text()

    # No fresh observation: refused after observation_timeout with the reason.
    t0 = time.monotonic()
    answer = h.act(frames=None)
    assert not answer.success and "no rgb + points pair" in answer.message
    assert 0.9 < time.monotonic() - t0 < 5

    # Wrong image size: refused with both sizes named; the node keeps running.
    small = (rgb[:16, :16].copy(), points[:16, :16].copy())
    answer = h.act(frames=small)
    assert not answer.success and "16x16" in answer.message and "32x32" in answer.message
    assert h.act(frames=frames).success
    assert proc.poll() is None

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()

    # What the recorder would make of it: the node's serialized messages in a bag, plus the
    # runner's steps, read back as one transition per decision with the node's exact input.
    bag = record_like_the_recorder(run_dir / "bags" / "train" / "episode_000000", h.got)
    decisions = [json.loads(m.data) for m in h.got["decision"]]
    transitions = read_agent_episode(bag)
    assert len(transitions) == len(decisions) >= 6
    for k, (t, d) in enumerate(zip(transitions, decisions)):
        np.testing.assert_array_equal(t.rgb, rgb)
        np.testing.assert_array_equal(t.point_cloud, points)  # as the agent saw it (NaN depth kept)
        np.testing.assert_allclose(t.low_dim, d["low_dim"], atol=1e-6)
        assert t.pixel.tolist() == d["pixel"] and t.index == d["step"]
        np.testing.assert_allclose(t.action, d["action"], atol=1e-6)
        if k + 1 < len(decisions):
            np.testing.assert_allclose(t.next_low_dim, decisions[k + 1]["low_dim"], atol=1e-6)
    assert transitions[-1].terminal and transitions[-1].reward == 1.0


def record_like_the_recorder(path, got):
    """Serialized messages (CDR from rclpy, as a raw subscription hands them to the recorder)
    into a bag, with a step message per decision (the last one terminal and successful)."""
    from rclpy.serialization import serialize_message

    from arm_perception.bag_writer import RawEpisodeWriter

    keys = {"obs_rgb": TOPIC_OBSERVATION_RGB, "obs_points": TOPIC_OBSERVATION_POINTS,
            "obs_low_dim": TOPIC_OBSERVATION_LOW_DIM, "decision": TOPIC_DECISION}
    with RawEpisodeWriter(path) as writer:
        for topic, msgtype in AGENT_TOPIC_TYPES.items():
            writer.add_topic(topic, msgtype)
        n = len(got["decision"])
        for k in range(n):
            stamp = json.loads(got["decision"][k].data)["stamp_ns"]
            for i, (key, topic) in enumerate(keys.items()):
                writer.write(topic, serialize_message(got[key][k]), stamp + i)
            step = String(data=json.dumps(step_message(
                step=k, reward=1.0 if k == n - 1 else 0.0, terminal=k == n - 1, outcome="reached",
                success=k == n - 1, decision_stamp_ns=stamp)))
            writer.write(TOPIC_EPISODE_STEP, serialize_message(step), stamp + 10)
    return writer.path
