"""The recorder node: chosen topics -> one rosbag2 (MCAP) directory per episode.

Episode protocol (``episode_topic``, default ``/arm/episode``, std_msgs/String, reliable):

* ``start NAME`` opens ``OUTPUT_DIR/NAME/`` (NAME may hold ``/``: ``reach_target/seed_000003``;
  ``start`` alone names it ``episode_<UTC time>``). A ``start`` while an episode is open ends
  that one first (as an ``end`` received at the same time would). An existing bag is never
  overwritten: ``start`` of an existing name is refused (logged) and nothing is recorded.
* ``end`` (or ``end NAME`` naming the open episode) closes it; ``abort`` drops it (no bag).
* On shutdown (SIGINT/SIGTERM) the open episode is closed cleanly. metadata.yaml's custom_data
  says how each bag ended: ``arm.episode_end`` = ``end`` | ``next_start`` | ``shutdown``.

Publishers of the episode topic must wait until the recorder's subscription has matched
(``publisher.get_subscription_count() > 0``) before sending ``start``, as with any reliable topic.

Bags are written through :class:`arm_perception.bag_writer.RawEpisodeWriter`: messages arrive
serialized (``raw=True`` subscriptions) and go into the bag unchanged, staged under
``NAME.partial/`` and renamed into place on close, so a crash (even SIGKILL) loses at most the
episode in flight, left as ``NAME.partial``; finished episodes are complete bags.

Details that keep episode boundaries exact:

* Log time = the time the message was received (rmw ``received_timestamp``, ns, system clock).
* A message belongs to the episode whose ``start`` and ``end`` were received before and after
  it, whatever order the executor hands the callbacks out in: an ``end`` keeps the bag open for
  ``end_grace`` seconds to collect messages received before the ``end``, and messages received
  outside an episode wait ``pre_buffer`` seconds for a ``start`` received before them.
* Latched (transient-local) topics, such as the camera pose published once, are cached and
  written at the start of every episode, so each bag is complete on its own.
* Topics are subscribed to once they have a publisher (checked every ``discovery_period``
  seconds), with a QoS that matches all their publishers (see :mod:`arm_bringup.topic_tools`).

Parameters: ``topics`` (string array), ``output_dir`` (``bags``), ``episode_topic``,
``compress`` (true: zstd MCAP chunks), ``end_grace`` (0.25 s), ``pre_buffer`` (1.0 s),
``discovery_period`` (0.5 s).
"""
from __future__ import annotations

import datetime as _dt
import time
from collections import deque
from pathlib import Path, PurePosixPath
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from std_msgs.msg import String

from arm_control import topics
from arm_control.graph import RECORD, qos_profile
from arm_control.node_main import declare, run_node
from arm_perception.bag_codec import LATCHED_QOS, TYPESTORE
from arm_perception.bag_format import ALL_TOPICS, PARTIAL_SUFFIX
from arm_perception.bag_writer import RawEpisodeWriter

__all__ = ["DEFAULT_TOPICS", "Recorder", "main", "parse_episode_command"]

#: Recorded unless ``topics`` says otherwise: what the live graph publishes about an episode
#: (the episode bag format's topics, then the goals and their results).
DEFAULT_TOPICS: tuple[str, ...] = ALL_TOPICS + (
    topics.TOPIC_NEXT_BEST_POSE,
    topics.TOPIC_GRIPPER_GOAL,
    topics.TOPIC_CONTROL_RESULT,
)


def parse_episode_command(text: str) -> tuple[str, str | None]:
    """``"start ep_1"`` -> ``("start", "ep_1")``; raises ValueError for anything else."""
    parts = text.strip().split(None, 1)
    if not parts:
        raise ValueError("empty episode command")
    verb = parts[0].lower()
    name = parts[1].strip() if len(parts) > 1 else None
    if verb not in ("start", "end", "abort"):
        raise ValueError(f"unknown episode command {text!r}: expected start NAME, end or abort")
    if name is not None and verb == "start":
        _check_name(name)
    return verb, name


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if (not name or path.is_absolute() or any(p in ("", ".", "..") for p in name.split("/"))
            or name.endswith(PARTIAL_SUFFIX) or "\\" in name):
        raise ValueError(f"bad episode name {name!r}: a relative path without '..' or "
                         f"'{PARTIAL_SUFFIX}'")


class _Episode:
    def __init__(self, name: str, writer: RawEpisodeWriter, start_ns: int) -> None:
        self.name = name
        self.writer = writer
        self.start_ns = start_ns
        self.end_ns: int | None = None  # receive time of its end (or of the next start)
        self.close_at: float | None = None  # monotonic time to close it (end + grace)
        self.reason = "shutdown"

    def takes(self, stamp: int) -> bool:
        return stamp >= self.start_ns and (self.end_ns is None or stamp <= self.end_ns)


