"""QT-Opt on the bin in one process: the scripted grasps become episode bags, the learner trains
the registered QT-Opt agent on them (and on its own grasps), evaluations are on held-out objects,
and the run folder is the one ARM's runs leave."""
import json

import numpy as np
import pytest

from arm_policy.agents.qtopt.config import QTOptConfig
from arm_policy.grasp_episodes import (GraspFrame, play_scripted, read_grasp_episode, transitions_of,
                                       write_grasp_episode)
from arm_policy.settings import TrainSettings
from arm_policy.train_inprocess import train

SMALL = {"image_size": 32, "batch_size": 8, "conv_channels": [8, 8], "embed_hidden": 16,
         "head_channels": 8, "head_hidden": 16, "cem_samples": 16, "cem_elites": 4}


def test_a_scripted_grasp_round_trips_through_its_bag_with_the_agents_rewards(tmp_path):
    from arm_perception.bag_format import BagError
    from arm_sim.grasp_bin import GraspBinEnv

    cfg = QTOptConfig(image_size=32)
    env = GraspBinEnv(image_size=(32, 32))
    frames = play_scripted(env, seed=3, rng=np.random.default_rng(0))
    env.close()
    direct = transitions_of(frames, cfg)
    bag = write_grasp_episode(tmp_path / "episode_000003", frames)
    read = read_grasp_episode(bag, cfg)
    assert len(read) == len(direct) == len(frames) - 1
    for a, b in zip(read, direct):
        for key in ("rgb", "state", "action", "reward", "terminal", "next_rgb", "next_state"):
            np.testing.assert_allclose(np.asarray(a[key], float), np.asarray(b[key], float), atol=1e-6)
    assert all(t["reward"] == pytest.approx(cfg.step_reward) for t in read[:-1])
    last = read[-1]
    assert last["terminal"] and not last["timeout"]
    assert last["reward"] == pytest.approx(cfg.step_reward + cfg.success_reward * frames[-2].success)
    assert np.all(np.abs(np.stack([t["action"] for t in read])[:, :3]) <= cfg.max_displacement + 1e-6)

    for p in bag.glob("*.mcap"):
        p.write_bytes(p.read_bytes()[:200])  # truncated
    with pytest.raises(BagError):
        read_grasp_episode(bag, cfg)
    with pytest.raises(ValueError, match="at least one action"):
        write_grasp_episode(tmp_path / "empty", [GraspFrame(frames[0].rgb, frames[0].state)])


def test_scripted_grasps_already_recorded_are_read_back_not_played_again(tmp_path):
    """... and give the same success rate and transitions as when they were played."""
    from arm_sim.grasp_bin import GraspBinEnv
    from arm_policy.train_qtopt import record_offline, transitions_into

    cfg = QTOptConfig(image_size=32)
    env = GraspBinEnv(image_size=(32, 32))
    played, read = [], []
    first = record_offline(env, tmp_path / "offline", 3, 5, lambda line: None, cfg, transitions_into(played, cfg))
    env.close()
    kept = sorted(p.name for p in (tmp_path / "offline").iterdir())
    assert kept == ["episode_000005", "episode_000006", "episode_000007"]
    # no simulator the second time: every grasp, and its success, comes from its bag
    assert record_offline(None, tmp_path / "offline", 3, 5, lambda line: None, cfg,
                          transitions_into(read, cfg)) == first
    assert len(read) == len(played) > 0
    for a, b in zip(read, played):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_tiny_qtopt_run_leaves_the_run_folder_of_an_arm_run(tmp_path):
    run = tmp_path / "run"
    settings = TrainSettings(task="grasp_bin", method="qtopt", demos=3, minutes=0.3, out=str(run),
                             eval_every=4, eval_episodes=1, updates_per_step=1, checkpoint_every=5,
                             agent_overrides=dict(SMALL))
    summary = train(settings, log=lambda line: None)

    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["method"] == "qtopt" and on_disk["task"] == "grasp_bin"
    assert 0 <= on_disk["scripted_success"] <= 1 and 0 <= on_disk["eval_success"] <= 1
    assert on_disk["untrained_success"] == summary["untrained_success"] and on_disk["evaluations"] >= 2
    assert summary["env_steps"] > 0 and summary["updates"] >= 1
    from arm_policy.train_qtopt import offline_folder

    folder = offline_folder(settings, QTOptConfig())
    assert folder.name == "grasp_bin_random0.15_terminate0.5"  # exploring scripted grasps by default
    assert len(list(folder.glob("episode_*"))) == 3
    assert offline_folder(settings, QTOptConfig(scripted_random_action_prob=0)).name == "grasp_bin"
    sticky = offline_folder(settings, QTOptConfig(scripted_sticky_close=True))  # never mixed with the others
    assert sticky.name == "grasp_bin_random0.15_terminate0.5_sticky"
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert (run / "training" / "metrics.csv").is_file()
    from arm_policy.agents import from_checkpoint
    from arm_policy.checkpoints import load_latest_valid

    agent = from_checkpoint(load_latest_valid(run).state)
    assert agent.name == "qtopt" and agent.updates == summary["updates"]
    rgb = np.zeros((32, 32, 3), np.uint8)
    _, action, _ = agent.act({"rgb": rgb, "gripper_open": 1.0, "gripper_height": 0.2, "gripper_aperture": 1.0},
                             explore=False)
    assert action.shape == (7,)


