"""A ROS 2 graph kept on this machine over UDP on 127.0.0.1, without shared memory: how the
tests isolate the nodes they start (with a ROS_DOMAIN_ID of their own).

Why not ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``: rmw_fastrtps then always adds Fast DDS's
shared-memory transport (an XML profile cannot take it out), and its ports in /dev/shm outlive
killed processes. After test runs that SIGKILL nodes, CI saw one link of a later graph stay dead
for two minutes while every other link worked: control_node's ``/arm/control/result`` reached the
recorder but never the episode runner. The likely cause is one of Fast DDS's known shared-memory
faults after a crash (eProsima/Fast-DDS issues 2811, 5053, 5469); over UDP a lost datagram is
sent again, so the tests leave shared memory out.

With an RMW other than rmw_fastrtps the profile means nothing, and LOCALHOST is kept.

Usage (before the process's first ROS participant: Fast DDS reads the profile once)::

    env = dict(os.environ, ROS_DOMAIN_ID="86")
    use_loopback_udp(env)
    subprocess.Popen(["arm", "launch", "sim_train"], env=env)
"""
from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

from arm_bringup.params_files import config_dir

__all__ = ["PROFILE_NAME", "loopback_profile", "use_loopback_udp"]

PROFILE_NAME = "fastdds_loopback_udp.xml"


def loopback_profile() -> Path:
    """The Fast DDS XML profile (config/fastdds_loopback_udp.xml of arm_bringup)."""
    path = config_dir() / PROFILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: rebuild the workspace (make setup)")
    return path


def use_loopback_udp(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Point ``env`` (``os.environ`` or a child's environment) at the loopback profile; returns it.

    ``SYSTEM_DEFAULT`` makes rmw_fastrtps take the profile as it is (LOCALHOST or SUBNET would
    add transports of its own); ROS_LOCALHOST_ONLY, its older spelling of LOCALHOST, goes.
    """
    env.pop("ROS_LOCALHOST_ONLY", None)
    if not env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        return env
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(loopback_profile())
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
    return env
