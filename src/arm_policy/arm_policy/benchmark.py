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

Evaluation uses the trainer's 25 fixed scenes, disjoint from the demos and training scenes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .run_log import read_json, read_metrics
from .agents import AGENTS, agent_class, agent_config
from .settings import BenchmarkSettings, TrainSettings
from .settings_cli import to_options
from .training_run import LAST_EVALUATIONS

__all__ = ["BenchmarkSettings", "Cell", "run_benchmark", "write_report", "RESULT_COLUMNS"]

#: the first grasp's error (rollout.summarise), a results.csv column each
_GRASP_COLUMNS = ("grasp_error_across_cm", "grasp_error_along_cm", "grasp_error_height_cm",
                  "grasp_height_bias_cm")
RESULT_COLUMNS = ["task", "method", "seed", "untrained_success", "final_success", "best_success",
                  "env_steps", "updates", "wall_seconds", "last_mean_success",
                  "attention_on_keyframe", "pose_error_cm", "keyframes_matched", "unexecutable",
                  "scripted_success", *_GRASP_COLUMNS, "attention_on_later_keyframes"]
#: results.csv column <- summary.json key
_FROM_SUMMARY = {"untrained_success": "untrained_success", "final_success": "eval_success",
                 "best_success": "best_success", "last_mean_success": "eval_success_last_mean",
                 "env_steps": "env_steps", "updates": "updates", "wall_seconds": "wall_seconds",
                 "attention_on_keyframe": "eval_attention_on_keyframe",
                 "pose_error_cm": "eval_pose_error_cm", "keyframes_matched": "eval_keyframes_matched",
                 "unexecutable": "eval_unexecutable", "scripted_success": "scripted_success",
                 **{c: f"eval_{c}" for c in _GRASP_COLUMNS},
                 "attention_on_later_keyframes": "eval_attention_on_later_keyframes"}


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


def invocation(settings: dict) -> str:
    """The ``arm benchmark`` command of a benchmark.json: what makes its cells what they are
    (the action mode, overrides and evaluation settings only where they differ from the defaults)."""
    return "arm benchmark " + to_options(BenchmarkSettings, settings, always=(
        "tasks", "methods", "demos", "minutes", "seeds", "jobs", "out", "preset"))


def train_command(train: dict) -> str:
    """The ``arm train`` command that runs a cell again, from its config.json's ``train`` part
    (a benchmark cell's demos are the benchmark's, recorded once from seed 0: ``--demo-dir``)."""
    return "arm train --inprocess " + to_options(TrainSettings, train, always=(
        "task", "method", "preset", "seed", "demos", "minutes", "out"))


def cell_settings(settings: BenchmarkSettings, cell: Cell) -> TrainSettings:
    out = Path(settings.out)
    return TrainSettings(task=cell.task, preset=settings.preset, method=cell.method,
                         demos=settings.demos, minutes=settings.minutes, out=str(cell.folder(out)),
                         seed=cell.seed, eval_every=settings.eval_every,
                         eval_episodes=settings.eval_episodes,
                         checkpoint_every=settings.checkpoint_every,
                         agent_overrides=dict(settings.agent_overrides),
                         demo_dir=str(out / "demos"), collision_checking=settings.collision_checking,
                         place_noise_cm=settings.place_noise_cm)


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
                     place_noise_m=settings.place_noise_cm / 100)


def cell_threads(settings: BenchmarkSettings) -> int | None:
    """Torch threads of each cell: ``threads``, else one per cell side by side (``jobs`` > 1),
    else None (torch's default: every core)."""
    if settings.threads:
        return settings.threads
    return 1 if settings.jobs > 1 else None