def test_offline_only_learns_from_the_scripted_grasps_without_grasps_of_its_own(tmp_path):
    run = tmp_path / "run"
    summary = train(TrainSettings(task="grasp_bin", method="qtopt", demos=2, minutes=0.2, out=str(run),
                                  eval_every=10, eval_episodes=1, updates_per_step=1, offline_only=True,
                                  agent_overrides=dict(SMALL)), log=lambda line: None)
    assert summary["offline_only"] and summary["env_steps"] == 0 and summary["episodes"] == 0
    assert summary["updates"] >= 10


def test_qtopt_and_the_bin_go_together_and_nothing_else_does():
    with pytest.raises(ValueError, match="does not learn 'pick_up_cup'"):
        TrainSettings(task="pick_up_cup", method="qtopt")
    with pytest.raises(ValueError, match="does not learn 'grasp_bin'"):
        TrainSettings(task="grasp_bin", method="arm")


def test_a_tray_other_than_the_full_bin_is_grasp_bins_and_keeps_its_scripted_grasps_apart():
    from arm_policy.train_qtopt import offline_folder

    settings = TrainSettings(task="grasp_bin", method="qtopt", tray="one_box", out="runs/x")
    assert offline_folder(settings, QTOptConfig()).name == "grasp_bin_one_box_random0.15_terminate0.5"
    assert offline_folder(settings, QTOptConfig(scripted_random_action_prob=0)).name == "grasp_bin_one_box"
    with pytest.raises(ValueError, match="unknown tray 'big'"):
        TrainSettings(task="grasp_bin", method="qtopt", tray="big")
    with pytest.raises(ValueError, match="tray 'one_box' is a grasp_bin tray; 'pick_up_cup' has its own scene"):
        TrainSettings(task="pick_up_cup", method="arm", tray="one_box")


def test_the_state_can_carry_the_aperture_which_tells_a_grasped_object_from_an_empty_close(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    # closed on an object (aperture 0.3) and closed on nothing (0.0): gripper_open reads 0 for both
    frames = [GraspFrame(rgb, np.array([0.0, 0.02, 0.3], np.float32), np.zeros(7, np.float32)),
              GraspFrame(rgb, np.array([0.0, 0.02, 0.0], np.float32), np.zeros(7, np.float32), True, False),
              GraspFrame(rgb, np.array([0.0, 0.25, 0.0], np.float32))]
    plain = transitions_of(frames, QTOptConfig(image_size=32, state_aperture=False))
    with_aperture = transitions_of(frames, QTOptConfig(image_size=32, state_aperture=True))
    np.testing.assert_array_equal(plain[0]["state"], plain[1]["state"])  # indistinguishable
    np.testing.assert_allclose(with_aperture[0]["state"], [0.3, 0.02])
    np.testing.assert_allclose(with_aperture[1]["state"], [0.0, 0.02])
    np.testing.assert_allclose(with_aperture[1]["next_state"], [0.0, 0.25])
    # the bag keeps all three values
    back = read_grasp_episode(write_grasp_episode(tmp_path / "ep", frames), QTOptConfig(image_size=32, state_aperture=True))
    np.testing.assert_allclose(back[0]["state"], [0.3, 0.02])
    # a frame from before the aperture was stored cannot feed an aperture agent
    old = [GraspFrame(rgb, f.state[:2], f.action, f.done, f.success) for f in frames]
    with pytest.raises(ValueError, match="without the gripper aperture"):
        transitions_of(old, QTOptConfig(image_size=32, state_aperture=True))
    np.testing.assert_array_equal(transitions_of(old, QTOptConfig(image_size=32, state_aperture=False))[0]["state"],
                                  plain[0]["state"])
    # acting reads the aperture then
    from arm_policy.agents.qtopt import QTOptAgent

    agent = QTOptAgent(QTOptConfig(**{**SMALL, "state_aperture": True}), device="cpu", seed=0)
    _, action, _ = agent.act({"rgb": rgb, "gripper_open": 0.0, "gripper_height": 0.02, "gripper_aperture": 0.3},
                             explore=False)
    assert action.shape == (7,)
    with pytest.raises(ValueError, match="gripper_aperture"):
        agent.act({"rgb": rgb, "gripper_open": 0.0, "gripper_height": 0.02, "gripper_aperture": float("nan")},
                  explore=False)
