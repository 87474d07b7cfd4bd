"""Faults of `arm launch sim_train`: the trainer SIGKILLed mid-run is respawned, resumes from
its newest checkpoint and the recorded bags, and the run finishes; a truncated bag in the run
folder is skipped with a warning naming it; the whole launch started again on the same run
folder goes on where the first one ended.

Two tiny launches (sim_train_helpers.TINY) in ROS_DOMAIN_ID 86 on one run folder that already
holds a truncated training bag: 2 minutes with a trainer kill, then two more training episodes.
Every process they start is stopped.
"""
import json
import os
import re
import signal
import time

import numpy as np
import pytest

from sim_train_helpers import TINY, Launch, checkpoint_steps, node_processes

DOMAIN = "86"
MINUTES = 2.0


def _truncated_bag(run_dir):
    """bags/train/episode_000000: a real 2-step agent episode whose MCAP file lost its second
    half (a crash of the machine mid-write; metadata.yaml is intact)."""
    from arm_policy.episode_dataset import write_agent_episode

    rng = np.random.default_rng(0)
    decisions = [{"stamp_ns": 1_000_000_000 * (k + 1), "rgb": rng.integers(0, 255, (32, 32, 3),
                                                                               dtype=np.uint8),
                  "point_cloud": rng.normal(size=(32, 32, 3)).astype(np.float32),
                  "low_dim": np.zeros(11, np.float32), "pixel": [3, 4],
                  "action": [0.4, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0], "reward": 0.0,
                  "terminal": k == 1} for k in range(2)]
    bag = write_agent_episode(run_dir / "bags" / "train" / "episode_000000", decisions)
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    return bag


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sim_train_fault") / "run"
    truncated = _truncated_bag(run_dir)
    launch = Launch(DOMAIN, run_dir, *TINY, f"minutes:={MINUTES}")
    out = {"dir": run_dir, "launch": launch, "truncated": truncated}
    try:
        pid = int(launch.wait_for(r"^\[launch\] started training_node \(pid (\d+)\)", 60).group(1))
        # kill it once it has trained: a checkpoint after update 0 is on disk
        end = time.monotonic() + 150
        while not [s for s in checkpoint_steps(run_dir) if s > 0]:
            assert time.monotonic() < end, \
                f"no trained checkpoint within 150 s; log {launch.log}:\n{launch.text[-4000:]}"
            assert launch.proc.poll() is None, launch.text[-3000:]
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        out["newest_at_kill"] = max(checkpoint_steps(run_dir))
        out["rc"] = launch.wait(timeout=MINUTES * 60 + 150)
    finally:
        launch.stop()
    return out


def test_the_killed_trainer_is_respawned_and_the_run_finishes(run):
    text = run["launch"].text
    assert run["rc"] == 0, text[-5000:]
    assert "[launch] training_node exited with code -9 (SIGKILL); respawning in 2 s" in text
    assert re.search(r"^\[launch\] started training_node \(pid \d+\), start #2$", text, re.M)
    assert "[launch] episode_runner exited with code 0; stopping the rest" in text
    time.sleep(0.5)
    assert node_processes(DOMAIN) == []


def test_the_respawned_trainer_resumes_from_the_newest_checkpoint_and_goes_on(run):
    text = run["launch"].text
    resumed = [int(m) for m in re.findall(r"resumed from checkpoint \S+step_(\d+)\.pt", text)]
    assert resumed, text[-5000:]
    # the newest checkpoint when it died (or one it wrote while the kill was on its way)
    assert resumed[-1] >= run["newest_at_kill"]
    after = [s for s in checkpoint_steps(run["dir"]) if s > resumed[-1]]
    assert after, f"no checkpoint after the resume at {resumed[-1]}"
    summary = json.loads((run["dir"] / "summary.json").read_text())
    assert summary["updates"] > resumed[-1]


def test_the_actor_did_not_notice(run):
    """Only the trainer died: no episode of the runner was aborted."""
    assert "aborted" not in "\n".join(
        line for line in run["launch"].text.splitlines() if line.startswith("[episode_runner]"))


def test_a_truncated_bag_is_skipped_with_a_warning_naming_it(run):
    text = run["launch"].text
    bag = str(run["truncated"])
    assert re.search(rf"\[training_node\].*skipping unreadable agent episode {re.escape(bag)}",
                     text), text[-5000:]
    # the runner kept its number: the first new training episode is episode_000001
    assert (run["dir"] / "bags" / "train" / "episode_000001").is_dir()


@pytest.fixture(scope="module")
def rerun(run):
    """The same launch again on the same run folder, for two more training episodes."""
    before = json.loads((run["dir"] / "summary.json").read_text())
    launch = Launch(DOMAIN, run["dir"], *TINY, "minutes:=0", f"episodes:={before['episodes'] + 2}",
                    log=run["dir"].parent / "rerun.launch.log")
    try:
        rc = launch.wait(timeout=150)
    finally:
        launch.stop()
    return {"launch": launch, "rc": rc, "before": before,
            "after": json.loads((run["dir"] / "summary.json").read_text())}


def test_a_restarted_launch_goes_on_where_the_last_one_ended(run, rerun):
    text, before, after = rerun["launch"].text, rerun["before"], rerun["after"]
    assert rerun["rc"] == 0, text[-5000:]
    assert "demos of reach_target at" not in text  # the demos are there: none recorded
    assert f"resuming {run['dir']}: {before['episodes']} training episodes, " \
           f"{before['env_steps']} env steps" in text
    final = max(checkpoint_steps(run["dir"]))  # (the newest may be the rerun's final one)
    resumed = [int(m) for m in re.findall(r"resumed from checkpoint \S+step_(\d+)\.pt", text)]
    assert resumed and resumed[0] >= before["checkpoint_step"] and resumed[0] <= final
    assert after["episodes"] == before["episodes"] + 2 and after["episodes_this_launch"] == 2
    assert after["env_steps"] > before["env_steps"]
    from arm_policy.run_log import read_metrics

    evals = [r for r in read_metrics(run["dir"]) if "eval_success" in r]
    assert evals[-1]["env_steps"] == after["env_steps"]  # appended to the first launch's rows
    assert len(evals) == before["evaluations_this_launch"] + after["evaluations_this_launch"]
    time.sleep(0.5)
    assert node_processes(DOMAIN) == []
