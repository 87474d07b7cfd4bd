"""Record scripted expert demonstrations as one rosbag2 (MCAP) per episode.

Used by `arm demos` and by the trainers, which record their demos into the run folder first.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from arm_perception.bag_writer import EpisodeWriter

from .environment import Environment, ExpertNoise

#: beside a task's demo bags: how the expert was run (its noise), so a trainer never mixes or
#: mistakes demos recorded another way
RECORDING_FILE = "recording.json"


def recorded_noise(folder: str | Path) -> ExpertNoise:
    """The :class:`ExpertNoise` the demos in ``folder`` (OUT/TASK) were recorded with; none for
    demos recorded before it was kept (they all had none), no grasp noise before that was kept."""
    path = Path(folder) / RECORDING_FILE
    try:
        kept = json.loads(path.read_text()) if path.exists() else {}
        return ExpertNoise(place_m=float(kept.get("place_noise_m", 0.0)),
                           grasp_m=float(kept.get("grasp_noise_m", 0.0)))
    except (ValueError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a demo recording's note ({e}); remove the folder's demos "
                         "and record them again") from None


def check_recorded_noise(folder: str | Path, noise: ExpertNoise, advice: str) -> None:
    """ValueError when the demos in ``folder`` were recorded with another expert noise."""
    recorded = recorded_noise(folder)
    if not recorded.matches(noise):
        raise ValueError(f"the demos under {folder} were recorded with {recorded.text()}, not "
                         f"{noise.text()}; {advice}")


def record_demos(task_name: str, episodes: int, seed: int, out: str | Path, image_size: int = 128,
                 progress: Callable[[str], None] | None = None, noise: ExpertNoise | None = None) -> dict:
    """Episodes seed, seed+1, ... into OUT/TASK/seed_NNNNNN/ -> {"task", "episodes", "successes",
    "seconds", "out", "place_noise_m", "grasp_noise_m"}. Refuses to overwrite an existing episode
    (FileExistsError) and to add to demos recorded with another ``noise`` (ValueError; see
    :meth:`arm_sim.environment.TaskEnvironment.run_expert`; default none: the exact expert)."""
    noise = noise or ExpertNoise()
    out = Path(out) / task_name
    if out.exists():
        check_recorded_noise(out, noise, "record into another folder")
    kept = {"place_noise_m": round(noise.place_m, 9), "grasp_noise_m": round(noise.grasp_m, 9)}
    start = time.perf_counter()
    task = Environment(image_size=(image_size, image_size)).get_task(task_name)
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORDING_FILE).write_text(json.dumps(kept) + "\n")
    successes = 0
    try:
        for i in range(episodes):
            s = seed + i
            path = out / f"seed_{s:06d}"
            if path.exists():
                raise FileExistsError(f"{path} already exists; choose another output folder or seed")
            t0 = time.perf_counter()
            frames, ok = task.run_expert(s, noise)
            with EpisodeWriter(path) as bag:
                for obs, reward, success in frames:
                    bag.write(obs.misc["stamp"], obs, reward, success)
            successes += ok
            if progress:
                progress(f"[{i + 1}/{episodes}] {task_name} seed={s} {'success' if ok else 'FAILED'} "
                         f"frames={len(frames)} {time.perf_counter() - t0:.1f}s -> {path}")
    finally:
        task.close()
    return {"task": task_name, "episodes": episodes, "successes": successes,
            "seconds": round(time.perf_counter() - start, 2), "out": str(out), **kept}
