"""The paper's Fig. 6 on this machine: every (task, method, seed) cell trained in process, then one
table, one CSV and one figure.

    arm benchmark --tasks pick_up_cup,take_lid_off_saucepan --methods arm,sac,bc --minutes 120 --out runs/bench
    arm benchmark --tasks all --methods arm,sac,bc --demos 100 --minutes 30 --seeds 2 --jobs 2 --out runs/bench
    arm benchmark --report --out runs/bench          # rewrite the report from the cells done so far

Each cell is an ``arm train --inprocess`` run folder, ``OUT/cells/TASK/METHOD/seed_K``; the
demos of a task are recorded once into ``OUT/demos`` and shared by its cells (same scenes for
every method). Cells run one after another, or ``--jobs N`` side by side, each with one torch
thread (``--jobs 1`` uses torch's default threads: start two benchmarks side by side with
``--threads 1`` each, or their threads fight over the cores). The benchmark resumes: a cell with a
summary.json is done and skipped; an interrupted one (Ctrl-C, a kill) resumes from its newest
checkpoint; so a long grid can span several sittings (run the same
command again). After every cell it writes

* ``OUT/results.csv``: one row per finished cell (task, method, seed, untrained / final / best
  success, the mean of the last evaluations, env steps, updates, wall seconds, and the final
  evaluation's diagnosis: attention on the keyframe, pose error, expert keyframes matched,
  unexecutable poses);
* ``OUT/results.md``: task x method, final success (mean over seeds) beside the untrained
  value, the mean of the last evaluations and the diagnosis;
* ``OUT/curves.png``: one panel per task, evaluation success against env steps, one line per
  method (mean over seeds), the spread over seeds shaded.

Evaluation uses the trainer's 25 fixed scenes, disjoint from the demos and training scenes;
``--final-eval-episodes 200`` evaluates each cell's final agent once more on 200 of them (the 25
first), a final success within about +-0.03 instead of +-0.09 (results.csv's final_eval_success).
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .agents import agent_config
from .benchmark_report import finished, write_report
from .settings import BenchmarkSettings, TrainSettings, expert_noise

__all__ = ["BenchmarkSettings", "Cell", "cells_to_run", "run_benchmark"]


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    seed: int

    def folder(self, out: Path) -> Path:
        return out / "cells" / self.task / self.method / f"seed_{self.seed}"

    @property
    def name(self) -> str:
        return f"{self.task}/{self.method}/seed_{self.seed}"


def cells(settings: BenchmarkSettings) -> list[Cell]:
    return [Cell(t, m, s) for t in settings.tasks for m in settings.methods for s in range(settings.seeds)]


def cell_settings(settings: BenchmarkSettings, cell: Cell) -> TrainSettings:
    out = Path(settings.out)
    return TrainSettings(task=cell.task, preset=settings.preset, method=cell.method,
                         demos=settings.demos, minutes=settings.minutes, out=str(cell.folder(out)),
                         seed=cell.seed, eval_every=settings.eval_every,
                         eval_episodes=settings.eval_episodes,
                         final_eval_episodes=settings.final_eval_episodes,
                         checkpoint_every=settings.checkpoint_every,
                         agent_overrides=dict(settings.agent_overrides),
                         demo_dir=str(out / "demos"), collision_checking=settings.collision_checking,
                         place_noise_cm=settings.place_noise_cm, grasp_noise_cm=settings.grasp_noise_cm)


def _record_shared_demos(settings: BenchmarkSettings, log: Callable[[str], None]) -> None:
    """The demos of every keyframe task, once (seed 0 on), at the preset's image size (QT-Opt's
    cells record their scripted grasps themselves, into the same folder)."""
    from arm_sim.demos import record_demos
    from arm_sim.tasks import TASK_NAMES

    keyframe_tasks = [t for t in settings.tasks if t in TASK_NAMES]
    if not keyframe_tasks:
        return
    first = cell_settings(settings, next(c for c in cells(settings) if c.task in TASK_NAMES))
    size = agent_config(first.preset, first.agent_overrides, first.method).image_size
    for task in keyframe_tasks:
        folder = Path(settings.out) / "demos" / task
        have = len([p for p in folder.glob("seed_*") if not p.name.endswith(".partial")]) if folder.exists() else 0
        if have >= settings.demos:
            continue
        if have:  # an interrupted recording: start the task's demos again
            import shutil

            shutil.rmtree(folder)
        log(f"recording {settings.demos} demos of {task} at {size}x{size}")
        record_demos(task, settings.demos, 0, folder.parent, size, progress=log,
                     noise=expert_noise(settings))


def cell_threads(settings: BenchmarkSettings) -> int | None:
    """Torch threads of each cell: ``threads``, else one per cell side by side (``jobs`` > 1),
    else None (torch's default: every core)."""
    if settings.threads:
        return settings.threads
    return 1 if settings.jobs > 1 else None


#: how long a stopped benchmark waits for its cells' last checkpoints before killing them
STOP_SECONDS = 60.0


def _run_cell_subprocess(settings: TrainSettings, threads: int, log: Callable[[str], None],
                         children: list[subprocess.Popen], lock: threading.Lock,
                         stopping: threading.Event) -> int:
    """One cell in a child process with ``threads`` torch threads; its lines forwarded to
    ``log`` and to the cell's train.log. The child joins ``children`` under ``lock``, and is
    stopped at once if the benchmark is ``stopping`` by then."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "arm_policy.benchmark", "--cell", json.dumps(dataclasses.asdict(settings))]
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with lock:
        children.append(child)
        if stopping.is_set():
            child.send_signal(signal.SIGTERM)
    prefix = f"[{settings.task}/{settings.method}/seed_{settings.seed}] "
    with open(Path(settings.out) / "train.log", "a") as f:
        for line in child.stdout:
            f.write(line)
            f.flush()
            log(prefix + line.rstrip())
    return child.wait()


def run_benchmark(settings: BenchmarkSettings, log: Callable[[str], None] = print) -> list[dict]:
    """Run (or resume) every cell, then write the report; returns the results rows."""
    from .train_inprocess import train

    from arm_sim.demos import check_recorded_noise
    from arm_sim.tasks import TASK_NAMES

    out = Path(settings.out)
    for task in settings.tasks:  # before benchmark.json: a refused run leaves it as it was
        if task in TASK_NAMES and (out / "demos" / task).exists():
            check_recorded_noise(out / "demos" / task, expert_noise(settings),
                                 "give the same --place-noise-cm / --grasp-noise-cm or another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(dataclasses.asdict(settings), indent=2))
    _record_shared_demos(settings, log)
    todo = cells_to_run(settings)
    done = len(cells(settings)) - len(todo)
    log(f"benchmark: {len(cells(settings))} cells, {done} done, {len(todo)} to run "
        f"({settings.minutes:g} min each, {settings.jobs} at a time)")
    threads = cell_threads(settings)
    if settings.jobs == 1:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        for cell in todo:
            log(f"cell {cell.name}")
            train(cell_settings(settings, cell), log=lambda line, c=cell: log(f"[{c.name}] {line}"))
            write_report(out, log)
        return write_report(out, log)

    children: list[subprocess.Popen] = []
    failures: list[str] = []
    lock = threading.Lock()
    stopping = threading.Event()  # set under lock: no cell starts after it
    queue = list(todo)

    def worker():
        while True:
            with lock:
                if not queue or stopping.is_set():
                    return
                cell = queue.pop(0)
            rc = _run_cell_subprocess(cell_settings(settings, cell), threads, log, children, lock, stopping)
            with lock:
                if rc != 0:
                    failures.append(f"{cell.name} (exit {rc})")
                write_report(out, log)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(settings.jobs)]
    try:
        for t in workers:
            t.start()
        for t in workers:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:
        log("interrupted: stopping the running cells (run the same command to resume)")
        with lock:
            stopping.set()
            running = list(children)
        for child in running:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # each writes its last checkpoint and keeps its replay
        deadline = time.monotonic() + STOP_SECONDS
        for t in workers:  # each ends once its cell has
            t.join(max(0.0, deadline - time.monotonic()))
        for child in children:
            if child.poll() is None:
                child.kill()
        raise
    if failures:
        log("cells that failed (rerun to resume them): " + ", ".join(failures))
    return write_report(out, log)


def cells_to_run(settings: BenchmarkSettings) -> list[Cell]:
    """The cells of ``settings`` not yet finished, in grid order."""
    return [c for c in cells(settings) if finished(c.folder(Path(settings.out))) is None]


def _main_cell(settings_json: str) -> int:
    """Entry point of one cell's child process (``--jobs`` > 1), its threads in OMP_NUM_THREADS."""
    import torch

    from .train_inprocess import train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    settings = TrainSettings(**json.loads(settings_json))
    try:
        train(settings, log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:  # stopped (the benchmark's SIGTERM): checkpointed, resumes
        return 143
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cell":
        from .training_run import stop_on_sigterm

        stop_on_sigterm()
        sys.exit(_main_cell(sys.argv[2]))
    print("usage: arm benchmark --help (this module's --cell is for the benchmark's own children)",
          file=sys.stderr)
    sys.exit(2)
