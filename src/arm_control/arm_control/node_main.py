"""The `main()` every node of ours shares, and the one way they declare parameters.

Example (a whole node)::

    from rclpy.node import Node

    from arm_control.node_main import declare, run_node


    class Talker(Node):
        def __init__(self):
            super().__init__("talker")
            self.topic = declare(self, "topic", "chatter", "topic to publish on", read_only=True)
            self.rate = declare(self, "rate", 10.0, "messages per second")
            if not self.rate > 0:  # a bad parameter: exit code 2, the reason logged
                raise ValueError(f"parameter rate must be > 0, got {self.rate}")


    def main(args=None):
        run_node(Talker, "talker", args)

A node that does a job and exits instead of spinning passes ``run``, which gets the node and
returns the exit code::

    def main(args=None):
        run_node(EpisodeRunner, "episode_runner", args, run=EpisodeRunner.run)

Exit codes, which the launcher reads (a node that exits 2 is never respawned):
- 0: Ctrl-C or SIGTERM (also while ``run`` waits: KeyboardInterrupt, ExternalShutdownException),
  a spin that ends because the context was shut down, or ``run`` returning 0;
- 2: the constructor rejected a parameter (ValueError) or ROS arguments; the reason is logged FATAL;
- 1: anything else went wrong (a crash while building or spinning the node); logged FATAL
  with the traceback, so a dead node never looks like a clean stop. A RuntimeError out of
  ``run`` is a stop with a reason: logged FATAL without a traceback;
- N: what ``run`` returned.
"""
from __future__ import annotations

import sys
import traceback
from typing import Any, Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter

#: seconds; a spinning node looks at least this often whether ROS was shut down (Ctrl-C). rclpy
#: wakes the executor on SIGINT through a guard condition; CI once saw a perception node sleep on
#: in its wait for 30 s after SIGINT with nothing else to wake it. With a timeout a lost wake-up
#: costs at most this long.
SHUTDOWN_POLL = 0.5

__all__ = ["declare", "run_node"]


def declare(node: Node, name: str, default: Any, description: str, *, read_only: bool = False,
            dynamic_typing: bool = False, fallback: Any = None) -> Any:
    """Declare the parameter ``name`` of ``node`` with its description; return its value.

    Example::

        size = declare(self, "image_size", 128, "camera width and height in pixels")
        topic = declare(self, "topic", "/chatter", "topic to publish on", read_only=True)
        items = declare(self, "overrides", Parameter.Type.STRING_ARRAY, "FIELD=VALUE items",
                        fallback=[])

    ``default`` is the value unless ``--ros-args -p NAME:=VALUE`` (or a parameter file, or
    ``parameter_overrides``) sets it, and its type is the parameter's type. A
    :class:`rclpy.parameter.Parameter.Type` instead declares a typed parameter without a
    default; left unset, it reads as ``fallback``. ``dynamic_typing`` accepts a value of any
    type (``default`` may then be None: unset, it reads as ``fallback``). ``read_only``: the
    value is fixed once the node is built (``ros2 param set`` is refused). The description and
    both flags are what ``ros2 param describe`` shows.
    """
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     dynamic_typing=dynamic_typing)
    parameter = node.declare_parameter(name, default, descriptor)
    return fallback if parameter.type_ == Parameter.Type.NOT_SET else parameter.value


def _fatal(name: str, what: str, err: BaseException, code: int, trace: bool) -> SystemExit:
    rclpy.logging.get_logger(name).fatal(f"{what}: {err}")
    if trace:
        print(traceback.format_exc(), file=sys.stderr, flush=True)
    return SystemExit(code)


def _spin(node: Node) -> None:
    """rclpy.spin(node) on the global executor, with waits of at most SHUTDOWN_POLL."""
    executor = rclpy.get_global_executor()
    executor.add_node(node)
    try:
        while executor.context.ok():
            executor.spin_once(timeout_sec=SHUTDOWN_POLL)
    finally:
        executor.remove_node(node)


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None = None, *,
             run: Callable[[Node], int] | None = None) -> None:
    """Initialise ROS with ``args``, build the node with ``factory()``, spin it (or call
    ``run(node)``), then destroy it and shut ROS down.

    Example::

        def main(args=None):
            run_node(SimNode, "sim_node", args)

    ``name`` names the logger of the FATAL lines (the node may not exist yet). Returns after a
    clean stop (exit code 0); every other outcome raises SystemExit with the exit code of the
    module docstring (a non-zero return of ``run`` included), so a console script's
    ``sys.exit(main())`` and ``python -m`` exit with it alike.
    """
    try:
        context = rclpy.init(args=args)
    except Exception as err:  # unparseable --ros-args and the like
        raise _fatal(name, "cannot initialise ROS", err, 2, trace=False) from err
    code = 0
    try:
        with context:
            try:
                node = factory()
            except ValueError as err:  # a bad parameter (unknown task, planner, ...): say which
                raise _fatal(name, "bad parameter", err, 2, trace=False) from err
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception as err:
                raise _fatal(name, "could not start", err, 1, trace=True) from err
            try:
                if run is None:
                    _spin(node)
                else:
                    code = run(node) or 0
            except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
                raise
            except Exception as err:
                if run is not None and isinstance(err, RuntimeError):  # run's reason to stop
                    raise _fatal(name, "stopped", err, 1, trace=False) from err
                # With the context already shut down this is a callback racing the shutdown
                # signal, not a crash; while it is up, it is a crash and must not exit 0.
                if rclpy.ok():
                    raise _fatal(name, "crashed", err, 1, trace=True) from err
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        return
    if code:
        raise SystemExit(code)
