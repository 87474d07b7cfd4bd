"""The ROS graph as a :class:`~arm_policy.rollout.Rollout`: the episode runner plays the same
episode loop (:func:`arm_policy.rollout.run_episode`) over DDS that ``arm train --inprocess``
plays on the in-process simulator.

One episode (the contract in docs/design.md, "Learning over the graph")::

    set sim_node's `seed` (rcl_interfaces SetParameters) -> /arm/sim/reset
    /arm/episode "start train/episode_NNNNNN" (or eval/...)  -> the recorder opens a bag
    /arm/policy/reset
    per step: /arm/policy/act (explore) -> the next /arm/control/result and /arm/task/success
              -> /arm/episode/step (String JSON: reward, terminal, outcome, success, ...)
    /arm/episode "end" (or "abort": the recorder drops the bag)

An episode the graph cannot finish (the policy refuses or does not answer, no control result)
raises :class:`EpisodeAborted`; ``max_aborts`` in a row raise RuntimeError with the last reason.
The scripted expert's keyframes of each scene (for the evaluation's diagnosis) come from a local
copy of the simulator reset to the same seed: sim_node builds the same scene from it.
"""
from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rcl_interfaces.srv import SetParameters
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from arm_bringup import episodes as ep
from arm_control import graph, topics
from arm_policy.rollout import Decision, Execution, Rollout, Scene

__all__ = ["EpisodeAborted", "GraphRollout", "Shutdown"]


class Shutdown(ExternalShutdownException):
    """ROS was shut down (Ctrl-C, the launcher stopping us) while we waited; a clean stop for
    :func:`arm_control.node_main.run_node` like any ExternalShutdownException."""


class EpisodeAborted(Exception):
    """The graph could not complete an episode (no decision, no control result): not the
    agent's doing, so the episode is dropped instead of being learned from."""


