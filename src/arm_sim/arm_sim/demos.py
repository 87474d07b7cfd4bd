"""Record scripted expert demonstrations as one rosbag2 (MCAP) per episode.

Used by `arm demos` and by the trainers, which record their demos into the run folder first.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

from arm_perception.bag_writer import EpisodeWriter

from .environment import Environment

#: beside a task's demo bags: how the expert was run (its place noise), so a trainer never mixes
#: or mistakes demos recorded another way
RECORDING_FILE = "recording.json"


def recorded_place_noise(folder: str | Path) -> float:
    """The place noise (m) the demos in ``folder`` (OUT/TASK) were recorded with; 0.0 for demos
    recorded before it was kept (they all had none)."""
    path = Path(folder) / RECORDING_FILE
    return float(json.loads(path.read_text())["place_noise_m"]) if path.exists() else 0.0


def record_demos(task_name: str, episodes: int, seed: int, out: str | Path, image_size: int = 128,
                 progress: Callable[[str], None] | None = None, place_noise_m: float = 0.0) -> dict:
    """Episodes seed, seed+1, ... into OUT/TASK/seed_NNNNNN/ -> {"task", "episodes", "successes",
    "seconds", "out", "place_noise_m"}. Refuses to overwrite an existing episode (FileExistsError).
    ``place_noise_m``: see :meth:`arm_sim.environment.TaskEnvironment.run_expert` (0: the exact expert)."""
    if not 0.0 <= place_noise_m <= 0.05:  # also refuses NaN
        raise ValueError(f"place noise must be within 0..0.05 m, got {place_noise_m}")
    out = Path(out) / task_name
    recorded = recorded_place_noise(out) if out.exists() else place_noise_m
    if not math.isclose(recorded, place_noise_m, abs_tol=1e-9):
        raise ValueError(f"{out} holds demos recorded with place noise {100 * recorded:g} cm, "
                         f"not {100 * place_noise_m:g}; record into another folder")
    start = time.perf_counter()
    task = Environment(image_size=(image_size, image_size)).get_task(task_name)
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORDING_FILE).write_text(json.dumps({"place_noise_m": place_noise_m}) + "\n")
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
