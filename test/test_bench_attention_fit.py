"""`bench/attention_fit.py`: how precisely Q-attention alone learns a task's keyframe pixels from
demos, per keyframe stage and per config variant (docs/results/arm.md, stack_wine's carry)."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import attention_fit  # noqa: E402


def test_a_keyframes_stage_is_its_rank_by_frame_within_its_episode():
    t = lambda episode, index: SimpleNamespace(episode=episode, index=index)
    transitions = [t("a", 30), t("b", 9), t("a", 0), t("a", 12), t("b", 2)]
    assert attention_fit.stages(transitions).tolist() == [2, 1, 0, 1, 0]


def test_the_summary_gives_median_90th_percentile_and_share_on_the_pixel_per_stage():
    error = np.array([0.0, 1.0, 1.4, 5.0, 0.0, 10.0])
    stage = np.array([0, 0, 0, 0, 1, 1])
    assert attention_fit.summary(error, stage) == {"stage0": [1.2, 3.9, 0.75], "stage1": [5.0, 9.0, 0.5]}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("attention_fit") / "demos"
    subprocess.run([sys.executable, "-m", "arm_bringup.cli", "demos", "--task", "pick_up_cup", "--episodes", "3",
                    "--seed", "0", "--out", str(out), "--image-size", "32"], check=True, capture_output=True)
    return out


def run(*args):
    return subprocess.run([sys.executable, str(BENCH / "attention_fit.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_each_variant_fits_and_reports_pixel_errors_per_stage_on_fit_and_held_out_demos(demos):
    out = run(demos, "pick_up_cup", "--held-out", "1", "--steps", "3",
              "--variant", "cpu", "--variant", "deeper", "unet_filters=[8,8,8]")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["variant"], r["overrides"]) for r in rows] == [("cpu", {}), ("deeper", {"unet_filters": [8, 8, 8]})]
    for r in rows:
        assert r["image_size"] == 32 and r["steps"] == 3 and (r["fit_demos"], r["held_out_demos"]) == (2, 1)
        assert r["ms_per_step"] > 0
        for part in ("fit", "held_out"):
            assert set(r[part]) >= {"stage0", "stage1"}
            for median, p90, share in r[part].values():
                assert 0 <= median <= p90 <= 32 * 2 ** 0.5 and 0 <= share <= 1


def test_a_field_the_config_does_not_have_or_too_few_demos_is_a_clear_error(demos, tmp_path):
    out = run(demos, "pick_up_cup", "--held-out", "1", "--steps", "1", "--variant", "x", "unet_depth=3")
    assert out.returncode == 2 and "variant 'x'" in out.stderr and "unet_depth" in out.stderr
    out = run(demos, "pick_up_cup", "--held-out", "3")
    assert out.returncode == 2 and "need more than the 3 held out" in out.stderr
    out = run(tmp_path, "pick_up_cup")
    assert out.returncode == 2 and "no usable demos" in out.stderr
