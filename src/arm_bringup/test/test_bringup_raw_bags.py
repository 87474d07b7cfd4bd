"""RawEpisodeWriter (arm_perception.bag_writer): serialized messages into one atomic MCAP episode bag."""
from __future__ import annotations

import pytest
from rosbags.rosbag2 import Reader

from arm_perception.bag_codec import LATCHED_QOS, TYPESTORE
from arm_perception.bag_reader import is_bag_dir
from arm_perception.bag_writer import RawEpisodeWriter

T = TYPESTORE.types


def cdr(msgtype: str, **fields) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(T[msgtype](**fields), msgtype))


def test_raw_messages_round_trip_with_topics_added_before_and_after_open(tmp_path):
    path = tmp_path / "task" / "ep_0"
    w = RawEpisodeWriter(path)
    w.add_topic("/a", "std_msgs/msg/String")
    w.set_custom_data("arm.episode_name", "ep_0")
    with w:
        assert w.partial_path.is_dir() and not path.exists()
        w.write("/a", cdr("std_msgs/msg/String", data="one"), 2_000)
        w.add_topic("/pose", "geometry_msgs/msg/PoseStamped", LATCHED_QOS)  # mid-episode
        w.add_topic("/a", "std_msgs/msg/String")  # again: no-op
        w.write("/a", cdr("std_msgs/msg/String", data="two"), 1_000)  # any order
        w.write("/a", cdr("std_msgs/msg/String", data="three"), 3_000)
    assert path.is_dir() and not w.partial_path.exists()
    assert w.counts() == {"/a": 3, "/pose": 0} and w.message_count == 3
    with Reader(path) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            "/a": "std_msgs/msg/String", "/pose": "geometry_msgs/msg/PoseStamped"}
        got = [(t, TYPESTORE.deserialize_cdr(raw, c.msgtype).data)
               for c, t, raw in reader.messages()]
    assert sorted(got) == [(1_000, "two"), (2_000, "one"), (3_000, "three")]
    assert "ep_0" in (path / "metadata.yaml").read_text()


def test_raw_writer_errors_and_no_empty_or_overwritten_bags(tmp_path):
    w = RawEpisodeWriter(tmp_path / "ep")
    with pytest.raises(ValueError, match="unknown"):
        w.add_topic("/x", "no_msgs/msg/Nothing")
    w.add_topic("/a", "std_msgs/msg/String")
    with pytest.raises(ValueError, match="already added"):
        w.add_topic("/a", "std_msgs/msg/Bool")
    with pytest.raises(RuntimeError, match="not open"):
        w.write("/a", b"", 0)
    w.open()
    with pytest.raises(KeyError, match="/b"):
        w.write("/b", b"", 0)
    with pytest.raises(ValueError, match="no messages"):
        w.close()
    assert not any(tmp_path.iterdir())  # nothing left behind
    with RawEpisodeWriter(tmp_path / "ep") as w2:
        w2.add_topic("/a", "std_msgs/msg/Bool")
        w2.write("/a", cdr("std_msgs/msg/Bool", data=True), 5)
    with pytest.raises(FileExistsError):
        RawEpisodeWriter(tmp_path / "ep")
    w3 = RawEpisodeWriter(tmp_path / "ep3")
    w3.add_topic("/a", "std_msgs/msg/Bool")
    w3.open()
    w3.write("/a", cdr("std_msgs/msg/Bool", data=True), 5)
    w3.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep"]
    assert is_bag_dir(tmp_path / "ep")
