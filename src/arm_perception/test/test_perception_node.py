"""perception_node as a separate process, fed and read over ROS 2 (rclpy + Fast DDS).

The node runs with `python -m arm_perception.perception_node` in its own ROS domain (41-49,
ARM_TEST_ROS_DOMAIN_ID overrides) and on topic names unique to this test run, so no other
graph on the machine can feed it. It is stopped with SIGINT (then killed if it hangs) at the end.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from arm_control.graph import LATCHED, SENSOR  # noqa: E402
from arm_control.topics import (  # noqa: E402
    TOPIC_PERCEPTION_CAMERA_INFO,
    TOPIC_PERCEPTION_POINTS,
    TOPIC_PERCEPTION_RGB,
)
from arm_perception.camera import depth_to_points, intrinsics_from_fovy  # noqa: E402
from arm_perception.ros_conversions import (  # noqa: E402
    camera_info_to_intrinsics,
    image_to_numpy,
    intrinsics_to_camera_info,
    matrix_to_pose,
    numpy_to_image,
    pointcloud2_to_numpy,
    pose_to_matrix,
    resize_to,
    seconds_to_stamp,
    stamp_to_nanoseconds,
)

SIZE = 16  # the node's image_size in these tests (small: fast to compare)
PREFIX = f"/perception_test_{os.getpid()}"
TOPICS = {
    "color_topic": f"{PREFIX}/color",
    "depth_topic": f"{PREFIX}/depth",
    "camera_info_topic": f"{PREFIX}/camera_info",
    "camera_pose_topic": f"{PREFIX}/pose",
}
OUT = {TOPIC_PERCEPTION_RGB: f"{PREFIX}/out/rgb", TOPIC_PERCEPTION_POINTS: f"{PREFIX}/out/points",
       TOPIC_PERCEPTION_CAMERA_INFO: f"{PREFIX}/out/camera_info"}


def camera_pose():
    """Camera 1.2 m in front of and above the origin, looking back and down at it."""
    eye, target = np.array([1.2, 0.1, 1.0]), np.zeros(3)
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


@pytest.fixture(scope="module")
def ros_domain_id():
    domain = int(os.environ.get("ARM_TEST_ROS_DOMAIN_ID", 41 + os.getpid() % 9))
    assert 41 <= domain <= 49 or "ARM_TEST_ROS_DOMAIN_ID" in os.environ
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(domain))
        yield domain


@pytest.fixture(scope="module")
def node_process(ros_domain_id, tmp_path_factory):
    """The perception node in its own process; yields (Popen, path of its stderr log)."""
    log = tmp_path_factory.mktemp("perception_node") / "stderr.log"
    # -X faulthandler: a SIGABRT makes it print every thread's stack, for a node that hangs
    args = [sys.executable, "-X", "faulthandler", "-m", "arm_perception.perception_node", "--ros-args",
            "-p", f"image_size:={SIZE}", "-p", "publish_rgb_in_cloud:=true"]
    for name, topic in TOPICS.items():
        args += ["-p", f"{name}:={topic}"]
    for src, dst in OUT.items():
        args += ["-r", f"{src}:={dst}"]
    env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
    with open(log, "wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Harness:
    """The test side of the graph: camera publishers and perception subscribers."""

    def __init__(self, domain):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("perception_test_harness", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        n = self.node
        self.color_pub = n.create_publisher(Image, TOPICS["color_topic"], SENSOR)
        self.depth_pub = n.create_publisher(Image, TOPICS["depth_topic"], SENSOR)
        self.info_pub = n.create_publisher(CameraInfo, TOPICS["camera_info_topic"], SENSOR)
        self.pose_pub = n.create_publisher(PoseStamped, TOPICS["camera_pose_topic"], LATCHED)
        self.received = {key: {} for key in ("rgb", "points", "info")}
        for key, topic, mtype in (("rgb", OUT[TOPIC_PERCEPTION_RGB], Image),
                                  ("points", OUT[TOPIC_PERCEPTION_POINTS], PointCloud2),
                                  ("info", OUT[TOPIC_PERCEPTION_CAMERA_INFO], CameraInfo)):
            n.create_subscription(mtype, topic, self._store(key), SENSOR)
        self.stamp_ns = 1_700_000_000 * 10**9  # unique per frame, counts up

    def _store(self, key):
        def callback(msg):
            self.received[key][stamp_to_nanoseconds(msg.header.stamp)] = msg
        return callback

    def spin_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def wait_for_node(self, proc, timeout=20.0):
        """Until the node's subscriptions and publishers are matched with ours."""
        pubs = (self.color_pub, self.depth_pub, self.info_pub)
        subs = list(self.node.subscriptions)

        def ready():
            assert proc.poll() is None, "perception_node exited early"
            return all(p.get_subscription_count() > 0 for p in pubs) and all(
                s.get_publisher_count() > 0 for s in subs)

        assert self.spin_until(ready, timeout), "perception_node did not come up"

    def publish_frame(self, rgb, depth, K, color_encoding="rgb8", depth_encoding="32FC1"):
        self.stamp_ns += 33_000_000
        stamp = self.stamp_ns * 1e-9
        frame = "front_camera_optical_frame"
        h, w = depth.shape
        self.info_pub.publish(intrinsics_to_camera_info(K, h, w, stamp, frame))
        self.color_pub.publish(numpy_to_image(rgb, color_encoding, stamp, frame))
        self.depth_pub.publish(numpy_to_image(depth, depth_encoding, stamp, frame))
        return self.stamp_ns

    def exchange(self, make_frame, timeout=8.0):
        """Publish frames (every 0.1 s, new stamp each) until one comes out on all three topics.

        Retrying covers the first frame after a camera_info change and best-effort losses.
        Returns (stamp ns, published inputs, rgb msg, points msg, info msg).
        """
        sent = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            inputs = make_frame()
            sent[self.publish_frame(*inputs)] = inputs
            done = self.spin_until(lambda: self._complete(sent), 0.1)
            if done:
                stamp = self._complete(sent)
                return stamp, sent[stamp], *(self.received[k][stamp] for k in ("rgb", "points", "info"))
        raise AssertionError(f"no perception output for any of {len(sent)} frames within {timeout} s")

    def _complete(self, sent):
        for stamp in sent:
            if all(stamp in self.received[k] for k in ("rgb", "points", "info")):
                return stamp
        return None

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture(scope="module")
def harness(node_process, ros_domain_id):
    h = Harness(ros_domain_id)
    T = camera_pose()
    pose = PoseStamped(header=Header(frame_id="world"), pose=matrix_to_pose(T))
    h.pose_pub.publish(pose)  # latched: the node gets it whenever it subscribes
    h.wait_for_node(node_process[0])
    try:
        yield h
    finally:
        h.close()


