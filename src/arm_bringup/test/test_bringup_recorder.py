"""The recorder node: one MCAP bag per episode, atomic close, crash loses only the open episode."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.rosbag2 import Reader
from ruamel.yaml import YAML

from arm_bringup.recorder import parse_episode_command
from arm_control.topics import TOPIC_EPISODE
from arm_perception.bag_codec import deserialize
from arm_perception.bag_reader import is_bag_dir
from bringup_helpers import Watched

TOPICS = ["/t/string", "/t/joints", "/t/pose", "/t/image"]


def test_episode_commands():
    assert parse_episode_command("start ep_1") == ("start", "ep_1")
    assert parse_episode_command("  start task/seed_000003 ") == ("start", "task/seed_000003")
    assert parse_episode_command("start") == ("start", None)
    assert parse_episode_command("END") == ("end", None)
    assert parse_episode_command("end ep_1") == ("end", "ep_1")
    assert parse_episode_command("abort") == ("abort", None)
    for bad in ("", "stop", "start ../x", "start /abs", "start a//b", "start x.partial"):
        with pytest.raises(ValueError):
            parse_episode_command(bad)


class Graph:
    """Publishers in the test process (own rclpy context, the test's domain)."""

    def __init__(self) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.context import Context
        from rclpy.node import Node
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String

        from arm_control.graph import LATCHED, RECORD, SENSOR

        self.String, self.JointState, self.Image, self.PoseStamped = \
            String, JointState, Image, PoseStamped
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]),
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = Node("recorder_test_publisher", context=self.context)
        self.episode = self.node.create_publisher(String, TOPIC_EPISODE, RECORD)
        self.pubs = {
            "/t/string": self.node.create_publisher(String, "/t/string", RECORD),
            "/t/joints": self.node.create_publisher(JointState, "/t/joints", SENSOR),
            "/t/pose": self.node.create_publisher(PoseStamped, "/t/pose", LATCHED),
            "/t/image": self.node.create_publisher(Image, "/t/image", SENSOR),
        }

    def wait_matched(self, recorder: Watched, timeout: float = 20.0) -> None:
        for topic in TOPICS:
            recorder.wait_for(rf"subscribed to {topic} ", timeout=timeout)
        end = time.monotonic() + timeout
        pubs = [self.episode, *self.pubs.values()]
        while any(p.get_subscription_count() == 0 for p in pubs):
            assert time.monotonic() < end, "recorder subscriptions did not match"
            time.sleep(0.02)

    def send(self, command: str) -> None:
        self.episode.publish(self.String(data=command))

    def string(self, text: str) -> None:
        self.pubs["/t/string"].publish(self.String(data=text))

    def joints(self, i: int) -> None:
        self.pubs["/t/joints"].publish(self.JointState(name=["j"], position=[float(i)]))

    def image(self, i: int) -> None:
        img = self.Image(height=32, width=32, encoding="rgb8", step=96)
        img.data = np.full(32 * 96, i, dtype=np.uint8).tobytes()
        self.pubs["/t/image"].publish(img)

    def pose(self, x: float) -> None:
        msg = self.PoseStamped()
        msg.header.frame_id = "world"
        msg.pose.position.x = x
        msg.pose.orientation.w = 1.0
        self.pubs["/t/pose"].publish(msg)

    def close(self) -> None:
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def graph(ros_domain):
    g = Graph()
    yield g
    g.close()


@pytest.fixture
def start_recorder(tmp_path, ros_domain):
    started: list[Watched] = []

    def _start(out: Path) -> Watched:
        w = Watched([sys.executable, "-m", "arm_bringup.recorder", "--ros-args",
                     "-p", f"output_dir:={out}", "-p", f"topics:=[{', '.join(TOPICS)}]",
                     "-p", "end_grace:=0.2", "-p", "discovery_period:=0.2"])
        started.append(w)
        return w

    yield _start
    for w in started:
        w.kill()


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, deserialize(raw, conn.msgtype)))
    return out


def custom_data(path: Path) -> dict:
    meta = YAML(typ="safe").load((path / "metadata.yaml").read_text())
    return meta["rosbag2_bagfile_information"]["custom_data"]


