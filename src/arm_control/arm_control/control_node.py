"""control_node: next-best pose -> IK -> OMPL plan -> ruckig trajectory -> the arm's controller.

    subscribes /arm/next_best_pose (geometry_msgs/PoseStamped, TCP pose in the world frame)
               /arm/gripper_goal (sensor_msgs/JointState, position[0] = open amount in [0, 1],
               applied after the arm reaches the pose with the same stamp)
               /joint_states
    publishes  /arm/joint_trajectory (trajectory_msgs/JointTrajectory, a JointTrajectoryController's
               topic interface), the gripper command (std_msgs/Float64MultiArray, finger position in
               metres, a forward position controller), /arm/control/result (std_msgs/String, reliable,
               one per goal, starting with reached / unreachable / collision / timeout / invalid),
               /arm/ee_pose (geometry_msgs/PoseStamped, TCP in world) and /arm/gripper_open
               (std_msgs/Bool, the commanded gripper state as RLBench reports it; read off the
               fingers before any command and after a reset outside this node) with each joint state

The planning scene is the work cell (robot + table); the math lives in arm_control.motion and
arm_control.goal_executor.

Example:
    ros2 run arm_control control_node --ros-args -p planner:=RRTConnect -p velocity_scaling:=0.3
"""
from __future__ import annotations

import mujoco
import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from . import panda
from .goal_executor import Goal, GoalExecutor
from .graph import COMMANDS, STATE, declare_driver_interface
from .node_main import declare, run_node
from .motion import InvalidPose, MotionPlanner, validate_pose
from .planner import PLANNERS
from .robot_model import workcell_xml
from .topics import (
    TOPIC_CONTROL_RESULT,
    TOPIC_EE_POSE,
    TOPIC_GRIPPER_GOAL,
    TOPIC_GRIPPER_OPEN,
    TOPIC_JOINT_STATES,
    TOPIC_NEXT_BEST_POSE,
)


