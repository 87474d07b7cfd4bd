"""The `main()` every node of ours shares: init, build, spin, shut down cleanly.

Exit codes, which the launcher reads (a node that exits 2 is never respawned):
- 0: Ctrl-C or SIGTERM;
- 2: the constructor rejected a parameter (ValueError) or ROS arguments; the reason is logged FATAL;
- 1: anything else went wrong (a crash while building or spinning the node); logged FATAL
  with the traceback, so a dead node never looks like a clean stop.
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def _fatal(name: str, what: str, err: BaseException, code: int) -> SystemExit:
    rclpy.logging.get_logger(name).fatal(f"{what}: {err}")
    if code != 2:
        print(traceback.format_exc(), file=sys.stderr, flush=True)
    return SystemExit(code)


def run_node(factory: Callable[[], Node], name: str, args=None) -> None:
    try:
        context = rclpy.init(args=args)
    except Exception as err:  # unparseable --ros-args and the like
        raise _fatal(name, "cannot initialise ROS", err, 2) from err
    try:
        with context:
            try:
                node = factory()
            except ValueError as err:  # a bad parameter (unknown task, planner, ...): say which
                raise _fatal(name, "bad parameter", err, 2) from err
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception as err:
                raise _fatal(name, "could not start", err, 1) from err
            try:
                rclpy.spin(node)
            except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
                raise
            except Exception as err:
                # With the context already shut down this is a callback racing the shutdown
                # signal, not a crash; while it is up, it is a crash and must not exit 0.
                if rclpy.ok():
                    raise _fatal(name, "crashed", err, 1) from err
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
