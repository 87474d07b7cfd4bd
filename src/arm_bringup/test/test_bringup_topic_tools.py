"""`arm topic list|echo|hz` against test talkers, and the ros2-style YAML printing."""
from __future__ import annotations

import array
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String

from arm_bringup import topic_tools
from bringup_helpers import FAKE_NODE, Watched, next_domain

# --------------------------------------------------------------------------- YAML printing


def test_yaml_like_ros2_topic_echo():
    assert topic_tools.message_to_yaml(String(data="hi there")) == "data: hi there\n"
    js = JointState(name=["j1", "j2"], position=[0.5, -1.0])
    js.header.frame_id = "world"
    js.header.stamp.sec = 3
    assert topic_tools.message_to_yaml(js) == (
        "header:\n  stamp:\n    sec: 3\n    nanosec: 0\n  frame_id: world\n"
        "name:\n- j1\n- j2\nposition:\n- 0.5\n- -1.0\nvelocity: []\neffort: []\n")


def test_big_arrays_are_truncated_or_summarised():
    img = Image(height=10, width=100, encoding="mono8", step=100)
    img.data = array.array("B", bytes(range(250)) * 4)
    text = topic_tools.message_to_yaml(img)
    data = text[text.index("data:"):].splitlines()[1:]
    assert len(data) == 129 and data[0] == "- 0" and data[-1] == "- '...'"
    assert "data: '<sequence type: uint8, length: 1000>'" in \
        topic_tools.message_to_yaml(img, no_arr=True)
    assert len(topic_tools.message_to_yaml(img, truncate_length=None).splitlines()) > 1000
    info = CameraInfo()
    info.k = np.arange(9, dtype=np.float64)
    assert "k:\n- 0.0\n- 1.0\n" in topic_tools.message_to_yaml(info)
    assert "k: '<array type: double[9]>'" in topic_tools.message_to_yaml(info, no_arr=True)


def test_message_classes_are_imported_by_name():
    assert topic_tools.get_message("std_msgs/msg/String") is String
    assert topic_tools.get_message("sensor_msgs/Image") is Image
    with pytest.raises(topic_tools.TopicToolError, match="not installed"):
        topic_tools.get_message("no_such_msgs/msg/Thing")


# --------------------------------------------------------------------------- against a graph

@pytest.fixture(scope="module")
def graph():
    """A 20 Hz talker on /chatter and a latched one-shot talker on /latched, in own domain."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain()))
    talkers = [
        Watched([sys.executable, str(FAKE_NODE), "talker", "--ros-args", "-p", "rate:=20.0",
                 "-r", "__node:=fast_talker"], env=env),
        Watched([sys.executable, str(FAKE_NODE), "talker", "--ros-args", "-p", "latched:=true",
                 "-p", "topic:=latched", "-p", "greeting:=once", "-r", "__node:=latch"],
                env=env),
    ]
    try:
        for t in talkers:
            t.wait_for(r"^ready ")
        yield env
    finally:
        for t in talkers:
            if t.proc.poll() is None:
                t.signal(signal.SIGINT)
        for t in talkers:
            try:
                t.wait(10)
            except subprocess.TimeoutExpired:
                t.kill()


def arm(env, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arm_bringup.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_topic_list_shows_the_talkers_topics(graph):
    # Fast DDS may find a participant only at its next 3 s announcement: listen that long
    r = arm(graph, "topic", "list", "-t", "--spin-time", "3.2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "/chatter [std_msgs/msg/String]" in lines
    assert "/latched [std_msgs/msg/String]" in lines


def test_topic_echo_once_prints_one_message_as_yaml(graph):
    r = arm(graph, "topic", "echo", "/chatter", "--once")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"data: hello \d+\n---\n", r.stdout), r.stdout


def test_topic_echo_gets_the_last_message_of_a_latched_topic(graph):
    # published once, long before: only a reliable transient-local subscription gets it
    r = arm(graph, "topic", "echo", "latched", "--once", "--timeout", "15")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "data: once 1\n---\n"


def test_topic_echo_field(graph):
    r = arm(graph, "topic", "echo", "/chatter", "std_msgs/msg/String", "--once",
            "--field", "data")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"hello \d+\n(\.\.\.\n)?---\n", r.stdout), r.stdout


def test_topic_hz_reports_roughly_the_publishing_rate(graph):
    r = arm(graph, "topic", "hz", "/chatter", "--duration", "2")
    assert r.returncode == 0, r.stderr
    rates = [float(x) for x in re.findall(r"^average rate: ([\d.]+)$", r.stdout, re.M)]
    assert rates, r.stdout
    assert 12.0 < rates[-1] < 28.0, r.stdout  # 20 Hz talker; loose: not a timing test
    assert re.search(r"^\tmin: [\d.]+s max: [\d.]+s std dev: [\d.]+s window: \d+$", r.stdout,
                     re.M)


def test_missing_topic_fails_with_a_clear_message(graph):
    start = time.monotonic()
    r = arm(graph, "topic", "echo", "/does_not_exist", "--once", "--timeout", "1")
    assert r.returncode == 1
    assert "/does_not_exist did not appear within 1 s" in r.stderr
    assert time.monotonic() - start < 15