def test_one_bag_per_episode_and_a_crash_loses_only_the_open_one(graph, start_recorder,
                                                                  tmp_path):
    out = tmp_path / "bags"
    graph.pose(1.5)  # latched, published once before anything is recorded
    rec = start_recorder(out)
    graph.wait_matched(rec)
    # late joiners get a latched sample after a reliable round trip, not at matching
    rec.wait_for(r"latched /t/pose: cached")

    t_start = time.time_ns()
    graph.send("start ep_a")
    time.sleep(0.1)
    for i in range(5):
        graph.string(f"a{i}")
        graph.joints(i)
        if i < 3:
            graph.image(i)
        time.sleep(0.02)
    graph.string("last")  # right before the end: must still be in ep_a
    graph.send("end")
    rec.wait_for(r"episode ep_a \(end\) -> ")
    t_end = time.time_ns()

    graph.send("start sub/ep_b")
    time.sleep(0.1)
    for i in range(3):
        graph.string(f"b{i}")
    graph.send("end sub/ep_b")
    rec.wait_for(r"episode sub/ep_b \(end\) -> ")

    graph.send("start ep_c")
    time.sleep(0.1)
    graph.string("c0")
    time.sleep(0.3)
    rec.proc.kill()  # SIGKILL: no chance to close anything
    rec.wait()

    assert sorted(p.name for p in out.iterdir()) == ["ep_a", "ep_c.partial", "sub"]
    assert not (out / "ep_c").exists()
    assert sorted(p.name for p in (out / "sub").iterdir()) == ["ep_b"]

    a = read_bag(out / "ep_a")
    assert [m.data for _, m in a["/t/string"]] == ["a0", "a1", "a2", "a3", "a4", "last"]
    assert [m.position[0] for _, m in a["/t/joints"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [m.data[0] for _, m in a["/t/image"]] == [0, 1, 2]
    assert [m.pose.position.x for _, m in a["/t/pose"]] == [1.5]  # latched, re-emitted
    stamps = [t for msgs in a.values() for t, _ in msgs]
    assert t_start <= min(stamps) and max(stamps) <= t_end  # log time = receive time
    assert custom_data(out / "ep_a")["arm.episode_end"] == "end"

    b = read_bag(out / "sub" / "ep_b")
    assert [m.data for _, m in b["/t/string"]] == ["b0", "b1", "b2"]
    assert [m.pose.position.x for _, m in b["/t/pose"]] == [1.5]  # each bag stands alone
    assert "/t/image" not in b

    # the same bag through the mcap library and its ROS 2 decoder
    (mcap_file,) = (out / "ep_a").glob("*.mcap")
    with open(mcap_file, "rb") as f:
        decoded = [(ch.topic, msg) for _, ch, _, msg in
                   make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    assert [m.data for t, m in decoded if t == "/t/string"] == \
        ["a0", "a1", "a2", "a3", "a4", "last"]
    assert [(m.width, m.encoding) for t, m in decoded if t == "/t/image"] == [(32, "rgb8")] * 3

    # the crashed episode's partial bag is ignored by the episode readers
    assert not is_bag_dir(out / "ep_c.partial")


def test_sigint_closes_the_open_bag_and_a_new_start_closes_the_previous(graph, start_recorder,
                                                                       tmp_path):
    out = tmp_path / "bags"
    rec = start_recorder(out)
    graph.wait_matched(rec)
    graph.send("start one")
    time.sleep(0.1)
    graph.string("x")
    graph.send("start two")  # no end: `one` ends here, with what was received before
    time.sleep(0.1)
    graph.string("y")
    graph.send("end")
    rec.wait_for(r"episode two \(end\) -> ")
    graph.send("start one")  # exists: refused, never overwritten
    rec.wait_for(r"cannot start episode one")
    graph.send("start three")
    time.sleep(0.1)
    graph.string("z")
    time.sleep(0.2)
    rec.signal(signal.SIGINT)
    assert rec.wait() == 0, rec.text
    assert [m.data for _, m in read_bag(out / "one")["/t/string"]] == ["x"]
    assert custom_data(out / "one")["arm.episode_end"] == "next_start"
    assert [m.data for _, m in read_bag(out / "two")["/t/string"]] == ["y"]
    assert custom_data(out / "two")["arm.episode_end"] == "end"
    assert [m.data for _, m in read_bag(out / "three")["/t/string"]] == ["z"]
    assert custom_data(out / "three")["arm.episode_end"] == "shutdown"
    assert sorted(p.name for p in out.iterdir()) == ["one", "three", "two"]
