"""sim_node as the driver of QT-Opt's bin (task grasp_bin): the ROS-free scene adapter it uses
(arm_sim.driver_scene, arm_sim.grasp_bin.GraspBinDriver), then the node itself over DDS.

The node runs in ROS_DOMAIN_ID 89 (this file only), localhost discovery, and is stopped with
SIGINT (then its process group killed) at the end of the module.
"""
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from arm_sim.bin_objects import HELD_OUT_SHAPE_IDS
from arm_sim.driver_scene import TaskScene, driver_scene
from arm_sim.grasp_bin import FLOOR_Z, HOME_HEIGHT, TRAY_CENTER, TRAY_HALF, GraspBinDriver
from arm_sim.sim import mujoco

DOMAIN = 89
SIZE = 32
INSTALL = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(shutil.which("arm") or "/x/x/x/x"))))
SIM_NODE = os.path.join(INSTALL, "arm_sim", "lib", "arm_sim", "sim_node")


# ----- the adapter, without ROS ------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene():
    s = driver_scene("grasp_bin", image_size=(SIZE, SIZE))
    yield s
    s.close()


def _objects(s):
    return np.array([s.sim.data.xpos[o.body_id] for o in s.env.objects])


def test_bin_resets_are_reproducible_by_seed_and_split(scene):
    assert isinstance(scene, GraspBinDriver) and scene.name == "grasp_bin" and scene.supports_held_out
    scene.reset(5, held_out=False)
    first_sim, train = scene.sim, _objects(scene)
    rgb_train, _ = scene.render()
    scene.reset(5, held_out=True)
    assert scene.sim is not first_sim, "every bin reset builds a new PandaSim"
    held = _objects(scene)
    rgb_held, _ = scene.render()
    assert (scene.seed, scene.held_out) == (5, True)
    assert all(o.shape.shape_id in HELD_OUT_SHAPE_IDS for o in scene.env.objects)
    assert held.shape != train.shape or not np.allclose(held, train)
    assert not np.array_equal(rgb_held, rgb_train)
    scene.reset(5, held_out=False)
    np.testing.assert_array_equal(_objects(scene), train)
    np.testing.assert_array_equal(scene.render()[0], rgb_train)


def test_a_bin_scene_starts_at_home_open_and_not_succeeded_and_the_arm_follows_targets(scene):
    scene.reset(7, held_out=False)
    sim = scene.sim
    tcp = sim.tcp_pose()
    np.testing.assert_allclose(tcp[:3], [*TRAY_CENTER, FLOOR_Z + HOME_HEIGHT], atol=0.01)
    z_axis = sim.data.site_xmat[sim.tcp_site].reshape(3, 3)[:, 2]
    assert z_axis[2] < -0.99, "the gripper points down"
    assert np.all(sim.finger_positions() > 0.035), "the gripper is open"
    assert scene.success() is False
    q = sim.joint_positions()
    sim.set_arm_target(q + np.r_[0.2, np.zeros(6)])
    sim.step(20)
    assert abs(sim.joint_positions()[0] - q[0] - 0.2) < 0.02
    assert scene.success() is False


def test_the_camera_model_matches_the_rendered_depth_and_sees_the_tray(scene):
    from arm_perception.camera import world_to_pixel

    scene.reset(5, held_out=True)
    rgb, depth = scene.render()
    K, T = scene.intrinsics, scene.camera_extrinsics()
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert depth.shape == (SIZE, SIZE) and depth.dtype == np.float32
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
    # the tray's floor centre and corners project inside the image
    tray = np.array([[*(TRAY_CENTER + TRAY_HALF * [sx, sy]), FLOOR_Z] for sx, sy in
                     [(0, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)]])
    uv = world_to_pixel(tray, K, T)
    assert np.all((uv >= 0) & (uv <= SIZE - 1)), uv
    # the rendered depth is the distance along the optical axis through K and T (ray casting)
    errors = []
    for v in range(0, SIZE, 3):
        for u in range(0, SIZE, 3):
            ray = T[:3, :3] @ np.linalg.solve(K, [u, v, 1.0])
            ray /= np.linalg.norm(ray)
            dist = mujoco.mj_ray(scene.sim.model, scene.sim.data, T[:3, 3], ray, None, 1, -1, np.zeros(1, np.int32))
            errors.append(abs(dist * ray @ T[:3, 2] - depth[v, u]))
    assert np.median(errors) < 1e-3 and np.percentile(errors, 90) < 5e-3, np.percentile(errors, [50, 90, 100])


