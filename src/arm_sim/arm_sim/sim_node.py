"""sim_node: the MuJoCo simulator as a ROS 2 robot *driver*.

It publishes what a RealSense-style camera and a ros2_control Panda publish and accepts what
they accept, so real drivers can replace it without touching the rest of the graph:

    publishes  /camera/front/color/image_raw (rgb8), /camera/front/aligned_depth_to_color/image_raw
               (32FC1, m), /camera/front/color/camera_info, /camera/front/pose (latched PoseStamped
               of the optical frame in world), /joint_states, /arm/task/reward, /arm/task/success
    accepts    /arm/joint_trajectory (trajectory_msgs/JointTrajectory, as a JointTrajectoryController),
               /gripper_controller/commands (std_msgs/Float64MultiArray: finger position in metres,
               as a ros2_control forward position controller)
    service    /arm/sim/reset (std_srvs/Trigger): new scene from the `seed` and `held_out`
               parameters; `seed` then advances by one so successive resets give new, reproducible
               scenes. The answer says "reset TASK seed=N held_out=B"; success=False with the
               reason for a bad seed or held_out (the scene is then unchanged)

Parameters: task (one of the eight ARM tasks or grasp_bin), seed, held_out (grasp_bin only:
QT-Opt's held-out objects, for evaluation; true with another task is refused), image_size (or
image_width/image_height), depth_encoding, publish_camera_pose, camera_rate, real_time, and the
driver interface's topic and joint names (arm_control.graph.declare_driver_interface).

task:=grasp_bin is QT-Opt's bin (arm_sim.grasp_bin): a tray of 5-10 procedural objects, each
reset a new, settled one with the arm at the bin's home (the tool centre point above the tray
centre, pointing down, gripper open). The camera topics then carry the bin's over-the-shoulder
camera (its image, depth, intrinsics and optical-frame pose, same conventions as the front
camera), so perception_node turns them into /arm/perception/rgb and /points unchanged; the arm
moves only by the trajectories and gripper commands received, grasps are by friction only; and
/arm/task/success is True while an object is held by both fingers above SUCCESS_HEIGHT over the
tray floor (reward: its float).

Example:
    ros2 run arm_sim sim_node --ros-args -p task:=pick_up_cup -p seed:=3 -p real_time:=false
    ros2 run arm_sim sim_node --ros-args -p task:=grasp_bin -p seed:=3 -p held_out:=false -p image_size:=64
"""
from __future__ import annotations

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float32, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from arm_control import panda
from arm_control.graph import LATCHED, SENSOR, STATE, declare_driver_interface
from arm_control.node_main import declare, run_node
from arm_control.topics import (
    SERVICE_SIM_RESET,
    TOPIC_CAMERA_INFO,
    TOPIC_CAMERA_POSE,
    TOPIC_COLOR,
    TOPIC_DEPTH,
    TOPIC_JOINT_STATES,
    TOPIC_REWARD,
    TOPIC_SUCCESS,
)
from arm_perception.bag_format import CAMERA_FRAME_ID, WORLD_FRAME_ID
from arm_perception.ros_conversions import intrinsics_to_camera_info, matrix_to_pose, numpy_to_image

from .driver_scene import driver_scene
from .sim import CONTROL_HZ


def _duration_seconds(d) -> float:
    return d.sec + d.nanosec * 1e-9


class TrajectoryFollower:
    """Samples a JointTrajectory in time like a JointTrajectoryController (linear interpolation
    between points, holding the last one). Pure Python: the node feeds it time."""

    def __init__(self, times: np.ndarray, positions: np.ndarray, start: float, from_q: np.ndarray):
        if times[0] > 0:  # the controller starts from where the arm is
            times = np.concatenate([[0.0], times])
            positions = np.vstack([from_q, positions])
        self.times, self.positions, self.start = times, positions, start

    def at(self, now: float) -> np.ndarray:
        t = now - self.start
        return np.array([np.interp(t, self.times, self.positions[:, j]) for j in range(self.positions.shape[1])])

    def done(self, now: float) -> bool:
        return now - self.start >= self.times[-1]


