"""policy_node: the ARM agent as a ROS 2 node, one next-best pose per request.

    ros2 run arm_policy policy_node --ros-args -p run_dir:=runs/sim_train

Subscribes (reliable): ``/arm/perception/rgb`` (Image), ``/arm/perception/points``
(PointCloud2, organised, world frame), ``/arm/ee_pose`` (PoseStamped), ``/arm/gripper_open``
(Bool), ``/joint_states`` (the fingers named by ``finger_joint_names``).

Services:

* ``/arm/policy/reset`` (std_srvs/Trigger): the step counter of the time feature back to 0;
  call it at the start of every episode.
* ``/arm/policy/act`` (std_srvs/SetBool, ``data`` = explore): waits up to
  ``observation_timeout`` s for an rgb + points pair stamped at or after the request (paired by
  identical header stamp), builds the agent's input with ``demo_dataset.agent_observation``,
  calls the agent's ``act``, publishes, and answers ``success=True, message=<decision JSON>``;
  ``success=False, message=<reason>`` when it cannot decide (no checkpoint yet, no fresh
  observation, malformed input, wrong image size, a non-finite action).

Publishes, all stamped with the decision's stamp (node clock when the agent decided):
``/arm/next_best_pose`` (PoseStamped, ``world_frame``), ``/arm/gripper_goal`` (JointState,
``position[0]`` = 1.0 open / 0.0 closed: the action's open amount thresholded at 0.5, as the
in-process trainer executes it), ``/arm/attention`` (Image rgb8: the RGB | Q heat map with the
crop drawn), ``/arm/policy/decision`` (String JSON: ``stamp_ns``, ``step``, ``explore``,
``pixel`` [row, col], ``action`` [8], ``checkpoint_step``, plus ``low_dim`` [11] and
``observation_stamp_ns``), and the exact input of the agent: ``/arm/policy/observation/rgb``,
``/arm/policy/observation/points`` (NaN where the camera had no depth, as in the demos),
``/arm/policy/observation/low_dim`` (Float32MultiArray). The topics are those
:mod:`arm_policy.episode_dataset` reads back from the recorder's bags.

Checkpoints come from ``run_dir/checkpoints``
(:class:`~arm_policy.checkpoint_follower.CheckpointFollower`): the newest valid one at start
(and, until there is one, on every ``reload_period`` tick and every request), then, every
``reload_period`` s, the newest one if it is at least ``reload_every`` updates newer than the
loaded one. Reloads happen on the executor thread, so never in the middle of a decision's
``act``. An unreadable file is logged once and the last good weights keep acting.

QT-Opt (a checkpoint of agent ``qtopt``, closed-loop grasping in ``grasp_bin``): act takes the
same rgb + points pair (the points are not used) and the latest robot state, asks the agent for
its 7-D action (CEM over Q), and publishes one short move: ``/arm/next_best_pose`` is the
current tool pose plus the action's displacement and yaw change, clipped to the bin's per-step
bounds and workspace (``grasp_episodes.step_goal``), pointing down; ``/arm/gripper_goal`` is
0.0 (close) or 1.0 (open). It also publishes what the recorder keeps for the QT-Opt trainer:
``/arm/qtopt/observation/rgb``, ``/arm/qtopt/observation/state`` ([gripper_open, height above
the tray floor, aperture]), ``/arm/qtopt/action`` and the decision JSON (``action``,
``terminate``, ``goal`` [x, y, z, yaw]). ``/arm/policy/observe`` (std_srvs/Trigger) publishes
only the observation: the last frame of an episode, after the lift.

The agent logic is the checkpoint's agent (:mod:`arm_policy.agents`); this node only converts and calls.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import Image, JointState, PointCloud2
from std_msgs.msg import Bool, Float32MultiArray, String
from std_srvs.srv import SetBool, Trigger

from arm_control import graph, panda
from arm_control.node_main import declare, run_node
from arm_control.topics import (SERVICE_POLICY_ACT, SERVICE_POLICY_OBSERVE, SERVICE_POLICY_RESET,
                                TOPIC_ATTENTION, TOPIC_DECISION, TOPIC_EE_POSE, TOPIC_GRIPPER_GOAL,
                                TOPIC_GRIPPER_OPEN, TOPIC_JOINT_STATES, TOPIC_NEXT_BEST_POSE,
                                TOPIC_OBSERVATION_LOW_DIM, TOPIC_OBSERVATION_POINTS,
                                TOPIC_OBSERVATION_RGB, TOPIC_PERCEPTION_POINTS,
                                TOPIC_PERCEPTION_RGB, TOPIC_QTOPT_ACTION, TOPIC_QTOPT_RGB,
                                TOPIC_QTOPT_STATE)
from arm_control.transforms import quat_xyzw_to_mat, top_down_quat
from arm_perception.ros_conversions import (image_to_numpy, numpy_to_image, pointcloud2_to_numpy,
                                            points_to_pointcloud2, stamp_to_nanoseconds)

from .agents import Agent
from .checkpoint_follower import CheckpointFollower
from .demo_dataset import DEFAULT_EPISODE_LENGTH, agent_observation
from .episode_dataset import decision_message
from .grasp_episodes import state_observation, step_goal, stored_state
from .plots import heatmap_image

#: rgb + points messages kept while waiting for their partner.
PAIR_BUFFER = 8
EXPLORE_MODES = ("request", "always", "never")


class DecisionError(Exception):
    """The request cannot be answered with a decision; the text says why."""


class PolicyNode(Node):
    def __init__(self, **kwargs) -> None:
        """``kwargs`` go to rclpy's Node (parameter_overrides, context, ...)."""
        super().__init__("policy_node", **kwargs)

        run_dir = declare(self, "run_dir", "", "Run folder; checkpoints are read from "
                          "run_dir/checkpoints (required).", read_only=True)
        self._reload_every = declare(self, "reload_every", 100, "Reload when the newest checkpoint "
                                     "is at least this many updates newer than the loaded one.",
                                     read_only=True)
        reload_period = float(declare(self, "reload_period", 5.0, "Seconds between checks for a "
                                      "newer checkpoint.", read_only=True))
        self._explore_mode = declare(self, "explore", "request", "Exploration: 'request' (the act "
                                     "request's data decides), 'always' or 'never' (e.g. on a real "
                                     "robot: only the policy mean).", read_only=True)
        self._episode_length = declare(self, "episode_length", DEFAULT_EPISODE_LENGTH, "Agent steps "
                                       "per episode, for the time feature (as in training).",
                                       read_only=True)
        self._timeout = float(declare(self, "observation_timeout", 2.0, "Seconds act waits for an "
                                      "rgb + points pair stamped after the request.", read_only=True))
        self._finger_names = list(declare(self, "finger_joint_names", list(panda.FINGER_JOINTS),
                                          "Finger joints in /joint_states (low-dim state).",
                                          read_only=True))
        device = declare(self, "device", "", "torch device; '' = cuda if available, else cpu.",
                         read_only=True)
        self._world_frame = declare(self, "world_frame", "world", "frame_id of the published pose.",
                                    read_only=True)
        self._attention_scale = declare(self, "attention_scale", 2, "Upscaling of the attention image.",
                                        read_only=True)

        if not run_dir:
            raise ValueError("parameter run_dir must name the run folder, e.g. "
                             "-p run_dir:=runs/sim_train")
        if not isinstance(self._reload_every, int) or self._reload_every < 1:
            raise ValueError(f"parameter reload_every must be an integer >= 1, got "
                             f"{self._reload_every!r}")
        if not reload_period > 0 or not self._timeout > 0:
            raise ValueError("parameters reload_period and observation_timeout must be > 0 s")
        if self._explore_mode not in EXPLORE_MODES:
            raise ValueError(f"parameter explore must be one of {EXPLORE_MODES}, got "
                             f"{self._explore_mode!r}")
        if not isinstance(self._episode_length, int) or self._episode_length < 2:
            raise ValueError(f"parameter episode_length must be an integer >= 2, got "
                             f"{self._episode_length!r}")
        if len(self._finger_names) != 2:
            raise ValueError(f"parameter finger_joint_names must name the 2 finger joints, got "
                             f"{self._finger_names}")
        if not isinstance(self._attention_scale, int) or not 1 <= self._attention_scale <= 8:
            raise ValueError(f"parameter attention_scale must be an integer in 1..8, got "
                             f"{self._attention_scale!r}")
        self._device = device or None
        if device:
            import torch
            try:
                torch.device(device)
            except RuntimeError as err:
                raise ValueError(f"parameter device {device!r}: {err}") from None
        self.run_dir = Path(run_dir)

        self._checkpoints = CheckpointFollower(self.run_dir, self._device, self._reload_every,
                                               info=self.get_logger().info, error=self.get_logger().error)
        self.step = 0  # agent steps this episode (time feature)
        self._frames: OrderedDict[int, list] = OrderedDict()  # stamp ns -> [Image, PointCloud2]
        self._ee_pose: PoseStamped | None = None
        self._gripper_open: bool | None = None
        self._fingers: np.ndarray | None = None
        self._waiting: tuple[int, Future] | None = None  # (request stamp ns, future of the pair)

        # The act service awaits its observation: it lives in its own callback group so the
        # subscriptions and timers (default group) keep running while it waits; a second
        # request queues behind the first.
        self._wake = self.create_guard_condition(lambda: None)
        self.create_subscription(Image, TOPIC_PERCEPTION_RGB, self._on_rgb, graph.STREAM)
        self.create_subscription(PointCloud2, TOPIC_PERCEPTION_POINTS, self._on_points, graph.STREAM)
        self.create_subscription(PoseStamped, TOPIC_EE_POSE, self._on_ee_pose, graph.STREAM)
        self.create_subscription(Bool, TOPIC_GRIPPER_OPEN, self._on_gripper_open, graph.STREAM)
        self.create_subscription(JointState, TOPIC_JOINT_STATES, self._on_joint_states, graph.STREAM)
        self._pose_pub = self.create_publisher(PoseStamped, TOPIC_NEXT_BEST_POSE, graph.COMMANDS)
        self._gripper_pub = self.create_publisher(JointState, TOPIC_GRIPPER_GOAL, graph.COMMANDS)
        self._attention_pub = self.create_publisher(Image, TOPIC_ATTENTION, graph.STREAM)
        self._decision_pub = self.create_publisher(String, TOPIC_DECISION, graph.RECORD)
        self._obs_rgb_pub = self.create_publisher(Image, TOPIC_OBSERVATION_RGB, graph.RECORD)
        self._obs_points_pub = self.create_publisher(PointCloud2, TOPIC_OBSERVATION_POINTS, graph.RECORD)
        self._obs_low_dim_pub = self.create_publisher(Float32MultiArray, TOPIC_OBSERVATION_LOW_DIM,
                                                      graph.RECORD)
        self.create_service(SetBool, SERVICE_POLICY_ACT, self._on_act,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, SERVICE_POLICY_RESET, self._on_reset)
        self._qtopt_rgb_pub = self.create_publisher(Image, TOPIC_QTOPT_RGB, graph.RECORD)
        self._qtopt_state_pub = self.create_publisher(Float32MultiArray, TOPIC_QTOPT_STATE, graph.RECORD)
        self._qtopt_action_pub = self.create_publisher(Float32MultiArray, TOPIC_QTOPT_ACTION, graph.RECORD)
        self.create_service(Trigger, SERVICE_POLICY_OBSERVE, self._on_observe,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(reload_period, self._checkpoints.poll)
        self._checkpoints.poll()
        self.get_logger().info(
            f"acting on checkpoints of {self.run_dir / 'checkpoints'} "
            + (f"(loaded step {self.checkpoint_step})" if self.agent is not None
               else "(none yet: act answers success=False until the first one)"))

    @property
    def agent(self) -> Agent | None:
        return self._checkpoints.agent

    @property
    def checkpoint_step(self) -> int | None:
        return self._checkpoints.step

    # ------------------------------------------------------------------ inputs
    def _on_rgb(self, msg: Image) -> None:
        self._add_frame(msg, 0)

    def _on_points(self, msg: PointCloud2) -> None:
        self._add_frame(msg, 1)

    def _add_frame(self, msg, slot: int) -> None:
        stamp = stamp_to_nanoseconds(msg.header.stamp)
        pair = self._frames.setdefault(stamp, [None, None])
        pair[slot] = msg
        while len(self._frames) > PAIR_BUFFER:
            self._frames.popitem(last=False)
        self._offer_pair(stamp)

    def _offer_pair(self, stamp: int) -> None:
        """Hand a complete pair to a waiting request if it is stamped at/after the request."""
        waiting = self._waiting
        pair = self._frames.get(stamp)
        if waiting is None or pair is None or None in pair or stamp < waiting[0]:
            return
        if not waiting[1].done():
            waiting[1].set_result((stamp, pair[0], pair[1]))
            self._wake.trigger()  # resume the waiting act now, not at the next message

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        self._ee_pose = msg

    def _on_gripper_open(self, msg: Bool) -> None:
        self._gripper_open = bool(msg.data)

    def _on_joint_states(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if not all(n in index for n in self._finger_names):
            return  # e.g. an arm-only joint state: the fingers come in another message
        if len(msg.position) != len(msg.name):
            self.get_logger().error(f"{TOPIC_JOINT_STATES}: {len(msg.name)} names but "
                                    f"{len(msg.position)} positions; ignored",
                                    throttle_duration_sec=10.0)
            return
        self._fingers = np.array([msg.position[index[n]] for n in self._finger_names])

    # ------------------------------------------------------------------ services
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.step = 0
        response.success, response.message = True, "step counter reset to 0"
        return response

    async def _on_act(self, request: SetBool.Request, response: SetBool.Response):
        try:
            decision = await self._decide(bool(request.data))
        except DecisionError as err:
            self.get_logger().error(f"no decision: {err}")
            response.success, response.message = False, str(err)
            return response
        except Exception as err:  # noqa: BLE001 - the node answers and keeps running
            self.get_logger().error(f"no decision: unexpected {type(err).__name__}: {err}")
            response.success, response.message = False, f"unexpected {type(err).__name__}: {err}"
            return response
        response.success, response.message = True, json.dumps(decision)
        return response

    async def _on_observe(self, request: Trigger.Request, response: Trigger.Response):
        try:
            self._require_agent()
            if self.agent.name != "qtopt":
                raise DecisionError(f"observe is QT-Opt's (the last frame of a grasp episode); "
                                    f"checkpoint {self.checkpoint_step} holds agent {self.agent.name!r}")
            obs_stamp, rgb_msg, _ = await self._fresh_pair()
            obs, _, _ = self._grasp_observation(rgb_msg)
            self._publish_grasp_observation(self.get_clock().now().to_msg(), obs)
        except DecisionError as err:
            response.success, response.message = False, str(err)
            return response
        response.success, response.message = True, json.dumps({"observation_stamp_ns": obs_stamp})
        return response

    def _require_agent(self) -> None:
        if self.agent is None:
            self._checkpoints.load_first()
        if self.agent is None:
            raise DecisionError(f"no checkpoint yet in {self.run_dir / 'checkpoints'} (the "
                                "training node writes the first one once its demos are loaded)")

    async def _decide(self, requested_explore: bool) -> dict[str, Any]:
        self._require_agent()
        explore = {"request": requested_explore, "always": True, "never": False}[self._explore_mode]
        obs_stamp, rgb_msg, points_msg = await self._fresh_pair()
        if self.agent.name == "qtopt":
            return self._decide_grasp(obs_stamp, rgb_msg, explore)
        obs = self._observation(rgb_msg, points_msg)
        agent, checkpoint_step = self.agent, self.checkpoint_step
        pixel, action, q_map = agent.act(obs, explore=explore)
        if not np.all(np.isfinite(action)) or np.linalg.norm(action[3:7]) < 1e-6:
            raise DecisionError(f"the agent (checkpoint {checkpoint_step}) gave a non-finite or "
                                f"zero-quaternion action {action.tolist()}; nothing published")
        stamp = self.get_clock().now().to_msg()
        decision = decision_message(
            stamp_ns=stamp_to_nanoseconds(stamp), step=self.step, explore=explore, pixel=pixel,
            action=action, checkpoint_step=checkpoint_step, low_dim=obs["low_dim"],
            observation_stamp_ns=obs_stamp)
        self._publish(stamp, obs, pixel, action, q_map, agent.cfg.crop_size, decision)
        self.step += 1
        return decision

    async def _fresh_pair(self) -> tuple[int, Image, PointCloud2]:
        """The first rgb + points pair stamped at or after now (DecisionError after the timeout)."""
        request_ns = self.get_clock().now().nanoseconds
        future = Future()
        self._waiting = (request_ns, future)
        for stamp in list(self._frames):
            self._offer_pair(stamp)
        timer = self.create_timer(self._timeout, lambda: future.done() or future.set_result(None))
        try:
            pair = await future
        finally:
            self._waiting = None
            timer.cancel()
            self.destroy_timer(timer)
        if pair is None:
            have = sorted(self._frames)
            raise DecisionError(
                f"no rgb + points pair stamped after the request within {self._timeout} s on "
                f"{TOPIC_PERCEPTION_RGB} and {TOPIC_PERCEPTION_POINTS}"
                + (f" (newest complete pair is {(request_ns - have[-1]) / 1e9:.3f} s old)"
                   if have and None not in self._frames[have[-1]] else ""))
        return pair

    # ------------------------------------------------------------------ QT-Opt
    def _grasp_observation(self, rgb_msg: Image) -> tuple[dict, np.ndarray, float]:
        """QT-Opt's input from the image and the latest robot state -> (observation, tool
        position (3,), tool yaw); DecisionError says what is missing or wrong."""
        rgb = self._image(rgb_msg)
        pose, fingers = self._robot_state()
        R = quat_xyzw_to_mat(pose[3:] / np.linalg.norm(pose[3:]))
        return (state_observation(rgb, self._gripper_open, pose[2], fingers), pose[:3],
                float(np.arctan2(R[1, 0], R[0, 0])))

    def _decide_grasp(self, obs_stamp: int, rgb_msg: Image, explore: bool) -> dict[str, Any]:
        obs, tcp, yaw = self._grasp_observation(rgb_msg)
        agent, checkpoint_step = self.agent, self.checkpoint_step
        action = agent.act(obs, explore=explore).action
        try:
            xyz, goal_yaw, close, terminate = step_goal(tcp, yaw, action)
        except ValueError as err:
            raise DecisionError(f"the agent (checkpoint {checkpoint_step}): {err}; nothing published") from None
        stamp = self.get_clock().now().to_msg()
        decision = {"stamp_ns": stamp_to_nanoseconds(stamp), "step": self.step, "explore": explore,
                    "action": [float(v) for v in action], "terminate": terminate,
                    "goal": [*(float(v) for v in xyz), goal_yaw], "close_gripper": close,
                    "checkpoint_step": checkpoint_step, "observation_stamp_ns": obs_stamp}
        # what the agent saw and did first (the recorder keeps it), then the goals
        self._publish_grasp_observation(stamp, obs)
        self._qtopt_action_pub.publish(Float32MultiArray(data=[float(v) for v in action]))
        self._decision_pub.publish(String(data=json.dumps(decision)))
        self._publish_goal(stamp, np.r_[xyz, top_down_quat(goal_yaw)], 0.0 if close else 1.0)
        self.step += 1
        return decision

    def _publish_grasp_observation(self, stamp, obs: dict) -> None:
        self._qtopt_rgb_pub.publish(numpy_to_image(obs["rgb"], "rgb8", stamp, "front_camera_optical_frame"))
        self._qtopt_state_pub.publish(Float32MultiArray(data=[float(v) for v in stored_state(obs)]))

    def _observation(self, rgb_msg: Image, points_msg: PointCloud2) -> dict:
        """The agent's input from the pair and the latest robot state; DecisionError says what
        is wrong with it."""
        try:
            rgb = image_to_numpy(rgb_msg, kind="color")
        except ValueError as err:
            raise DecisionError(f"bad image on {TOPIC_PERCEPTION_RGB}: {err}") from None
        try:
            points = pointcloud2_to_numpy(points_msg)
        except ValueError as err:
            raise DecisionError(f"bad point cloud on {TOPIC_PERCEPTION_POINTS}: {err}") from None
        if points.shape != rgb.shape:
            raise DecisionError(f"{TOPIC_PERCEPTION_POINTS} is {points.shape[1]}x{points.shape[0]} "
                                f"but {TOPIC_PERCEPTION_RGB} is {rgb.shape[1]}x{rgb.shape[0]} "
                                "(need an organised cloud of the image's size)")
        self._check_size(rgb)
        pose, fingers = self._robot_state()
        return agent_observation(rgb, points, self._gripper_open, pose, fingers, self.step,
                                 self._episode_length)

    def _image(self, rgb_msg: Image) -> np.ndarray:
        try:
            rgb = image_to_numpy(rgb_msg, kind="color")
        except ValueError as err:
            raise DecisionError(f"bad image on {TOPIC_PERCEPTION_RGB}: {err}") from None
        self._check_size(rgb)
        return rgb

    def _check_size(self, rgb: np.ndarray) -> None:
        size = self.agent.cfg.image_size
        if rgb.shape[:2] != (size, size):
            raise DecisionError(f"images are {rgb.shape[1]}x{rgb.shape[0]} but checkpoint "
                                f"{self.checkpoint_step} expects {size}x{size} (perception_node "
                                f"image_size)")

    def _robot_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The latest tool pose (7,) and finger positions (2,), checked."""
        missing = [t for t, v in ((TOPIC_EE_POSE, self._ee_pose),
                                  (TOPIC_GRIPPER_OPEN, self._gripper_open),
                                  (f"{TOPIC_JOINT_STATES} with {self._finger_names}", self._fingers))
                   if v is None]
        if missing:
            raise DecisionError(f"no message yet on {', '.join(missing)}")
        p, o = self._ee_pose.pose.position, self._ee_pose.pose.orientation
        pose = np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w])
        if not np.all(np.isfinite(pose)) or np.linalg.norm(pose[3:]) < 1e-9:
            raise DecisionError(f"{TOPIC_EE_POSE} is not a valid pose: {pose.tolist()}")
        if not np.all(np.isfinite(self._fingers)):
            raise DecisionError(f"finger positions are not finite: {self._fingers.tolist()}")
        return pose, self._fingers

    # ------------------------------------------------------------------ outputs
    def _publish(self, stamp, obs: dict, pixel, action, q_map, crop_size: int,
                 decision: dict) -> None:
        # What the agent saw first (the recorder keeps it with the decision), then the goals.
        self._obs_rgb_pub.publish(numpy_to_image(obs["rgb"], "rgb8", stamp, "front_camera_optical_frame"))
        self._obs_points_pub.publish(points_to_pointcloud2(obs["point_cloud"], stamp, self._world_frame))
        self._obs_low_dim_pub.publish(Float32MultiArray(data=obs["low_dim"].astype(float).tolist()))
        self._decision_pub.publish(String(data=json.dumps(decision)))
        self._publish_goal(stamp, action[:7], 1.0 if float(action[7]) > 0.5 else 0.0)

        heat = heatmap_image(obs["rgb"], q_map, pixel, crop_size, scale=self._attention_scale,
                             annotate=False)
        self._attention_pub.publish(numpy_to_image(heat, "rgb8", stamp, "front_camera_optical_frame"))


    def _publish_goal(self, stamp, pose7, gripper_open: float) -> None:
        """The gripper goal, then the pose goal (xyz + quaternion xyzw), with the same stamp:
        the control node pairs them by it."""
        gripper = JointState()
        gripper.header.stamp = stamp
        gripper.name = ["gripper"]
        gripper.position = [float(gripper_open)]
        self._gripper_pub.publish(gripper)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self._world_frame
        q = np.asarray(pose7[3:7], dtype=np.float64)
        q /= np.linalg.norm(q)
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in pose7[:3])
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in q)
        self._pose_pub.publish(pose)


def main(args=None) -> None:
    # Keep torch from taking every core of a shared machine for a batch of one.
    if "OMP_NUM_THREADS" not in os.environ:
        import torch
        torch.set_num_threads(min(2, torch.get_num_threads()))
    run_node(PolicyNode, "policy_node", args)


if __name__ == "__main__":
    main()
