"""`arm benchmark`: a tiny two-task grid writes results.csv, results.md and curves.png, and
survives being killed mid-cell: the rerun skips finished cells and resumes the interrupted one
from its newest checkpoint, with the replay it had then."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from arm_policy.benchmark import BenchmarkSettings, cells_to_run
from arm_policy.benchmark_report import write_report
from arm_policy.run_log import read_json, read_metrics

SCRIPT = textwrap.dedent("""
    import sys
    from arm_policy.benchmark import BenchmarkSettings, run_benchmark
    settings = BenchmarkSettings(tasks=["reach_target", "pick_up_cup"], methods=["arm"], demos=2,
                                 minutes=0.4, out=sys.argv[1], eval_every=4, eval_episodes=2,
                                 checkpoint_every=8, final_eval_episodes=3,
                                 agent_overrides={"image_size": 32, "batch_size": 8})
    run_benchmark(settings, log=lambda line: print(line, flush=True))
""")


def benchmark(out, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, **kwargs)


def test_a_killed_benchmark_resumes_and_reports(tmp_path):
    out = tmp_path / "bench"
    first_cell = out / "cells" / "reach_target" / "arm" / "seed_0"
    proc = benchmark(out)
    try:  # kill the whole benchmark once the first cell has a checkpoint
        deadline = time.monotonic() + 240
        while not list((first_cell / "checkpoints").glob("step_*.pt")):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (first_cell / "summary.json").exists()

    rerun = benchmark(out)
    log, _ = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, log
    assert "resuming" in log and "seed_0" in log
    # with the agent's transitions it had at its checkpoint, which are deleted once it is done
    assert re.search(r"the replay has its [1-9]\d* agent transitions back", log), log
    assert not (first_cell / "replay").exists()

    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["task"], r["method"], r["seed"]) for r in rows] == [
        ("pick_up_cup", "arm", "0"), ("reach_target", "arm", "0")]
    for r in rows:
        assert 0 <= float(r["untrained_success"]) <= 1 and 0 <= float(r["final_success"]) <= 1
        assert float(r["best_success"]) >= float(r["final_success"]) and int(float(r["updates"])) > 0
        assert r["final_eval_episodes"] == "3" and 0 <= float(r["final_eval_success"]) <= 1
    md = (out / "results.md").read_text()
    assert "| reach_target |" in md and "untrained" in md and "keyframes matched" in md
    assert re.search(r"\| reach_target \| \*\*[\d.]+\*\* \(untrained [\d.]+; last [\d.]+; on 3 scenes [\d.]+; 1 seed\)", md), md
    header = next(line for line in md.splitlines() if line.startswith("| task | method | final |"))
    columns = [c.strip() for c in header.strip("|").split("|")]

    def diagnosis(task):
        line = next(line for line in md.splitlines() if line.startswith(f"| {task} | arm | "))
        return dict(zip(columns, (c.strip() for c in line.strip("|").split("|"))))

    reach, cup = diagnosis("reach_target"), diagnosis("pick_up_cup")
    cause = reach["by cause"]  # which cause ended the unexecutable episodes, or none
    assert cause == "none" or cause.split()[0] in ("unreachable", "collision", "timeout", "invalid", "other")
    assert reach["grasp error (cm)"] == "-"  # reach_target has no grasp to measure
    for row in (reach, cup):  # the failed share of the scenes, by where each left the expert's path
        failed = row["failed, left the path by"]
        shares = {} if failed == "none" else dict(part.split() for part in failed.split(", "))
        assert set(shares) <= {"attention", "pose", "refused", "on_path"}
        assert sum(map(float, shares.values())) == pytest.approx(1 - float(row["final"]), abs=0.03)
    grasp = cup["grasp error (cm)"]
    assert grasp == "-" or re.fullmatch(r"[\d.]+ / [\d.]+ / [\d.]+ \([+-][\d.]+\)", grasp), grasp
    # one-keyframe reach_target has no later decision; pick_up_cup's is a share or not reached
    assert reach["later"] == "-" and (cup["later"] == "-" or 0 <= float(cup["later"]) <= 1)
    assert (out / "curves.png").stat().st_size > 5000
    # each cell's command and its agent against today's code (these ran on it: the same)
    made = [line for line in md.splitlines() if line.startswith("| ") and "`arm train --inprocess" in line]
    assert [line.split(" | ")[0] for line in made] == ["| reach_target", "| pick_up_cup"]
    assert all(" --demo-dir " in line and line.endswith("| same |") for line in made), made

    # the report keeps the task list's order whichever invocation ran last
    settings = read_json(out / "benchmark.json")
    (out / "benchmark.json").write_text(json.dumps(dict(settings, tasks=["pick_up_cup", "reach_target"])))
    write_report(out, log=lambda line: None)
    table = [line.split(" | ")[0] for line in (out / "results.md").read_text().splitlines()
             if line.startswith(("| reach_target | **", "| pick_up_cup | **"))]
    assert table == ["| reach_target", "| pick_up_cup"]

    # the resumed cell kept one curve: each evaluation once, in env-step order, from the untrained one
    steps = [r["step"] for r in read_metrics(first_cell) if "eval_success" in r]
    assert steps[0] == 0 and steps == sorted(set(steps))
    summary = read_json(first_cell / "summary.json")
    assert summary["untrained_success"] == read_metrics(first_cell)[0]["eval_success"]


def test_a_cell_stopped_by_ctrl_c_is_resumed_and_left_out_of_the_report(tmp_path):
    settings = BenchmarkSettings(tasks=["reach_target", "pick_up_cup"], methods=["arm"], demos=2,
                                 minutes=1, out=str(tmp_path))
    done, stopped = (tmp_path / "cells" / task / "arm" / "seed_0" for task in ("reach_target", "pick_up_cup"))
    for folder, extra in ((done, {}), (stopped, {"interrupted": True})):
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(
            {"task": folder.parts[-3], "method": "arm", "seed": 0, "eval_success": 0.5,
             "untrained_success": 0.0, "env_steps": 10, "updates": 40, "wall_seconds": 60, **extra}))
    assert [c.task for c in cells_to_run(settings)] == ["pick_up_cup"]
    (tmp_path / "benchmark.json").write_text(json.dumps({"tasks": settings.tasks, "methods": ["arm"]}))
    rows = write_report(tmp_path, log=lambda line: None)
    assert [r["task"] for r in rows] == ["reach_target"]

    # cells gathered from several runs (no benchmark.json) still make a report, each cell its own
    (tmp_path / "benchmark.json").unlink()
    write_report(tmp_path, log=lambda line: None)
    md = (tmp_path / "results.md").read_text()
    assert "Cells gathered from several runs" in md and "Last invocation" not in md
    assert "| reach_target | arm | 0 | - (no config.json) |" in md


def test_a_stopped_benchmark_stops_its_cells_with_a_checkpoint_each_and_starts_no_more(tmp_path):
    """SIGTERM to `arm benchmark --jobs 2` (as `kill` sends it): the two running cells write a
    last checkpoint, keep their replay files and say interrupted; the third cell never starts,
    and no process of the benchmark is left behind."""
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "arm_bringup.cli", "benchmark", "--tasks", "reach_target", "--methods", "arm",
           "--demos", "2", "--minutes", "10", "--seeds", "3", "--jobs", "2", "--eval-every", "1000",
           "--eval-episodes", "1", "--out", str(out), "--agent-overrides", "image_size=32", "batch_size=8"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if sum("(untrained)" in seen for seen in lines) == 2:  # both cells train now
                break
        time.sleep(8.0)
        proc.send_signal(signal.SIGTERM)  # the benchmark alone, not its process group
        lines.append(proc.communicate(timeout=120)[0])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = "".join(lines)
    assert proc.returncode == 130, log[-3000:]
    cells = out / "cells" / "reach_target" / "arm"
    assert sorted(p.name for p in cells.iterdir()) == ["seed_0", "seed_1"], log[-3000:]
    for seed in ("seed_0", "seed_1"):
        summary = read_json(cells / seed / "summary.json")
        assert summary["interrupted"] is True and summary["env_steps"] > 0
        assert list((cells / seed / "replay").glob("agent_*.npz")), f"{seed} lost its replay files"
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert not left, f"benchmark processes left running: {left}"


def test_a_benchmark_refuses_shared_demos_recorded_another_way_before_touching_its_folder(tmp_path):
    from arm_policy.benchmark import run_benchmark

    demos = tmp_path / "demos" / "stack_wine"
    demos.mkdir(parents=True)
    (demos / "recording.json").write_text('{"place_noise_m": 0.015, "grasp_noise_m": 0.0}')
    settings = BenchmarkSettings(tasks=["stack_wine"], methods=["arm"], out=str(tmp_path), grasp_noise_cm=0.7)
    with pytest.raises(ValueError, match="recorded with place noise 1.5 cm, grasp noise 0 cm, not place noise "
                                         "0 cm, grasp noise 0.7 cm; give the same --place-noise-cm"):
        run_benchmark(settings, log=lambda line: None)
    assert not (tmp_path / "benchmark.json").exists()
    (demos / "recording.json").write_text('{"place_noise_m": "a lot"}')
    with pytest.raises(ValueError, match="recording.json is not a demo recording's note"):
        run_benchmark(settings, log=lambda line: None)
