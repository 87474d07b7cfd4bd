"""QT-Opt trained from grasp-episode bags, as the training node does it (BagTrainer, no ROS): the
offline bags give checkpoint 0, an online bag as the recorder writes it is read, counted and
mixed into the batches at the config's ratio, the update cap holds, a restart resumes at the same
update count; a bag that cannot be read is skipped with a warning naming it. Tiny networks and
16x16 synthetic frames: a few seconds each."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arm_perception.bag_format import BagError
from arm_perception.bag_writer import RawEpisodeWriter
from arm_policy.agents import from_checkpoint
from arm_policy.agents.qtopt import QTOptAgent
from arm_policy.bag_trainer import BagTrainer, BagTrainerSettings
from arm_policy.checkpoints import list_checkpoints, load_latest_valid
from arm_policy.grasp_episodes import GraspFrame, read_grasp_episode, read_grasp_frames, write_grasp_episode

SIZE = 16
TINY = {"image_size": SIZE, "conv_channels": [8, 8], "embed_hidden": 16, "head_channels": 8,
        "head_hidden": 16, "batch_size": 8, "cem_samples": 16, "cem_elites": 4, "replay_capacity": 256}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def frames(seed: int, steps: int = 3, success: bool = False, size: int = SIZE) -> list[GraspFrame]:
    """A synthetic grasp: ``steps`` downward steps, the last one closing and terminating."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(steps + 1):
        state = np.array([1.0 if k < steps else 0.0, 0.25 - 0.05 * k, 1.0 if k < steps else 0.3], np.float32)
        last = k == steps - 1
        action = None if k == steps else np.r_[rng.uniform(-0.05, 0.05, 3), 0.0, 1.0,
                                                float(last), float(last)].astype(np.float32)
        out.append(GraspFrame(rng.integers(0, 255, (size, size, 3), np.uint8), state, action,
                              done=last, success=last and success))
    return out


#: where the episode runner (train_qtopt.offline_bag_folder) records the default config's
#: offline grasps, exploring ones (scripted_random_action_prob 0.15), under the demo root
OFFLINE = "grasp_bin_random0.15_terminate0.5"


def offline(root: Path, n: int = 3) -> Path:
    """``n`` offline grasps (the first succeeds) where the runner records them -> the demo root."""
    for i in range(n):
        write_grasp_episode(root / OFFLINE / f"episode_{i:06d}", frames(i, success=i == 0))
    return root


def as_the_recorder_writes(source: Path, path: Path, seed: int = 0) -> Path:
    """``source`` recorded again as arm_bringup.recorder writes the live topics: the same
    RawEpisodeWriter, the topics added in another order, receive times as log times (each message
    up to 40 ms late: the four topics interleave out of step, one topic keeps its order at a step
    every 50 ms), the episode's name and end as custom data and no arm.episode_kind, and a topic
    recorded for people beside them (sim_train_qtopt.yaml: the control results)."""
    from rosbags.rosbag2 import Reader

    from arm_control.topics import TOPIC_CONTROL_RESULT, TOPIC_EPISODE_STEP
    from arm_perception.bag_codec import TYPESTORE

    rng = np.random.default_rng(seed)
    result = TYPESTORE.serialize_cdr(TYPESTORE.types["std_msgs/msg/String"](data="reached"), "std_msgs/msg/String")
    with Reader(source) as reader, RawEpisodeWriter(path) as writer:
        writer.set_custom_data("arm.episode_name", path.name)
        writer.add_topic(TOPIC_CONTROL_RESULT, "std_msgs/msg/String")
        for conn in reversed(reader.connections):
            writer.add_topic(conn.topic, conn.msgtype)
        for conn, stamp, data in reader.messages():
            writer.write(conn.topic, data, stamp + int(rng.integers(0, 40_000_000)))
            if conn.topic == TOPIC_EPISODE_STEP:
                writer.write(TOPIC_CONTROL_RESULT, result, stamp - 1)
        writer.set_custom_data("arm.episode_end", "end")
    return path


def cut_in_half(bag: Path) -> Path:
    """The bag truncated on disk (a crash, a full disk)."""
    for mcap in bag.glob("*.mcap"):
        mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 2])
    return bag


def settings(run: Path, demos: Path, **changes) -> BagTrainerSettings:
    return BagTrainerSettings(**{"run_dir": str(run), "demos_dir": str(demos), "task": "grasp_bin",
                                 "agent": "qtopt", "agent_overrides": dict(TINY), "updates_per_step": 2,
                                 "checkpoint_every": 2, "log_every": 1, **changes})


