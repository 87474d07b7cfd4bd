"""training_node as its own process: demos -> checkpoint 0 -> agent episodes picked up from the
recorder's folder -> capped updates -> checkpoints; SIGKILL and restart resumes from the newest
checkpoint. The NaN guard is checked on the trainer the node runs (BagTrainer), in-process.

ROS_DOMAIN_ID 81 (this file only), localhost discovery; every process started here is stopped.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from arm_policy.agents import NumericalError  # noqa: E402
from arm_policy.bag_trainer import BagTrainer, BagTrainerSettings, TrainingFailed  # noqa: E402
from arm_policy.checkpoints import list_checkpoints, load_checkpoint  # noqa: E402
from arm_policy.episode_dataset import read_agent_episode, write_agent_episode  # noqa: E402
from arm_policy.run_log import read_metrics  # noqa: E402
from arm_policy.settings_cli import parse_items as parse_overrides  # noqa: E402
from arm_policy.training_node import STATUS_QOS, TOPIC_TRAINING_STATUS  # noqa: E402

DOMAIN = 81
SIZE = 32
OVERRIDES = ["image_size=32", "batch_size=8"]


def steps(run: Path) -> list[int]:
    return [int(p.stem.split("_")[1]) for p in list_checkpoints(run)]


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    from arm_sim.demos import record_demos

    root = tmp_path_factory.mktemp("demos")
    summary = record_demos("reach_target", 2, 0, root, image_size=SIZE)
    assert summary["successes"] == 2
    return root


def agent_episode(path: Path, n: int = 3, seed: int = 0, success: bool = True) -> Path:
    """A 3-decision episode bag as the recorder writes it, ending in success (or cut short)."""
    rng = np.random.default_rng(seed)
    decisions = []
    for k in range(n):
        q = rng.normal(size=4)
        decisions.append(dict(
            stamp_ns=1_800_000_000 * 10**9 + k * 10**9,
            rgb=rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8),
            point_cloud=rng.normal(size=(SIZE, SIZE, 3)).astype(np.float32),
            low_dim=rng.normal(size=11).astype(np.float32), pixel=[5, 7],
            action=np.r_[0.3, 0.0, 1.0, q / np.linalg.norm(q) * np.sign(q[3]), 1.0],
            reward=1.0 if k == n - 1 and success else 0.0, terminal=k == n - 1))
    return write_agent_episode(path, decisions)


class StatusListener:
    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN)
        self.node = rclpy.create_node("training_test_listener", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: list[dict] = []
        self.node.create_subscription(String, TOPIC_TRAINING_STATUS,
                                      lambda m: self.messages.append(json.loads(m.data)), STATUS_QOS)

    def wait(self, predicate, timeout: float, proc, what: str) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.messages and predicate(self.messages[-1]):
                return self.messages[-1]
            assert proc.poll() is None, f"training_node exited with {proc.returncode} ({what})"
            self.executor.spin_once(timeout_sec=0.05)
        raise AssertionError(f"{what}: not within {timeout} s; last status "
                             f"{self.messages[-1] if self.messages else None}")

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def listener(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    status = StatusListener()
    yield status
    status.close()


def start_node(run: Path, demos: Path, log: Path, *extra: str, task: str = "reach_target",
               overrides: list[str] = OVERRIDES) -> subprocess.Popen:
    args = [sys.executable, "-m", "arm_policy.training_node", "--ros-args",
            "-p", f"run_dir:={run}", "-p", f"demos_dir:={demos}", "-p", f"task:={task}",
            "-p", f"agent_overrides:=[{', '.join(overrides)}]", "-p", "torch_threads:=1",
            "-p", "poll_period:=0.3", "-p", "status_period:=0.2", "-p", "log_every:=2"]
    for item in extra:
        args += ["-p", item]
    env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_training_node_trains_from_bags_and_resumes_after_sigkill(demos, listener, tmp_path):
    run, log = tmp_path / "run", tmp_path / "training_node.log"
    train_bags = run / "bags" / "train"

    # 1. Demos only, at most 2 updates per agent transition: checkpoint 0, then it waits.
    proc = start_node(run, demos, log, "updates_per_step:=2", "checkpoint_every:=2")
    try:
        status = listener.wait(lambda s: s["checkpoint_step"] == 0, 90, proc, "checkpoint 0")
        assert status["demo_transitions"] > 0 and status["transitions"] == status["demo_transitions"]
        assert steps(run) == [0]
        time.sleep(1.0)
        assert steps(run) == [0] and listener.messages[-1]["updates"] == 0, \
            "no agent transitions yet: updates_per_step allows none"
        assert listener.messages[-1]["state"] == "waiting_for_episodes"

        # The recorder's folder: a closed episode, one still being written, one truncated.
        # (prepared aside and moved in whole, as the recorder's rename does)
        staging = tmp_path / "staging"
        agent_episode(train_bags / "episode_000001")
        agent_episode(staging / "episode_000002").rename(train_bags / "episode_000002.partial")
        truncated = agent_episode(staging / "episode_000000", seed=1)
        mcap = truncated / "episode_000000.mcap"
        mcap.write_bytes(mcap.read_bytes()[:3000])
        truncated.rename(train_bags / "episode_000000")

        status = listener.wait(lambda s: s["updates"] == 6, 90, proc, "6 capped updates")
        assert status["episodes"] == 1 and status["agent_transitions"] == 3
        time.sleep(1.0)
        status = listener.messages[-1]
        assert status["updates"] == 6 and status["state"] == "waiting_for_episodes"
        assert set(status["losses"]) >= {"q_attention_loss", "critic_loss", "actor_loss"}
        assert steps(run) == [0, 2, 4, 6]
        text = log.read_text()
        assert "episode_000000" in text and "skipping unreadable agent episode" in text
        assert "episode_000002" not in text, "a .partial bag was read"
    finally:
        kill(proc)  # SIGKILL: no final checkpoint, no clean shutdown
    assert proc.returncode == -signal.SIGKILL
    rows = read_metrics(run / "training")
    assert [r["step"] for r in rows] == [2, 4, 6] and all(np.isfinite(r["critic_loss"]) for r in rows)
    config = json.loads((run / "training" / "config.json").read_text())["config"]
    assert config["agent"]["image_size"] == SIZE and config["training_node"]["updates_per_step"] == 2
    assert not (run / "metrics.csv").exists(), "run_dir/metrics.csv belongs to the episode runner"

    # 2. Restart without a cap: resumes from checkpoint 6 (re-reading every bag) and goes on.
    listener.messages.clear()
    proc = start_node(run, demos, log, "updates_per_step:=0", "checkpoint_every:=2")
    try:
        status = listener.wait(lambda s: s["updates"] >= 10, 120, proc, "updates after resume")
        assert status["resumed_from"] == 6 and status["episodes"] == 1
        first = next(s for s in listener.messages if s["state"] != "waiting_for_demos")
        assert first["updates"] >= 6, "resumed at 0 instead of the newest checkpoint"
        assert "resumed from checkpoint" in log.read_text()
        new_steps = steps(run)
        assert max(new_steps) >= 8 and all(s % 2 == 0 for s in new_steps)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        kill(proc)
    final = list_checkpoints(run)[-1]
    state = load_checkpoint(final)
    assert state["updates"] >= 10 and state["learner"]["env_steps"] == 3
    assert "Traceback" not in log.read_text()


def test_qtopt_trains_from_grasp_episode_bags_over_the_graph(listener, tmp_path):
    """agent:=qtopt task:=grasp_bin: checkpoint 0 from the offline grasps, then the recorder's
    online bags (a truncated one skipped, named), capped updates, a final checkpoint on SIGINT.
    The trainer's own checks (mixing, resume, foreign bags) are in test_bag_trainer_qtopt."""
    from arm_policy.agents import from_checkpoint
    from arm_policy.agents.qtopt import QTOptAgent
    from arm_policy.grasp_episodes import write_grasp_episode
    from test_bag_trainer_qtopt import TINY, cut_in_half, frames, offline

    run, log = tmp_path / "run", tmp_path / "training_node.log"
    train_bags = run / "bags" / "train"
    overrides = [json.dumps(f"{k}={json.dumps(v)}") for k, v in TINY.items()]  # YAML-quoted: [8, 8]
    proc = start_node(run, offline(tmp_path / "demos", n=2), log, "agent:=qtopt", "min_demos:=2",
                      "updates_per_step:=1", "checkpoint_every:=2", task="grasp_bin",
                      overrides=overrides)
    try:
        status = listener.wait(lambda s: s["checkpoint_step"] == 0, 90, proc, "checkpoint 0")
        assert status["demo_transitions"] == 6 and status["state"] == "waiting_for_episodes"
        staging = tmp_path / "staging"  # moved in whole, as the recorder's rename does
        train_bags.mkdir(parents=True)
        cut_in_half(write_grasp_episode(staging / "episode_000000", frames(20))).rename(
            train_bags / "episode_000000")
        write_grasp_episode(staging / "episode_000001", frames(21, success=True)).rename(
            train_bags / "episode_000001")
        status = listener.wait(lambda s: s["updates"] == 3, 90, proc, "3 capped updates")
        assert status["episodes"] == 1 and status["agent_transitions"] == 3 and "q_loss" in status["losses"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        kill(proc)
    text = log.read_text()
    assert "skipping unreadable agent episode" in text and "episode_000000" in text
    assert "Traceback" not in text and steps(run) == [0, 2, 3]
    agent = from_checkpoint(load_checkpoint(list_checkpoints(run)[-1]))
    assert isinstance(agent, QTOptAgent) and agent.updates == 3


def test_bad_parameters_are_refused_with_the_reason(tmp_path):
    """The constructor's ValueError is what run_node turns into exit code 2 + the message."""
    from rclpy.parameter import Parameter

    from arm_policy.training_node import TrainingNode

    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["image_size"])
    assert parse_overrides(["image_size=32", "unet_filters=[8, 8]", "attention_lr=1e-3"]) == {
        "image_size": 32, "unet_filters": [8, 8], "attention_lr": 1e-3}
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN)
    try:
        for overrides, expect in (
                ([], "run_dir must name the run folder"),
                ([Parameter("agent_overrides", value=["image_sise=32"])],
                 r"unknown ARMConfig field\(s\) \['image_sise'\]"),
                ([Parameter("agent_overrides", value=["image_size=30"])], "multiple of 4"),
                ([Parameter("updates_per_step", value=-1)], "updates_per_step must be an integer >= 0"),
                ([Parameter("preset", value="gpu")], "unknown preset 'gpu'"),
                ([Parameter("agent", value="qtopt")], "does not learn 'reach_target'"),
                ([Parameter("agent", value="dqn")], "unknown agent 'dqn'")):
            if overrides or expect != "run_dir must name the run folder":
                overrides = [Parameter("run_dir", value=str(tmp_path)), *overrides]
            with pytest.raises(ValueError, match=expect):
                TrainingNode(context=context, parameter_overrides=overrides)
    finally:
        rclpy.shutdown(context=context)
    assert not (tmp_path / "checkpoints").exists()