def parse_trajectory(msg: JointTrajectory, joint_names) -> tuple[np.ndarray, np.ndarray]:
    """(times (K,), positions (K, 7)) in our joint order, or ValueError saying what is wrong."""
    names = list(msg.joint_names)
    missing = [n for n in joint_names if n not in names]
    if missing:
        raise ValueError(f"trajectory lacks joints {missing} (got {names})")
    if not msg.points:
        raise ValueError("trajectory has no points")
    order = [names.index(n) for n in joint_names]
    times = np.array([_duration_seconds(p.time_from_start) for p in msg.points])
    positions = []
    for i, p in enumerate(msg.points):
        if len(p.positions) != len(names):
            raise ValueError(f"point {i} has {len(p.positions)} positions for {len(names)} joints")
        positions.append([p.positions[k] for k in order])
    positions = np.array(positions, dtype=np.float64)
    if not np.all(np.isfinite(positions)) or not np.all(np.isfinite(times)):
        raise ValueError("trajectory contains NaN/inf")
    if np.any(np.diff(times) <= 0):
        raise ValueError("time_from_start must strictly increase")
    outside = np.flatnonzero(np.any((positions < panda.LOWER - 1e-3) | (positions > panda.UPPER + 1e-3), axis=0))
    if len(outside):
        raise ValueError(f"positions outside the joint limits of {[joint_names[j] for j in outside]}")
    return times, positions


