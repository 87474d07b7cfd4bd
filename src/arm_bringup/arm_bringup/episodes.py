"""Episode bookkeeping of the episode runner, without ROS: rewards, seeds, names, budget, resume,
the agent preset's image size check and the trainer's status line.

Example::

    from arm_bringup.episodes import EpisodeCounter, scan_run, step_reward
    point = scan_run("runs/sim_train")            # what earlier launches left in the run folder
    counter = EpisodeCounter.resume(point)
    reward, terminal, timeout = step_reward("reached", success=True, step=0, episode_length=10)
    counter.finish_episode(steps=1, success=True)
    print(counter.env_steps, counter.episodes, counter.success_rate())

The rules are the in-process trainer's (one definition, in ``arm_policy.rewards`` and
``arm_policy.rollout``), so both paths see the same episodes:

* reward: ``arm_policy.rewards.step_reward`` (one rule for both paths): 0 and the episode ends
  when the pose was not ``reached`` (the authors' rule: the control agent could not execute it);
  +1 and the end on task success; else 0. The ``episode_length``-th step always ends the episode.
* seeds: demos ``seed, seed+1, ...``; training episode ``i`` uses ``seed + 10_000 + i``;
  evaluation episode ``i`` uses ``1_000_000 + i`` (the same scenes at every evaluation, and never
  a training or demo scene).
* names (the recorder's bag paths under ``run_dir/bags``): ``train/episode_NNNNNN`` and
  ``eval/env_step_NNNNNNN_KK``.

Resume: :func:`scan_run` counts closed training bags (``run_dir/bags/train/episode_*``, not
``*.partial``) and the ``/arm/episode/step`` messages in their ``metadata.yaml`` (no message is
decoded), and reads the env step of the last evaluation from ``metrics.csv``. A bag whose
metadata cannot be read is skipped with a warning naming it, but its number stays taken.
"""
from __future__ import annotations

import csv
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from arm_control.topics import TOPIC_EPISODE_STEP
from arm_perception.bag_format import PARTIAL_SUFFIX  # no rosbags import
from arm_policy.rewards import step_reward
from arm_policy.rollout import EVAL_SEED_BASE, TRAIN_SEED_OFFSET, eval_seed, train_seed

__all__ = [
    "Budget",
    "EVAL_DIR",
    "EVAL_SEED_BASE",
    "EpisodeCounter",
    "ResumePoint",
    "STEP_TOPIC",
    "StepRecord",
    "TRAIN_DIR",
    "TRAIN_SEED_OFFSET",
    "check_preset",
    "contiguous_runs",
    "eval_due",
    "eval_episode_name",
    "eval_seed",
    "missing_demo_seeds",
    "outcome_of",
    "scan_run",
    "status_line",
    "step_reward",
    "train_episode_name",
    "train_seed",
]

#: Sub-folders of the recorder's output folder (``run_dir/bags``).
TRAIN_DIR = "train"
EVAL_DIR = "eval"
#: What the runner publishes per step (String JSON); its message count in a bag = env steps.
STEP_TOPIC = TOPIC_EPISODE_STEP

_TRAIN_NAME = re.compile(r"^episode_(\d{6,})$")
_OUTCOME = re.compile(r"^\s*([A-Za-z_]+)")


# ----------------------------------------------------------------------------- rules

def train_episode_name(episode: int) -> str:
    """``train/episode_000012``: the recorder's bag path under ``run_dir/bags``."""
    return f"{TRAIN_DIR}/episode_{int(episode):06d}"


def eval_episode_name(env_steps: int, index: int, taken: Iterable[str] = ()) -> str:
    """``eval/env_step_0000120_03``; ``_rN`` is added while the name is in ``taken`` (a launch
    that was restarted at the same env step must not collide with the bags of the first one)."""
    base = f"{EVAL_DIR}/env_step_{int(env_steps):07d}_{int(index):02d}"
    taken = set(taken)
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_r{n}", n + 1
    return name


def outcome_of(result: str) -> str:
    """The outcome word that starts a ``/arm/control/result`` line: ``"reached: position error
    3.1 mm (plan 12.0 ms, ...)"`` -> ``"reached"``; ``""`` when there is none."""
    m = _OUTCOME.match(result or "")
    return m.group(1).lower() if m else ""


@dataclass
class StepRecord:
    """One ``/arm/episode/step`` message (String JSON) of the contract in docs/design.md."""

    step: int
    reward: float
    terminal: bool
    outcome: str
    success: bool
    decision_stamp_ns: int
    episode: str = ""

    def to_json(self) -> str:
        return json.dumps({"step": self.step, "reward": self.reward, "terminal": self.terminal,
                           "outcome": self.outcome, "success": self.success,
                           "decision_stamp_ns": self.decision_stamp_ns, "episode": self.episode})


# ----------------------------------------------------------------------------- demos

