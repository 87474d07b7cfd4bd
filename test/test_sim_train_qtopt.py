"""`arm launch sim_train algo:=qtopt` closes QT-Opt's loop over ROS 2: scripted offline grasps
recorded first, closed-loop grasping episodes (one short executed move per step, the lift at the
end) recorded as grasp-episode bags, QT-Opt trained on both, checkpoints reloaded by the policy,
held-out evaluations reported, and the launch ends by itself when the budget is spent.

One tiny run (32x32 images, 4 scripted grasps, episodes of at most 3 steps, 1.5 minutes) in
ROS_DOMAIN_ID 83; the tests read what it left behind. Every process it starts is stopped.
"""
import json
import time

import numpy as np
import pytest

from sim_train_helpers import Launch, checkpoint_steps, node_processes

DOMAIN = "83"
MINUTES = 1.5
TINY_QTOPT = [
    "algo:=qtopt", "image_size:=32", "demos:=4", "episode_length:=3", "eval_every:=6",
    "eval_episodes:=2", "episode_runner.preset:=",
    "training_node.agent_overrides:=[image_size=32, batch_size=8, cem_samples=16]",
    "training_node.checkpoint_every:=5", "training_node.poll_period:=0.5",
    "policy_node.reload_every:=5", "policy_node.reload_period:=1.0",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sim_train_qtopt") / "run"
    t0 = time.monotonic()
    launch = Launch(DOMAIN, run_dir, *TINY_QTOPT, f"minutes:={MINUTES}")
    try:
        rc = launch.wait(timeout=MINUTES * 60 + 150)
    finally:
        launch.stop()
    return {"dir": run_dir, "rc": rc, "launch": launch, "seconds": time.monotonic() - t0}


def test_the_qtopt_launch_ends_by_itself_and_leaves_no_process(run):
    assert run["rc"] == 0, run["launch"].text[-6000:]
    assert "[launch] episode_runner exited with code 0; stopping the rest" in run["launch"].text
    assert run["seconds"] < MINUTES * 60 + 45
    time.sleep(0.5)
    assert node_processes(DOMAIN) == []


def test_scripted_offline_grasps_come_first_and_the_grasp_episodes_are_bags_the_trainer_reads(run):
    from arm_policy.agents.qtopt.config import QTOptConfig
    from arm_policy.episode_dataset import list_bags
    from arm_policy.grasp_episodes import read_grasp_episode
    from arm_policy.train_qtopt import offline_bag_folder

    cfg = QTOptConfig(image_size=32)
    offline = offline_bag_folder(run["dir"] / "demos", "grasp_bin", cfg)
    assert len(list(offline.glob("episode_*"))) == 4
    assert "offline data: 4/4 scripted grasps" in run["launch"].text
    bags = list_bags(run["dir"] / "bags" / "train")
    assert bags, "no closed training bag"
    episodes = [read_grasp_episode(bag, cfg) for bag in bags]
    for transitions in episodes:
        assert 1 <= len(transitions) <= 3 and transitions[-1]["terminal"]
        assert not any(t["terminal"] for t in transitions[:-1])
        assert all(t["rgb"].shape == (32, 32, 3) and t["action"].shape == (7,) for t in transitions)
    # the policy's moves changed what the camera saw: the arm moved on the graph
    assert any(not np.array_equal(t["rgb"], t["next_rgb"]) for ts in episodes for t in ts)
    summary = json.loads((run["dir"] / "summary.json").read_text())
    assert summary["env_steps"] >= sum(len(ts) for ts in episodes) > 0


def test_qtopt_checkpoints_are_written_and_the_policy_acts_on_newer_ones(run):
    steps = checkpoint_steps(run["dir"])
    assert steps and steps[-1] > 0, steps
    text = run["launch"].text
    assert "[training_node]" in text
    assert "acting with checkpoint" in text and "update 0," in text


def test_held_out_evaluations_are_reported_beside_the_scripted_policy(run):
    from arm_policy.run_log import read_metrics

    folder = run["dir"]
    evals = [r for r in read_metrics(folder) if "eval_success" in r]
    assert len(evals) >= 2 and evals[0]["env_steps"] == 0
    assert all(0.0 <= r["eval_success"] <= 1.0 and r["eval_episodes"] == 2 for r in evals)
    assert all(1 <= r["eval_steps_mean"] <= 3 and 0 <= r["scripted_success"] <= 1 for r in evals)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["task"] == "grasp_bin" and summary["algo"] == "qtopt"
    assert summary["eval_success"] == evals[-1]["eval_success"]
    assert summary["untrained_success"] == evals[0]["eval_success"]
    assert 0 <= summary["scripted_success"] <= 1
    assert (folder / "learning_curve.png").stat().st_size > 1000
    eval_bags = list((folder / "bags" / "eval").iterdir())
    assert len(eval_bags) == 2 * len(evals)
    config = json.loads((folder / "config.json").read_text())["config"]
    assert config["nodes"]["sim_node"]["task"] == "grasp_bin"
    assert config["nodes"]["training_node"]["agent"] == "qtopt"
