"""The episode runner's bookkeeping without ROS: rewards, seeds, names, budget, resume scan."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from arm_bringup import episodes as ep


@pytest.mark.parametrize("outcome, success, step, expect", [
    ("reached", False, 0, (0.0, False, False)),
    ("reached", True, 0, (1.0, True, False)),
    ("reached", False, 9, (0.0, True, True)),     # the 10th pose cuts the episode: a timeout
    ("unreachable", False, 3, (0.0, True, False)),  # the authors' rule: 0 and the end
    ("collision", False, 0, (0.0, True, False)),
    ("timeout", True, 0, (0.0, True, False)),     # not executed: success does not count
    ("invalid", False, 0, (0.0, True, False)),
    ("", False, 0, (0.0, True, False)),
])
def test_step_reward_follows_the_paper_and_the_in_process_trainer(outcome, success, step, expect):
    assert ep.step_reward(outcome, success, step, episode_length=10) == expect


def test_outcome_is_the_first_word_of_the_control_result():
    assert ep.outcome_of("reached: position error 3.1 mm (plan 12.0 ms, execution 1.20 s)") == "reached"
    assert ep.outcome_of("unreachable: no IK solution within joint limits (plan 8 ms)") == "unreachable"
    assert ep.outcome_of("invalid: pose is in frame 'map'") == "invalid"
    assert ep.outcome_of("") == ""


def test_seeds_of_demos_training_and_evaluation_never_overlap():
    demos = set(range(0, 10))
    train = {ep.train_seed(0, i) for i in range(100_000)}
    evals = {ep.eval_seed(i) for i in range(100)}
    assert not demos & train and not train & evals and not demos & evals
    assert ep.train_seed(5, 3) == 10_008 and ep.eval_seed(0) == 1_000_000


def test_episode_names_are_bag_paths_and_eval_names_do_not_collide():
    assert ep.train_episode_name(12) == "train/episode_000012"
    first = ep.eval_episode_name(120, 3)
    assert first == "eval/env_step_0000120_03"
    assert ep.eval_episode_name(120, 3, {first}) == first + "_r1"
    assert ep.eval_episode_name(120, 3, {first, first + "_r1"}) == first + "_r2"


def test_step_record_is_the_contract_json():
    rec = ep.StepRecord(2, -1.0, True, "unreachable", False, 123, "train/episode_000001")
    assert json.loads(rec.to_json()) == {
        "step": 2, "reward": -1.0, "terminal": True, "outcome": "unreachable", "success": False,
        "decision_stamp_ns": 123, "episode": "train/episode_000001"}


def test_missing_demo_seeds_and_contiguous_runs(tmp_path):
    for s in (0, 1, 4):
        (tmp_path / f"seed_{s:06d}").mkdir()
    (tmp_path / "seed_000002.partial").mkdir()  # a crashed recording does not count
    assert ep.missing_demo_seeds(tmp_path, 0, 6) == [2, 3, 5]
    assert ep.missing_demo_seeds(tmp_path / "none", 3, 2) == [3, 4]
    assert ep.contiguous_runs([2, 3, 5]) == [(2, 2), (5, 1)]
    assert ep.contiguous_runs([]) == []


def _bag(folder: Path, name: str, steps: int, metadata: bool = True) -> Path:
    bag = folder / name
    bag.mkdir(parents=True)
    (bag / f"{name}.mcap").write_bytes(b"\x89MCAP0\r\n")
    if metadata:
        topics = [{"message_count": steps, "topic_metadata": {"name": ep.STEP_TOPIC,
                                                                "type": "std_msgs/msg/String"}},
                  {"message_count": 40, "topic_metadata": {"name": "/arm/policy/decision",
                                                           "type": "std_msgs/msg/String"}}]
        import yaml

        (bag / "metadata.yaml").write_text(yaml.safe_dump(
            {"rosbag2_bagfile_information": {"version": 9, "topics_with_message_count": topics}}))
    return bag


def test_scan_run_counts_closed_training_bags_and_keeps_numbers_unique(tmp_path):
    train = tmp_path / "bags" / "train"
    _bag(train, "episode_000000", 3)
    _bag(train, "episode_000001", 10)
    broken = _bag(train, "episode_000003", 5, metadata=False)  # truncated: no metadata.yaml
    (train / "episode_000004.partial").mkdir()  # in flight when the launch died
    _bag(tmp_path / "bags" / "eval", "env_step_0000013_00", 1)
    (tmp_path / "metrics.csv").write_text(
        "step,wall_time,env_steps,eval_success\n0,1.0,0,0\n13,2.0,13,0.5\n13,3.0,")
    point = ep.scan_run(tmp_path)
    assert (point.env_steps, point.episodes, point.next_episode) == (13, 2, 4)
    assert [b for b, _ in point.skipped] == [broken]
    assert "metadata.yaml is missing" in point.skipped[0][1]
    assert point.last_eval_env_steps == 13
    assert point.eval_names == {"eval/env_step_0000013_00"}


def test_scan_of_an_empty_run_folder_starts_from_zero(tmp_path):
    point = ep.scan_run(tmp_path)
    assert (point.env_steps, point.episodes, point.next_episode) == (0, 0, 0)
    assert point.last_eval_env_steps is None and not point.skipped


def test_counter_resumes_and_tracks_the_success_rate():
    c = ep.EpisodeCounter.resume(ep.ResumePoint(next_episode=4, env_steps=13, episodes=2), window=2)
    assert math.isnan(c.success_rate())
    c.finish_episode(3, True)
    c.skip_episode()
    c.finish_episode(10, False)
    c.finish_episode(1, True)
    assert (c.env_steps, c.episodes, c.next_episode, c.resumed_episodes) == (27, 5, 8, 2)
    assert c.success_rate() == 0.5  # the last two


def test_budget_stops_on_time_or_episodes_and_leaves_a_reserve():
    b = ep.Budget(minutes=1.0, episodes=0, start=0.0)
    assert not b.training_done(10, reserve=20.0, now=30.0)
    assert b.training_done(10, reserve=31.0, now=30.0)
    b = ep.Budget(minutes=0, episodes=5, start=0.0)
    assert not b.training_done(4, reserve=1e9, now=1e6) and b.training_done(5)
    with pytest.raises(ValueError, match="minutes > 0.*episodes > 0"):
        ep.Budget(0, 0)


def test_evaluation_is_due_every_eval_every_steps_and_optionally_at_start():
    assert ep.eval_due(0, None, 50, at_start=True)
    assert not ep.eval_due(0, None, 50) and not ep.eval_due(49, None, 50)
    assert ep.eval_due(50, None, 50)
    assert not ep.eval_due(49, 0, 50) and ep.eval_due(50, 0, 50)
    assert not ep.eval_due(10_000, 0, 0)  # 0: only the final evaluation
    assert not ep.eval_due(10_000, None, 0)


def test_the_image_size_must_fit_the_agent_preset_and_the_error_says_which_size_does():
    assert ep.check_preset("cpu", 64) is None  # ARM's config is the trainer's business
    assert ep.check_preset("", 96) is None  # no check: agent_overrides set the size
    with pytest.raises(ValueError, match=r"image_size 128 does not fit agent preset 'cpu'.*image_size:=64"):
        ep.check_preset("cpu", 128)
    with pytest.raises(ValueError, match="unknown agent preset 'fast'; presets: paper, cpu"):
        ep.check_preset("fast", 64)
    qtopt = ep.check_preset("cpu", 64, "qtopt")
    assert qtopt.image_size == 64 and qtopt.max_steps == 20
    assert ep.check_preset("", 32, "qtopt").image_size == 32
    with pytest.raises(ValueError, match="unknown QT-Opt preset 'fast'"):
        ep.check_preset("fast", 64, "qtopt")


def test_the_status_line_names_what_the_trainer_reported_and_skips_what_is_not_a_number():
    assert ep.status_line({}) == "training status: none yet"
    line = ep.status_line({"state": "training", "updates": 120, "transitions": 2048.0, "checkpoint_step": True,
                           "losses": {"critic": 0.01234, "actor": math.nan}, "error": "disk full"})
    assert line == "training training  updates 120  replay 2048  critic 0.0123  error disk full"