def missing_demo_seeds(demo_task_dir: str | Path, seed: int, count: int) -> list[int]:
    """Seeds of ``seed .. seed+count-1`` whose ``seed_NNNNNN`` bag is not in ``demo_task_dir``
    (``run_dir/demos/TASK``, the layout of ``arm demos``)."""
    folder = Path(demo_task_dir)
    return [s for s in range(int(seed), int(seed) + int(count))
            if not (folder / f"seed_{s:06d}").is_dir()]


def contiguous_runs(seeds: Sequence[int]) -> list[tuple[int, int]]:
    """``[3, 4, 5, 9]`` -> ``[(3, 3), (9, 1)]``: (first seed, count) for ``record_demos`` calls."""
    runs: list[tuple[int, int]] = []
    for s in sorted(seeds):
        if runs and runs[-1][0] + runs[-1][1] == s:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((s, 1))
    return runs


# ----------------------------------------------------------------------------- resume

@dataclass
class ResumePoint:
    """What earlier launches left in a run folder."""

    next_episode: int = 0  # number of the next training episode (bag names stay unique)
    env_steps: int = 0  # agent steps in the closed training bags
    episodes: int = 0  # closed training bags that could be counted
    last_eval_env_steps: int | None = None  # env step of the newest evaluation in metrics.csv
    eval_names: set[str] = field(default_factory=set)  # eval bags already there (eval/...)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (bag, why) not counted