class GraphRollout(Rollout):
    """See the module docstring. Its publishers, subscriptions and clients live on ``node``,
    which it spins with an executor of its own while it waits."""

    def __init__(self, node: Node, task: str, image_size: int, sim_node: str = "sim_node",
                 action_timeout: float = 15.0, result_timeout: float = 30.0, max_aborts: int = 5,
                 required: list[str] | None = None):
        self.node, self.task, self.image_size = node, task, image_size
        self.action_timeout, self.result_timeout = action_timeout, result_timeout
        self.max_aborts, self.aborts = max_aborts, 0  # episodes in a row the graph failed
        self.required = list(required or [])
        self.pub_episode = node.create_publisher(String, topics.TOPIC_EPISODE, graph.COMMANDS)
        self.pub_step = node.create_publisher(String, topics.TOPIC_EPISODE_STEP, graph.COMMANDS)
        self.results: list[tuple[float, str]] = []  # (receive time, text)
        self.success: tuple[float, bool] | None = None  # latest /arm/task/success
        self.attention: deque[Image] = deque(maxlen=8)
        node.create_subscription(String, topics.TOPIC_CONTROL_RESULT,
                                 lambda m: self.results.append((time.monotonic(), m.data)), graph.COMMANDS)
        node.create_subscription(Bool, topics.TOPIC_SUCCESS,
                                 lambda m: setattr(self, "success", (time.monotonic(), bool(m.data))),
                                 graph.STATE)
        # best effort matches a reliable or a best-effort publisher
        node.create_subscription(Image, topics.TOPIC_ATTENTION, lambda m: self.attention.append(m), graph.SENSOR)
        self.act = node.create_client(SetBool, topics.SERVICE_POLICY_ACT)
        self.policy_reset = node.create_client(Trigger, topics.SERVICE_POLICY_RESET)
        self.sim_reset = node.create_client(Trigger, topics.SERVICE_SIM_RESET)
        self.sim_params = node.create_client(SetParameters, f"/{sim_node}/set_parameters")
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self._expert_task = None
        self._name, self._since = "", 0

    # ------------------------------------------------------------------ waiting
    def spin_until(self, done: Callable[[], bool], timeout: float, period: float = 0.05) -> bool:
        """Process callbacks until ``done()`` or ``timeout`` seconds; raises Shutdown."""
        end = time.monotonic() + timeout
        while True:
            if done():
                return True
            if not self.node.context.ok():
                raise Shutdown()
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                self.executor.spin_once(timeout_sec=min(period, left))
            except ExternalShutdownException:
                raise Shutdown() from None

    def call(self, client, request, timeout: float):
        """A service call that waits for the server first; None when it does not answer."""
        if not self.spin_until(client.service_is_ready, timeout):
            return None
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout):
            client.remove_pending_request(future)
            return None
        return future.result()

    def wait_for_graph(self) -> None:
        """Services of sim and policy, and the recorder's subscriptions, with a line per wait."""
        log = self.node.get_logger()
        for client in (self.sim_reset, self.sim_params, self.policy_reset, self.act):
            while not self.spin_until(client.service_is_ready, 10.0):
                log.info(f"waiting for the service {client.srv_name}")
        for topic in self.required:
            while not self.spin_until(lambda t=topic: self.node.count_subscribers(t) > 0, 10.0):
                log.info(f"waiting for a recorder to subscribe to {topic}")

    # ------------------------------------------------------------------ Rollout
    def reset(self, seed: int, name: str = "") -> Scene:
        from arm_policy.rollout import expert_scene
        from arm_sim.environment import Environment

        self.start_episode(seed, name)
        if self._expert_task is None:
            self._expert_task = Environment(image_size=(self.image_size,) * 2).get_task(self.task)
        _, obs = self._expert_task.reset(seed=seed)
        return expert_scene(self._expert_task, obs)

    def start_episode(self, seed: int, name: str, **sim_parameters) -> None:
        """The graph's part of a reset: sim_node's ``seed`` (and ``sim_parameters``) set,
        /arm/sim/reset, the recorder told the episode's ``name``, the policy reset."""
        request = SetParameters.Request()
        request.parameters = [Parameter(key, value=value).to_parameter_msg()
                              for key, value in {"seed": int(seed), **sim_parameters}.items()]
        answer = self.call(self.sim_params, request, 10.0)
        if answer is None or not answer.results or not all(r.successful for r in answer.results):
            reason = next((r.reason for r in answer.results if not r.successful), "no answer") \
                if answer is not None and answer.results else "no answer"
            raise EpisodeAborted(f"cannot set the simulator's seed to {seed}"
                                 + (f" and {sim_parameters}" if sim_parameters else "") + f": {reason}")
        answer = self.call(self.sim_reset, Trigger.Request(), 10.0)
        if answer is None or not answer.success:
            raise EpisodeAborted(f"/arm/sim/reset failed: {answer.message if answer else 'no answer'}")
        if f"seed={seed}" not in answer.message:
            raise EpisodeAborted(f"/arm/sim/reset answered {answer.message!r}, expected seed={seed}")
        self._name = name
        self.pub_episode.publish(String(data=f"start {name}"))
        # the policy node answers on the executor that also loads its checkpoints: as long as act
        answer = self.call(self.policy_reset, Trigger.Request(), max(10.0, self.action_timeout))
        if answer is None or not answer.success:
            raise EpisodeAborted(f"/arm/policy/reset failed: {answer.message if answer else 'no answer'}")

    def decide(self, step: int, explore: bool) -> Decision:
        return self._decision(self.ask_policy(explore))

    def ask_policy(self, explore: bool) -> str:
        """One /arm/policy/act call -> its decision JSON text. A refusal (no fresh observation
        yet, ...) is asked again up to twice; no answer aborts the episode at once, since a late
        decision may still reach the arm."""
        self._since = len(self.results)
        for _ in range(3):
            answer = self.call(self.act, SetBool.Request(data=explore), self.action_timeout)
            if answer is None:
                raise EpisodeAborted(f"/arm/policy/act did not answer within {self.action_timeout:g} s")
            if answer.success:
                return answer.message
            self.spin_until(lambda: False, 1.0)
        raise EpisodeAborted(f"the policy did not decide: {answer.message}")

    @staticmethod
    def _decision(text: str) -> Decision:
        try:
            d: dict[str, Any] = json.loads(text)
            return Decision(np.asarray(d["pixel"], dtype=np.int64), np.asarray(d["action"], dtype=np.float64),
                            stamp_ns=int(d.get("stamp_ns", 0)),
                            checkpoint_step=int(d.get("checkpoint_step", -1)))
        except (ValueError, KeyError, TypeError):
            raise EpisodeAborted(f"/arm/policy/act answered no decision JSON: {text[:200]!r}") from None

    def execute(self, decision: Decision | None) -> Execution:
        """The first control result after the decision (or after :meth:`expect_result`), and
        the task's success after it."""
        if not self.spin_until(lambda: len(self.results) > self._since, self.result_timeout):
            raise EpisodeAborted(f"no /arm/control/result within {self.result_timeout:g} s")
        received, text = self.results[self._since]
        # success as the simulator reports it after the move (it publishes at its control rate)
        self.spin_until(lambda: self.success is not None and self.success[0] > received, 1.0)
        return Execution(ep.outcome_of(text), bool(self.success[1]) if self.success is not None else False)

    def expect_result(self) -> None:
        """The next :meth:`execute` waits for a result of a goal sent after this call."""
        self._since = len(self.results)

    def on_step(self, step, reward, terminal, outcome, success, decision) -> None:
        record = ep.StepRecord(step, reward, terminal, outcome, success, decision.stamp_ns, self._name)
        self.pub_step.publish(String(data=record.to_json()))

    def end(self) -> None:
        self.aborts = 0
        self.pub_episode.publish(String(data=f"end {self._name}"))

    def abort(self, error: BaseException) -> None:
        if self.node.context.ok():
            self.pub_episode.publish(String(data="abort"))
        if isinstance(error, EpisodeAborted):
            self.aborts += 1
            if self.aborts >= self.max_aborts:
                raise RuntimeError(f"{self.aborts} episodes in a row failed; the last: {error}") from None

    # ------------------------------------------------------------------ snapshots
    def save_attention(self, stamp_ns: int, path: Path) -> None:
        """The /arm/attention heat map published with the decision of ``stamp_ns``, as PNG."""
        import cv2

        from arm_perception.ros_conversions import image_to_numpy, stamp_to_nanoseconds

        def match():
            return next((m for m in self.attention
                         if stamp_to_nanoseconds(m.header.stamp) == stamp_ns), None)

        if not self.spin_until(lambda: match() is not None, 2.0):
            self.node.get_logger().warning(f"no /arm/attention image with the decision's stamp "
                                           f"{stamp_ns}; no snapshot at {path.name}")
            return
        rgb = image_to_numpy(match(), kind="color")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._expert_task is not None:
            self._expert_task.close()
            self._expert_task = None