def test_bad_input_is_refused_with_its_reason(scene):
    with pytest.raises(ValueError, match="non-negative integer"):
        scene.reset(-1)
    with pytest.raises(ValueError, match="held_out must be true or false"):
        scene.reset(1, held_out="yes")
    task = driver_scene("reach_target", image_size=(SIZE, SIZE))
    try:
        assert isinstance(task, TaskScene) and not task.supports_held_out
        with pytest.raises(ValueError, match="held_out is only for grasp_bin"):
            task.reset(0, held_out=True)
        task.reset(0)
        assert task.render()[0].shape == (SIZE, SIZE, 3)
    finally:
        task.close()
    with pytest.raises(ValueError, match="valid tasks"):
        driver_scene("grasp_bim")
    with pytest.raises(ValueError, match="tray 'one_box' is a grasp_bin tray; 'reach_target' has its own scene"):
        driver_scene("reach_target", tray="one_box")
    with pytest.raises(ValueError, match="unknown tray 'one_cup'"):
        driver_scene("grasp_bin", tray="one_cup")
    one_box = driver_scene("grasp_bin", image_size=(SIZE, SIZE), tray="one_box")
    try:
        one_box.reset(3)
        assert [o.family for o in one_box.env.objects] == ["box"]
    finally:
        one_box.close()