def test_a_numerical_failure_stops_training_without_a_poisoned_checkpoint(demos, tmp_path):
    """A huge learning rate blows the Q-attention up: the second update's loss is NaN."""
    run = tmp_path / "run"
    trainer = BagTrainer(BagTrainerSettings(
        run_dir=str(run), demos_dir=str(demos), updates_per_step=0, checkpoint_every=1,
        agent_overrides={"image_size": SIZE, "batch_size": 8, "attention_lr": 1e30}),
        log=lambda line: None)
    trainer.start()
    with pytest.raises(NumericalError, match="q_attention"):
        for _ in range(5):
            trainer.update()
    good = steps(run)
    assert good == list(range(max(good) + 1)) and max(good) < 5
    assert trainer.status()["state"] == "failed" and "non-finite" in trainer.status()["error"]
    assert trainer.updates_allowed() == 0
    with pytest.raises(TrainingFailed):
        trainer.update()
    with pytest.raises(TrainingFailed):
        trainer.save_checkpoint()
    assert trainer.close() is None and steps(run) == good
    shutil.rmtree(run)


def test_every_transition_of_a_successful_episode_bag_is_flagged_for_self_imitation(demos, tmp_path):
    trainer = BagTrainer(BagTrainerSettings(
        run_dir=str(tmp_path / "run"), demos_dir=str(demos), updates_per_step=0,
        agent_overrides={"image_size": SIZE, "batch_size": 8}), log=lambda line: None)
    trainer.start()
    won = read_agent_episode(agent_episode(tmp_path / "won", seed=1))
    lost = read_agent_episode(agent_episode(tmp_path / "lost", seed=2, success=False))
    assert trainer.add_episode(tmp_path / "won", won) == trainer.add_episode(tmp_path / "lost", lost) == 3
    batch, _, _ = trainer.replay.sample(512)
    flagged = {tuple(x) for x in batch["low_dim"][batch["success"]]}
    assert flagged == {tuple(t.low_dim) for t in won}  # all three decisions, the lost ones never
    assert not batch["demo"][batch["success"]].any()
    trainer.close()
