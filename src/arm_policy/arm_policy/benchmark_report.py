"""``arm benchmark``'s report: results.csv, results.md and curves.png from the finished cells of a
benchmark folder (``OUT/cells/TASK/METHOD/seed_K``), or of cells gathered there from several runs.

    arm benchmark --report --out runs/bench

results.md gives each task x method its final success beside the untrained value and the mean of
the last evaluations, the final evaluation's diagnosis, and how each cell was made: its ``arm
train`` command, its commit, and where its agent differs from what its preset gives today.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .agents import AGENTS, agent_class, agent_config
from .run_log import read_json, read_metrics
from .settings import BenchmarkSettings, TrainSettings
from .settings_cli import to_options
from .training_run import LAST_EVALUATIONS

__all__ = ["RESULT_COLUMNS", "config_against_today", "finished", "invocation", "train_command",
           "write_report"]

#: the first grasp's error (rollout.summarise), a results.csv column each
_GRASP_COLUMNS = ("grasp_error_across_cm", "grasp_error_along_cm", "grasp_error_height_cm",
                  "grasp_height_bias_cm")
RESULT_COLUMNS = ["task", "method", "seed", "untrained_success", "final_success", "best_success",
                  "env_steps", "updates", "wall_seconds", "last_mean_success",
                  "attention_on_keyframe", "pose_error_cm", "keyframes_matched", "unexecutable",
                  "scripted_success", *_GRASP_COLUMNS, "attention_on_later_keyframes",
                  "final_eval_episodes", "final_eval_success"]
#: results.csv column <- summary.json key
_FROM_SUMMARY = {"untrained_success": "untrained_success", "final_success": "eval_success",
                 "best_success": "best_success", "last_mean_success": "eval_success_last_mean",
                 "env_steps": "env_steps", "updates": "updates", "wall_seconds": "wall_seconds",
                 "attention_on_keyframe": "eval_attention_on_keyframe",
                 "pose_error_cm": "eval_pose_error_cm", "keyframes_matched": "eval_keyframes_matched",
                 "unexecutable": "eval_unexecutable", "scripted_success": "scripted_success",
                 **{c: f"eval_{c}" for c in _GRASP_COLUMNS},
                 "attention_on_later_keyframes": "eval_attention_on_later_keyframes"}


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


def _rows(out: Path) -> list[dict]:
    rows = []
    for folder in sorted(p.parent for p in (out / "cells").glob("*/*/seed_*/summary.json")):
        summary = finished(folder)
        if summary is None:
            continue
        row = {"task": summary["task"], "method": summary["method"], "seed": summary["seed"],
               "folder": folder}  # results.md only
        row.update({col: summary.get(key, float("nan")) for col, key in _FROM_SUMMARY.items()})
        final_eval = summary.get("final_eval", {})  # arm train --final-eval-episodes
        row["final_eval_episodes"] = final_eval.get("eval_episodes", float("nan"))
        row["final_eval_success"] = final_eval.get("eval_success", float("nan"))
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


def _final_eval(rows: list[dict]) -> str:
    """"on N scenes X; " for cells with a final evaluation on more scenes (the mean over the seeds
    that have one, and how many when not all do), else ''."""
    kept = [r for r in rows if r["final_eval_success"] == r["final_eval_success"]]
    if not kept:
        return ""
    sizes = sorted({int(r["final_eval_episodes"]) for r in kept})
    seeds = "" if len(kept) == len(rows) else f" ({len(kept)} of the seeds)"
    return f"on {'/'.join(map(str, sizes))} scenes {_fmt([r['final_eval_success'] for r in kept])}{seeds}; "


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
          "where cells ran `--final-eval-episodes N`, the final agent on N scenes, the first of them "
          "these; seeds finished). A final value within 0.1 of its untrained one is marked *floor*.", "",
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
                           + _final_eval(rs)
                           + f"{len(rs)} seed{'s' if len(rs) > 1 else ''})" + (" *floor*" if floor else ""))
        md.append(f"| {task} | " + " | ".join(entries) + " |")
    md += ["", "## Where it fails: the final evaluation's diagnosis (mean over seeds)", "",
           "attention on keyframe: share of scenes whose first attended pixel is within 2 px of the "
           "expert's first keyframe (2 px of a 64-px image: 1/32 of the width, 4 px at 128; cells "
           "run before commit ae88432 took 2 px at every size); later: share of the later decisions "
           "taken on the expert's path (every earlier pose on its keyframe) that attended within "
           "that of the next keyframe (- "
           "where none got that far, and for cells run before it was kept); pose error: median "
           "distance of the first pose from the first keyframe; keyframes "
           "matched: share of the expert's keyframes the executed poses matched in order; "
           "unexecutable: share of episodes ended by a pose the arm could not execute, and by which "
           "cause (unreachable: no IK solution; collision: the goal or every path to it collides; "
           "timeout: the arm did not settle there; - for cells run before the causes were kept); "
           "failed, left the path by: the failed episodes (share of all scenes) by why the pose that "
           "left the expert's path (a via pose taken elsewhere is forgiven when the next pose takes "
           "the keyframe after it) missed its keyframe (attention: the pixel further than that "
           "from the keyframe's; pose: on the pixel, the pose more than 3 cm away or the wrong "
           "gripper state, or the last release on its keyframe without finishing the task; refused: a pose "
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
