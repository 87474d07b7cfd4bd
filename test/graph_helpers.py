"""Shared pieces of the graph tests: a test-side ROS node, goal sending, process bookkeeping."""
import os
import signal
import subprocess
import time
from pathlib import Path


GRAPH_NODES = (b"sim_node", b"perception_node", b"control_node", b"recorder")


def node_processes(domain: str, names: tuple[bytes, ...] = GRAPH_NODES,
                   exact: bool = False) -> list[int]:
    """PIDs of our node executables running in `domain` (to prove none is left behind): a command
    line that contains one of `names` (with `exact`: one of its arguments is `.../name`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if not any((b"/" + n + b"\0" if exact else n) in cmd for n in names):
                continue
            if f"ROS_DOMAIN_ID={domain}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def stop(proc: subprocess.Popen):
    """Ctrl-C, then kill the whole process group if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def reliable(depth=100):
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy

    return QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE)


class Listener:
    def __init__(self, ros, msg_type, topic, qos):
        self.rclpy, self.node = ros
        self.msgs = []
        self.sub = self.node.create_subscription(msg_type, topic, self.msgs.append, qos)

    def wait(self, predicate=lambda msgs: bool(msgs), timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self.msgs):
                return self.msgs
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
        raise TimeoutError(f"{self.sub.topic_name}: condition not met within {timeout} s ({len(self.msgs)} messages)")


def wait_for_subscribers(ros, pub, timeout=10.0):
    rclpy, node = ros
    end = time.monotonic() + timeout
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)


def pose_msg(node, xyz, quat=(1.0, 0.0, 0.0, 0.0)):
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    msg.header.frame_id = "world"
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, xyz)
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = quat
    return msg


class ControlClient:
    """Sends next-best poses to a running control node and reads its results and ee pose."""

    def __init__(self, ros):
        from geometry_msgs.msg import PoseStamped
        from std_msgs.msg import String

        from arm_control.topics import TOPIC_CONTROL_RESULT, TOPIC_EE_POSE, TOPIC_NEXT_BEST_POSE

        self.ros = ros
        self.pub = ros[1].create_publisher(PoseStamped, TOPIC_NEXT_BEST_POSE, reliable(1000))
        self.results = Listener(ros, String, TOPIC_CONTROL_RESULT, reliable(1000))
        self.ee = Listener(ros, PoseStamped, TOPIC_EE_POSE, reliable(10))
        self.ee.wait(timeout=60)
        wait_for_subscribers(ros, self.pub)

    def send(self, xyz, quat=(1.0, 0.0, 0.0, 0.0), timeout=30.0) -> str:
        n = len(self.results.msgs)
        self.pub.publish(pose_msg(self.ros[1], xyz, quat))
        return self.results.wait(lambda m: len(m) > n, timeout)[n].data

    def ee_position(self):
        time.sleep(0.3)
        self.ee.wait(lambda m: len(m) > 0)
        p = self.ee.msgs[-1].pose.position
        return [p.x, p.y, p.z]
