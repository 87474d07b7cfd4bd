"""`arm launch sim_train` closes the learning loop over ROS 2: demos recorded, episodes recorded
as bags, transitions trained, checkpoints reloaded by the policy, evaluation reported, and the
launch ends by itself when the budget is spent.

One tiny run (sim_train_helpers.TINY, 1.5 minutes) in ROS_DOMAIN_ID 85; the tests read what it
left behind. Every process it starts is stopped.
"""
import json
import time

import pytest

from sim_train_helpers import TINY, Launch, checkpoint_steps, node_processes, recorded_decisions

DOMAIN = "85"
MINUTES = 1.5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sim_train") / "run"
    t0 = time.monotonic()
    launch = Launch(DOMAIN, run_dir, *TINY, f"minutes:={MINUTES}",
                    "episode_runner.eval_at_start:=true")  # the curve's first point
    try:
        rc = launch.wait(timeout=MINUTES * 60 + 150)
    finally:
        launch.stop()
    return {"dir": run_dir, "rc": rc, "launch": launch, "seconds": time.monotonic() - t0}


def test_the_launch_ends_by_itself_within_its_budget_and_leaves_no_process(run):
    assert run["rc"] == 0, run["launch"].text[-5000:]
    assert "[launch] episode_runner exited with code 0; stopping the rest" in run["launch"].text
    assert run["seconds"] < MINUTES * 60 + 45
    time.sleep(0.5)
    assert node_processes(DOMAIN) == []


def test_demos_are_recorded_into_the_run_folder_first(run):
    demos = sorted(p.name for p in (run["dir"] / "demos" / "reach_target").iterdir())
    assert demos == ["recording.json", "seed_000000", "seed_000001"]  # the bags, and how the expert ran
    assert "recording 2 of 2 demos of reach_target at 32x32" in run["launch"].text


def test_training_episodes_are_bags_the_trainer_turns_into_transitions(run):
    from arm_policy.episode_dataset import list_bags, read_agent_episode

    bags = list_bags(run["dir"] / "bags" / "train")
    assert bags, "no closed training bag"
    transitions = [t for bag in bags for t in read_agent_episode(bag)]
    assert transitions and all(t.rgb.shape == (32, 32, 3) for t in transitions)
    assert {t.reward for t in transitions} <= {-1.0, 0.0, 1.0}
    text = run["launch"].text
    assert "[training_node]" in text and " transitions (replay " in text  # learned from them
    status = json.loads((run["dir"] / "summary.json").read_text())
    assert status["env_steps"] >= len(transitions) > 0


def test_checkpoints_are_written_and_reloaded_by_the_policy(run):
    steps = checkpoint_steps(run["dir"])
    assert steps and steps[-1] > 0, steps
    decisions = recorded_decisions(run["dir"] / "bags")
    assert decisions[0]["checkpoint_step"] == 0  # the first decisions: the untrained agent
    later = [d["checkpoint_step"] for d in decisions]
    assert max(later) > 0, f"the policy never acted on a trained checkpoint: {later}"
    assert later == sorted(later)  # reloads only move forward


def test_evaluation_is_reported_in_metrics_summary_plot_and_attention(run):
    from arm_policy.run_log import read_metrics

    folder = run["dir"]
    evals = [r for r in read_metrics(folder) if "eval_success" in r]
    assert len(evals) >= 2 and evals[0]["env_steps"] == 0
    assert all(0.0 <= r["eval_success"] <= 1.0 and r["eval_episodes"] == 2 for r in evals)
    for r in evals:  # the diagnosis of `arm train --inprocess`: the same evaluation code
        assert 0 <= r["eval_attention_on_keyframe"] <= 1 and 0 <= r["eval_keyframes_matched"] <= 1
        assert 0 <= r["eval_unexecutable"] <= 1 and r["eval_pose_error_cm"] >= 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["task"] == "reach_target"
    assert summary["eval_success"] == evals[-1]["eval_success"]
    assert summary["env_steps"] > 0 and summary["episodes"] > 0 and summary["updates"] > 0
    assert 0 < summary["wall_seconds"] <= MINUTES * 60
    assert (folder / "learning_curve.png").stat().st_size > 1000
    assert len(list((folder / "attention").glob("env_step_*.png"))) == len(evals)
    config = json.loads((folder / "config.json").read_text())["config"]  # the run's one configuration
    assert config["launch"] == "sim_train" and config["nodes"]["episode_runner"]["episode_length"] == 3
    assert config["nodes"]["training_node"]["run_dir"] == str(folder)  # every node's, composed once
    assert {"sim_node", "perception_node", "control_node", "recorder", "policy_node"} <= set(config["nodes"])
    assert "episode_length: 3" in (folder / "params.yaml").read_text()  # what the nodes read
    assert (folder / "training" / "config.json").is_file()  # the trainer's own
    assert len(list((folder / "bags" / "eval").iterdir())) == 2 * len(evals)
