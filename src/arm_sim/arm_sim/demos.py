"""Record scripted expert demonstrations as one rosbag2 (MCAP) per episode.

Used by `arm demos` and by the trainers, which record their demos into the run folder first.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from arm_perception.bag_writer import EpisodeWriter

from .environment import Environment


def record_demos(task_name: str, episodes: int, seed: int, out: str | Path, image_size: int = 128,
                 progress: Callable[[str], None] | None = None, place_noise_m: float = 0.0) -> dict:
    """Episodes seed, seed+1, ... into OUT/TASK/seed_NNNNNN/ -> {"task", "episodes", "successes",
    "seconds", "out", "place_noise_m"}. Refuses to overwrite an existing episode (FileExistsError).
    ``place_noise_m``: see :meth:`arm_sim.environment.TaskEnvironment.run_expert` (0: the exact expert)."""
    out = Path(out) / task_name
    start = time.perf_counter()
    task = Environment(image_size=(image_size, image_size)).get_task(task_name)
    out.mkdir(parents=True, exist_ok=True)
    successes = 0
    try:
        for i in range(episodes):
            s = seed + i
            path = out / f"seed_{s:06d}"
            if path.exists():
                raise FileExistsError(f"{path} already exists; choose another output folder or seed")
            t0 = time.perf_counter()
            frames, ok = task.run_expert(s, place_noise_m)
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
            "seconds": round(time.perf_counter() - start, 2), "out": str(out), "place_noise_m": place_noise_m}