def record_missing_demos(folder: Path, task: str, seed: int, count: int, image_size: int, noise,
                         info: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """The expert demos of seeds ``seed .. seed + count - 1`` that ``folder/task`` lacks, recorded
    with ``noise`` (an :class:`arm_sim.environment.ExpertNoise`); ValueError if the folder's demos
    were recorded with another noise."""
    from arm_sim.demos import check_recorded_noise, record_demos

    if (folder / task).exists():
        check_recorded_noise(folder / task, noise,
                             "set place_noise_cm / grasp_noise_cm to those or use another run_dir")
    missing = missing_demo_seeds(folder / task, seed, count)
    if not missing:
        info(f"{count} demos of {task} in {folder / task}")
        return
    info(f"recording {len(missing)} of {count} demos of {task} at {image_size}x{image_size} into {folder / task}")
    for first, n in contiguous_runs(missing):
        summary = record_demos(task, n, first, folder, image_size, progress=info, noise=noise)
        if summary["successes"] < n:
            warn(f"{n - summary['successes']} of {n} expert demos failed (kept; the trainer decides what to use)")

def _bag_steps(bag: Path) -> int:
    """``/arm/episode/step`` messages of a closed bag, from its metadata.yaml."""
    meta = bag / "metadata.yaml"
    try:
        with open(meta, encoding="utf-8") as f:
            info = yaml.safe_load(f)["rosbag2_bagfile_information"]
        topics = info.get("topics_with_message_count") or []
        return sum(int(t["message_count"]) for t in topics
                   if t["topic_metadata"]["name"] == STEP_TOPIC)
    except FileNotFoundError:
        raise ValueError(f"{meta} is missing (a truncated bag)") from None
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{meta} is unreadable: {err}") from None


def _last_eval_env_steps(metrics_csv: Path) -> int | None:
    """env_steps of the last row of metrics.csv that has an eval_success value."""
    try:
        with open(metrics_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error):
        return None
    last = None
    for row in rows:
        try:
            if row.get("eval_success") not in (None, ""):
                last = int(float(row.get("env_steps") or row["step"]))
        except (KeyError, TypeError, ValueError):
            continue  # a crash's partial last line
    return last


def scan_run(run_dir: str | Path, bag_dir: str | Path | None = None) -> ResumePoint:
    """Count what a run folder holds (see the module docstring). ``bag_dir``: the recorder's
    output folder if it is not ``run_dir/bags``."""
    run_dir = Path(run_dir)
    bags = Path(bag_dir) if bag_dir is not None else run_dir / "bags"
    point = ResumePoint()
    train = bags / TRAIN_DIR
    numbers = []
    if train.is_dir():
        for entry in sorted(train.iterdir()):
            name = entry.name
            partial = name.endswith(PARTIAL_SUFFIX)
            m = _TRAIN_NAME.match(name[: -len(PARTIAL_SUFFIX)] if partial else name)
            if not m or not entry.is_dir():
                continue
            if partial:
                continue  # the episode in flight when a launch died: its number is reused
            numbers.append(int(m.group(1)))
            try:
                steps = _bag_steps(entry)
            except ValueError as err:
                point.skipped.append((entry, str(err)))
                continue
            point.env_steps += steps
            point.episodes += 1
    point.next_episode = max(numbers) + 1 if numbers else 0
    evals = bags / EVAL_DIR
    if evals.is_dir():
        point.eval_names = {f"{EVAL_DIR}/{p.name}" for p in evals.iterdir()
                            if p.is_dir() and not p.name.endswith(PARTIAL_SUFFIX)}
    point.last_eval_env_steps = _last_eval_env_steps(run_dir / "metrics.csv")
    return point


# ----------------------------------------------------------------------------- counters

class EpisodeCounter:
    """Training env steps and episodes of the run (resumed ones included) and the success rate
    of the last ``window`` training episodes of this launch."""

    def __init__(self, env_steps: int = 0, episodes: int = 0, next_episode: int = 0,
                 window: int = 20) -> None:
        self.env_steps = int(env_steps)
        self.episodes = int(episodes)
        self.next_episode = int(next_episode)
        self.resumed_episodes = self.episodes
        self.recent: deque[bool] = deque(maxlen=max(1, int(window)))

    @classmethod
    def resume(cls, point: ResumePoint, window: int = 20) -> "EpisodeCounter":
        return cls(point.env_steps, point.episodes, point.next_episode, window)

    def finish_episode(self, steps: int, success: bool) -> None:
        """A training episode ended (its bag closes under the current number)."""
        self.env_steps += int(steps)
        self.episodes += 1
        self.next_episode += 1
        self.recent.append(bool(success))

    def skip_episode(self) -> None:
        """The current number was used by an aborted episode: take the next one."""
        self.next_episode += 1

    def success_rate(self) -> float:
        """Share of successes among the last ``window`` training episodes (nan: none yet)."""
        return sum(self.recent) / len(self.recent) if self.recent else math.nan


class Budget:
    """When to stop: ``minutes`` of wall time for this launch (0: no limit) and/or ``episodes``
    training episodes in the run (0: no limit), leaving time for the final evaluation."""

    def __init__(self, minutes: float, episodes: int, start: float | None = None) -> None:
        if minutes <= 0 and episodes <= 0:
            raise ValueError("set minutes > 0 (a time budget) or episodes > 0 (a number of "
                             "training episodes), or both")
        self.seconds = float(minutes) * 60.0 if minutes > 0 else math.inf
        self.episodes = int(episodes) if episodes > 0 else None
        self.start = time.monotonic() if start is None else float(start)

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.start

    def left(self, now: float | None = None) -> float:
        return self.seconds - self.elapsed(now)

    def training_done(self, episodes: int, reserve: float = 0.0, now: float | None = None) -> bool:
        """No more training episodes: the count is reached, or less than ``reserve`` seconds
        (the final evaluation + one more episode) are left."""
        if self.episodes is not None and episodes >= self.episodes:
            return True
        return self.left(now) < reserve


def eval_due(env_steps: int, last_eval_env_steps: int | None, eval_every: int,
             at_start: bool = False) -> bool:
    """An evaluation is due every ``eval_every`` training env steps (0: only the final one),
    counted from the last evaluation (from env step 0 when there is none yet); with
    ``at_start`` also before the first training episode (the untrained agent, the learning
    curve's first point)."""
    if last_eval_env_steps is None:
        if at_start:
            return True
        last_eval_env_steps = 0
    return eval_every > 0 and env_steps - last_eval_env_steps >= eval_every


def check_preset(name: str, image_size: int, algo: str = "arm"):
    """The agent preset's config (QT-Opt's; None for ARM's, which the runner does not need)
    after checking that it is built for ``image_size``."""
    from arm_policy.config import PRESETS  # a dataclass module: no torch import

    if algo == "qtopt":
        from arm_policy.agents.qtopt.config import QTOptConfig

        presets = {"cpu": QTOptConfig, "paper": QTOptConfig.paper}
        if not name:  # no check: the trainer's agent_overrides set the size
            return QTOptConfig(image_size=image_size)
        if name not in presets:
            raise ValueError(f"unknown QT-Opt preset {name!r}; presets: {', '.join(presets)}")
        cfg = presets[name]()
        configs = {name: cfg}
    elif not name:
        return None
    else:
        configs, cfg = PRESETS, None
    if name not in configs:
        raise ValueError(f"unknown agent preset {name!r}; presets: {', '.join(PRESETS)}")
    size = configs[name].image_size
    if size != image_size:
        raise ValueError(
            f"image_size {image_size} does not fit agent preset {name!r}, which is built for "
            f"{size}x{size} images; set image_size:={size} (sim_node, perception_node and the "
            f"demos follow it)")
    return cfg


def status_line(status: dict[str, Any]) -> str:
    """training_node's latest status (String JSON on /arm/training/status) as one line:
    state, updates, replay size, checkpoint and the losses of the last update."""
    if not status:
        return "training status: none yet"
    parts = [f"training {status.get('state', '?')}"]
    for key, label in (("updates", "updates"), ("transitions", "replay"),
                       ("checkpoint_step", "saved")):
        if isinstance(status.get(key), (int, float)) and not isinstance(status.get(key), bool):
            parts.append(f"{label} {status[key]:g}")
    losses = status.get("losses")
    if isinstance(losses, dict):
        parts += [f"{k} {v:.3g}" for k, v in losses.items()
                  if isinstance(v, (int, float)) and math.isfinite(v)]
    if status.get("error"):
        parts.append(f"error {status['error']}")
    return "  ".join(parts)
