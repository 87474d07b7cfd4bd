"""Agent-episode bags -> ARM transitions: what the training node learns from its own episodes.

    from arm_policy.episode_dataset import list_bags, read_agent_episode
    for bag in list_bags("runs/sim_train/bags/train"):
        transitions = read_agent_episode(bag)   # BagError naming the bag if it is unreadable

One bag per episode, written by the recorder (``arm_bringup/recorder.py``) from the live graph.
The topics this module reads (one source for the policy node, the reader and the tests):

=====================================  =============================  ==========================
topic                                  type                           matched to a decision by
=====================================  =============================  ==========================
``/arm/policy/decision``               std_msgs/String (JSON)         ``stamp_ns``
``/arm/policy/observation/rgb``        sensor_msgs/Image rgb8         ``header.stamp``
``/arm/policy/observation/points``     sensor_msgs/PointCloud2 xyz    ``header.stamp``
``/arm/policy/observation/low_dim``    std_msgs/Float32MultiArray     order (no header), or the
                                                                      decision's ``low_dim``
``/arm/episode/step``                  std_msgs/String (JSON)         ``decision_stamp_ns``
=====================================  =============================  ==========================

Decision JSON (policy_node): ``stamp_ns``, ``step``, ``explore``, ``pixel`` [row, col],
``action`` [8], ``checkpoint_step``; our policy node adds ``low_dim`` [11] and
``observation_stamp_ns``. Step JSON (episode_runner): ``step``, ``reward``, ``terminal``,
``outcome``, ``success``, ``decision_stamp_ns``.

Transition k (decisions in stamp order): the observation of decision k (rgb, point cloud,
low-dim: exactly what the policy fed the agent), ``pixel`` and ``action`` of decision k, ``reward``
and ``terminal`` of its step, and as next observation the observation of decision k+1, or its own
observation when k is terminal or the last decision of the bag; ``next_pixel`` is decision
k+1's pixel (where the critic's next crop is cut). The bag holds no observation after the last
decision, so a time-limit cut is stored as terminal here (the in-process trainer bootstraps
through it: ``Transition.timeout``). A decision without a step
message (the episode was cut while it executed) or without its observation images gives no
transition; the transition before a decision without images is dropped too (no next
observation). ``index`` is the decision's ``step``, ``next_index`` the next decision's.

Low-dim vectors come from the decision JSON's ``low_dim`` when it has one (exact, matched by
stamp); otherwise the k-th low_dim message goes with the k-th decision (both are published
together, reliably, once per decision), which needs equal counts.

No ROS import: messages are decoded with rosbags and :data:`arm_perception.bag_codec.TYPESTORE`;
the topic names come from :mod:`arm_control.topics`.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arm_control.topics import (
    TOPIC_DECISION,
    TOPIC_EPISODE_STEP,
    TOPIC_OBSERVATION_LOW_DIM,
    TOPIC_OBSERVATION_POINTS,
    TOPIC_OBSERVATION_RGB,
)
from arm_perception.bag_codec import (TYPESTORE, decode_message, decode_rgb, header, image_msg,
                                      stamp_ns)
from arm_perception.bag_format import (
    FLOAT32_MULTI_ARRAY,
    IMAGE,
    POINT_CLOUD2,
    STRING,
    WORLD_FRAME_ID,
    BagError,
    BagWarning,
)
from arm_perception.bag_reader import bag_errors, find_bags, read_topics
from arm_perception.bag_writer import RawEpisodeWriter

from .demo_dataset import LOW_DIM_SIZE, Transition

__all__ = [
    "AGENT_TOPIC_TYPES",
    "TOPIC_DECISION",
    "TOPIC_EPISODE_STEP",
    "TOPIC_OBSERVATION_LOW_DIM",
    "TOPIC_OBSERVATION_POINTS",
    "TOPIC_OBSERVATION_RGB",
    "decision_message",
    "iter_agent_episodes",
    "list_bags",
    "load_agent_episodes",
    "parse_decision",
    "parse_step",
    "read_agent_episode",
    "step_message",
    "write_agent_episode",
    "write_rollout_episode",
]

#: topic -> ROS 2 message type of everything an agent episode needs (the recorder must record
#: these topics for the training node).
AGENT_TOPIC_TYPES: dict[str, str] = {
    TOPIC_DECISION: STRING,
    TOPIC_OBSERVATION_RGB: IMAGE,
    TOPIC_OBSERVATION_POINTS: POINT_CLOUD2,
    TOPIC_OBSERVATION_LOW_DIM: FLOAT32_MULTI_ARRAY,
    TOPIC_EPISODE_STEP: STRING,
}
_REQUIRED = (TOPIC_DECISION, TOPIC_OBSERVATION_RGB, TOPIC_OBSERVATION_POINTS, TOPIC_EPISODE_STEP)

_T = TYPESTORE.types
# sensor_msgs/PointField datatypes we read (x, y, z)
_POINT_FIELD_DTYPES = {7: "f4", 8: "f8"}  # FLOAT32, FLOAT64


# --------------------------------------------------------------------------- JSON messages


def decision_message(*, stamp_ns: int, step: int, explore: bool, pixel, action,
                     checkpoint_step: int, low_dim=None, observation_stamp_ns: int | None = None
                     ) -> dict[str, Any]:
    """The decision JSON as a dict (``json.dumps`` it into a std_msgs/String)."""
    out: dict[str, Any] = {
        "stamp_ns": int(stamp_ns),
        "step": int(step),
        "explore": bool(explore),
        "pixel": [int(v) for v in np.asarray(pixel).reshape(-1)],
        "action": [float(v) for v in np.asarray(action, dtype=np.float64).reshape(-1)],
        "checkpoint_step": int(checkpoint_step),
    }
    if low_dim is not None:
        out["low_dim"] = [float(v) for v in np.asarray(low_dim, dtype=np.float64).reshape(-1)]
    if observation_stamp_ns is not None:
        out["observation_stamp_ns"] = int(observation_stamp_ns)
    return out


def step_message(*, step: int, reward: float, terminal: bool, outcome: str, success: bool,
                 decision_stamp_ns: int) -> dict[str, Any]:
    """The episode runner's ``/arm/episode/step`` JSON as a dict."""
    return {"step": int(step), "reward": float(reward), "terminal": bool(terminal),
            "outcome": str(outcome), "success": bool(success),
            "decision_stamp_ns": int(decision_stamp_ns)}


