"""rclpy side of :mod:`arm_control.topics`: its QoS specs as rclpy ``QoSProfile`` objects.

    from arm_control import graph, topics
    node.create_publisher(PoseStamped, topics.TOPIC_NEXT_BEST_POSE, graph.COMMANDS)

The profiles below are built once from the specs of the same name; :func:`qos_profile` builds
one for any other :class:`~arm_control.topics.QosSpec`.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from . import topics
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
