"""``arm topic list|echo|hz``: the topic tools of ``ros2 topic`` for machines without ros2cli.

Each call starts a short-lived hidden node (``_arm_topic_<pid>``) in its own rclpy context,
waits for discovery, does its job and tears the node down again.

* Types come from the graph (``get_topic_names_and_types``); message classes are imported
  by name (``rosidl_runtime_py.utilities.get_message`` where installed, else ``pkg.msg``).
* QoS, as ``ros2 topic echo`` chooses it: the subscription is RELIABLE only if every
  discovered publisher is reliable, TRANSIENT_LOCAL only if every one is transient-local,
  else BEST_EFFORT / VOLATILE. The QoS matching rules make this the only choice that works for
  both kinds: a reliable subscription does not match a best-effort publisher, a
  transient-local subscription does not match a volatile publisher, and a best-effort or
  volatile subscription matches everything but receives no latched (historical) samples.
* ``echo`` prints each message like ``ros2 topic echo``: YAML, nested fields indented, arrays
  and strings longer than ``truncate_length`` (128) cut with a trailing ``...``,
  ``--no-arr`` / ``--no-str`` replace them by a summary, ``---`` after every message.
* ``hz`` uses a raw (serialized) subscription: rates of image topics are measured without
  deserializing the images.

Exit codes: 0 ok (Ctrl-C included); 1 when the topic does not appear (or, with ``--once``, no
message arrives) within the timeout, with a message on stderr naming the topic; 2 for bad usage.
"""
from __future__ import annotations

import array
import importlib
import math
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import yaml