def _finite(values, name: str, size: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if size is not None and arr.size != size:
        raise ValueError(f"{name} has {arr.size} values, expected {size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} is not finite: {arr.tolist()}")
    return arr


def parse_decision(text: str) -> dict[str, Any]:
    """Decision JSON -> dict with checked types; ValueError naming the bad field."""
    try:
        d = json.loads(text)
        stamp = int(d["stamp_ns"])
        out = {
            "stamp_ns": stamp,
            "step": int(d["step"]),
            "explore": bool(d.get("explore", False)),
            "pixel": np.asarray(d["pixel"], dtype=np.int64).reshape(-1),
            "action": _finite(d["action"], "action", 8).astype(np.float32),
            "checkpoint_step": int(d.get("checkpoint_step", -1)),
            "low_dim": (None if d.get("low_dim") is None else
                        _finite(d["low_dim"], "low_dim", LOW_DIM_SIZE).astype(np.float32)),
        }
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"bad decision {text[:200]!r}: {type(err).__name__}: {err}") from None
    if out["pixel"].shape != (2,):
        raise ValueError(f"bad decision {text[:200]!r}: pixel must be [row, col]")
    return out


def parse_step(text: str) -> dict[str, Any]:
    """Step JSON -> dict with checked types; ValueError naming the bad field."""
    try:
        d = json.loads(text)
        reward = float(d["reward"])
        if not math.isfinite(reward):
            raise ValueError(f"reward {reward} is not finite")
        return {"step": int(d.get("step", -1)), "reward": reward,
                "terminal": bool(d["terminal"]), "outcome": str(d.get("outcome", "")),
                "success": bool(d.get("success", False)),
                "decision_stamp_ns": int(d["decision_stamp_ns"])}
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"bad step {text[:200]!r}: {type(err).__name__}: {err}") from None


# --------------------------------------------------------------------------- finding bags


def list_bags(root: str | os.PathLike[str], skip_names: Sequence[str] = ("eval",)) -> list[Path]:
    """Closed bag directories under ``root``, sorted by path; [] if ``root`` does not exist.

    ``*.partial`` directories (a bag being written, or left by a crash) are never listed, nor
    anything under a directory named in ``skip_names`` (evaluation episodes are not training
    data), nor anything inside a bag.
    """
    return find_bags(root, skip_names)


