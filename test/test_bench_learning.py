"""`bench/bench_learning.py` prints one JSON line per (preset, batch) with the figures issue
readers compare: the optimised learner step against the fp32 eager one measured in the same run,
and how far the optimised losses drift from the baseline's."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_learning.py"


def run_bench(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_updates_lines_hold_the_speedup_and_the_loss_drift_against_a_same_run_baseline():
    (line,) = run_bench("--only", "updates", "--presets", "cpu", "--batches", "4", "--seconds", "1",
                        "--loss-updates", "2", "--threads", "1")
    assert line["name"] == "updates/cpu/batch4/cpu"
    assert line["updates_per_s"] > 0 and line["baseline_updates_per_s"] > 0
    assert line["speedup"] == round(line["updates_per_s"] / line["baseline_updates_per_s"], 2)
    assert 0 <= line["loss_rel_diff"] <= line["loss_tolerance"]
    # bf16 only where the CPU computes it natively; emulated (AVX2) it is 11x slower than fp32
    assert line["options"] == {"amp": "auto"}
    assert line["amp_used"] == ("bf16" if line["native_bf16"] else "off")


def test_profile_accounts_for_the_whole_step_part_by_part():
    (line,) = run_bench("--only", "profile", "--presets", "cpu", "--batches", "4", "--threads", "1")
    parts = line["parts_ms"]
    for part in ("replay/sample", "targets", "q_attention/forward", "q_attention/backward_step",
                 "critic/forward", "critic/backward_step", "actor/forward", "actor/backward_step"):
        assert parts[part] > 0, part
    assert abs(sum(parts.values()) - line["ms_per_update"]) < 1.0


def test_a_gpu_asked_for_on_a_machine_without_one_is_a_clear_error():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: nothing to refuse (CI machines have none)")
    run = subprocess.run([sys.executable, str(BENCH), "--only", "updates", "--device", "cuda"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "sees no CUDA GPU" in run.stderr