def sim_frame(rng, h=SIZE, w=SIZE):
    """rgb8 + 32FC1 metres at the node's size, with a few pixels of no return (0 m)."""
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.8, 2.0, (h, w)).astype(np.float32)
    depth[rng.random((h, w)) < 0.1] = 0.0
    depth[0, 0] = 0.0
    K = intrinsics_from_fovy(50.0, h, w)
    return rgb, depth, K


def expected_cloud(depth_m, K, pose_T):
    return depth_to_points(depth_m, K, pose_to_matrix(matrix_to_pose(pose_T)))


def test_cloud_matches_depth_to_points(harness, node_process):
    rng = np.random.default_rng(0)
    stamp, (rgb, depth, K, *_), rgb_msg, cloud, info = harness.exchange(lambda: sim_frame(rng))

    assert stamp_to_nanoseconds(cloud.header.stamp) == stamp == stamp_to_nanoseconds(rgb_msg.header.stamp)
    assert cloud.header.frame_id == "world"
    assert (cloud.height, cloud.width) == (SIZE, SIZE) and not cloud.is_dense
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    points, colours = pointcloud2_to_numpy(cloud, with_rgb=True)
    expected = expected_cloud(depth, K, camera_pose())
    np.testing.assert_allclose(points, expected, atol=1e-6)
    assert np.array_equal(np.isnan(points).any(-1), depth == 0)
    assert np.isnan(points[0, 0]).all()
    np.testing.assert_array_equal(colours, rgb)

    assert rgb_msg.encoding == "rgb8" and (rgb_msg.height, rgb_msg.width) == (SIZE, SIZE)
    np.testing.assert_array_equal(image_to_numpy(rgb_msg), rgb)
    K_out, size = camera_info_to_intrinsics(info)
    assert size == (SIZE, SIZE)
    np.testing.assert_allclose(K_out, K)
    # A frame that overtakes its camera_info waits for it: no warning in normal operation.
    assert "WARN" not in Path(node_process[1]).read_text(errors="replace")