# ----- the node, over ROS ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_node(tmp_path_factory):
    """(Popen, log path) of `sim_node task:=grasp_bin` in domain 89."""
    log = tmp_path_factory.mktemp("sim_node") / "sim_node.log"
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
    args = [SIM_NODE, "--ros-args", "-p", "task:=grasp_bin", "-p", "seed:=3", "-p", "held_out:=false",
            "-p", f"image_size:={SIZE}", "-p", "real_time:=false", "-p", "camera_rate:=5.0"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Harness:
    """The rest of the graph in this process, on its own context in DOMAIN."""

    def __init__(self):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rcl_interfaces.srv import SetParameters
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from std_msgs.msg import Bool, Float32, Float64MultiArray
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        from arm_control import topics
        from arm_control.graph import LATCHED, SENSOR, STATE

        self.rclpy = rclpy
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN)
        self.node = n = rclpy.create_node("grasp_bin_driver_test", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self.msgs = {}
        for key, mtype, topic, qos in (("color", Image, topics.TOPIC_COLOR, SENSOR),
                                       ("depth", Image, topics.TOPIC_DEPTH, SENSOR),
                                       ("info", CameraInfo, topics.TOPIC_CAMERA_INFO, SENSOR),
                                       ("pose", PoseStamped, topics.TOPIC_CAMERA_POSE, LATCHED),
                                       ("joints", JointState, topics.TOPIC_JOINT_STATES, STATE),
                                       ("success", Bool, topics.TOPIC_SUCCESS, STATE),
                                       ("reward", Float32, topics.TOPIC_REWARD, STATE)):
            self.msgs[key] = []
            n.create_subscription(mtype, topic, self.msgs[key].append, qos)
        self.params = n.create_client(SetParameters, "/sim_node/set_parameters")
        self.reset_client = n.create_client(Trigger, topics.SERVICE_SIM_RESET)
        self.trajectory = n.create_publisher(JointTrajectory, topics.TOPIC_JOINT_TRAJECTORY, STATE)
        self.gripper = n.create_publisher(Float64MultiArray, topics.TOPIC_GRIPPER_COMMAND, STATE)

    def spin_until(self, predicate, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            self.executor.spin_once(timeout_sec=0.05)
        raise TimeoutError(f"{what} not within {timeout} s")

    def call(self, client, request, timeout=20.0):
        self.spin_until(client.service_is_ready, timeout, f"service {client.srv_name}")
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"answer of {client.srv_name}")
        return future.result()

    def set_parameters(self, **values):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        return self.call(self.params, request).results

    def reset(self):
        from std_srvs.srv import Trigger

        return self.call(self.reset_client, Trigger.Request())

    def clear(self):
        for key in self.msgs:
            if key != "pose":
                self.msgs[key].clear()

    def wait(self, key, count=1, timeout=20.0):
        self.spin_until(lambda: len(self.msgs[key]) >= count, timeout, f"{count} message(s) on {key}")
        return self.msgs[key]

    def close(self):
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def _joints(msg):
    from arm_control import panda

    return np.array([msg.position[list(msg.name).index(n)] for n in panda.ARM_JOINTS + panda.FINGER_JOINTS])


def test_sim_node_drives_the_bin_scene_over_ros(sim_node):
    from builtin_interfaces.msg import Duration
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from arm_control import panda
    from arm_perception.camera import depth_to_points, intrinsics_from_fovy
    from arm_perception.ros_conversions import image_to_numpy, pose_to_matrix
    from arm_sim.grasp_bin import CAMERA_FOVY

    proc, log = sim_node
    h = Harness()
    try:
        # a bad seed is refused with its reason; the seed parameter stays as it was
        assert all(r.successful for r in h.set_parameters(seed=-1))
        answer = h.reset()
        assert not answer.success and "non-negative integer" in answer.message, answer.message
        # what an episode runner does: seed and split, then reset
        assert all(r.successful for r in h.set_parameters(seed=5, held_out=True))
        answer = h.reset()
        assert answer.success and "seed=5" in answer.message and "held_out=true" in answer.message, answer.message
        h.clear()
        color, depth, info = h.wait("color", 2)[-1], h.wait("depth", 2)[-1], h.wait("info", 2)[-1]
        assert (color.encoding, color.height, color.width) == ("rgb8", SIZE, SIZE)
        assert (depth.encoding, depth.height, depth.width) == ("32FC1", SIZE, SIZE)
        K = np.array(info.k).reshape(3, 3)
        np.testing.assert_allclose(K, intrinsics_from_fovy(CAMERA_FOVY, SIZE, SIZE))
        T = pose_to_matrix(h.wait("pose")[-1].pose)
        # depth is finite on the tray: its back-projected points fall inside the tray, on or above the floor
        points = depth_to_points(image_to_numpy(depth), K, T).reshape(-1, 3)
        inside = np.all(np.abs(points[:, :2] - TRAY_CENTER) < TRAY_HALF, axis=1)
        assert inside.sum() > 0.2 * SIZE * SIZE, inside.sum()
        assert np.all(np.isfinite(points[inside])) and np.all(points[inside, 2] > FLOOR_Z - 0.005)
        assert np.isfinite(image_to_numpy(depth)).all()
        # the arm at home, still; not succeeded
        q = _joints(h.wait("joints", 5)[-1])
        assert np.all(q[7:] > 0.035)
        assert not any(m.data for m in h.wait("success", 5)) and not any(m.data for m in h.msgs["reward"])
        # a trajectory moves the joints, a gripper command the fingers
        target = q[:7] + np.r_[0.25, np.zeros(6)]
        msg = JointTrajectory(joint_names=list(panda.ARM_JOINTS))
        msg.points.append(JointTrajectoryPoint(positions=target.tolist(), time_from_start=Duration(sec=1)))
        h.spin_until(lambda: h.trajectory.get_subscription_count() > 0 and h.gripper.get_subscription_count() > 0,
                     10.0, "sim_node subscribing to the commands")
        h.trajectory.publish(msg)
        h.gripper.publish(Float64MultiArray(data=[0.0]))
        h.clear()
        h.spin_until(lambda: h.msgs["joints"] and abs(_joints(h.msgs["joints"][-1])[0] - target[0]) < 0.02
                     and np.all(_joints(h.msgs["joints"][-1])[7:] < 0.005), 20.0, "the arm at the target, fingers closed")
        assert not any(m.data for m in h.msgs["success"]), "closing on nothing is no grasp"
    finally:
        h.close()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    text = log.read_text()
    assert "simulating grasp_bin at 32x32" in text and "Traceback" not in text, text


def test_held_out_with_another_task_stops_the_node_with_its_reason():
    r = subprocess.run([SIM_NODE, "--ros-args", "-p", "task:=reach_target", "-p", "held_out:=true",
                        "-p", f"image_size:={SIZE}"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "ROS_DOMAIN_ID": str(DOMAIN)})
    assert r.returncode == 2
    assert "held_out is only for grasp_bin" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr
