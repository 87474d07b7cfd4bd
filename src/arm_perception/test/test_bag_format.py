"""The episode bag contract (arm_perception.bag_format) and the graph's names (arm_control.topics):
plain data, importable without rosbags and without ROS."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arm_control import panda, topics
from arm_perception import bag_format
from arm_perception.bag_format import (
    ALL_TOPICS,
    JOINT_NAMES,
    OFFERED_QOS_SPECS,
    PER_STEP_TOPICS,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR,
    TOPIC_TYPES,
    BagError,
    BagWarning,
    Episode,
)


def _modules_after_import(module: str | None) -> set[str]:
    """Top-level packages loaded in a fresh interpreter after ``import module`` (None: none)."""
    imp = f", {module}" if module else ""
    code = f"import sys{imp}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["arm_perception.bag_format", "arm_control.topics"])
def test_the_contract_imports_neither_rosbags_nor_ros(module):
    loaded = _modules_after_import(module)
    assert module.split(".")[0] in loaded  # the check itself works
    assert not loaded & {"rosbags", "rclpy", "rosidl_parser", "sensor_msgs", "std_msgs"}, loaded


def test_topics_imports_nothing_but_the_standard_library():
    added = _modules_after_import("arm_control.topics") - _modules_after_import(None)
    assert added - set(sys.stdlib_module_names) == {"arm_control"}


def test_bag_topics_are_the_live_graph_s_names():
    assert TOPIC_TYPES[TOPIC_COLOR] == "sensor_msgs/msg/Image"
    assert len(ALL_TOPICS) == 9 and ALL_TOPICS == tuple(TOPIC_TYPES)
    for topic in ALL_TOPICS:
        assert topic in vars(topics).values(), topic
    assert set(PER_STEP_TOPICS) < set(ALL_TOPICS) and TOPIC_COLOR not in PER_STEP_TOPICS
    assert OFFERED_QOS_SPECS == {TOPIC_CAMERA_POSE: topics.QOS_LATCHED}


def test_joint_names_are_the_panda_s():
    assert JOINT_NAMES == tuple(panda.ARM_JOINTS) + tuple(panda.FINGER_JOINTS)
    assert len(bag_format.ARM_JOINT_NAMES) == 7 and len(bag_format.FINGER_JOINT_NAMES) == 2


def test_every_topic_and_service_name_is_unique_and_absolute():
    names = {k: v for k, v in vars(topics).items() if k.startswith(("TOPIC_", "SERVICE_"))}
    assert len(names) >= 25
    assert len(set(names.values())) == len(names), "two constants name the same topic"
    assert all(v.startswith("/") and " " not in v for v in names.values())


def test_qos_specs_are_validated_plain_data():
    assert topics.QOS_LATCHED == topics.QosSpec("reliable", "transient_local", 1)
    assert topics.QOS_SENSOR.reliability == topics.BEST_EFFORT
    with pytest.raises(ValueError, match="reliability"):
        topics.QosSpec("sometimes", "volatile", 1)
    with pytest.raises(ValueError, match="durability"):
        topics.QosSpec("reliable", "forever", 1)
    with pytest.raises(ValueError, match="depth"):
        topics.QosSpec("reliable", "volatile", 0)
    with pytest.raises(AttributeError):
        topics.QOS_STATE.depth = 3  # frozen


def test_graph_profiles_follow_the_specs():
    rclpy_qos = pytest.importorskip("rclpy.qos")
    from arm_control import graph

    assert graph.SENSOR == rclpy_qos.qos_profile_sensor_data
    assert graph.LATCHED.durability == rclpy_qos.DurabilityPolicy.TRANSIENT_LOCAL
    assert graph.LATCHED.depth == 1
    assert graph.COMMANDS.reliability == rclpy_qos.ReliabilityPolicy.RELIABLE
    assert graph.COMMANDS.depth == topics.QOS_COMMANDS.depth == 1000


def test_bag_error_names_the_bag_and_topic_and_episode_has_a_length():
    err = BagError("broken", "/tmp/bag", TOPIC_COLOR)
    assert err.path == Path("/tmp/bag") and err.topic == TOPIC_COLOR and str(err) == "broken"
    assert BagError("x").path is None and issubclass(BagWarning, UserWarning)
    assert "stamps" in Episode.__dataclass_fields__