class SimNode(Node):
    def __init__(self):
        super().__init__("sim_node")
        task = declare(self, "task", "reach_target", "task name (see `arm tasks`)")
        declare(self, "seed", 0, "scene seed of the next reset; advances by one per reset")
        declare(self, "held_out", False, "scene split of the resets: true for QT-Opt's held-out "
                "objects (grasp_bin only, for evaluation)")
        tray = declare(self, "tray", "full", "grasp_bin's tray: full (5-10 objects), one_box (one box right "
                       "below the gripper's start) or one_box_low (the same, the gripper starting 10 cm above the floor)")
        size = declare(self, "image_size", 128, "camera width and height in pixels")
        w = declare(self, "image_width", 0,
                    "camera width if not square (0: image_size), e.g. 640 like a RealSense")
        h = declare(self, "image_height", 0, "camera height if not square (0: image_size), e.g. 480")
        self.depth_encoding = declare(self, "depth_encoding", "32FC1",
                                      "32FC1 (metres) or 16UC1 (millimetres, as a RealSense)")
        publish_pose = declare(self, "publish_camera_pose", True, "publish the latched camera pose "
                               "(a real camera has none: its extrinsics come from calibration)")
        camera_rate = declare(self, "camera_rate", float(CONTROL_HZ), "camera frames per simulated second")
        real_time = declare(self, "real_time", True,
                            "true: simulate in real time; false: as fast as possible")
        driver = declare_driver_interface(self)

        size = int(size)
        h, w = int(h) or size, int(w) or size
        if self.depth_encoding not in ("32FC1", "16UC1"):
            raise ValueError(f"depth_encoding must be 32FC1 or 16UC1, got {self.depth_encoding!r}")
        self.publish_pose = bool(publish_pose)
        self.scene = driver_scene(task, image_size=(h, w), tray=tray)
        if not self.scene.supports_held_out:
            self.add_on_set_parameters_callback(self._refuse_held_out)
        self.joint_names = driver.joint_names
        self.finger_names = driver.finger_joint_names
        self.camera_period = 1.0 / float(camera_rate)
        self.follower: TrajectoryFollower | None = None
        self._next_frame = 0.0
        self._warned: set[str] = set()

        self.pub_color = self.create_publisher(Image, TOPIC_COLOR, SENSOR)
        self.pub_depth = self.create_publisher(Image, TOPIC_DEPTH, SENSOR)
        self.pub_info = self.create_publisher(CameraInfo, TOPIC_CAMERA_INFO, SENSOR)
        self.pub_cam_pose = self.create_publisher(PoseStamped, TOPIC_CAMERA_POSE, LATCHED)
        self.pub_joints = self.create_publisher(JointState, TOPIC_JOINT_STATES, STATE)
        self.pub_reward = self.create_publisher(Float32, TOPIC_REWARD, STATE)
        self.pub_success = self.create_publisher(Bool, TOPIC_SUCCESS, STATE)
        self.create_subscription(JointTrajectory, driver.trajectory_topic, self.on_trajectory, STATE)
        self.create_subscription(Float64MultiArray, driver.gripper_topic, self.on_gripper, STATE)
        self.create_service(Trigger, SERVICE_SIM_RESET, self.on_reset)

        ok, text = self.reset()
        if not ok:
            raise ValueError(text)
        period = 1.0 / CONTROL_HZ if real_time else 0.001  # 1 ms: leaves the executor room for messages
        self.timer = self.create_timer(period, self.tick)
        self.get_logger().info(f"simulating {self.scene.name} at {w}x{h}, "
                               f"{'real time' if real_time else 'as fast as possible'}")

    @property
    def sim(self):
        """The scene's PandaSim; grasp_bin builds a new one at every reset."""
        return self.scene.sim

    def _refuse_held_out(self, params):
        for p in params:
            if p.name == "held_out" and p.value:
                return SetParametersResult(successful=False, reason=f"held_out is only for grasp_bin; "
                                           f"{self.scene.name} has no held-out split")
        return SetParametersResult(successful=True)

    # ----- driver interface ---------------------------------------------------------------------
    def _warn_once(self, key: str, text: str):
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def on_trajectory(self, msg: JointTrajectory):
        try:
            times, positions = parse_trajectory(msg, self.joint_names)
        except ValueError as e:
            self.get_logger().error(f"rejected trajectory: {e}")
            return
        self.follower = TrajectoryFollower(times, positions, self.sim.time, self.sim.joint_positions())

    def on_gripper(self, msg: Float64MultiArray):
        if len(msg.data) < 1 or not np.isfinite(msg.data[0]):
            self.get_logger().error(f"rejected gripper command {list(msg.data)}: need one finite finger position")
            return
        self.sim.set_gripper(float(msg.data[0]) / panda.FINGER_OPEN)

    def on_reset(self, request, response):
        response.success, response.message = self.reset()
        if not response.success:
            self.get_logger().error(response.message)
        return response

    def reset(self) -> tuple[bool, str]:
        """New scene from the seed and held_out parameters: (True, "reset TASK seed=N held_out=B"),
        or (False, the reason) with the scene and the seed unchanged."""
        seed = int(self.get_parameter("seed").value)
        held_out = bool(self.get_parameter("held_out").value)
        try:
            self.scene.reset(seed, held_out)
        except ValueError as e:
            return False, f"reset {self.scene.name} refused: {e}"
        self.set_parameters([rclpy.parameter.Parameter("seed", value=seed + 1)])
        self.follower = None
        self._next_frame = 0.0
        self.publish_camera_pose()
        self.publish_state(with_camera=True)
        return True, f"reset {self.scene.name} seed={seed} held_out={str(held_out).lower()}"

    # ----- simulation loop ----------------------------------------------------------------------
    def tick(self):
        sim = self.sim
        if self.follower is not None:
            sim.set_arm_target(self.follower.at(sim.time + 1.0 / CONTROL_HZ))
            if self.follower.done(sim.time):
                self.follower = None
        sim.step()
        camera_due = sim.time + 1e-9 >= self._next_frame
        if camera_due:
            self._next_frame += self.camera_period
        self.publish_state(with_camera=camera_due)

    def publish_camera_pose(self):
        if not self.publish_pose:
            return
        msg = PoseStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = WORLD_FRAME_ID
        msg.pose = matrix_to_pose(self.scene.camera_extrinsics())
        self.pub_cam_pose.publish(msg)

    def publish_state(self, with_camera: bool):
        stamp = self.get_clock().now().to_msg()
        sim = self.sim
        js = JointState()
        js.header.stamp = stamp
        js.name = self.joint_names + self.finger_names
        js.position = np.concatenate([sim.joint_positions(), sim.finger_positions()]).tolist()
        js.velocity = np.concatenate([sim.joint_velocities(), sim.data.qvel[sim.finger_dof]]).tolist()
        js.effort = []
        self.pub_joints.publish(js)
        success = bool(self.scene.success())
        self.pub_reward.publish(Float32(data=float(success)))
        self.pub_success.publish(Bool(data=success))
        if with_camera:
            rgb, depth = self.scene.render()
            self.pub_color.publish(numpy_to_image(rgb, "rgb8", stamp, CAMERA_FRAME_ID))
            if self.depth_encoding == "16UC1":
                depth = np.round(depth * 1000.0).clip(0, 65535).astype(np.uint16)
            self.pub_depth.publish(numpy_to_image(depth, self.depth_encoding, stamp, CAMERA_FRAME_ID))
            h, w = depth.shape
            self.pub_info.publish(intrinsics_to_camera_info(self.scene.intrinsics, h, w, stamp, CAMERA_FRAME_ID))

    def destroy_node(self):
        if getattr(self, "scene", None) is not None:  # None when construction failed
            self.scene.close()
        super().destroy_node()


def main(args=None):
    run_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    main()
