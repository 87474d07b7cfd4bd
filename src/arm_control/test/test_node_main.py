"""run_node's exit codes are what the launcher acts on: a crash must never look like a clean stop;
declare gives every parameter its description and read-only flag."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("rclpy")

NODE = textwrap.dedent("""
    import sys
    from rclpy.executors import ExternalShutdownException
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

    def run(node):  # a node that does a job instead of spinning
        assert isinstance(node, Probe)
        mode = sys.argv[1]
        if mode == "run_gives_up":
            raise RuntimeError("5 episodes in a row aborted: no control result")
        if mode == "run_interrupted":
            raise KeyboardInterrupt
        if mode == "run_shut_down":
            raise ExternalShutdownException()
        if mode == "run_crashes":
            raise ZeroDivisionError("division by zero in run")
        return {"run_done": 0, "run_returns_3": 3}[mode]

    run_node(Probe, "probe", args=sys.argv, run=run if sys.argv[1].startswith("run_") else None)
""")


def run_probe(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROS_DOMAIN_ID="87")
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


@pytest.mark.parametrize("mode, code, says, traceback", [
    ("run_done", 0, [], False),
    ("run_returns_3", 3, [], False),  # run's return is the exit code
    ("run_interrupted", 0, [], False),  # Ctrl-C while run waits
    ("run_shut_down", 0, [], False),  # the launcher stopped us while run waits
    ("run_gives_up", 1, ["stopped", "no control result"], False),  # a reason, not a crash
    ("run_crashes", 1, ["crashed", "ZeroDivisionError"], True),
])
def test_run_replaces_the_spin_and_decides_the_exit_code(mode, code, says, traceback):
    result = run_probe(mode)
    assert result.returncode == code, result.stderr
    assert all(text in result.stderr for text in says), result.stderr
    assert ("Traceback" in result.stderr) == traceback


@pytest.fixture
def make_node():
    import rclpy
    from rclpy.node import Node

    context = rclpy.Context()
    rclpy.init(context=context, args=[], domain_id=87)
    nodes = []

    def make(**overrides):
        from rclpy.parameter import Parameter

        node = Node("declared", context=context, start_parameter_services=False,
                    parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()
    context.try_shutdown()


def test_declare_returns_the_value_and_describes_the_parameter(make_node):
    from rclpy.parameter import Parameter

    from arm_control.node_main import declare

    node = make_node(topic="/other")
    assert declare(node, "rate", 10.0, "messages per second") == 10.0
    assert declare(node, "topic", "/chatter", "topic to publish on", read_only=True) == "/other"
    rate, topic = node.describe_parameters(["rate", "topic"])
    assert (rate.description, rate.read_only) == ("messages per second", False)
    assert (topic.description, topic.read_only) == ("topic to publish on", True)
    assert topic.type == Parameter.Type.STRING.value  # typed by its default
    assert node.set_parameters([Parameter("rate", value=5.0)])[0].successful
    assert not node.set_parameters([Parameter("topic", value="/x")])[0].successful  # read-only


def test_declare_a_typed_parameter_without_default_gives_the_fallback_until_set(make_node):
    from rclpy.parameter import Parameter

    from arm_control.node_main import declare

    unset, given = make_node(), make_node(items=["a=1", "b=2"])
    for node, expected in ((unset, []), (given, ["a=1", "b=2"])):
        value = declare(node, "items", Parameter.Type.STRING_ARRAY, "FIELD=VALUE items",
                        read_only=True, fallback=[])
        assert list(value) == expected
        descriptor = node.describe_parameter("items")
        assert descriptor.type == Parameter.Type.STRING_ARRAY.value and descriptor.read_only
    # dynamic typing: None until set, any type once set
    assert declare(unset, "pose", None, "16 numbers", dynamic_typing=True) is None
    assert unset.describe_parameter("pose").dynamic_typing