__all__ = [
    "choose_qos",
    "get_message",
    "message_to_yaml",
    "message_to_dict",
    "topic_echo",
    "topic_hz",
    "topic_list",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


class TopicToolError(Exception):
    """A failure to report on stderr with exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_NOT_FOUND) -> None:
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------- messages

def get_message(type_name: str) -> type:
    """``pkg/msg/Type`` (or ``pkg/Type``) -> the generated Python message class."""
    try:
        from rosidl_runtime_py.utilities import get_message as _get  # type: ignore

        return _get(type_name)
    except ImportError:
        pass
    except (AttributeError, ValueError, ModuleNotFoundError) as err:
        raise TopicToolError(f"unknown message type {type_name!r}: {err}", EXIT_USAGE) from err
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise TopicToolError(f"bad message type {type_name!r}: expected pkg/msg/Type", EXIT_USAGE)
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise TopicToolError(
            f"message type {type_name} is not installed in this Python environment "
            f"(pip install ros-{pkg.replace('_', '-')}?): {err}", EXIT_USAGE) from err


def _is_message(value: Any) -> bool:
    return hasattr(type(value), "get_fields_and_field_types")


def _summary(field_type: str, length: int) -> str:
    if field_type.startswith("sequence<"):
        inner = field_type[len("sequence<"):-1].split(",")[0].strip()
        return f"<sequence type: {inner}, length: {length}>"
    return f"<array type: {field_type}>"


def _convert(value: Any, field_type: str, truncate_length: int | None, no_arr: bool,
             no_str: bool) -> Any:
    if _is_message(value):
        return message_to_dict(value, truncate_length=truncate_length, no_arr=no_arr,
                               no_str=no_str)
    if isinstance(value, (bytes, bytearray)) and len(value) == 1 and "[" not in field_type \
            and "sequence" not in field_type:
        return value[0]  # a single byte
    if isinstance(value, (list, tuple, array.array, bytes, bytearray)) or (
            hasattr(value, "shape") and hasattr(value, "tolist") and getattr(value, "ndim", 0)):
        if no_arr:
            return _summary(field_type, len(value))
        items = value[:truncate_length] if truncate_length is not None \
            and len(value) > truncate_length else value
        inner = field_type
        if inner.startswith("sequence<"):
            inner = inner[len("sequence<"):-1].split(",")[0].strip()
        elif "[" in inner:
            inner = inner[: inner.index("[")]
        if isinstance(items, (bytes, bytearray)):
            out: list[Any] = list(items)
        elif hasattr(items, "tolist"):
            out = items.tolist()
        else:
            out = [_convert(v, inner, truncate_length, no_arr, no_str) for v in items]
        if len(items) < len(value):
            out.append("...")
        return out
    if isinstance(value, str):
        if no_str:
            return f"<string length: {len(value)}>"
        if truncate_length is not None and len(value) > truncate_length:
            return value[:truncate_length] + "..."
        return value
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def message_to_dict(msg: Any, *, truncate_length: int | None = 128, no_arr: bool = False,
                    no_str: bool = False) -> dict[str, Any]:
    """A message as nested dicts/lists of plain values, in field order."""
    out: dict[str, Any] = {}
    for name, field_type in msg.get_fields_and_field_types().items():
        out[name] = _convert(getattr(msg, name), field_type, truncate_length, no_arr, no_str)
    return out


class _Dumper(yaml.SafeDumper):
    pass


def _float_repr(dumper: yaml.SafeDumper, value: float) -> Any:
    if math.isnan(value):
        text = ".nan"
    elif math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    else:
        text = repr(value)
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


_Dumper.add_representer(float, _float_repr)


def message_to_yaml(msg: Any, *, truncate_length: int | None = 128, no_arr: bool = False,
                    no_str: bool = False) -> str:
    """YAML text of a message (or of a plain field value), like ``ros2 topic echo``."""
    if _is_message(msg):
        data: Any = message_to_dict(msg, truncate_length=truncate_length, no_arr=no_arr,
                                    no_str=no_str)
    else:
        data = _convert(msg, "", truncate_length, no_arr, no_str)
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=1 << 20)


def _get_field(msg: Any, path: str | None) -> Any:
    if not path:
        return msg
    value = msg
    for part in path.split("."):
        if not hasattr(value, part):
            raise TopicToolError(f"message has no field {path!r} ({part!r} is not a field of "
                                 f"{type(value).__name__})", EXIT_USAGE)
        value = getattr(value, part)
    return value


# ----------------------------------------------------------------------------- ROS session

def _normalize(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


@contextmanager
def _session() -> Iterator[tuple[Any, Any]]:
    """(node, executor) of a fresh hidden node; Ctrl-C and SIGTERM raise KeyboardInterrupt."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term) \
        if sys.platform != "win32" and _main_thread() else None
    context = Context()
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = Node(f"_arm_topic_{os.getpid()}", context=context, enable_rosout=False,
                start_parameter_services=False)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown(timeout_sec=0.5)
        node.destroy_node()
        context.try_shutdown()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _spin_for(executor: Any, seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        executor.spin_once(timeout_sec=min(0.05, left))


#: Fast DDS finds a running participant in ~0.15 s, or, when the first announcements are
#: missed, only at its next periodic announcement (every 3 s): measured here, 0.13-3.1 s.
DISCOVERY_ANNOUNCEMENT_PERIOD = 3.0


def _discover_graph(node: Any, executor: Any, spin_time: float,
                    settle: float = 0.5) -> dict[str, list[str]]:
    """Topics after at least ``spin_time`` s and ``settle`` s without change.

    Until another node has been seen, keep listening up to one Fast DDS announcement period
    longer, so a missed first announcement does not make a busy graph look empty.
    """
    start = time.monotonic()
    last_change = start
    topics: dict[str, list[str]] = {}
    own = node.get_name()
    while True:
        executor.spin_once(timeout_sec=0.05)
        now = time.monotonic()
        current = _topic_types(node)
        if current != topics:
            topics, last_change = current, now
        elapsed = now - start
        if elapsed < spin_time or now - last_change < settle:
            continue
        others = [n for n in node.get_node_names() if n != own]
        if others or elapsed >= spin_time + DISCOVERY_ANNOUNCEMENT_PERIOD:
            return topics


def _deadline(timeout: float | None) -> float:
    return math.inf if not timeout or timeout <= 0 else time.monotonic() + timeout


def _topic_types(node: Any) -> dict[str, list[str]]:
    return {name: list(types) for name, types in node.get_topic_names_and_types()}


def _wait_for_publishers(node: Any, executor: Any, topic: str, deadline: float) -> list[str]:
    """Types of ``topic`` once it has a publisher (or at the deadline: whatever is known)."""
    while True:
        types = _topic_types(node).get(topic, [])
        if types and node.count_publishers(topic) > 0:
            return types
        if time.monotonic() >= deadline:
            return types
        executor.spin_once(timeout_sec=0.05)


def choose_qos(node: Any, topic: str, reliability: str | None = None,
               durability: str | None = None, depth: int = 10) -> Any:
    """A subscription QoS that matches every discovered publisher of ``topic`` (module doc)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    reliable = bool(infos) and all(
        i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = bool(infos) and all(
        i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    if reliability is not None:
        reliable = reliability == "reliable"
    if durability is not None:
        latched = durability == "transient_local"
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def _resolve_type(node: Any, executor: Any, topic: str, msg_type: str | None,
                  deadline: float, timeout: float | None, err: IO[str]) -> str:
    types = _wait_for_publishers(node, executor, topic, deadline)
    if msg_type:
        if types and msg_type not in types and _canonical(msg_type) not in types:
            raise TopicToolError(f"topic {topic} has type {', '.join(types)}, not {msg_type}",
                                 EXIT_USAGE)
        return _canonical(msg_type)
    if not types:
        known = sorted(_topic_types(node))
        raise TopicToolError(
            f"topic {topic} did not appear within {timeout:g} s"
            + (f" (known topics: {', '.join(known)})" if known else " (no topics discovered)")
        )
    if len(types) > 1:
        raise TopicToolError(f"topic {topic} has more than one type ({', '.join(types)}); "
                             f"pass the one to use", EXIT_USAGE)
    if node.count_publishers(topic) == 0:
        print(f"arm topic: {topic} has no publisher yet; waiting for one", file=err, flush=True)
    return types[0]


def _canonical(msg_type: str) -> str:
    parts = msg_type.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msg_type


def _report(fn: Any) -> Any:
    """Turn TopicToolError into a message + exit code, Ctrl-C into 0, a closed pipe into 0."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        err = kwargs.get("err") or sys.stderr
        try:
            return fn(*args, **kwargs)
        except TopicToolError as exc:
            print(f"arm topic: {exc}", file=err, flush=True)
            return exc.code
        except KeyboardInterrupt:
            return EXIT_OK
        except BrokenPipeError:
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
            except OSError:
                pass
            return EXIT_OK

    return wrapper


# ----------------------------------------------------------------------------- commands

@_report
def topic_list(*, show_types: bool = False, spin_time: float = 0.5,
               include_hidden: bool = False, out: IO[str] | None = None,
               err: IO[str] | None = None) -> int:
    """Print the topics of the graph, one per line (``-t``: with ``[type]``)."""
    out = out or sys.stdout
    with _session() as (node, executor):
        topics = _discover_graph(node, executor, spin_time)
    for name in sorted(topics):
        if not include_hidden and any(part.startswith("_") for part in name.split("/")):
            continue
        print(f"{name} [{', '.join(topics[name])}]" if show_types else name, file=out)
    out.flush()
    return EXIT_OK


@_report
def topic_echo(topic: str, msg_type: str | None = None, *, once: bool = False,
               timeout: float | None = 10.0, truncate_length: int | None = 128,
               no_arr: bool = False, no_str: bool = False, field: str | None = None,
               reliability: str | None = None, durability: str | None = None,
               count: int | None = None, out: IO[str] | None = None,
               err: IO[str] | None = None) -> int:
    """Print messages of ``topic`` as YAML, ``---`` after each; see the module docstring."""
    out = out or sys.stdout
    err = err or sys.stderr
    topic = _normalize(topic)
    if once:
        count = 1
    with _session() as (node, executor):
        deadline = _deadline(timeout)
        type_name = _resolve_type(node, executor, topic, msg_type, deadline, timeout, err)
        cls = get_message(type_name)
        qos = choose_qos(node, topic, reliability, durability)
        printed = 0

        def on_message(msg: Any) -> None:
            nonlocal printed
            if count is not None and printed >= count:
                return
            text = message_to_yaml(_get_field(msg, field), truncate_length=truncate_length,
                                   no_arr=no_arr, no_str=no_str)
            out.write(text)
            out.write("---\n")
            out.flush()
            printed += 1

        node.create_subscription(cls, topic, on_message, qos)
        while count is None or printed < count:
            if count is not None and time.monotonic() >= deadline:
                raise TopicToolError(f"no message on {topic} within {timeout:g} s")
            executor.spin_once(timeout_sec=0.1)
    return EXIT_OK


@_report
def topic_hz(topic: str, msg_type: str | None = None, *, window: int = 10000,
             timeout: float | None = 10.0, duration: float | None = None,
             report_period: float = 1.0, out: IO[str] | None = None,
             err: IO[str] | None = None) -> int:
    """Print the receive rate of ``topic`` every second, like ``ros2 topic hz``.

    ``window``: how many of the latest intervals the statistics cover. ``duration``: stop after
    that many seconds (exit 1 if no two messages arrived); default: until Ctrl-C.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    topic = _normalize(topic)
    if window < 1:
        raise TopicToolError("--window must be at least 1", EXIT_USAGE)
    with _session() as (node, executor):
        deadline = _deadline(timeout)
        type_name = _resolve_type(node, executor, topic, msg_type, deadline, timeout, err)
        cls = get_message(type_name)
        qos = choose_qos(node, topic)
        times: deque[float] = deque(maxlen=window + 1)
        received = 0

        def on_message(data: bytes, info: Any) -> None:
            nonlocal received
            stamp = info.get("received_timestamp") if isinstance(info, dict) else None
            times.append(stamp / 1e9 if stamp else time.time())
            received += 1

        node.create_subscription(cls, topic, on_message, qos, raw=True)
        start = time.monotonic()
        stop_at = math.inf if not duration else start + duration
        next_report = start + report_period
        last_reported = 0
        reports = 0
        while time.monotonic() < stop_at:
            executor.spin_once(timeout_sec=min(0.05, max(0.0, next_report - time.monotonic())))
            if time.monotonic() < next_report:
                continue
            next_report += report_period
            if received == last_reported:
                print("no new messages", file=out, flush=True)
                continue
            if len(times) < 2:
                continue
            last_reported = received
            stamps = list(times)
            intervals = [b - a for a, b in zip(stamps, stamps[1:])]
            mean = sum(intervals) / len(intervals)
            std = math.sqrt(sum((d - mean) ** 2 for d in intervals) / len(intervals))
            rate = 1.0 / mean if mean > 0 else 0.0
            print(f"average rate: {rate:.3f}\n\tmin: {min(intervals):.3f}s "
                  f"max: {max(intervals):.3f}s std dev: {std:.5f}s window: {len(stamps)}",
                  file=out, flush=True)
            reports += 1
        if duration and reports == 0:
            raise TopicToolError(f"fewer than two messages on {topic} in {duration:g} s")
    return EXIT_OK