def test_a_recorder_bag_reads_as_the_bag_it_was_recorded_from(tmp_path):
    original = write_grasp_episode(tmp_path / "written", frames(7, steps=4, success=True))
    recorded = as_the_recorder_writes(original, tmp_path / "recorded")
    cfg = QTOptAgent.preset_config("cpu").replace(image_size=SIZE, conv_channels=(8, 8))
    a, b = read_grasp_episode(original, cfg), read_grasp_episode(recorded, cfg)
    assert len(a) == len(b) == 4 and b[-1]["terminal"] and b[-1]["reward"] == pytest.approx(0.95)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_qtopt_trains_from_offline_and_online_bags_and_resumes_at_the_same_update(tmp_path):
    run, demos, warnings = tmp_path / "run", offline(tmp_path / "demos"), []
    trainer = BagTrainer(settings(run, demos), log=lambda line: None, warn=warnings.append)
    assert trainer.demos_folder == demos / OFFLINE and len(trainer.demo_bags()) == 3
    plain = settings(run, demos, agent_overrides={**TINY, "scripted_random_action_prob": 0.0})
    assert BagTrainer(plain).demos_folder == demos / "grasp_bin"  # plain scripted grasps
    trainer.start()
    status = trainer.status()
    assert [c.name for c in list_checkpoints(run)] == ["step_000000000.pt"]  # at once: the policy can act
    assert status["state"] == "waiting_for_episodes" and status["checkpoint_step"] == 0
    assert status["demo_transitions"] == status["transitions"] == 9 and trainer.demo_episodes == 3
    assert isinstance(from_checkpoint(load_latest_valid(run).state), QTOptAgent)

    bag = as_the_recorder_writes(write_grasp_episode(tmp_path / "online", frames(10, success=True)),
                                 run / "bags" / "train" / "episode_000000")
    assert trainer.add_episode(bag, trainer.read_episode(bag)) == 3
    assert trainer.episodes == 1 and trainer.agent_transitions == 3 and trainer.updates_allowed() == 6
    while trainer.updates_allowed():
        trainer.update()
    status = trainer.status()
    assert status["updates"] == 6 and status["state"] == "waiting_for_episodes"
    assert status["episodes"] == 1 and status["agent_transitions"] == 3 and status["transitions"] == 12
    assert set(status["losses"]) == {"q_loss"} and np.isfinite(status["losses"]["q_loss"])
    assert [c.name for c in list_checkpoints(run)][-1] == "step_000000006.pt"
    batch, _, _ = trainer.replay.sample(8)
    assert batch["demo"].sum() == 4, "offline and online half and half (replay_demo_fraction 0.5)"
    assert batch["success"][~batch["demo"]].all(), "the online grasp succeeded"
    agent = from_checkpoint(load_latest_valid(run).state)
    assert isinstance(agent, QTOptAgent) and agent.updates == 6 and agent.cfg.image_size == SIZE
    config = json.loads((run / "training" / "config.json").read_text())["config"]
    assert config["agent"]["conv_channels"] == [8, 8] and config["training_node"]["agent"] == "qtopt"
    trainer.close()
    assert not warnings

    # restart: the newest checkpoint, every bag read again; the cap is met, so it waits
    again = BagTrainer(settings(run, demos), log=lambda line: None, warn=warnings.append)
    again.start()
    assert again.status()["resumed_from"] == 6 and again.updates == 6
    assert again.add_episode(bag, again.read_episode(bag)) == 3
    assert again.updates_allowed() == 0 and again.status()["state"] == "waiting_for_episodes"
    again.close()
    assert not warnings


def test_an_unreadable_or_unfit_bag_is_skipped_with_a_warning_naming_it_and_training_goes_on(tmp_path):
    run, demos, warnings = tmp_path / "run", offline(tmp_path / "demos", n=2), []
    # an offline bag truncated on disk is skipped while loading
    truncated_offline = write_grasp_episode(demos / OFFLINE / "episode_000002", frames(5))
    cut_in_half(truncated_offline)
    trainer = BagTrainer(settings(run, demos, updates_per_step=0), log=lambda line: None,
                         warn=warnings.append)
    trainer.start()
    assert trainer.demo_episodes == 2 and len(warnings) == 1
    assert "skipping unreadable offline grasp episode" in warnings[0] and "episode_000002" in warnings[0]

    train = run / "bags" / "train"
    cut = cut_in_half(write_grasp_episode(train / "episode_000000", frames(20)))
    old = write_grasp_episode(train / "episode_000001",  # recorded before the aperture: 2-D state
                              [GraspFrame(f.rgb, f.state[:2], f.action, f.done, f.success) for f in frames(21)])
    good = write_grasp_episode(train / "episode_000002", frames(22))
    warnings.clear()
    assert trainer.read_episode(cut) is None
    assert "skipping unreadable agent episode" in warnings[-1] and str(cut) in warnings[-1]
    assert trainer.add_episode(old, trainer.read_episode(old)) == 0  # decodes, cannot feed the agent
    assert str(old) in warnings[-1] and "without the gripper aperture" in warnings[-1]
    assert trainer.add_episode(good, trainer.read_episode(good)) == 3 and trainer.episodes == 1
    for _ in range(3):
        trainer.update()  # no cap (offline-only until episodes come): it goes on
    assert trainer.updates == 3 and not trainer.failed and len(warnings) == 2
    trainer.close()


def test_a_foreign_bag_is_named_and_the_task_must_be_the_agents(tmp_path):
    from arm_policy.episode_dataset import write_agent_episode

    rng = np.random.default_rng(0)
    arm_bag = write_agent_episode(tmp_path / "arm_episode", [dict(
        stamp_ns=10**18, rgb=rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8),
        point_cloud=np.zeros((SIZE, SIZE, 3), np.float32), low_dim=np.zeros(11, np.float32), pixel=[1, 1],
        action=np.r_[0.3, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0], reward=1.0, terminal=True)])
    with pytest.raises(BagError, match="not a QT-Opt grasp episode"):
        read_grasp_frames(arm_bag)
    with pytest.raises(ValueError, match="does not learn 'reach_target'"):
        BagTrainerSettings(run_dir=str(tmp_path), agent="qtopt")
    with pytest.raises(ValueError, match="does not learn 'grasp_bin'"):
        BagTrainerSettings(run_dir=str(tmp_path), agent="arm", task="grasp_bin")