def test_realsense_frame_is_cropped_and_resized(harness):
    """A 4:3 bgr8 + 16UC1 (mm) camera: the cloud is the node's size and matches the same math."""
    rng = np.random.default_rng(1)
    h, w = 48, 64

    def frame():
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        depth_mm = rng.integers(500, 3000, (h, w), dtype=np.uint16)
        depth_mm[rng.random((h, w)) < 0.1] = 0
        K = np.array([[60.0, 0, 31.7], [0, 60.0, 24.2], [0, 0, 1]])
        return rgb, depth_mm, K, "bgr8", "16UC1"

    stamp, (rgb, depth_mm, K, *_), rgb_msg, cloud, info = harness.exchange(frame)
    assert (cloud.height, cloud.width) == (SIZE, SIZE)
    rgb_r, depth_r, K_r = resize_to(rgb, depth_mm.astype(np.float32) * np.float32(0.001), K, SIZE)
    points = pointcloud2_to_numpy(cloud)
    np.testing.assert_allclose(points, expected_cloud(depth_r, K_r, camera_pose()), atol=1e-6)
    assert np.array_equal(np.isnan(points).any(-1), depth_r == 0)
    np.testing.assert_array_equal(image_to_numpy(rgb_msg), rgb_r)  # bgr8 arrived as RGB
    np.testing.assert_allclose(camera_info_to_intrinsics(info)[0], K_r)


def test_malformed_frame_is_dropped_logged_once_and_node_keeps_running(harness, node_process):
    proc, log = node_process
    rng = np.random.default_rng(2)
    bad_stamps = []
    for _ in range(3):
        rgb, depth, K = sim_frame(rng)
        yuv = np.zeros((SIZE, SIZE, 3), np.uint8)
        msg = numpy_to_image(yuv, "rgb8")
        msg.encoding = "yuv422"  # not a colour encoding the node accepts
        harness.stamp_ns += 33_000_000
        stamp = harness.stamp_ns * 1e-9
        msg.header.stamp = seconds_to_stamp(stamp)
        harness.info_pub.publish(intrinsics_to_camera_info(K, SIZE, SIZE, stamp, "cam"))
        harness.color_pub.publish(msg)
        harness.depth_pub.publish(numpy_to_image(depth, "32FC1", stamp, "cam"))
        bad_stamps.append(harness.stamp_ns)
        harness.spin_until(lambda: False, 0.1)

    # The next good frame still comes out, and none of the bad ones did.
    stamp, *_ = harness.exchange(lambda: sim_frame(rng))
    assert stamp > bad_stamps[-1]
    assert not any(s in harness.received["points"] or s in harness.received["rgb"] for s in bad_stamps)
    assert proc.poll() is None

    text = Path(log).read_text(errors="replace")
    lines = [line for line in text.splitlines() if "yuv422" in line]
    assert len(lines) == 1, text  # once, not once per frame
    assert "WARN" in lines[0] and "colour image" in lines[0] and "encoding" in lines[0]


def test_size_mismatch_with_camera_info_is_dropped(harness, node_process):
    rng = np.random.default_rng(3)
    rgb, depth, K = sim_frame(rng)
    harness.stamp_ns += 33_000_000
    stamp = harness.stamp_ns * 1e-9
    harness.info_pub.publish(intrinsics_to_camera_info(K, SIZE + 4, SIZE, stamp, "cam"))  # wrong height
    bad = harness.stamp_ns
    for _ in range(3):  # the node keeps the newest camera_info; give the wrong one time to land
        harness.info_pub.publish(intrinsics_to_camera_info(K, SIZE + 4, SIZE, stamp, "cam"))
        harness.spin_until(lambda: False, 0.05)
    harness.color_pub.publish(numpy_to_image(rgb, "rgb8", stamp, "cam"))
    harness.depth_pub.publish(numpy_to_image(depth, "32FC1", stamp, "cam"))
    good, *_ = harness.exchange(lambda: sim_frame(rng))
    assert bad not in harness.received["points"] and good > bad
    text = Path(node_process[1]).read_text(errors="replace")
    assert "size mismatch" in text and f"camera_info {SIZE}x{SIZE + 4}" in text, text


def test_sigint_stops_the_node_cleanly(harness, node_process):
    proc, _ = node_process
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=30)  # generous: a loaded 2-core CI machine once needed over 10 s
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler prints where each thread hangs
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        stacks = Path(node_process[1]).read_text(errors="replace")[-6000:]
        pytest.fail(f"perception_node did not exit within 30 s of SIGINT; its stderr:\n{stacks}")
    assert rc == 0, Path(node_process[1]).read_text(errors="replace")


# --------------------------------------------------------------------------- in-process: pairing logic