def _run_cell_subprocess(settings: TrainSettings, threads: int, log: Callable[[str], None],
                         children: list[subprocess.Popen]) -> int:
    """One cell in a child process with ``threads`` torch threads; its lines forwarded to
    ``log`` and to the cell's train.log."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "arm_policy.benchmark", "--cell", json.dumps(dataclasses.asdict(settings))]
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children.append(child)
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

    out = Path(settings.out)
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
    queue = list(todo)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                cell = queue.pop(0)
            rc = _run_cell_subprocess(cell_settings(settings, cell), threads, log, children)
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
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        raise
    if failures:
        log("cells that failed (rerun to resume them): " + ", ".join(failures))
    return write_report(out, log)


# --------------------------------------------------------------------------- report


def _label(method: str) -> str:
    return agent_class(method).label if method in AGENTS else method


def _in_order(names: list[str], order: list[str]) -> list[str]:
    """``names`` without repeats, those in ``order`` first and in its order, then the rest."""
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda n: (order.index(n) if n in order else len(order), unique.index(n)))


def finished(cell_folder: Path) -> dict | None:
    """The cell's summary.json if the cell ran to its end; None if it did not start or was
    stopped (a Ctrl-C leaves a summary marked ``interrupted``: that cell still has to resume)."""
    path = Path(cell_folder) / "summary.json"
    if not path.exists():
        return None
    summary = read_json(path)
    return None if summary.get("interrupted") else summary


def cells_to_run(settings: BenchmarkSettings) -> list[Cell]:
    """The cells of ``settings`` not yet finished, in grid order."""
    return [c for c in cells(settings) if finished(c.folder(Path(settings.out))) is None]


def _rows(out: Path) -> list[dict]:
    rows = []
    for folder in sorted(p.parent for p in (out / "cells").glob("*/*/seed_*/summary.json")):
        summary = finished(folder)
        if summary is None:
            continue
        row = {"task": summary["task"], "method": summary["method"], "seed": summary["seed"],
               "folder": folder}  # results.md only
        row.update({col: summary.get(key, float("nan")) for col, key in _FROM_SUMMARY.items()})
        for field, prefix in (("causes", "eval_unexecutable_"), ("failures", "eval_failed_")):
            # results.md only (cells run before they were kept: none)
            row[field] = {k.removeprefix(prefix): v for k, v in summary.items() if k.startswith(prefix)}
        rows.append(row)
    return rows


def config_against_today(cell_config: dict) -> str:
    """How a cell's agent config (its config.json) differs from the one its preset and overrides
    give today: "same", or each changed field with the cell's value and today's (fields added
    since the cell ran are listed with today's value: the cell ran without them)."""
    train, agent = cell_config.get("train", {}), cell_config.get("agent")
    if agent is None:
        return "- (no agent config kept)"
    try:
        today = dataclasses.asdict(agent_config(train.get("preset", "cpu"), train.get("agent_overrides", {}),
                                                train.get("method", "arm")))
    except ValueError as err:
        return f"not reproducible today: {err}"
    today, agent = json.loads(json.dumps(today)), json.loads(json.dumps(agent))  # tuples as lists
    changed = [f"{k} {agent[k]!r} -> {v!r}" for k, v in today.items() if k in agent and agent[k] != v]
    added = [f"{k}={v!r}" for k, v in today.items() if k not in agent]
    removed = [k for k in agent if k not in today]
    parts = ([", ".join(changed)] if changed else []) + ([f"new since: {', '.join(added)}"] if added else []) \
        + ([f"removed since: {', '.join(removed)}"] if removed else [])
    return "; ".join(parts) or "same"


def _provenance(rows: list[dict], tasks: list[str], methods: list[str]) -> list[str]:
    """results.md's last part: each cell's command, commit and agent config against today's, in
    the tables' order."""
    md = ["## How each cell was made", "",
          "Each cell's `arm train` command (from its config.json; a benchmark's cells share its demos, "
          "recorded once from seed 0 into `--demo-dir`), the commit it ran, and how its agent config "
          "differs from what its preset and overrides give today (`same`: the command trains "
          "that agent today).", "",
          "| task | method | seed | command | commit | agent config against today's |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (tasks.index(r["task"]), methods.index(r["method"]), r["seed"])):
        path = Path(r["folder"]) / "config.json"
        if not path.exists():
            md.append(f"| {r['task']} | {r['method']} | {r['seed']} | - (no config.json) | - | - |")
            continue
        written = read_json(path)
        git = written.get("git") or {}
        commit = (git.get("commit") or "-")[:8] + (" (dirty)" if git.get("dirty") else "")
        md.append(f"| {r['task']} | {r['method']} | {r['seed']} | "
                  f"`{train_command(written['config']['train'])}` | {commit} | "
                  f"{config_against_today(written['config'])} |")
    return md + [""]


def _curves(out: Path, task: str, method: str) -> list[list[dict]]:
    runs = []
    for folder in sorted((out / "cells" / task / method).glob("seed_*")):
        if (folder / "metrics.csv").exists():
            evals = [{"env_steps": r["step"], **r} for r in read_metrics(folder) if "eval_success" in r]
            if evals:
                runs.append(evals)
    return runs


def _mean_and_spread(runs: list[list[dict]]):
    """Mean over seeds of the success curves on the union of their env steps (each seed's curve
    held at its last value past its end), and the min / max."""
    xs = np.unique(np.concatenate([[r["env_steps"] for r in run] for run in runs]).astype(float))
    ys = []
    for run in runs:
        x = np.array([r["env_steps"] for r in run], float)
        y = np.array([r["eval_success"] for r in run], float)
        order = np.argsort(x)
        ys.append(np.interp(xs, x[order], y[order]))
    ys = np.array(ys)
    return xs, ys.mean(0), ys.min(0), ys.max(0)


def _fmt(values) -> str:
    values = [v for v in values if v == v]
    return f"{np.mean(values):.2f}" if values else "-"


def _grasp(rows: list[dict]) -> str:
    """across / along / height (signed height) of the first grasp, mean over the seeds that kept it."""
    axes = [_fmt([r[f"grasp_error_{a}_cm"] for r in rows]) for a in ("across", "along", "height")]
    if axes == ["-"] * 3:
        return "-"
    bias = [r["grasp_height_bias_cm"] for r in rows if r["grasp_height_bias_cm"] == r["grasp_height_bias_cm"]]
    return " / ".join(axes) + f" ({np.mean(bias):+.2f})"


def _shares(rows: list[dict], field: str) -> str:
    """The mean share of each cause in ``field`` (why poses were unexecutable, where failed
    episodes left the expert's path) over the seeds that kept them, largest first."""
    kept = [r[field] for r in rows if r.get(field)]
    if not kept:
        return "-"
    means = {c: float(np.mean([k.get(c, 0.0) for k in kept])) for c in kept[0]}
    return ", ".join(f"{c} {v:.2f}" for c, v in sorted(means.items(), key=lambda cv: -cv[1]) if v > 0) or "none"


def write_report(out: os.PathLike | str, log: Callable[[str], None] = print) -> list[dict]:
    """results.csv, results.md and curves.png from the finished cells under ``out``."""
    from .checkpoints import atomic_write_bytes
    from .plots import CURVE_COLORS, _write_png, learning_curve_image

    out = Path(out)
    rows = _rows(out)
    lines = [",".join(RESULT_COLUMNS)]
    for r in rows:
        lines.append(",".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in RESULT_COLUMNS))
    atomic_write_bytes(out / "results.csv", ("\n".join(lines) + "\n").encode())

    from arm_sim.tasks import TASK_NAMES

    settings = read_json(out / "benchmark.json") if (out / "benchmark.json").exists() else {}
    # one order whichever invocation ran last: the task list's, then the agent registry's
    tasks = _in_order(settings.get("tasks", []) + [r["task"] for r in rows], list(TASK_NAMES) + ["grasp_bin"])
    methods = _in_order(settings.get("methods", []) + [r["method"] for r in rows], list(AGENTS))

    def cell_rows(task, method):
        return [r for r in rows if r["task"] == task and r["method"] == method]

    made = (f"Preset `{settings.get('preset', '?')}`, {settings.get('demos', '?')} demos, "
            f"{settings.get('minutes', '?')} min per "
            "cell in the last invocation (each cell's own wall time in the table below), "
            f"{settings.get('eval_episodes', 25)} fixed ") if settings else \
        ("Cells gathered from several runs (no benchmark.json here): each cell's command, budget "
         "and agent config are in the last section; each evaluates on its own fixed ")
    md = [f"# Benchmark: {', '.join(tasks)}", "",
          made + "evaluation scenes never seen in training. Each entry: final success, mean over seeds "
          f"(untrained agent on the same scenes; mean of the last {LAST_EVALUATIONS} evaluations; "
          "seeds finished). A final value within 0.1 of its untrained one is marked *floor*.", "",
          "| task | " + " | ".join(_label(m) for m in methods) + " |",
          "|---|" + "---|" * len(methods)]
    for task in tasks:
        entries = []
        for m in methods:
            rs = cell_rows(task, m)
            if not rs:
                entries.append("not run")
                continue
            final, untrained = _fmt([r["final_success"] for r in rs]), _fmt([r["untrained_success"] for r in rs])
            floor = abs(float(final) - float(untrained)) < 0.1
            scripted = _fmt([r["scripted_success"] for r in rs])  # QT-Opt: the data policy's rate
            entries.append(f"**{final}** (untrained {untrained}; last {_fmt([r['last_mean_success'] for r in rs])}; "
                           + (f"scripted data {scripted}; " if scripted != "-" else "")
                           + f"{len(rs)} seed{'s' if len(rs) > 1 else ''})" + (" *floor*" if floor else ""))
        md.append(f"| {task} | " + " | ".join(entries) + " |")
    md += ["", "## Where it fails: the final evaluation's diagnosis (mean over seeds)", "",
           "attention on keyframe: share of scenes whose first attended pixel is within 2 px of the "
           "expert's first keyframe; later: share of the later decisions taken on the expert's path "
           "(every earlier pose on its keyframe) that attended within 2 px of the next keyframe (- "
           "where none got that far, and for cells run before it was kept); pose error: median "
           "distance of the first pose from the first keyframe; keyframes "
           "matched: share of the expert's keyframes the executed poses matched in order; "
           "unexecutable: share of episodes ended by a pose the arm could not execute, and by which "
           "cause (unreachable: no IK solution; collision: the goal or every path to it collides; "
           "timeout: the arm did not settle there; - for cells run before the causes were kept); "
           "failed, left the path by: the failed episodes (share of all scenes) by why the pose that "
           "left the expert's path (a via pose taken elsewhere is forgiven when the next pose takes "
           "the keyframe after it) missed its keyframe (attention: the pixel more than 2 px off "
           "the keyframe's; pose: on the pixel, the pose more than 3 cm away or the wrong gripper "
           "state, or the last release on its keyframe without finishing the task; refused: a pose "
           "on the keyframe the arm could not execute; on_path: every pose on its keyframe; - for "
           "cells run before it was kept): an unexecutable pose often only ends "
           "an episode that went wrong earlier; "
           "grasp error: median distance of the first pose that closes the hand from the expert's "
           "grasp, across the fingers / along the pads / in height, and in brackets the median "
           "signed height error (> 0: above the expert's); `python bench/keyframe_tolerance.py` "
           "says how much each task's grasp tolerates (- for tasks without a grasp and cells run "
           "before it was kept).", "",
           "| task | method | final | attention on keyframe | later | pose error (cm) | keyframes matched | "
           "unexecutable | by cause | failed, left the path by | grasp error (cm) | env steps | updates | "
           "minutes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        for m in methods:
            rs = cell_rows(task, m)
            if rs:
                md.append(f"| {task} | {m} | {_fmt([r['final_success'] for r in rs])} | "
                          f"{_fmt([r['attention_on_keyframe'] for r in rs])} | "
                          f"{_fmt([r['attention_on_later_keyframes'] for r in rs])} | "
                          f"{_fmt([r['pose_error_cm'] for r in rs])} | "
                          f"{_fmt([r['keyframes_matched'] for r in rs])} | "
                          f"{_fmt([r['unexecutable'] for r in rs])} | {_shares(rs, 'causes')} | "
                          f"{_shares(rs, 'failures')} | {_grasp(rs)} | "
                          f"{int(np.mean([r['env_steps'] for r in rs]))} | "
                          f"{int(np.mean([r['updates'] for r in rs]))} | "
                          f"{np.mean([r['wall_seconds'] for r in rs]) / 60:.0f} |")
    if settings:
        md += ["", "Last invocation (cells run by earlier ones may differ in methods and budget; each "
               "cell's minutes are in the table): `" + invocation(settings) + "`"]
    md += [""] + _provenance(rows, tasks, methods)
    atomic_write_bytes(out / "results.md", "\n".join(md).encode())

    panels = []
    for task in tasks:
        curves, bands, colors = {}, {}, {}
        for m in methods:
            runs = _curves(out, task, m)
            if runs:
                xs, mean, lo, hi = _mean_and_spread(runs)
                label = f"{_label(m)} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
                curves[label] = [{"env_steps": x, "eval_success": y} for x, y in zip(xs, mean)]
                colors[label] = CURVE_COLORS[methods.index(m) % len(CURVE_COLORS)]
                if len(runs) > 1:
                    bands[label] = (xs, lo, hi)
        if not curves:
            continue
        first, *rest = curves.items()
        panels.append(learning_curve_image(first[1], title=task, compare=dict(rest), label=first[0],
                                           size=(640, 420), ylabel="evaluation success",
                                           bands=bands, colors=colors))
    if panels:
        cols = min(2, len(panels))
        while len(panels) % cols:
            panels.append(np.full_like(panels[0], 255))
        grid = np.concatenate([np.concatenate(panels[i:i + cols], axis=1)
                               for i in range(0, len(panels), cols)], axis=0)
        _write_png(out / "curves.png", grid)
    log(f"report: {out / 'results.md'} ({len(rows)} cells finished)")
    return rows


def _main_cell(settings_json: str) -> int:
    """Entry point of one cell's child process (``--jobs`` > 1), its threads in OMP_NUM_THREADS."""
    import torch

    from .train_inprocess import train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    settings = TrainSettings(**json.loads(settings_json))
    train(settings, log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cell":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        sys.exit(_main_cell(sys.argv[2]))
    print("usage: arm benchmark --help (this module's --cell is for the benchmark's own children)",
          file=sys.stderr)
    sys.exit(2)
