"""Every topic and service name of the ARM graph, and the QoS profiles they use, as plain data.

One place for the names: nodes, the recorder, the bag format (:mod:`arm_perception.bag_format`),
the datasets and the tests import them from here. No ROS import at all, so bag tools and
datasets read them without rclpy; :mod:`arm_control.graph` turns a :class:`QosSpec` into an
rclpy ``QoSProfile``. Nodes that let a topic be remapped by a parameter take the name here as
the parameter's default.

The camera and arm names are those a RealSense driver (``camera_name:=front``) and a
ros2_control Panda publish, so real drivers replace the simulator without renaming anything.
Message types are the standard ones (sensor_msgs, geometry_msgs, std_msgs, std_srvs,
trajectory_msgs); the comment after each name says what flows on it.
"""
from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- robot driver
# (arm_sim.sim_node, or a real camera + ros2_control arm)

TOPIC_COLOR = "/camera/front/color/image_raw"  # sensor_msgs/Image rgb8
TOPIC_DEPTH = "/camera/front/aligned_depth_to_color/image_raw"  # sensor_msgs/Image 32FC1 m | 16UC1 mm
TOPIC_CAMERA_INFO = "/camera/front/color/camera_info"  # sensor_msgs/CameraInfo of the colour stream
TOPIC_CAMERA_POSE = "/camera/front/pose"  # geometry_msgs/PoseStamped, optical frame in world, latched
TOPIC_JOINT_STATES = "/joint_states"  # sensor_msgs/JointState, 7 arm joints + 2 fingers
TOPIC_REWARD = "/arm/task/reward"  # std_msgs/Float32, the task's reward (simulator only)
TOPIC_SUCCESS = "/arm/task/success"  # std_msgs/Bool, the task's success (simulator only)
TOPIC_JOINT_TRAJECTORY = "/arm/joint_trajectory"  # trajectory_msgs/JointTrajectory to the arm controller
TOPIC_GRIPPER_COMMAND = "/gripper_controller/commands"  # std_msgs/Float64MultiArray, finger position m
SERVICE_SIM_RESET = "/arm/sim/reset"  # std_srvs/Trigger: a new scene from the sim node's seed

# --------------------------------------------------------------------------- control_node

TOPIC_NEXT_BEST_POSE = "/arm/next_best_pose"  # geometry_msgs/PoseStamped, TCP goal in world
TOPIC_GRIPPER_GOAL = "/arm/gripper_goal"  # sensor_msgs/JointState, position[0] = open amount 0..1
TOPIC_CONTROL_RESULT = "/arm/control/result"  # std_msgs/String, one per goal: reached / unreachable / ...
TOPIC_EE_POSE = "/arm/ee_pose"  # geometry_msgs/PoseStamped, TCP in world (FK of each joint state)
TOPIC_GRIPPER_OPEN = "/arm/gripper_open"  # std_msgs/Bool, measured gripper state as RLBench reports it

# --------------------------------------------------------------------------- perception_node

TOPIC_PERCEPTION_RGB = "/arm/perception/rgb"  # sensor_msgs/Image rgb8, policy-sized square
TOPIC_PERCEPTION_POINTS = "/arm/perception/points"  # sensor_msgs/PointCloud2, organised, world frame
TOPIC_PERCEPTION_CAMERA_INFO = "/arm/perception/camera_info"  # sensor_msgs/CameraInfo of the outputs

# --------------------------------------------------------------------------- policy_node

TOPIC_ATTENTION = "/arm/attention"  # sensor_msgs/Image rgb8, Q-attention heat map for people
TOPIC_DECISION = "/arm/policy/decision"  # std_msgs/String, decision JSON (episode_dataset)
TOPIC_OBSERVATION_RGB = "/arm/policy/observation/rgb"  # sensor_msgs/Image rgb8, the agent's input
TOPIC_OBSERVATION_POINTS = "/arm/policy/observation/points"  # sensor_msgs/PointCloud2, agent's input
TOPIC_OBSERVATION_LOW_DIM = "/arm/policy/observation/low_dim"  # std_msgs/Float32MultiArray [11]
SERVICE_POLICY_ACT = "/arm/policy/act"  # std_srvs/SetBool (data = explore) -> decision JSON
SERVICE_POLICY_RESET = "/arm/policy/reset"  # std_srvs/Trigger, start of an episode
SERVICE_POLICY_OBSERVE = "/arm/policy/observe"  # std_srvs/Trigger: QT-Opt's episode-final observation

# --------------------------------------------------------------------------- QT-Opt (closed loop)

TOPIC_QTOPT_RGB = "/arm/qtopt/observation/rgb"  # sensor_msgs/Image rgb8, the over-the-shoulder camera
TOPIC_QTOPT_STATE = "/arm/qtopt/observation/state"  # std_msgs/Float32MultiArray [gripper_open, height m, aperture 0..1]
TOPIC_QTOPT_ACTION = "/arm/qtopt/action"  # std_msgs/Float32MultiArray [dx, dy, dz, sin, cos, close, terminate]

# --------------------------------------------------------------------------- episodes and training

TOPIC_EPISODE = "/arm/episode"  # std_msgs/String, recorder protocol: start NAME | end | abort
TOPIC_EPISODE_STEP = "/arm/episode/step"  # std_msgs/String, step JSON of the episode runner
TOPIC_TRAINING_STATUS = "/arm/training/status"  # std_msgs/String, training node status JSON, latched

# --------------------------------------------------------------------------- QoS

RELIABLE = "reliable"
BEST_EFFORT = "best_effort"
VOLATILE = "volatile"
TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class QosSpec:
    """A keep-last QoS profile as plain data (the words rosbag2's metadata.yaml uses)."""

    reliability: str  # RELIABLE | BEST_EFFORT
    durability: str  # VOLATILE | TRANSIENT_LOCAL
    depth: int

    def __post_init__(self) -> None:
        if self.reliability not in (RELIABLE, BEST_EFFORT):
            raise ValueError(f"reliability must be {RELIABLE!r} or {BEST_EFFORT!r}, "
                             f"got {self.reliability!r}")
        if self.durability not in (VOLATILE, TRANSIENT_LOCAL):
            raise ValueError(f"durability must be {VOLATILE!r} or {TRANSIENT_LOCAL!r}, "
                             f"got {self.durability!r}")
        if int(self.depth) < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")


#: Camera streams: best effort, keep last 5 (rclpy's ``qos_profile_sensor_data``). A subscriber
#: with it matches reliable and best-effort drivers alike.
QOS_SENSOR = QosSpec(BEST_EFFORT, VOLATILE, 5)
#: Published once (or rarely) and kept for late subscribers: the camera pose, the training status.
QOS_LATCHED = QosSpec(RELIABLE, TRANSIENT_LOCAL, 1)
#: Robot state and task signals: joint states, TCP pose, gripper state, reward, success,
#: trajectories and gripper commands.
QOS_STATE = QosSpec(RELIABLE, VOLATILE, 10)
#: Processed streams: perception outputs, policy inputs, the attention image. A reliable offer
#: matches reliable and best-effort subscribers.
QOS_STREAM = QosSpec(RELIABLE, VOLATILE, 5)
#: Commands, not samples: goals, results, episode commands and steps. A burst (or a flood of bad
#: goals) is answered one by one instead of being overwritten in the history.
QOS_COMMANDS = QosSpec(RELIABLE, VOLATILE, 1000)
#: What goes into the episode bags and must not be dropped: the policy's decision record.
QOS_RECORD = QosSpec(RELIABLE, VOLATILE, 100)