# --------------------------------------------------------------------------- decoding


def _points(msg: Any, path: Path) -> np.ndarray:
    """rosbags PointCloud2 -> (H, W, 3) float32 (x, y, z fields of float32/float64)."""
    h, w = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise BagError(f"bag {path}: {TOPIC_OBSERVATION_POINTS} has no field(s) {missing}", path,
                       TOPIC_OBSERVATION_POINTS)
    order = ">" if msg.is_bigendian else "<"
    formats, offsets = [], []
    for name in "xyz":
        f = fields[name]
        if int(f.datatype) not in _POINT_FIELD_DTYPES:
            raise BagError(f"bag {path}: point field {name} has datatype {f.datatype}, expected "
                           "FLOAT32 or FLOAT64", path, TOPIC_OBSERVATION_POINTS)
        formats.append(order + _POINT_FIELD_DTYPES[int(f.datatype)])
        offsets.append(int(f.offset))
    data = np.asarray(msg.data, dtype=np.uint8)
    if h <= 0 or w <= 0 or point_step * w > row_step or data.size != h * row_step or any(
            o + np.dtype(fmt).itemsize > point_step for o, fmt in zip(offsets, formats)):
        raise BagError(f"bag {path}: {TOPIC_OBSERVATION_POINTS} cloud {w}x{h} (point_step "
                       f"{point_step}, row_step {row_step}) does not fit its {data.size} bytes",
                       path, TOPIC_OBSERVATION_POINTS)
    dtype = np.dtype({"names": list("xyz"), "formats": formats, "offsets": offsets,
                      "itemsize": point_step})
    rec = np.ndarray((h, w), dtype=dtype, buffer=data, strides=(row_step, point_step))
    return np.stack([rec["x"], rec["y"], rec["z"]], axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- one bag


def read_agent_episode(path: str | os.PathLike[str]) -> list[Transition]:
    """ARM transitions of one agent-episode bag (see the module doc), in decision order.

    Raises :class:`BagError` naming the bag for anything unreadable: missing, truncated or
    corrupt storage, a missing topic, a malformed decision/step/observation message, image
    sizes that differ. A bag with no complete decision gives [].
    """
    path = Path(path)
    with bag_errors(path):
        return _read_agent_episode(path)


def _read_agent_episode(path: Path) -> list[Transition]:
    raw = read_topics(path, AGENT_TOPIC_TYPES, _REQUIRED, kind="an agent episode")

    def decode(topic: str, data: bytes) -> Any:
        return decode_message(data, AGENT_TOPIC_TYPES[topic], path, topic)

    def parsed(topic: str, parse) -> list[dict]:
        out = []
        for _, data in raw[topic]:
            try:
                out.append(parse(decode(topic, data).data))
            except ValueError as err:
                raise BagError(f"bag {path}: {topic}: {err}", path, topic) from None
        return out

    decisions = parsed(TOPIC_DECISION, parse_decision)
    steps = {s["decision_stamp_ns"]: s for s in parsed(TOPIC_EPISODE_STEP, parse_step)}
    rgb_by_stamp: dict[int, np.ndarray] = {}
    for _, data in raw[TOPIC_OBSERVATION_RGB]:
        msg = decode(TOPIC_OBSERVATION_RGB, data)
        rgb_by_stamp[stamp_ns(msg.header)] = decode_rgb(msg, path, TOPIC_OBSERVATION_RGB)
    points_by_stamp: dict[int, np.ndarray] = {}
    for _, data in raw[TOPIC_OBSERVATION_POINTS]:
        msg = decode(TOPIC_OBSERVATION_POINTS, data)
        points_by_stamp[stamp_ns(msg.header)] = _points(msg, path)

    # Low-dim by order unless every decision carries its own (see the module doc).
    if any(d["low_dim"] is None for d in decisions):
        low_dims = [np.asarray(decode(TOPIC_OBSERVATION_LOW_DIM, data).data, dtype=np.float32)
                    for _, data in raw[TOPIC_OBSERVATION_LOW_DIM]]
        if len(low_dims) != len(decisions):
            raise BagError(f"bag {path}: {len(decisions)} decisions without low_dim but "
                           f"{len(low_dims)} messages on {TOPIC_OBSERVATION_LOW_DIM}", path,
                           TOPIC_OBSERVATION_LOW_DIM)
        for d, ld in zip(decisions, low_dims):
            if d["low_dim"] is None:
                if ld.shape != (LOW_DIM_SIZE,) or not np.all(np.isfinite(ld)):
                    raise BagError(f"bag {path}: low_dim {ld.tolist()} is not {LOW_DIM_SIZE} "
                                   "finite values", path, TOPIC_OBSERVATION_LOW_DIM)
                d["low_dim"] = ld
    decisions.sort(key=lambda d: d["stamp_ns"])

    def observation(d: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        rgb, pts = rgb_by_stamp.get(d["stamp_ns"]), points_by_stamp.get(d["stamp_ns"])
        if rgb is None or pts is None:
            return None
        if pts.shape != rgb.shape:
            raise BagError(f"bag {path}: decision {d['stamp_ns']}: rgb {rgb.shape[:2]} and "
                           f"points {pts.shape[:2]} differ in size", path, TOPIC_OBSERVATION_POINTS)
        return rgb, pts, d["low_dim"]

    out: list[Transition] = []
    for k, d in enumerate(decisions):
        step, obs = steps.get(d["stamp_ns"]), observation(d)
        if step is None or obs is None:
            continue
        h, w = obs[0].shape[:2]
        if not (0 <= d["pixel"][0] < h and 0 <= d["pixel"][1] < w):
            raise BagError(f"bag {path}: decision {d['stamp_ns']}: pixel {d['pixel'].tolist()} "
                           f"is outside the {h}x{w} image", path, TOPIC_DECISION)
        last = k == len(decisions) - 1
        if step["terminal"] or last:
            nxt, next_index, next_pixel = obs, d["step"], d["pixel"]
        else:
            nxt, next_index = observation(decisions[k + 1]), decisions[k + 1]["step"]
            next_pixel = decisions[k + 1]["pixel"]
            if nxt is None:
                continue
            if nxt[0].shape != obs[0].shape:
                raise BagError(f"bag {path}: image size changes within the episode "
                               f"({obs[0].shape[:2]} -> {nxt[0].shape[:2]})", path)
        out.append(Transition(
            rgb=obs[0], point_cloud=obs[1], low_dim=obs[2], pixel=d["pixel"].copy(),
            action=d["action"].copy(), reward=float(step["reward"]),
            terminal=bool(step["terminal"]), index=int(d["step"]), next_index=int(next_index),
            next_rgb=nxt[0], next_point_cloud=nxt[1], next_low_dim=nxt[2],
            next_pixel=np.asarray(next_pixel, dtype=np.int64).copy(),
            augmented=False, episode=str(path)))
    return out


# --------------------------------------------------------------------------- many bags


def iter_agent_episodes(root: str | os.PathLike[str], skip_names: Sequence[str] = ("eval",)
                        ) -> Iterator[tuple[Path, list[Transition]]]:
    """``(bag, transitions)`` for every closed bag under ``root`` (:func:`list_bags`).

    An unreadable bag is skipped with a :class:`~arm_perception.bag_format.BagWarning` naming it
    and the problem: one truncated bag never stops training.
    """
    for bag in list_bags(root, skip_names):
        try:
            transitions = read_agent_episode(bag)
        except BagError as err:
            warnings.warn(f"skipping unreadable agent episode {bag}: {err}", BagWarning,
                          stacklevel=2)
            continue
        yield bag, transitions


def load_agent_episodes(root: str | os.PathLike[str], skip_names: Sequence[str] = ("eval",)
                        ) -> list[Transition]:
    """All transitions of :func:`iter_agent_episodes`, bag by bag in path order."""
    out: list[Transition] = []
    for _, transitions in iter_agent_episodes(root, skip_names):
        out.extend(transitions)
    return out


# --------------------------------------------------------------------------- writing


def _cloud(ns: int, points: np.ndarray) -> Any:
    pts = np.ascontiguousarray(points, dtype="<f4")
    h, w = pts.shape[:2]
    fields = [_T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
              for i, n in enumerate("xyz")]
    return _T[POINT_CLOUD2](header=header(ns, WORLD_FRAME_ID), height=h, width=w, fields=fields,
                            is_bigendian=False, point_step=12, row_step=12 * w,
                            data=pts.reshape(-1).view(np.uint8), is_dense=False)


def _low_dim(values) -> Any:
    layout = _T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return _T[FLOAT32_MULTI_ARRAY](layout=layout, data=np.asarray(values, dtype=np.float32))


def write_agent_episode(path: str | os.PathLike[str], decisions: Sequence[dict], *,
                        low_dim_in_decision: bool = True, compress: bool = True) -> Path:
    """Write the bag the recorder records of one episode of the live graph; returns its path.

    For tests and tools. Each decision is a dict with ``stamp_ns``, ``rgb`` (H, W, 3) uint8,
    ``point_cloud`` (H, W, 3), ``low_dim`` (11,), ``pixel``, ``action`` (8,), ``reward``,
    ``terminal``, and optionally ``step`` (default: its index), ``explore``, ``outcome``,
    ``success``, ``checkpoint_step``, ``with_step`` (False: no step message, as when the episode
    was cut). Messages are logged 1 ms apart per decision, in the order the nodes publish them.
    """
    topics = dict(AGENT_TOPIC_TYPES)
    with RawEpisodeWriter(path, compress=compress) as writer:
        for topic, msgtype in topics.items():
            writer.add_topic(topic, msgtype)
        for k, d in enumerate(decisions):
            ns = int(d["stamp_ns"])
            step = int(d.get("step", k))
            decision = decision_message(
                stamp_ns=ns, step=step, explore=d.get("explore", True), pixel=d["pixel"],
                action=d["action"], checkpoint_step=d.get("checkpoint_step", 0),
                low_dim=d["low_dim"] if low_dim_in_decision else None,
                observation_stamp_ns=ns)
            messages = [
                (TOPIC_OBSERVATION_RGB,
                 image_msg(ns, np.ascontiguousarray(d["rgb"], dtype=np.uint8), "rgb8")),
                (TOPIC_OBSERVATION_POINTS, _cloud(ns, d["point_cloud"])),
                (TOPIC_OBSERVATION_LOW_DIM, _low_dim(d["low_dim"])),
                (TOPIC_DECISION, _T[STRING](data=json.dumps(decision))),
            ]
            if d.get("with_step", True):
                messages.append((TOPIC_EPISODE_STEP, _T[STRING](data=json.dumps(step_message(
                    step=step, reward=d["reward"], terminal=d["terminal"],
                    outcome=d.get("outcome", "reached"), success=d.get("success", False),
                    decision_stamp_ns=ns)))))
            for i, (topic, msg) in enumerate(messages):
                writer.write(topic, TYPESTORE.serialize_cdr(msg, topics[topic]), ns + 1000 * i)
    return writer.path


#: log time between the decisions of :func:`write_rollout_episode` (the graph takes ~1 s a pose)
ROLLOUT_STEP_NS = 1_000_000_000


def write_rollout_episode(path: str | os.PathLike[str], transitions: Sequence[dict], *,
                          compress: bool = True) -> Path:
    """An in-process episode (the transition dicts of :func:`arm_policy.rollout.run_episode`) as
    the bag the recorder records of a graph episode; :func:`read_agent_episode` gives the same
    transitions back. A time-limit cut stays bootstrapped: its step is stored as not terminal and
    the observation after it follows as a decision without a step message, which the reader takes
    as that step's next observation only (and the attention's choice there as its next pixel)."""
    if not transitions:
        raise ValueError("an episode needs at least one transition")
    decisions = [{"stamp_ns": (k + 1) * ROLLOUT_STEP_NS, "step": k, "rgb": t["rgb"],
                  "point_cloud": t["point_cloud"], "low_dim": t["low_dim"], "pixel": t["pixel"],
                  "action": t["action"], "reward": float(t["reward"]),
                  "terminal": bool(t["terminal"]) and not t.get("timeout", False),
                  "success": float(t["reward"]) > 0}
                 for k, t in enumerate(transitions)]
    last = transitions[-1]
    if last.get("timeout", False):
        decisions.append({"stamp_ns": (len(transitions) + 1) * ROLLOUT_STEP_NS, "step": len(transitions),
                          "rgb": last["next_rgb"], "point_cloud": last["next_point_cloud"],
                          "low_dim": last["next_low_dim"], "pixel": last["next_pixel"],
                          "action": last["action"], "reward": 0.0, "terminal": False, "with_step": False})
    return write_agent_episode(path, decisions, compress=compress)
