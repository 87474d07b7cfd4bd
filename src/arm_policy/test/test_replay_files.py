"""A resumed learner gets its replay back: the agent's transitions saved beside each checkpoint
(RUN/replay/), the replay's bookkeeping in the checkpoint. Files from after the checkpoint are
dropped, a missing file falls back to the demos with a warning, a finished run deletes them.
Small QT-Opt networks: a few seconds."""
from __future__ import annotations

import numpy as np
import pytest

from arm_policy.agents import AGENTS
from arm_policy.agents.qtopt import QTOptAgent, QTOptConfig
from arm_policy.learner import Learner, LearnerSettings
from arm_policy.replay_files import ReplayFiles

TINY = QTOptConfig(image_size=16, conv_channels=(8, 8), embed_hidden=16, head_channels=8,
                   head_hidden=16, batch_size=8, replay_capacity=64)
SETTINGS = LearnerSettings(updates_per_step=1, checkpoint_every=5, keep_checkpoints=2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def transitions(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"rgb": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
             "state": rng.uniform(0, 1, 2).astype(np.float32),
             "action": rng.uniform(-1, 1, 7).astype(np.float32), "reward": float(rng.uniform()),
             "terminal": bool(rng.integers(2)), "timeout": False,
             "next_rgb": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
             "next_state": rng.uniform(0, 1, 2).astype(np.float32)} for _ in range(n)]


DEMOS = transitions(10, seed=1)


def start(run, warn=print) -> Learner:
    return Learner.start("qtopt", TINY, DEMOS, run, SETTINGS, seed=0, warn=warn, keep_replay=True)


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """80 agent transitions after 10 demos in a ring of 64 (the demos and 16 of the agent's are
    overwritten), in episodes of 7, every other one a success; checkpoints every 5 updates, the
    newest 2 kept; then an interrupt (the last checkpoint, the files kept)."""
    monkeypatch.setitem(AGENTS, "qtopt", QTOptAgent)
    learner = start(tmp_path)
    for i, t in enumerate(transitions(80, seed=2)):
        learner.observe(t)
        if i % 7 == 6:
            learner.end_episode(success=i % 14 == 6)
        learner.train()
    learner.close(keep_replay=True)
    return tmp_path, learner.replay


def test_a_resumed_learner_samples_from_the_replay_it_had(interrupted_run):
    run, before = interrupted_run
    resumed = start(run)
    after = resumed.replay
    assert resumed.restored_transitions == 64 and resumed.replay_note() == \
        "the replay has its 64 agent transitions back"
    np.testing.assert_array_equal(after.tree.nodes, before.tree.nodes)
    for kind in (True, False):
        np.testing.assert_array_equal(after.kind_trees[kind].nodes, before.kind_trees[kind].nodes)
    slots = np.arange(64)
    for k, v in before.rows(slots).items():
        np.testing.assert_array_equal(after.rows(slots)[k], v, err_msg=k)
    assert after.bookkeeping()["success"].sum() == before.bookkeeping()["success"].sum() > 0
    assert (after.added, after.max_priority, after.samples_drawn) == \
        (before.added, before.max_priority, before.samples_drawn)
    # files whose items the ring had overwritten by the oldest kept checkpoint are deleted
    # (step 75, 85 adds: items before 21 are gone, the files of 10..14 and 15..19 with them)
    assert ReplayFiles(run).files()[0][0] == 20


def test_an_older_checkpoint_resumes_with_its_replay_too(interrupted_run):
    """The newest checkpoint unreadable, the one before it is taken: the files it needs are
    still there (items the ring had overwritten by then are not needed)."""
    run, before = interrupted_run
    newest = sorted((run / "checkpoints").glob("step_*.pt"))[-1]
    newest.write_bytes(b"truncated")
    warnings = []
    resumed = start(run, warn=warnings.append)
    assert resumed.updates == 75 and resumed.restored_transitions == 64, warnings
    assert resumed.replay.added == 85  # 5 fewer than the newest had
    np.testing.assert_array_equal(resumed.replay.rows(np.arange(64))["rgb"][:10], before.rows(np.arange(64))["rgb"][:10])


def test_files_written_after_the_checkpoint_are_not_taken(interrupted_run):
    run, before = interrupted_run
    files = ReplayFiles(run)
    later = files.write(np.arange(90, 93), before.rows([0, 1, 2]))  # a crash before its checkpoint
    resumed = start(run)
    assert resumed.restored_transitions == 64 and not later.exists()
    assert resumed.replay.added == 90


def test_a_missing_file_falls_back_to_the_demos_and_says_so(interrupted_run):
    run, _ = interrupted_run
    files = ReplayFiles(run)
    files.files()[3][1].unlink()
    warnings = []
    resumed = start(run, warn=warnings.append)
    assert resumed.restored_transitions is None and len(resumed.replay) == len(DEMOS)
    assert resumed.replay_note() == "the replay restarts from the demos"
    assert any("restarts from the demos" in w and "of its 64 agent transitions" in w for w in warnings)
    assert files.files() == []  # numbered from the demos again: the old ones would collide
    resumed.observe(transitions(1, seed=3)[0])
    assert resumed.replay.bookkeeping()["demo"].sum() == len(DEMOS)


def test_a_finished_run_deletes_its_replay_files(interrupted_run):
    run, _ = interrupted_run
    assert ReplayFiles(run).files()
    learner = start(run)
    learner.close(keep_replay=False)
    assert not (run / "replay").exists()
