"""QT-Opt's grasping episode over the ROS graph: closed-loop steps until terminate, then the lift.

The episode runner plays it with ``algo:=qtopt`` (``arm launch sim_train algo:=qtopt
task:=grasp_bin``), as ``arm train --inprocess --algo qtopt`` plays
``arm_policy.grasp_episodes.play_episode`` on the in-process bin. One episode::

    sim_node's seed and held_out set -> /arm/sim/reset -> /arm/episode "start NAME" -> /arm/policy/reset
    per step k (at most max_steps):
        /arm/policy/act (explore): policy_node publishes the observation, the action and the
            short move (/arm/next_best_pose = the tool pose + displacement, /arm/gripper_goal)
        the move's /arm/control/result (any outcome: a blocked step is still a step)
        after a terminate action or the last step: the lift, straight up to LIFT_HEIGHT with the
            gripper as the step left it, its result, a short hold, then /arm/task/success
        /arm/episode/step {"step": k, "terminal", "success", "reward", "outcome", ...}
    /arm/policy/observe (the final observation, for the bag) -> /arm/episode "end"

The recorder's bag of an episode then holds what ``arm_policy.grasp_episodes.read_grasp_episode``
reads: per step the observation, the action and the step, then the final observation.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from arm_bringup import episodes as ep
from arm_bringup.graph_rollout import EpisodeAborted, GraphRollout
from arm_control import graph, topics

__all__ = ["GraspEpisode", "GraspRollout"]


@dataclass
class GraspEpisode:
    success: bool
    steps: int
    episode_return: float
    checkpoint_step: int = -1


class GraspRollout(GraphRollout):
    """See the module docstring. ``step_reward`` and ``success_reward`` only make the reported
    return (the bags store no reward: the trainer derives it from its own config)."""

    def __init__(self, node: Node, image_size: int, max_steps: int = 20, hold_seconds: float = 0.2,
                 step_reward: float = -0.05, success_reward: float = 1.0,
                 world_frame: str = "world", **kwargs) -> None:
        super().__init__(node, "grasp_bin", image_size, **kwargs)
        self.max_steps, self.hold_seconds = int(max_steps), float(hold_seconds)
        self.step_reward, self.success_reward = float(step_reward), float(success_reward)
        self.world_frame = world_frame
        self.ee: PoseStamped | None = None
        node.create_subscription(PoseStamped, topics.TOPIC_EE_POSE, lambda m: setattr(self, "ee", m), graph.STATE)
        self.pub_pose = node.create_publisher(PoseStamped, topics.TOPIC_NEXT_BEST_POSE, graph.COMMANDS)
        self.pub_gripper = node.create_publisher(JointState, topics.TOPIC_GRIPPER_GOAL, graph.COMMANDS)
        self.observe = node.create_client(Trigger, topics.SERVICE_POLICY_OBSERVE)

    def wait_for_graph(self) -> None:
        super().wait_for_graph()
        while not self.spin_until(self.observe.service_is_ready, 10.0):
            self.node.get_logger().info(f"waiting for the service {self.observe.srv_name}")

    def play(self, seed: int, held_out: bool, explore: bool, name: str) -> GraspEpisode:
        """One episode on the scene (``seed``, ``held_out``); EpisodeAborted when the graph
        could not finish it (the recorder is told to drop its bag)."""
        try:
            return self._play(seed, held_out, explore, name)
        except BaseException as error:
            self.abort(error)
            raise

    def _play(self, seed, held_out, explore, name) -> GraspEpisode:
        self.start_episode(seed, name, held_out=bool(held_out))
        success, total, checkpoint = False, 0.0, -1
        for k in range(self.max_steps):
            decision = self._grasp_decision(self.ask_policy(explore))
            checkpoint = int(decision.get("checkpoint_step", -1))
            outcome = self.execute(None).outcome
            last = bool(decision["terminate"]) or k == self.max_steps - 1
            if last:
                success = self.lift(decision)
            reward = self.step_reward + (self.success_reward if success else 0.0)
            total += reward
            self.pub_step.publish(String(data=ep.StepRecord(
                k, reward, last, outcome, success, int(decision["stamp_ns"]), self._name).to_json()))
            if last:
                break
        answer = self.call(self.observe, Trigger.Request(), self.action_timeout)
        if answer is None or not answer.success:
            raise EpisodeAborted(f"/arm/policy/observe failed: {answer.message if answer else 'no answer'}")
        self.end()
        return GraspEpisode(success, k + 1, total, checkpoint)

    @staticmethod
    def _grasp_decision(text: str) -> dict:
        try:
            decision = json.loads(text)
            if len(decision["goal"]) != 4 or not isinstance(decision["terminate"], bool):
                raise ValueError
            int(decision["stamp_ns"])
            return decision
        except (ValueError, KeyError, TypeError):
            raise EpisodeAborted(f"/arm/policy/act answered no QT-Opt decision (is the checkpoint "
                                 f"a qtopt agent's?): {text[:200]!r}") from None

    def lift(self, decision: dict) -> bool:
        """QT-Opt's end of an episode (``GraspBinEnv``'s lift-and-check): the tool straight up,
        the gripper as the last step left it, a hold, then whether an object came along."""
        from arm_control.transforms import top_down_quat
        from arm_policy.grasp_episodes import lift_goal

        if not self.spin_until(lambda: self.ee is not None, 5.0):
            raise EpisodeAborted(f"no {topics.TOPIC_EE_POSE} to lift from")
        p = self.ee.pose.position
        xyz = lift_goal([p.x, p.y, p.z])
        stamp = self.node.get_clock().now().to_msg()
        self.expect_result()
        gripper = JointState()
        gripper.header.stamp, gripper.name = stamp, ["gripper"]
        gripper.position = [0.0 if decision.get("close_gripper") else 1.0]
        self.pub_gripper.publish(gripper)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.world_frame
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in xyz)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in top_down_quat(float(decision["goal"][3])))
        self.pub_pose.publish(pose)
        self.execute(None)
        held_since = time.monotonic() + self.hold_seconds
        if not self.spin_until(lambda: self.success is not None and self.success[0] > held_since,
                               self.hold_seconds + 2.0):
            raise EpisodeAborted(f"no {topics.TOPIC_SUCCESS} after the lift")
        return bool(self.success[1])
