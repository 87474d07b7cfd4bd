"""The graph path records the same demos as `arm demos`: episode_runner's place_noise_cm and
grasp_noise_cm reach the expert and recording.json, and a run folder holding demos recorded
another way is refused with the reason."""
from __future__ import annotations

import json

import pytest
import rclpy


def test_episode_runner_records_its_demos_with_the_expert_noise_it_is_given(tmp_path, ros_domain):
    from arm_bringup.episode_runner import EpisodeRunner

    rclpy.init(args=["--ros-args", "-p", "task:=stack_wine", "-p", f"run_dir:={tmp_path}", "-p", "demos:=1",
                     "-p", "place_noise_cm:=1.5", "-p", "grasp_noise_cm:=0.7"], domain_id=ros_domain)
    try:
        runner = EpisodeRunner()
        try:
            runner.record_missing_demos()
            kept = json.loads((tmp_path / "demos" / "stack_wine" / "recording.json").read_text())
            assert kept == {"place_noise_m": 0.015, "grasp_noise_m": 0.007}
            assert (tmp_path / "demos" / "stack_wine" / "seed_000000").is_dir()
        finally:
            runner.destroy_node()
        rclpy.shutdown()
        rclpy.init(args=["--ros-args", "-p", "task:=stack_wine", "-p", f"run_dir:={tmp_path}", "-p", "demos:=2"],
                   domain_id=ros_domain)
        exact = EpisodeRunner()
        try:
            with pytest.raises(ValueError, match="recorded with place noise 1.5 cm, grasp noise 0.7 cm, not "
                                                 "place noise 0 cm, grasp noise 0 cm; set place_noise_cm"):
                exact.record_missing_demos()
        finally:
            exact.destroy_node()
    finally:
        if rclpy.ok():
            rclpy.shutdown()