class _Capture:
    def __init__(self):
        self.messages = []

    def publish(self, msg):
        self.messages.append(msg)


@pytest.fixture
def make_node(ros_domain_id):
    """PerceptionNode in this process with its publishers replaced by captures; callbacks are
    called directly (no executor), so the pairing logic is tested without timing."""
    from rclpy.parameter import Parameter

    from arm_perception.perception_node import PerceptionNode

    context = Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    nodes = []

    def make(**params):
        overrides = [Parameter(k, value=v) for k, v in
                     {"image_size": SIZE, **{k: f"{v}_inproc" for k, v in TOPICS.items()}, **params}.items()]
        node = PerceptionNode(context=context, parameter_overrides=overrides)
        node._rgb_pub, node._points_pub, node._info_pub = _Capture(), _Capture(), _Capture()
        nodes.append(node)
        return node

    try:
        yield make
    finally:
        for node in nodes:
            node.destroy_node()
        context.try_shutdown()


def _msgs(rgb, depth, K, stamp):
    return (numpy_to_image(rgb, "rgb8", stamp, "cam"), numpy_to_image(depth, "32FC1", stamp, "cam"),
            intrinsics_to_camera_info(K, *depth.shape, stamp, "cam"))


def test_extrinsics_parameter_is_used_without_a_pose_topic(make_node):
    T = camera_pose()
    node = make_node(camera_extrinsics=T.reshape(-1).tolist(), camera_pose_topic="")
    rgb, depth, K = sim_frame(np.random.default_rng(4))
    color, depth_msg, info = _msgs(rgb, depth, K, 5.0)
    node._on_depth(depth_msg)  # any arrival order
    node._on_color(color)
    assert node._points_pub.messages == []  # waits for its camera_info
    node._on_camera_info(info)
    (cloud,) = node._points_pub.messages
    np.testing.assert_allclose(pointcloud2_to_numpy(cloud), depth_to_points(depth, K, T), atol=1e-6)
    assert [f.name for f in cloud.fields] == ["x", "y", "z"]  # publish_rgb_in_cloud defaults to False


def test_colour_and_depth_pair_by_identical_stamp(make_node):
    node = make_node(camera_extrinsics=camera_pose().reshape(-1).tolist())
    rng = np.random.default_rng(5)
    inputs = {t: sim_frame(rng) for t in (1.0, 1.033, 1.066)}
    msgs = {t: _msgs(*frame, t) for t, frame in inputs.items()}
    node._on_camera_info(msgs[1.066][2])  # same size: fits every frame
    node._on_color(msgs[1.0][0])
    node._on_color(msgs[1.033][0])
    node._on_depth(msgs[1.066][1])
    node._on_depth(msgs[1.033][1])
    node._on_depth(msgs[1.0][1])
    node._on_color(msgs[1.066][0])
    assert len(node._points_pub.messages) == 3 and node.frames_dropped == 0
    rgb_out = {stamp_to_nanoseconds(m.header.stamp): m for m in node._rgb_pub.messages}
    clouds = {stamp_to_nanoseconds(m.header.stamp): m for m in node._points_pub.messages}
    for t, (rgb, depth, K) in inputs.items():
        key = stamp_to_nanoseconds(msgs[t][0].header.stamp)
        np.testing.assert_array_equal(image_to_numpy(rgb_out[key]), rgb)
        np.testing.assert_allclose(pointcloud2_to_numpy(clouds[key]), depth_to_points(depth, K, camera_pose()),
                                   atol=1e-6)


def test_unpaired_frames_fall_out_of_the_buffer(make_node):
    from arm_perception.perception_node import PAIR_BUFFER

    node = make_node(camera_extrinsics=camera_pose().reshape(-1).tolist())
    rng = np.random.default_rng(6)
    for i in range(PAIR_BUFFER + 3):  # colour only: depth never comes
        color, _, info = _msgs(*sim_frame(rng), 2.0 + i)
        node._on_camera_info(info)
        node._on_color(color)
    assert len(node._pending) == PAIR_BUFFER and node.frames_dropped == 3
    color, depth_msg, info = _msgs(*sim_frame(rng), 10.0)
    node._on_color(color)
    node._on_depth(depth_msg)  # camera_info of a fitting size is already there: no wait
    assert len(node._points_pub.messages) == 1


def test_bad_parameters_are_refused(make_node):
    with pytest.raises(ValueError, match="camera_extrinsics must be 16 finite numbers"):
        make_node(camera_extrinsics=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        make_node(image_size=0)