def _stamp_key(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class ControlNode(Node):
    def __init__(self):
        super().__init__("control_node")
        driver = declare_driver_interface(self)
        planner = declare(self, "planner", "RRTConnect", "OMPL geometric planner")
        planning_timeout = declare(self, "planning_timeout", 1.0, "seconds OMPL may search")
        velocity_scaling = declare(self, "velocity_scaling", 0.5,
                                   "fraction of the Panda's velocity/acceleration limits")
        trajectory_dt = declare(self, "trajectory_dt", 0.05, "seconds between trajectory points")
        position_tolerance = declare(self, "position_tolerance", 0.01,
                                     "metres: goal counts as reached within this")
        world_frame = declare(self, "world_frame", "world", "frame the poses must be expressed in")
        timeout_margin = declare(self, "timeout_margin", 3.0, "seconds past a trajectory's end "
                                 "before a move that has not settled at its goal times out")
        gripper_when_blocked = declare(self, "gripper_when_blocked", False, "actuate the gripper "
                                       "also after a move that timed out (QT-Opt's closed-loop "
                                       "steps close on what the fingers touch); false: RLBench's "
                                       "move-then-gripper, only after a reached pose")
        collision_checking = declare(self, "collision_checking", True, "plan around the scene; "
                                     "false: the ARM authors' RLBench action mode (plans ignore "
                                     "the scene, only self-collisions count; a move that stops "
                                     "short, fingers on the table, is reached where it stopped and "
                                     "the gripper acts there). Keep true on a real robot")

        if planner not in PLANNERS:
            raise ValueError(f"unknown planner {planner!r}; available: {', '.join(PLANNERS)}")
        if len(driver.joint_names) != 7:
            raise ValueError(f"joint_names must name the 7 arm joints, got {driver.joint_names}")
        self.joint_names = driver.joint_names
        self.finger_names = driver.finger_joint_names
        self.world_frame = world_frame
        self.dt = float(trajectory_dt)
        model = mujoco.MjModel.from_xml_string(workcell_xml())
        motion = MotionPlanner(model, planner=planner, planning_timeout=float(planning_timeout),
                               velocity_scaling=float(velocity_scaling),
                               acceleration_scaling=float(velocity_scaling), dt=self.dt,
                               collision_checking=bool(collision_checking))
        if not float(timeout_margin) > 0:
            raise ValueError(f"timeout_margin must be > 0 s, got {timeout_margin}")
        self.executor_ = GoalExecutor(motion, position_tolerance=float(position_tolerance),
                                      timeout_margin=float(timeout_margin),
                                      gripper_when_blocked=bool(gripper_when_blocked),
                                      stopped_short_is_reached=not collision_checking)
        self.scene_qpos = mujoco.MjData(model).qpos.copy()
        self.kinematics = motion.kinematics
        self.q = self.dq = self.fingers = None
        self.gripper_goals: dict[int, float] = {}

        # Goals and results are commands, not samples: a deep queue, so a burst (or a flood of bad
        # goals) is answered goal by goal instead of being overwritten in the history.
        self.pub_traj = self.create_publisher(JointTrajectory, driver.trajectory_topic, STATE)
        self.pub_gripper = self.create_publisher(Float64MultiArray, driver.gripper_topic, STATE)
        self.pub_result = self.create_publisher(String, TOPIC_CONTROL_RESULT, COMMANDS)
        self.pub_ee = self.create_publisher(PoseStamped, TOPIC_EE_POSE, STATE)
        self.pub_gripper_open = self.create_publisher(Bool, TOPIC_GRIPPER_OPEN, STATE)
        self.create_subscription(PoseStamped, TOPIC_NEXT_BEST_POSE, self.on_pose, COMMANDS)
        self.create_subscription(JointState, TOPIC_GRIPPER_GOAL, self.on_gripper_goal, COMMANDS)
        self.create_subscription(JointState, TOPIC_JOINT_STATES, self.on_joint_states, STATE)
        self.create_timer(0.02, self.step)
        self.get_logger().info(f"planning with {planner} for joints {self.joint_names}")

    def publish_result(self, text: str):
        self.pub_result.publish(String(data=text))
        if text.startswith("reached"):  # rclpy wants one severity per call site
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)

    def on_pose(self, msg: PoseStamped):
        pose = [msg.pose.position.x, msg.pose.position.y, msg.pose.position.z,
                msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w]
        frame = msg.header.frame_id or self.world_frame
        try:
            if frame != self.world_frame:
                raise InvalidPose(f"pose is in frame {frame!r}; expected {self.world_frame!r} (no tf here)")
            pose = validate_pose(pose)
        except InvalidPose as e:
            self.publish_result(f"invalid: {e}")
            return
        key = _stamp_key(msg.header.stamp)
        self.executor_.submit(Goal(pose, self.gripper_goals.pop(key, None), key))

    def on_gripper_goal(self, msg: JointState):
        if len(msg.position) < 1 or not np.isfinite(msg.position[0]):
            self.get_logger().error("gripper goal needs position[0] = open amount in [0, 1]")
            return
        amount = float(np.clip(msg.position[0], 0.0, 1.0))
        key = _stamp_key(msg.header.stamp)
        pending = self.executor_.active if self.executor_.active and self.executor_.active.key == key else \
            next((g for g in self.executor_.queue if g.key == key), None)
        if pending is not None:  # the pose arrived first
            pending.gripper = amount
        else:
            self.gripper_goals[key] = amount
            while len(self.gripper_goals) > 100:
                self.gripper_goals.pop(next(iter(self.gripper_goals)))

    def on_joint_states(self, msg: JointState):
        index = {n: i for i, n in enumerate(msg.name)}
        if not all(n in index for n in self.joint_names):
            return
        arm = [index[n] for n in self.joint_names]
        self.q = np.array([msg.position[i] for i in arm])
        if len(msg.velocity) == len(msg.name):
            self.dq = np.array([msg.velocity[i] for i in arm])
        if all(n in index for n in self.finger_names):
            self.fingers = np.array([msg.position[index[n]] for n in self.finger_names])
        ee = PoseStamped()
        ee.header.stamp = msg.header.stamp
        ee.header.frame_id = self.world_frame
        pose = self.kinematics.fk(self.q)
        ee.pose.position.x, ee.pose.position.y, ee.pose.position.z = pose[:3].tolist()
        o = ee.pose.orientation
        o.x, o.y, o.z, o.w = pose[3:].tolist()
        self.pub_ee.publish(ee)
        if self.fingers is not None:  # measured, as RLBench's low-dim state
            self.pub_gripper_open.publish(Bool(data=panda.gripper_is_open(self.fingers)))

    def step(self):
        now = self.get_clock().now().nanoseconds * 1e-9
        out = self.executor_.update(now, self.q, self.dq, self.fingers, self.scene_qpos)
        if out.trajectory is not None:
            self.pub_traj.publish(self.to_msg(out.trajectory))
        if out.gripper_open is not None:
            self.pub_gripper.publish(Float64MultiArray(data=[out.gripper_open * panda.FINGER_OPEN]))
        for r in out.results:
            self.publish_result(r.text())

    def to_msg(self, traj) -> JointTrajectory:
        msg = JointTrajectory()
        msg.joint_names = self.joint_names
        for t, q, v in zip(traj.times, traj.positions, traj.velocities):
            point = JointTrajectoryPoint()
            point.positions, point.velocities = q.tolist(), v.tolist()
            point.time_from_start = Duration(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))
            msg.points.append(point)
        return msg


def main(args=None):
    run_node(ControlNode, "control_node", args)


if __name__ == "__main__":
    main()
