"""run_node's exit codes are what the launcher acts on: a crash must never look like a clean stop."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("rclpy")

NODE = textwrap.dedent("""
    import sys
    from rclpy.node import Node
    from arm_control.node_main import run_node

    class Probe(Node):
        def __init__(self):
            super().__init__("probe")
            mode = sys.argv[1]
            if mode == "bad_parameter":
                raise ValueError("parameter task: 'reach_the_moon' is not a task")
            if mode == "broken_constructor":
                raise RuntimeError("camera intrinsics file is empty")
            self.create_timer(0.05, self.tick)

        def tick(self):
            if sys.argv[1] == "crash_in_callback":
                raise ZeroDivisionError("division by zero in a callback")
            raise SystemExit(0)  # "clean": stop the spin as a node may do itself

    run_node(Probe, "probe", args=sys.argv)
""")


def run_probe(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROS_DOMAIN_ID="87", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    return subprocess.run([sys.executable, "-c", NODE, *argv], env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_rejected_parameter_exits_2_and_names_it():
    result = run_probe("bad_parameter")
    assert result.returncode == 2
    assert "reach_the_moon" in result.stderr and "Traceback" not in result.stderr


def test_a_constructor_crash_exits_1_with_its_traceback():
    result = run_probe("broken_constructor")
    assert result.returncode == 1
    assert "could not start" in result.stderr and "camera intrinsics file is empty" in result.stderr
    assert "Traceback" in result.stderr


def test_a_callback_crash_exits_1_not_0():
    result = run_probe("crash_in_callback")
    assert result.returncode == 1
    assert "crashed" in result.stderr and "ZeroDivisionError" in result.stderr


def test_unparseable_ros_arguments_exit_2():
    result = run_probe("clean", "--ros-args", "-p", "no_equals_sign")
    assert result.returncode == 2
    assert "cannot initialise ROS" in result.stderr


def test_a_node_that_stops_itself_exits_0():
    assert run_probe("clean").returncode == 0
