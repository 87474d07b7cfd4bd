"""CheckpointFollower: the agent an acting process uses while another one trains (the policy
node's). It starts from the newest checkpoint that loads, moves on only by reload_every updates,
reports an unreadable file once and keeps acting on the last good weights."""
from __future__ import annotations

import os

import torch

from arm_policy.agents.qtopt import QTOptAgent, QTOptConfig
from arm_policy.checkpoint_follower import CheckpointFollower
from arm_policy.checkpoints import checkpoint_path, save_checkpoint

TINY = QTOptConfig(image_size=16, conv_channels=(8, 8), embed_hidden=16, head_channels=8,
                   head_hidden=16, batch_size=8, replay_capacity=64)


def save(run_dir, step: int, seed: int) -> None:
    save_checkpoint(run_dir, step, QTOptAgent(TINY, "cpu", seed=seed).state_dict())


def weights(agent) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in agent.q.parameters()])


def test_it_waits_for_a_first_checkpoint_then_moves_on_by_reload_every_updates(tmp_path):
    infos, errors = [], []
    follower = CheckpointFollower(tmp_path, "cpu", reload_every=100, info=infos.append, error=errors.append)
    follower.poll()
    assert follower.agent is None and follower.step is None and not errors
    save(tmp_path, 0, seed=0)
    follower.poll()
    assert follower.step == 0 and follower.agent.name == "qtopt" and "update 0" in infos[-1]
    save(tmp_path, 50, seed=1)  # not reload_every newer: kept on step 0
    follower.poll()
    assert follower.step == 0
    save(tmp_path, 120, seed=2)
    follower.poll()
    assert follower.step == 120
    assert torch.equal(weights(follower.agent), weights(QTOptAgent(TINY, "cpu", seed=2)))
    assert not errors


def test_an_unreadable_newer_checkpoint_is_reported_once_and_the_last_good_one_keeps_acting(tmp_path):
    errors = []
    save(tmp_path, 0, seed=0)
    follower = CheckpointFollower(tmp_path, "cpu", reload_every=10, info=lambda _: None, error=errors.append)
    follower.poll()
    bad = checkpoint_path(tmp_path, 200)
    save(tmp_path, 200, seed=1)
    bad.write_bytes(bad.read_bytes()[: os.path.getsize(bad) // 2])  # truncated
    for _ in range(3):
        follower.poll()
    assert follower.step == 0 and len(errors) == 1 and str(bad) in errors[0]
    save(tmp_path, 300, seed=2)
    follower.poll()
    assert follower.step == 300 and len(errors) == 1


def test_at_start_an_unreadable_newest_is_skipped_for_the_newest_that_loads(tmp_path):
    errors = []
    save(tmp_path, 0, seed=0)
    save(tmp_path, 100, seed=1)
    checkpoint_path(tmp_path, 100).write_bytes(b"not a checkpoint")
    follower = CheckpointFollower(tmp_path, "cpu", info=lambda _: None, error=errors.append)
    follower.poll()
    follower.poll()
    assert follower.step == 0 and len(errors) == 1 and "step_000000100.pt" in errors[0]