class Recorder(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        recorded = declare(self, "topics", list(DEFAULT_TOPICS), "Topics to record ('/' is "
                           "prepended where missing); each is subscribed to once it has a "
                           "publisher, with a QoS that matches all its publishers.")
        output_dir = declare(self, "output_dir", "bags", "Folder of the bags: one OUTPUT_DIR/NAME/ "
                             "per episode, staged as NAME.partial/ until it is closed.")
        episode_topic = declare(self, "episode_topic", topics.TOPIC_EPISODE, "Topic of the "
                                "episode commands (std_msgs/String): 'start NAME', 'end', 'abort'.")
        compress = declare(self, "compress", True, "true: zstd-compressed MCAP chunks.")
        end_grace = declare(self, "end_grace", 0.25, "Seconds a bag stays open after 'end' for "
                            "the messages received before the 'end'.")
        pre_buffer = declare(self, "pre_buffer", 1.0, "Seconds a message received outside an "
                             "episode waits for a 'start' received before it.")
        discovery_period = declare(self, "discovery_period", 0.5, "Seconds between checks for "
                                   "publishers of the topics not subscribed to yet.")
        self.topics = [t if t.startswith("/") else "/" + t for t in recorded if t]
        self.output_dir = Path(output_dir).expanduser()
        self.compress = bool(compress)
        self.end_grace = float(end_grace)
        self.pre_buffer_ns = int(float(pre_buffer) * 1e9)
        self._subs: dict[str, tuple[Any, str, bool]] = {}  # topic -> (subscription, type, latched)
        self._warned: set[str] = set()
        self._latched: dict[str, tuple[bytes, int]] = {}
        self._buffer: deque[tuple[int, str, bytes]] = deque()
        self.episode: _Episode | None = None  # open: takes messages received after its start
        self._closing: list[_Episode] = []  # ended: take what was received before the end
        self.finished: list[Path] = []

        # Callback order across subscriptions is the executor's (creation order within one
        # wake-up), not arrival order: messages are routed to episodes by receive time instead.
        self._discover()
        self.create_subscription(String, episode_topic, self._on_episode, RECORD)
        self.create_timer(float(discovery_period), self._discover)
        self.create_timer(0.05, self._tick)
        self.get_logger().info(
            f"recording {len(self.topics)} topics to {self.output_dir}/<episode>/ on "
            f"'start <episode>' / 'end' from {episode_topic}")

    # ------------------------------------------------------------------ subscriptions
    def _discover(self) -> None:
        graph = {name: types for name, types in self.get_topic_names_and_types()}
        for topic in self.topics:
            if topic in self._subs or topic not in graph:
                continue
            types = graph[topic]
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue  # choose the QoS once someone publishes it
            if len(types) != 1:
                self._warn_once(topic, f"{topic} has several types {types}; not recording it")
                continue
            msgtype = types[0]
            try:
                TYPESTORE.get_msgdef(msgtype)
                cls = _message_class(msgtype)
            except Exception as err:  # noqa: BLE001
                self._warn_once(topic, f"cannot record {topic} ({msgtype}): {err}")
                continue
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                          for i in infos)
            qos = qos_profile(topics.QosSpec(
                topics.RELIABLE if reliable else topics.BEST_EFFORT,
                topics.TRANSIENT_LOCAL if latched else topics.VOLATILE,
                topics.QOS_RECORD.depth))
            sub = self.create_subscription(
                cls, topic, lambda data, info, t=topic: self._on_message(t, data, info),
                qos, raw=True)
            self._subs[topic] = (sub, msgtype, latched)
            for ep in (self.episode, *self._closing):
                if ep is not None:
                    self._add_topic(ep.writer, topic)
            self.get_logger().info(f"subscribed to {topic} [{msgtype}]"
                                   + (" (latched)" if latched else ""))

    def _warn_once(self, topic: str, text: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            self.get_logger().warning(text)

    def _add_topic(self, writer: RawEpisodeWriter, topic: str) -> None:
        _, msgtype, latched = self._subs[topic]
        writer.add_topic(topic, msgtype, LATCHED_QOS if latched else None)

    # ------------------------------------------------------------------ messages
    def _on_message(self, topic: str, data: bytes, info: Any) -> None:
        stamp = _received_ns(info)
        latched = self._subs[topic][2]
        if latched:
            if topic not in self._latched:
                self.get_logger().info(f"latched {topic}: cached for every episode")
            self._latched[topic] = (data, stamp)
        ep = self.episode
        if ep is not None and latched:
            # the current state of a latched topic belongs to the open episode, even when
            # it was received (or handed out by the executor) around the start
            self._write(ep, topic, data, max(stamp, ep.start_ns))
            return
        for candidate in (ep, *self._closing):
            if candidate is not None and candidate.takes(stamp):
                self._write(candidate, topic, data, stamp)
                return
        self._buffer.append((stamp, topic, data))
        self._trim_buffer(stamp)

    def _write(self, ep: _Episode, topic: str, data: bytes, stamp: int) -> None:
        try:
            ep.writer.write(topic, data, stamp)
        except Exception as err:  # noqa: BLE001 - one bad message must not stop recording
            self.get_logger().error(f"{ep.name}: cannot write a message of {topic}: {err}")

    def _trim_buffer(self, now_ns: int) -> None:
        while self._buffer and self._buffer[0][0] < now_ns - self.pre_buffer_ns:
            self._buffer.popleft()

    # ------------------------------------------------------------------ episodes
    def _on_episode(self, msg: String, info: Any) -> None:  # two arguments: rclpy passes info
        stamp = _received_ns(info)
        try:
            verb, name = parse_episode_command(msg.data)
        except ValueError as err:
            self.get_logger().error(str(err))
            return
        if verb == "start":
            self.start_episode(name or _auto_name(), stamp)
        elif verb == "end":
            ep = self.episode
            if ep is None:
                self.get_logger().warning(f"'{msg.data}' but no episode is open")
            elif name is not None and name != ep.name:
                self.get_logger().warning(f"'{msg.data}' but the open episode is {ep.name}; "
                                          f"ignored")
            else:
                self._end(stamp, "end")
        else:
            self.abort_episode()

    def _end(self, stamp: int, reason: str) -> None:
        """The open episode stops taking messages received after ``stamp``; closes later."""
        ep, self.episode = self.episode, None
        if ep is None:
            return
        ep.end_ns, ep.reason = stamp, reason
        ep.close_at = time.monotonic() + self.end_grace
        self._closing.append(ep)

    def start_episode(self, name: str, start_ns: int | None = None) -> None:
        """Open OUTPUT_DIR/name; an open episode ends at ``start_ns`` (reason next_start)."""
        start_ns = time.time_ns() if start_ns is None else start_ns
        self._end(start_ns, "next_start")
        for ep in list(self._closing):
            if ep.name == name:  # same bag path: finish it now (the new one is then refused)
                self._close(ep)
        try:
            writer = RawEpisodeWriter(self.output_dir / name, compress=self.compress)
            writer.set_custom_data("arm.episode_name", name)
            for topic in self._subs:
                self._add_topic(writer, topic)
            writer.open()
        except Exception as err:  # noqa: BLE001 - e.g. the bag exists: never overwrite
            self.get_logger().error(f"cannot start episode {name}: {err}")
            return
        ep = _Episode(name, writer, start_ns)
        self.episode = ep
        # Latched topics first (stamped at the start), then what arrived since the start.
        early = {topic for stamp, topic, _ in self._buffer if stamp >= start_ns}
        for topic, (data, _) in self._latched.items():
            if topic not in early:
                self._write(ep, topic, data, start_ns)
        kept: deque[tuple[int, str, bytes]] = deque()
        for stamp, topic, data in self._buffer:
            if stamp >= start_ns:
                self._write(ep, topic, data, stamp)
            else:
                kept.append((stamp, topic, data))
        self._buffer = kept
        self.get_logger().info(f"episode {name}: recording to {writer.partial_path}")

    def _close(self, ep: _Episode) -> Path | None:
        if ep in self._closing:
            self._closing.remove(ep)
        if ep is self.episode:
            self.episode = None
        ep.writer.set_custom_data("arm.episode_end", ep.reason)
        counts = ep.writer.counts()
        try:
            path = ep.writer.close()
        except ValueError as err:  # no messages: no bag
            self.get_logger().warning(f"episode {ep.name}: {err}")
            return None
        except Exception as err:  # noqa: BLE001
            self.get_logger().error(f"episode {ep.name}: closing the bag failed: {err}")
            return None
        self.finished.append(path)
        summary = ", ".join(f"{t}: {n}" for t, n in counts.items() if n)
        self.get_logger().info(f"episode {ep.name} ({ep.reason}) -> {path} [{summary}]")
        return path

    def close_all(self) -> None:
        """Close every episode now (shutdown): ended ones first, then the open one."""
        for ep in list(self._closing):
            self._close(ep)
        if self.episode is not None:
            self.episode.reason = "shutdown"
            self._close(self.episode)

    def destroy_node(self) -> None:
        """Close the open episodes first (shutdown), so their bags are complete."""
        self.close_all()
        super().destroy_node()

    def abort_episode(self) -> None:
        ep, self.episode = self.episode, None
        if ep is not None:
            ep.writer.abort()
            self.get_logger().info(f"episode {ep.name} aborted; no bag written")

    def _tick(self) -> None:
        now = time.monotonic()
        for ep in list(self._closing):
            if ep.close_at is not None and now >= ep.close_at:
                self._close(ep)
        self._trim_buffer(time.time_ns())


def _received_ns(info: Any) -> int:
    stamp = info.get("received_timestamp") if isinstance(info, dict) else None
    return int(stamp) if stamp else time.time_ns()


def _auto_name() -> str:
    return "episode_" + _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d_%H%M%S_%f")


def _message_class(msgtype: str) -> type:
    from arm_bringup.topic_tools import get_message

    return get_message(msgtype)


def main(args: list[str] | None = None) -> None:
    run_node(Recorder, "recorder", args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
