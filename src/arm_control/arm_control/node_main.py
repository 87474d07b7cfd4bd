"""The `main()` every node of ours shares: init, build, spin, shut down cleanly.

A node whose constructor rejects a parameter (ValueError) logs the reason as FATAL and exits 2;
Ctrl-C and SIGTERM end it with 0.
"""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(factory: Callable[[], Node], name: str, args=None) -> None:
    try:
        with rclpy.init(args=args):
            try:
                node = factory()
            except ValueError as err:  # a bad parameter (unknown task, planner, ...): say which
                rclpy.logging.get_logger(name).fatal(str(err))
                raise SystemExit(2) from err
            try:
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():  # a real error; otherwise a callback raced the shutdown signal
            raise
