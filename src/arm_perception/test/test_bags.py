"""Specification of the episode bag format: one rosbag2 (MCAP) per episode, written by
arm_perception.bag_writer and read back by arm_perception.bag_reader (the contract itself,
without rosbags, is tested in test_bag_format.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import StoragePlugin
from ruamel.yaml import YAML

from arm_perception import bag_codec, bag_format, bag_reader, bag_writer, bags
from arm_perception.bag_codec import OFFERED_QOS, TYPESTORE
from arm_perception.bag_format import (
    ALL_TOPICS,
    EPISODE_FORMAT_VERSION,
    TOPIC_CAMERA_INFO,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR,
    TOPIC_DEPTH,
    TOPIC_JOINT_STATES,
    TOPIC_REWARD,
    TOPIC_SUCCESS,
    TOPIC_TYPES,
    BagError,
    BagWarning,
)
from arm_perception.bag_reader import iter_episodes, read_episode
from arm_perception.bag_writer import EpisodeWriter, write_episode

H, W, T = 16, 16, 5
DT = 0.05


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def make_obs(rng: np.random.Generator, i: int) -> SimpleNamespace:
    extrinsics = np.eye(4)
    extrinsics[:3, :3] = _rot([0.3, -1.0, 0.2], 2.4)  # camera looking back at the table
    extrinsics[:3, 3] = [1.3, 0.05, 1.6]
    quat = rng.normal(size=4)
    quat /= np.linalg.norm(quat)
    return SimpleNamespace(
        front_rgb=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        front_depth=(0.5 + 2.0 * rng.random((H, W))).astype(np.float32),
        camera_intrinsics=np.array([[110.5, 0.0, 7.5], [0.0, 110.5, 7.5], [0.0, 0.0, 1.0]]),
        camera_extrinsics=extrinsics,
        joint_positions=rng.normal(size=7),
        joint_velocities=rng.normal(size=7),
        gripper_open=bool(i % 2 == 0),
        gripper_pose=np.concatenate([rng.normal(size=3), quat]),
        gripper_joint_positions=rng.random(2) * 0.04,
    )


def make_frames(seed: int = 0, n: int = T):
    rng = np.random.default_rng(seed)
    return [(1.0 + DT * i, make_obs(rng, i), float(i) / 10, i == n - 1) for i in range(n)]


@pytest.fixture
def frames():
    return make_frames()


@pytest.fixture
def bag(tmp_path, frames) -> Path:
    return write_episode(tmp_path / "ep_0000", frames)


@pytest.fixture(params=[True, False], ids=["zstd", "raw"])
def any_bag(request, tmp_path, frames) -> Path:
    """A bag with zstd-compressed MCAP chunks (the default) and one with raw chunks."""
    return write_episode(tmp_path / "ep_0000", frames, compress=request.param)


# --------------------------------------------------------------------------- round trip


def test_round_trip_gives_back_identical_arrays(any_bag, frames):
    ep = read_episode(any_bag)

    assert ep.path == any_bag and len(ep) == T
    np.testing.assert_allclose(ep.stamps, [f[0] for f in frames], rtol=0, atol=1e-9)
    obs = [f[1] for f in frames]
    assert ep.front_rgb.dtype == np.uint8 and ep.front_rgb.shape == (T, H, W, 3)
    np.testing.assert_array_equal(ep.front_rgb, np.stack([o.front_rgb for o in obs]))
    assert ep.front_depth.dtype == np.float32 and ep.front_depth.shape == (T, H, W)
    np.testing.assert_array_equal(ep.front_depth, np.stack([o.front_depth for o in obs]))
    np.testing.assert_array_equal(ep.joint_positions, np.stack([o.joint_positions for o in obs]))
    np.testing.assert_array_equal(ep.joint_velocities, np.stack([o.joint_velocities for o in obs]))
    np.testing.assert_array_equal(
        ep.gripper_joint_positions, np.stack([o.gripper_joint_positions for o in obs])
    )
    np.testing.assert_array_equal(ep.gripper_pose, np.stack([o.gripper_pose for o in obs]))
    np.testing.assert_array_equal(ep.gripper_open, [o.gripper_open for o in obs])
    assert ep.gripper_open.dtype == bool and ep.success.dtype == bool
    np.testing.assert_array_equal(ep.reward, np.float32([f[2] for f in frames]))
    np.testing.assert_array_equal(ep.success, [f[3] for f in frames])
    np.testing.assert_array_equal(ep.camera_intrinsics, obs[0].camera_intrinsics)
    # Extrinsics travel as position + quaternion: equal to float64 rounding.
    np.testing.assert_allclose(ep.camera_extrinsics, obs[0].camera_extrinsics, rtol=0, atol=1e-14)


def test_camera_pose_with_negative_quaternion_w_and_180_degree_rotations(tmp_path):
    for k, rot in enumerate([_rot([1, 0, 0], np.pi), _rot([0, 1, 1], np.pi), _rot([1, 2, 3], 3.1)]):
        frames = make_frames(seed=k, n=2)
        for _, obs, _, _ in frames:
            obs.camera_extrinsics = np.eye(4)
            obs.camera_extrinsics[:3, :3] = rot
        ep = read_episode(write_episode(tmp_path / f"ep{k}", frames))
        np.testing.assert_allclose(ep.camera_extrinsics[:3, :3], rot, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------- standard format


def test_bag_is_standard_rosbag2_mcap_readable_by_independent_mcap_reader(any_bag, frames):
    bag = any_bag
    meta = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == [f"{bag.name}.mcap"]
    qos = {
        t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
        for t in meta["topics_with_message_count"]
    }
    # The once-per-episode camera pose is latched; other topics leave playback QoS to rosbag2.
    assert [(q["durability"], q["reliability"], q["depth"]) for q in qos[TOPIC_CAMERA_POSE]] == [
        ("transient_local", "reliable", 1)
    ]
    assert qos[TOPIC_COLOR] == []
    assert meta["custom_data"] == {"arm.episode_format": EPISODE_FORMAT_VERSION}

    decoded: dict[str, list] = {t: [] for t in ALL_TOPICS}
    with open(bag / f"{bag.name}.mcap", "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        pose_channel = next(
            c for c in reader.get_summary().channels.values() if c.topic == TOPIC_CAMERA_POSE
        )
        assert "transient_local" in pose_channel.metadata["offered_qos_profiles"]
        for schema, channel, message, msg in reader.iter_decoded_messages():
            assert channel.message_encoding == "cdr"
            decoded[channel.topic].append((schema.name, message.log_time, msg))

    counts = {t: len(v) for t, v in decoded.items()}
    assert counts == {t: (1 if t == TOPIC_CAMERA_POSE else T) for t in ALL_TOPICS}
    assert {decoded[t][0][0] for t in (TOPIC_COLOR, TOPIC_DEPTH)} == {"sensor_msgs/msg/Image"}

    obs0 = frames[0][1]
    _, log_time, color = decoded[TOPIC_COLOR][0]
    assert (color.encoding, color.height, color.width, color.step) == ("rgb8", H, W, 3 * W)
    assert color.header.frame_id == "front_camera_optical_frame"
    px = np.frombuffer(bytes(color.data), np.uint8).reshape(H, W, 3)[3, 7]
    np.testing.assert_array_equal(px, obs0.front_rgb[3, 7])

    _, _, depth = decoded[TOPIC_DEPTH][0]
    assert (depth.encoding, depth.height, depth.width, depth.is_bigendian) == ("32FC1", H, W, 0)
    d = np.frombuffer(bytes(depth.data), "<f4").reshape(H, W)
    assert d[9, 2] == obs0.front_depth[9, 2]

    _, _, info = decoded[TOPIC_CAMERA_INFO][0]
    assert (info.width, info.height, info.distortion_model) == (W, H, "plumb_bob")
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), obs0.camera_intrinsics)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4))[:, :3], obs0.camera_intrinsics)
    np.testing.assert_array_equal(info.d, np.zeros(5))

    _, _, pose = decoded[TOPIC_CAMERA_POSE][0]
    assert pose.header.frame_id == "world"

    _, _, js = decoded[TOPIC_JOINT_STATES][0]
    assert list(js.name) == [f"panda_joint{i}" for i in range(1, 8)] + [
        "panda_finger_joint1",
        "panda_finger_joint2",
    ]

    # Every message of a frame carries the frame's time, as header.stamp and as log time.
    for i, (stamp, *_rest) in enumerate(frames):
        ns = round(stamp * 1e9)
        for topic, msgs in decoded.items():
            if topic == TOPIC_CAMERA_POSE and i > 0:
                continue
            _, log_time, msg = msgs[i]
            assert log_time == ns, topic
            if hasattr(msg, "header"):
                assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == ns, topic


# --------------------------------------------------------------------------- corrupt bags


@pytest.mark.parametrize("cut", [0, 5, 9, 30, 0.25, 0.5, 0.9, -38, -37, -8, -1])
def test_truncated_mcap_raises_bag_error_naming_the_file(bag, cut):
    mcap = bag / f"{bag.name}.mcap"
    data = mcap.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    mcap.write_bytes(data[:n])
    with pytest.raises(BagError) as err:
        read_episode(bag)
    assert str(bag) in str(err.value) and mcap.name in str(err.value)


def test_missing_metadata_raises_bag_error(bag):
    (bag / "metadata.yaml").unlink()
    with pytest.raises(BagError, match="metadata.yaml") as err:
        read_episode(bag)
    assert err.value.path == bag


@pytest.mark.parametrize("storage", ["sqlite3", "foo"])
def test_wrong_storage_identifier_raises_bag_error(bag, storage):
    meta = bag / "metadata.yaml"
    text = meta.read_text().replace("storage_identifier: mcap", f"storage_identifier: {storage}")
    meta.write_text(text)
    with pytest.raises(BagError, match=str(bag)):
        read_episode(bag)


def test_missing_bag_and_garbage_metadata_raise_bag_error(tmp_path, bag):
    with pytest.raises(BagError, match="does not exist"):
        read_episode(tmp_path / "nope")
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed")
    with pytest.raises(BagError, match="metadata"):
        read_episode(bag)


def _copy_bag(src: Path, dst: Path, keep) -> Path:
    """Re-record ``src`` with a plain rosbags writer, keeping messages where keep(topic, i)."""
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for c in reader.connections:
            if keep(c.topic, None):
                conns[c.id] = writer.add_connection(
                    c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest
                )
        seen: dict[str, int] = {}
        for c, t, data in reader.messages():
            i = seen[c.topic] = seen.get(c.topic, -1) + 1
            if c.id in conns and keep(c.topic, i):
                writer.write(conns[c.id], t, data)
    return dst


def test_missing_topic_raises_bag_error_naming_bag_and_topic(tmp_path, bag):
    broken = _copy_bag(bag, tmp_path / "no_reward", lambda topic, i: topic != TOPIC_REWARD)
    with pytest.raises(BagError, match=TOPIC_REWARD) as err:
        read_episode(broken)
    assert str(broken) in str(err.value) and err.value.topic == TOPIC_REWARD


def test_live_bag_with_dropped_messages_aligns_on_colour_frames(tmp_path, bag, frames):
    """A topic missing in a frame takes its latest message at or before that colour frame."""

    def keep(topic, i):
        if i is None:
            return True
        if topic == TOPIC_JOINT_STATES:
            return i != 2  # frame 2 lost its joint state -> frame 1's is used
        if topic == TOPIC_SUCCESS:
            return i != 0  # success starts late -> colour frame 0 is dropped
        if topic == TOPIC_DEPTH:
            return i != 3
        return True

    live = _copy_bag(bag, tmp_path / "live", keep)
    ep = read_episode(live)
    full = read_episode(bag)
    assert len(ep) == T - 1
    np.testing.assert_array_equal(ep.stamps, full.stamps[1:])
    np.testing.assert_array_equal(ep.front_rgb, full.front_rgb[1:])
    np.testing.assert_array_equal(ep.joint_positions, full.joint_positions[[1, 1, 3, 4]])
    np.testing.assert_array_equal(ep.front_depth, full.front_depth[[1, 2, 2, 4]])
    np.testing.assert_array_equal(ep.success, full.success[1:])


# --------------------------------------------------------------------------- many episodes


def test_iter_episodes_skips_corrupt_bag_with_warning_and_ignores_partial(tmp_path):
    root = tmp_path / "bags"
    good_b = write_episode(root / "task" / "ep_b", make_frames(2))
    good_a = write_episode(root / "task" / "ep_a", make_frames(1))
    bad = write_episode(root / "task" / "ep_c", make_frames(3))
    mcap = bad / "ep_c.mcap"
    mcap.write_bytes(mcap.read_bytes()[:1000])
    shutil.copytree(good_a, root / "task" / "ep_d.partial")  # being written / crashed writer

    with pytest.warns(BagWarning, match="ep_c") as record:
        got = list(iter_episodes(root))

    assert [p for p, _ in got] == [good_a, good_b]
    assert all(len(ep) == T for _, ep in got)
    skipped = [w for w in record if issubclass(w.category, BagWarning)]
    assert len(skipped) == 1 and "ep_c.mcap" in str(skipped[0].message)


# --------------------------------------------------------------------------- crash safety


def test_exception_mid_episode_leaves_no_bag(tmp_path, frames):
    path = tmp_path / "ep"
    with pytest.raises(RuntimeError, match="simulated crash"):
        with EpisodeWriter(path) as writer:
            for i, frame in enumerate(frames):
                writer.write(*frame)
                if i == 2:
                    assert path.with_name("ep.partial").is_dir() and not path.exists()
                    raise RuntimeError("simulated crash")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
    # The name is free afterwards.
    assert len(read_episode(write_episode(path, frames))) == T


def test_bad_frame_raises_and_leaves_no_bag(tmp_path, frames):
    path = tmp_path / "ep"
    bad = make_frames(5)[1][1]
    bad.front_rgb = bad.front_rgb.astype(np.float32)
    with pytest.raises(ValueError, match="front_rgb"):
        write_episode(path, [frames[0], (frames[1][0], bad, 0.0, False)])
    with pytest.raises(ValueError, match="increase"):
        write_episode(path, [frames[1], frames[0]])
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_existing_bag(bag, frames):
    before = sorted((p.name, p.stat().st_size) for p in bag.iterdir())
    with pytest.raises(FileExistsError, match="overwrite"):
        write_episode(bag, frames[:2])
    assert sorted((p.name, p.stat().st_size) for p in bag.iterdir()) == before
    assert len(read_episode(bag)) == T


def test_stale_partial_from_a_crashed_writer_is_replaced(tmp_path, frames):
    path = tmp_path / "ep"
    stale = tmp_path / "ep.partial"
    stale.mkdir()
    (stale / "junk").write_text("x")
    write_episode(path, frames)
    assert not stale.exists() and len(read_episode(path)) == T


def test_write_outside_context_is_an_error(tmp_path, frames):
    with pytest.raises(RuntimeError, match="not open"):
        EpisodeWriter(tmp_path / "ep").write(*frames[0])


def test_offered_qos_is_the_contract_s_latched_spec():
    assert set(OFFERED_QOS) == set(bag_format.OFFERED_QOS_SPECS) <= set(ALL_TOPICS)
    latched = OFFERED_QOS[TOPIC_CAMERA_POSE]
    assert latched is not None and latched == bag_codec.LATCHED_QOS
    assert (latched.depth, latched.reliability.name, latched.durability.name) == (
        1, "RELIABLE", "TRANSIENT_LOCAL")


def test_bags_facade_re_exports_the_public_api_of_the_four_modules():
    modules = (bag_format, bag_codec, bag_writer, bag_reader)
    for name in bags.__all__:
        value = getattr(bags, name)
        homes = [m for m in modules if getattr(m, name, None) is value]
        assert homes, f"bags.{name} is not the object of one of the bag modules"


def test_bag_messages_are_the_live_systems_types(tmp_path, bag):
    """rclpy decodes every message; a bag of rclpy-serialised messages reads back the same."""
    pytest.importorskip("rclpy")
    import importlib

    from rclpy.serialization import deserialize_message, serialize_message

    def msg_class(msgtype: str):
        pkg, sub, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{pkg}.{sub}"), name)

    def reserialise(src: Path, dst: Path) -> Path:
        with Reader(src) as reader, Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {
                c.id: w.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest)
                for c in reader.connections
            }
            for c, t, data in reader.messages():
                msg = deserialize_message(bytes(data), msg_class(c.msgtype))
                w.write(conns[c.id], t, serialize_message(msg))
        return dst

    ours, theirs = read_episode(bag), read_episode(reserialise(bag, tmp_path / "rclpy_bag"))
    for field in ("stamps", "front_rgb", "front_depth", "joint_positions", "joint_velocities",
                  "gripper_joint_positions", "gripper_open", "gripper_pose", "reward", "success",
                  "camera_intrinsics", "camera_extrinsics"):
        np.testing.assert_array_equal(getattr(theirs, field), getattr(ours, field), err_msg=field)


def test_type_hashes_match_the_installed_ros_interfaces():
    """The definitions rosbags writes into the bag are the ROS 2 (Kilted) ones: same RIHS01."""
    import json
    import sys

    share = Path(sys.prefix) / "share"
    checked = 0
    for msgtype in set(TOPIC_TYPES.values()):
        pkg, sub, name = msgtype.split("/")
        desc = share / pkg / sub / f"{name}.json"
        if not desc.exists():
            continue
        type_hashes = json.loads(desc.read_text())["type_hashes"]
        hashes = {h["type_name"]: h["hash_string"] for h in type_hashes}
        assert hashes[msgtype] == TYPESTORE.hash_rihs01(msgtype), msgtype
        checked += 1
    # the pinned ROS wheels ship these descriptions; none found means the check itself broke
    assert checked, f"no ROS 2 interface descriptions under {share}"


def test_episode_without_frames_is_not_written(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        with EpisodeWriter(tmp_path / "ep"):
            pass
    assert list(tmp_path.iterdir()) == []
