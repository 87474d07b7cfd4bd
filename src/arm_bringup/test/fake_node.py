#!/usr/bin/env python3
"""Tiny nodes for the launcher, topic-tool and recorder tests (not installed).

    fake_node.py talker  [--ros-args ...]   rclpy node: params topic, rate, greeting, names,
                                            latched; prints "ready fqn=... pid=..."
    fake_node.py sleeper [--exit-after S] [--code K] [--ignore-sigint] [--grandchild]
                         [--count-file F] [--ros-args ...]   no ROS: prints, waits, exits

Every line is flushed, so the launcher's prefixing can be checked line by line.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def talker(argv: list[str]) -> int:
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from arm_control.node_main import declare, run_node

    def build() -> Node:
        node = Node("talker")
        topic = declare(node, "topic", "chatter", "topic to publish on")
        rate = declare(node, "rate", 10.0, "messages per second (unless latched)")
        greeting = declare(node, "greeting", "hello", "text of each message, before its count")
        names = declare(node, "names", ["a", "b"], "names printed in the ready line")
        latched = bool(declare(node, "latched", False, "publish once, transient local"))
        qos = QoSProfile(depth=1 if latched else 10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else
                         DurabilityPolicy.VOLATILE)
        pub = node.create_publisher(String, topic, qos)
        count = 0

        def tick() -> None:
            nonlocal count
            count += 1
            pub.publish(String(data=f"{greeting} {count}"))

        if latched:
            tick()  # once, for late joiners
        else:
            node.create_timer(1.0 / float(rate), tick)
        print(f"ready fqn={node.get_fully_qualified_name()} pid={os.getpid()} "
              f"greeting={greeting} rate={rate} names={','.join(names)}", flush=True)
        return node

    run_node(build, "talker", argv)
    print("talker stopped", flush=True)
    return 0


def sleeper(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--code", type=int, default=0)
    parser.add_argument("--ignore-sigint", action="store_true")
    parser.add_argument("--grandchild", action="store_true")
    parser.add_argument("--count-file")
    args = parser.parse_args(argv[: argv.index("--ros-args")] if "--ros-args" in argv else argv)
    if args.ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda *a: sys.exit(0))
    if args.count_file:
        with open(args.count_file, "a") as f:
            f.write(f"{os.getpid()}\n")
    print(f"pid={os.getpid()}", flush=True)
    print("second line", flush=True)
    print("on stderr", file=sys.stderr, flush=True)
    if args.grandchild:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(f"grandchild={child.pid}", flush=True)
    if args.exit_after is not None:
        time.sleep(args.exit_after)
        print(f"exiting with {args.code}", flush=True)
        return args.code
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    sys.exit(talker([sys.argv[0], *rest]) if mode == "talker" else sleeper(rest))
