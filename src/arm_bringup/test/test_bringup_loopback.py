"""The tests' ROS isolation (arm_bringup.loopback): a graph on UDP 127.0.0.1 without Fast DDS's
shared memory; and the transport a user's graph has by default (shared memory), which the rest of
the suite no longer uses. Pairs of processes in ROS_DOMAIN_ID 90 (this file only), all stopped."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from arm_bringup.loopback import loopback_profile, use_loopback_udp

DOMAIN = 90
# each process publishes its name on /loopback_probe for `seconds` and prints whose names it heard
PROBE = """
import sys, time, rclpy
from std_msgs.msg import String
name, seconds = sys.argv[1], float(sys.argv[2])
rclpy.init()
node = rclpy.create_node(name)
pub = node.create_publisher(String, "/loopback_probe", 10)
heard = set()
node.create_subscription(String, "/loopback_probe", lambda m: heard.add(m.data), 10)
end = time.monotonic() + seconds
while time.monotonic() < end:
    pub.publish(String(data=name))
    rclpy.spin_once(node, timeout_sec=0.05)
print(" ".join(sorted(heard - {name})), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def _domain_shm_ports() -> set[str]:
    """Fast DDS shared-memory port files of DOMAIN's RTPS ports (7400 + 250 * domain + ...)."""
    first = 7400 + 250 * DOMAIN
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob("fastdds_port*")
            if p.name[len("fastdds_port"):].split("_")[0].isdigit()
            and first <= int(p.name[len("fastdds_port"):].split("_")[0]) < first + 250}


def test_the_environment_points_fast_dds_at_the_loopback_profile():
    env = use_loopback_udp({"ROS_LOCALHOST_ONLY": "1", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": str(loopback_profile()),
                   "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT"}
    text = loopback_profile().read_text()
    assert "<useBuiltinTransports>false</useBuiltinTransports>" in text
    assert '<interface name="127.0.0.1"/>' in text and "<type>UDPv4</type>" in text


def test_another_rmw_keeps_localhost_discovery():
    env = use_loopback_udp({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"})
    assert env == {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def _talk(env: dict[str, str]) -> tuple[list[str], set[str]]:
    """Two probes in ``env``: what each heard, and the shared-memory ports of DOMAIN they opened."""
    before = _domain_shm_ports()
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, name, "4"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("left", "right")]
    during: set[str] = set()
    try:
        end = time.monotonic() + 60
        while any(p.poll() is None for p in procs) and time.monotonic() < end:
            during |= _domain_shm_ports() - before
            time.sleep(0.1)
        outs = [p.communicate(timeout=10) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    return [out.strip() for out, _ in outs], during


def test_two_processes_talk_without_shared_memory():
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(loopback_profile())  # conftest.py
    heard, ports = _talk(dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN)))
    assert heard == ["right", "left"]
    assert ports == set(), f"shared-memory ports of domain {DOMAIN}: {sorted(ports)}"


def test_the_default_transport_of_a_users_graph_works_too():
    """`make sim-train` runs with Fast DDS's defaults: shared memory between processes on one
    machine (here with localhost discovery, which keeps it; the ports prove it was used)."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    del env["FASTDDS_DEFAULT_PROFILES_FILE"]
    heard, ports = _talk(env)
    assert heard == ["right", "left"]
    assert ports, "no shared-memory port: Fast DDS's default transport was not exercised"
