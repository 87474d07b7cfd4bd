"""sim_node: the MuJoCo simulator as a ROS 2 robot *driver*.

It publishes what a RealSense-style camera and a ros2_control Panda publish and accepts what
they accept, so real drivers can replace it without touching the rest of the graph:

    publishes  /camera/front/color/image_raw (rgb8), /camera/front/aligned_depth_to_color/image_raw
               (32FC1, m), /camera/front/color/camera_info, /camera/front/pose (latched PoseStamped
               of the optical frame in world), /joint_states, /arm/task/reward, /arm/task/success
    accepts    /arm/joint_trajectory (trajectory_msgs/JointTrajectory, as a JointTrajectoryController),
               /gripper_controller/commands (std_msgs/Float64MultiArray: finger position in metres,
               as a ros2_control forward position controller)
    service    /arm/sim/reset (std_srvs/Trigger): new scene from the `seed` parameter, which then
               advances by one so successive resets give new, reproducible scenes

Example:
    ros2 run arm_sim sim_node --ros-args -p task:=pick_up_cup -p seed:=3 -p real_time:=false
"""
from __future__ import annotations

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
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

from .environment import Environment
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
        self.task = Environment(image_size=(h, w)).get_task(task)
        self.sim = self.task.sim
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

        self.reset()
        period = 1.0 / CONTROL_HZ if real_time else 0.001  # 1 ms: leaves the executor room for messages
        self.timer = self.create_timer(period, self.tick)
        self.get_logger().info(f"simulating {self.task.name} at {w}x{h}, "
                               f"{'real time' if real_time else 'as fast as possible'}")

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
        seed = self.reset()
        response.success = True
        response.message = f"reset {self.task.name} seed={seed}"
        return response

    def reset(self) -> int:
        seed = int(self.get_parameter("seed").value)
        self.task.reset(seed=seed)
        self.set_parameters([rclpy.parameter.Parameter("seed", value=seed + 1)])
        self.follower = None
        self._next_frame = 0.0
        self.publish_camera_pose()
        self.publish_state(with_camera=True)
        return seed

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
        msg.pose = matrix_to_pose(self.sim.camera_extrinsics())
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
        success = self.task.success()
        self.pub_reward.publish(Float32(data=float(success)))
        self.pub_success.publish(Bool(data=success))
        if with_camera:
            rgb, depth = sim.render()
            self.pub_color.publish(numpy_to_image(rgb, "rgb8", stamp, CAMERA_FRAME_ID))
            if self.depth_encoding == "16UC1":
                depth = np.round(depth * 1000.0).clip(0, 65535).astype(np.uint16)
            self.pub_depth.publish(numpy_to_image(depth, self.depth_encoding, stamp, CAMERA_FRAME_ID))
            h, w = depth.shape
            self.pub_info.publish(intrinsics_to_camera_info(sim.intrinsics, h, w, stamp, CAMERA_FRAME_ID))

    def destroy_node(self):
        if getattr(self, "task", None) is not None:  # None when construction failed
            self.task.close()
        super().destroy_node()


def main(args=None):
    run_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    main()
