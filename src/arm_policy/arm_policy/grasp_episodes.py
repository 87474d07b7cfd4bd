"""QT-Opt's grasping episodes: played on the in-process bin (arm_sim.grasp_bin), stored as one
rosbag2 (MCAP) bag each, read back as transitions. No ROS import.

    frames = play_scripted(env, seed=3, rng=rng)                 # the offline data policy
    bag = write_grasp_episode("runs/qt/offline/episode_000003", frames)
    transitions = read_grasp_episode(bag, QTOptConfig())
    frames = read_grasp_frames(bag)             # the same in two steps: decoded before the agent's
    transitions = grasp_transitions(bag, frames, QTOptConfig())   # config is known (training_node)

A bag holds, per step k, the observation the action was chosen on (``/arm/qtopt/observation/rgb``
sensor_msgs/Image rgb8, ``/arm/qtopt/observation/state`` Float32MultiArray [gripper_open,
height, aperture]; bags recorded before the aperture hold the first two), the action (``/arm/qtopt/action`` Float32MultiArray, QT-Opt's 7-D vector) and the step
(``/arm/episode/step`` String JSON: step, terminal, success), then the final observation. Rewards
are not stored: they follow from the steps by the agent's config (``step_reward`` each step,
``success_reward`` added at a successful end), so a bag stays valid when the reward changes.
The end of an episode is a real end (the bin lifts the gripper and checks), never a timeout.

The recorder node (arm_bringup.recorder) writes the same bag from the live topics, through the
same :class:`~arm_perception.bag_writer.RawEpisodeWriter`, with three differences the reader
accepts: log times are receive times, so the topics interleave in any order (each topic is read
in log-time order and the k-th image, state, action and step are paired by index); the offered
QoS profiles are the publishers'; and ``custom_data`` names the episode and how it ended instead
of ``arm.episode_kind``. An episode cut short (a missing final observation, say) is a BagError.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from arm_control.topics import TOPIC_EPISODE_STEP, TOPIC_QTOPT_ACTION, TOPIC_QTOPT_RGB, TOPIC_QTOPT_STATE
from arm_perception.bag_codec import TYPESTORE, decode_message, decode_rgb, image_msg
from arm_perception.bag_format import BagError
from arm_perception.bag_reader import bag_errors, read_topics
from arm_perception.bag_writer import RawEpisodeWriter

__all__ = ["GraspFrame", "TOPIC_TYPES", "agent_state", "env_action", "frame_state", "grasp_transitions", "lift_goal",
           "play_episode", "play_scripted", "read_grasp_episode", "read_grasp_frames", "state_observation", "step_goal",
           "stored_state", "transitions_of", "write_grasp_episode"]

_T = TYPESTORE.types
TOPIC_TYPES = {TOPIC_QTOPT_RGB: "sensor_msgs/msg/Image",
               TOPIC_QTOPT_STATE: "std_msgs/msg/Float32MultiArray",
               TOPIC_QTOPT_ACTION: "std_msgs/msg/Float32MultiArray",
               TOPIC_EPISODE_STEP: "std_msgs/msg/String"}
STEP_NS = 50_000_000  # one step every 50 ms of log time (the bin's control period)


@dataclass
class GraspFrame:
    """One observation and, except for the last frame of an episode, the action taken on it."""

    rgb: np.ndarray  # (H, W, 3) uint8
    state: np.ndarray  # (3,) [gripper_open, gripper_height, gripper_aperture] ((2,) in older bags)
    action: np.ndarray | None = None  # (7,) [dx, dy, dz, sin yaw, cos yaw, close, terminate]
    done: bool = False  # the episode ended after this frame's action
    success: bool = False  # ... with an object lifted


def env_action(action: np.ndarray) -> dict[str, Any]:
    """QT-Opt's 7-D action -> the bin's step arguments (yaw delta from sin and cos)."""
    a = np.asarray(action, dtype=np.float64)
    return {"displacement_xyz": a[:3], "yaw_delta": float(np.arctan2(a[3], a[4])),
            "close_gripper": bool(a[5] > 0.5), "terminate": bool(a[6] > 0.5)}


def step_goal(tcp_xyz, tcp_yaw: float, action) -> tuple[np.ndarray, float, bool, bool]:
    """QT-Opt's 7-D action at the measured tool centre point -> the goal an arm controller
    executes (the ROS graph's step; the in-process bin does the same in ``GraspBinEnv.step``):
    ``(xyz (3,), yaw, close_gripper, terminate)``. The displacement and the yaw change are
    clipped to the bin's per-step bounds, the position to its workspace above the tray and the
    yaw to +-YAW_LIMIT. ValueError for a non-finite action or pose."""
    from arm_sim.grasp_bin import step_target

    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (7,):
        raise ValueError(f"a QT-Opt action has 7 values (dx, dy, dz, sin, cos, close, terminate), got {a.shape[0]}")
    tcp = np.asarray(tcp_xyz, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(tcp)) and np.isfinite(tcp_yaw)):
        raise ValueError(f"non-finite QT-Opt step: action {a.tolist()}, tool at {tcp.tolist()}, yaw {tcp_yaw}")
    step = env_action(a)
    xyz, yaw = step_target(tcp, float(tcp_yaw), step["displacement_xyz"], step["yaw_delta"])
    return xyz, yaw, step["close_gripper"], step["terminate"]


def lift_goal(tcp_xyz) -> np.ndarray:
    """Where the end of a grasp episode lifts the tool to: straight up to LIFT_HEIGHT above the
    tray floor (``GraspBinEnv``'s lift-and-check)."""
    from arm_sim.grasp_bin import FLOOR_Z, LIFT_HEIGHT

    tcp = np.asarray(tcp_xyz, dtype=np.float64).reshape(-1)
    return np.array([tcp[0], tcp[1], FLOOR_Z + LIFT_HEIGHT])


def state_observation(rgb: np.ndarray, gripper_open: bool, tcp_z: float, fingers) -> dict[str, Any]:
    """QT-Opt's ``act`` input from a robot's measured state (the ROS graph: a camera image, the
    measured gripper state, the tool's height in the world and the finger positions in metres),
    the same fields :func:`agent_observation` takes from the in-process bin."""
    from arm_control import panda
    from arm_sim.grasp_bin import FLOOR_Z

    aperture = float(np.clip(np.mean(np.asarray(fingers, dtype=np.float64)) / panda.FINGER_OPEN, 0.0, 1.0))
    return {"rgb": rgb, "gripper_open": float(bool(gripper_open)), "gripper_height": float(tcp_z) - FLOOR_Z,
            "gripper_aperture": aperture}


def agent_action(displacement, yaw_delta: float, close: bool, terminate: bool) -> np.ndarray:
    """The bin's step arguments -> QT-Opt's 7-D action."""
    d = np.asarray(displacement, dtype=np.float32)
    return np.r_[d, np.sin(yaw_delta), np.cos(yaw_delta), float(close), float(terminate)].astype(np.float32)


def agent_observation(obs) -> dict[str, Any]:
    """A bin observation as QT-Opt's ``act`` takes it."""
    return {"rgb": obs.rgb, "gripper_open": float(obs.gripper_open), "gripper_height": float(obs.gripper_height),
            "gripper_aperture": float(obs.gripper_aperture)}


def frame_state(obs) -> np.ndarray:
    """What a bag stores as the state of a bin observation (:func:`stored_state`)."""
    return stored_state(agent_observation(obs))


def stored_state(observation: dict[str, Any]) -> np.ndarray:
    """What a bag stores as the state of an ``act`` observation: [gripper_open, gripper_height,
    gripper_aperture]."""
    return np.array([observation["gripper_open"], observation["gripper_height"], observation["gripper_aperture"]],
                    dtype=np.float32)


def agent_state(stored: np.ndarray, config) -> np.ndarray:
    """A stored state -> the agent's (2,): [gripper_open, height], or [aperture, height] with
    ``config.state_aperture`` (a bag from before the aperture was stored cannot give that)."""
    stored = np.asarray(stored, dtype=np.float32)
    if getattr(config, "state_aperture", False):
        if stored.shape[0] < 3:
            raise ValueError("this grasp episode was recorded without the gripper aperture, which "
                             "state_aperture needs: record the offline data again")
        return np.array([stored[2], stored[1]], dtype=np.float32)
    return stored[:2]


def play_episode(env, seed: int, decide: Callable[[Any], np.ndarray], held_out: bool = False) -> list[GraspFrame]:
    """One episode on the bin: reset to ``seed``, then ``decide(observation) -> 7-D action``
    until the bin ends it (terminate, or its step limit)."""
    obs = env.reset(seed=seed, held_out=held_out)
    frames, done = [], False
    while not done:
        action = np.asarray(decide(obs), dtype=np.float32)
        frame = GraspFrame(obs.rgb, frame_state(obs), action)
        obs, done, success = env.step(**env_action(action))
        frame.done, frame.success = done, bool(success)
        frames.append(frame)
    frames.append(GraspFrame(obs.rgb, frame_state(obs)))
    return frames


def play_scripted(env, seed: int, rng: np.random.Generator, noise: float = 1.0,
                  random_action_prob: float = 0.0, random_terminate_prob: float = 0.5,
                  sticky_close: bool = False) -> list[GraspFrame]:
    """The offline data policy (arm_sim.grasp_bin_scripted: a noisy top-down grasp at a random
    object, each step replaced by a random one with ``random_action_prob``), recorded as frames."""
    from arm_sim.grasp_bin import MAX_DISPLACEMENT, MAX_YAW_DELTA
    from arm_sim.grasp_bin_scripted import scripted_grasp

    first = env.reset(seed=seed)
    episode = scripted_grasp(env, rng, noise, record=True, random_action_prob=random_action_prob,
                             random_terminate_prob=random_terminate_prob, sticky_close=sticky_close)
    frames, before = [], first
    for obs, act, done, success in episode.transitions:
        # stored as executed: the bin clips each step to its bounds
        frames.append(GraspFrame(before.rgb, frame_state(before),
                                 agent_action(np.clip(act["displacement"], -MAX_DISPLACEMENT, MAX_DISPLACEMENT),
                                              float(np.clip(act["yaw_delta"], -MAX_YAW_DELTA, MAX_YAW_DELTA)),
                                              act["close_gripper"], act["terminate"]),
                                 bool(done), bool(success)))
        before = obs
    frames.append(GraspFrame(before.rgb, frame_state(before)))
    return frames


def transitions_of(frames: Sequence[GraspFrame], config) -> list[dict[str, np.ndarray]]:
    """Frames -> transitions in QT-Opt's replay fields, rewarded by ``config``."""
    out = []
    for frame, after in zip(frames[:-1], frames[1:]):
        reward = config.step_reward + (config.success_reward if frame.success else 0.0)
        out.append({"rgb": frame.rgb, "state": agent_state(frame.state, config), "action": frame.action,
                    "reward": np.float32(reward), "terminal": frame.done, "timeout": False,
                    "next_rgb": after.rgb, "next_state": agent_state(after.state, config)})
    return out


def _floats(values) -> Any:
    layout = _T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return _T["std_msgs/msg/Float32MultiArray"](layout=layout, data=np.asarray(values, dtype=np.float32))


def write_grasp_episode(path: str | os.PathLike[str], frames: Sequence[GraspFrame], *,
                        compress: bool = True) -> Path:
    """One episode as a bag (staged and renamed on close, as every bag here); returns its path."""
    if len(frames) < 2 or any(f.action is None for f in frames[:-1]):
        raise ValueError("an episode needs at least one action and the observation after it")
    with RawEpisodeWriter(path, compress=compress) as writer:
        writer.set_custom_data("arm.episode_kind", "qtopt_grasp")
        for topic, msgtype in TOPIC_TYPES.items():
            writer.add_topic(topic, msgtype)
        for k, frame in enumerate(frames):
            ns = (k + 1) * STEP_NS
            messages = [(TOPIC_QTOPT_RGB, image_msg(ns, np.ascontiguousarray(frame.rgb, np.uint8), "rgb8")),
                        (TOPIC_QTOPT_STATE, _floats(frame.state))]
            if frame.action is not None:
                messages += [(TOPIC_QTOPT_ACTION, _floats(frame.action)),
                             (TOPIC_EPISODE_STEP, _T["std_msgs/msg/String"](data=json.dumps(
                                 {"step": k, "terminal": frame.done, "success": frame.success})))]
            for i, (topic, msg) in enumerate(messages):
                writer.write(topic, TYPESTORE.serialize_cdr(msg, TOPIC_TYPES[topic]), ns + 1000 * i)
    return writer.path


def read_grasp_frames(path: str | os.PathLike[str]) -> list[GraspFrame]:
    """A grasp episode bag (written here or by the recorder) -> its frames, not yet rewarded
    (:func:`grasp_transitions` does that with the agent's config). BagError names what is wrong
    with a truncated, corrupt or foreign bag, a malformed step message, or one without an action."""
    path = Path(path)
    with bag_errors(path):
        raw = read_topics(path, TOPIC_TYPES, list(TOPIC_TYPES), "a QT-Opt grasp episode")
        rgb = [decode_rgb(decode_message(d, TOPIC_TYPES[TOPIC_QTOPT_RGB], path, TOPIC_QTOPT_RGB), path,
                          TOPIC_QTOPT_RGB) for _, d in raw[TOPIC_QTOPT_RGB]]

        def floats(topic):
            return [np.asarray(decode_message(d, TOPIC_TYPES[topic], path, topic).data, np.float32)
                    for _, d in raw[topic]]

        states, actions = floats(TOPIC_QTOPT_STATE), floats(TOPIC_QTOPT_ACTION)
        steps = [json.loads(decode_message(d, TOPIC_TYPES[TOPIC_EPISODE_STEP], path,
                                           TOPIC_EPISODE_STEP).data) for _, d in raw[TOPIC_EPISODE_STEP]]
        if not actions or not (len(rgb) == len(states) == len(actions) + 1 == len(steps) + 1):
            raise BagError(f"bag {path}: {len(rgb)} images, {len(states)} states, {len(actions)} actions "
                           f"and {len(steps)} steps do not make one episode (truncated?)", path)
        # inside bag_errors: a step message without terminal/success names the bag too
        return [GraspFrame(rgb[k], states[k], actions[k] if k < len(actions) else None,
                           bool(steps[k]["terminal"]) if k < len(steps) else False,
                           bool(steps[k]["success"]) if k < len(steps) else False)
                for k in range(len(rgb))]


def grasp_transitions(path: str | os.PathLike[str], frames: Sequence[GraspFrame],
                      config) -> list[dict[str, np.ndarray]]:
    """:func:`transitions_of` the frames read from bag ``path``; a bag that cannot feed an agent of
    ``config`` (no aperture where ``state_aperture`` needs it) is a BagError naming it."""
    try:
        return transitions_of(frames, config)
    except ValueError as err:
        raise BagError(f"bag {path}: {err}", Path(path)) from None


def read_grasp_episode(path: str | os.PathLike[str], config) -> list[dict[str, np.ndarray]]:
    """A grasp episode bag -> its transitions rewarded by ``config`` (:func:`read_grasp_frames`,
    then :func:`grasp_transitions`). BagError names what is wrong with a truncated, corrupt or
    foreign bag."""
    return grasp_transitions(path, read_grasp_frames(path), config)
