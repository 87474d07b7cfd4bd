"""rclpy side of :mod:`arm_control.topics`: its QoS specs as rclpy ``QoSProfile`` objects.

    from arm_control import graph, topics
    node.create_publisher(PoseStamped, topics.TOPIC_NEXT_BEST_POSE, graph.COMMANDS)

The profiles below are built once from the specs of the same name; :func:`qos_profile` builds
one for any other :class:`~arm_control.topics.QosSpec`. :func:`declare_driver_interface` declares
the parameters both sides of the robot driver (sim_node, control_node) name it by.
"""
from __future__ import annotations

from typing import NamedTuple

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from . import panda, topics
from .node_main import declare
from .topics import QosSpec

_RELIABILITY = {topics.RELIABLE: ReliabilityPolicy.RELIABLE,
                topics.BEST_EFFORT: ReliabilityPolicy.BEST_EFFORT}
_DURABILITY = {topics.VOLATILE: DurabilityPolicy.VOLATILE,
               topics.TRANSIENT_LOCAL: DurabilityPolicy.TRANSIENT_LOCAL}


def qos_profile(spec: QosSpec) -> QoSProfile:
    """A keep-last rclpy QoSProfile with the spec's reliability, durability and depth."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(spec.depth),
                      reliability=_RELIABILITY[spec.reliability],
                      durability=_DURABILITY[spec.durability])


SENSOR = qos_profile(topics.QOS_SENSOR)
LATCHED = qos_profile(topics.QOS_LATCHED)
STATE = qos_profile(topics.QOS_STATE)
STREAM = qos_profile(topics.QOS_STREAM)
COMMANDS = qos_profile(topics.QOS_COMMANDS)
RECORD = qos_profile(topics.QOS_RECORD)


class DriverInterface(NamedTuple):
    """The robot driver's joint names and command topics (a ros2_control Panda or sim_node)."""
    joint_names: list[str]
    finger_joint_names: list[str]
    trajectory_topic: str
    gripper_topic: str


def declare_driver_interface(node: Node) -> DriverInterface:
    """Declare the parameters ``joint_names``, ``finger_joint_names``, ``trajectory_topic`` and
    ``gripper_topic`` of ``node`` and return their values; sim_node (the driver) and control_node
    (its client) declare the same ones, so one parameter file sets both sides.

    Example::

        driver = declare_driver_interface(self)
        self.create_subscription(JointTrajectory, driver.trajectory_topic, self.on_trajectory, STATE)
    """
    return DriverInterface(
        list(declare(node, "joint_names", list(panda.ARM_JOINTS),
                     "arm joint names, as the robot's (panda_joint* or fr3_joint*)")),
        list(declare(node, "finger_joint_names", list(panda.FINGER_JOINTS), "finger joint names")),
        declare(node, "trajectory_topic", topics.TOPIC_JOINT_TRAJECTORY,
                "JointTrajectoryController topic"),
        declare(node, "gripper_topic", topics.TOPIC_GRIPPER_COMMAND, "finger position command topic"))
